using CsCheck;
using Engine.Iommu;
using Engine.Paging;
using FaultOutcome = Engine.Iommu.FaultOutcome;

namespace Engine.Tests.Iommu;

/// <summary>
/// The page-request queue and primary fault logging driven past overflow by random sequences of
/// hardware events and software servicing, each step checked against a model of the spec: overflow
/// sets PRS.PRO / FSTS.PFO, and every request or fault is either kept where software can read it or
/// counted as dropped — nothing disappears silently, and nothing throws.
/// </summary>
public class OverflowPropertyTests
{
    // ---- Page-request queue ----------------------------------------------------------------------

    /// <summary>0: n requests arrive; 1: software consumes n of them itself (reads, advances PQH); 2: DrainPageRequests; 3: software clears PRO.</summary>
    private readonly record struct PrqOp(int Kind, int Count, ulong Seed)
    {
        public override string ToString() => Kind switch
        {
            0 => $"Arrive({Count}, seed {Seed})",
            1 => $"Consume({Count})",
            2 => "Drain",
            _ => "ClearPro",
        };
    }

    private static readonly ushort OtherSid = TranslationRequest.Bdf(0x3B, 0, 0);  // no context: refused

    private static PageRequest RandomRequest(Random rng) => new(
        rng.Next(16) == 0 ? OtherSid : UnitFixture.Sid,
        (ulong)rng.NextInt64(0, 1L << 40) << 12,
        Read: rng.Next(2) == 0, Write: rng.Next(2) == 0, Execute: false, LastInGroup: rng.Next(2) == 0,
        GroupIndex: (ushort)rng.Next(512),
        Pasid: rng.Next(4) == 0 ? 0 : TranslationRequest.NoPasid);  // the fixture's device has PASID 0 only

    private static void CheckPageRequestQueue(UnitFixture f, ulong queue, PrqOp[] ops)
    {
        const int Slots = 4096 / PageRequest.Size, Capacity = Slots - 1;  // tail == head is empty
        f.Unit.EnablePageRequestQueue(queue);
        f.Unit.WriteRegister(RegisterOffsets.PageRequestStatus, 4, 3);  // PPR and PRO clear
        var model = new Queue<PageRequest>();
        long queuedBefore = f.Unit.PageRequests, overflowsBefore = f.Unit.PageRequestOverflows;
        long queued = 0, overflowed = 0, delivered = 0;
        bool pro = false, ppr = false;
        foreach (PrqOp op in ops)
        {
            switch (op.Kind)
            {
                case 0:
                    var rng = new Random((int)op.Seed);
                    for (int i = 0; i < op.Count; i++)
                    {
                        PageRequest request = RandomRequest(rng);
                        PageRequestStatus status = f.Unit.SubmitPageRequest(request);
                        PageRequestStatus expected = request.SourceId == OtherSid ? PageRequestStatus.Refused
                            : model.Count == Capacity ? PageRequestStatus.Overflow
                            : PageRequestStatus.Queued;
                        Assert.Equal(expected, status);
                        if (status == PageRequestStatus.Queued)
                        {
                            model.Enqueue(request);
                            queued++;
                            ppr = true;
                        }
                        else if (status == PageRequestStatus.Overflow)
                        {
                            overflowed++;
                            pro = true;
                        }
                    }
                    break;
                case 1:
                    // The driver's own loop: read descriptors at PQH, then move PQH past them.
                    int n = Math.Min(op.Count, model.Count);
                    ulong head = f.Unit.Registers.Get(RegisterOffsets.PageRequestQueueHead) >> 5;
                    for (int i = 0; i < n; i++)
                    {
                        ulong at = queue + ((head + (ulong)i) % Slots) * PageRequest.Size;
                        Assert.Equal(model.Dequeue(), PageRequest.Decode(f.Memory.ReadEntry(at), f.Memory.ReadEntry(at + 8)));
                        delivered++;
                    }
                    Assert.Equal(RegisterAccessStatus.Ok, f.Unit.WriteRegister(RegisterOffsets.PageRequestQueueHead, 8, ((head + (ulong)n) % Slots) << 5));
                    break;
                case 2:
                    IReadOnlyList<PageRequest> drained = f.Unit.DrainPageRequests();
                    Assert.Equal(model.ToArray(), drained);
                    delivered += model.Count;
                    model.Clear();
                    ppr = false;
                    break;
                default:
                    f.Unit.WriteRegister(RegisterOffsets.PageRequestStatus, 4, 2);
                    pro = false;
                    break;
            }
            ulong prs = f.Unit.Registers.Get(RegisterOffsets.PageRequestStatus);
            Assert.Equal(pro, (prs & 2) != 0);
            Assert.Equal(ppr, (prs & 1) != 0);
            ulong pqh = f.Unit.Registers.Get(RegisterOffsets.PageRequestQueueHead) >> 5;
            ulong pqt = f.Unit.Registers.Get(RegisterOffsets.PageRequestQueueTail) >> 5;
            Assert.Equal((ulong)model.Count, (pqt + Slots - pqh) % Slots);
            // Nothing lost silently: every request queued is delivered or still pending, every other one counted.
            Assert.Equal(queued, f.Unit.PageRequests - queuedBefore);
            Assert.Equal(overflowed, f.Unit.PageRequestOverflows - overflowsBefore);
            Assert.Equal(queued, delivered + model.Count);
        }
    }

