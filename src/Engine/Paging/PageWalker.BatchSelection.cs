using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Memory;

namespace Engine.Paging;

// The batch walkers' capabilities and the measurement that ranks them. No state: which walker a
// batch uses is configuration, passed down with each call (DmarUnitOptions.BatchWalker,
// PlatformOptions.BatchWalker, engine bench --batch-walker); the process-wide default — the
// ENGINE_BATCH_WALKER variable, else this measurement, made once and cached — lives above this
// layer (Iommu's BatchWalkerDefault). Control path: allocation and exceptions are fine here.
internal static partial class PageWalker
{
    /// <summary>
    /// The environment variable that sets the process's default batch walker: <c>interleaved</c>,
    /// <c>avx2</c>, <c>avx512</c> or <c>avx512-loads</c> (<c>auto</c> or unset: measure).
    /// </summary>
    public const string BatchWalkerVariable = "ENGINE_BATCH_WALKER";

    // The measurement's working set: 64 walks per leaf table, one per cache line, so 65,536 walks
    // touch 4 MiB of leaf entries — more than the 1–2 MiB L2 of current x86 cores, so the time
    // reflects how well a walker overlaps its misses — in 1,024 leaf tables (4 MiB of frames, built
    // in about a millisecond). Sized so that it ranks the candidates as 1 to 32 GiB of real 4K-leaf
    // tables do, L3-resident and DRAM-bound alike (RESULTS.md, "Figures behind constants").
    private const int MeasuredWalks = 1 << 16;
    private const int WalksPerLeafTable = 64;
    private const int MeasuredRounds = 3;

    /// <summary>Whether <paramref name="kind"/> can run in this process (CPU features and the runtime's <c>DOTNET_Enable*</c> settings).</summary>
    public static bool IsBatchWalkerSupported(BatchWalkerKind kind) => kind switch
    {
        BatchWalkerKind.Interleaved => InterleavedBatch.IsSupported,
        BatchWalkerKind.Avx2Gather => Gather4Batch.IsSupported,
        BatchWalkerKind.Avx512Gather => Gather8Batch.IsSupported,
        BatchWalkerKind.Avx512Loads => Loads8Batch.IsSupported,
        _ => false,
    };

    /// <summary>The batch walkers this process can run, in <see cref="BatchWalkerKinds.All"/> order.</summary>
    public static IReadOnlyList<BatchWalkerKind> SupportedBatchWalkers => [.. BatchWalkerKinds.All.Where(IsBatchWalkerSupported)];

    internal static string SupportedBatchWalkerNames => string.Join(", ", SupportedBatchWalkers.Select(k => k.Name()));

    /// <summary>
    /// <paramref name="kind"/> as a forced selection, after checking that it is a walker and runs here.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a <see cref="BatchWalkerKind"/>.</exception>
    /// <exception cref="NotSupportedException">This CPU (or the runtime's ISA settings) does not support <paramref name="kind"/>; the message lists what it supports.</exception>
    public static BatchWalkerSelection ForcedBatchWalker(BatchWalkerKind kind)
    {
        if (!BatchWalkerKinds.All.Contains(kind))
            throw new ArgumentOutOfRangeException(nameof(kind), kind, $"No batch walker has the value {(int)kind}; known: {BatchWalkerKinds.Names}.");
        if (!IsBatchWalkerSupported(kind))
            throw new NotSupportedException($"The {kind.Name()} batch walker was asked for, but this CPU (or the runtime's DOTNET_Enable* settings) does not support it; supported here: {SupportedBatchWalkerNames}.");
        return new BatchWalkerSelection(kind, BatchWalkerSelectionReason.Forced, []);
    }

    /// <summary>The walker called <paramref name="name"/> (case-insensitive), forced; null for <c>auto</c> (use the default).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> names no walker; the message lists the names and what this CPU supports.</exception>
    /// <exception cref="NotSupportedException">This CPU does not support the walker named.</exception>
    public static BatchWalkerSelection? ParseBatchWalker(string? name)
    {
        if (string.Equals(name?.Trim(), BatchWalkerKinds.Auto, StringComparison.OrdinalIgnoreCase))
            return null;
        if (!BatchWalkerKinds.TryParse(name, out BatchWalkerKind kind))
            throw new ArgumentException($"'{name}' names no batch walker; known: {BatchWalkerKinds.Names} (supported here: {SupportedBatchWalkerNames}).", nameof(name));
        return ForcedBatchWalker(kind);
    }

