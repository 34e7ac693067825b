using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

/// <summary>After Dispose every member of a VM, its export and its memslots answers ObjectDisposedException or an errno.</summary>
public class VmDisposeTests
{
    [Fact]
    public void ADisposedVmTranslatesNothingAndRefusesEveryOperation()
    {
        using var memory = TestMemory.Create(64);
        var vm = new Vm(memory, new VmOptions { Name = "gone" });
        vm.AddMemslot(0, 0, 1UL << 20, flags: MemslotFlags.LogDirtyPages);
        vm.Map(0, 16, Access.All);
        Assert.True(vm.Translate(0x1000, Access.Read).IsSuccess);
        vm.Dispose();

        Assert.True(vm.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => vm.Translate(0x1000, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => vm.Memslots);
        Assert.Throws<ObjectDisposedException>(() => vm.AddMemslot(1, 2UL << 20, 4096));
        Assert.Throws<ObjectDisposedException>(() => vm.RemoveMemslot(0));
        Assert.Throws<ObjectDisposedException>(() => vm.Map(0, 1, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => vm.Zap(0, 1));
        Assert.Throws<ObjectDisposedException>(() => vm.WriteProtect(0, 1));
        Assert.Throws<ObjectDisposedException>(() => vm.FaultIn(0, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => vm.AddWriteTracking(0));
        Assert.Throws<ObjectDisposedException>(() => vm.RemoveWriteTracking(0));
        Assert.Throws<ObjectDisposedException>(() => vm.EnableDirtyLogging(0));
        Assert.Throws<ObjectDisposedException>(() => vm.DisableDirtyLogging(0));
        Assert.Throws<ObjectDisposedException>(() => vm.GetDirtyLog(0));
        Assert.Throws<ObjectDisposedException>(() => vm.ExportTdp());
        vm.Dispose();

        // What describes the VM stays readable.
        Assert.Equal("gone", vm.Name);
        Assert.Same(memory, vm.Memory);
        Assert.Equal(4, vm.Tdp.Levels);
        Assert.Equal(1UL << 36, vm.MaxGfn);
        Assert.Equal(0, vm.Tdp.Statistics.TablePages);
    }

    [Fact]
    public void AMemslotOfADisposedVmOrARemovedOneNoLongerNamesFrames()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        Memslot kept = vm.AddMemslot(0, 0, 1UL << 20);
        Memslot removed = vm.AddMemslot(1, 1UL << 20, 1UL << 20);
        vm.Map(0, 512, Access.All);
        Assert.NotEqual(0UL, kept.PeekHpa(3));
        Assert.Equal("gfn", Assert.Throws<ArgumentOutOfRangeException>(() => kept.PeekHpa(256)).ParamName);

        vm.RemoveMemslot(1);
        Assert.True(removed.IsDeleted);
        Assert.Equal(Errno.ENOENT, Assert.Throws<EngineException>(() => removed.PeekHpa(256)).Errno);
        Assert.Equal(Errno.ENOENT, Assert.Throws<EngineException>(() => removed.TouchedChunks).Errno);
        Assert.False(kept.IsDeleted);

        vm.Dispose();
        Assert.True(kept.IsDeleted);
        Assert.Equal(Errno.ENOENT, Assert.Throws<EngineException>(() => kept.PeekHpa(3)).Errno);
        Assert.Equal(0, kept.Id);
        Assert.Equal(256UL, kept.Pages);
    }

    [Fact]
    public void TheExportOfADisposedVmIsClosed()
    {
        using var memory = TestMemory.Create(64);
        var vm = new Vm(memory);
        KvmTdpFd export = vm.ExportTdp();
        var importer = new RecordingImporter();
        export.RegisterImporter(importer);
        vm.Dispose();
        Assert.True(export.IsClosed);
        Assert.Equal(0, export.ImporterCount);
        Assert.Throws<ObjectDisposedException>(() => export.Fault(0, Access.Read));
        Assert.Equal(Errno.ENODEV, Assert.Throws<EngineException>(() => export.RegisterImporter(new RecordingImporter())).Errno);
        Assert.False(export.UnregisterImporter(importer));
        Assert.Equal(TdpType.Ept, export.Metadata.Type);
        export.Dispose();
    }

    [Fact]
    public void AVmWhoseHostMemoryWentFirstStillDisposesCleanly()
    {
        var memory = TestMemory.Create(64);
        var vm = new Vm(memory);
        KvmTdpFd export = vm.ExportTdp();
        var importer = new RecordingImporter();
        export.RegisterImporter(importer);
        memory.Dispose();
        vm.Dispose();
        Assert.Equal(1, importer.Revocations);
        Assert.Throws<ObjectDisposedException>(() => vm.Translate(0, Access.Read));
    }
}
