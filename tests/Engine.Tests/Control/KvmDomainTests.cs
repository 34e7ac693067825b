using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Paging;

namespace Engine.Tests.Control;

public class KvmDomainTests
{
    [Fact]
    public void TheCoverLettersWholeFlowWorksEndToEnd()
    {
        using var f = new ControlFixture();
        // (2) allocate the KVM domain from the exported TDP and attach devices behind two IOMMUs.
        KvmDomain domain = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        domain.Attach(f.Nic);
        domain.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        domain.Attach(f.Gpu);
        Assert.Equal(2, domain.Iommus.Count);
        Assert.Equal(1, f.Tdp.ImporterCount);

        // DMA translates through KVM's EPT.
        f.Vm.Map(0, 4096, Access.All);
        TranslationResult nic = f.Nic.Translate(0x12_3456, Access.Write);
        Assert.True(nic.IsSuccess, nic.ToString());
        Assert.Equal(f.Backing(0x12_3456), nic.Hpa);
        Assert.True(nic.Snoop, "PGSNP forces snooping");
        Assert.True(f.Nvme.Translate(0x12_3456, Access.Read).IsSuccess);
        Assert.True(f.Nvme.Translate(0x12_3456, Access.Read).IotlbHit);

        // (4) KVM zaps: the IOTLBs of both IOMMUs are flushed, so DMA faults...
        f.Vm.Zap(0x123, 1);
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Nvme.Translate(0x12_3456, Access.Read).Fault);
        // ...or, from a device with PRI, goes through the IO-page-fault path and succeeds (3).
        TranslationResult retried = f.Nic.TranslateWithPageRequests(0x12_3456, Access.Write);
        Assert.True(retried.IsSuccess, retried.ToString());
        Assert.Equal(f.Backing(0x12_3456), retried.Hpa);
        Assert.Equal(1, domain.PageRequestsServed);
        Assert.True(f.Nvme.Translate(0x12_3456, Access.Read).IsSuccess, "the page KVM faulted in serves every device");

