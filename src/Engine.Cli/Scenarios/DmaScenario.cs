using System.Diagnostics;
using Engine.Control;
using Engine.Diagnostics;
using Engine.Dma;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Cli.Scenarios;

/// <summary>What the DMA scenario is asked to do.</summary>
internal sealed record DmaScenarioOptions(double Seconds, int Threads, ulong Seed);

/// <summary>One device's share of the run.</summary>
internal sealed record DeviceReport(string Name, string Pattern, long DmaOperations, long Bytes, long Translations, long PageRequests, long Faults);

/// <summary>What the DMA scenario measured.</summary>
internal sealed record DmaScenarioReport(
    int Threads,
    double Seconds,
    long Rounds,
    long Translations,
    double TranslationsPerSecond,
    double IotlbHitRate,
    long Walks,
    long Faults,
    long PageRequestsServed,
    long PageRequestsFailed,
    long Invalidations,
    long KvmOperations,
    IReadOnlyList<DeviceReport> Devices);

/// <summary>
/// The main job: a VM whose EPT is shared with two server IOMMUs through a KVM domain; a NIC
/// streaming 2 KiB packets through a ring, an NVMe doing random 4 KiB reads (DMA writes into the
/// guest), a GPU reading 2 MiB bursts; DMA on every thread while KVM write-protects (migration),
/// zaps (balloon) and re-maps ranges, with IO page faults served through PRI.
/// </summary>
/// <remarks>
/// Work comes in rounds (each device's burst, then one KVM operation in one-thread mode). With
/// more threads, DMA threads run rounds until the time is up while a KVM thread mutates the tables
/// concurrently. With one thread the run is <c>seconds × 1000</c> rounds in a fixed order, so the
/// same seed gives the same counts; the rate is then wall-clock over those rounds.
/// </remarks>
internal static class DmaScenario
{
    private const ulong SlotBytes = 512UL << 20;
    private const int RingEntries = 256;
    private const int PacketBytes = 2048;
    private const int PacketsPerRound = 32;
    private const int ReadsPerRound = 8;
    private const int GpuBurstBytes = 2 << 20;
    private const int RoundsPerScenarioSecond = 1000;

    // tally: the unit's metrics tally (engine monitor, dotnet-counters), added to once per transfer.
    private sealed class DeviceCounters(UnitTally? tally = null)
    {
        public long Operations, Bytes, Translations, PageRequests, Faults;

        public void Add(in DmaResult r)
        {
            tally?.Add(r.Translations, r.Transferred);
            Operations++;
            Bytes += r.Transferred;
            Translations += r.Translations;
            PageRequests += r.PageRequests;
            Faults += r.IsComplete ? 0 : 1;
        }

        public void Merge(DeviceCounters other)
        {
            Interlocked.Add(ref Operations, other.Operations);
            Interlocked.Add(ref Bytes, other.Bytes);
            Interlocked.Add(ref Translations, other.Translations);
            Interlocked.Add(ref PageRequests, other.PageRequests);
            Interlocked.Add(ref Faults, other.Faults);
        }
    }