    [Fact]
    public void ThePageRequestQueueOverflowsSetsProAndLosesNothingElse()
    {
        using var f = new UnitFixture(scalable: true);
        ulong queue = f.Memory.AllocateFrame();
        Gen<PrqOp> op = Gen.Frequency(
            (5, Gen.Select(Gen.Int[1, 140], Gen.ULong, (n, seed) => new PrqOp(0, n, seed))),
            (2, Gen.Int[1, 140].Select(n => new PrqOp(1, n, 0))),
            (1, Gen.Const(new PrqOp(2, 0, 0))),
            (1, Gen.Const(new PrqOp(3, 0, 0))));
        op.Array[1, 12].Sample(ops => CheckPageRequestQueue(f, queue, ops), iter: 150, threads: 1);
    }

    // ---- Fault recording -------------------------------------------------------------------------

    /// <summary>0: a fault; 1: software clears F of record Index; 2: clears PFO; 3: sets FECTL.IM to Flag; 4: clears every F and PFO.</summary>
    private readonly record struct FaultOp(int Kind, int Index, bool Flag, FaultRecord Fault)
    {
        public override string ToString() => Kind switch
        {
            0 => $"Fault(sid {Fault.SourceId:x}, 0x{Fault.Address:x}, {Fault.Reason}, {(Fault.IsWrite ? "W" : "R")}, pasid {Fault.Pasid:x}, fpd {Fault.FaultProcessingDisabled})",
            1 => $"ClearF({Index}, {(Flag ? "32-bit" : "64-bit")})",
            2 => "ClearPfo",
            3 => $"Im({Flag})",
            _ => "ClearAll",
        };
    }

    /// <summary>The spec's fault logic, step by step (see <see cref="FaultRecorder"/>'s remarks), as an independent model.</summary>
    private sealed class FaultModel(int records, FaultCollapsing collapsing)
    {
        public FaultRecordingRegister?[] Pending { get; } = new FaultRecordingRegister?[records];
        public bool Pfo { get; set; }
        public int Fri { get; set; }
        public int Next { get; set; }
        public bool Im { get; set; } = true;
        public bool Ip { get; set; }
        public int Events { get; set; }
        public long Recorded, Collapsed, Overflowed, Suppressed;

        public bool Ppf => Pending.Any(p => p is not null);

        public FaultOutcome Record(in FaultRecord fault)
        {
            if (fault.FaultProcessingDisabled && FaultQualification.IsQualified(fault.Reason))
            {
                Suppressed++;
                return FaultOutcome.Suppressed;
            }
            if (Pfo)
            {
                Overflowed++;
                return FaultOutcome.Overflowed;
            }
            FaultRecordingRegister record = FaultRecordingRegister.Encode(fault);
            foreach (FaultRecordingRegister? p in Pending)
            {
                bool absorbs = p is { } pending && collapsing switch
                {
                    FaultCollapsing.SameSource => pending.SourceId == record.SourceId,
                    FaultCollapsing.SameFault => pending == record,
                    _ => false,
                };
                if (absorbs)
                {
                    Collapsed++;
                    return FaultOutcome.Collapsed;
                }
            }
            bool conditionBefore = Pfo || Ppf;
            if (Pending[Next] is not null)
            {
                Pfo = true;
                Overflowed++;
                return FaultOutcome.Overflowed;
            }
            if (!Ppf)
                Fri = Next;
            Pending[Next] = record;
            Next = (Next + 1) % Pending.Length;
            Recorded++;
            if (!conditionBefore)
                RaiseCondition();
            return FaultOutcome.Recorded;
        }

        // A new interrupt condition: with IM clear the event goes out at once, otherwise IP holds it.
        private void RaiseCondition()
        {
            if (Im)
                Ip = true;
            else
                Events++;
        }

        public void Serviced()
        {
            if (!Pfo && !Ppf)
                Ip = false;
        }

        public void SetIm(bool im)
        {
            if (Im && !im && Ip)
            {
                Events++;
                Ip = false;
            }
            Im = im;
        }
    }

