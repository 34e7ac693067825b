using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

[Trait("Category", "Simd")]
public class IotlbTests
{
    public static TheoryData<bool> Paths() => new() { false, true };

    private static IotlbEntry Entry(ulong hpa, PageSize size = PageSize.Size4K, Access perms = Access.ReadWrite, bool snoop = true) => new(hpa, size, perms, snoop);

    private static void Fill(Iotlb tlb, ushort did, ulong iova, IotlbEntry entry) =>
        Assert.True(tlb.TryFill(did, iova, entry, tlb.BeginFill(did)), "fill was skipped");

    [Theory]
    [MemberData(nameof(Paths))]
    public void AFilledTranslationHitsWithItsAttributes(bool simd)
    {
        using var tlb = new Iotlb(64, simd);
        Assert.False(tlb.TryLookup(1, 0x1234_5000, 2, out _));
        Fill(tlb, 1, 0x1234_5000, Entry(0x9_8765_4000, perms: Access.Read, snoop: false));
        Assert.True(tlb.TryLookup(1, 0x1234_5ABC, 2, out IotlbEntry hit));
        Assert.Equal(Entry(0x9_8765_4000, perms: Access.Read, snoop: false), hit);
        // Another domain, another page: misses.
        Assert.False(tlb.TryLookup(2, 0x1234_5000, 2, out _));
        Assert.False(tlb.TryLookup(1, 0x1234_6000, 2, out _));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void LargePagesHitAnywhereInsideAndOnlyWhereTheDomainUsesThem(bool simd)
    {
        using var tlb = new Iotlb(64, simd);
        Fill(tlb, 3, 0x4000_0000, Entry(0x8000_0000, PageSize.Size1G));
        Fill(tlb, 3, 0x20_0000, Entry(0x60_0000, PageSize.Size2M));
        Assert.True(tlb.TryLookup(3, 0x7FFF_F000, 2, out IotlbEntry g));
        Assert.Equal(PageSize.Size1G, g.Size);
        Assert.True(tlb.TryLookup(3, 0x3F_F000, 1, out IotlbEntry m));
        Assert.Equal(0x60_0000UL, m.PageHpa);
        Assert.False(tlb.TryLookup(3, 0x7FFF_F000, 1, out _), "a 2M-only domain must not probe for 1G entries");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void SetsEvictWhenMoreThanThreeTagsCollide(bool simd)
    {
        using var tlb = new Iotlb(1, simd);
        for (ulong p = 0; p < 5; p++)
            Fill(tlb, 1, p << 12, Entry((p + 100) << 12));
        Assert.Equal(3, tlb.CountValid());
        int hits = 0;
        for (ulong p = 0; p < 5; p++)
        {
            if (tlb.TryLookup(1, p << 12, 0, out IotlbEntry e))
            {
                hits++;
                Assert.Equal((p + 100) << 12, e.PageHpa);
            }
        }
        Assert.Equal(3, hits);
    }

    [Fact]
    public void RefillingATagReplacesItInPlace()
    {
        using var tlb = new Iotlb(1);
        Fill(tlb, 1, 0x1000, Entry(0x5000));
        Fill(tlb, 1, 0x1000, Entry(0x6000));
        Assert.Equal(1, tlb.CountValid());
        Assert.True(tlb.TryLookup(1, 0x1000, 0, out IotlbEntry e));
        Assert.Equal(0x6000UL, e.PageHpa);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void DomainAndGlobalInvalidationDropExactlyWhatTheyCover(bool simd)
    {
        using var tlb = new Iotlb(64, simd);
        Fill(tlb, 1, 0x1000, Entry(0x5000));
        Fill(tlb, 2, 0x1000, Entry(0x7000));
        tlb.InvalidateDomain(1);
        Assert.False(tlb.TryLookup(1, 0x1000, 0, out _));
        Assert.True(tlb.TryLookup(2, 0x1000, 0, out _));
        tlb.InvalidateAll();
        Assert.False(tlb.TryLookup(2, 0x1000, 0, out _));
        Fill(tlb, 2, 0x1000, Entry(0x7000));
        Assert.True(tlb.TryLookup(2, 0x1000, 0, out _));
    }

    [Fact]
    public void PageSelectiveInvalidationHonoursTheAddressMaskAndHitsOverlappingLargePages()
    {
        using var tlb = new Iotlb(256);
        for (ulong p = 0; p < 16; p++)
            Fill(tlb, 1, p << 12, Entry((p + 64) << 12));
        Fill(tlb, 1, 0x4000_0000, Entry(0x8000_0000, PageSize.Size1G));
        Fill(tlb, 2, 0x4000_0000, Entry(0x8000_0000, PageSize.Size1G));
        tlb.InvalidatePages(1, 0x5000, am: 2); // pages 4..7
        for (ulong p = 0; p < 16; p++)
            Assert.Equal(p is < 4 or > 7, tlb.TryLookup(1, p << 12, 2, out _));
        tlb.InvalidatePages(1, 0x4123_4000, am: 0); // one 4K page inside the 1G entry
        Assert.False(tlb.TryLookup(1, 0x4000_0000, 2, out _));
        Assert.True(tlb.TryLookup(2, 0x4000_0000, 2, out _));
        // A mask wider than the cache sweeps every set.
        tlb.InvalidatePages(1, 0, am: 20);
        Assert.Equal(1, tlb.CountValid());
        Assert.Throws<ArgumentOutOfRangeException>(() => tlb.InvalidatePages(1, 0, 53));
    }

    [Fact]
    public void AFillWhoseWalkRacedAnInvalidationIsDropped()
    {
        using var tlb = new Iotlb(64);
        Iotlb.FillTicket ticket = tlb.BeginFill(1);
        tlb.InvalidatePages(1, 0x1000, 0);
        Assert.False(tlb.TryFill(1, 0x1000, Entry(0x5000), ticket));
        ticket = tlb.BeginFill(1);
        tlb.InvalidateDomain(1);
        Assert.False(tlb.TryFill(1, 0x1000, Entry(0x5000), ticket));
        Assert.False(tlb.TryLookup(1, 0x1000, 0, out _));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EverySizeADomainHasCachedIsFoundWhateverOrderTheyCameIn(bool simd)
    {
        // The per-domain size hint must never hide a size: 1G cached first, then 2M, then 4K.
        using var tlb = new Iotlb(64, simd);
        Fill(tlb, 9, 0x4000_0000, Entry(0x1_0000_0000, PageSize.Size1G));
        Assert.True(tlb.TryLookup(9, 0x4123_4567, 2, out IotlbEntry g));
        Assert.Equal((PageSize.Size1G, 0x1_0000_0000UL), (g.Size, g.PageHpa));
        Assert.False(tlb.TryLookup(9, 0x20_0000, 2, out _));
        Fill(tlb, 9, 0x20_0000, Entry(0x60_0000, PageSize.Size2M));
        Fill(tlb, 9, 0x1000, Entry(0x7000));
        Assert.True(tlb.TryLookup(9, 0x2F_FFFF, 2, out IotlbEntry m));
        Assert.Equal((PageSize.Size2M, 0x60_0000UL), (m.Size, m.PageHpa));
        Assert.True(tlb.TryLookup(9, 0x1FFF, 2, out IotlbEntry k));
        Assert.Equal((PageSize.Size4K, 0x7000UL), (k.Size, k.PageHpa));
        Assert.True(tlb.TryLookup(9, 0x7FFF_FFFF, 2, out g));
        Assert.Equal(PageSize.Size1G, g.Size);
        // Another domain has cached nothing: every probe is skipped, and still a miss.
        Assert.False(tlb.TryLookup(10, 0x4123_4567, 2, out _));
        // Addresses beyond the widest input address never alias a cached page.
        Assert.False(tlb.TryLookup(9, (1UL << 57) | 0x1000, 2, out _));
    }

    [Fact]
    public void GenerationsNeverWrapOntoAStaleEntry()
    {
        using var tlb = new Iotlb(16);
        Fill(tlb, 5, 0x1000, Entry(0x5000));
        for (int i = 0; i < 4096; i++)
            tlb.InvalidateDomain(5);   // the 10-bit generation comes back to where it was four times
        Assert.False(tlb.TryLookup(5, 0x1000, 0, out _));
        Fill(tlb, 6, 0x1000, Entry(0x6000));
        for (int i = 0; i < 4096; i++)
            tlb.InvalidateAll();
        Assert.False(tlb.TryLookup(6, 0x1000, 0, out _));
    }

    [Fact]
    public void TheScalarAndVectorPathsAgreeOnEverySetContent()
    {
        using var scalar = new Iotlb(8, useSimd: false);
        using var vector = new Iotlb(8, useSimd: true);
        var rng = new Random(11);
        for (int i = 0; i < 20_000; i++)
        {
            ushort did = (ushort)rng.Next(4);
            ulong iova = (ulong)rng.Next(64) << 12;
            int op = rng.Next(10);
            if (op < 4)
            {
                var e = Entry((ulong)rng.Next(1 << 20) << 12, perms: (Access)rng.Next(1, 4));
                scalar.TryFill(did, iova, e, scalar.BeginFill(did));
                vector.TryFill(did, iova, e, vector.BeginFill(did));
            }
            else if (op == 4)
            {
                int am = rng.Next(3);
                scalar.InvalidatePages(did, iova, am);
                vector.InvalidatePages(did, iova, am);
            }
            else
            {
                bool a = scalar.TryLookup(did, iova, 0, out IotlbEntry ea);
                bool b = vector.TryLookup(did, iova, 0, out IotlbEntry eb);
                Assert.Equal(a, b);
                Assert.Equal(ea, eb);
            }
        }
    }

    [Fact]
    public void BadSizesAreRefused()
    {
        Assert.Equal("sets", Assert.Throws<ArgumentOutOfRangeException>(() => new Iotlb(3)).ParamName);
        Assert.Equal("sets", Assert.Throws<ArgumentOutOfRangeException>(() => new Iotlb(0)).ParamName);
    }

    [Fact]
    public void LookupsAllocateNothing()
    {
        using var tlb = new Iotlb();
        for (ulong p = 0; p < 1000; p++)
            Fill(tlb, 1, p << 12, Entry(p << 12));
        // The first pass lets the JIT tier the loop up (on-stack replacement may allocate); the second is measured.
        ulong Pass()
        {
            ulong sum = 0;
            for (int i = 0; i < 1_000_000; i++)
            {
                if (tlb.TryLookup(1, (ulong)(i % 1000) << 12, 2, out IotlbEntry e))
                    sum += e.PageHpa;
            }
            return sum;
        }
        Assert.NotEqual(0UL, Pass());
        // Some round of passes allocates nothing: a single measured pass failed once in the loaded
        // suite, when the runtime installed recompiled code during it.
        ulong total = 0;
        SteadyStateAllocation.AssertSomeRoundAllocatesNothing(() => total += Pass(), "1,000,000 lookups");
        Assert.NotEqual(0UL, total);
    }

    [Fact]
    public void EightTicketsAtOnceAreTheTicketsBeginFillTakes()
    {
        // The batch takes its misses' tickets eight at a time (BeginFillGenerationsOfStates, PageSequenceForFill):
        // each lane must be what BeginFill takes for that DID, through domain and global invalidations,
        // past the generation's wrap, for the lowest and highest DIDs.
        Assert.SkipUnless(Avx512F.IsSupported && Avx2.IsSupported, "eight tickets at once need AVX-512F and AVX2");
        using var tlb = new Iotlb(64);
        var rng = new Random(29);
        ushort[] busy = [0, 1, 7, 300, 65535];
        // DID 1 has cached a 4K page, DID 7 a 2M page; no other DID has cached anything.
        Assert.True(tlb.TryFill(1, 0x1000, new IotlbEntry(0x5000, PageSize.Size4K, Access.Read, false), tlb.BeginFill(1)));
        Assert.True(tlb.TryFill(7, 0x20_0000, new IotlbEntry(0x40_0000, PageSize.Size2M, Access.Read, false), tlb.BeginFill(7)));
        for (int round = 0; round < 300; round++)
        {
            for (int k = 0; k < 7; k++)
                tlb.InvalidateDomain(busy[rng.Next(busy.Length)]);   // 2100 in all: generations wrap
            if (round % 4 == 0)
                tlb.InvalidateAll();
            if (round % 5 == 0)
                tlb.InvalidatePages((ushort)rng.Next(65536), (ulong)rng.Next(1 << 20) << 12, 0);
            var dids = new int[8];
            for (int i = 0; i < 8; i++)
                dids[i] = rng.Next(3) == 0 ? rng.Next(65536) : busy[rng.Next(busy.Length)];
            Vector512<ulong> generations = tlb.BeginFillGenerationsOfStates(StatesOf(tlb, dids), out Vector512<ulong> sizes);
            for (int i = 0; i < 8; i++)
            {
                Iotlb.FillTicket ticket = tlb.BeginFill((ushort)dids[i]);
                Assert.Equal(ticket.Generation, generations[i]);
                Assert.Equal(ticket.PageSequence, tlb.PageSequenceForFill);
                Assert.Equal(dids[i] switch { 1 => 1UL, 7 => 2UL, _ => 0UL }, sizes[i]);   // the sizes each DID has cached
            }
        }
    }

    [Fact]
    public unsafe void ADomainsInvalidationCountWrapsWithoutTouchingItsCachedSizes()
    {
        // The domain-selective count is bits 31:0 of a DID's state, the cached sizes bits 34:32. After
        // 2^32 invalidations of one DID the count wraps: the sizes must stay as they were, and the
        // entries filled before the wrap must be gone, the ones filled after it found.
        using var tlb = new Iotlb(64);
        Assert.True(tlb.TryFill(5, 0x1000, new IotlbEntry(0x5000, PageSize.Size4K, Access.Read, false), tlb.BeginFill(5)));
        tlb.DomainStateWords[5] |= uint.MaxValue;   // the count at its last value, as after 2^32 - 1 invalidations
        Assert.True(tlb.TryFill(5, 0x2000, new IotlbEntry(0x6000, PageSize.Size4K, Access.Read, false), tlb.BeginFill(5)));
        Assert.True(tlb.TryLookup(5, 0x2000, 2, out _));
        tlb.InvalidateDomain(5);
        Assert.Equal(1UL, tlb.DomainStateWords[5] >> 32);   // 4K only, as before the wrap
        Assert.Equal(0U, (uint)tlb.DomainStateWords[5]);
        Assert.False(tlb.TryLookup(5, 0x2000, 2, out _));
        Assert.True(tlb.TryFill(5, 0x3000, new IotlbEntry(0x7000, PageSize.Size4K, Access.Read, false), tlb.BeginFill(5)));
        Assert.True(tlb.TryLookup(5, 0x3000, 2, out IotlbEntry entry));
        Assert.Equal(0x7000UL, entry.PageHpa);
    }

    /// <summary>The state words of eight DIDs, read as the batch reads them.</summary>
    private static unsafe Vector512<ulong> StatesOf(Iotlb tlb, int[] dids)
    {
        ulong* states = tlb.DomainStateWords;
        return Vector512.Create([.. dids.Select(d => states[d])]);
    }
}
