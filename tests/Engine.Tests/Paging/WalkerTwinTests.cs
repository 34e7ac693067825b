using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>The straight-line walker (unbound and bound to its table) against the reference loop: bit-identical results, faults included.</summary>
[Trait("Category", "Simd")]
public class WalkerTwinTests
{
    private static readonly Access[] Accesses = [Access.None, Access.Read, Access.Write, Access.Execute, Access.ReadWrite, Access.All];

    public static TheoryData<int, int> Shapes() => new() { { 4, 1 }, { 4, 3 }, { 5, 2 }, { 5, 3 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void TheFastWalkMatchesTheReferenceUnderRandomBitFlips(int levels, int maxHuge)
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 2UL << 30 });
        using var vm = new Vm(memory, new VmOptions { TdpLevels = levels, MaxHugePageLevel = maxHuge });
        vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        var rng = new Random(levels * 10 + maxHuge);
        for (int i = 0; i < 40; i++)
            vm.Map((ulong)rng.Next(0, (1 << 18) - 600), (ulong)rng.Next(1, 600), (Access)rng.Next(1, 8) | Access.Read);
        WalkerConfig[] configs =
        [
            vm.Tdp.WalkerConfig,
            WalkerConfig.SecondStage(memory.HostAddressWidth, 2),
            WalkerConfig.SecondStage(memory.HostAddressWidth, 0, snoopControl: false, deviceTlb: true, executeRequests: true),
        ];
        int compared = 0;
        for (int round = 0; round < 300; round++)
        {
            ulong gpa = (ulong)rng.NextInt64(1L << 31);
            // Flip one bit of one entry on this address's path (or none), compare, restore.
            int flipLevel = rng.Next(0, levels + 1);
            ulong flipAt = 0, saved = 0;
            if (flipLevel > 0)
            {
                ulong table = vm.Tdp.RootHpa;
                for (int l = levels; l >= flipLevel && table != 0; l--)
                {
                    ulong at = table + (((gpa >> PageSizes.ShiftOfLevel(l)) & 511) << 3);
                    ulong e = memory.ReadEntry(at);
                    if (l == flipLevel)
                    {
                        flipAt = at;
                        saved = e;
                        memory.WriteEntry(at, e ^ (1UL << rng.Next(64)));
                    }
                    bool descend = (e & 7) != 0 && (e & EptEntry.PageSizeBit) == 0 && l > 1;
                    table = descend ? e & EptEntry.AddressMask : 0;
                }
            }
            using (memory.Epochs.Enter())
            {
                foreach (WalkerConfig config in configs)
                {
                    foreach (Access access in Accesses)
                    {
                        WalkResult fast = PageWalker.Walk(memory, config, vm.Tdp.RootHpa, levels, gpa, access);
                        WalkResult reference = PageWalker.WalkReference(memory, config, vm.Tdp.RootHpa, levels, gpa, access);
                        Assert.True(fast == reference, $"GPA 0x{gpa:x}, {config}, {access}: fast {fast}, reference {reference}");
                        WalkResult bound = new BoundWalker(memory, config, vm.Tdp.RootHpa, levels).Walk(gpa, access);
                        Assert.True(bound == reference, $"GPA 0x{gpa:x}, {config}, {access}: bound {bound}, reference {reference}");
                        compared++;
                    }
                }
            }
            if (flipAt != 0)
                memory.WriteEntry(flipAt, saved);
        }
        Assert.Equal(300 * configs.Length * Accesses.Length, compared);
    }

    [Fact]
    public void ABoundWalkerReachesFramesAllocatedAfterItWasBound()
    {
        // The bound snapshot of the allocator's high-water mark must not turn new table frames into faults.
        using var memory = new HostMemory(new HostMemoryOptions { Size = 256UL << 20 });
        var t = new TableBuilder(memory, 4);
        t.Set(0x1000, 1, 0x5000 | 3);
        var config = WalkerConfig.SecondStage(46, 1);
        var walker = new BoundWalker(memory, config, t.Root, 4);
        for (int i = 0; i < 64; i++)
            memory.AllocateFrame();   // move the high-water mark well past the snapshot
        ulong far = 0x40_0000_0000UL;
        t.Set(far, 1, 0x7000 | 3);   // new PDPT/PD/PT frames, above the snapshot
        using (memory.Epochs.Enter())
        {
            Assert.Equal(0x5123UL, walker.Walk(0x1123, Access.Read).Hpa);
            WalkResult r = walker.Walk(far | 0x456, Access.Write);
            Assert.True(r.IsSuccess, r.ToString());
            Assert.Equal(0x7456UL, r.Hpa);
            Assert.Equal(PageWalker.WalkReference(memory, config, t.Root, 4, far | 0x456, Access.Write), r);
        }
        Assert.False(default(BoundWalker).Walk(0x1000, Access.Read).IsSuccess);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void EveryLevelCountAndEveryBadInputMatches(int levels)
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 64UL << 20 });
        var t = new TableBuilder(memory, levels);
        var rng = new Random(levels);
        for (int i = 0; i < 200; i++)
        {
            int level = rng.Next(1, Math.Min(levels, 4));
            ulong address = (ulong)rng.NextInt64(1L << Math.Min(PageSizes.WidthOfLevels(levels), 40)) & ~0xFFFUL;
            ulong bits = (ulong)rng.NextInt64() & (rng.Next(2) == 0 ? 0xFFFUL : ulong.MaxValue);
            t.Set(address, level, (level > 1 && rng.Next(2) == 0 ? memory.AllocateFrame() : 0x2_0000_0000) | bits);
        }
        var config = WalkerConfig.SecondStage(46, 1);
        var ept = WalkerConfig.Ept(ReservedBitMasks.ForEpt(46, 2, true));
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < 3000; i++)
            {
                ulong address = (ulong)rng.NextInt64(1L << Math.Min(PageSizes.WidthOfLevels(levels) + 1, 62));
                ulong root = rng.Next(50) == 0 ? t.Root + 8 : rng.Next(50) == 0 ? memory.EndHpa : t.Root;
                int lv = rng.Next(40) == 0 ? rng.Next(-1, 8) : levels;
                foreach (WalkerConfig c in new[] { config, ept })
                {
                    Access access = Accesses[rng.Next(Accesses.Length)];
                    WalkResult reference = PageWalker.WalkReference(memory, c, root, lv, address, access);
                    Assert.Equal(reference, PageWalker.Walk(memory, c, root, lv, address, access));
                    Assert.Equal(reference, new BoundWalker(memory, c, root, lv).Walk(address, access));
                }
            }
        }
    }
}
