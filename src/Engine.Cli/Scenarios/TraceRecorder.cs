using Engine.Control;
using Engine.Diagnostics;
using Engine.Iommu;
using Engine.Trace;

namespace Engine.Cli.Scenarios;

/// <summary>What a recorded run wrote and what its translations came to (replay prints the same).</summary>
internal sealed record TraceSummary(string File, long Records, long Translations, long Faults, long IotlbHits, long IotlbMisses, ulong HpaSum, ulong Checksum);

/// <summary>
/// <c>engine run --record</c>: writes each DMA and KVM operation of the one-thread DMA scenario to a
/// trace before it runs, and runs each DMA as a DMA record means (<see cref="TraceDma"/>), counting
/// every translation result as replay will.
/// </summary>
/// <remarks>
/// <see cref="TraceDma"/> makes the same translations, page requests and retries as
/// <c>DmaTransfer</c> under <see cref="DmaTraffic"/>'s resend loop, so the run's counts are those of
/// the same seed without <c>--record</c> (a test checks it); it moves no bytes, and data never
/// changes what a translation returns.
/// </remarks>
internal sealed class TraceRecorder(DmaRig rig, TraceWriter writer, string file) : IDisposable
{
    private ReplayTally _tally;

    public string File { get; } = file;

    /// <summary>What was tallied so far (a checkpoint carries it; a restored run starts from it).</summary>
    public ReplayTally Tally
    {
        get => _tally;
        set => _tally = value;
    }

    /// <summary>Records written before this recorder took over (a restored run's share before its checkpoint).</summary>
    public long RecordsBefore { get; set; }

    /// <summary>Records written in all.</summary>
    public long Records => RecordsBefore + writer.Records;

    public void Write(in TraceRecord record) => writer.Write(record);

    public void Dma(Device device, DmaTraffic.Counters c, UnitTally metrics, ulong iova, int length, bool write)
    {
        writer.Write(TraceRecord.Dma(rig.IndexOf(device), iova, length, write));
        DmaOutcome o = TraceDma.Run(device, iova, length, write, TranslationRequest.NoPasid, DmaTraffic.MaxPageRequestsPerPage, ref _tally);
        metrics.Add(o.Translations, o.Transferred);
        c.Bytes += o.Transferred;
        c.Translations += o.Translations;
        c.PageRequests += o.PageRequests;
        c.Resent += o.Resent;
        if (o.Faulted)
            c.Faults++;
    }

    /// <summary>Writes the end block; returns what was recorded.</summary>
    public TraceSummary Complete()
    {
        writer.Complete();
        return new TraceSummary(File, Records, _tally.Translations, _tally.Faults, _tally.IotlbHits, _tally.IotlbMisses, _tally.HpaSum, _tally.Checksum);
    }

    public void Dispose() => writer.Dispose();
}
