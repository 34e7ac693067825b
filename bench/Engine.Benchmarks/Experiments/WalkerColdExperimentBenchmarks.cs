using Engine.Workloads;
using BenchmarkDotNet.Attributes;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Benchmarks.Experiments;

/// <summary>
/// EXPERIMENT, not a history key: the engine's walker, the lean walker and the C transliteration on
/// the walk-cold set (64 GiB of 4K leaves, no THP hint), to see whether fewer instructions per walk
/// also buy memory-level parallelism when the leaf tables miss in the caches. The lean walker is
/// checked against the engine in <see cref="WalkerExperimentBenchmarks"/>; here only the sums are compared.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public unsafe class WalkerColdExperimentBenchmarks
{
    private MappedGuest? _guest;
    private ulong[] _iovas = [];
    private WalkerConfig _config;
    private ExperimentConfig _flat;
    private ulong _rootHpa;
    private int _levels;
    private ulong _expectedSum;

    [GlobalSetup]
    public void Setup()
    {
        _guest = new MappedGuest(AnchorInputs.ColdGiB, transparentHugePages: false);
        _iovas = AnchorInputs.Iovas(AnchorInputs.ColdGiB, AnchorInputs.ColdIovaCount);
        _config = _guest.Config;
        _flat = new ExperimentConfig(in _config);
        _rootHpa = _guest.RootHpa;
        _levels = _guest.Levels;
        _expectedSum = _guest.Verify(_iovas);
        if (Lean() != _expectedSum || CFloor() != _expectedSum)
            throw new InvalidOperationException("an experimental walker's sum differs from the verified engine sum");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _guest?.Dispose();
        _guest = null;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    public ulong Engine()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += PageWalker.Walk(memory, in _config, _rootHpa, _levels, iovas[i], Access.Read).Hpa;
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    public ulong Lean()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += LeanWalker.Walk4<SecondStageFormat>(memory, in _flat, _rootHpa, iovas[i], Access.Read).Hpa;
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    public ulong CFloor()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            byte* region = memory.RegionPointer;
            ulong baseHpa = memory.BaseHpa, limit = memory.Limit, root = _rootHpa;
            for (int i = 0; i < iovas.Length; i++)
                sum += ExperimentalWalkers.CFloor(region, baseHpa, limit, root, iovas[i]);
        }
        return sum;
    }
}
