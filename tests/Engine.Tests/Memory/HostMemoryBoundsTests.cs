using Engine.Memory;

namespace Engine.Tests.Memory;

/// <summary>
/// Host memory's public entry points at the edges: alignments checked against the HPA (the base is
/// only 1 GiB aligned), sizes and alignments no region can satisfy refused by name, and no sum of
/// an HPA and a length that wraps.
/// </summary>
public class HostMemoryBoundsTests
{
    private const ulong GiB = 1UL << 30;

    [Fact]
    public void EveryContiguousAlignmentHoldsForTheHpaNotJustTheOffset()
    {
        // Based at 4 GiB, 64 GiB long: alignments up to 1 GiB coincide with the offset's, larger ones do not.
        var failures = new List<string>();
        for (int log2 = 0; log2 <= 26; log2++)
        {
            using var memory = new HostMemory(new HostMemoryOptions { BaseHpa = 4 * GiB, Size = 64 * GiB });
            memory.AllocateFrame();  // the bump pointer is no longer at the base
            ulong alignment = 1UL << log2;
            ulong alignmentBytes = alignment << HostMemory.FrameShift;
            // The first HPA at or after base + 1 frame that is aligned, if the run still fits before the end.
            ulong expected = (memory.BaseHpa + HostMemory.FrameSize + alignmentBytes - 1) & ~(alignmentBytes - 1);
            try
            {
                ulong hpa = memory.AllocateContiguous(1, alignment);
                if (hpa % alignmentBytes != 0 || hpa != expected)
                    failures.Add($"alignment 2^{log2} frames: got 0x{hpa:x}, expected 0x{expected:x}");
                if (!memory.Contains(hpa, HostMemory.FrameSize) || memory.GetFrameState(hpa) != FrameState.Allocated)
                    failures.Add($"alignment 2^{log2} frames: 0x{hpa:x} is not an allocated frame of the region");
            }
            catch (HostMemoryExhaustedException)
            {
                if (expected + HostMemory.FrameSize <= memory.EndHpa)
                    failures.Add($"alignment 2^{log2} frames: refused although 0x{expected:x} fits");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void AnEightGiBAlignedFrameOnARegionBasedAtFourGiBIsAtEightGiB()
    {
        using var memory = new HostMemory(new HostMemoryOptions { BaseHpa = 4 * GiB, Size = 64 * GiB });
        ulong hpa = memory.AllocateContiguous(1, (8 * GiB) >> HostMemory.FrameShift);
        Assert.Equal(8 * GiB, hpa);
        // The frames skipped on the way are not lost: they are free, and the next single frame is one of them.
        Assert.Equal((4 * GiB) >> HostMemory.FrameShift, memory.Statistics.FreeFrames);
        ulong next = memory.AllocateFrame();
        Assert.InRange(next, 4 * GiB, 8 * GiB - HostMemory.FrameSize);
    }

    [Fact]
    public void AContiguousRunNoRegionCouldHoldIsRefusedByName()
    {
        using var memory = TestMemory.Create(16);
        ulong inUse = memory.Statistics.FramesInUse;
        Assert.Equal("frames", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(1UL << 62, 1)).ParamName);
        Assert.Equal("frames", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(ulong.MaxValue, 1)).ParamName);
        Assert.Equal("frames", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(memory.FrameCount + 1, 1)).ParamName);
        // An alignment beyond the host address width (46 bits: 2^34 frames) has no HPA to give.
        Assert.Equal("alignmentFrames", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(1, 1UL << 35)).ParamName);
        Assert.Equal("alignmentFrames", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AllocateContiguous(1, 1UL << 63)).ParamName);
        // A size the region can hold but not after what is in use is exhaustion, not misuse.
        memory.AllocateFrame();
        Assert.Throws<HostMemoryExhaustedException>(() => memory.AllocateContiguous(memory.FrameCount, 1));
        // Nothing was taken by the refusals: the region still hands out every remaining frame, once.
        Assert.Equal(inUse + 1, memory.Statistics.FramesInUse);
        ulong rest = memory.AllocateContiguous(memory.FrameCount - 1, 1);
        Assert.Equal(memory.BaseHpa + HostMemory.FrameSize, rest);
        Assert.Equal(memory.FrameCount, memory.Statistics.FramesInUse);
    }

    [Fact]
    public void AddressesNearTheTopOfTheAddressSpaceNeverWrapIntoTheRegion()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        // hpa + length wraps past 2^64 back into the region: every check must still say no.
        Assert.False(memory.Contains(hpa, ulong.MaxValue));
        Assert.False(memory.Contains(hpa, ulong.MaxValue - hpa + 1 + 8));
        Assert.False(memory.Contains(ulong.MaxValue - 7, 16));
        Assert.False(memory.Contains(memory.EndHpa, 0));
        Assert.True(memory.Contains(memory.EndHpa - 1, 1));
        Assert.Throws<InvalidHostAddressException>(() => memory.ReadEntry(ulong.MaxValue - 7));
        Assert.Throws<InvalidHostAddressException>(() => memory.WriteEntry(ulong.MaxValue - 7, 1));
        Assert.Throws<InvalidHostAddressException>(() => memory.CompareExchangeEntry(ulong.MaxValue - 7, 1, 0));
        Assert.Throws<InvalidHostAddressException>(() => memory.GetSpan(ulong.MaxValue - 7, 16));
        Assert.Throws<InvalidHostAddressException>(() => memory.GetSpan(hpa, int.MaxValue));
        Assert.Throws<InvalidHostAddressException>(() => memory.GetFrame(ulong.MaxValue & ~0xFFFUL));
        Assert.Throws<InvalidHostAddressException>(() => memory.GetFrameState(ulong.MaxValue));
        Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(ulong.MaxValue & ~0xFFFUL));
        Assert.Throws<InvalidHostAddressException>(() => memory.RetireFrame(ulong.MaxValue & ~0xFFFUL));
        Assert.Throws<InvalidHostAddressException>(() => memory.RetireFrame(memory.BaseHpa - HostMemory.FrameSize));
        Assert.Equal(1UL, memory.Statistics.FramesInUse);
    }

    [Fact]
    public void RetiringTheSameFrameTwiceInOneCallChangesNothing()
    {
        using var memory = TestMemory.Create(16);
        ulong a = memory.AllocateFrame(), b = memory.AllocateFrame();
        var e = Assert.Throws<InvalidHostAddressException>(() => memory.RetireFrames([a, b, a]));
        Assert.Equal(a, e.Hpa);
        Assert.Contains("retire", e.Message);
        // As documented, a bad HPA changes nothing: both frames are still allocated and not counted as retired.
        Assert.Equal(FrameState.Allocated, memory.GetFrameState(a));
        Assert.Equal(FrameState.Allocated, memory.GetFrameState(b));
        Assert.Equal(0UL, memory.Statistics.RetiredFrames);
        memory.RetireFrames([a, b]);
        Assert.Equal(2UL, memory.Statistics.RetiredFrames);
        Assert.Equal(2, memory.Reclaim());
        Assert.Equal(0UL, memory.Statistics.RetiredFrames);
        Assert.Equal(0UL, memory.Statistics.FramesInUse);
    }
}
