using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// The IOTLB's promise under contention: translators look up, walk a shared "page table" on a miss
/// and fill, while a writer remaps pages and invalidates. A lookup that starts after an invalidation
/// returned must never yield the mapping it removed, and no entry may ever be torn.
/// </summary>
[Trait("Category", "Simd")]
public class IotlbStressTests
{
    private const int Pages = 64;
    private const ushort Did = 7;

    // The HPA encodes the page and the mapping's version, so a stale or torn result is recognisable.
    private static ulong Hpa(ulong page, ulong version) => (page << 32 | version) << 12;

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void NoLookupAfterAnInvalidationReturnsWhatItRemovedAndNothingIsTorn(bool simd, bool pageSelectiveOnly)
    {
        using var tlb = new Iotlb(16, simd);   // small, so sets are shared and evictions are constant
        var table = new ulong[Pages];          // current version per page: the "page table"
        var completed = new ulong[Pages];      // version whose invalidation has returned
        for (ulong p = 0; p < Pages; p++)
            table[p] = 1;
        var failures = new List<string>();
        long lookups = 0, hits = 0;
        bool stop = false;

        var readers = Enumerable.Range(0, 3).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            long n = 0, h = 0;
            while (!Volatile.Read(ref stop))
            {
                ulong page = (ulong)rng.Next(Pages);
                ulong floor = Volatile.Read(ref completed[page]);
                ulong iova = page << 12;
                ulong hpa;
                if (tlb.TryLookup(Did, iova, 0, out IotlbEntry e))
                {
                    hpa = e.PageHpa;
                    h++;
                }
                else
                {
                    Iotlb.FillTicket ticket = tlb.BeginFill(Did);
                    hpa = Hpa(page, Volatile.Read(ref table[page]));
                    tlb.TryFill(Did, iova, new IotlbEntry(hpa, PageSize.Size4K, Access.ReadWrite, true), ticket);
                }
                ulong gotPage = hpa >> 44, gotVersion = (hpa >> 12) & 0xFFFF_FFFF;
                if (gotPage != page || gotVersion < floor)
                {
                    lock (failures)
                        failures.Add($"page {page}: got page {gotPage} version {gotVersion}, invalidation of version {floor} had returned");
                }
                // Published every 256 lookups: the writer stops on them.
                if ((++n & 255) == 0)
                {
                    Interlocked.Add(ref lookups, 256);
                    Interlocked.Add(ref hits, h);
                    h = 0;
                }
            }
            Interlocked.Add(ref lookups, n & 255);
            Interlocked.Add(ref hits, h);
        })).ToList();
        readers.ForEach(r => r.Start());

        // The writer runs for a second and until the readers have hit enough (not for a fixed time
        // alone: CI is loaded), with a generous cap so starved readers fail the test instead of hanging it.
        var writer = new Random(99);
        var deadline = DateTime.UtcNow.AddSeconds(1);
        var cap = DateTime.UtcNow.AddSeconds(60);
        while ((DateTime.UtcNow < deadline || Volatile.Read(ref hits) <= 1000) && DateTime.UtcNow < cap)
        {
            ulong page = (ulong)writer.Next(Pages);
            ulong version = table[page] + 1;
            Volatile.Write(ref table[page], version);     // the page table changes first
            switch (pageSelectiveOnly ? 0 : writer.Next(3)) // then the IOTLB is invalidated
            {
                case 0: tlb.InvalidatePages(Did, page << 12, writer.Next(3)); break;
                case 1: tlb.InvalidateDomain(Did); break;
                default: tlb.InvalidateAll(); break;
            }
            Volatile.Write(ref completed[page], version);  // from here on, older versions are stale
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} stale or torn results, first: {failures.FirstOrDefault()}");
        Assert.True(hits > 1000 && lookups > hits, $"the test did not exercise the cache: {lookups} lookups, {hits} hits");
    }
}
