using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

public class VmBadInputTests
{
    [Fact]
    public void BadVmOptionsAreRefusedWithTheReason()
    {
        using var memory = TestMemory.Create(16);
        Assert.Contains("TdpLevels", Assert.Throws<ArgumentOutOfRangeException>(() => new Vm(memory, new VmOptions { TdpLevels = 3 })).Message);
        Assert.Contains("MaxHugePageLevel", Assert.Throws<ArgumentOutOfRangeException>(() => new Vm(memory, new VmOptions { MaxHugePageLevel = 4 })).Message);
        Assert.Contains("PhysicalAddressWidth", Assert.Throws<ArgumentOutOfRangeException>(() => new Vm(memory, new VmOptions { PhysicalAddressWidth = 40 })).Message);
        Assert.Throws<ArgumentNullException>(() => new Vm(null!));
    }

    [Fact]
    public void BadMemslotsAreRefusedAndChangeNothing()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        Assert.Equal("size", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, 8UL << 20, 4096, PageSize.Size2M)).ParamName);
        Assert.Equal("gpa", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, 4096 * 3, 2UL << 20, PageSize.Size2M)).ParamName);
        Assert.Equal("size", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, 0, 0)).ParamName);
        Assert.Equal("size", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, (1UL << 48) - 4096, 8192)).ParamName);
        Assert.Equal("backing", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, 0, 4096, (PageSize)9)).ParamName);
        Assert.Equal("flags", Assert.Throws<ArgumentOutOfRangeException>(() => vm.AddMemslot(1, 0, 4096, flags: (MemslotFlags)64)).ParamName);
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => vm.AddMemslot(0, 64UL << 20, 4096)).Errno);
        var overlap = Assert.Throws<EngineException>(() => vm.AddMemslot(1, 2UL << 20, 4UL << 20));
        Assert.Equal(Errno.EEXIST, overlap.Errno);
        Assert.Contains("overlaps", overlap.Message);
        Assert.Equal(Errno.ENOENT, Assert.Throws<EngineException>(() => vm.RemoveMemslot(7)).Errno);
        Assert.Equal(Errno.ENOENT, Assert.Throws<EngineException>(() => vm.EnableDirtyLogging(7)).Errno);
        Assert.Single(vm.Memslots);
    }

    [Fact]
    public void BadRangesAndPermissionsAreRefused()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 4UL << 20);
        Assert.Equal("pages", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Map(0, 0, Access.Read)).ParamName);
        Assert.Equal("gfn", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Map(1UL << 36, 1, Access.Read)).ParamName);
        Assert.Equal("gfn", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Zap(ulong.MaxValue, 2)).ParamName);
        Assert.Equal("gfn", Assert.Throws<ArgumentOutOfRangeException>(() => vm.WriteProtect((1UL << 36) - 1, 2)).ParamName);
        Assert.Contains("not in any memslot", Assert.Throws<ArgumentException>(() => vm.Map(1020, 10, Access.Read)).Message);
        Assert.Equal("permissions", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Map(0, 1, Access.None)).ParamName);
        Assert.Equal("permissions", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Map(0, 1, Access.Write)).ParamName);
        Assert.Equal("permissions", Assert.Throws<ArgumentOutOfRangeException>(() => vm.Map(0, 1, (Access)8)).ParamName);
        Assert.Equal("access", Assert.Throws<ArgumentOutOfRangeException>(() => vm.FaultIn(0, Access.None)).ParamName);
        Assert.Contains("not in any memslot", Assert.Throws<ArgumentException>(() => vm.AddWriteTracking(5000)).Message);
        // Nothing above changed the tables.
        Assert.Equal(WalkFault.NotPresent, vm.Translate(0, Access.Read).Fault);
    }
}
