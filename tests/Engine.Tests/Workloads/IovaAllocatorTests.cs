using Engine.Workloads;

namespace Engine.Tests.Workloads;

/// <summary>The Linux-like IOVA allocator behind dma-strict / dma-lazy: top-down, size-aligned, recently freed reused.</summary>
public class IovaAllocatorTests
{
    private const ulong Limit = 0xF_FFFF;   // below 4 GiB, as iommu-dma tries first for PCI devices

    [Fact]
    public void AllocationsGoTopDownFromTheLimit()
    {
        var a = new IovaAllocator(1, Limit);
        Assert.Equal(Limit, a.Allocate(1));
        Assert.Equal(Limit - 1, a.Allocate(1));
        Assert.Equal(Limit - 3, a.Allocate(2));   // 2 pages aligned to 2 below 0xFFFFE: 0xFFFFC
    }

    [Fact]
    public void SizesAreRoundedUpToAPowerOfTwoAndAlignedToIt()
    {
        var a = new IovaAllocator(1, Limit);
        a.Allocate(1);
        foreach (ulong pages in new ulong[] { 3, 5, 8, 17, 32, 33, 100, 300 })
        {
            ulong pfn = a.Allocate(pages);
            ulong size = System.Numerics.BitOperations.RoundUpToPowerOf2(pages);
            Assert.True(pfn % size == 0, $"{pages} pages at PFN 0x{pfn:x}: not aligned to {size}");
            Assert.True(pfn + size - 1 <= Limit);
        }
    }

    [Fact]
    public void RangesNeverOverlapAndStayBelowTheLimit()
    {
        var a = new IovaAllocator(1, Limit);
        var rng = new Random(3);
        var live = new List<(ulong Pfn, ulong Size, ulong Pages)>();
        for (int i = 0; i < 20_000; i++)
        {
            if (live.Count > 0 && rng.Next(3) == 0)
            {
                int k = rng.Next(live.Count);
                a.Free(live[k].Pfn, live[k].Pages);
                live.RemoveAt(k);
                continue;
            }
            ulong pages = (ulong)rng.Next(1, 100);
            ulong pfn = a.Allocate(pages);
            ulong size = System.Numerics.BitOperations.RoundUpToPowerOf2(pages);
            Assert.True(pfn >= 1 && pfn + size - 1 <= Limit);
            foreach (var (p, s, _) in live)
                Assert.False(pfn < p + s && p < pfn + size, $"[0x{pfn:x}, +{size}) overlaps [0x{p:x}, +{s})");
            live.Add((pfn, size, pages));
        }
    }

    [Fact]
    public void TheMostRecentlyFreedRangeOfASizeIsReusedFirst()
    {
        var a = new IovaAllocator(1, Limit);
        ulong x = a.Allocate(8), y = a.Allocate(8), z = a.Allocate(8);
        a.Free(x, 8);
        a.Free(z, 8);
        Assert.Equal(z, a.Allocate(8));
        Assert.Equal(x, a.Allocate(8));
        Assert.Equal(2, a.CacheHits);
        Assert.NotEqual(y, a.Allocate(8));        // y is still allocated: a fresh range, below the others
        Assert.Equal(4, a.TreeRanges);              // cached ranges stay in the tree, as in Linux
    }

    [Fact]
    public void AFreedRangeIsNotReusedForAnotherSizeFromTheCache()
    {
        var a = new IovaAllocator(1, Limit);
        ulong x = a.Allocate(4);
        a.Free(x, 4);
        ulong y = a.Allocate(8);
        Assert.NotEqual(x, y);
        Assert.Equal(x, a.Allocate(3));          // 3 rounds up to 4: the cached range
    }

    [Fact]
    public void LargeRangesGoBackToTheTreeAndTheSearchPointMovesUp()
    {
        var a = new IovaAllocator(1, Limit);
        ulong big = a.Allocate(64);               // above the rcache's 32 pages
        ulong below = a.Allocate(64);
        Assert.True(below < big);
        a.Free(big, 64);
        Assert.Equal(big, a.Allocate(64));        // the search restarts above: the freed range is found again
    }

    [Fact]
    public void AFullRcacheSpillsIntoTheDepotAndThenTheTree()
    {
        var a = new IovaAllocator(1, Limit);
        int n = (IovaAllocator.DepotMagazines + 3) * IovaAllocator.MagazineSize;
        var pfns = Enumerable.Range(0, n).Select(_ => a.Allocate(1)).ToList();
        int before = a.TreeRanges;
        foreach (ulong p in pfns)
            a.Free(p, 1);
        // Loaded + previous + depot hold (DepotMagazines + 2) magazines; the rest went back to the tree.
        Assert.Equal(before - IovaAllocator.MagazineSize, a.TreeRanges);
        var again = Enumerable.Range(0, n).Select(_ => a.Allocate(1)).ToHashSet();
        Assert.Equal(n, again.Count);
        Assert.True(a.CacheHits >= (IovaAllocator.DepotMagazines + 2) * IovaAllocator.MagazineSize);
    }

    [Fact]
    public void RunningOutOfSpaceIsAnError()
    {
        var a = new IovaAllocator(1, 64);
        a.Allocate(32);
        a.Allocate(16);
        Assert.Throws<InvalidOperationException>(() => a.Allocate(32));
    }
}