        // Write-protect (dirty logging): writes fault or fault in; reads go on.
        f.Vm.WriteProtect(0, 4096);
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Nvme.Translate(0x20_0000, Access.Write).Fault);
        Assert.True(f.Nvme.Translate(0x20_0000, Access.Read).IsSuccess);
        Assert.True(f.Gpu.TranslateWithPageRequests(0x20_0000, Access.Write).IsSuccess);
        Assert.True(f.Gpu.DeviceTlbInvalidations > 0, "ATS devices get device-TLB invalidations");

        // (5) free the domain: KVM's tables stay exactly as they were.
        ulong root = f.Vm.Tdp.RootHpa;
        WalkResult before = f.Vm.Translate(0x12_3456, Access.Read);
        domain.Detach(f.Nic);
        domain.Detach(f.Nvme);
        domain.Detach(f.Gpu);
        domain.Dispose();
        Assert.Equal(0, f.Tdp.ImporterCount);
        Assert.Equal(root, f.Vm.Tdp.RootHpa);
        Assert.Equal(before, f.Vm.Translate(0x12_3456, Access.Read));
        Assert.Equal(FaultReason.SmPasidEntryNotPresent, f.Nvme.Translate(0x12_3456, Access.Read).Fault);
    }

    [Theory]
    [InlineData(4, 3, 48, 2, 2)]
    [InlineData(5, 2, 57, 3, 1)]
    public void DomainFieldsComeFromTheMetadata(int levels, int maxHuge, int width, int agaw, int superpage)
    {
        using var f = new ControlFixture(levels, maxHuge);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        Assert.Equal(width, d.Width);
        Assert.Equal(agaw, d.Agaw);
        Assert.Equal(superpage, d.SuperpageLevel);
        Assert.Equal((1UL << width) - 1, d.MaxAddress);
        Assert.Equal((1UL << width) - 1, d.ApertureEnd);
        Assert.Equal(f.Vm.Tdp.RootHpa, d.Pgd);
        Assert.True(d.ForceSnooping && d.IommuCoherency);
        Assert.False(d.NestedParent || d.DirtyTracking);
        Assert.Equal(0UL, d.PageSizeBitmap);
    }

    [Fact]
    public void AttachProgramsTheRidPasidEntryAsThePatchSays()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        ulong at = f.Dmar0.Tables.PasidEntryAddress(f.Nic.SourceId, 0);
        var pe = new PasidEntry(f.Platform.Memory.ReadEntry(at), f.Platform.Memory.ReadEntry(at + 8), f.Platform.Memory.ReadEntry(at + 16));
        Assert.True(pe.Present);
        Assert.Equal(Pgtt.SecondLevel, pe.Pgtt);
        Assert.Equal(3, pe.Aw);
        Assert.Equal(f.Dmar0.DidOf(d), pe.Did);
        Assert.True(pe.Pgsnp);
        Assert.Equal(f.Dmar0.Unit.Ecap.Smpwc, pe.Pwsnp);
        Assert.False(pe.Ssade);
        Assert.False(pe.Fpd);
        Assert.Equal(f.Vm.Tdp.RootHpa, pe.SsptPtr);
        Assert.True(f.Nic.PageRequestsEnabled);
        Assert.False(f.Nvme.PageRequestsEnabled);
    }

    [Fact]
    public void InvalidationsBecomePageSelectiveRoundedUpAndWidened()
    {
        using var f = new ControlFixture(maxHugePageLevel: 1);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(0, 64, Access.All);
        for (ulong p = 0; p < 64; p++)
            Assert.True(f.Nvme.Translate(p << 12, Access.Read).IsSuccess);
        // An unaligned range of 3 pages starting at page 5 → AM covering pages 4..7 (RFC would drop it).
        d.Invalidate(0x5123, 0x2100);
        for (ulong p = 0; p < 64; p++)
            Assert.Equal(p is < 4 or > 7, f.Nvme.Translate(p << 12, Access.Read).IotlbHit);
        // (0, all) is domain-selective.
        d.Invalidate(0, ExportedTdp.InvalidateAll);
        Assert.False(f.Nvme.Translate(0, Access.Read).IotlbHit);
        Assert.False(f.Nvme.Translate(63 << 12, Access.Read).IotlbHit);
        Assert.Equal(2, d.Invalidations);
    }

    [Fact]
    public void WriteTrackedAndMmioGfnsFailThePageRequestSoTheDmaFaults()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.AddWriteTracking(0x40);
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Nic.TranslateWithPageRequests(0x40000, Access.Write).Fault);
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Nic.TranslateWithPageRequests(0x1_0000_0000, Access.Read).Fault); // beyond memslots: MMIO
        Assert.Equal(2, d.PageRequestsFailed);
        // Errors in a group are sticky: a failing first request fails the whole group.
        var group = new[] { new PageRequest(f.Nic.SourceId, 0x40000, false, true, false, false, 9), new PageRequest(f.Nic.SourceId, 0x1000, true, false, false, true, 9) };
        Assert.Equal(PageResponseCode.Failure, d.ServePageGroup(group));
        Assert.Equal(WalkFault.NotPresent, f.Vm.Translate(0x1000, Access.Read).Fault);
        Assert.Equal(PageResponseCode.Invalid, d.ServePageGroup([new PageRequest(f.Nic.SourceId, 0x1000, false, false, false, true, 1)]));
    }

    [Fact]
    public void MapUnmapPasidAttachAndDirtyTrackingAreRefused()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        Assert.Equal(Errno.EOPNOTSUPP, Assert.Throws<EngineException>(() => d.Map(0, 0x1000, 0x1000, Access.Read)).Errno);
        Assert.Equal(Errno.EOPNOTSUPP, Assert.Throws<EngineException>(() => d.Unmap(0, 0x1000)).Errno);
        Assert.Equal(Errno.EOPNOTSUPP, Assert.Throws<EngineException>(() => d.AttachPasid(f.Nic, 5)).Errno);
        Assert.Equal(Errno.EOPNOTSUPP, Assert.Throws<EngineException>(() => d.SetDirtyTracking(true)).Errno);
    }

    [Fact]
    public void FreeingADomainWithDevicesAttachedIsBusyAndAttachingTwiceIsBusy()
    {
        using var f = new ControlFixture();
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        Assert.Equal(Errno.EBUSY, Assert.Throws<EngineException>(() => d.Attach(f.Nic)).Errno);
        Assert.Equal(Errno.EBUSY, Assert.Throws<EngineException>(() => d.Dispose()).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Detach(f.Nvme)).Errno);
    }
}
