using Engine.Cli.Scenarios;
using Engine.Dma;
using Engine.Iommu;

namespace Engine.Tests.Cli;

public class DmaTrafficTests
{
    // The race behind the faulted NIC DMA of a default run, made deterministic: KVM zaps the page
    // again right after serving the device's page request, before the device retries.
    [Fact]
    public void APageZappedAgainBeforeTheRetryIsAskedForAgainNotReportedAsAFault()
    {
        using DmaRig rig = DmaRig.Create();
        ulong gfn = DmaRig.SlotPages;          // the NIC ring's first page: packet 0 of round 0
        int zapsLeft = 0;
        rig.Dmar0.Unit.PageResponse += _ =>
        {
            if (zapsLeft > 0)
            {
                zapsLeft--;
                rig.Vm.Zap(gfn, 1);
            }
        };

        // Control: a device that retries once, as DmaTransfer does, loses this race.
        rig.Vm.Zap(gfn, 1);
        zapsLeft = 1;
        DmaResult once = DmaTransfer.Write(rig.Nic, DmaRig.SlotBytes, new byte[DmaTraffic.PacketBytes], pageFaults: true);
        Assert.Equal(DmaStatus.Faulted, once.Status);
        Assert.Equal(FaultReason.SmSecondLevelPermission, once.Fault);

        rig.Vm.Zap(gfn, 1);
        zapsLeft = 1;
        var traffic = new DmaTraffic(rig, new byte[DmaTraffic.GpuBurstBytes]);
        var rng = new SplitMix64(1);
        traffic.Round(0, ref rng);
        Assert.Equal((1L, 0L), (traffic.Nic.Resent, traffic.Nic.Faults));
        Assert.Equal(DmaTraffic.PacketsPerRound, traffic.Nic.Operations);
    }

    [Fact]
    public void ADeviceGivesUpAfterFourPageRequestsForOnePage()
    {
        using DmaRig rig = DmaRig.Create();
        ulong gfn = DmaRig.SlotPages;
        bool zapping = true;
        rig.Dmar0.Unit.PageResponse += _ =>
        {
            if (zapping)
                rig.Vm.Zap(gfn, 1);
        };
        rig.Vm.Zap(gfn, 1);
        var traffic = new DmaTraffic(rig, new byte[DmaTraffic.GpuBurstBytes]);
        var rng = new SplitMix64(1);
        traffic.Round(0, ref rng);
        zapping = false;
        // Packets 0 and 1 share the page: each asks four times and gives up; packet 2 is on the next page.
        Assert.Equal(2, traffic.Nic.Faults);
        Assert.Equal(2 * (DmaTraffic.MaxPageRequestsPerPage - 1), traffic.Nic.Resent);
        Assert.Equal(2 * DmaTraffic.MaxPageRequestsPerPage, traffic.Nic.PageRequests);
    }
}
