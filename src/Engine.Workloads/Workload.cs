#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
namespace Engine.Workloads;

/// <summary>
/// A named benchmark workload: set up once (and verified), then run in passes of a known number of
/// operations. <c>engine bench</c> times passes with a stopwatch; the BenchmarkDotNet project runs the
/// same workloads, so quick CLI numbers and detailed ones measure the same thing.
/// </summary>
public abstract class Workload : IDisposable
{
    /// <summary>The workload's name (the anchors' row names: iotlb-hit, walk-cold-batch, …).</summary>
    public abstract string Name { get; }

    /// <summary>What it measures, in a sentence.</summary>
    public abstract string Description { get; }

    /// <summary>Operations one pass performs (per thread for multi-threaded workloads).</summary>
    public abstract long OperationsPerPass { get; }

    /// <summary>Threads a pass runs on (1 unless the workload is multi-threaded).</summary>
    public virtual int Threads => 1;

    /// <summary>Builds the working set and checks it; throws when it is not what the workload promises.</summary>
    public abstract void Setup();

    /// <summary>One pass; returns a checksum so the work cannot be optimized away.</summary>
    public abstract ulong RunPass();

    /// <summary>
    /// Bytes allocated so far by the threads that run passes (the calling thread, plus a
    /// multi-threaded workload's workers); a process-wide count would include other work.
    /// </summary>
    public virtual long AllocatedBytes => GC.GetAllocatedBytesForCurrentThread();

    /// <summary>IOTLB hits / translations (0..1) over the passes run so far, for workloads that count them; null otherwise. Read after the timed passes.</summary>
    public virtual double? IotlbHitRate => null;

    /// <summary>A note for the report (e.g. the hit rate), read after the timed passes.</summary>
    public virtual string? Note => null;

    /// <summary>Whether a pass walks through <c>PageWalker.WalkBatch</c>, so the batch walker in use matters (and the note names it).</summary>
    public virtual bool UsesBatchWalker => false;

    /// <summary>The batch walker to use (set before <see cref="Setup"/>); null: the process default (<c>ENGINE_BATCH_WALKER</c>, else measured once).</summary>
    public Engine.Paging.BatchWalkerKind? BatchWalker { get; set; }

    /// <summary>Releases what <see cref="Setup"/> built.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);
}
