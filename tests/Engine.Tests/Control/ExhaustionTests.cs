using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Kvm;

namespace Engine.Tests.Control;

/// <summary>
/// Host memory running out in domain allocation, attach, a paging domain's table building, IOMMU
/// setup or a KVM map under an attached domain: ENOMEM, and the state as before.
/// </summary>
public class ControlExhaustionTests
{
    // Exhausting host memory touches every frame: keep it small.
    private static PlatformOptions Small => new() { Memory = new HostMemoryOptions { Size = 64UL << 20 } };

    private static Platform SmallPlatform() => new(Small);

    [Fact]
    public void DomainAllocationWithoutAFrameIsEnomemAndAKvmDomainNeedsNone()
    {
        using var f = new ControlFixture(levels: 4, options: Small);
        using (new Exhaustion(f.Platform.Memory))
        {
            ulong inUse = f.Platform.Memory.Statistics.FramesInUse;
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => f.Platform.AllocatePagingDomain()).Errno);
            Assert.Equal(inUse, Exhaustion.FramesInUse(f.Platform.Memory));
            KvmDomain kvm = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp); // KVM owns the tables
            Assert.Equal(inUse, Exhaustion.FramesInUse(f.Platform.Memory));
            kvm.Dispose();
        }
    }

    [Fact]
    public void AnIommuThatCannotGetItsFramesIsEnomemAndGivesBackWhatItTook()
    {
        using Platform platform = SmallPlatform();
        // Root table, invalidation queue, wait-status frame, page-request queue.
        for (int left = 0; left < 4; left++)
        {
            using (new Exhaustion(platform.Memory, left))
            {
                ulong inUse = platform.Memory.Statistics.FramesInUse;
                var e = Assert.Throws<EngineException>(() => platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer));
                Assert.Equal(Errno.ENOMEM, e.Errno);
                Assert.Equal(inUse, platform.Memory.Statistics.FramesInUse);
            }
        }
        Assert.Empty(platform.Iommus);
        using (new Exhaustion(platform.Memory, 4))
            platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
    }

    [Fact]
    public void AnAttachThatRunsOutLeavesTheDeviceDetachedAndTheDidFree()
    {
        using var f = new ControlFixture(levels: 4, options: Small);
        f.Vm.Map(0, 512, Access.All);
        KvmDomain kvm = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        PagingDomain paging = f.Platform.AllocatePagingDomain();
        // A device on a bus of its own needs a PASID directory, a PASID table and a context table.
        // The unit's tables keep what an attach built before it ran out, for the next attach (Linux
        // keeps context tables too), so frames are counted only when none was left at all.
        byte bus = 0x40;
        for (int left = 0; left < 3; left++)
        {
            foreach (Domain domain in new Domain[] { kvm, paging })
            {
                Device device = f.Platform.AddDevice($"dev{bus}", TranslationRequest.Bdf(bus++, 0, 0), f.Dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
                using (new Exhaustion(f.Platform.Memory, left))
                {
                    ulong inUse = f.Platform.Memory.Statistics.FramesInUse;
                    Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => domain.Attach(device)).Errno);
                    if (left == 0)
                        Assert.Equal(inUse, f.Platform.Memory.Statistics.FramesInUse);
                }
                Assert.Null(device.Domain);
                Assert.False(device.PageRequestsEnabled);
                Assert.Null(f.Dmar0.DidOf(domain));
                Assert.Empty(domain.Devices);
                Assert.False(device.Translate(0x1000, Access.Read).IsSuccess);
                domain.Attach(device);
                Assert.Equal(domain is KvmDomain, device.Translate(0x1000, Access.Read).IsSuccess);
                domain.Detach(device);
            }
        }
    }

    [Fact]
    public void APagingDomainMapThatRunsOutKeepsNoLeafAndNoTable()
    {
        using var f = new ControlFixture(levels: 4, options: Small);
        PagingDomain d = f.Platform.AllocatePagingDomain();
        d.Attach(f.Nvme);
        ulong target = f.Platform.Memory.AllocateContiguous(4096, 1);
        // 16 MiB of 4K leaves at an IOVA 1 GiB up: a fresh upper table, a directory table and 8 leaf tables.
        const ulong Iova = 1UL << 30, Size = 16UL << 20;
        for (int left = 0; left < 10; left += 3)
        {
            using (new Exhaustion(f.Platform.Memory, left))
            {
                ulong inUse = f.Platform.Memory.Statistics.FramesInUse;
                Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => d.Map(Iova, target + 0x1000, Size, Access.ReadWrite)).Errno);
                Assert.Equal(inUse, Exhaustion.FramesInUse(f.Platform.Memory));
            }
            for (ulong a = Iova; a < Iova + Size; a += 0x3_1000)
            {
                Assert.Equal(WalkFault.NotPresent, d.Lookup(a, Access.Read).Fault);
                Assert.False(f.Nvme.Translate(a, Access.Read).IsSuccess);
            }
        }
        d.Map(Iova, target + 0x1000, Size, Access.ReadWrite);
        Assert.Equal(target + 0x1000, f.Nvme.Translate(Iova, Access.Read).Hpa);
    }

    [Fact]
    public void AKvmMapThatRunsOutUnderAnAttachedDomainLeavesNoStaleTranslation()
    {
        using var f = new ControlFixture(levels: 4, maxHugePageLevel: 1, options: Small);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic, AttachFlags.AllowWithoutPageRequests);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        const ulong Gfn = (1UL << 30) >> 12;
        f.Vm.Map(Gfn, 8, Access.Read);
        Assert.True(f.Nvme.Translate(Gfn << 12, Access.Read).IsSuccess); // cached in the IOTLB
        using (new Exhaustion(f.Platform.Memory, 2))
        {
            ulong inUse = f.Platform.Memory.Statistics.FramesInUse;
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => f.Vm.Map(Gfn, 4096, Access.All)).Errno);
            Assert.Equal(inUse, Exhaustion.FramesInUse(f.Platform.Memory));
        }
        Assert.False(f.Nvme.Translate(Gfn << 12, Access.Write).IsSuccess, "the write permission of the failed map must not stay cached");
        Assert.True(f.Nvme.Translate(Gfn << 12, Access.Read).IsSuccess);
        Assert.Equal(DmaStatus.Faulted, DmaTransfer.Write(f.Nic, (Gfn + 8) << 12, new byte[16]).Status);
    }
}
