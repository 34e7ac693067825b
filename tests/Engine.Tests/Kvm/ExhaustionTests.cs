using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

/// <summary>
/// Host memory running out in the middle of a KVM operation answers ENOMEM and changes nothing:
/// every entry as before, and not one frame more in use (the allocator's counts prove it).
/// </summary>
public class ExhaustionTests
{
    [Fact]
    public void AMapThatRunsOutHalfwayKeepsNothingOfItself()
    {
        using var memory = TestMemory.Create(8);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 1 });
        KvmTdpFd export = vm.ExportTdp();
        var importer = new RecordingImporter();
        export.RegisterImporter(importer);
        Memslot slot = vm.AddMemslot(0, 0, 64UL << 20);
        vm.Map(0, 100, Access.Read);
        ulong[] before = [.. Enumerable.Range(0, 100).Select(g => slot.PeekHpa((ulong)g))];
        ulong inUse = Exhaustion.FramesInUse(memory);
        long tables = vm.Tdp.Statistics.TablePages;

        var e = Assert.Throws<EngineException>(() => vm.Map(0, 16384, Access.All)); // 64 MiB into 8 MiB
        Assert.Equal(Errno.ENOMEM, e.Errno);
        Assert.Contains("nothing of it was kept", e.Message);

        Assert.Equal(inUse, Exhaustion.FramesInUse(memory));
        Assert.Equal(tables, vm.Tdp.Statistics.TablePages);
        Assert.Equal(100, slot.TouchedChunks);
        for (ulong g = 0; g < 100; g++)
        {
            WalkResult r = vm.Translate(g << 12, Access.Read);
            Assert.True(r.IsSuccess && r.Hpa == before[g], $"page {g} changed: {r}");
            Assert.False(vm.Translate(g << 12, Access.Write).IsSuccess, $"page {g} gained W from a map that failed");
        }
        for (ulong g = 100; g < 16384; g += 97)
            Assert.Equal(WalkFault.NotPresent, vm.Translate(g << 12, Access.Read).Fault);
        // The importers heard of the range the failed map touched (a walker may have cached a leaf of it).
        Assert.Contains(importer.Take(), c => c.Gpa == 0 && c.Size >= 100UL << 12);

        vm.Map(100, 50, Access.All);
        Assert.True(vm.Translate(149UL << 12, Access.Write).IsSuccess);
    }

    [Fact]
    public void BuildingTablesRunsOutAtEachStepAndLeavesNoFrameBehind()
    {
        using var memory = TestMemory.Create(8);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 1 });
        Memslot slot = vm.AddMemslot(0, 0, 4UL << 20);
        const ulong Gfn = 0x300;
        // A first 4K page needs its backing frame and three tables below the root.
        for (int left = 0; left < 4; left++)
        {
            using (new Exhaustion(memory, left))
            {
                ulong inUse = memory.Statistics.FramesInUse;
                Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => vm.Map(Gfn, 1, Access.All)).Errno);
                Assert.Equal(inUse, Exhaustion.FramesInUse(memory));
                Assert.Equal(TdpFaultResult.OutOfMemory, vm.FaultIn(Gfn, Access.Write));
                Assert.Equal(inUse, Exhaustion.FramesInUse(memory));
            }
            Assert.Equal(0, slot.TouchedChunks);
            Assert.Equal(1, vm.Tdp.Statistics.TablePages);
            Assert.Equal(WalkFault.NotPresent, vm.Translate(Gfn << 12, Access.Read).Fault);
        }
        using (new Exhaustion(memory, 4))
            vm.Map(Gfn, 1, Access.All);
        Assert.True(vm.Translate(Gfn << 12, Access.Write).IsSuccess);
        Assert.Equal(4, vm.Tdp.Statistics.TablePages);
    }

    [Fact]
    public void ASplitThatRunsOutLeavesTheLargePageWhole()
    {
        using var memory = TestMemory.Create(16);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 2 });
        vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        vm.Map(0, 512, Access.All);
        WalkResult before = vm.Translate(5UL << 12, Access.Write);
        Assert.Equal(PageSize.Size2M, before.PageSize);
        TdpMmuStatistics stats = vm.Tdp.Statistics;

        using (var exhausted = new Exhaustion(memory))
        {
            ulong inUse = memory.Statistics.FramesInUse;
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => vm.Zap(5, 1)).Errno);
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => vm.WriteProtect(5, 1)).Errno);
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => vm.AddWriteTracking(5)).Errno);
            Assert.Equal(inUse, Exhaustion.FramesInUse(memory));
        }
        Assert.Equal(before, vm.Translate(5UL << 12, Access.Write));
        Assert.Equal(stats.TablePages, vm.Tdp.Statistics.TablePages);
        Assert.Equal(stats.HugePageSplits, vm.Tdp.Statistics.HugePageSplits);
        // The tracking that failed was not kept: a write fault is served.
        Assert.Equal(TdpFaultResult.Fixed, vm.FaultIn(5, Access.Write));

        using (new Exhaustion(memory, 1))
            vm.Zap(5, 1);
        Assert.Equal(WalkFault.NotPresent, vm.Translate(5UL << 12, Access.Read).Fault);
        Assert.Equal(PageSize.Size4K, vm.Translate(6UL << 12, Access.Read).PageSize);
        Assert.Equal(stats.HugePageSplits + 1, vm.Tdp.Statistics.HugePageSplits);
    }

    [Fact]
    public void AVmWithoutAFrameForItsRootIsEnomem()
    {
        using var memory = TestMemory.Create(1);
        using (new Exhaustion(memory))
        {
            ulong inUse = memory.Statistics.FramesInUse;
            Assert.Equal(Errno.ENOMEM, Assert.Throws<EngineException>(() => new Vm(memory)).Errno);
            Assert.Equal(inUse, memory.Statistics.FramesInUse);
        }
    }

    [Fact]
    public void AWriteFaultUnderDirtyLoggingThatCannotSplitFailsAndLogsNothing()
    {
        using var memory = TestMemory.Create(16);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 2 });
        vm.AddMemslot(0, 0, 2UL << 20, PageSize.Size2M);
        vm.Map(0, 512, Access.All);
        vm.EnableDirtyLogging(0);           // the 2M page loses W; a write fault maps a 4K page writable
        WalkResult before = vm.Translate(0x3000, Access.Read);
        using (new Exhaustion(memory))
        {
            ulong inUse = memory.Statistics.FramesInUse;
            Assert.Equal(TdpFaultResult.OutOfMemory, vm.FaultIn(3, Access.Write));
            Assert.Equal(inUse, Exhaustion.FramesInUse(memory));
        }
        Assert.Equal(before, vm.Translate(0x3000, Access.Read));
        Assert.False(vm.Translate(0x3000, Access.Write).IsSuccess);
        Assert.Empty(vm.GetDirtyLog(0));
        Assert.Equal(1, vm.Tdp.Statistics.FaultsFailed);

        Assert.Equal(TdpFaultResult.Fixed, vm.FaultIn(3, Access.Write));
        Assert.Equal([3UL], vm.GetDirtyLog(0));
    }
}
