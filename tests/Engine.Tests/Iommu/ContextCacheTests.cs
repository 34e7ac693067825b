using Engine.Iommu;

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
}
