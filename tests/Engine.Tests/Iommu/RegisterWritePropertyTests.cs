using CsCheck;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// Random sequences of software register accesses at random offsets and sizes, mixed with faulting
/// DMA: every access is answered (never thrown), a rejected one changes nothing, an accepted one
/// changes exactly the writable bits it covers and clears exactly the write-1-to-clear bits it
/// writes 1 to — apart from the bits the spec lets hardware move in answer (GCMD, CCMD.ICC/CAIG,
/// IOTLB_REG.IVT/IAIG, FECTL/IECTL/PECTL.IP, FSTS.PPF/IQE) — CAP/ECAP/VER never change, PPF is always the OR of
/// the F bits, and a driver that re-initialises the unit afterwards finds it translating correctly.
/// </summary>
public class RegisterWritePropertyTests
{
    /// <summary>
    /// One step: a register write, a register read, a DMA to an unmapped page (a fault to record), a page
    /// request from the device, or a driver's Submit of a wait descriptor with IF (an invalidation event).
    /// </summary>
    private readonly record struct Op(int Kind, int Offset, int Size, ulong Value)
    {
        public override string ToString() => Kind switch
        {
            0 => $"W(0x{Offset:x}, {Size}, 0x{Value:x})",
            1 => $"R(0x{Offset:x}, {Size})",
            2 => $"Fault(page 0x{Value:x})",
            3 => $"PageRequest(page 0x{Value:x})",
            _ => "WaitIf",
        };
    }

    private sealed class Harness : IDisposable
    {
        public const ulong Page = 7;

        public Harness()
        {
            F = new UnitFixture(scalable: true);
            F.Vm.Map(0, 64, Access.All);
            // Every ring IQA can describe from this base (up to 2^7 frames) lies in frames the test owns
            // and keeps zeroed, so a random IQT never makes the unit act on someone else's memory.
            QueueRegion = F.Memory.AllocateContiguous(128, 128);
            PageRequestRegion = F.Memory.AllocateContiguous(128, 128);
            F.Unit.FaultRecorder.FaultEvent += () => FaultEvents++;
            F.Unit.InvalidationEvent += () => InvalidationEvents++;
            F.Unit.PageRequestEvent += () => PageRequestEvents++;
            Declarations = F.Unit.Registers.Declarations.Values.OrderBy(d => d.Offset).ToArray();
            IotlbCommand = F.Unit.Ecap.IotlbRegisterOffset + 8;
        }

        public UnitFixture F { get; }

        public ulong QueueRegion { get; }

        public ulong PageRequestRegion { get; }

        public int FaultEvents { get; set; }

        public int InvalidationEvents { get; set; }

        public int PageRequestEvents { get; set; }

        public RegisterDeclaration[] Declarations { get; }

        public int IotlbCommand { get; }

        public RegisterFile Registers => F.Unit.Registers;

        /// <summary>A known start for each sample: registers at reset, the unit programmed as the driver does.</summary>
        public void Start()
        {
            Registers.Reset();
            F.Unit.FaultRecorder.Reset();
            F.Memory.GetSpan(QueueRegion, 128 * HostMemory.FrameSize).Clear();
            F.Memory.GetSpan(PageRequestRegion, 128 * HostMemory.FrameSize).Clear();
            F.Vm.Map(Page, 1, Access.All);
            Reinitialise();
        }

        /// <summary>What a driver does to take over a unit in an unknown state (no register reset).</summary>
        public void Reinitialise()
        {
            F.Unit.WriteRegister(RegisterOffsets.GlobalCommand, 4, 0);  // TE and QIE off
            F.Unit.WriteRegister(RegisterOffsets.FaultStatus, 4, DmarRegisters.FaultStatusWriteOneToClear);
            F.Unit.SetRootTable(F.Tables.RootTable, scalable: true);
            F.Unit.EnableQueuedInvalidation(QueueRegion);
            F.Unit.EnablePageRequestQueue(PageRequestRegion);
            F.Unit.SetTranslationEnabled(true);
            Assert.Equal(InvalidationQueueError.None, F.Unit.Submit(InvalidationDescriptor.ContextCache(1), InvalidationDescriptor.Iotlb(1)));
        }