    private static void CheckFaultRecording(int records, FaultCollapsing collapsing, FaultOp[] ops)
    {
        CapabilityRegister cap = CapabilityRegister.Encode(new CapabilityFields
        {
            Nd = 6, Sagaw = 0b1100, Mgaw = 57, FaultRecordingOffset = 0x400, NumberOfFaultRegisters = records, Psi = true, Sllps = 3, Mamv = 18,
        });
        RegisterFile file = DmarRegisters.CreateFile(cap, UnitFixture.ServerEcap);
        using var recorder = new FaultRecorder(file, cap, collapsing);
        int events = 0;
        recorder.FaultEvent += () => events++;
        var model = new FaultModel(records, collapsing);
        foreach (FaultOp op in ops)
        {
            switch (op.Kind)
            {
                case 0:
                    Assert.Equal(model.Record(op.Fault), recorder.Record(op.Fault));
                    break;
                case 1:
                    int i = op.Index % records;
                    // Linux writes the upper half of FRCD.hi as a 32-bit access; a 64-bit write of F alone does the same.
                    Assert.Equal(RegisterAccessStatus.Ok, op.Flag
                        ? file.Write(recorder.HiOffset(i) + 4, 4, 1UL << 31)
                        : file.Write(recorder.HiOffset(i), 8, DmarRegisters.FaultRecordF));
                    model.Pending[i] = null;
                    model.Serviced();
                    break;
                case 2:
                    file.Write(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusPfo);
                    model.Pfo = false;
                    model.Serviced();
                    break;
                case 3:
                    file.Write(RegisterOffsets.FaultEventControl, 4, op.Flag ? FaultRecorder.FaultEventIm : 0);
                    model.SetIm(op.Flag);
                    break;
                default:
                    for (int r = 0; r < records; r++)
                        file.Write(recorder.HiOffset(r), 8, DmarRegisters.FaultRecordF);
                    file.Write(RegisterOffsets.FaultStatus, 4, DmarRegisters.FaultStatusWriteOneToClear);
                    Array.Clear(model.Pending);
                    model.Pfo = false;
                    model.Serviced();
                    break;
            }

            ulong fsts = file.Get(RegisterOffsets.FaultStatus);
            Assert.Equal(model.Pfo, (fsts & FaultRecorder.FaultStatusPfo) != 0);
            Assert.Equal(model.Ppf, (fsts & FaultRecorder.FaultStatusPpf) != 0);
            if (model.Ppf)
                Assert.Equal(model.Fri, (int)((fsts & FaultRecorder.FaultStatusFriMask) >> FaultRecorder.FaultStatusFriShift));
            for (int r = 0; r < records; r++)
            {
                FaultRecordingRegister actual = recorder.ReadRecord(r);
                Assert.Equal(model.Pending[r] is not null, actual.Fault);
                if (model.Pending[r] is { } want)
                    Assert.Equal(want, actual);
            }
            Assert.Equal(model.Next, recorder.NextRecordIndex);
            ulong fectl = file.Get(RegisterOffsets.FaultEventControl);
            Assert.Equal(model.Im, (fectl & FaultRecorder.FaultEventIm) != 0);
            Assert.Equal(model.Ip, (fectl & FaultRecorder.FaultEventIp) != 0);
            Assert.Equal(model.Events, events);
            // Every fault is accounted for by exactly one outcome.
            FaultCounters counters = recorder.Counters;
            Assert.Equal(new FaultCounters(model.Recorded + model.Collapsed + model.Overflowed + model.Suppressed,
                model.Recorded, model.Collapsed, model.Overflowed, model.Suppressed), counters);
        }
    }

    private static readonly FaultReason[] Reasons =
        [FaultReason.RootEntryNotPresent, FaultReason.ContextEntryNotPresent, FaultReason.Write, FaultReason.Read,
         FaultReason.SmSecondLevelPermission, FaultReason.AddressBeyondMgaw, FaultReason.SmPasidEntryNotPresent];

    private static readonly Gen<FaultRecord> Faults =
        from sid in Gen.UShort[0, 3]
        from page in Gen.ULong[0, 3]
        from reason in Gen.Int[0, Reasons.Length - 1]
        from write in Gen.Bool
        from pasid in Gen.Frequency((3, Gen.Const(TranslationRequest.NoPasid)), (1, Gen.UInt[0, 2]))
        from fpd in Gen.Frequency((5, Gen.Const(false)), (1, Gen.Const(true)))
        select new FaultRecord(sid, page << 12 | 0x123, Reasons[reason], write, pasid, fpd);

    private static readonly Gen<FaultOp> FaultOps = Gen.Frequency(
        (8, Faults.Select(fault => new FaultOp(0, 0, false, fault))),
        (3, Gen.Select(Gen.Int[0, 255], Gen.Bool, (i, half) => new FaultOp(1, i, half, default))),
        (1, Gen.Const(new FaultOp(2, 0, false, default))),
        (1, Gen.Bool.Select(im => new FaultOp(3, 0, im, default))),
        (1, Gen.Const(new FaultOp(4, 0, false, default))));

    [Theory]
    [InlineData(FaultCollapsing.SameSource)]
    [InlineData(FaultCollapsing.SameFault)]
    [InlineData(FaultCollapsing.None)]
    public void FaultRecordingPastOverflowFollowsTheSpecStepByStep(FaultCollapsing collapsing)
    {
        Gen.Select(Gen.Int[1, 6], FaultOps.Array[1, 60])
            .Sample((records, ops) => CheckFaultRecording(records, collapsing, ops), iter: 300, threads: 1);
    }
}
