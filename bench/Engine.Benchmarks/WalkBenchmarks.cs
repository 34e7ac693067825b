using Engine.Workloads;
using BenchmarkDotNet.Attributes;
using Engine.Paging;

namespace Engine.Benchmarks;

/// <summary>
/// The scalar VT-d second-stage walk (<see cref="PageWalker.Walk"/>) over KVM's EPT, on the
/// anchors' working sets: walk-hot (1 GiB of 4K leaves, 2 MiB of leaf tables, L3-resident) and
/// walk-cold (64 GiB of 4K leaves, 128 MiB of leaf tables, DRAM). Results read per walk.
/// </summary>
/// <remarks>
/// Compare with anchors.c "walk-hot scalar (independent translations)" and "walk-cold ... scalar".
/// Each benchmark has its own <see cref="GlobalSetupAttribute"/>, so the 64 GiB mapping is built
/// only in the cold benchmark's process. The epoch is entered once per invocation.
/// The batch benchmarks take the batch walker as an argument (<see cref="BatchWalkers"/>: every
/// candidate this machine supports, called directly, not through the start-up selection). An
/// argument rather than a class-wide [Params], so the scalar benchmarks keep their IDs and are not
/// run once per walker.
/// </remarks>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class WalkBenchmarks
{
    private MappedGuest? _guest;
    private ulong[] _iovas = [];
    private WalkerConfig _config;
    private ulong _rootHpa;
    private int _levels;
    private ulong _expectedSum;
    private ulong _checksum;
    private ulong _invocations;

    [GlobalSetup(Target = nameof(WalkHot))]
    public void SetupHot() => Setup(AnchorInputs.HotGiB, AnchorInputs.HotIovaCount, transparentHugePages: false);

    [GlobalSetup(Target = nameof(WalkHotBound))]
    public void SetupHotBound() => Setup(AnchorInputs.HotGiB, AnchorInputs.HotIovaCount, transparentHugePages: false);

    [GlobalSetup(Target = nameof(WalkCold))]
    public void SetupCold() => Setup(AnchorInputs.ColdGiB, AnchorInputs.ColdIovaCount, transparentHugePages: false);

    [GlobalSetup(Target = nameof(WalkHotBatch))]
    public void SetupHotBatch() => Setup(AnchorInputs.HotGiB, AnchorInputs.HotIovaCount, transparentHugePages: false);

    [GlobalSetup(Target = nameof(WalkColdBatch))]
    public void SetupColdBatch() => Setup(AnchorInputs.ColdGiB, AnchorInputs.ColdIovaCount, transparentHugePages: false);

    [GlobalSetup(Target = nameof(WalkColdThp))]
    public void SetupColdThp() => Setup(AnchorInputs.ColdGiB, AnchorInputs.ColdIovaCount, transparentHugePages: true);

    [GlobalCleanup]
    public void Cleanup()
    {
        // Every invocation adds the verified sum (wrapping arithmetic on both sides).
        if (_checksum != unchecked(_expectedSum * _invocations))
            throw new InvalidOperationException($"checksum 0x{_checksum:x} after {_invocations} invocations does not match the verified sum 0x{_expectedSum:x}.");
        _guest?.Dispose();
        _guest = null;
    }

    /// <summary>1 GiB mapped by 4K leaves, the anchors' 262,144 walk-hot IOVAs, one walk each.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong WalkHot() => WalkAll();

    /// <summary>walk-hot as <c>engine bench</c> runs it: the same walks through a <see cref="BoundWalker"/> bound once to the table.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong WalkHotBound()
    {
        var memory = _guest!.Memory;
        var walker = new BoundWalker(memory, in _config, _rootHpa, _levels);
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            foreach (ulong iova in _iovas)
                sum += walker.Walk(iova, Access.Read).Hpa;
        }
        _checksum += sum;
        _invocations++;
        return sum;
    }

    /// <summary>64 GiB mapped by 4K leaves (host memory without the THP hint), the anchors' 1 M walk-cold IOVAs.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    public ulong WalkCold() => WalkAll();

    /// <summary>As <see cref="WalkCold"/>, host memory with the THP hint (the anchors' "walk-cold THP" row).</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    public ulong WalkColdThp() => WalkAll();

    /// <summary>The batch walkers this machine supports: the argument of the batch benchmarks.</summary>
    public static IEnumerable<BatchWalkerKind> BatchWalkers() => PageWalker.SupportedBatchWalkers;

    /// <summary>walk-hot-batch: the same IOVAs through the batch walker <paramref name="walker"/> (32 per group, level by level).</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    [ArgumentsSource(nameof(BatchWalkers))]
    public ulong WalkHotBatch(BatchWalkerKind walker) => WalkAllBatch(walker);

    /// <summary>walk-cold-batch: the walk-cold IOVAs through the batch walker <paramref name="walker"/>.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.ColdIovaCount)]
    [ArgumentsSource(nameof(BatchWalkers))]
    public ulong WalkColdBatch(BatchWalkerKind walker) => WalkAllBatch(walker);

    private WalkResult[] _results = [];

    private ulong WalkAllBatch(BatchWalkerKind walker)
    {
        var memory = _guest!.Memory;
        if (_results.Length != _iovas.Length)
            _results = new WalkResult[_iovas.Length];
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            PageWalker.WalkBatchWith(walker, memory, in _config, _rootHpa, _levels, _iovas, Access.Read, _results);
        }
        foreach (ref readonly WalkResult r in _results.AsSpan())
            sum += r.Hpa;
        _checksum += sum;
        _invocations++;
        return sum;
    }

    private ulong WalkAll()
    {
        var memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong root = _rootHpa;
        int levels = _levels;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += PageWalker.Walk(memory, in _config, root, levels, iovas[i], Access.Read).Hpa;
        }
        _checksum += sum;
        _invocations++;
        return sum;
    }

    private void Setup(ulong gib, int iovaCount, bool transparentHugePages)
    {
        _guest = new MappedGuest(gib, transparentHugePages);
        _iovas = AnchorInputs.Iovas(gib, iovaCount);
        _config = _guest.Config;
        _rootHpa = _guest.RootHpa;
        _levels = _guest.Levels;
        _expectedSum = _guest.Verify(_iovas);
        _checksum = 0;
        _invocations = 0;
        Console.WriteLine($"// verified {iovaCount:N0} walks (first IOVA 0x{_iovas[0]:x}), checksum 0x{_expectedSum:x}");
    }
}