    public static DmaScenarioReport Run(DmaScenarioOptions options, Action<double>? progress = null)
    {
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 4UL << 30 } });
        IommuInstance dmar0 = platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
        IommuInstance dmar1 = platform.AddIommu("dmar1", IommuPresets.GraniteRapidsServer);
        Device nic = platform.AddDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Device gpu = platform.AddDevice("gpu", TranslationRequest.Bdf(0x18, 0, 0), dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Device nvme = platform.AddDevice("nvme", TranslationRequest.Bdf(0x98, 0, 0), dmar1, DeviceAbilities.Pri);
        Vm vm = platform.CreateVm(new VmOptions { TdpLevels = 5, MaxHugePageLevel = 3, Name = "guest" });
        vm.AddMemslot(0, 0, SlotBytes, PageSize.Size2M);             // GPU and NVMe buffers
        vm.AddMemslot(1, SlotBytes, SlotBytes, PageSize.Size4K);     // NIC rings
        ulong slotPages = SlotBytes >> HostMemory.FrameShift;
        vm.Map(0, 2 * slotPages, Access.All);
        KvmTdpFd tdp = vm.ExportTdp();
        KvmDomain domain = platform.AllocateKvmDomain(nic, tdp);
        domain.Attach(nic);
        domain.Attach(gpu);
        domain.Attach(nvme);

        using MetricsRegistration metrics = EngineMetrics.Track(platform);
        metrics.Track(domain);
        UnitTally[] tallies = [EngineMetrics.TallyOf(dmar0.Unit), EngineMetrics.TallyOf(dmar0.Unit), EngineMetrics.TallyOf(dmar1.Unit)]; // nic, gpu, nvme
        var counters = new[] { new DeviceCounters(tallies[0]), new DeviceCounters(tallies[1]), new DeviceCounters(tallies[2]) };
        long rounds = 0, kvmOperations = 0;
        var stopwatch = Stopwatch.StartNew();
        if (options.Threads == 1)
        {
            var rng = new SplitMix64(options.Seed);
            long total = (long)Math.Ceiling(options.Seconds * RoundsPerScenarioSecond);
            var packet = new byte[PacketBytes];
            var block = new byte[4096];
            var burst = new byte[GpuBurstBytes];
            for (long r = 0; r < total; r++)
            {
                DeviceRound(r, ref rng, nic, gpu, nvme, counters, packet, block, burst);
                KvmOperation(vm, ref rng);
                kvmOperations++;
                rounds++;
                if ((r & 63) == 0)
                    progress?.Invoke((double)r / total);
            }
        }
        else
        {
            bool stop = false;
            var workers = Enumerable.Range(0, options.Threads - 1).Select(t => new Thread(() =>
            {
                var rng = new SplitMix64(options.Seed + (ulong)t + 1);
                var mine = new[] { new DeviceCounters(tallies[0]), new DeviceCounters(tallies[1]), new DeviceCounters(tallies[2]) };
                var packet = new byte[PacketBytes];
                var block = new byte[4096];
                var burst = new byte[GpuBurstBytes];
                long myRounds = 0;
                while (!Volatile.Read(ref stop))
                    DeviceRound(myRounds++, ref rng, nic, gpu, nvme, mine, packet, block, burst);
                for (int d = 0; d < 3; d++)
                    counters[d].Merge(mine[d]);
                Interlocked.Add(ref rounds, myRounds);
            }) { IsBackground = true, Name = $"dma-{t}" }).ToList();
            workers.ForEach(w => w.Start());
            // This thread is KVM: migration-like write-protects, balloon-like zaps, re-maps.
            var kvmRng = new SplitMix64(options.Seed);
            while (stopwatch.Elapsed.TotalSeconds < options.Seconds)
            {
                KvmOperation(vm, ref kvmRng);
                kvmOperations++;
                Thread.Sleep(1);
                progress?.Invoke(Math.Min(1, stopwatch.Elapsed.TotalSeconds / options.Seconds));
            }
            Volatile.Write(ref stop, true);
            workers.ForEach(w => w.Join());
        }
        double seconds = stopwatch.Elapsed.TotalSeconds;

        long translations = counters.Sum(c => c.Translations);
        long walks = dmar0.Unit.IotlbMisses + dmar1.Unit.IotlbMisses;
        string[] names = ["nic", "gpu", "nvme"];
        string[] patterns = ["2 KiB packets through a 256-entry ring", "2 MiB read bursts", "random 4 KiB reads into guest memory"];
        var devices = Enumerable.Range(0, 3).Select(d => new DeviceReport(names[d], patterns[d], counters[d].Operations, counters[d].Bytes,
            counters[d].Translations, counters[d].PageRequests, counters[d].Faults)).ToList();
        var report = new DmaScenarioReport(
            options.Threads, seconds, rounds, translations, translations / seconds,
            translations == 0 ? 0 : Math.Max(0, 1.0 - (double)walks / translations), walks,
            dmar0.Unit.Faults + dmar1.Unit.Faults, domain.PageRequestsServed, domain.PageRequestsFailed, domain.Invalidations,
            kvmOperations, devices);
        foreach (Device d in new[] { nic, gpu, nvme })
            domain.Detach(d);
        domain.Dispose();
        tdp.Dispose();
        return report;
    }

    private static void DeviceRound(long round, ref SplitMix64 rng, Device nic, Device gpu, Device nvme, DeviceCounters[] counters, byte[] packet, byte[] block, byte[] burst)
    {
        ulong slotPages = SlotBytes >> HostMemory.FrameShift;
        // NIC: the next packets of a receive ring of 2 KiB buffers in the 4K-backed slot.
        for (int p = 0; p < PacketsPerRound; p++)
        {
            ulong entry = (ulong)((round * PacketsPerRound + p) % RingEntries);
            counters[0].Add(DmaTransfer.Write(nic, SlotBytes + entry * PacketBytes, packet, pageFaults: true));
        }
        // NVMe: random 4 KiB reads, each a DMA write of the block into guest memory.
        for (int b = 0; b < ReadsPerRound; b++)
            counters[2].Add(DmaTransfer.Write(nvme, (rng.Next() % slotPages) << HostMemory.FrameShift, block, pageFaults: true));
        // GPU: a 2 MiB burst every eighth round, from a random 2 MiB-aligned buffer.
        if ((round & 7) == 0)
            counters[1].Add(DmaTransfer.Read(gpu, (rng.Next() % (SlotBytes / GpuBurstBytes)) * GpuBurstBytes, burst, pageFaults: true));
    }

    private static void KvmOperation(Vm vm, ref SplitMix64 rng)
    {
        ulong slotPages = SlotBytes >> HostMemory.FrameShift;
        switch (rng.Next() % 4)
        {
            case 0:   // migration: write-protect a 2 MiB range (the next DMA write faults and is logged)
                vm.WriteProtect((rng.Next() % (slotPages / 512)) * 512, 512);
                break;
            case 1:   // balloon: zap 64 pages around the NIC's ring (the next packets fault them back in)
                vm.Zap(slotPages + rng.Next() % 256, 64);
                break;
            case 2:   // re-map a 2 MiB range of the buffer slot
                vm.Map((rng.Next() % (slotPages / 512)) * 512, 512, Access.All);
                break;
            default:  // zap a 2 MiB range of the buffer slot (GPU and NVMe fault it back)
                vm.Zap((rng.Next() % (slotPages / 512)) * 512, 512);
                break;
        }
    }
}
