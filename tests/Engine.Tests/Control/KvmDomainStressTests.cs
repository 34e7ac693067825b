using Engine.Control;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>
/// DMA on several threads, through devices behind two IOMMUs sharing KVM's EPT, while KVM zaps and
/// re-maps: KVM's flush notification reaches both IOMMUs before Zap returns, so a translation that
/// runs entirely between that return and the re-map must fault; a success is never a wrong HPA.
/// </summary>
public class KvmDomainStressTests
{
    [Fact]
    public void NoDmaSeesAMappingAfterKvmsFlushReturned()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain domain = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        domain.Attach(f.Nic);
        domain.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        const int Pages = 4096;
        f.Vm.Map(0, Pages, Access.All);
        var expected = Enumerable.Range(0, Pages).Select(p => f.Backing((ulong)p << 12)).ToArray();
        // Per page: the writer's cycle << 2 | phase (0 mapped, 1 zapped and flushed, 2 being re-mapped). A
        // translation ran entirely inside one flushed window when it reads the same value, phase 1, before
        // and after (a phase alone would repeat if the page were zapped again while a reader was descheduled).
        var state = new long[Pages];
        var failures = new List<string>();
        long unmappedChecks = 0, successes = 0;
        bool stop = false;
        Device[] devices = [f.Nic, f.Nvme];

        var readers = Enumerable.Range(0, 3).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            long checks = 0, ok = 0;
            while (!Volatile.Read(ref stop))
            {
                Device device = devices[rng.Next(devices.Length)];
                int page = rng.Next(Pages);
                long s1 = Volatile.Read(ref state[page]);
                TranslationResult r = device.Translate(((ulong)page << 12) | 0x40, Access.Read);
                long s2 = Volatile.Read(ref state[page]);
                if (r.IsSuccess)
                {
                    ok++;
                    if (r.Hpa != (expected[page] | 0x40))
                        lock (failures) failures.Add($"{device.Name} page {page}: 0x{r.Hpa:x}, expected 0x{expected[page] | 0x40:x}");
                }
                if (s1 == s2 && (s1 & 3) == 1)
                {
                    checks++;
                    if (r.IsSuccess)
                        lock (failures) failures.Add($"{device.Name} page {page}: {r} after KVM's flush returned");
                }
                if (checks + ok >= 256)
                {
                    // Published as they grow: the writer stops on them.
                    Interlocked.Add(ref unmappedChecks, checks);
                    Interlocked.Add(ref successes, ok);
                    checks = 0;
                    ok = 0;
                }
            }
            Interlocked.Add(ref unmappedChecks, checks);
            Interlocked.Add(ref successes, ok);
        })).ToList();
        readers.ForEach(r => r.Start());

        // The writer runs for 1.5 s and until the readers have checked enough (not for a fixed time
        // alone: CI is loaded), with a generous cap so starved readers fail the test instead of hanging it.
        var rng = new Random(17);
        var deadline = DateTime.UtcNow.AddSeconds(1.5);
        var cap = DateTime.UtcNow.AddSeconds(60);
        long cycles = 0;
        while ((DateTime.UtcNow < deadline || Volatile.Read(ref unmappedChecks) <= 100 || Volatile.Read(ref successes) <= 10_000) && DateTime.UtcNow < cap)
        {
            long cycle = ++cycles << 2;
            int page = rng.Next(Pages);
            int count = Math.Min(rng.Next(1, 600), Pages - page);
            f.Vm.Zap((ulong)page, (ulong)count);             // notifies the domain, which flushes both IOMMUs
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], cycle | 1);
            Thread.SpinWait(5000);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], cycle | 2);
            f.Vm.Map((ulong)page, (ulong)count, Access.All);
            for (int p = page; p < page + count; p++)
                Volatile.Write(ref state[p], cycle);
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {failures.FirstOrDefault()}");
        Assert.True(unmappedChecks > 100 && successes > 10_000, $"too little coverage: {unmappedChecks} checks while unmapped, {successes} successes");
        Assert.True(domain.Invalidations > 10);
    }
}