        public void CheckStillTranslates()
        {
            TranslationResult r = F.Translate(Page << 12);
            Assert.True(r.IsSuccess && r.Hpa == F.Backing(Page << 12), $"page {Page} does not translate to its backing: {r}");
            Assert.True(F.Translate(Page << 12).IotlbHit);
            F.Vm.Zap(Page, 1);
            Assert.Equal(InvalidationQueueError.None, F.Unit.Submit(InvalidationDescriptor.Iotlb(3, UnitFixture.Did, Page << 12)));
            Assert.False(F.Translate(Page << 12).IsSuccess, "a zapped and invalidated page still translates");
            F.Vm.Map(Page, 1, Access.All);
            r = F.Translate(Page << 12);
            Assert.True(r.IsSuccess && r.Hpa == F.Backing(Page << 12), $"page {Page} does not translate after remapping: {r}");
        }

        public ulong[] Snapshot() => Declarations.Select(d => Registers.Get(d.Offset)).ToArray();

        public void Dispose() => F.Dispose();
    }

    /// <summary>The documented answer to an access, from the declarations alone.</summary>
    private static RegisterAccessStatus ExpectedStatus(Harness h, int offset, int size, out RegisterDeclaration? register, out int shift)
    {
        register = null;
        shift = 0;
        if (size is not (4 or 8))
            return RegisterAccessStatus.BadSize;
        if (offset < 0 || offset % size != 0)
            return RegisterAccessStatus.Misaligned;
        register = h.Declarations.FirstOrDefault(d => d.Offset == offset);
        if (register is not null)
            return size <= register.Width ? RegisterAccessStatus.Ok : RegisterAccessStatus.BadSize;
        register = h.Declarations.FirstOrDefault(d => d.Offset == offset - 4 && d.Width == 8);
        if (size == 4 && register is not null)
        {
            shift = 32;
            return RegisterAccessStatus.Ok;
        }
        register = null;
        return RegisterAccessStatus.UnknownOffset;
    }

    /// <summary>Bits of a register that its own write may legitimately make hardware change.</summary>
    private static ulong MovedByHardware(Harness h, RegisterDeclaration register) => register.Offset switch
    {
        RegisterOffsets.GlobalCommand => ulong.MaxValue,                              // consumed: reads as 0
        RegisterOffsets.ContextCommand => 1UL << 63 | 3UL << 59,                      // ICC done, CAIG
        RegisterOffsets.FaultEventControl => FaultRecorder.FaultEventIp,              // IM cleared sends a held interrupt
        RegisterOffsets.InvalidationEventControl => Ip,                               // likewise
        RegisterOffsets.PageRequestEventControl => Ip,                                // likewise
        RegisterOffsets.FaultStatus => FaultRecorder.FaultStatusPpf | FaultRecorder.FaultStatusIqe,  // PPF recomputed; IQE re-set by a resumed queue
        _ when register.Offset == h.IotlbCommand => 1UL << 63 | 3UL << 57,           // IVT done, IAIG
        _ => 0,
    };

