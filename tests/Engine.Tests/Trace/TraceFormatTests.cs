using Engine.Control;
using Engine.Paging;
using Engine.Trace;

namespace Engine.Tests.Trace;

public class TraceFormatTests
{
    [Fact]
    public void EveryRecordKindAndTheHeaderSurviveARoundTrip()
    {
        TracePlatform platform = TraceSamples.PagingPlatform() with
        {
            Vms = [new TraceVm("vm", 5, 3, 0, [new TraceMemslot(0, 0, 2UL << 20, PageSize.Size2M)], [new TraceVmMap(0, 512, Access.All)])],
            Domains = [new TraceDomain(TraceDomainKind.Paging, -1, -1), new TraceDomain(TraceDomainKind.Kvm, 0, 0)],
            QemuHits = 7,
            QemuUpdates = 9,
        };
        TraceRecord[] records =
        [
            TraceRecord.Translate(1, 0x1234_5678, Access.Write, 5),
            TraceRecord.Dma(0, 0x2000, 4096, write: true),
            TraceRecord.Dma(1, 0x3000, 100, write: false, pasid: 7),
            TraceRecord.Kvm(0, KvmOperation.Map, 0x10, 512, Access.All),
            TraceRecord.Kvm(0, KvmOperation.Zap, 0x10, 64),
            TraceRecord.Kvm(0, KvmOperation.WriteProtect, 0x20, 1),
            TraceRecord.Kvm(0, KvmOperation.FaultIn, 0x30, 1, Access.Read),
            TraceRecord.PagingMap(0, 0x20_0000, 0x8000_0000, 0x20_0000, Access.ReadWrite),
            TraceRecord.PagingUnmap(0, 0x20_0000, 0x1000),
            TraceRecord.Invalidate(0, InvalidationKind.Global, -1),
            TraceRecord.Invalidate(0, InvalidationKind.PasidPage, 1, 0x40_0000, 9, 3),
            TraceRecord.Attach(1, 1, AttachFlags.AllowWithoutPageRequests),
            TraceRecord.Detach(0, 0),
        ];
        var stream = new MemoryStream();
        using (var writer = new TraceWriter(stream, platform, leaveOpen: true))
        {
            foreach (TraceRecord r in records)
                writer.Write(r);
            writer.Complete();
        }
        using var reader = new TraceReader(new MemoryStream(stream.ToArray()));
        Assert.Equal(TraceFormat.EncodeHeader(platform), TraceFormat.EncodeHeader(reader.Platform));
        Assert.Equal(7UL, reader.Platform.QemuHits);
        Assert.Equal(TraceDomainKind.Kvm, reader.Platform.Domains[1].Kind);
        var read = new List<TraceRecord>();
        while (reader.TryRead(out TraceRecord r))
            read.Add(r);
        Assert.Equal(records, read);
        Assert.False(reader.TryRead(out _), "the end stays the end");
    }

    [Fact]
    public void ABlockHoldsAt64KiBSoALongTraceSpansSeveralAndReadsBackWhole()
    {
        byte[] trace = TraceSamples.Mixed(20_000);
        Assert.True(trace.Length > 3 * TraceFormat.BlockPayloadBytes, $"{trace.Length} bytes");
        List<(long Offset, TraceRecord Record)> records = TraceSamples.ReadAll(trace);
        Assert.Equal(20_000, records.Count(r => r.Record.Kind == TraceRecordKind.Translate));
        Assert.True(records.Select(r => r.Offset).SequenceEqual(records.Select(r => r.Offset).Order()), "offsets grow");
    }

    [Fact]
    public void NotATraceSaysSoAtOffsetZero()
    {
        var e = Assert.Throws<TraceFormatException>(() => new TraceReader(new MemoryStream("hello, this is text"u8.ToArray())));
        Assert.Equal(0, e.Offset);
        Assert.Contains("not an Engine trace", e.Message);
        e = Assert.Throws<TraceFormatException>(() => new TraceReader(new MemoryStream([])));
        Assert.Contains("ENGTRACE", e.Message);
    }

    [Fact]
    public void AnotherVersionIsRefusedNamingBothVersions()
    {
        byte[] trace = TraceSamples.Mixed(10);
        trace[8] = 2;
        var e = Assert.Throws<TraceFormatException>(() => new TraceReader(new MemoryStream(trace)));
        Assert.Equal(8, e.Offset);
        Assert.Contains("version 2", e.Message);
        Assert.Contains($"reads version {TraceFormat.Version}", e.Message);
    }

    [Fact]
    public void ARecordNamingADeviceTheHeaderLacksStopsThereAndNothingAfterItIsHandedOut()
    {
        var stream = new MemoryStream();
        using (var writer = new TraceWriter(stream, TraceSamples.PagingPlatform(), leaveOpen: true))
        {
            writer.Write(TraceRecord.Translate(0, 0x1000, Access.Read));
            writer.Write(TraceRecord.Translate(7, 0x2000, Access.Read));   // the header has two devices
            writer.Write(TraceRecord.Translate(1, 0x3000, Access.Read));
            writer.Complete();
        }
        var seen = new List<(long, TraceRecord)>();
        var e = Assert.Throws<TraceFormatException>(() => TraceSamples.ReadAll(stream.ToArray(), seen));
        Assert.Single(seen);
        Assert.Equal(seen[0].Item1 + 16, e.Offset);
        Assert.Contains("device below 2", e.Message);
        Assert.StartsWith($"offset {e.Offset}: ", e.Message);
    }

    [Fact]
    public void ARecordThePlatformRefusesNamesItsOffsetAndRecord()
    {
        var stream = new MemoryStream();
        using (var writer = new TraceWriter(stream, TraceSamples.PagingPlatform(), leaveOpen: true))
        {
            writer.Write(TraceRecord.PagingMap(0, 0x1000, 0x10_0000, 0x1000, Access.Read));
            writer.Write(TraceRecord.PagingMap(0, 0x1000, 0x20_0000, 0x1000, Access.Read));   // already mapped
            writer.Complete();
        }
        var e = Assert.Throws<TraceFormatException>(() => TraceSamples.Replay(stream.ToArray()));
        Assert.Contains("refused record 2", e.Message);
        Assert.Contains("already mapped", e.Message);
    }

    [Fact]
    public void ACompleteTraceWithBytesAfterTheEndBlockIsRefused()
    {
        byte[] trace = [.. TraceSamples.Mixed(10), 0];
        var e = Assert.Throws<TraceFormatException>(() => TraceSamples.ReadAll(trace));
        Assert.Equal(trace.Length - 1, e.Offset);
        Assert.Contains("end of the file", e.Message);
    }
}
