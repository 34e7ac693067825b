using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

[Trait("Category", "Simd")]
public class BatchWalkerTests
{
    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void EveryBatchLengthFrom0To256GivesTheScalarResults(int levels)
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 4UL << 30 });
        using var vm = new Vm(memory, new VmOptions { TdpLevels = levels, MaxHugePageLevel = 3 });
        vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        vm.AddMemslot(1, 1UL << 30, 1UL << 30, PageSize.Size1G);
        var rng = new Random(levels);
        for (int i = 0; i < 30; i++)
            vm.Map((ulong)rng.Next(0, (1 << 19) - 2000), (ulong)rng.Next(1, 2000), Access.Read | (Access)rng.Next(0, 8));
        // A planted reserved bit and a pointer outside memory, so faults of every kind appear in batches.
        ulong root = vm.Tdp.RootHpa;
        ulong pdpt = root; // the level-3 table covering GPA 0 (one more hop with 5 levels)
        for (int l = levels; l > 3; l--)
            pdpt = memory.ReadEntry(pdpt) & EptEntry.AddressMask;
        memory.WriteEntry(pdpt + 8 * 511, memory.EndHpa | 7);
        // SNP (reserved in non-leaf entries) in the PDPTE of GPA 0..1 GiB's neighbour: a reserved-bit fault.
        vm.Map(1UL << 18, 512, Access.All);
        ulong pdpte1 = memory.ReadEntry(pdpt + 8);
        memory.WriteEntry(pdpt + 8, pdpte1 | SlPte.SnoopBit);
        // A 2 MiB page whose data looks like a page table: a walker that missed PS would descend into it.
        vm.Map(0, 512, Access.All);
        vm.Zap(1024, 512);
        vm.Map(1025, 3, Access.All);   // GFNs 1024..1535: a page table with three 4K leaves
        ulong somePt = memory.ReadEntry((memory.ReadEntry(pdpt) & EptEntry.AddressMask) + 8 * 2) & EptEntry.AddressMask;
        vm.WriteGuest(0, memory.GetSpan(somePt, 4096));
        WalkerConfig[] configs = [WalkerConfig.SecondStage(memory.HostAddressWidth, 2), WalkerConfig.SecondStage(memory.HostAddressWidth, 1, snoopControl: false), vm.Tdp.WalkerConfig];
        var addresses = new ulong[256];
        var batch = new WalkResult[256];
        using (memory.Epochs.Enter())
        {
            for (int length = 0; length <= 256; length++)
            {
                for (int i = 0; i < length; i++)
                {
                    addresses[i] = rng.Next(12) switch
                    {
                        0 => 1UL << 58,                                   // beyond any width
                        1 => (511UL << 30) | (uint)rng.Next(1 << 30),    // through the bad pointer
                        _ => (ulong)rng.NextInt64(1L << 31),
                    };
                }
                foreach (WalkerConfig config in configs)
                {
                    Access access = (Access)rng.Next(0, 8);
                    PageWalker.WalkBatch(BatchWalkerDefault.Selection.Kind, memory, config, root, levels, addresses.AsSpan(0, length), access, batch);
                    for (int i = 0; i < length; i++)
                    {
                        WalkResult scalar = PageWalker.Walk(memory, config, root, levels, addresses[i], access);
                        Assert.True(scalar == batch[i], $"length {length}, lane {i}, 0x{addresses[i]:x}, {config}: batch {batch[i]}, scalar {scalar}");
                    }
                }
            }
        }
    }

    [Fact]
    public void AShortResultSpanIsRefused()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var e = Assert.Throws<ArgumentException>(() =>
            PageWalker.WalkBatch(BatchWalkerKind.Interleaved, memory, WalkerConfig.SecondStage(46, 2), memory.BaseHpa, 4, new ulong[3], Access.Read, new WalkResult[2]));
        Assert.Equal("results", e.ParamName);
    }
}
