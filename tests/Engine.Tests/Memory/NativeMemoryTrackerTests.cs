using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Memory;

[CollectionDefinition(nameof(NativeTrackerCollection), DisableParallelization = true)]
public sealed class NativeTrackerCollection;

[Collection(nameof(NativeTrackerCollection))]
public class NativeMemoryTrackerTests
{
    [Fact]
    public void DisposingEverythingReturnsTheReservedBytesToWhereTheyWere()
    {
        long before = NativeMemoryTracker.ReservedBytes;
        long liveBefore = NativeMemoryTracker.LiveAllocations;
        var memory = new HostMemory(new HostMemoryOptions { Size = 2UL << 30 });
        Assert.True(NativeMemoryTracker.ReservedBytes >= before + (2L << 30));
        var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        vm.Map(0, (64UL << 20) >> 12, Access.All);
        vm.Dispose();
        memory.Dispose();
        Assert.Equal(before, NativeMemoryTracker.ReservedBytes);
        Assert.Equal(liveBefore, NativeMemoryTracker.LiveAllocations);
    }
}
