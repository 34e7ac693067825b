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
        // Per page: the writer's cycle << 2 | phase (0 mapped, 1 zapped and flushed, 2 being re-mapped). A
        // request ran entirely inside one flushed window when it reads the same value, phase 1, before and
        // after (a phase alone would repeat if the page were zapped again while the request ran).
        var state = new long[Pages];
        var failures = new List<string>();
        long checkedUnmapped = 0, successes = 0, calls = 0;
        bool stop = false;

        var readers = Enumerable.Range(0, 3).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            long unmapped = 0, ok = 0;
            // One by one, or (batch) 16 at a time through TranslateBatch: each request is judged by
            // its page's state before the call and after it.
            int width = batch ? 16 : 1;
            var pages = new int[width];
            var before = new long[width];
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
                // Published per call: the writer stops on them.
                Interlocked.Add(ref checkedUnmapped, unmapped);
                Interlocked.Add(ref successes, ok);
                Interlocked.Increment(ref calls);
                unmapped = 0;
                ok = 0;
            }

            void Check(int page, long s1, TranslationResult r, long s2)
            {
                if (r.IsSuccess)
                {
                    ok++;
                    if (r.Hpa != (expected[page] | 0x10))
                        lock (failures) failures.Add($"page {page}: HPA 0x{r.Hpa:x}, expected 0x{expected[page] | 0x10:x}");
                }
                if (s1 == s2 && (s1 & 3) == 1)
                {
                    unmapped++;
                    if (r.IsSuccess)
                        lock (failures) failures.Add($"page {page}: translated {r} after its zap was flushed");
                }
            }
        })).ToList();
        readers.ForEach(r => r.Start());

        // The writer runs until the readers have checked enough (not for a fixed time: CI is loaded), with
        // a generous cap so a starved reader fails the test instead of hanging it.
        var rng = new Random(5);
        var deadline = DateTime.UtcNow.AddSeconds(1);
        var cap = DateTime.UtcNow.AddSeconds(60);
        long cycles = 0;
        while ((DateTime.UtcNow < deadline || Volatile.Read(ref calls) < 3000 || Volatile.Read(ref checkedUnmapped) < 100) && DateTime.UtcNow < cap)
        {
            long cycle = ++cycles << 2;
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
                Volatile.Write(ref state[p], cycle | 1);
            Thread.SpinWait(2000);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], cycle | 2);
            f.Vm.Map((ulong)page, (ulong)count, Access.All);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], cycle);
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {failures.FirstOrDefault()}");
        Assert.True(calls >= 3000 && checkedUnmapped >= 100 && successes > 0,
            $"the readers were starved for 60 s: {calls} calls, {checkedUnmapped} checks of flushed pages, {successes} successes");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchesAcrossDomainsOfTwoLevelCountsNeverSeeAZappedMappingAfterItsFlush(bool simd)
    {
        // Two devices in two domains: DID 5 in a 4-level table, DID 9 in a 5-level table of another VM.
        // Readers translate batches that mix both devices (each chunk's misses walk as one group, each in
        // its own table, with its own DID's ticket) while a writer zaps pages of either VM, invalidates
        // that DID's pages, and maps them again. A success is always its own VM's HPA, and a request that
        // ran entirely after its page's flush and before the re-map faults.
        using var f = new UnitFixture(scalable: true, simd: simd);
        using var wide = new Engine.Kvm.Vm(f.Memory, new Engine.Kvm.VmOptions { TdpLevels = 5, MaxHugePageLevel = 3 });
        wide.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        const int Pages = 64;   // few pages: a zapped page is in most batches, and each re-map makes its pages miss again
        const ushort WideDid = 9;
        ushort wideSid = TranslationRequest.Bdf(0x3A, 6, 0);
        f.Tables.SetScalableContext(wideSid);
        f.Tables.SetPasidEntry(wideSid, 0, PasidEntry.SecondLevel(wide.Tdp.RootHpa, 3, WideDid, pgsnp: true, pwsnp: true));
        f.Vm.Map(0, Pages, Access.All);
        wide.Map(0, Pages, Access.All);
        Engine.Kvm.Vm[] vms = [f.Vm, wide];
        ushort[] sids = [UnitFixture.Sid, wideSid];
        ushort[] dids = [UnitFixture.Did, WideDid];
        var expected = vms.Select(vm => Enumerable.Range(0, Pages).Select(p => vm.FindSlot((ulong)p)!.PeekHpa((ulong)p)).ToArray()).ToArray();
        f.Unit.EnableQueuedInvalidation(f.Queue);
        // Per page: the writer's cycle << 2 | phase (0 mapped, 1 zapped and flushed, 2 being re-mapped). A
        // request ran entirely inside one flushed window when it reads the same value, phase 1, before
        // and after (with few pages, a page is zapped again while a batch runs: a phase alone would repeat).
        var state = new long[2, Pages];
        var failures = new List<string>();
        long checkedUnmapped = 0, successes = 0, batches = 0;
        bool stop = false;

        var readers = Enumerable.Range(0, 2).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            const int Width = 100;   // a chunk of 64 and a short one
            var vmOf = new int[Width];
            var pages = new int[Width];
            var before = new long[Width];
            var requests = new TranslationRequest[Width];
            var results = new TranslationResult[Width];
            while (!Volatile.Read(ref stop))
            {
                for (int k = 0; k < Width; k++)
                {
                    vmOf[k] = rng.Next(2);
                    pages[k] = rng.Next(Pages);
                    requests[k] = new TranslationRequest(sids[vmOf[k]], ((ulong)pages[k] << 12) | 0x20, Access.Write);
                    before[k] = Volatile.Read(ref state[vmOf[k], pages[k]]);
                }
                f.Unit.TranslateBatch(requests, results);
                long unmapped = 0, ok = 0;
                for (int k = 0; k < Width; k++)
                {
                    long after = Volatile.Read(ref state[vmOf[k], pages[k]]);
                    TranslationResult r = results[k];
                    if (r.IsSuccess)
                    {
                        ok++;
                        ulong want = expected[vmOf[k]][pages[k]] | 0x20;
                        if (r.Hpa != want || r.Did != dids[vmOf[k]])
                            lock (failures) failures.Add($"VM {vmOf[k]} page {pages[k]}: {r}, expected HPA 0x{want:x} under DID {dids[vmOf[k]]}");
                    }
                    if (before[k] == after && (after & 3) == 1)
                    {
                        unmapped++;
                        if (r.IsSuccess)
                            lock (failures) failures.Add($"VM {vmOf[k]} page {pages[k]}: translated {r} after its zap was flushed");
                    }
                }
                Interlocked.Add(ref checkedUnmapped, unmapped);
                Interlocked.Add(ref successes, ok);
                Interlocked.Increment(ref batches);
            }
        })).ToList();
        readers.ForEach(r => r.Start());

        // The writer runs until the readers have checked enough (not for a fixed time: CI is loaded),
        // with a generous cap so a starved reader fails the test instead of hanging it.
        var rng = new Random(5);
        var cap = DateTime.UtcNow.AddSeconds(60);
        int cycles = 0;
        while ((cycles < 10000 || Volatile.Read(ref batches) < 400 || Volatile.Read(ref checkedUnmapped) < 20) && DateTime.UtcNow < cap)
        {
            cycles++;
            int v = rng.Next(2);
            int page = rng.Next(Pages - 8);
            int count = rng.Next(1, 8);
            vms[v].Zap((ulong)page, (ulong)count);
            int am = 0;
            while ((1 << am) < count + (page & ((1 << am) - 1)))
                am++;
            f.Unit.Submit(InvalidationDescriptor.Iotlb(3, dids[v], (ulong)page << 12, am));
            long cycle = (long)cycles << 2;
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[v, p], cycle | 1);
            Thread.SpinWait(2000);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[v, p], cycle | 2);
            vms[v].Map((ulong)page, (ulong)count, Access.All);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[v, p], cycle);
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {failures.FirstOrDefault()}");
        Assert.True(batches >= 400 && checkedUnmapped >= 20 && successes > 0,
            $"the readers were starved for 60 s: {batches} batches, {checkedUnmapped} checks of flushed pages, {successes} successes");
    }
}
