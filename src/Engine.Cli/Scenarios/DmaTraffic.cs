using Engine.Control;
using Engine.Diagnostics;
using Engine.Dma;
using Engine.Iommu;
using Engine.Memory;

namespace Engine.Cli.Scenarios;

/// <summary>
/// One thread's device traffic in the DMA scenario, and what came of it. A round is 32 NIC packets,
/// 8 NVMe blocks and, every eighth round, one GPU burst.
/// </summary>
/// <remarks>
/// A device recovers from an IO page fault as a PRI device does: page request, response, retry
/// (<see cref="DmaTransfer"/> with <c>pageFaults</c>). When the retry faults again, it asks again,
/// up to <see cref="MaxPageRequestsPerPage"/> times for the same page: between the page request
/// and the retry, KVM may zap the page again — a race a real device loses too and answers the same
/// way. Each such second request is counted, and whether a KVM operation ran meanwhile, so the
/// report can say why it happened rather than show a faulted DMA nobody can explain.
/// </remarks>
internal sealed class DmaTraffic(DmaRig rig, byte[] burst)
{
    public const int RingEntries = 256;
    public const int PacketBytes = 2048;
    public const int PacketsPerRound = 32;
    public const int ReadsPerRound = 8;
    public const int GpuBurstBytes = 2 << 20;

    /// <summary>Page requests a device sends for one page of one DMA before it gives up.</summary>
    public const int MaxPageRequestsPerPage = 4;

    private readonly byte[] _packet = new byte[PacketBytes];
    private readonly byte[] _block = new byte[HostMemory.FrameSize];

    /// <summary>A device's figures (one thread's; summed after the threads stopped).</summary>
    public sealed class Counters
    {
        public long Operations, Bytes, Translations, PageRequests, Resent, ResentDuringKvmChange, Faults;

        public void Add(Counters other)
        {
            Operations += other.Operations;
            Bytes += other.Bytes;
            Translations += other.Translations;
            PageRequests += other.PageRequests;
            Resent += other.Resent;
            ResentDuringKvmChange += other.ResentDuringKvmChange;
            Faults += other.Faults;
        }
    }

    public Counters Nic { get; } = new();
    public Counters Gpu { get; } = new();
    public Counters Nvme { get; } = new();

    /// <summary>Rounds this thread has run.</summary>
    public long Rounds { get; internal set; }

    public void Round(long round, ref SplitMix64 rng)
    {
        // NIC: the next packets of a receive ring of 2 KiB buffers in the 4K-backed slot.
        for (int p = 0; p < PacketsPerRound; p++)
        {
            ulong entry = (ulong)((round * PacketsPerRound + p) % RingEntries);
            Transfer(rig.Nic, Nic, DmaRig.SlotBytes + entry * PacketBytes, _packet, write: true);
        }
        // NVMe: random 4 KiB reads, each a DMA write of the block into guest memory.
        for (int b = 0; b < ReadsPerRound; b++)
            Transfer(rig.Nvme, Nvme, (rng.Next() % DmaRig.SlotPages) << HostMemory.FrameShift, _block, write: true);
        // GPU: a 2 MiB burst every eighth round, from a random 2 MiB-aligned buffer.
        if ((round & 7) == 0)
            Transfer(rig.Gpu, Gpu, (rng.Next() % (DmaRig.SlotBytes / GpuBurstBytes)) * GpuBurstBytes, burst, write: false);
        Rounds++;
    }

    // The units' metrics tallies (engine monitor, dotnet-counters), added to once per transfer.
    private readonly Dictionary<Device, UnitTally> _tallies = [];

    private UnitTally TallyOf(Device device)
    {
        if (!_tallies.TryGetValue(device, out UnitTally? tally))
            _tallies[device] = tally = EngineMetrics.TallyOf(device.Iommu!.Unit);
        return tally;
    }

    private void Transfer(Device device, Counters c, ulong iova, Span<byte> buffer, bool write)
    {
        c.Operations++;
        UnitTally tally = TallyOf(device);
        if (rig.Recorder is { } recorder)
        {
            recorder.Dma(device, c, tally, iova, buffer.Length, write);
            return;
        }
        int done = 0, requests = 0;
        while (true)
        {
            long kvmFinished = rig.KvmFinished;
            DmaResult r = write
                ? DmaTransfer.Write(device, iova + (ulong)done, buffer[done..], pageFaults: true)
                : DmaTransfer.Read(device, iova + (ulong)done, buffer[done..], pageFaults: true);
            tally.Add(r.Translations, r.Transferred);
            c.Bytes += r.Transferred;
            c.Translations += r.Translations;
            c.PageRequests += r.PageRequests;
            if (r.IsComplete)
                return;
            if (r.Transferred > 0)
                requests = 0;   // a new page: its own tries
            if (r.Status == DmaStatus.Faulted && device.PageRequestsEnabled && IsRecoverable(r.Fault) && ++requests < MaxPageRequestsPerPage)
            {
                // A KVM operation begun but not finished before this try started, or begun since,
                // overlapped it (each one increments "started" before and "finished" after).
                c.Resent++;
                if (rig.KvmStarted > kvmFinished)
                    c.ResentDuringKvmChange++;
                done += r.Transferred;
                continue;
            }
            c.Faults++;
            return;
        }
    }

    // The faults a page request can fix (Device.RecoverWithPageRequest asks for exactly these).
    private static bool IsRecoverable(FaultReason fault) =>
        fault is FaultReason.SmSecondLevelPermission or FaultReason.SmRead or FaultReason.SmWrite;
}
