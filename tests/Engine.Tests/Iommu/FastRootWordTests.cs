using Engine.Iommu;

namespace Engine.Tests.Iommu;

/// <summary>The context cache's per-source root word (issue 14): the table a miss walks, beside the fast word.</summary>
public class FastRootWordTests
{
    public static TheoryData<ulong, byte, ushort> Fitting() => new()
    {
        { 0x1234_5000, 4, 7 },
        { 0, 2, 0 },
        { (1UL << 52) - 0x1000, 5, 0xFFFF },   // the highest root that fits, with every DID bit set
        { 1UL << 47, 3, 0x8000 },
        { 0x000F_FFFF_FFFF_F000, 7, 0x00FF },  // levels use all three of their bits
    };

    [Theory]
    [MemberData(nameof(Fitting))]
    public void RootLevelsAndDidComeBackAsTheyWentIn(ulong root, byte levels, ushort did)
    {
        var context = new ResolvedContext(root, did, levels, 48, ContextFlags.PageSnoop);
        ulong word = FastRootWord.Create(context);
        Assert.True((long)word < 0, $"0x{word:x16} lacks the valid bit");
        Assert.Equal(root, FastRootWord.RootOf(word));
        Assert.Equal(levels, FastRootWord.LevelsOf(word));
        Assert.Equal(did, (ushort)(word >> 40));
        // The DID is what Matches compares: the fast word of the same context matches.
        Assert.True(FastRootWord.Matches(word, FastContextWord.Create(3, context).Value));
    }

    [Theory]
    [InlineData(0x1234_5008UL)]                 // not 4 KiB aligned
    [InlineData(0x1234_5800UL)]
    [InlineData(0x1UL)]
    [InlineData(1UL << 52)]                     // the first root past the layout's 40 frame bits
    [InlineData(0x0010_0000_0000_1000UL)]
    [InlineData(1UL << 63)]
    [InlineData(ulong.MaxValue & ~0xFFFUL)]
    public void ARootThatDoesNotFitGivesNoWord(ulong root)
    {
        // 0 is never valid, so the miss path takes the general one instead of walking a truncated root.
        ulong word = FastRootWord.Create(new ResolvedContext(root, 7, 4, 48, ContextFlags.None));
        Assert.Equal(0UL, word);
        Assert.False(FastRootWord.Matches(word, FastContextWord.Create(0, new ResolvedContext(0, 0, 4, 48, ContextFlags.None)).Value));
    }

    [Fact]
    public void NoWordMatchesEvenAFastWordOfDidZero()
    {
        Assert.False(FastRootWord.Matches(0, 0));
        ulong didZero = FastContextWord.Create(1, new ResolvedContext(0x5000, 0, 4, 48, ContextFlags.None)).Value;
        Assert.Equal((ushort)0, FastContextWord.DidOf(didZero));
        Assert.False(FastRootWord.Matches(0, didZero));
    }

    [Fact]
    public void AWordMatchesOnlyAFastWordOfItsOwnDid()
    {
        var context = new ResolvedContext(0x7_7000, 0x1234, 4, 48, ContextFlags.None);
        ulong word = FastRootWord.Create(context);
        ulong Fast(ushort did, uint generation = 5) => FastContextWord.Create(generation, context with { Did = did }).Value;
        Assert.True(FastRootWord.Matches(word, Fast(0x1234)));
        // Whatever else the fast word says (generation, width, flags, levels) is not the root word's business.
        Assert.True(FastRootWord.Matches(word, FastContextWord.Create(9, context with { Width = 39, Levels = 3, Flags = ContextFlags.FaultProcessingDisabled }).Value));
        Assert.False(FastRootWord.Matches(word, Fast(0x1235)));
        Assert.False(FastRootWord.Matches(word, Fast(0x0234)), "the DID's high bits were not compared");
        Assert.False(FastRootWord.Matches(word, Fast(0x9234)), "the DID's top bit was not compared");
        Assert.False(FastRootWord.Matches(word, Fast(0)));
    }
}
