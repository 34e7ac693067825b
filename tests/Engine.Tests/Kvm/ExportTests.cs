using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

public class ExportTests
{
    [Theory]
    [InlineData(4, 3)]
    [InlineData(5, 2)]
    public void MetadataDescribesTheEptAsKvmExportsIt(int levels, int maxHuge)
    {
        using var f = new KvmFixture(levels, maxHuge);
        ExportedTdp meta = f.Export.Metadata;
        Assert.Equal(TdpType.Ept, meta.Type);
        Assert.Equal(levels, meta.Level);
        Assert.Equal(f.Vm.Tdp.RootHpa, meta.RootHpa);
        Assert.Equal(maxHuge, meta.MaxHugePageLevel);
        Assert.True(meta.RsvdBitsMask.AllContain(EptEntry.Bit11), "KVM's must-be-zero masks must include bit 11 everywhere");
        Assert.Equal(0, f.Export.AddressSpaceId);
        Assert.Same(f.Vm, f.Export.Vm);
    }

    [Fact]
    public void OneExportPerAddressSpaceAndOnlyAddressSpaceZero()
    {
        using var f = new KvmFixture();
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => f.Vm.ExportTdp()).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => f.Vm.ExportTdp(1)).Errno);
        f.Export.Dispose();
        using KvmTdpFd again = f.Vm.ExportTdp();
        Assert.Equal(f.Vm.Tdp.RootHpa, again.Metadata.RootHpa);
    }

    [Fact]
    public void TheSameImporterTwiceIsBusy()
    {
        using var f = new KvmFixture();
        var e = Assert.Throws<EngineException>(() => f.Export.RegisterImporter(f.Importer));
        Assert.Equal(Errno.EBUSY, e.Errno);
        Assert.True(f.Export.UnregisterImporter(f.Importer));
        Assert.False(f.Export.UnregisterImporter(f.Importer));
        Assert.Throws<ArgumentNullException>(() => f.Export.RegisterImporter(null!));
    }

    [Fact]
    public void MappingNewPagesNotifiesNobodyButChangingPresentOnesDoes()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 1024, Access.Read);
        Assert.Empty(f.Importer.Take());
        f.Vm.Map(0, 1024, Access.Read);   // identical entries: nothing changed
        Assert.Empty(f.Importer.Take());
        f.Vm.Map(512, 512, Access.ReadWrite);
        Assert.Equal([(2UL << 20, 2UL << 20)], f.Importer.Take());
    }

    [Fact]
    public void NotificationsCarryExactlyTheChangedRangesMerged()
    {
        using var f = new KvmFixture(maxHugePageLevel: 1);
        f.Vm.AddMemslot(0, 0, 64UL << 20);
        f.Vm.Map(10, 5, Access.All);
        f.Vm.Map(20, 5, Access.All);
        f.Vm.Map(25, 5, Access.All);
        f.Vm.Zap(0, 100);   // unmapped pages inside the range are not reported
        Assert.Equal([(10UL << 12, 5UL << 12), (20UL << 12, 10UL << 12)], f.Importer.Take());
        f.Vm.Zap(0, 100);
        Assert.Empty(f.Importer.Take());
    }

    [Fact]
    public void TheRootNeverChangesAndDisposingTheVmInvalidatesEverything()
    {
        var f = new KvmFixture();
        ulong root = f.Vm.Tdp.RootHpa;
        f.Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size1G);
        f.Vm.Map(0, 1UL << 18, Access.All);
        f.Vm.Zap(0, 1UL << 18);
        f.Vm.RemoveMemslot(0);
        Assert.Equal(root, f.Vm.Tdp.RootHpa);
        Assert.Equal(root, f.Export.Metadata.RootHpa);
        f.Importer.Take();
        f.Vm.Dispose();
        Assert.Equal(1, f.Importer.Revocations);
        Assert.True(f.Export.IsClosed);
        Assert.Equal(0, f.Export.ImporterCount);
        Assert.Throws<ObjectDisposedException>(() => f.Export.Fault(0, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => f.Vm.Map(0, 1, Access.Read));
        f.Memory.Dispose();
    }

    [Fact]
    public void ImportersAreRevokedWhileTheTablesAreStillAllocated()
    {
        using var memory = TestMemory.Create(64);
        var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 1UL << 20);
        vm.Map(0, 16, Access.All);
        ulong root = vm.Tdp.RootHpa, backing = vm.FindSlot(3)!.PeekHpa(3);
        KvmTdpFd export = vm.ExportTdp();
        var seen = new List<(FrameState Root, FrameState Backing)>();
        export.RegisterImporter(new RecordingImporter(onRevoke: () => seen.Add((memory.GetFrameState(root), memory.GetFrameState(backing)))));
        vm.Dispose();
        Assert.Equal([(FrameState.Allocated, FrameState.Allocated)], seen);
        Assert.NotEqual(FrameState.Allocated, memory.GetFrameState(root));
        Assert.NotEqual(FrameState.Allocated, memory.GetFrameState(backing));
        vm.Dispose(); // idempotent: nobody is revoked twice
        Assert.Single(seen);
    }

    [Fact]
    public void AnImporterThatCannotStopKeepsTheVmsFramesFromReuse()
    {
        using var memory = TestMemory.Create(64);
        var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 1UL << 20);
        vm.Map(0, 16, Access.All);
        KvmTdpFd export = vm.ExportTdp();
        var polite = new RecordingImporter();
        export.RegisterImporter(new RecordingImporter(onRevoke: () => throw new InvalidOperationException("stuck")));
        export.RegisterImporter(polite);
        ulong inUse = memory.Statistics.FramesInUse;
        var e = Assert.Throws<InvalidOperationException>(() => vm.Dispose());
        Assert.Contains("kept", e.Message);
        Assert.Equal(1, polite.Revocations);  // every importer is asked, even after one failed
        Assert.Equal(inUse, memory.Statistics.FramesInUse);
        Assert.Equal(FrameState.Allocated, memory.GetFrameState(vm.Tdp.RootHpa));
        Assert.Throws<ObjectDisposedException>(() => vm.Map(0, 1, Access.Read));
        vm.Dispose();
    }

    [Fact]
    public void ClosingTheExportRevokesItsImportersAndTheVmLivesOn()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 2UL << 20);
        f.Vm.Map(0, 4, Access.All);
        f.Export.Dispose();
        Assert.Equal(1, f.Importer.Revocations);
        Assert.Equal(Errno.ENODEV, Assert.Throws<EngineException>(() => f.Export.RegisterImporter(new RecordingImporter())).Errno);
        f.Export.Dispose();
        Assert.Equal(1, f.Importer.Revocations);
        f.Vm.Zap(0, 4);
        Assert.Empty(f.Importer.Take()); // a revoked importer hears nothing more
        using KvmTdpFd again = f.Vm.ExportTdp();
        Assert.Equal(TdpFaultResult.Fixed, again.Fault(1, Access.Read));
    }

    [Fact]
    public void TheFaultOpFaultsInThroughTheExport()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 2UL << 20);
        Assert.Equal(TdpFaultResult.Fixed, f.Export.Fault(3, Access.Write));
        Assert.True(f.Walk(0x3000, Access.Write).IsSuccess);
        Assert.Equal(TdpFaultResult.NoMemslot, f.Export.Fault(1024, Access.Read));
    }
}
