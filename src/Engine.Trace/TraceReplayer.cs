using System.Diagnostics;
using Engine.Control;
using Engine.Memory;

namespace Engine.Trace;

/// <summary>How to replay.</summary>
/// <param name="Threads">Translating threads (1: exactly the recorded order).</param>
/// <param name="IotlbSets">Overrides every IOMMU's IOTLB sets (null: the header's).</param>
/// <param name="Batched">Translate runs of translate records with <c>DmarUnit.TranslateBatch</c> (the batch walker walks the misses; see <see cref="BatchTranslator"/>).</param>
/// <param name="BatchWalker">With <paramref name="Batched"/>: the batch walker of the replay's units; null: the process default.</param>
public sealed record ReplayOptions(int Threads = 1, int? IotlbSets = null, bool Batched = false, Engine.Paging.BatchWalkerKind? BatchWalker = null);

/// <summary>What a replay came to.</summary>
public sealed record ReplayReport(
    string Source,
    int Threads,
    int IotlbSets,
    long Records,
    long Translations,
    long Faults,
    long IotlbHits,
    long IotlbMisses,
    ulong HpaSum,
    ulong Checksum,
    long DmaOperations,
    long DmaFaults,
    long ControlOperations,
    long Walks,
    double Seconds,
    double RecordsPerSecond,
    double TranslationsPerSecond,
    double IotlbHitRate,
    ulong? QemuHits,
    ulong? QemuUpdates,
    double? QemuHitRate,
    bool Batched = false,
    string? BatchWalker = null);

/// <summary>
/// Replays a trace: builds the header's platform, then applies every record in order. With one
/// thread it is the recorded run again, result for result. With more, runs of translation and DMA
/// records between two control records are split among the threads (each takes a contiguous
/// share), and every control record waits for them and runs alone.
/// </summary>
/// <remarks>
/// Constant memory: one block of the file and, with several threads, one batch of decoded records.
/// The single-threaded loop allocates nothing per record.
/// </remarks>
public static class TraceReplayer
{
    /// <summary>Records one batch holds when several threads replay.</summary>
    public const int BatchRecords = 1 << 16;

    /// <summary>Replays the trace in <paramref name="stream"/>.</summary>
    /// <exception cref="TraceFormatException">A bad file or a record the platform refused; the message names the offset.</exception>
    public static ReplayReport Replay(Stream stream, ReplayOptions? options = null, Action<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= new ReplayOptions();
        if (options.Threads < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "Threads must be at least 1.");
        using var reader = new TraceReader(stream, leaveOpen: true);
        using ReplayRig rig = ReplayRig.Build(reader.Platform, options.IotlbSets, options.BatchWalker);
        long walksBefore = rig.Iommus.Sum(i => i.Unit.IotlbMisses);
        var counts = new Counts();
        long length = stream.CanSeek ? stream.Length : 0;
        var clock = Stopwatch.StartNew();
        if (options.Threads == 1 && options.Batched)
            ReplayOne(reader, rig, new BatchTranslator.Sink(new BatchTranslator(rig)), ref counts, length, progress);
        else if (options.Threads == 1)
            ReplayOne(reader, rig, new ReplayRig.TranslateSink(rig), ref counts, length, progress);
        else
            ReplayMany(reader, rig, options.Threads, options.Batched, ref counts, length, progress);
        double seconds = clock.Elapsed.TotalSeconds;
        long walks = rig.Iommus.Sum(i => i.Unit.IotlbMisses) - walksBefore;
        ReplayTally t = counts.Tally;
        TracePlatform p = reader.Platform;
        bool imported = p.QemuHits + p.QemuUpdates > 0;
        return new ReplayReport(
            p.Source, options.Threads, options.IotlbSets ?? (p.Iommus.Count > 0 ? p.Iommus[0].IotlbSets : 0),
            reader.RecordsRead, t.Translations, t.Faults, t.IotlbHits, t.IotlbMisses, t.HpaSum, t.Checksum,
            counts.DmaOperations, counts.DmaFaults, counts.ControlOperations, walks, seconds,
            seconds > 0 ? reader.RecordsRead / seconds : 0, seconds > 0 ? t.Translations / seconds : 0,
            t.Translations == 0 ? 0 : (double)t.IotlbHits / t.Translations,
            imported ? p.QemuHits : null, imported ? p.QemuUpdates : null,
            imported ? (double)p.QemuHits / (p.QemuHits + p.QemuUpdates) : null,
            options.Batched, options.Batched && rig.Iommus.Count > 0 ? Engine.Paging.BatchWalkerKinds.Name(rig.Iommus[0].Unit.BatchWalker.Kind) : null);
    }

    private struct Counts
    {
        public ReplayTally Tally;
        public long DmaOperations, DmaFaults, ControlOperations;
    }

