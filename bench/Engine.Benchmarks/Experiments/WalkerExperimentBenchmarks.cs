using Engine.Workloads;
using BenchmarkDotNet.Attributes;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Benchmarks.Experiments;

/// <summary>
/// EXPERIMENT, not a history key: the walk-hot set walked by the engine's walker and by the
/// variants in <see cref="ExperimentalWalkers"/>, to locate the gap to anchors.c <c>walk4</c>.
/// Run with <c>--filter '*WalkerExperiment*'</c>; <c>--filter '*'</c> runs it too.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public unsafe class WalkerExperimentBenchmarks
{
    private MappedGuest? _guest;
    private ulong[] _iovas = [];
    private WalkerConfig _config;
    private ExperimentConfig _flat;
    private ulong _rootHpa;
    private int _levels;
    private ulong _checksum;

    [GlobalSetup]
    public void Setup()
    {
        _guest = new MappedGuest(AnchorInputs.HotGiB, transparentHugePages: false);
        _iovas = AnchorInputs.Iovas(AnchorInputs.HotGiB, AnchorInputs.HotIovaCount);
        _config = _guest.Config;
        _flat = new ExperimentConfig(in _config);
        _rootHpa = _guest.RootHpa;
        _levels = _guest.Levels;
        _ = _guest.Verify(_iovas);
        VerifyVariants();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _guest?.Dispose();
        _guest = null;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = AnchorInputs.HotIovaCount)]
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
        return Keep(sum);
    }

    /// <summary>The engine's walker called through a function pointer, so it is never inlined (call + 24-byte struct return).</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong EngineNotInlined()
    {
        delegate*<HostMemory, in WalkerConfig, ulong, int, ulong, Access, WalkResult> walk = &PageWalker.Walk;
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += walk(memory, in _config, _rootHpa, _levels, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong CopyLoop()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += ExperimentalWalkers.CopyLoop(memory, in _config, _rootHpa, _levels, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong LoopNoChecks()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += ExperimentalWalkers.LoopNoChecks(memory, in _flat, _rootHpa, _levels, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong Unrolled4Volatile()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += ExperimentalWalkers.Unrolled4<VolatileLoad>(memory, in _flat, _rootHpa, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong Unrolled4Plain()
    {
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += ExperimentalWalkers.Unrolled4<PlainLoad>(memory, in _flat, _rootHpa, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    /// <summary>The unrolled walker behind a function pointer (call + struct return, no inlining).</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong Unrolled4NotInlined()
    {
        delegate*<HostMemory, in ExperimentConfig, ulong, ulong, Access, WalkResult> walk = &ExperimentalWalkers.Unrolled4<VolatileLoad>;
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += walk(memory, in _flat, _rootHpa, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
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
        return Keep(sum);
    }

    /// <summary>The lean walker behind a function pointer (call + struct return, no inlining).</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong LeanNotInlined()
    {
        delegate*<HostMemory, in ExperimentConfig, ulong, ulong, Access, WalkResult> walk = &LeanWalker.Walk4<SecondStageFormat>;
        HostMemory memory = _guest!.Memory;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
                sum += walk(memory, in _flat, _rootHpa, iovas[i], Access.Read).Hpa;
        }
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
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
        return Keep(sum);
    }

    /// <summary>As <see cref="Engine"/>, the loop in a method of its own, outside the epoch guard's try/finally.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong EngineLoopOutsideTry()
    {
        HostMemory memory = _guest!.Memory;
        ulong sum;
        using (memory.Epochs.Enter())
            sum = EngineLoop(memory, in _config, _rootHpa, _levels, _iovas);
        return Keep(sum);
    }

    /// <summary>As <see cref="CFloor"/>, the loop in a method of its own, outside the epoch guard's try/finally.</summary>
    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong CFloorLoopOutsideTry()
    {
        HostMemory memory = _guest!.Memory;
        ulong sum;
        using (memory.Epochs.Enter())
            sum = CFloorLoop(memory.RegionPointer, memory.BaseHpa, memory.Limit, _rootHpa, _iovas);
        return Keep(sum);
    }

    [Benchmark(OperationsPerInvoke = AnchorInputs.HotIovaCount)]
    public ulong LeanLoopOutsideTry()
    {
        HostMemory memory = _guest!.Memory;
        ulong sum;
        using (memory.Epochs.Enter())
            sum = LeanLoop(memory, in _flat, _rootHpa, _iovas);
        return Keep(sum);
    }

    private static ulong EngineLoop(HostMemory memory, in WalkerConfig config, ulong root, int levels, ulong[] iovas)
    {
        ulong sum = 0;
        for (int i = 0; i < iovas.Length; i++)
            sum += PageWalker.Walk(memory, in config, root, levels, iovas[i], Access.Read).Hpa;
        return sum;
    }

    private static ulong LeanLoop(HostMemory memory, in ExperimentConfig config, ulong root, ulong[] iovas)
    {
        ulong sum = 0;
        for (int i = 0; i < iovas.Length; i++)
            sum += LeanWalker.Walk4<SecondStageFormat>(memory, in config, root, iovas[i], Access.Read).Hpa;
        return sum;
    }

    private static ulong CFloorLoop(byte* region, ulong baseHpa, ulong limit, ulong root, ulong[] iovas)
    {
        ulong sum = 0;
        for (int i = 0; i < iovas.Length; i++)
            sum += ExperimentalWalkers.CFloor(region, baseHpa, limit, root, iovas[i]);
        return sum;
    }

    private ulong Keep(ulong sum)
    {
        _checksum += sum;
        return sum;
    }

    // Each variant must give the engine's exact result: on the working set, on faulting inputs, on a
    // guest with 2M and 1G leaves, and with single bits flipped in entries along the paths.
    private void VerifyVariants()
    {
        HostMemory memory = _guest!.Memory;
        var inputs = new List<(ulong Root, ulong Iova, Access Access)>();
        foreach (ulong iova in _iovas.AsSpan(0, 4096))
            inputs.Add((_rootHpa, iova, Access.Read));
        inputs.Add((_rootHpa, 1UL << 30, Access.Read));                  // beyond the mapping: not present at level 3
        inputs.Add((_rootHpa, 1UL << 47 | 0x1234, Access.Read));          // not present at level 4
        inputs.Add((_rootHpa, 1UL << 48, Access.Read));                   // beyond the 48-bit width
        inputs.Add((_rootHpa, 0x5000, Access.Execute));                  // execute as read (no ERS)
        inputs.Add((_rootHpa + 8, 0x5000, Access.Read));                 // misaligned root
        inputs.Add((memory.EndHpa, 0x5000, Access.Read));                // root outside memory
        inputs.Add((memory.BaseHpa - HostMemory.FrameSize, 0x5000, Access.Read));
        int checks = CheckAll(memory, in _config, in _flat, inputs);
        checks += FlipBits(memory, _rootHpa, _iovas, seed: 1);

        // A guest with large leaves: [0, 1G) backed and mapped by 2M pages, [1G, 2G) by one 1G page.
        using var huge = new HostMemory(new HostMemoryOptions { Size = 4UL << 30 });
        using var vm = new Kvm.Vm(huge, new Kvm.VmOptions { TdpLevels = 4, MaxHugePageLevel = 3 });
        vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        vm.AddMemslot(1, 1UL << 30, 1UL << 30, PageSize.Size1G);
        vm.Map(0, 1UL << 19, Access.All);
        using var export = vm.ExportTdp();
        WalkerConfig config = WalkerConfig.SecondStage(huge.HostAddressWidth, superpageLevel: 2);
        var flat = new ExperimentConfig(in config);
        ulong seed = 7;
        var hugeIovas = new ulong[2048];
        for (int i = 0; i < hugeIovas.Length; i++)
            hugeIovas[i] = AnchorInputs.SplitMix64(ref seed) % (2UL << 30);
        var hugeInputs = hugeIovas.Select(iova => (export.Metadata.RootHpa, iova, Access.Read)).ToList();
        checks += CheckAll(huge, in config, in flat, hugeInputs);
        checks += FlipBits(huge, export.Metadata.RootHpa, hugeIovas, seed: 2);
        Console.WriteLine($"// experiment: {checks:N0} walks give the engine's results in every variant");
    }

    private int FlipBits(HostMemory memory, ulong root, ulong[] iovas, ulong seed)
    {
        WalkerConfig config = WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2);
        var flat = new ExperimentConfig(in config);
        int checks = 0;
        for (int trial = 0; trial < 4000; trial++)
        {
            ulong iova = iovas[AnchorInputs.SplitMix64(ref seed) % (ulong)iovas.Length];
            int depth = (int)(AnchorInputs.SplitMix64(ref seed) % 4);
            int bit = (int)(AnchorInputs.SplitMix64(ref seed) % 64);
            // The entry at the chosen depth of iova's path (stop early at a leaf).
            ulong table = root, entryHpa = 0;
            for (int level = 4; level >= 4 - depth; level--)
            {
                entryHpa = table + (((iova >> PageSizes.ShiftOfLevel(level)) & PageSizes.LevelMask) << 3);
                ulong e = memory.ReadEntry(entryHpa);
                if (level == 1 || (e & EptEntry.PageSizeBit) != 0)
                    break;
                table = e & EptEntry.AddressMask;
            }
            ulong original = memory.ReadEntry(entryHpa);
            // Address bits below the HAW would send the walker to arbitrary (possibly unallocated) frames; keep them.
            if (bit >= 12 && bit < memory.HostAddressWidth)
                continue;
            memory.WriteEntry(entryHpa, original ^ (1UL << bit));
            try
            {
                var inputs = new List<(ulong, ulong, Access)> { (root, iova, Access.Read), (root, iova, Access.Write), (root, iova, Access.Execute) };
                checks += CheckAll(memory, in config, in flat, inputs);
            }
            finally
            {
                memory.WriteEntry(entryHpa, original);
            }
        }
        return checks;
    }

    private static int CheckAll(HostMemory memory, in WalkerConfig config, in ExperimentConfig flat, List<(ulong Root, ulong Iova, Access Access)> inputs)
    {
        using (memory.Epochs.Enter())
        {
            foreach (var (root, iova, access) in inputs)
            {
                WalkResult expected = PageWalker.Walk(memory, in config, root, 4, iova, access);
                Check("CopyLoop", ExperimentalWalkers.CopyLoop(memory, in config, root, 4, iova, access), expected, iova);
                Check("LoopNoChecks", ExperimentalWalkers.LoopNoChecks(memory, in flat, root, 4, iova, access), expected, iova);
                Check("Unrolled4", ExperimentalWalkers.Unrolled4<VolatileLoad>(memory, in flat, root, iova, access), expected, iova);
                Check("Lean", LeanWalker.Walk4<SecondStageFormat>(memory, in flat, root, iova, access), expected, iova);
                if (expected.IsSuccess && expected.Level == 1 && access == Access.Read && (memory.RegionPointer != null)
                    && ExperimentalWalkers.CFloor(memory.RegionPointer, memory.BaseHpa, memory.Limit, root, iova) != expected.Hpa)
                    throw new InvalidOperationException($"CFloor differs at 0x{iova:x}");
            }
        }
        return inputs.Count;
    }

    private static void Check(string name, WalkResult got, WalkResult expected, ulong iova)
    {
        if (got != expected)
            throw new InvalidOperationException($"{name} at 0x{iova:x}: {got}, engine {expected}");
    }
}
