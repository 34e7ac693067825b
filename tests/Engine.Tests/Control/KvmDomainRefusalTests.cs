using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>Every refusal of SPEC.md §1.8, each with its errno and a message that says why.</summary>
public class KvmDomainRefusalTests
{
    [Fact]
    public void ADeviceWithoutAnIommuIsEnodev()
    {
        using var f = new ControlFixture();
        Device bare = f.Platform.AddDevice("bare", 0x0100, null);
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(bare, f.Tdp));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Contains("no IOMMU", e.Message);
        Assert.Equal(Errno.ENODEV, Assert.Throws<EngineException>(() => f.Platform.HwInfo(bare)).Errno);
    }

    [Fact]
    public void TheFeatureSwitchedOffIsNotSupported()
    {
        using var f = new ControlFixture(options: new PlatformOptions { KvmDomainSupport = false, Memory = new HostMemoryOptions { Size = 4UL << 30 } });
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains("switched off", e.Message);
    }

    [Fact]
    public void ANestParentIsNotSupported()
    {
        using var f = new ControlFixture();
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp, DomainAllocFlags.NestParent));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains("nesting parent", e.Message);
    }

    [Fact]
    public void AskingForDirtyTrackingIsNotSupported()
    {
        using var f = new ControlFixture();
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp, DomainAllocFlags.DirtyTracking));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains("dirty", e.Message);
    }

    [Fact]
    public void MissingMetadataOrAnotherTypeIsEinval()
    {
        using var f = new ControlFixture();
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, null)).Errno);
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp, DomainAllocFlags.None, metadata: f.Tdp.Metadata with { Type = TdpType.None }));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("not EPT", e.Message);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(6)]
    public void ALevelOtherThanFourOrFiveIsNotSupported(int level)
    {
        using var f = new ControlFixture();
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp, DomainAllocFlags.None, metadata: f.Tdp.Metadata with { Level = level }));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains($"{level} levels", e.Message);
    }

    [Fact]
    public void MasksThatLeaveBit11ToKvmAreNotSupported()
    {
        using var f = new ControlFixture();
        var masks = ReservedBitMasks.ForEpt(46, 3, bit11Reserved: false);
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp, DomainAllocFlags.None, metadata: f.Tdp.Metadata with { RsvdBitsMask = masks }));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains("bit 11", e.Message);
    }

    [Fact]
    public void AnIncompatibleIommuIsNotSupportedAndEveryFailingConditionIsListed()
    {
        using var f = new ControlFixture(preset: IommuPresets.RaptorLakeGraphics, levels: 5);
        var e = Assert.Throws<KvmDomainRefusedException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
        Assert.Contains(e.Reasons, r => r.Contains("snoop control"));
        Assert.Contains(e.Reasons, r => r.Contains("scalable mode"));
        Assert.Contains(e.Reasons, r => r.Contains("not coherent"));
        Assert.Contains(e.Reasons, r => r.Contains("agaw"));
        Assert.Contains(e.Reasons, r => r.Contains("MGAW"));
        Assert.Equal(5, e.Reasons.Count);
    }

    [Fact]
    public void ScalableModeSwitchedOffInTheDriverIsRefused()
    {
        using var f = new ControlFixture(options: new PlatformOptions { ScalableModeEnabled = false, Memory = new HostMemoryOptions { Size = 4UL << 30 } });
        var e = Assert.Throws<KvmDomainRefusedException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Contains(e.Reasons, r => r.Contains("switched off in the driver"));
    }

    [Fact]
    public void HugePagesTheIommuCannotWalkAreRefused()
    {
        var noGig = IommuPresets.GraniteRapidsServer with
        {
            Cap = CapabilityRegister.Encode(IommuPresets.GraniteRapidsServer.Cap.Decode() with { Sllps = 1 }),
        };
        using var f = new ControlFixture(preset: noGig, maxHugePageLevel: 3);
        var e = Assert.Throws<KvmDomainRefusedException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Equal([e.Reasons.Single()], e.Reasons.Where(r => r.Contains("1 GiB")).ToList());
    }

    [Fact]
    public void AttachRechecksAgainstTheDevicesOwnIommuAndAnswersEinval()
    {
        using var f = new ControlFixture();
        IommuInstance client = f.Platform.AddIommu("dmar9", IommuPresets.RaptorLakeGraphics);
        Device igpu = f.Platform.AddDevice("igpu", 0x0010, client);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        var e = Assert.Throws<EngineException>(() => d.Attach(igpu));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("dmar9", e.Message);
        Assert.Null(igpu.Domain);
        Assert.Null(client.DidOf(d));
    }

    [Fact]
    public void TheRfcsMgawComparisonIsReplacedByItsIntent()
    {
        // A 57-bit domain on a unit whose SAGAW offers 5 levels but whose MGAW is 48: the RFC's
        // agaw-vs-bits compare would let it through; the width check refuses it.
        var narrow = IommuPresets.GraniteRapidsServer with
        {
            Cap = CapabilityRegister.Encode(IommuPresets.GraniteRapidsServer.Cap.Decode() with { Mgaw = 48 }),
        };
        using var f = new ControlFixture(preset: narrow, levels: 5);
        var e = Assert.Throws<KvmDomainRefusedException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Contains(e.Reasons, r => r.Contains("MGAW of 48"));
    }

    [Fact]
    public void TheCompatibleServerHasNoReasons()
    {
        var meta = new ExportedTdp(TdpType.Ept, 5, 0x1000, 3, ReservedBitMasks.ForEpt(46, 3, true));
        Assert.Empty(KvmDomainCompatibility.Check(IommuPresets.GraniteRapidsServer.Driver, meta));
        Assert.Empty(KvmDomainCompatibility.Check(IommuPresets.SapphireRapidsServer.Driver, meta));
        Assert.NotEmpty(KvmDomainCompatibility.Check(IommuPresets.QemuScalable.Driver, meta));
    }
}
