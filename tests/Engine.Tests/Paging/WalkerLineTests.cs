using System.Runtime.InteropServices;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>
/// The straight line (PageWalker.Line.cs, run by <see cref="PageWalker.Walk"/> and <see cref="BoundWalker"/>)
/// keeps a table pointer on it with one test of entry − (region base + permissions): these plant the
/// table pointers that test must send off the line — a permission missing, flag and ignored bits,
/// an address below the region (the subtraction wraps), past it, above the width, in embedder RAM —
/// and compare every walker with the reference.
/// </summary>
public unsafe class WalkerLineTests
{
    private static readonly Access[] Accesses = [Access.None, Access.Read, Access.Write, Access.Execute, Access.ReadWrite, Access.All];

    private const ulong EmbedderHpa = 0x10_0000_0000UL;   // 64 GiB: inside 46 bits, above a 33-bit config's ceiling
    private const ulong EmbedderSize = 256UL << 10;

    [Theory]
    [InlineData(4, 1)]
    [InlineData(5, 2)]
    public void EveryTablePointerShapeWalksAsTheReferenceDoes(int levels, int seed)
    {
        var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        void* ram = NativeMemory.AlignedAlloc((nuint)EmbedderSize, 4096);
        try
        {
            NativeMemory.Clear(ram, (nuint)EmbedderSize);
            memory.AddEmbedderRegion(EmbedderHpa, (nint)ram, EmbedderSize);
            // A valid table in embedder RAM: a PT whose entry 0..511 map frame i with R|W.
            for (ulong i = 0; i < 512; i++)
                memory.WriteEntry(EmbedderHpa + i * 8, ((0x3000 + i) << 12) | 3);
            var t = new TableBuilder(memory, levels);
            var rng = new Random(seed);
            WalkerConfig[] configs =
            [
                WalkerConfig.SecondStage(46, 2),
                WalkerConfig.SecondStage(46, 0, snoopControl: false, deviceTlb: true, executeRequests: true),
                WalkerConfig.SecondStage(33, 1),   // ceiling 8 GiB: Engine's region fits, the embedder region does not
                WalkerConfig.SecondStage(32, 1),   // ceiling 4 GiB: nothing fits, every walk is off the line
                WalkerConfig.Ept(ReservedBitMasks.ForEpt(46, 3, bit11Reserved: true)),
                WalkerConfig.Ept(ReservedBitMasks.ForEpt(33, 2, bit11Reserved: false)),
            ];
            ulong[] addresses = new ulong[16];
            for (int i = 0; i < addresses.Length; i++)
            {
                addresses[i] = (ulong)rng.NextInt64(1L << 40) & ~0xFFFUL;
                t.Set(addresses[i], 1, ((ulong)(0x100 + i) << 12) | (uint)rng.Next(1, 8));
            }
            int compared = 0;
            for (int round = 0; round < 2000; round++)
            {
                ulong address = addresses[rng.Next(addresses.Length)] | (uint)rng.Next(4096);
                int level = rng.Next(2, levels + 1);
                ulong at = t.EntryHpa(address, level);
                ulong saved = memory.ReadEntry(at);
                memory.WriteEntry(at, Plant(rng, memory, saved));
                using (memory.Epochs.Enter())
                {
                    foreach (WalkerConfig config in configs)
                    {
                        var bound = new BoundWalker(memory, config, t.Root, levels);
                        foreach (Access access in Accesses)
                        {
                            WalkResult reference = PageWalker.WalkReference(memory, config, t.Root, levels, address, access);
                            WalkResult fast = PageWalker.Walk(memory, config, t.Root, levels, address, access);
                            Assert.True(fast == reference, $"0x{address:x}, level {level} = 0x{memory.ReadEntry(at):x}, {config}, {access}: fast {fast}, reference {reference}");
                            WalkResult b = bound.Walk(address, access);
                            Assert.True(b == reference, $"0x{address:x}, level {level} = 0x{memory.ReadEntry(at):x}, {config}, {access}: bound {b}, reference {reference}");
                            compared++;
                        }
                    }
                }
                memory.WriteEntry(at, saved);
            }
            Assert.Equal(2000 * configs.Length * Accesses.Length, compared);
        }
        finally
        {
            memory.Dispose();
            NativeMemory.AlignedFree(ram);
        }
    }

    // A table pointer of some shape: where it points, which permissions, which other bits.
    private static ulong Plant(Random rng, HostMemory memory, ulong saved)
    {
        ulong target = (rng.Next(9)) switch
        {
            0 => memory.BaseHpa - 4096,                 // just below the region: the line's subtraction wraps
            1 => memory.EndHpa,                         // just past it
            2 => memory.EndHpa - 4096,                  // its last frame
            3 => EmbedderHpa,                           // embedder RAM
            4 => (saved & EptEntry.AddressMask) | (1UL << rng.Next(32, 52)),   // an address bit above some width
            5 => (ulong)rng.NextInt64(1L << 52) & EptEntry.AddressMask,
            _ => saved & EptEntry.AddressMask,          // where it pointed
        };
        ulong permissions = rng.Next(3) == 0 ? (ulong)rng.Next(8) : (saved & 7);
        ulong flags = rng.Next(3) == 0 ? (ulong)rng.Next(1 << 9) << 3 : 0;          // bits 11:3, PS among them
        ulong high = rng.Next(3) == 0 ? (ulong)rng.Next(1 << 12) << 52 : 0;         // bits 63:52
        return target | permissions | flags | high;
    }

    [Fact]
    public void TheLineCeilingIsTheLowestReservedAddressBitOfTheTablePointerMasks()
    {
        Assert.Equal(1UL << 46, WalkerConfig.SecondStage(46, 2).LineCeiling);
        Assert.Equal(1UL << 39, WalkerConfig.SecondStage(39, 0).LineCeiling);
        Assert.Equal(1UL << 52, WalkerConfig.SecondStage(52, 1).LineCeiling);
        Assert.Equal(1UL << 40, WalkerConfig.Ept(ReservedBitMasks.ForEpt(40, 2, bit11Reserved: true)).LineCeiling);
    }

    [Fact]
    public void ATablePointerWithoutEveryPermissionLeavesTheLineAndNarrowsThePermissions()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var t = new TableBuilder(memory, 4);
        t.Set(0x1000, 1, 0x5000 | 3);
        ulong pdpte = t.EntryHpa(0x1000, 3);
        memory.WriteEntry(pdpte, (memory.ReadEntry(pdpte) & EptEntry.AddressMask) | 1);   // R only
        var config = WalkerConfig.SecondStage(46, 2);
        using (memory.Epochs.Enter())
        {
            WalkResult read = PageWalker.Walk(memory, config, t.Root, 4, 0x1234, Access.Read);
            Assert.True(read.IsSuccess, read.ToString());
            Assert.Equal(Access.Read, read.Permissions);
            Assert.Equal(WalkFault.Permission, new BoundWalker(memory, config, t.Root, 4).Walk(0x1234, Access.Write).Fault);
        }
    }
}