    private static void ReplayOne<TSink>(TraceReader reader, ReplayRig rig, TSink sink, ref Counts counts, long length, Action<double>? progress)
        where TSink : struct, ITranslateSink, ITallySink
    {
        long nextProgress = 1 << 20;
        try
        {
            while (true)
            {
                reader.ReadTranslates(ref sink);
                if (!reader.TryRead(out TraceRecord r))
                    break;
                if (r.Kind == TraceRecordKind.Translate)
                    rig.Translate(r, ref counts.Tally);
                else
                    ApplyOther(reader, rig, r, ref counts);
                if (progress is not null && length > 0 && reader.RecordsRead >= nextProgress)
                {
                    nextProgress = reader.RecordsRead + (1 << 20);
                    progress((double)reader.BytesRead / length);
                }
            }
        }
        finally
        {
            counts.Tally.Add(sink.Result);
        }
    }

    /// <summary>
    /// Replays the records of <paramref name="reader"/> on <paramref name="rig"/> (built from the same
    /// header) on this thread, adding their results to <paramref name="tally"/>: what
    /// <see cref="Replay"/> does after building the platform, for callers that keep one platform
    /// over several traces (the replay benchmark).
    /// </summary>
    /// <returns>Records applied.</returns>
    public static long Run(TraceReader reader, ReplayRig rig, ref ReplayTally tally)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(rig);
        var counts = new Counts { Tally = tally };
        long before = reader.RecordsRead;
        ReplayOne(reader, rig, new ReplayRig.TranslateSink(rig), ref counts, 0, null);
        tally = counts.Tally;
        return reader.RecordsRead - before;
    }

    private static void ApplyOther(TraceReader reader, ReplayRig rig, in TraceRecord r, ref Counts counts)
    {
        try
        {
            DmaOutcome o = rig.Apply(r, ref counts.Tally);
            if (r.Kind == TraceRecordKind.Dma)
            {
                counts.DmaOperations++;
                if (o.Faulted)
                    counts.DmaFaults++;
            }
            else
            {
                counts.ControlOperations++;
            }
        }
        catch (Exception e) when (e is EngineException or ArgumentException or InvalidOperationException or HostMemoryExhaustedException)
        {
            throw new TraceFormatException(reader.RecordOffset, $"the platform refused record {reader.RecordsRead} ({r}): {e.Message}");
        }
    }

    private static void ReplayMany(TraceReader reader, ReplayRig rig, int threads, bool batched, ref Counts counts, long length, Action<double>? progress)
    {
        var batch = new TraceRecord[BatchRecords];
        var shares = new Counts[threads];
        int n = 0;
        while (true)
        {
            bool more = reader.TryRead(out TraceRecord r);
            bool control = more && r.Kind is not (TraceRecordKind.Translate or TraceRecordKind.Dma);
            if (more && !control)
                batch[n++] = r;
            if (n == batch.Length || control || !more)
            {
                if (n > 0)
                {
                    RunBatch(rig, batch, n, shares, batched);
                    n = 0;
                    if (progress is not null && length > 0)
                        progress((double)reader.BytesRead / length);
                }
                if (control)
                    ApplyOther(reader, rig, r, ref counts);
                if (!more)
                    break;
            }
        }
        foreach (Counts s in shares)
        {
            counts.Tally.Add(s.Tally);
            counts.DmaOperations += s.DmaOperations;
            counts.DmaFaults += s.DmaFaults;
        }
    }

    // A batch holds translate and DMA records only, which the reader has checked already: the
    // platform cannot refuse them, so no error needs an offset here.
    private static void RunBatch(ReplayRig rig, TraceRecord[] batch, int n, Counts[] shares, bool batched)
    {
        int threads = shares.Length;
        int each = (n + threads - 1) / threads;
        Parallel.For(0, Math.Min(threads, (n + each - 1) / each), new ParallelOptions { MaxDegreeOfParallelism = threads }, w =>
        {
            var local = new Counts();
            BatchTranslator? translator = batched ? new BatchTranslator(rig) : null;
            int end = Math.Min(n, (w + 1) * each);
            for (int i = w * each; i < end; i++)
            {
                ref readonly TraceRecord r = ref batch[i];
                if (r.Kind == TraceRecordKind.Translate)
                {
                    if (translator is null)
                        rig.Translate(r, ref local.Tally);
                    else
                        translator.Add(r.Target, r.Address, (Engine.Paging.Access)r.Code, r.Pasid, ref local.Tally);
                }
                else
                {
                    translator?.Flush(ref local.Tally);
                    local.DmaOperations++;
                    if (rig.Apply(r, ref local.Tally).Faulted)
                        local.DmaFaults++;
                }
            }
            translator?.Flush(ref local.Tally);
            shares[w].Tally.Add(local.Tally);
            shares[w].DmaOperations += local.DmaOperations;
            shares[w].DmaFaults += local.DmaFaults;
        });
    }
}
