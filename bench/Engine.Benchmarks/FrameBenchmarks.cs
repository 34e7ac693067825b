using Engine.Workloads;
using BenchmarkDotNet.Attributes;
using Engine.Memory;

namespace Engine.Benchmarks;

/// <summary>The host-memory frame allocator, single thread, per frame.</summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 5, iterationCount: 10)]
public class FrameBenchmarks
{
    private const int Pairs = 4096;
    private const int FreshFrames = 1 << 18;
    private const int FreshInvocations = 64;

    private HostMemory? _memory;
    private ulong _checksum;

    [GlobalSetup(Target = nameof(AllocateFreePair))]
    public void SetupPair() => _memory = new HostMemory(new HostMemoryOptions { Size = 1UL << 30 });

    [GlobalCleanup(Target = nameof(AllocateFreePair))]
    public void CleanupPair()
    {
        _memory?.Dispose();
        _memory = null;
    }

    /// <summary>
    /// AllocateFrame + FreeFrame of one frame. After the first pair the frame comes from the free
    /// list, so each pair pays a pop, a push, the state-byte CASes and the 4 KiB clear of a reused frame.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public ulong AllocateFreePair()
    {
        HostMemory memory = _memory!;
        ulong sum = 0;
        for (int i = 0; i < Pairs; i++)
        {
            ulong hpa = memory.AllocateFrame();
            memory.FreeFrame(hpa);
            sum += hpa;
        }
        _checksum += sum;
        return sum;
    }

    // A fresh region per iteration, exactly big enough for the iteration's 64 invocations of 256 K
    // never-used frames each (64 GiB of address space, reserved, never touched): fresh frames cannot
    // be given back, so a region shared by all iterations would run out. 64 invocations per iteration
    // also let tiered compilation finish during the warm-up.
    [IterationSetup(Target = nameof(AllocateFresh))]
    public void SetupFresh() => _memory = new HostMemory(new HostMemoryOptions { Size = (ulong)FreshFrames * FreshInvocations * HostMemory.FrameSize });

    [IterationCleanup(Target = nameof(AllocateFresh))]
    public void CleanupFresh()
    {
        _memory?.Dispose();
        _memory = null;
    }

    /// <summary>AllocateFrame of never-used frames (the bump path: CAS on the bump pointer, state byte, counters; the frame itself is not touched).</summary>
    [Benchmark(OperationsPerInvoke = FreshFrames)]
    [InvocationCount(FreshInvocations)]
    public ulong AllocateFresh()
    {
        HostMemory memory = _memory!;
        ulong sum = 0;
        for (int i = 0; i < FreshFrames; i++)
            sum += memory.AllocateFrame();
        _checksum += sum;
        return sum;
    }
}