    /// <summary>What <see cref="BatchWalkerVariable"/> = <paramref name="value"/> asks for: a forced walker, or null to measure (unset, blank, <c>auto</c>).</summary>
    /// <exception cref="InvalidOperationException"><paramref name="value"/> names no walker.</exception>
    /// <exception cref="NotSupportedException"><paramref name="value"/> names a walker this CPU does not support.</exception>
    internal static BatchWalkerSelection? FromVariable(string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || string.Equals(value.Trim(), BatchWalkerKinds.Auto, StringComparison.OrdinalIgnoreCase))
            return null;
        if (!BatchWalkerKinds.TryParse(value, out BatchWalkerKind kind))
            throw new InvalidOperationException($"{BatchWalkerVariable}={value} names no batch walker; use one of {BatchWalkerKinds.Names} (supported here: {SupportedBatchWalkerNames}).");
        if (!IsBatchWalkerSupported(kind))
            throw new NotSupportedException($"{BatchWalkerVariable}={value} asks for the {kind.Name()} batch walker, but this CPU (or the runtime's DOTNET_Enable* settings) does not support it; supported here: {SupportedBatchWalkerNames}.");
        return new BatchWalkerSelection(kind, BatchWalkerSelectionReason.Environment, []);
    }

    /// <summary>
    /// Times every supported candidate now on a synthetic 4-level table (about 10 ms once compiled,
    /// about 40 ms in a fresh process) and answers the fastest, with every candidate's time. Never
    /// throws: a measurement that cannot run answers the interleaved walker and says why.
    /// </summary>
    public static BatchWalkerSelection MeasureBatchWalkers()
    {
        IReadOnlyList<BatchWalkerKind> candidates = SupportedBatchWalkers;
        if (candidates.Count == 1)
            return new BatchWalkerSelection(candidates[0], BatchWalkerSelectionReason.OnlyCandidate, []);
        try
        {
            BatchWalkerTiming[] timings = TimeCandidates(candidates);
            BatchWalkerTiming best = timings[0];
            foreach (BatchWalkerTiming t in timings)
            {
                if (t.NsPerWalk < best.NsPerWalk)
                    best = t;
            }
            return new BatchWalkerSelection(best.Kind, BatchWalkerSelectionReason.Measured, timings);
        }
        catch (Exception e)
        {
            // Any failure to measure (no memory for the table, a candidate with wrong translations)
            // leaves the walker that always works, and says why.
            return new BatchWalkerSelection(BatchWalkerKind.Interleaved, BatchWalkerSelectionReason.MeasurementFailed, []) { Detail = e.Message };
        }
    }

    /// <summary>
    /// Builds a 4-level VT-d table of <see cref="MeasuredWalks"/> 4 KiB leaves, each in its own cache
    /// line, in a private host memory; walks them in a shuffled order with each candidate, one round
    /// to warm up and <see cref="MeasuredRounds"/> timed, candidates taking turns within a round;
    /// keeps each one's best round. A candidate whose translations do not sum to the table's fails
    /// the whole measurement.
    /// </summary>
    private static BatchWalkerTiming[] TimeCandidates(IReadOnlyList<BatchWalkerKind> candidates)
    {
        const int Levels = 4;
        const int LeafTables = MeasuredWalks / WalksPerLeafTable;
        const ulong ReadWrite = SlPte.ReadBit | SlPte.WriteBit;
        using var memory = new HostMemory(new HostMemoryOptions { Size = (LeafTables + 64UL) << HostMemory.FrameShift });
        ulong root = memory.AllocateFrame();
        ulong pdpt = memory.AllocateFrame();
        memory.WriteEntry(root, pdpt | ReadWrite);
        var addresses = new ulong[MeasuredWalks];
        ulong expected = 0; // the sum of the translations: every walk ends at its own leaf
        int n = 0;
        for (int table = 0; table < LeafTables; table++)
        {
            // Leaf table `table` maps the 2 MiB at table << 21; its directory is the (table / 512)th.
            int pdIndex = table / PageSizes.EntriesPerTable;
            ulong pd = memory.ReadEntry(pdpt + ((ulong)pdIndex << 3)) & EptEntry.AddressMask;
            if (pd == 0)
            {
                pd = memory.AllocateFrame();
                memory.WriteEntry(pdpt + ((ulong)pdIndex << 3), pd | ReadWrite);
            }
            ulong leaf = memory.AllocateFrame();
            memory.WriteEntry(pd + ((ulong)(table % PageSizes.EntriesPerTable) << 3), leaf | ReadWrite);
            Span<ulong> entries = MemoryMarshal.Cast<byte, ulong>(memory.GetFrame(leaf));
            for (int line = 0; line < WalksPerLeafTable; line++)
            {
                // One entry per cache line, at a varying place in it; the leaf points at some frame.
                int index = line * (PageSizes.EntriesPerTable / WalksPerLeafTable) + ((table + line) & 7);
                ulong page = memory.BaseHpa + ((ulong)n << HostMemory.FrameShift);
                ulong offset = (ulong)n * 8 & (HostMemory.FrameSize - 1);
                entries[index] = page | ReadWrite;
                addresses[n++] = ((ulong)table << 21) | ((ulong)index << HostMemory.FrameShift) | offset;
                expected += page | offset;
            }
        }
        new Random(MeasuredWalks).Shuffle(addresses);
        WalkerConfig config = WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2);
        var results = new WalkResult[MeasuredWalks];
        var best = new double[candidates.Count];
        Array.Fill(best, double.MaxValue);
        using (memory.Epochs.Enter())
        {
            for (int round = 0; round <= MeasuredRounds; round++)
            {
                for (int k = 0; k < candidates.Count; k++)
                {
                    int c = (k + round) % candidates.Count;
                    long t0 = Stopwatch.GetTimestamp();
                    RunCandidate(candidates[c], memory, config, root, Levels, addresses, results);
                    double ns = Stopwatch.GetElapsedTime(t0).TotalNanoseconds / MeasuredWalks;
                    ulong sum = 0;
                    foreach (ref readonly WalkResult r in results.AsSpan())
                        sum += r.Hpa;
                    if (sum != expected)
                        throw new InvalidOperationException($"The {candidates[c].Name()} batch walker's translations are wrong.");
                    if (round > 0)
                        best[c] = Math.Min(best[c], ns);
                }
            }
        }
        var timings = new BatchWalkerTiming[candidates.Count];
        for (int c = 0; c < candidates.Count; c++)
            timings[c] = new BatchWalkerTiming(candidates[c], best[c]);
        return timings;
    }

    private static void RunCandidate(BatchWalkerKind kind, HostMemory memory, in WalkerConfig config, ulong root, int levels, ulong[] addresses, WalkResult[] results) =>
        WalkBatchWith(kind, memory, config, root, levels, addresses, Access.Read, results);
}
