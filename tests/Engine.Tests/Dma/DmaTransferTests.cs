using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Paging;
using Engine.Tests.Control;

namespace Engine.Tests.Dma;

public class DmaTransferTests
{
    [Fact]
    public void AWriteThenAReadCrossesPagesAndLandsInTheGuestsFrames()
    {
        using var f = new ControlFixture(maxHugePageLevel: 1);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(0, 16, Access.All);
        byte[] data = [.. Enumerable.Range(0, 3 * 4096 + 100).Select(i => (byte)(i * 7))];
        DmaResult w = DmaTransfer.Write(f.Nvme, 0x0F00, data);
        Assert.True(w.IsComplete, w.ToString());
        Assert.Equal(data.Length, w.Transferred);
        // The bytes sit in the guest's memory, as the VMM reads it by GPA.
        var back = new byte[data.Length];
        f.Vm.ReadGuest(0x0F00, back);
        Assert.Equal(data, back);
        Array.Clear(back);
        Assert.True(DmaTransfer.Read(f.Nvme, 0x0F00, back).IsComplete);
        Assert.Equal(data, back);
    }

    [Fact]
    public void AFaultMidTransferDeliversTheBytesBeforeItAndReportsWhere()
    {
        using var f = new ControlFixture(maxHugePageLevel: 1);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(0, 2, Access.All);          // pages 0 and 1 mapped, page 2 not
        var buffer = new byte[3 * 4096];
        DmaResult r = DmaTransfer.Read(f.Nvme, 0x800, buffer);
        Assert.Equal(DmaStatus.Faulted, r.Status);
        Assert.Equal(0x2000 - 0x800, r.Transferred);
        Assert.Equal(0x2000UL, r.FaultAddress);
        Assert.Equal(FaultReason.SmSecondLevelPermission, r.Fault);
        f.Vm.WriteProtect(1, 1);
        DmaResult w = DmaTransfer.Write(f.Nvme, 0x0, new byte[0x1800]);
        Assert.Equal(0x1000, w.Transferred);
        Assert.Equal(0x1000UL, w.FaultAddress);
    }

    [Fact]
    public void LargePagesMoveInOneTranslationAndEmptyTransfersAreComplete()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(0, 1024, Access.All);
        long misses = f.Dmar1.Unit.IotlbMisses;
        Assert.True(DmaTransfer.Write(f.Nvme, 0x1000, new byte[1 << 20]).IsComplete);
        Assert.Equal(misses + 1, f.Dmar1.Unit.IotlbMisses);
        Assert.True(DmaTransfer.Read(f.Nvme, 0, Span<byte>.Empty).IsComplete);
    }

    [Fact]
    public void ATranslationOutsideHostMemoryStopsTheTransferCleanly()
    {
        using var f = new ControlFixture();
        PagingDomain d = f.Platform.AllocatePagingDomain();
        d.Attach(f.Nvme);
        d.Map(0, f.Platform.Memory.EndHpa, 0x1000, Access.ReadWrite); // a "BAR" beyond host memory
        DmaResult r = DmaTransfer.Write(f.Nvme, 0, new byte[16]);
        Assert.Equal(DmaStatus.TargetOutsideMemory, r.Status);
        Assert.Equal(0, r.Transferred);
    }

    [Fact]
    public void ANullDeviceIsRefused()
    {
        Assert.Throws<ArgumentNullException>(() => DmaTransfer.Read(null!, 0, new byte[4]));
        Assert.Throws<ArgumentNullException>(() => DmaTransfer.Write(null!, 0, new byte[4]));
    }

    [Fact]
    public void ADeviceWithoutAnIommuMovesBytesAtHostPhysicalAddresses()
    {
        using var f = new ControlFixture();
        Device bare = f.Platform.AddDevice("bare", 0x0100, null);
        ulong frame = f.Platform.Memory.AllocateFrame();
        Assert.True(DmaTransfer.Write(bare, frame + 8, new byte[] { 1, 2, 3 }).IsComplete);
        Assert.Equal(new byte[] { 1, 2, 3 }, f.Platform.Memory.GetSpan(frame + 8, 3).ToArray());
        Assert.Equal(DmaStatus.TargetOutsideMemory, DmaTransfer.Read(bare, 0x1000, new byte[8]).Status);
    }
}

public class DmaTransferCountingTests
{
    [Fact]
    public void AWriteBeyondTheWidthSendsNoPageRequestAndCountsOneTranslation()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        long sent = f.Nic.PageRequests;
        DmaResult r = DmaTransfer.Write(f.Nic, 1UL << 48, new byte[64], pageFaults: true);
        Assert.Equal(DmaStatus.Faulted, r.Status);
        Assert.Equal(sent, f.Nic.PageRequests);
        Assert.True(r.PageRequests == 0 && r.Translations == 1, $"a fault that sends no page request counted {r.PageRequests} request(s) and {r.Translations} translation(s): {r}");
    }

    [Fact]
    public void APageRequestAnsweredFailureIsCountedButNoRetryIs()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.Map(0x40, 1, Access.Read);
        f.Vm.AddWriteTracking(0x40);          // KVM's fault op refuses the write: the response is FAILURE
        long sent = f.Nic.PageRequests;
        DmaResult r = DmaTransfer.Write(f.Nic, 0x40000, new byte[64], pageFaults: true);
        Assert.Equal(DmaStatus.Faulted, r.Status);
        Assert.Equal(sent + 1, f.Nic.PageRequests);
        Assert.Equal(1, d.PageRequestsFailed);
        Assert.True(r.PageRequests == 1 && r.Translations == 1, $"one request answered FAILURE and no retry, yet {r.PageRequests} request(s) and {r.Translations} translation(s): {r}");
    }

    [Fact]
    public void RecoveredPagesCountARequestAndARetryEach()
    {
        using var f = new ControlFixture(levels: 4, maxHugePageLevel: 1);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.Map(0, 1, Access.All);           // page 0 mapped; pages 1 and 2 are faulted in by KVM on request
        long sent = f.Nic.PageRequests;
        DmaResult r = DmaTransfer.Write(f.Nic, 0x800, new byte[2 * 4096], pageFaults: true);
        Assert.True(r.IsComplete, r.ToString());
        Assert.Equal(sent + 2, f.Nic.PageRequests);
        Assert.Equal(2, d.PageRequestsServed);
        Assert.Equal(2, r.PageRequests);
        Assert.Equal(3 + 2, r.Translations);
    }
}
