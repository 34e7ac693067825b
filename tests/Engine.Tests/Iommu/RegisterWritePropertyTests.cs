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
/// IOTLB_REG.IVT/IAIG, FECTL.IP, FSTS.PPF/IQE) — CAP/ECAP/VER never change, PPF is always the OR of
/// the F bits, and a driver that re-initialises the unit afterwards finds it translating correctly.
/// </summary>
public class RegisterWritePropertyTests
{
    /// <summary>One step: a register write, a register read, or a DMA to an unmapped page (a fault to record).</summary>
    private readonly record struct Op(int Kind, int Offset, int Size, ulong Value)
    {
        public override string ToString() => Kind switch
        {
            0 => $"W(0x{Offset:x}, {Size}, 0x{Value:x})",
            1 => $"R(0x{Offset:x}, {Size})",
            _ => $"Fault(page 0x{Value:x})",
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
            Declarations = F.Unit.Registers.Declarations.Values.OrderBy(d => d.Offset).ToArray();
            IotlbCommand = F.Unit.Ecap.IotlbRegisterOffset + 8;
        }

        public UnitFixture F { get; }

        public ulong QueueRegion { get; }

        public RegisterDeclaration[] Declarations { get; }

        public int IotlbCommand { get; }

        public RegisterFile Registers => F.Unit.Registers;

        /// <summary>A known start for each sample: registers at reset, the unit programmed as the driver does.</summary>
        public void Start()
        {
            Registers.Reset();
            F.Unit.FaultRecorder.Reset();
            F.Memory.GetSpan(QueueRegion, 128 * HostMemory.FrameSize).Clear();
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
            if (op.Kind == 2)
            {
                _ = h.F.Translate(op.Value << 12, Access.Write);
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
        }
        h.Reinitialise();
        h.CheckStillTranslates();
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
        Gen<Op> write =
            from o in offset
            from s in size
            from v in anyValue
            from q in iqa
            let value = o == RegisterOffsets.InvalidationQueueAddress ? q
                : o == RegisterOffsets.InvalidationQueueAddress + 4 ? q >> 32
                : v
            select new Op(0, o, s, value);
        Gen<Op> read = Gen.Select(offset, size, (o, s) => new Op(1, o, s, 0));
        Gen<Op> fault = Gen.ULong[0x1000, 0x2000].Select(page => new Op(2, 0, 0, page));
        return Gen.Frequency((8, write), (1, read), (1, fault));
    }

    [Fact]
    public void RandomRegisterAccessesKeepEveryRegisterRuleAndTheUnitTranslating()
    {
        using var h = new Harness();
        Ops(h).Array[1, 40].Sample(ops => Check(h, ops), iter: 300, threads: 1);
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
