using Engine.Memory;

namespace Engine.Tests.Memory;

public class HostMemoryTests
{
    [Fact]
    public void AllocatedFramesAreZeroedAlignedAndInsideTheRegion()
    {
        using var memory = TestMemory.Create(16);
        var seen = new HashSet<ulong>();
        for (int i = 0; i < 100; i++)
        {
            ulong hpa = memory.AllocateFrame();
            Assert.True(hpa % HostMemory.FrameSize == 0, $"HPA 0x{hpa:x} is not 4 KiB aligned");
            Assert.True(memory.Contains(hpa, HostMemory.FrameSize));
            Assert.True(seen.Add(hpa), $"HPA 0x{hpa:x} was handed out twice");
            Assert.True(memory.GetFrame(hpa).IndexOfAnyExcept((byte)0) < 0, "a new frame is not zeroed");
        }
    }

    [Fact]
    public void AFreedFrameComesBackZeroedEvenAfterPoison()
    {
        using var memory = TestMemory.Create(16, poison: true);
        ulong hpa = memory.AllocateFrame();
        memory.GetFrame(hpa).Fill(0x5A);
        memory.FreeFrame(hpa);
        ulong again = memory.AllocateFrame();
        Assert.Equal(hpa, again);
        Assert.True(memory.GetFrame(again).IndexOfAnyExcept((byte)0) < 0, "a reused frame is not zeroed");
    }

    [Fact]
    public unsafe void FreedFramesArePoisonedWhenAsked()
    {
        using var memory = TestMemory.Create(16, poison: true);
        ulong hpa = memory.AllocateFrame();
        memory.FreeFrame(hpa);
        Assert.Equal(HostMemory.PoisonWord, memory.EntryRef(hpa + 8));
        Assert.Equal(FrameState.Free, memory.GetFrameState(hpa));
    }

    [Fact]
    public void StatisticsCountFramesInUseAndPeak()
    {
        using var memory = TestMemory.Create(16);
        var frames = Enumerable.Range(0, 10).Select(_ => memory.AllocateFrame()).ToList();
        foreach (ulong f in frames.Take(4))
            memory.FreeFrame(f);
        HostMemoryStatistics s = memory.Statistics;
        Assert.Equal(6UL, s.FramesInUse);
        Assert.Equal(10UL, s.PeakFramesInUse);
        Assert.Equal(4UL, s.FreeFrames);
        Assert.Equal(16UL * 256, s.CapacityFrames);
    }

