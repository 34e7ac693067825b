using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

public class TdpMmuTests
{
    private const ulong Gib = 1UL << 18, Mib2 = 512; // in 4K pages

    [Fact]
    public void MappingUsesTheLargestPageAlignmentBackingAndTheVmAllow()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size1G);
        f.Vm.AddMemslot(1, 1UL << 30, 1UL << 30, PageSize.Size2M);
        f.Vm.AddMemslot(2, 2UL << 30, 64UL << 20, PageSize.Size4K);
        f.Vm.Map(0, Gib, Access.All);
        f.Vm.Map(Gib, Gib, Access.All);
        f.Vm.Map(2 * Gib, 16 * Mib2, Access.All);
        Assert.Equal(PageSize.Size1G, f.Walk(0x1234_5678).PageSize);
        Assert.Equal(PageSize.Size2M, f.Walk((1UL << 30) + 0x1234_5678).PageSize);
        Assert.Equal(PageSize.Size4K, f.Walk((2UL << 30) + 0x12_3456).PageSize);
        Assert.Equal(f.Backing(0x12345) | 0x678, f.Walk(0x1234_5678).Hpa);
    }

    [Fact]
    public void ARaggedRangeMaps4KUpToTheBoundaryThen2M()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 8UL << 20, PageSize.Size2M);
        f.Vm.Map(500, 1024, Access.ReadWrite);
        Assert.Equal(PageSize.Size4K, f.Walk(500UL << 12).PageSize);
        Assert.Equal(PageSize.Size4K, f.Walk(511UL << 12).PageSize);
        Assert.Equal(PageSize.Size2M, f.Walk(512UL << 12).PageSize);
        Assert.Equal(PageSize.Size4K, f.Walk(1024UL << 12).PageSize);
        Assert.Equal(WalkFault.NotPresent, f.Walk(499UL << 12).Fault);
        Assert.Equal(WalkFault.NotPresent, f.Walk(1524UL << 12).Fault);
    }

    [Theory]
    [InlineData(1, PageSize.Size4K)]
    [InlineData(2, PageSize.Size2M)]
    [InlineData(3, PageSize.Size1G)]
    public void TheMaxHugePageLevelCapsTheLeafSize(int maxLevel, PageSize expected)
    {
        using var f = new KvmFixture(maxHugePageLevel: maxLevel);
        f.Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size1G);
        f.Vm.Map(0, Gib, Access.Read);
        Assert.Equal(expected, f.Walk(0x3FFF_FFF8).PageSize);
    }

    [Fact]
    public void AZapThatCutsA2MPageSplitsItAndKeepsTheRest()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        f.Vm.Map(0, Mib2, Access.All);
        f.Importer.Take();
        f.Vm.Zap(100, 10);
        Assert.Equal([(100UL << 12, 10UL << 12)], f.Importer.Take());
        for (ulong g = 0; g < Mib2; g++)
        {
            WalkResult r = f.Walk(g << 12);
            if (g is >= 100 and < 110)
                Assert.Equal(WalkFault.NotPresent, r.Fault);
            else
                Assert.True(r.IsSuccess && r.PageSize == PageSize.Size4K && r.Hpa == f.Backing(g), $"GFN {g}: {r}");
        }
        Assert.Equal(1, f.Vm.Tdp.Statistics.HugePageSplits);
    }

    [Fact]
    public void AZapThatCutsA1GPageSplitsItTwice()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size1G);
        f.Vm.Map(0, Gib, Access.All);
        f.Vm.Zap(Mib2 * 3 + 7, 1);
        Assert.Equal(PageSize.Size2M, f.Walk(0).PageSize);
        Assert.Equal(PageSize.Size4K, f.Walk((Mib2 * 3) << 12).PageSize);
        Assert.Equal(WalkFault.NotPresent, f.Walk((Mib2 * 3 + 7) << 12).Fault);
        Assert.Equal(2, f.Vm.Tdp.Statistics.HugePageSplits);
    }

    [Fact]
    public void ZappingAWholeTableUnlinksAndRetiresItAfterTheImportersHeard()
    {
        using var f = new KvmFixture(maxHugePageLevel: 1);
        f.Vm.AddMemslot(0, 0, 4UL << 20);
        f.Vm.Map(0, Mib2, Access.All);
        long tablesBefore = f.Vm.Tdp.Statistics.TablePages;
        ulong pd = f.Memory.ReadEntry(f.Memory.ReadEntry(f.Memory.ReadEntry(f.Vm.Tdp.RootHpa) & EptEntry.AddressMask) & EptEntry.AddressMask);
        ulong pt = pd & EptEntry.AddressMask;
        FrameState? stateDuringCallback = null;
        var importer = new RecordingImporter((_, _) => stateDuringCallback = f.Memory.GetFrameState(pt));
        f.Export.RegisterImporter(importer);

        f.Vm.Zap(0, Mib2);

        Assert.Equal(FrameState.Allocated, stateDuringCallback);
        Assert.Equal(FrameState.Retired, f.Memory.GetFrameState(pt));
        Assert.Equal(tablesBefore - 1, f.Vm.Tdp.Statistics.TablePages);
        Assert.Equal([(0UL, 2UL << 20)], importer.Take());
    }

    [Fact]
    public void WriteProtectClearsWKeepsReadsAndNotifiesTheRange()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 2 * Mib2, Access.All);
        f.Importer.Take();
        f.Vm.WriteProtect(Mib2 - 1, 2);
        Assert.Equal([((Mib2 - 1) << 12, 2UL << 12)], f.Importer.Take());
        Assert.Equal(WalkFault.Permission, f.Walk((Mib2 - 1) << 12, Access.Write).Fault);
        Assert.Equal(WalkFault.Permission, f.Walk(Mib2 << 12, Access.Write).Fault);
        Assert.True(f.Walk(Mib2 << 12, Access.Read).IsSuccess);
        Assert.True(f.Walk((Mib2 - 2) << 12, Access.Write).IsSuccess);
        Assert.True(f.Walk((Mib2 + 1) << 12, Access.Write).IsSuccess);
        // Protecting again changes nothing, so nobody is told.
        f.Vm.WriteProtect(Mib2 - 1, 2);
        Assert.Empty(f.Importer.Take());
    }

    [Fact]
    public void FaultInMapsOnDemandAtTheLargestSizeTheSlotAllows()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        Assert.Equal(WalkFault.NotPresent, f.Walk(0x12_3456).Fault);
        Assert.Equal(TdpFaultResult.Fixed, f.Export.Fault(0x123, Access.Read));
        WalkResult r = f.Walk(0x12_3456, Access.Write);
        Assert.True(r.IsSuccess, r.ToString());
        Assert.Equal(PageSize.Size2M, r.PageSize);
        Assert.Empty(f.Importer.Take());
        Assert.Equal(1, f.Vm.Tdp.Statistics.FaultsFixed);
    }

    [Fact]
    public void AWriteFaultOnAWriteProtectedPageRestoresWriteAccess()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 64UL << 20);
        f.Vm.Map(0, 16, Access.All);
        f.Vm.WriteProtect(0, 16);
        Assert.Equal(WalkFault.Permission, f.Walk(0x5000, Access.Write).Fault);
        f.Importer.Take();
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(5, Access.Write));
        Assert.True(f.Walk(0x5000, Access.Write).IsSuccess);
        Assert.Equal(WalkFault.Permission, f.Walk(0x6000, Access.Write).Fault);
        // The read-only entry was present, so importers drop it even though access grew.
        Assert.Equal([(0x5000UL, 0x1000UL)], f.Importer.Take());
    }

    [Fact]
    public void FaultsOnMmioWriteTrackedReadOnlyAndOutOfRangeGfnsFail()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        f.Vm.AddMemslot(1, 1UL << 30, 2UL << 20, flags: MemslotFlags.ReadOnly);
        Assert.Equal(TdpFaultResult.NoMemslot, f.Vm.FaultIn(0x10_0000, Access.Read));
        f.Vm.AddWriteTracking(0x40);
        Assert.Equal(TdpFaultResult.WriteTracked, f.Vm.FaultIn(0x40, Access.Write));
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(0x40, Access.Read));
        Assert.Equal(WalkFault.Permission, f.Walk(0x40000, Access.Write).Fault);
        Assert.Equal(PageSize.Size4K, f.Walk(0x40000).PageSize); // no huge page over a tracked GFN
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(0x200, Access.Read));
        Assert.Equal(PageSize.Size2M, f.Walk(0x20_0000).PageSize);
        Assert.Equal(TdpFaultResult.ReadOnlyMemslot, f.Vm.FaultIn(Gib, Access.Write));
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(Gib, Access.Read));
        Assert.Equal(TdpFaultResult.BeyondAddressWidth, f.Vm.FaultIn(1UL << 36, Access.Read));
        Assert.Equal(4, f.Vm.Tdp.Statistics.FaultsFailed);
        f.Vm.RemoveWriteTracking(0x40);
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(0x40, Access.Write));
        Assert.True(f.Walk(0x40000, Access.Write).IsSuccess);
    }

    [Fact]
    public void AddingWriteTrackingSplitsTheHugePageAndRemovesW()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        f.Vm.Map(0, Mib2, Access.All);
        f.Importer.Take();
        f.Vm.AddWriteTracking(7);
        Assert.Equal([(7UL << 12, 0x1000UL)], f.Importer.Take());
        Assert.Equal(WalkFault.Permission, f.Walk(0x7000, Access.Write).Fault);
        Assert.True(f.Walk(0x8000, Access.Write).IsSuccess);
        // A later map of the range must not rebuild a 2M page over the tracked GFN.
        f.Vm.Map(0, Mib2, Access.All);
        Assert.Equal(PageSize.Size4K, f.Walk(0x8000).PageSize);
        Assert.Equal(WalkFault.Permission, f.Walk(0x7000, Access.Write).Fault);
    }

    [Fact]
    public void DirtyLoggingSeesEveryFirstWriteAndRearms()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 2 * Mib2, Access.All);
        f.Vm.EnableDirtyLogging(0);
        Assert.Equal(WalkFault.Permission, f.Walk(0x3000, Access.Write).Fault);
        Assert.True(f.Walk(0x3000, Access.Read).IsSuccess);
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(3, Access.Write));
        Assert.Equal(TdpFaultResult.Fixed, f.Vm.FaultIn(600, Access.Write));
        Assert.Equal(PageSize.Size4K, f.Walk(0x3000).PageSize);
        Assert.True(f.Walk(0x3000, Access.Write).IsSuccess);
        Assert.Equal([3UL, 600UL], f.Vm.GetDirtyLog(0));
        Assert.Equal(WalkFault.Permission, f.Walk(0x3000, Access.Write).Fault);
        Assert.Empty(f.Vm.GetDirtyLog(0));
        f.Vm.DisableDirtyLogging(0);
        Assert.Throws<EngineException>(() => f.Vm.GetDirtyLog(0));
    }

    [Fact]
    public void RemovingAMemslotZapsItAndRetiresItsBacking()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 2 * Mib2, Access.All);
        ulong backing = f.Backing(0);
        ulong root = f.Vm.Tdp.RootHpa;
        f.Importer.Take();
        f.Vm.RemoveMemslot(0);
        Assert.Equal([(0UL, 4UL << 20)], f.Importer.Take());
        Assert.Equal(WalkFault.NotPresent, f.Walk(0).Fault);
        Assert.Equal(FrameState.Retired, f.Memory.GetFrameState(backing));
        Assert.Equal(root, f.Vm.Tdp.RootHpa);
        Assert.Empty(f.Vm.Memslots);
    }

    [Fact]
    public void KvmNeverSetsBit11AndItsLeavesAreWriteBackWithIpat()
    {
        using var f = new KvmFixture(levels: 5);
        f.Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        f.Vm.Map(0, Gib, Access.All);
        f.Vm.Zap(1000, 3000);
        f.Vm.WriteProtect(5000, 100);
        f.Vm.FaultIn(1500, Access.Write);
        int leaves = 0;
        void Visit(ulong table, int level)
        {
            for (ulong i = 0; i < 512; i++)
            {
                var e = new EptEntry(f.Memory.ReadEntry(table + i * 8));
                if (e.Value == 0)
                    continue;
                Assert.True((e.Value & EptEntry.Bit11) == 0, $"bit 11 set in {e} at level {level}");
                Assert.True((e.Value & EptEntry.MmuPresentBit) != 0, $"present marker missing in {e}");
                if (level == 1 || e.IsLargePage)
                {
                    leaves++;
                    Assert.Equal(EptEntry.MemoryTypeWriteBack, e.MemoryType);
                    Assert.True((e.Value & EptEntry.IgnorePatBit) != 0);
                }
                else
                {
                    Visit(e.Address, level - 1);
                }
            }
        }
        Visit(f.Vm.Tdp.RootHpa, 5);
        Assert.True(leaves > 500);
    }
}
