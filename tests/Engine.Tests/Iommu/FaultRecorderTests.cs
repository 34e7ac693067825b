using System.Runtime.CompilerServices;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>Primary fault logging: FRCD_REG layout, FSTS/FECTL bookkeeping, collapsing, FPD, overflow and concurrency.</summary>
public class FaultRecorderTests
{
    private const int Fro = 0x220;
    private const ulong F = FaultRecordingRegister.FaultBit;
    private static readonly ushort Sid = TranslationRequest.Bdf(0x3A, 2, 1);

    private static readonly ExtendedCapabilityRegister Ecap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields
    {
        Qi = true, IotlbRegisterOffset = 0x500, ScalableMode = true,
    });

    private static CapabilityRegister Cap(int nfr) => CapabilityRegister.Encode(new CapabilityFields
    {
        Nd = 6, Sagaw = 0b0100, Mgaw = 48, FaultRecordingOffset = Fro, NumberOfFaultRegisters = nfr, Psi = true,
    });

    private static (RegisterFile File, FaultRecorder Recorder) Create(int nfr = 4, FaultCollapsing collapsing = FaultCollapsing.SameSource)
    {
        CapabilityRegister cap = Cap(nfr);
        RegisterFile file = DmarRegisters.CreateFile(cap, Ecap);
        return (file, new FaultRecorder(file, cap, collapsing));
    }

    private static FaultRecord Fault(int source, ulong address = 0x1000, FaultReason reason = FaultReason.Read, bool write = false,
        uint pasid = TranslationRequest.NoPasid, bool fpd = false) =>
        new((ushort)source, address, reason, write, pasid, fpd);

    private static ulong Software(RegisterFile file, int offset, int size = 8)
    {
        Assert.Equal(RegisterAccessStatus.Ok, file.Read(offset, size, out ulong value));
        return value;
    }

    private static ulong Fsts(RegisterFile file) => Software(file, RegisterOffsets.FaultStatus, 4);

    private static ulong Fectl(RegisterFile file) => Software(file, RegisterOffsets.FaultEventControl, 4);

    private static void ClearF(RegisterFile file, int index) =>
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(Fro + 16 * index + 8, 8, F));

    [Fact]
    public void FaultRecordingRegisterIsSixteenBytesWithEveryFieldInItsBits()
    {
        Assert.Equal(16, Unsafe.SizeOf<FaultRecordingRegister>());
        var withPasid = FaultRecordingRegister.Encode(new FaultRecord(0xBEEF, 0x1234_5678_9ABC, (FaultReason)0x59, isWrite: false, pasid: 0xABCDE));
        Assert.Equal(0x1234_5678_9000UL, withPasid.Lo);                 // 63:12 FI, 11:0 zero
        Assert.Equal(0xCABC_DE59_8000_BEEFUL, withPasid.Hi);            // F 63, T 62, PV 59:40, FR 39:32, PP 31, SID 15:0
        var write = FaultRecordingRegister.Encode(new FaultRecord(0x0110, 0xFFF, FaultReason.Write, isWrite: true));
        Assert.Equal(0UL, write.Lo);
        Assert.Equal(0x8000_0005_0000_0110UL, write.Hi);                // no PP, no PV, T = 0 for a write
        Assert.Equal((ushort)0xBEEF, withPasid.SourceId);
        Assert.True(withPasid.PasidPresent);
        Assert.Equal(0xABCDEu, withPasid.Pasid);
        Assert.Equal(FaultReason.SmPasidEntryNotPresent, withPasid.Reason);
        Assert.True(withPasid.IsRead);
        Assert.True(withPasid.Fault);
        Assert.False(write.IsRead);
        Assert.Equal(new FaultRecord(0xBEEF, 0x1234_5678_9000, (FaultReason)0x59, false, 0xABCDE), withPasid.Decode());
    }

    [Fact]
    public void ARecordedFaultReadsBackBitByBitThroughTheSoftwareInterface()
    {
        var (file, recorder) = Create();
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(0xBEEF, 0x1234_5678_9ABC, FaultReason.SmPasidEntryNotPresent, pasid: 0xABCDE)));
        Assert.Equal(0x1234_5678_9000UL, Software(file, Fro));
        ulong hi = Software(file, Fro + 8);
        Assert.Equal(0xBEEFUL, hi & 0xFFFF);                            // record bits 79:64 SID
        Assert.Equal(0UL, (hi >> 16) & 0x7FFF);                         // 94:80 reserved
        Assert.Equal(1UL, (hi >> 31) & 1);                              // 95 PP
        Assert.Equal(0x59UL, (hi >> 32) & 0xFF);                        // 103:96 FR
        Assert.Equal(0xABCDEUL, (hi >> 40) & 0xF_FFFF);                 // 123:104 PV
        Assert.Equal(0UL, (hi >> 60) & 3);                              // 125:124 AT
        Assert.Equal(1UL, (hi >> 62) & 1);                              // 126 T: read
        Assert.Equal(1UL, hi >> 63);                                    // 127 F
        Assert.Equal(0xBEEFUL | 1UL << 31, Software(file, Fro + 8, 4)); // the lower dword alone
        Assert.Equal(FaultRecorder.FaultStatusPpf, Fsts(file));          // PPF, FRI = 0, no PFO

        recorder.Record(Fault(0x0110, 0x5000, FaultReason.Write, write: true));
        Assert.Equal(0x8000_0005_0000_0110UL, Software(file, Fro + 16 + 8));
        Assert.Equal(0x5000UL, Software(file, Fro + 16));
    }

    [Fact]
    public void TheRecordIndexAdvancesAndWrapsAtNfr()
    {
        var (file, recorder) = Create(nfr: 4);
        var reports = new List<FaultReport>();
        recorder.Faulted += reports.Add;
        for (int i = 0; i < 4; i++)
        {
            recorder.Record(Fault(0x100 + i));
            Assert.Equal(i, reports[^1].RecordIndex);
            Assert.Equal((ulong)(0x100 + i), Software(file, Fro + 16 * i + 8) & 0xFFFF);
        }
        Assert.Equal(0, recorder.NextRecordIndex);
        Assert.Equal(0UL, (Fsts(file) & FaultRecorder.FaultStatusFriMask) >> 8);    // FRI: the first pending record

        ClearF(file, 0);
        ClearF(file, 1);
        recorder.Record(Fault(0x200));
        recorder.Record(Fault(0x201));
        Assert.Equal(0x200UL, Software(file, Fro + 8) & 0xFFFF);
        Assert.Equal(0x201UL, Software(file, Fro + 16 + 8) & 0xFFFF);
        Assert.Equal(2, recorder.NextRecordIndex);

        // Once every record is cleared, the next fault is the first pending one again: FRI names it.
        for (int i = 0; i < 4; i++)
            ClearF(file, i);
        Assert.Equal(0UL, Fsts(file) & FaultRecorder.FaultStatusPpf);
        recorder.Record(Fault(0x300));
        Assert.Equal(FaultRecorder.FaultStatusPpf | 2UL << FaultRecorder.FaultStatusFriShift, Fsts(file));
        Assert.Equal(new FaultCounters(7, 7, 0, 0, 0), recorder.Counters);
    }

    [Fact]
    public void AFaultThatFindsTheNextRegisterFullSetsPfoAndIsCountedAsOverflow()
    {
        var (file, recorder) = Create(nfr: 4);
        for (int i = 0; i < 4; i++)
            Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(0x100 + i)));
        Assert.Equal(0UL, Fsts(file) & FaultRecorder.FaultStatusPfo);
        Assert.Equal(FaultOutcome.Overflowed, recorder.Record(Fault(0x104)));
        Assert.Equal(FaultRecorder.FaultStatusPfo | FaultRecorder.FaultStatusPpf, Fsts(file));
        Assert.Equal(FaultOutcome.Overflowed, recorder.Record(Fault(0x105)));                // PFO set: dropped at once
        for (int i = 0; i < 4; i++)
            Assert.Equal((0x100UL + (uint)i) | F, Software(file, Fro + 16 * i + 8) & (0xFFFF | F));
        Assert.Equal(new FaultCounters(6, 4, 0, 2, 0), recorder.Counters);
    }

    [Fact]
    public void SoftwareClearingFBitsFreesRegistersAndClearsPpfOnlyWhenAllAreClear()
    {
        var (file, recorder) = Create(nfr: 4);
        recorder.Record(Fault(0x100));
        recorder.Record(Fault(0x101));
        recorder.Record(Fault(0x102));
        ClearF(file, 1);
        Assert.Equal(0UL, Software(file, Fro + 16 + 8) & F);
        Assert.NotEqual(0UL, Fsts(file) & FaultRecorder.FaultStatusPpf);
        // Linux clears F with a 32-bit write of 1 << 31 to the upper half of FRCD_REG[i].hi.
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(Fro + 8 + 4, 4, 1UL << 31));
        Assert.Equal(0UL, Software(file, Fro + 8) & F);
        Assert.NotEqual(0UL, Fsts(file) & FaultRecorder.FaultStatusPpf);
        // Writing 0 to F changes nothing.
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(Fro + 32 + 8, 8, 0));
        Assert.NotEqual(0UL, Software(file, Fro + 32 + 8) & F);
        ClearF(file, 2);
        Assert.Equal(0UL, Fsts(file) & FaultRecorder.FaultStatusPpf);
        // The freed registers take new faults as the index reaches them.
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(0x103)));
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(0x104)));
        Assert.Equal(0x104UL, Software(file, Fro + 8) & 0xFFFF);
    }

    [Fact]
    public void ClearingPfoByWritingOneLetsRecordingResume()
    {
        var (file, recorder) = Create(nfr: 2);
        recorder.Record(Fault(0x100));
        recorder.Record(Fault(0x101));
        Assert.Equal(FaultOutcome.Overflowed, recorder.Record(Fault(0x102)));
        ClearF(file, 0);
        ClearF(file, 1);
        Assert.Equal(FaultRecorder.FaultStatusPfo, Fsts(file));                            // PPF gone, PFO stays
        Assert.Equal(FaultOutcome.Overflowed, recorder.Record(Fault(0x103)));               // still blocked by PFO
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusPfo));
        Assert.Equal(0UL, Fsts(file));
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(0x104)));
        Assert.Equal(0x104UL | F, Software(file, Fro + 8) & (0xFFFF | F));
        Assert.Equal(new FaultCounters(5, 3, 0, 2, 0), recorder.Counters);
    }

    [Fact]
    public void IdenticalRepeatsCollapseIntoThePendingRecord()
    {
        var (file, recorder) = Create(nfr: 4);
        var reports = new List<FaultReport>();
        recorder.Faulted += reports.Add;
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x7000)));
        for (int i = 0; i < 10; i++)
            Assert.Equal(FaultOutcome.Collapsed, recorder.Record(Fault(Sid, 0x7000)));
        Assert.All(reports.Skip(1), r => Assert.Equal(0, r.RecordIndex));
        // Same source, another page: the spec's same-SID rule (QEMU's) collapses it too.
        Assert.Equal(FaultOutcome.Collapsed, recorder.Record(Fault(Sid, 0x9000, FaultReason.Write, write: true)));
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid + 1, 0x7000)));
        Assert.Equal(2, recorder.NextRecordIndex);
        // Once software clears the record, the source records again.
        ClearF(file, 0);
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x7000)));
        Assert.Equal(new FaultCounters(14, 3, 11, 0, 0), recorder.Counters);
    }

    [Fact]
    public void SameFaultCollapsingAbsorbsOnlyExactRepeats()
    {
        var (_, recorder) = Create(nfr: 4, FaultCollapsing.SameFault);
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x7000)));
        Assert.Equal(FaultOutcome.Collapsed, recorder.Record(Fault(Sid, 0x7ABC)));          // same page
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x8000)));           // another page
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x7000, write: true)));
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, 0x7000, pasid: 5)));
        Assert.Equal(FaultOutcome.Collapsed, recorder.Record(Fault(Sid, 0x8000)));          // not only the latest record

        var (_, none) = Create(nfr: 4, FaultCollapsing.None);
        Assert.Equal(FaultOutcome.Recorded, none.Record(Fault(Sid, 0x7000)));
        Assert.Equal(FaultOutcome.Recorded, none.Record(Fault(Sid, 0x7000)));
    }

    [Fact]
    public void FpdSuppressesAQualifiedFaultButNotRootEntryNotPresent()
    {
        var (file, recorder) = Create();
        Assert.Equal(FaultOutcome.Suppressed, recorder.Record(Fault(Sid, reason: FaultReason.Read, fpd: true)));
        Assert.Equal(FaultOutcome.Suppressed, recorder.Record(Fault(Sid, reason: FaultReason.SmSecondLevelPermission, fpd: true)));
        Assert.Equal(0UL, Software(file, Fro + 8));
        Assert.Equal(0UL, Fsts(file));
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid, reason: FaultReason.RootEntryNotPresent, fpd: true)));
        Assert.Equal((ulong)FaultReason.RootEntryNotPresent, (Software(file, Fro + 8) >> 32) & 0xFF);
        Assert.Equal(FaultOutcome.Recorded, recorder.Record(Fault(Sid + 1, reason: FaultReason.Read, fpd: false)));
        Assert.Equal(new FaultCounters(4, 2, 0, 0, 2), recorder.Counters);
    }

    [Fact]
    public void TheQualificationTableDecidesEveryFaultReason()
    {
        foreach (FaultReason reason in Enum.GetValues<FaultReason>())
            Assert.True(FaultQualification.Table.ContainsKey(reason), $"{reason} (0x{(byte)reason:x2}) has no qualification entry.");
        FaultReason[] unqualified =
        [
            FaultReason.None, FaultReason.RootEntryNotPresent, FaultReason.RootTableInvalid, FaultReason.ContextTableInvalid,
            FaultReason.RootEntryReserved, FaultReason.SmRootTableAddressInvalid, FaultReason.SmTtmLegacyWithPasid,
            FaultReason.SmTtmLegacyPageRequest, FaultReason.SmRootEntryAccess, FaultReason.SmRootEntryNotPresent,
            FaultReason.SmRootEntryReserved, FaultReason.SmContextEntryAccess, FaultReason.SmPasidDirectoryAccess,
            FaultReason.SmPasidTableAccess,
        ];
        foreach (FaultReason reason in Enum.GetValues<FaultReason>())
            Assert.True(FaultQualification.IsQualified(reason) != unqualified.Contains(reason), $"{reason} is qualified = {FaultQualification.IsQualified(reason)}.");
        Assert.False(FaultQualification.IsQualified((FaultReason)0x20));                     // interrupt remapping: not in the table
    }

    [Fact]
    public void AnUnmaskedFirstFaultRaisesTheFaultEventAndLeavesIpClear()
    {
        var (file, recorder) = Create();
        int interrupts = 0;
        recorder.FaultEvent += () => Interlocked.Increment(ref interrupts);
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.FaultEventControl, 4, 0));  // IM resets to 1
        recorder.Record(Fault(0x100));
        Assert.Equal(1, interrupts);
        Assert.Equal(0UL, Fectl(file));
        // PPF was already set: not a new interrupt condition.
        recorder.Record(Fault(0x101));
        Assert.Equal(1, interrupts);
        // Software services everything; the next fault is a new condition again.
        ClearF(file, 0);
        ClearF(file, 1);
        recorder.Record(Fault(0x102));
        Assert.Equal(2, interrupts);
    }

    [Fact]
    public void MaskedFaultEventsLeaveIpPendingWithoutAnInterruptUntilImIsCleared()
    {
        var (file, recorder) = Create();
        int interrupts = 0;
        recorder.FaultEvent += () => interrupts++;
        Assert.Equal(FaultRecorder.FaultEventIm, Fectl(file));
        recorder.Record(Fault(0x100));
        Assert.Equal(0, interrupts);
        Assert.Equal(FaultRecorder.FaultEventIm | FaultRecorder.FaultEventIp, Fectl(file));
        // Software cannot clear IP by writing it.
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.FaultEventControl, 4, FaultRecorder.FaultEventIm));
        Assert.Equal(FaultRecorder.FaultEventIm | FaultRecorder.FaultEventIp, Fectl(file));
        // Unmasking sends the held interrupt once and clears IP.
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.FaultEventControl, 4, 0));
        Assert.Equal(1, interrupts);
        Assert.Equal(0UL, Fectl(file));
    }

    [Fact]
    public void ServicingEveryPendingFaultClearsAPendingIpWithoutAnInterrupt()
    {
        var (file, recorder) = Create();
        int interrupts = 0;
        recorder.FaultEvent += () => interrupts++;
        recorder.Record(Fault(0x100));
        recorder.Record(Fault(0x101));
        ClearF(file, 0);
        Assert.NotEqual(0UL, Fectl(file) & FaultRecorder.FaultEventIp);                      // PPF still set
        ClearF(file, 1);
        Assert.Equal(FaultRecorder.FaultEventIm, Fectl(file));
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.FaultEventControl, 4, 0));
        Assert.Equal(0, interrupts);
    }

    [Fact]
    public void EveryFaultIsReportedWithWhatBecameOfIt()
    {
        var (_, recorder) = Create(nfr: 2);
        var reports = new List<FaultReport>();
        recorder.Faulted += reports.Add;
        FaultRecord[] faults =
        [
            Fault(0x100), Fault(0x100), Fault(0x101, fpd: true), Fault(0x102), Fault(0x103), Fault(0x104),
        ];
        foreach (FaultRecord fault in faults)
            recorder.Record(fault);
        Assert.Equal(faults, reports.Select(r => r.Fault));
        Assert.Equal(
            new[] { FaultOutcome.Recorded, FaultOutcome.Collapsed, FaultOutcome.Suppressed, FaultOutcome.Recorded, FaultOutcome.Overflowed, FaultOutcome.Overflowed },
            reports.Select(r => r.Outcome));
        Assert.Equal(new[] { 0, 0, -1, 1, -1, -1 }, reports.Select(r => r.RecordIndex));
        Assert.Equal(new FaultCounters(6, 2, 1, 2, 1), recorder.Counters);
    }

    [Fact]
    public void AFaultFromARequestCarriesItsSourcePasidAndType()
    {
        var write = FaultRecord.FromRequest(new TranslationRequest(Sid, 0xABC_D123, Access.Write, 7), FaultReason.SmWrite, true);
        Assert.Equal(new FaultRecord(Sid, 0xABC_D123, FaultReason.SmWrite, isWrite: true, 7, faultProcessingDisabled: true), write);
        Assert.False(FaultRecord.FromRequest(new TranslationRequest(Sid, 0, Access.Read), FaultReason.Read, false).IsWrite);
        Assert.False(FaultRecord.FromRequest(new TranslationRequest(Sid, 0, Access.ReadWrite), FaultReason.Write, false).IsWrite);  // AtomicOp: T = 1
        Assert.False(FaultRecord.FromRequest(new TranslationRequest(Sid, 0, Access.Read), FaultReason.Read, false).HasPasid);
        Assert.Throws<ArgumentOutOfRangeException>(() => new FaultRecord(Sid, 0, FaultReason.Read, false, pasid: 1u << 20));
    }

    [Fact]
    public void ARegisterPageWithoutTheRecordsCapDescribesIsRefused()
    {
        RegisterFile small = DmarRegisters.CreateFile(Cap(2), Ecap);
        Assert.Throws<ArgumentException>(() => new FaultRecorder(small, Cap(8)));
    }

    [Fact]
    public void HardwareUpdatesClearThenSetUnderTheLockAndReportTheOldValue()
    {
        var (file, _) = Create();
        file.SetByHardware(RegisterOffsets.FaultStatus, 0b1_0001);
        ulong after = file.UpdateByHardware(RegisterOffsets.FaultStatus, clear: 0b1, set: 0b10, out ulong before);
        Assert.Equal(0b1_0001UL, before);
        Assert.Equal(0b1_0010UL, after);
        Assert.Equal(after, file.Get(RegisterOffsets.FaultStatus));
        Assert.Throws<ArgumentException>(() => file.UpdateByHardware(0x7FC, 0, 1, out _));
    }

    [Fact]
    public async Task EightThreadsRecordingThousandsOfFaultsKeepExactCounters()
    {
        const int Threads = 8, PerThread = 5000;
        var (file, recorder) = Create(nfr: 8);
        var tally = new long[4];
        recorder.Faulted += r => Interlocked.Increment(ref tally[(int)r.Outcome]);
        int interrupts = 0;
        recorder.FaultEvent += () => Interlocked.Increment(ref interrupts);
        file.Write(RegisterOffsets.FaultEventControl, 4, 0);
        using var stop = new CancellationTokenSource();

        // The driver: clears the F bits it sees set, then PFO, as Linux's dmar_fault does. It runs on its own
        // thread and also, like an interrupt handler landing on any CPU, on the recording threads.
        void Service()
        {
            for (int i = 0; i < recorder.RecordCount; i++)
            {
                if ((Software(file, recorder.HiOffset(i)) & F) != 0)
                    file.Write(recorder.HiOffset(i) + 4, 4, 1UL << 31);
            }
            file.Write(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusPfo);
        }
        Task driver = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                Service();
        }, TestContext.Current.CancellationToken);
        long expectedSuppressed = 0;
        Task[] workers = new Task[Threads];
        for (int t = 0; t < Threads; t++)
        {
            int thread = t;
            workers[t] = Task.Run(() =>
            {
                var random = new Random(1234 + thread);
                long suppressed = 0;
                for (int n = 0; n < PerThread; n++)
                {
                    bool fpd = random.Next(4) == 0;
                    FaultReason reason = random.Next(3) == 0 ? FaultReason.RootEntryNotPresent : FaultReason.Read;
                    if (fpd && reason == FaultReason.Read)
                        suppressed++;
                    recorder.Record(Fault(random.Next(32), (ulong)random.Next(1 << 20) << 12, reason, fpd: fpd));
                    if (n % 16 == 15)
                        Service();
                }
                Interlocked.Add(ref expectedSuppressed, suppressed);
            }, TestContext.Current.CancellationToken);
        }
        await Task.WhenAll(workers);
        await stop.CancelAsync();
        await driver;

        FaultCounters c = recorder.Counters;
        Assert.Equal(Threads * PerThread, c.Total);
        Assert.Equal(c.Total, c.Recorded + c.Collapsed + c.Overflowed + c.Suppressed);
        Assert.Equal(expectedSuppressed, c.Suppressed);
        Assert.Equal(new[] { c.Recorded, c.Collapsed, c.Overflowed, c.Suppressed }, tally);
        Assert.True(c.Recorded > Threads * PerThread / 100, $"Only {c.Recorded} faults were recorded: the driver hardly ever freed a register ({c}).");
        Assert.InRange(interrupts, 1, (int)c.Recorded);
        // PPF is the OR of the F bits once everything has settled.
        bool anyF = Enumerable.Range(0, recorder.RecordCount).Any(i => recorder.ReadRecord(i).Fault);
        Assert.Equal(anyF, (Fsts(file) & FaultRecorder.FaultStatusPpf) != 0);
        // No record was torn: each one written holds a fault some thread submitted.
        for (int i = 0; i < recorder.RecordCount; i++)
        {
            FaultRecordingRegister r = recorder.ReadRecord(i);
            if (r.Hi == 0)
                continue;
            Assert.True(r.SourceId < 32 && r.Reason is FaultReason.Read or FaultReason.RootEntryNotPresent && r.IsRead && !r.PasidPresent, $"FRCD_REG[{i}] holds {r}.");
        }
    }
}
