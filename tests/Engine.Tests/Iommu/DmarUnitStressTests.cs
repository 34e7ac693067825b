using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// DMA on several threads through a unit whose second-stage table is KVM's EPT, while KVM zaps and
/// re-maps pages and the unit is invalidated after each zap: a translation that runs entirely after
/// the invalidation returned and before the re-map must fault, and a success is never a wrong HPA.
/// </summary>
public class DmarUnitStressTests
{
    [Theory]
    [InlineData(true, false, false)]
    [InlineData(true, true, false)]
    [InlineData(false, false, false)]
    [InlineData(true, true, true)]
    [InlineData(false, true, true)]
    public void NoTranslationAfterTheFlushSeesTheZappedMapping(bool queued, bool simd, bool batch)
    {
        using var f = new UnitFixture(scalable: true, simd: simd);
        const int Pages = 2048; // 8 MiB of 4K pages inside 2M-backed memory, mapped at 2M and split by zaps
        f.Vm.Map(0, Pages, Access.All);
        var expected = Enumerable.Range(0, Pages).Select(p => f.Backing((ulong)p << 12)).ToArray();
        if (queued)
            f.Unit.EnableQueuedInvalidation(f.Queue);
        var state = new int[Pages]; // 0 mapped, 1 zapped and flushed, 2 being re-mapped
        var failures = new List<string>();
        long checkedUnmapped = 0, successes = 0;
        bool stop = false;

        var readers = Enumerable.Range(0, 3).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            long unmapped = 0, ok = 0;
            // One by one, or (batch) 16 at a time through TranslateBatch: each request is judged by
            // its page's state before the call and after it.
            int width = batch ? 16 : 1;
            var pages = new int[width];
            var before = new int[width];
            var requests = new TranslationRequest[width];
            var results = new TranslationResult[width];
            while (!Volatile.Read(ref stop))
            {
                for (int k = 0; k < width; k++)
                {
                    pages[k] = rng.Next(Pages);
                    requests[k] = new TranslationRequest(UnitFixture.Sid, ((ulong)pages[k] << 12) | 0x10, Access.Write);
                    before[k] = Volatile.Read(ref state[pages[k]]);
                }
                if (batch)
                    f.Unit.TranslateBatch(requests, results);
                else
                    results[0] = f.Unit.Translate(requests[0]);
                for (int k = 0; k < width; k++)
                    Check(pages[k], before[k], results[k], Volatile.Read(ref state[pages[k]]));
            }
            Interlocked.Add(ref checkedUnmapped, unmapped);
            Interlocked.Add(ref successes, ok);

            void Check(int page, int s1, TranslationResult r, int s2)
            {
                if (r.IsSuccess)
                {
                    ok++;
                    if (r.Hpa != (expected[page] | 0x10))
                        lock (failures) failures.Add($"page {page}: HPA 0x{r.Hpa:x}, expected 0x{expected[page] | 0x10:x}");
                }
                if (s1 == 1 && s2 == 1)
                {
                    unmapped++;
                    if (r.IsSuccess)
                        lock (failures) failures.Add($"page {page}: translated {r} after its zap was flushed");
                }
            }
        })).ToList();
        readers.ForEach(r => r.Start());

        var rng = new Random(5);
        var deadline = DateTime.UtcNow.AddSeconds(1);
        while (DateTime.UtcNow < deadline)
        {
            int page = rng.Next(Pages);
            int count = Math.Min(rng.Next(1, 8), Pages - page);
            f.Vm.Zap((ulong)page, (ulong)count);
            int am = 0;
            while ((1 << am) < count + (page & ((1 << am) - 1)))
                am++;
            if (queued)
                f.Unit.Submit(InvalidationDescriptor.Iotlb(3, UnitFixture.Did, (ulong)page << 12, am));
            else
                f.Unit.WriteRegister(f.Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | 2UL << 60 | (ulong)UnitFixture.Did << 32);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], 1);
            Thread.SpinWait(2000);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], 2);
            f.Vm.Map((ulong)page, (ulong)count, Access.All);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], 0);
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {failures.FirstOrDefault()}");
        Assert.True(checkedUnmapped > 100 && successes > 10_000, $"too little coverage: {checkedUnmapped} unmapped checks, {successes} successes");
    }
}
