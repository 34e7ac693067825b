using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Control;

public class AttachKvmDomainTests
{
    [Fact]
    public void OneCallAllocatesTheDomainAndAttachesTheDevice()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AttachKvmDomain(f.Nic, f.Tdp);
        Assert.Same(d, f.Nic.Domain);
        Assert.True(f.Nic.PageRequestsEnabled);
        Assert.Equal(1, f.Tdp.ImporterCount);
        d.Attach(f.Gpu);
        Assert.Equal(2, d.Devices.Count);
    }

    [Fact]
    public void ARefusedAttachFreesTheDomainItAllocated()
    {
        using var f = new ControlFixture();
        // The NVMe has neither PRI nor ATS: a KVM domain refuses it unless told to map without page requests.
        var e = Assert.Throws<EngineException>(() => f.Platform.AttachKvmDomain(f.Nvme, f.Tdp));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Null(f.Nvme.Domain);
        Assert.Equal(0, f.Tdp.ImporterCount);
        KvmDomain d = f.Platform.AttachKvmDomain(f.Nvme, f.Tdp, AttachFlags.AllowWithoutPageRequests);
        Assert.False(f.Nvme.PageRequestsEnabled);
        Assert.Same(d, f.Nvme.Domain);
    }

    [Fact]
    public void AllocationRefusalsPassThroughUnchanged()
    {
        using var f = new ControlFixture(preset: IommuPresets.QemuScalable);
        var e = Assert.Throws<KvmDomainRefusedException>(() => f.Platform.AttachKvmDomain(f.Nic, f.Tdp));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Null(f.Nic.Domain);
    }
}

public class DeviceDmaTests
{
    [Fact]
    public void ADeviceWithPageRequestsRecoversFromAZapThroughItsOwnDmaCalls()
    {
        using var f = new ControlFixture();
        f.Platform.AttachKvmDomain(f.Nic, f.Tdp);
        f.Vm.MapGpa(0, 1UL << 20, Access.ReadWrite);
        Assert.True(f.Nic.DmaWrite(0x1000, "hello"u8).IsComplete);
        f.Vm.ZapGpa(0, 1UL << 20);
        var back = new byte[5];
        DmaResult r = f.Nic.DmaRead(0x1000, back);
        Assert.True(r.IsComplete, r.ToString());
        Assert.Equal(1, r.PageRequests);
        Assert.Equal("hello"u8.ToArray(), back);
    }

    [Fact]
    public void ADeviceWithoutPageRequestsFaultsAndSaysWhere()
    {
        using var f = new ControlFixture();
        f.Platform.AttachKvmDomain(f.Nvme, f.Tdp, AttachFlags.AllowWithoutPageRequests);
        f.Vm.MapGpa(0, 0x1000, Access.ReadWrite);
        DmaResult r = f.Nvme.DmaWrite(0x800, new byte[0x1000]);
        Assert.Equal(DmaStatus.Faulted, r.Status);
        Assert.Equal(0x800, r.Transferred);
        Assert.Equal(0x1000UL, r.FaultAddress);
        Assert.Equal(0, r.PageRequests);
    }
}
