using Engine.Control;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Control;

public class PagingDomainTests
{
    private static (Platform Platform, IommuInstance Iommu, Device Device) Setup(IommuPreset? preset = null)
    {
        var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 4UL << 30 } });
        IommuInstance iommu = platform.AddIommu("dmar0", preset ?? IommuPresets.GraniteRapidsServer);
        Device device = platform.AddDevice("dev", TranslationRequest.Bdf(3, 0, 0), iommu, DeviceAbilities.Ats);
        return (platform, iommu, device);
    }

    [Fact]
    public void MappedRangesTranslateAtTheLargestPageSizeAndUnmapInvalidates()
    {
        var (platform, _, device) = Setup();
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain(device);
        d.Attach(device);
        d.Map(0x4000_0000, 0x2_0000_0000, 1UL << 30, Access.ReadWrite);
        d.Map(0x1000, 0x3_0000_1000, 0x3000, Access.Read);
        TranslationResult big = device.Translate(0x4123_4567, Access.Write);
        Assert.Equal(0x2_0123_4567UL, big.Hpa);
        Assert.Equal(PageSize.Size1G, big.Size);
        Assert.Equal(0x3_0000_2abcUL, device.Translate(0x2abc, Access.Read).Hpa);
        Assert.Equal(FaultReason.SmSecondLevelPermission, device.Translate(0x2abc, Access.Write).Fault);
        Assert.True(device.Translate(0x2abc, Access.Read).IotlbHit);
        Assert.Equal(0x1000UL, d.Unmap(0x2000, 0x1000));
        Assert.Equal(FaultReason.SmSecondLevelPermission, device.Translate(0x2abc, Access.Read).Fault);
        Assert.True(device.Translate(0x1abc, Access.Read).IsSuccess);
        Assert.True(device.DeviceTlbInvalidations > 0);
        // Cutting a large page unmaps it whole, as the Intel driver does.
        Assert.Equal(1UL << 30, d.Unmap(0x4000_0000, 0x1000));
        Assert.False(device.Translate(0x7000_0000, Access.Read).IsSuccess);
    }

    [Fact]
    public void TheFirstAttachToANarrowerIommuStripsTopLevels()
    {
        var (platform, _, _) = Setup();
        using var _ = platform;
        IommuInstance skylake = platform.AddIommu("dmar1", IommuPresets.SkylakeServer);
        Device legacy = platform.AddDevice("legacy", TranslationRequest.Bdf(5, 0, 0), skylake);
        PagingDomain d = platform.AllocatePagingDomain();
        Assert.Equal(3, d.Agaw);
        d.Map(0x20_0000, 0x1_0000_0000, 0x20_0000, Access.ReadWrite);
        d.Attach(legacy);
        Assert.Equal(2, d.Agaw);
        Assert.Equal(48, d.Width);
        Assert.Equal(0x1_0000_1234UL, legacy.Translate(0x20_1234, Access.Read).Hpa);
        // The 5-level server can no longer share it: the domain is 4-level now... which it walks fine.
        // A narrower unit after the domain is in use is refused.
        var (p2, _, dev2) = Setup();
        using var __ = p2;
        PagingDomain wide = p2.AllocatePagingDomain();
        wide.Attach(dev2);
        IommuInstance narrow = p2.AddIommu("dmar1", IommuPresets.SkylakeServer);
        Device other = p2.AddDevice("other", 0x0500, narrow);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => wide.Attach(other)).Errno);
    }

    [Fact]
    public void PageSizesFollowTheAttachedIommusAndBigLeavesBlockASmallerOne()
    {
        var noLarge = IommuPresets.SkylakeServer with { Cap = CapabilityRegister.Encode(IommuPresets.SkylakeServer.Cap.Decode() with { Sllps = 0 }) };
        var (platform, _, device) = Setup(noLarge);
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain();
        d.Attach(device);
        Assert.Equal([PageSize.Size4K], d.PageSizes);
        d.Map(0, 0x1_0000_0000, 2UL << 20, Access.Read);
        Assert.Equal(PageSize.Size4K, device.Translate(0x1000, Access.Read).Size);
        PagingDomain big = platform.AllocatePagingDomain();
        big.Map(0, 0x1_0000_0000, 2UL << 20, Access.Read);
        Device second = platform.AddDevice("second", 0x0301, device.Iommu);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => big.Attach(second)).Errno);
    }

    [Fact]
    public void EnforcingCacheCoherencyNeedsSnoopControlAndSetsSnp()
    {
        var (platform, _, device) = Setup();
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain();
        d.Attach(device);
        d.EnforceCacheCoherency();
        d.Map(0, 0x1_0000_0000, 0x1000, Access.Read);
        Assert.True((d.Lookup(0, Access.Read).Entry & SlPte.SnoopBit) != 0);
        IommuInstance client = platform.AddIommu("dmar1", IommuPresets.RaptorLakeGraphics);
        Device igpu = platform.AddDevice("igpu", 0x0010, client);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Attach(igpu)).Errno);
        PagingDomain plain = platform.AllocatePagingDomain();
        plain.Attach(igpu);
        Assert.Equal(Errno.EOPNOTSUPP, Assert.Throws<EngineException>(() => plain.EnforceCacheCoherency()).Errno);
    }

    [Fact]
    public void BadMapsAreRefusedAndChangeNothing()
    {
        var (platform, _, device) = Setup();
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain();
        d.Attach(device);
        d.Map(0x1000, 0x1_0000_0000, 0x1000, Access.Read);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(0x1001, 0, 0x1000, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(0, 0, 0, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(0, 0, 0x1000, Access.Execute)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(1UL << 57, 0, 0x1000, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(0, 1UL << 50, 0x1000, Access.Read)).Errno);
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => d.Map(0, 0x2_0000_0000, 0x3000, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Unmap(0x1000, 0)).Errno);
        Assert.Equal(FaultReason.SmSecondLevelPermission, device.Translate(0, Access.Read).Fault);
        Assert.Equal(0x1_0000_0000UL, device.Translate(0x1000, Access.Read).Hpa);
        Assert.Equal(0UL, d.Unmap(0x10_0000, 0x1000));
    }

    [Fact]
    public void FreeingAPagingDomainReturnsItsTables()
    {
        var (platform, _, device) = Setup();
        using var _ = platform;
        PagingDomain Cycle()
        {
            PagingDomain d = platform.AllocatePagingDomain();
            d.Map(0, 0x1_0000_0000, 64UL << 20, Access.Read);
            d.Map(1UL << 40, 0x1_0000_0000, 64UL << 10, Access.Read);
            d.Attach(device);
            d.Detach(device);
            d.Dispose();
            platform.Memory.Reclaim();
            return d;
        }
        Cycle(); // the first cycle also builds the IOMMU's context and PASID tables
        ulong before = platform.Memory.Statistics.FramesInUse;
        PagingDomain freed = Cycle();
        Assert.Equal(before, platform.Memory.Statistics.FramesInUse);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => freed.Map(0, 0, 0x1000, Access.Read)).Errno);
    }

    [Fact]
    public void DidsArePerIommuAndReleasedWithTheLastDevice()
    {
        var (platform, iommu, device) = Setup();
        using var _ = platform;
        Device second = platform.AddDevice("second", 0x0301, iommu);
        PagingDomain a = platform.AllocatePagingDomain(), b = platform.AllocatePagingDomain();
        a.Attach(device);
        a.Attach(second);
        Assert.Equal(iommu.DidOf(a), (ushort)2); // 0 and 1 are reserved in scalable mode
        b.Attach(platform.AddDevice("third", 0x0302, iommu));
        Assert.Equal(iommu.DidOf(b), (ushort)3);
        a.Detach(device);
        Assert.Equal(iommu.DidOf(a), (ushort)2);
        a.Detach(second);
        Assert.Null(iommu.DidOf(a));
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => platform.AddDevice("dup", 0x0301, iommu)).Errno);
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => platform.AddIommu("dmar0", IommuPresets.QemuDefault)).Errno);
        Assert.Equal(Errno.ENODEV, Assert.Throws<EngineException>(() => platform.AddIommu("none", new CapabilityRegister(0x40UL << 24), new ExtendedCapabilityRegister(0x50 << 8))).Errno);
        var overlap = Assert.Throws<EngineException>(() => platform.AddIommu("bad", new CapabilityRegister(0), new ExtendedCapabilityRegister(0)));
        Assert.Equal(Errno.EINVAL, overlap.Errno);
        Assert.Contains("overlaps", overlap.Message);
    }

    [Fact]
    public void MapTranslateUnmapOfAnAttachedDomainAllocatesNothingOnceWarm()
    {
        // Linux's DMA API maps and unmaps per I/O (dma-strict): the flushes of every unit, with an ATS
        // device's device-TLB invalidation, go through the queue without touching the heap.
        var (platform, _, device) = Setup();
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain(device);
        d.Attach(device);
        int wrong = 0;   // counted, not asserted: xunit's Assert.Equal allocates its comparer
        void Io()
        {
            for (ulong page = 0; page < 8; page++)
                d.Map(0x10_0000 + (page << 12), 0x2_0000_0000 + (page << 12), 0x1000, Access.ReadWrite);
            for (ulong page = 0; page < 8; page++)
                wrong += device.Translate(0x10_0000 + (page << 12), Access.Read).Hpa == 0x2_0000_0000 + (page << 12) ? 0 : 1;
            wrong += d.Unmap(0x10_0000, 0x8000) == 0x8000 ? 0 : 1;
        }
        for (int i = 0; i < 20; i++)
            Io();
        SteadyStateAllocation.AssertSomeRoundAllocatesNothing(() =>
        {
            for (int i = 0; i < 50; i++)
                Io();
        }, "50 map/translate/unmap cycles");
        Assert.Equal(0, wrong);
        Assert.True(device.DeviceTlbInvalidations >= 70, $"{device.DeviceTlbInvalidations} device-TLB invalidations for 70+ unmaps");
    }

    [Fact]
    public void DevicesAndIommusAreSnapshotsThatCannotBeChanged()
    {
        var (platform, iommu, device) = Setup();
        using var _ = platform;
        PagingDomain d = platform.AllocatePagingDomain(device);
        IReadOnlyList<Device> before = d.Devices;
        d.Attach(device);
        Assert.Empty(before);
        Assert.Equal([device], d.Devices);
        Assert.Equal([iommu], d.Iommus);
        Assert.Throws<NotSupportedException>(() => ((IList<Device>)d.Devices).Clear());
        IReadOnlyList<IommuInstance> attached = d.Iommus;
        d.Detach(device);
        Assert.Equal([iommu], attached);
        Assert.Empty(d.Devices);
        Assert.Empty(d.Iommus);
    }
}
