using BenchmarkDotNet.Attributes;
using Engine.Trace;
using Engine.Workloads;

namespace Engine.Benchmarks;

/// <summary>
/// Trace replay on a hit-dominated trace (the iotlb-hit stream as 65,536 translate records),
/// reading and decoding included: from memory (<see cref="ReplayHit"/>) and from a file through
/// a FileStream (<see cref="ReplayHitFile"/>). <see cref="TranslateBenchmarks.IotlbHit"/> is the same
/// translations from an array; the issue asks replay for at least half its rate. Results read per record.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class ReplayBenchmarks
{
    private ReplayHitWorkload? _workload;
    private string _file = "";

    [GlobalSetup]
    public void Setup()
    {
        _workload = new ReplayHitWorkload();
        _workload.Setup();
        _file = Path.Combine(Path.GetTempPath(), $"engine-replay-bench-{Environment.ProcessId}.trace");
        File.WriteAllBytes(_file, _workload.Trace.ToArray());
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _workload?.Dispose();
        File.Delete(_file);
    }

    /// <summary>replay-hit: one record of the trace, read from memory.</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.StreamLength)]
    public ulong ReplayHit() => _workload!.RunPass();

    /// <summary>The same, read from a file (the page cache) through a 64 KiB-buffered FileStream.</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.StreamLength)]
    public ulong ReplayHitFile()
    {
        using var stream = new FileStream(_file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        var tally = new ReplayTally();
        TraceReplayer.Run(new TraceReader(stream, leaveOpen: true), _workload!.Rig, ref tally);
        return tally.HpaSum;
    }

}