    [Fact]
    public void DoubleFreeIsAClearErrorAndChangesNothing()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        memory.FreeFrame(hpa);
        var e = Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(hpa));
        Assert.Contains("double free", e.Message);
        Assert.Equal(hpa, e.Hpa);
        Assert.Equal(1UL, memory.Statistics.FreeFrames);
        Assert.Equal(hpa, memory.AllocateFrame());
        Assert.NotEqual(hpa, memory.AllocateFrame());
    }

    [Fact]
    public void BadAddressesAreRefusedWithTheReason()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        Assert.Contains("not 4 KiB aligned", Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(hpa + 8)).Message);
        Assert.Contains("outside host memory", Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(memory.EndHpa)).Message);
        Assert.Contains("outside host memory", Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(memory.BaseHpa - 4096)).Message);
        Assert.Contains("never allocated", Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(memory.EndHpa - 4096)).Message);
        Assert.Contains("8-byte aligned", Assert.Throws<InvalidHostAddressException>(() => memory.ReadEntry(hpa + 4)).Message);
        Assert.Contains("not allocated", Assert.Throws<InvalidHostAddressException>(() => memory.ReadEntry(memory.EndHpa - 8)).Message);
        Assert.Contains("outside host memory", Assert.Throws<InvalidHostAddressException>(() => memory.GetSpan(memory.EndHpa - 16, 32)).Message);
        Assert.Contains("not allocated", Assert.Throws<InvalidHostAddressException>(() => memory.GetSpan(hpa + 4000, 200)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.GetSpan(hpa, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(0, 1));
        Assert.Equal(1UL, memory.Statistics.FramesInUse);
    }

    [Fact]
    public void EntriesAreReadAndWrittenWhole()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        memory.WriteEntry(hpa + 16, 0x0123_4567_89ab_cdefUL);
        Assert.Equal(0x0123_4567_89ab_cdefUL, memory.ReadEntry(hpa + 16));
        Assert.Equal(0x0123_4567_89ab_cdefUL, memory.CompareExchangeEntry(hpa + 16, 7, 0x0123_4567_89ab_cdefUL));
        Assert.Equal(7UL, memory.ReadEntry(hpa + 16));
        Assert.Equal(7UL, BitConverter.ToUInt64(memory.GetSpan(hpa + 16, 8)));
    }

    [Fact]
    public void ExhaustionIsAClearErrorAndTryAllocateSaysNo()
    {
        using var memory = TestMemory.Create(1);
        var frames = new List<ulong>();
        while (memory.TryAllocateFrame(out ulong hpa))
            frames.Add(hpa);
        Assert.Equal(256, frames.Count);
        var e = Assert.Throws<HostMemoryExhaustedException>(() => memory.AllocateFrame());
        Assert.Contains("exhausted", e.Message);
        Assert.Throws<HostMemoryExhaustedException>(() => memory.AllocateContiguous(1, 1));
        memory.FreeFrame(frames[10]);
        Assert.Equal(frames[10], memory.AllocateFrame());
    }

    [Fact]
    public void ExhaustionReclaimsRetiredFramesWhoseGraceEnded()
    {
        using var memory = TestMemory.Create(1);
        var frames = new List<ulong>();
        while (memory.TryAllocateFrame(out ulong hpa))
            frames.Add(hpa);
        memory.RetireFrame(frames[3]);
        Assert.Equal(frames[3], memory.AllocateFrame());
    }

    [Fact]
    public void ContiguousRunsAreAlignedAndTheSkippedFramesStayUsable()
    {
        using var memory = TestMemory.Create(64);
        ulong single = memory.AllocateFrame();
        ulong run = memory.AllocateContiguous(512, 512);
        Assert.Equal(0UL, (run - memory.BaseHpa) % (2UL << 20));
        for (ulong i = 0; i < 512; i++)
            Assert.Equal(FrameState.Allocated, memory.GetFrameState(run + i * 4096));
        Assert.Equal(511UL, memory.Statistics.FreeFrames);
        Assert.NotEqual(single, memory.AllocateFrame());
        Assert.Equal(514UL, memory.Statistics.FramesInUse);
    }

    [Fact]
    public void TheDefaultRegionIs64GiBAndCostsOnlyWhatIsTouched()
    {
        using var memory = new HostMemory();
        Assert.Equal(64UL << 30, memory.Size);
        Assert.Equal(4UL << 30, memory.BaseHpa);
        ulong hpa = memory.AllocateContiguous(1UL << 18, 1UL << 18);
        Assert.Equal(0UL, hpa % (1UL << 30));
        Assert.Equal(1UL << 18, memory.Statistics.FramesInUse);
    }

    [Fact]
    public void BadOptionsNameTheBadSetting()
    {
        Assert.Equal("Size", Assert.Throws<ArgumentOutOfRangeException>(() => new HostMemory(new HostMemoryOptions { Size = 1000 })).ParamName);
        Assert.Equal("BaseHpa", Assert.Throws<ArgumentOutOfRangeException>(() => new HostMemory(new HostMemoryOptions { BaseHpa = 4096 })).ParamName);
        Assert.Equal("HostAddressWidth", Assert.Throws<ArgumentOutOfRangeException>(() => new HostMemory(new HostMemoryOptions { HostAddressWidth = 60 })).ParamName);
        Assert.Equal("Size", Assert.Throws<ArgumentOutOfRangeException>(() => new HostMemory(new HostMemoryOptions { HostAddressWidth = 36, Size = 64UL << 30 })).ParamName);
        Assert.Equal("ReclaimThreshold", Assert.Throws<ArgumentOutOfRangeException>(() => new HostMemory(new HostMemoryOptions { Size = 1 << 20, ReclaimThreshold = 0 })).ParamName);
    }

    [Fact]
    public void EveryCallAfterDisposeIsRefused()
    {
        var memory = TestMemory.Create(4);
        ulong hpa = memory.AllocateFrame();
        memory.Dispose();
        memory.Dispose();
        Assert.True(memory.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => memory.AllocateFrame());
        Assert.Throws<ObjectDisposedException>(() => memory.FreeFrame(hpa));
        Assert.Throws<ObjectDisposedException>(() => memory.ReadEntry(hpa));
        Assert.Throws<ObjectDisposedException>(() => memory.GetSpan(hpa, 8));
        Assert.Throws<ObjectDisposedException>(() => memory.Epochs.Enter());
    }

    [Fact]
    public void ConcurrentAllocationNeverHandsOutAFrameTwice()
    {
        using var memory = TestMemory.Create(256);
        const int Threads = 4, Rounds = 20_000;
        var owners = new int[memory.FrameCount];
        var failures = new List<string>();
        var workers = Enumerable.Range(1, Threads).Select(id => new Thread(() =>
        {
            var mine = new Stack<ulong>();
            var rng = new Random(id);
            for (int i = 0; i < Rounds; i++)
            {
                if (mine.Count == 0 || rng.Next(3) != 0)
                {
                    ulong hpa = memory.AllocateFrame();
                    int index = (int)((hpa - memory.BaseHpa) >> HostMemory.FrameShift);
                    if (Interlocked.CompareExchange(ref owners[index], id, 0) != 0)
                        lock (failures) failures.Add($"frame 0x{hpa:x} handed to thread {id} while owned by {owners[index]}");
                    mine.Push(hpa);
                }
                else
                {
                    ulong hpa = mine.Pop();
                    Volatile.Write(ref owners[(hpa - memory.BaseHpa) >> HostMemory.FrameShift], 0);
                    memory.FreeFrame(hpa);
                }
            }
            while (mine.Count > 0)
            {
                ulong hpa = mine.Pop();
                Volatile.Write(ref owners[(hpa - memory.BaseHpa) >> HostMemory.FrameShift], 0);
                memory.FreeFrame(hpa);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.Empty(failures);
        Assert.Equal(0UL, memory.Statistics.FramesInUse);
        Assert.Equal(memory.Statistics.FreeFrames + memory.Statistics.FreshFrames, memory.FrameCount);
    }
}
