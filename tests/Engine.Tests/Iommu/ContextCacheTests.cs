using Engine.Iommu;
using Engine.Memory;

namespace Engine.Tests.Iommu;

public class ContextCacheTests
{
    private static readonly ResolvedContext Context = new(0x1234_5000, 7, 4, 48, ContextFlags.Scalable | ContextFlags.PageSnoop);

    [Fact]
    public void AResolvedContextIsServedFullAndFastUntilInvalidated()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, cache.Generation);
        Assert.True(cache.TryGet(0x0310, ContextCache.NoPasidKey, out ResolvedContext full));
        Assert.Equal(Context, full);
        Assert.True(cache.TryGetFast(0x0310, out ResolvedContext fast));
        Assert.Equal(Context with { Root = 0, Flags = Context.Flags | ContextFlags.RootUnknown }, fast);
        Assert.False(cache.TryGetFast(0x0311, out _));
        cache.InvalidateAll();
        Assert.False(cache.TryGet(0x0310, ContextCache.NoPasidKey, out _));
        Assert.False(cache.TryGetFast(0x0310, out _));
    }

    [Fact]
    public void TheMissPathsLookupServesOnlyASlotOfTheGenerationItWasGiven()
    {
        using var cache = new ContextCache(64);
        uint before = cache.Generation;
        cache.InvalidateAll();
        uint after = cache.Generation;
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, after);
        Assert.True(cache.TryGet(0x0310, ContextCache.NoPasidKey, after, out ResolvedContext full));
        Assert.Equal(Context, full);
        // A word checked under the older generation must not be paired with a slot resolved under the newer one.
        Assert.False(cache.TryGet(0x0310, ContextCache.NoPasidKey, before, out ResolvedContext refused), "a slot of a later generation was served");
        Assert.Equal(default, refused);
        cache.InvalidateAll();
        Assert.False(cache.TryGet(0x0310, ContextCache.NoPasidKey, after, out _), "a slot was served after its generation ended");
    }

    [Fact]
    public void ARequestWithPasidNeverWritesTheFastWord()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, 5, Context, cache.Generation);
        Assert.True(cache.TryGet(0x0310, 5, out _));
        Assert.False(cache.TryGetFast(0x0310, out _));
    }

    [Fact]
    public void APassThroughContextNeverWritesTheFastWord()
    {
        // The fast word means "probe the IOTLB"; pass-through contexts take the full lookup.
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context with { Flags = ContextFlags.PassThrough }, cache.Generation);
        Assert.True(cache.TryGet(0x0310, ContextCache.NoPasidKey, out ResolvedContext full));
        Assert.Equal(ContextFlags.PassThrough, full.Flags);
        Assert.False(cache.TryGetFast(0x0310, out _));
    }

    [Fact]
    public void AFillUnderAnOldGenerationIsNotServed()
    {
        using var cache = new ContextCache(64);
        uint generation = cache.Generation;
        cache.InvalidateAll();
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, generation);
        Assert.False(cache.TryGet(0x0310, ContextCache.NoPasidKey, out _));
        Assert.False(cache.TryGetFast(0x0310, out _));
    }

    [Fact]
    public void TheFastWordsGenerationNeverWrapsOntoAStaleWord()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, cache.Generation);
        for (int i = 0; i < 1 << 22; i++)   // the fast word keeps 22 bits of the generation
            cache.InvalidateAll();
        Assert.False(cache.TryGetFast(0x0310, out _), "a word filled 2^22 invalidations ago must not match again");
    }

    // The root words (issue 14): beside each fast word, the table a miss walks.

    private static unsafe ulong RootWord(ContextCache cache, ushort sourceId) => Volatile.Read(ref cache.RootWords[sourceId]);

    private static void AssertRootWordOf(ResolvedContext expected, ulong rootWord, ContextCache cache, ushort sourceId)
    {
        Assert.True((long)rootWord < 0, $"no root word for source 0x{sourceId:x4}");
        Assert.Equal(expected.Root, FastRootWord.RootOf(rootWord));
        Assert.Equal(expected.Levels, FastRootWord.LevelsOf(rootWord));
        Assert.Equal(expected.Did, (ushort)(rootWord >> 40));
        Assert.True(FastRootWord.Matches(rootWord, cache.FastWord(sourceId)), "the root word does not match its source's fast word");
    }

    [Fact]
    public void ATranslatingPutWritesTheRootWordBesideTheFastWord()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, cache.Generation);
        Assert.True(cache.TryGetFast(0x0310, out _));
        AssertRootWordOf(Context, RootWord(cache, 0x0310), cache, 0x0310);
        Assert.Equal(0UL, RootWord(cache, 0x0311));
    }

    [Fact]
    public void APassThroughPutWritesNoRootWord()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context with { Flags = ContextFlags.PassThrough }, cache.Generation);
        Assert.True(cache.TryGet(0x0310, ContextCache.NoPasidKey, out _));
        Assert.Equal(0UL, RootWord(cache, 0x0310));
    }

    [Fact]
    public void APutWithPasidWritesNoRootWord()
    {
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, 5, Context, cache.Generation);
        cache.TryPut(0x0310, 0, Context, cache.Generation);
        Assert.True(cache.TryGet(0x0310, 5, out _));
        Assert.Equal(0UL, RootWord(cache, 0x0310));
    }

    [Fact]
    public void APutUnderAnOldGenerationWritesNoRootWord()
    {
        using var cache = new ContextCache(64);
        uint generation = cache.Generation;
        cache.InvalidateAll();
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, generation);
        Assert.Equal(0UL, RootWord(cache, 0x0310));
    }

    [Fact]
    public void AContextWhoseRootDoesNotFitGetsAFastWordButNoValidRootWord()
    {
        // The miss path must then take the general path: Matches fails on the 0 word.
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context with { Root = 1UL << 52 }, cache.Generation);
        Assert.True(cache.TryGetFast(0x0310, out _));
        Assert.False(FastRootWord.Matches(RootWord(cache, 0x0310), cache.FastWord(0x0310)));
    }

    [Fact]
    public void ALaterPutUnderAnotherDidGivesARootWordTheOlderFastWordDoesNotMatch()
    {
        // A reader that holds the older fast word and reads the root word after the later put must
        // not walk the later domain's table under the older DID.
        using var cache = new ContextCache(64);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, Context, cache.Generation);
        ulong older = cache.FastWord(0x0310);
        cache.InvalidateAll();
        var moved = new ResolvedContext(0x9_9000, 9, 3, 39, ContextFlags.None);
        cache.TryPut(0x0310, ContextCache.NoPasidKey, moved, cache.Generation);
        ulong rootWord = RootWord(cache, 0x0310);
        AssertRootWordOf(moved, rootWord, cache, 0x0310);
        Assert.False(FastRootWord.Matches(rootWord, older));
    }

    private static void SaveAndRestore(ContextCache from, ContextCache into)
    {
        var w = new CheckpointWriter();
        from.SaveState(w);
        var r = new CheckpointReader("CTXCACHE", w.Written.ToArray(), 0);
        into.RestoreState(r);
        Assert.True(r.AtEnd);
    }

    [Fact]
    public void RestoringACheckpointRebuildsTheRootWordsOfCurrentFastWords()
    {
        var other = new ResolvedContext(0xABC_D000, 11, 5, 57, ContextFlags.None);
        using var saved = new ContextCache(64);
        saved.TryPut(0x0310, ContextCache.NoPasidKey, Context, saved.Generation);
        saved.TryPut(0x0311, ContextCache.NoPasidKey, other, saved.Generation);
        saved.TryPut(0x0312, ContextCache.NoPasidKey, Context with { Flags = ContextFlags.PassThrough }, saved.Generation);
        saved.TryPut(0x0313, 5, Context, saved.Generation);
        // Sources whose slots do not collide (64 slots): every one is still cached when saved.
        Assert.True(saved.TryGet(0x0310, ContextCache.NoPasidKey, out _) && saved.TryGet(0x0311, ContextCache.NoPasidKey, out _)
            && saved.TryGet(0x0312, ContextCache.NoPasidKey, out _) && saved.TryGet(0x0313, 5, out _));

        using var restored = new ContextCache(64);
        // Words the fresh cache had before the restore are not kept: the checkpoint has no fast word for this source.
        restored.TryPut(0x0314, ContextCache.NoPasidKey, other, restored.Generation);
        Assert.NotEqual(0UL, RootWord(restored, 0x0314));
        SaveAndRestore(saved, restored);

        Assert.True(restored.TryGetFast(0x0310, out _));
        AssertRootWordOf(Context, RootWord(restored, 0x0310), restored, 0x0310);
        AssertRootWordOf(other, RootWord(restored, 0x0311), restored, 0x0311);
        Assert.Equal(0UL, RootWord(restored, 0x0312));   // pass-through: none, as a put writes none
        Assert.Equal(0UL, RootWord(restored, 0x0313));   // with PASID: none
        Assert.Equal(0UL, RootWord(restored, 0x0314));
    }

    [Fact]
    public void RestoringGivesNoRootWordToAStaleFastWordOrOneWhoseSlotWasEvicted()
    {
        // One slot: the second source's put evicts the first's slot while the first's fast word stays current.
        var second = new ResolvedContext(0x2_2000, 2, 4, 48, ContextFlags.None);
        using var saved = new ContextCache(1);
        saved.TryPut(0x0310, ContextCache.NoPasidKey, Context, saved.Generation);
        saved.TryPut(0x0320, ContextCache.NoPasidKey, second, saved.Generation);
        Assert.True(saved.TryGetFast(0x0310, out _));
        Assert.False(saved.TryGet(0x0310, ContextCache.NoPasidKey, out _));

        using var restored = new ContextCache(1);
        SaveAndRestore(saved, restored);
        Assert.Equal(0UL, RootWord(restored, 0x0310));
        AssertRootWordOf(second, RootWord(restored, 0x0320), restored, 0x0320);

        // After an invalidation every fast word is stale: a checkpoint taken then restores no root word.
        saved.InvalidateAll();
        using var afterInvalidation = new ContextCache(1);
        SaveAndRestore(saved, afterInvalidation);
        Assert.Equal(0UL, RootWord(afterInvalidation, 0x0320));
    }

    [Fact]
    public void RestoringGivesNoRootWordFromASlotThatCouldNotHaveWrittenTheFastWord()
    {
        // The source's translating put writes its words; another source evicts the slot; then the same
        // source is put as pass-through (the tables changed without an invalidation), which writes no
        // words but fills the slot. The restore must not make a root word of the pass-through context.
        using var saved = new ContextCache(1);
        saved.TryPut(0x0310, ContextCache.NoPasidKey, Context, saved.Generation);
        saved.TryPut(0x0320, ContextCache.NoPasidKey, new ResolvedContext(0x2_2000, 2, 4, 48, ContextFlags.None), saved.Generation);
        saved.TryPut(0x0310, ContextCache.NoPasidKey, new ResolvedContext(0, Context.Did, 2, 48, ContextFlags.PassThrough), saved.Generation);
        Assert.True(saved.TryGetFast(0x0310, out _));
        using var restored = new ContextCache(1);
        SaveAndRestore(saved, restored);
        Assert.Equal(0UL, RootWord(restored, 0x0310));
    }
}
