using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>
/// A KVM domain maps guest memory only on demand, so the series enables IOPF at attach and fails the
/// attach when it cannot (patch 16); the permissive attach is an explicit option.
/// </summary>
public class KvmDomainPageRequestTests
{
    private static ScalableContextEntry ContextOf(ControlFixture f, Device device)
    {
        ulong at = device.Iommu!.Tables.ContextEntryAddress(device.SourceId);
        return new ScalableContextEntry(f.Platform.Memory.ReadEntry(at), f.Platform.Memory.ReadEntry(at + 8));
    }

    [Fact]
    public void OnAUnitWithoutPageRequestsAnAtsPriDeviceIsRefusedWithEnodevNamingPrs()
    {
        using var f = new ControlFixture(preset: IommuPresets.SapphireRapidsServer);
        Assert.False(f.Dmar0.Unit.Ecap.Prs);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        var e = Assert.Throws<EngineException>(() => d.Attach(f.Nic));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Contains("ECAP.PRS = 0", e.Message);
        Assert.Contains(nameof(AttachFlags.AllowWithoutPageRequests), e.Message);
        Assert.Null(f.Nic.Domain);
        Assert.False(f.Nic.PageRequestsEnabled);
        Assert.Null(f.Dmar0.DidOf(d));
        Assert.Empty(d.Devices);
    }

    [Fact]
    public void APermissiveAttachOnAUnitWithoutPageRequestsSaysSoAndSendsNone()
    {
        using var f = new ControlFixture(preset: IommuPresets.SapphireRapidsServer, levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic, AttachFlags.AllowWithoutPageRequests);
        Assert.Same(d, f.Nic.Domain);
        Assert.False(f.Nic.PageRequestsEnabled, "the flag must match the context entry, which has PRE clear on a unit without PRS");
        Assert.False(ContextOf(f, f.Nic).PageRequestEnable);

        TranslationResult r = f.Nic.TranslateWithPageRequests(0x5000, Access.Write);
        Assert.Equal(FaultReason.SmSecondLevelPermission, r.Fault);
        DmaResult dma = DmaTransfer.Write(f.Nic, 0x5000, new byte[16], pageFaults: true);
        Assert.Equal(DmaStatus.Faulted, dma.Status);
        Assert.Equal(0, dma.PageRequests);
        Assert.Equal(1, dma.Translations);
        Assert.Equal(0, f.Nic.PageRequests);

        // Mapped memory works as with pinning.
        f.Vm.Map(5, 1, Access.All);
        Assert.True(DmaTransfer.Write(f.Nic, 0x5000, new byte[16], pageFaults: true).IsComplete);
    }

    [Fact]
    public void ADeviceWithoutPriOrAtsIsRefusedAndTheMessageNamesBoth()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        var e = Assert.Throws<EngineException>(() => d.Attach(f.Nvme));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Contains("no PRI", e.Message);
        Assert.Contains("no ATS", e.Message);
        Assert.DoesNotContain("ECAP.PRS", e.Message);
        Assert.Null(f.Nvme.Domain);

        Device priOnly = f.Platform.AddDevice("pri-only", TranslationRequest.Bdf(0x98, 2, 0), f.Dmar1, DeviceAbilities.Pri);
        var e2 = Assert.Throws<EngineException>(() => d.Attach(priOnly));
        Assert.Equal(Errno.ENODEV, e2.Errno);
        Assert.Contains("PRI works only with ATS", e2.Message);
        Assert.DoesNotContain("no PRI", e2.Message);
    }

    [Fact]
    public void AUnitWithoutDeviceTlbCannotEnableAtsSoItIsRefused()
    {
        var noDt = IommuPresets.GraniteRapidsServer with
        {
            Ecap = ExtendedCapabilityRegister.Encode(IommuPresets.GraniteRapidsServer.Ecap.Decode() with { DeviceTlb = false }),
        };
        using var f = new ControlFixture(preset: noDt);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        var e = Assert.Throws<EngineException>(() => d.Attach(f.Gpu));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Contains("ECAP.DT = 0", e.Message);
    }

    [Fact]
    public void ADeviceThatCanFaultPagesInGetsPreAndPageRequests()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Gpu);
        Assert.True(f.Gpu.PageRequestsEnabled);
        Assert.True(ContextOf(f, f.Gpu).PageRequestEnable);
        // The permissive flag changes nothing for a device that can.
        d.Attach(f.Nic, AttachFlags.AllowWithoutPageRequests);
        Assert.True(f.Nic.PageRequestsEnabled);
        Assert.True(f.Nic.TranslateWithPageRequests(0x7000, Access.Write).IsSuccess);
        Assert.Equal(1, f.Nic.PageRequests);
    }

    [Fact]
    public void APermissivelyAttachedDeviceWithoutPriHasPreClear()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        Assert.False(f.Nvme.PageRequestsEnabled);
        Assert.False(ContextOf(f, f.Nvme).PageRequestEnable);
    }

    [Fact]
    public void APagingDomainNeedsNoPageRequestsAndUnknownFlagsAreRefused()
    {
        using var f = new ControlFixture();
        PagingDomain p = f.Platform.AllocatePagingDomain();
        p.Attach(f.Nvme);
        Assert.False(f.Nvme.PageRequestsEnabled);
        p.Attach(f.Nic);
        Assert.False(f.Nic.PageRequestsEnabled, "a paging domain is not fault-capable");
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        Assert.Equal("flags", Assert.Throws<ArgumentOutOfRangeException>(() => d.Attach(f.Gpu, (AttachFlags)2)).ParamName);
        Assert.Null(f.Gpu.Domain);
    }
}
