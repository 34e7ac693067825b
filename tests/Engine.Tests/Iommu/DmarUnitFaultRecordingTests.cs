using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

public class DmarUnitFaultRecordingTests
{
    [Fact]
    public void AFaultingTranslationIsRecordedWithItsSourceAddressAndReason()
    {
        using var f = new UnitFixture(scalable: true);
        var reports = new List<FaultReport>();
        f.Unit.FaultRecorder.Faulted += reports.Add;
        TranslationResult r = f.Translate(0x1234_5678, Access.Write);
        Assert.Equal(FaultReason.SmSecondLevelPermission, r.Fault);
        FaultRecordingRegister record = f.Unit.FaultRecorder.ReadRecord(0);
        Assert.True(record.Fault);
        Assert.Equal(UnitFixture.Sid, record.SourceId);
        Assert.Equal(0x1234_5000UL, record.Address);
        Assert.Equal(FaultReason.SmSecondLevelPermission, record.Reason);
        Assert.Single(reports);
        Assert.Equal(FaultOutcome.Recorded, reports[0].Outcome);
        ulong fsts = f.Unit.Registers.Get(RegisterOffsets.FaultStatus);
        Assert.Equal(FaultRecorder.FaultStatusPpf, fsts & FaultRecorder.FaultStatusPpf);
    }

    [Fact]
    public void FaultProcessingDisabledSuppressesTheRecordButCountsIt()
    {
        using var f = new UnitFixture(scalable: false);
        ushort quiet = TranslationRequest.Bdf(0x3A, 7, 0);
        f.Tables.SetContext(quiet, ContextEntry.Create(f.Vm.Tdp.RootHpa, 2, 9, fpd: true));
        Assert.Equal(FaultReason.Read, f.Translate(0x7000, sid: quiet).Fault);
        Assert.Equal(1, f.Unit.FaultRecorder.Counters.Suppressed);
        Assert.Equal(0UL, f.Unit.Registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusPpf);
    }

    [Fact]
    public void CountersKeepTheTrueTotalWhenTheRegistersOverflow()
    {
        using var f = new UnitFixture(scalable: true);
        for (int bus = 0; bus < 40; bus++)
            f.Translate(0, sid: TranslationRequest.Bdf(bus, 1, 0));
        FaultCounters c = f.Unit.FaultRecorder.Counters;
        Assert.Equal(40, c.Total);
        Assert.Equal(8, c.Recorded);   // the server fixture has 8 fault-recording registers
        Assert.Equal(40, f.Unit.Faults);
        Assert.True(c.Overflowed > 0);
    }
}
