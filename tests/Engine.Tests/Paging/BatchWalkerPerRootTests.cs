using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>
/// <see cref="PageWalker.WalkBatchPerRoot"/>: each address walked in its own table, by every batch
/// walker, bit-identical to the reference walk of that address in that table — tables of one level
/// count mixed in one batch, roots outside memory, misaligned and below it among them, every batch
/// length 0..130 (short groups, several groups, the interleaved walker's short batches).
/// </summary>
[Trait("Category", "Simd")]
public class BatchWalkerPerRootTests
{
    private static readonly WalkResult Untouched = new(0xDEAD_BEEF, 0xDEAD_BEEF, (WalkFault)0xEE, 0xEE, (Access)0xEE);

    public static TheoryData<BatchWalkerKind> Kinds() => [.. BatchWalkerKinds.All];

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EachAddressWalksItsOwnTableAsTheReferenceDoes(BatchWalkerKind kind)
    {
        Assert.SkipUnless(PageWalker.IsBatchWalkerSupported(kind), $"the {kind.Name()} batch walker is not supported here");
        foreach (int levels in new[] { 3, 4, 5 })
        {
            using var memory = new HostMemory(new HostMemoryOptions { Size = 64UL << 20 });
            var rng = new Random(levels * 7 + (int)kind);
            // Three tables; the same addresses map differently in each (or not at all), so a lane walked
            // in its neighbour's table gives a different answer.
            var tables = new TableBuilder[3];
            for (int t = 0; t < tables.Length; t++)
                tables[t] = new TableBuilder(memory, levels);
            var planted = new List<ulong>();
            for (int i = 0; i < 300; i++)
            {
                ulong address = (ulong)rng.NextInt64(1L << 36) & ~0xFFFUL;
                planted.Add(address);
                for (int t = 0; t < tables.Length; t++)
                {
                    switch (rng.Next(8))
                    {
                        case < 5:   // a 4K leaf with some permissions, a different frame per table
                            tables[t].Set(address, 1, ((ulong)(t + 1) << 32) | ((ulong)i << 12) | (uint)rng.Next(0, 8));
                            break;
                        case 5:     // a 2M leaf: the vector walkers hand it to the scalar walk
                            tables[t].Set(address, 2, ((ulong)(t + 1) << 32) | EptEntry.PageSizeBit | 3);
                            break;
                        case 6:     // not present, address bits kept
                            tables[t].Set(address, 1, 0x3_0000_0000UL);
                            break;
                        default:    // absent from this table
                            break;
                    }
                }
            }
            ulong[] roots = [tables[0].Root, tables[1].Root, tables[2].Root, memory.EndHpa, tables[1].Root + 8, 0x1000];
            var config = WalkerConfig.SecondStage(46, 2);
            var addresses = new ulong[130];
            var rootOf = new ulong[130];
            var batch = new WalkResult[130 + 8];
            int successes = 0, outside = 0;
            using (memory.Epochs.Enter())
            {
                for (int length = 0; length <= 130; length++)
                {
                    for (int i = 0; i < length; i++)
                    {
                        addresses[i] = rng.Next(10) == 0
                            ? (ulong)rng.NextInt64(1L << Math.Min(PageSizes.WidthOfLevels(levels) + 1, 62))
                            : planted[rng.Next(planted.Count)] | (uint)rng.Next(4096);
                        // Mostly the three tables; now and then a root outside memory, misaligned or below it.
                        rootOf[i] = roots[rng.Next(20) == 0 ? rng.Next(3, roots.Length) : rng.Next(3)];
                    }
                    Access access = (Access)rng.Next(0, 8);
                    Array.Fill(batch, Untouched);
                    PageWalker.WalkBatchPerRoot(kind, memory, config, rootOf.AsSpan(0, length), levels, addresses.AsSpan(0, length), access, batch);
                    for (int i = 0; i < length; i++)
                    {
                        WalkResult reference = PageWalker.WalkReference(memory, config, rootOf[i], levels, addresses[i], access);
                        Assert.True(reference == batch[i], $"{kind.Name()}, {levels} levels, length {length}, lane {i}, root 0x{rootOf[i]:x}, address 0x{addresses[i]:x}, {access}: batch {batch[i]}, reference {reference}");
                        successes += reference.IsSuccess ? 1 : 0;
                        outside += reference.Fault == WalkFault.TablePointerOutsideMemory ? 1 : 0;
                    }
                    for (int i = length; i < batch.Length; i++)
                        Assert.True(batch[i] == Untouched, $"{kind.Name()}, length {length}: result {i}, past the batch, was written ({batch[i]}).");
                }
            }
            Assert.True(successes > 500, $"{levels} levels: only {successes} walks succeeded; the vector path's leaves are barely tested.");
            Assert.True(outside > 0, $"{levels} levels: no root outside memory was walked; the per-lane root check is untested.");
        }
    }

    [Fact]
    public void TooFewRootsOrResultsAreRefusedByName()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var config = WalkerConfig.SecondStage(46, 2);
        ulong root = memory.AllocateFrame();
        var roots = Assert.Throws<ArgumentException>(() =>
            PageWalker.WalkBatchPerRoot(BatchWalkerKind.Interleaved, memory, config, [root], 4, [0x1000, 0x2000], Access.Read, new WalkResult[2]));
        Assert.Equal("rootHpas", roots.ParamName);
        var results = Assert.Throws<ArgumentException>(() =>
            PageWalker.WalkBatchPerRoot(BatchWalkerKind.Interleaved, memory, config, [root, root], 4, [0x1000, 0x2000], Access.Read, new WalkResult[1]));
        Assert.Equal("results", results.ParamName);
        var kind = Assert.Throws<ArgumentOutOfRangeException>(() =>
            PageWalker.WalkBatchPerRoot((BatchWalkerKind)9, memory, config, [root], 4, [0x1000], Access.Read, new WalkResult[1]));
        Assert.Contains("Not a batch walker", kind.Message);
        PageWalker.WalkBatchPerRoot(BatchWalkerKind.Interleaved, memory, config, [], 4, [], Access.Read, []);   // nothing to walk: no error
    }
}