    private static void Check(Harness h, Op[] ops)
    {
        h.Start();
        RegisterFile registers = h.Registers;
        ulong cap = h.F.Unit.Cap.Value, ecap = h.F.Unit.Ecap.Value;
        foreach (Op op in ops)
        {
            ulong conditionsBefore = registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusInterruptConditions;
            int faultEventsBefore = h.FaultEvents, invalidationEventsBefore = h.InvalidationEvents, pageRequestEventsBefore = h.PageRequestEvents;
            ulong iectlBefore = registers.Get(RegisterOffsets.InvalidationEventControl);
            ulong pectlBefore = registers.Get(RegisterOffsets.PageRequestEventControl);
            if (op.Kind == 2)
            {
                _ = h.F.Translate(op.Value << 12, Access.Write);
            }
            else if (op.Kind == 3)
            {
                _ = h.F.Unit.SubmitPageRequest(new PageRequest(UnitFixture.Sid, op.Value << 12, Read: true, Write: false, Execute: false, LastInGroup: true, GroupIndex: 1));
            }
            else if (op.Kind == 4)
            {
                try
                {
                    _ = h.F.Unit.Submit(InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true));
                }
                catch (InvalidOperationException)
                {
                    // Documented: the walk may have switched QI off or moved IQA outside host memory.
                }
            }
            else if (op.Kind == 1)
            {
                ulong[] quiet = h.Snapshot();
                RegisterAccessStatus read = h.F.Unit.ReadRegister(op.Offset, op.Size, out ulong value);
                Assert.Equal(ExpectedStatus(h, op.Offset, op.Size, out RegisterDeclaration? r, out int shift), read);
                if (read == RegisterAccessStatus.Ok)
                    Assert.Equal((registers.Get(r!.Offset) >> shift) & (op.Size == 8 ? ulong.MaxValue : 0xFFFF_FFFF), value);
                else
                    Assert.Equal(0UL, value);
                Assert.Equal(quiet, h.Snapshot());
            }
            else
            {
                RegisterAccessStatus expectedStatus = ExpectedStatus(h, op.Offset, op.Size, out RegisterDeclaration? r, out int shift);
                ulong[] before = h.Snapshot();
                ulong old = r is null ? 0 : registers.Get(r.Offset);
                RegisterAccessStatus status = h.F.Unit.WriteRegister(op.Offset, op.Size, op.Value);
                Assert.Equal(expectedStatus, status);
                if (status != RegisterAccessStatus.Ok)
                {
                    Assert.Equal(before, h.Snapshot());  // a refused access has no effect at all
                }
                else
                {
                    ulong lane = (op.Size == 8 ? ulong.MaxValue : 0xFFFF_FFFFUL) << shift;
                    ulong incoming = (op.Value << shift) & lane;
                    ulong expected = ((old & ~(r!.WritableMask & lane)) | (incoming & r.WritableMask)) & ~(r.WriteOneToClearMask & incoming);
                    ulong moved = MovedByHardware(h, r);
                    if (r.Offset == RegisterOffsets.FaultStatus
                        && (registers.Get(RegisterOffsets.GlobalStatus) & (ulong)GlobalCommand.QueuedInvalidationEnable) == 0)
                        moved &= ~FaultRecorder.FaultStatusIqe;  // no queue running: a cleared IQE stays clear
                    ulong now = registers.Get(r.Offset);
                    Assert.True(((now ^ expected) & ~moved) == 0,
                        $"{r.Name} after {op}: 0x{now:x16}, expected 0x{expected:x16} outside bits 0x{moved:x16} (was 0x{old:x16})");
                    if (r.Offset == RegisterOffsets.ContextCommand || r.Offset == h.IotlbCommand)
                        CheckCommandCompleted(r, expected, now);
                }
            }
            Assert.Equal(cap, registers.Get(RegisterOffsets.Capability));
            Assert.Equal(ecap, registers.Get(RegisterOffsets.ExtendedCapability));
            Assert.Equal(DmarRegisters.Version, registers.Get(RegisterOffsets.Version));
            Assert.Equal(0UL, registers.Get(RegisterOffsets.GlobalCommand));
            bool anyF = Enumerable.Range(0, h.F.Unit.FaultRecorder.RecordCount)
                .Any(i => (registers.Get(h.F.Unit.FaultRecorder.HiOffset(i)) & FaultRecordingRegister.FaultBit) != 0);
            Assert.Equal(anyF, (registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusPpf) != 0);
            CheckInterrupts(h, op, conditionsBefore, faultEventsBefore, iectlBefore, invalidationEventsBefore, pectlBefore, pageRequestEventsBefore);
        }
        h.Reinitialise();
        h.CheckStillTranslates();
    }

    private const ulong Im = 1UL << 31, Ip = 1UL << 30;

    /// <summary>
    /// The three event sources (fault, invalidation completion, page request) follow one rule: a pending
    /// interrupt (IP) exists only while masked (IM) and while its status (an FSTS condition, ICS.IWC,
    /// PRS.PPR) is still set; unmasking with IP set sends it; and a new FSTS condition (IQE included)
    /// arising with none set before sends a fault event, or leaves IP set when masked.
    /// </summary>
    private static void CheckInterrupts(Harness h, Op op, ulong conditionsBefore, int faultEventsBefore,
        ulong iectlBefore, int invalidationEventsBefore, ulong pectlBefore, int pageRequestEventsBefore)
    {
        RegisterFile registers = h.Registers;
        ulong fsts = registers.Get(RegisterOffsets.FaultStatus);
        ulong fectl = registers.Get(RegisterOffsets.FaultEventControl);
        ulong iectl = registers.Get(RegisterOffsets.InvalidationEventControl);
        ulong pectl = registers.Get(RegisterOffsets.PageRequestEventControl);
        Assert.True((fectl & Ip) == 0 || ((fectl & Im) != 0 && (fsts & FaultRecorder.FaultStatusInterruptConditions) != 0),
            $"after {op}: FECTL 0x{fectl:x8} with FSTS 0x{fsts:x8}");
        Assert.True((iectl & Ip) == 0 || ((iectl & Im) != 0 && (registers.Get(RegisterOffsets.InvalidationCompletionStatus) & 1) != 0),
            $"after {op}: IECTL 0x{iectl:x8} with ICS 0x{registers.Get(RegisterOffsets.InvalidationCompletionStatus):x8}");
        Assert.True((pectl & Ip) == 0 || ((pectl & Im) != 0 && (registers.Get(RegisterOffsets.PageRequestStatus) & 1) != 0),
            $"after {op}: PECTL 0x{pectl:x8} with PRS 0x{registers.Get(RegisterOffsets.PageRequestStatus):x8}");
        if ((iectlBefore & (Im | Ip)) == (Im | Ip) && (iectl & Im) == 0)
            Assert.True(h.InvalidationEvents > invalidationEventsBefore, $"after {op}: unmasking IECTL with IP set sent no invalidation event");
        if ((pectlBefore & (Im | Ip)) == (Im | Ip) && (pectl & Im) == 0)
            Assert.True(h.PageRequestEvents > pageRequestEventsBefore, $"after {op}: unmasking PECTL with IP set sent no page-request event");
        if (conditionsBefore == 0 && (fsts & FaultRecorder.FaultStatusInterruptConditions) != 0)
        {
            Assert.True((fectl & Im) != 0 ? (fectl & Ip) != 0 : h.FaultEvents == faultEventsBefore + 1,
                $"after {op}: FSTS went from no condition to 0x{fsts:x8}, FECTL 0x{fectl:x8}, {h.FaultEvents - faultEventsBefore} fault events");
        }
    }

    /// <summary>
    /// CCMD and IOTLB_REG: a command (ICC/IVT set) completes at once — the busy bit reads 0 — and reports an
    /// actual granularity (CAIG 60:59 / IAIG 58:57) as coarse as or coarser than asked (CIRG 62:61 /
    /// IIRG 61:60; 1 = global is the coarsest), and 0 only for a request of granularity 0.
    /// </summary>
    private static void CheckCommandCompleted(RegisterDeclaration r, ulong written, ulong now)
    {
        if ((written >> 63) == 0)
            return;
        bool context = r.Offset == RegisterOffsets.ContextCommand;
        ulong asked = (written >> (context ? 61 : 60)) & 3;
        ulong actual = (now >> (context ? 59 : 57)) & 3;
        Assert.True(now >> 63 == 0, $"{r.Name}: the busy bit is still set: 0x{now:x16}");
        Assert.True(asked == 0 ? actual == 0 : actual is >= 1 && actual <= asked, $"{r.Name}: asked granularity {asked}, reported {actual}");
    }

    private static Gen<Op> Ops(Harness h)
    {
        int[] offsets = h.Declarations.SelectMany(d => d.Width == 8 ? new[] { d.Offset, d.Offset + 4 } : [d.Offset]).ToArray();
        Gen<int> offset = Gen.Frequency(
            (12, Gen.Int[0, offsets.Length - 1].Select(i => offsets[i])),
            (2, Gen.Int[-16, 0x1010]),
            (1, Gen.Int));
        Gen<int> size = Gen.Frequency((12, Gen.OneOf(Gen.Const(4), Gen.Const(8))), (1, Gen.Int[-1, 16]), (1, Gen.Int));
        // IQA only ever names the test's zeroed queue region or, through its upper half, somewhere
        // outside host memory: the low dword keeps the region's, whatever is written to the high one.
        uint regionLow = (uint)h.QueueRegion, regionHigh = (uint)(h.QueueRegion >> 32);
        Gen<ulong> iqa = Gen.Select(Gen.Frequency((3, Gen.Const(regionHigh)), (1, Gen.UInt)), Gen.UInt,
            (high, low) => (ulong)high << 32 | regionLow | (low & 0xFFF));
        Gen<ulong> anyValue = Gen.Frequency((4, Gen.ULong), (1, Gen.Const(0UL)), (1, Gen.Const(ulong.MaxValue)), (1, Gen.Int[0, 63].Select(b => 1UL << b)));
        // PQA likewise, within its own region: page requests are written where it points.
        uint prqLow = (uint)h.PageRequestRegion, prqHigh = (uint)(h.PageRequestRegion >> 32);
        Gen<ulong> pqa = Gen.Select(Gen.Frequency((3, Gen.Const(prqHigh)), (1, Gen.UInt)), Gen.UInt,
            (high, low) => (ulong)high << 32 | prqLow | (low & 0xFFF));
        Gen<Op> write =
            from o in offset
            from s in size
            from v in anyValue
            from q in iqa
            from p in pqa
            let value = o == RegisterOffsets.InvalidationQueueAddress ? q
                : o == RegisterOffsets.InvalidationQueueAddress + 4 ? q >> 32
                : o == RegisterOffsets.PageRequestQueueAddress ? p
                : o == RegisterOffsets.PageRequestQueueAddress + 4 ? p >> 32
                : v
            select new Op(0, o, s, value);
        Gen<Op> read = Gen.Select(offset, size, (o, s) => new Op(1, o, s, 0));
        Gen<Op> fault = Gen.ULong[0x1000, 0x2000].Select(page => new Op(2, 0, 0, page));
        Gen<Op> pageRequest = Gen.ULong[0, 0x2000].Select(page => new Op(3, 0, 0, page));
        Gen<Op> waitIf = Gen.Const(new Op(4, 0, 0, 0));
        return Gen.Frequency((8, write), (1, read), (1, fault), (1, pageRequest), (1, waitIf));
    }

    [Fact]
    public void RandomRegisterAccessesKeepEveryRegisterRuleAndTheUnitTranslating()
    {
        using var h = new Harness();
        Ops(h).Array[1, 40].Sample(ops => Check(h, ops), iter: 300, threads: 1);
    }

    // Regression cases the random walk found (shrunk, then written out).

    [Fact]
    public void AnIqeFromATailWriteIsAFaultEventHeldInFectlIpWhileMasked()
    {
        // Shrunk: [W(0x88, 8, 0x0)] — IQT moved back over two run descriptors onto a zero slot.
        using var h = new Harness();
        h.Start();
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0);
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, h.F.Unit.QueueError);
        Assert.Equal(Im | Ip, h.Registers.Get(RegisterOffsets.FaultEventControl));
        Assert.Equal(0, h.FaultEvents);
        h.F.Unit.WriteRegister(RegisterOffsets.FaultEventControl, 4, 0);
        Assert.Equal(1, h.FaultEvents);
        Assert.Equal(0UL, h.Registers.Get(RegisterOffsets.FaultEventControl));
    }

    [Fact]
    public void AnIqeWithFaultEventsUnmaskedSendsOneFaultEvent()
    {
        using var h = new Harness();
        h.Start();
        h.F.Unit.WriteRegister(RegisterOffsets.FaultEventControl, 4, 0);
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0);
        Assert.Equal(1, h.FaultEvents);
        Assert.Equal(0UL, h.Registers.Get(RegisterOffsets.FaultEventControl));
        // IQE is still set: a fault recorded now is no new interrupt condition.
        _ = h.F.Translate(0x1000UL << 12, Access.Write);
        Assert.Equal(1, h.FaultEvents);
    }

    [Fact]
    public void UnmaskingIectlWithACompletionPendingSendsItAndClearingIwcDropsIt()
    {
        using var h = new Harness();
        h.Start();
        var waitIf = InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true);
        h.F.Unit.Submit(waitIf);
        Assert.Equal(Im | Ip, h.Registers.Get(RegisterOffsets.InvalidationEventControl));
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationEventControl, 4, 0);
        Assert.Equal(1, h.InvalidationEvents);
        Assert.Equal(0UL, h.Registers.Get(RegisterOffsets.InvalidationEventControl));

        // IWC still set: a second completion is no new interrupt condition (QEMU vtd_generate_completion_event).
        h.F.Unit.Submit(waitIf);
        Assert.Equal(1, h.InvalidationEvents);
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationCompletionStatus, 4, 1);
        h.F.Unit.Submit(waitIf);
        Assert.Equal(2, h.InvalidationEvents);

        // Masked, then serviced by clearing IWC before unmasking: nothing is left to send.
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationCompletionStatus, 4, 1);
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationEventControl, 4, (uint)Im);
        h.F.Unit.Submit(waitIf);
        Assert.Equal(Im | Ip, h.Registers.Get(RegisterOffsets.InvalidationEventControl));
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationCompletionStatus, 4, 1);
        Assert.Equal(Im, h.Registers.Get(RegisterOffsets.InvalidationEventControl));
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationEventControl, 4, 0);
        Assert.Equal(2, h.InvalidationEvents);
    }

    [Fact]
    public void UnmaskingPectlWithAPageRequestPendingSendsItAndClearingPprDropsIt()
    {
        using var h = new Harness();
        h.Start();
        var request = new PageRequest(UnitFixture.Sid, 0x40_0000, Read: true, Write: false, Execute: false, LastInGroup: true, GroupIndex: 1);
        Assert.Equal(PageRequestStatus.Queued, h.F.Unit.SubmitPageRequest(request));
        Assert.Equal(Im | Ip, h.Registers.Get(RegisterOffsets.PageRequestEventControl));
        h.F.Unit.WriteRegister(RegisterOffsets.PageRequestEventControl, 4, 0);
        Assert.Equal(1, h.PageRequestEvents);
        Assert.Equal(0UL, h.Registers.Get(RegisterOffsets.PageRequestEventControl));

        h.F.Unit.WriteRegister(RegisterOffsets.PageRequestEventControl, 4, (uint)Im);
        Assert.Equal(PageRequestStatus.Queued, h.F.Unit.SubmitPageRequest(request));
        Assert.Equal(Im | Ip, h.Registers.Get(RegisterOffsets.PageRequestEventControl));
        Assert.Equal(2, h.F.Unit.DrainPageRequests().Count);  // the driver clears PPR: nothing is pending
        Assert.Equal(Im, h.Registers.Get(RegisterOffsets.PageRequestEventControl));
        h.F.Unit.WriteRegister(RegisterOffsets.PageRequestEventControl, 4, 0);
        Assert.Equal(1, h.PageRequestEvents);
    }

    [Fact]
    public void ClearingIqeOnAStoppedQueueResumesItAndStopsAgainOnTheSameBadDescriptor()
    {
        // A case the random walk reaches: FSTS W1C of IQE is not sticky while the bad descriptor is still at IQH.
        using var h = new Harness();
        h.Start();
        ulong head = h.Registers.Get(RegisterOffsets.InvalidationQueueHead);
        h.F.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, head + (1 << 4));  // the slot at IQH is zero: type 0
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, h.F.Unit.QueueError);
        h.F.Unit.WriteRegister(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusIqe);
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, h.F.Unit.QueueError);
        Assert.Equal(head, h.Registers.Get(RegisterOffsets.InvalidationQueueHead));
        h.Reinitialise();
        h.CheckStillTranslates();
    }
}
