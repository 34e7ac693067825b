using System.Runtime.CompilerServices;
using CsCheck;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>The miss path builds results from two words (<c>TranslationResult.FromWords</c>): they must be the constructor's results.</summary>
public class TranslationResultLayoutTests
{
    [Fact]
    public void AResultIsSixteenBytes() => Assert.Equal(16, Unsafe.SizeOf<TranslationResult>());

    [Fact]
    public void TwoWordsMakeTheResultTheConstructorMakes()
    {
        Gen.Select(Gen.ULong, Gen.Byte[0, 3], Gen.Byte[1, 3], Gen.Byte[0, 7], Gen.Bool, Gen.Byte, Gen.UShort, Gen.Bool)
            .Sample((hpa, status, size, access, snoop, fault, did, hit) =>
            {
                var expected = new TranslationResult((TranslationStatus)status, hpa, (PageSize)size, (Access)access, snoop, (FaultReason)fault, did, hit);
                ulong tail = TranslationResult.Tail((TranslationStatus)status, (PageSize)size, (Access)access, snoop, (FaultReason)fault, did, hit);
                Assert.Equal(expected, TranslationResult.FromWords(hpa, tail));
            });
    }

    [Theory]
    [InlineData(false, 0x1234UL)]            // a 4K leaf
    [InlineData(true, 0x1234UL)]
    [InlineData(false, (1UL << 30) + 0x20_1234)]   // in the 1G memslot
    [InlineData(true, (1UL << 30) + 0x20_1234)]
    public void AWalkedMissComesBackWithEveryField(bool scalable, ulong iova)
    {
        // The same request answered by the miss path (walk and fill) and then by the hit: equal but for IotlbHit.
        using var f = new UnitFixture(scalable);
        f.Vm.Map(0, 1024, Access.All);
        f.Vm.Map(1UL << 18, 1UL << 18, Access.ReadWrite);
        TranslationResult miss = f.Translate(iova, Access.Write);
        TranslationResult hit = f.Translate(iova, Access.Write);
        Assert.True(miss.IsSuccess, miss.ToString());
        Assert.False(miss.IotlbHit);
        Assert.True(hit.IotlbHit);
        Assert.Equal(f.Backing(iova), miss.Hpa);
        var hitAsMiss = new TranslationResult(hit.Status, hit.Hpa, hit.Size, hit.Permissions, hit.Snoop, hit.Fault, hit.Did, iotlbHit: false);
        Assert.Equal(hitAsMiss, miss);
    }

    [Fact]
    public void TwoWordsMakeTheContextTheConstructorMakes()
    {
        Assert.Equal(16, Unsafe.SizeOf<ResolvedContext>());
        Gen.Select(Gen.ULong, Gen.UShort, Gen.Byte, Gen.Byte, Gen.Byte).Sample((root, did, levels, width, flags) =>
            Assert.Equal(new ResolvedContext(root, did, levels, width, (ContextFlags)flags),
                ResolvedContext.FromWords(root, did | (ulong)levels << 16 | (ulong)width << 24 | (ulong)flags << 32)));
    }

    [Fact]
    public void TheBatchReadsWalkResultsAsThreeWords() =>
        // Otherwise the batch's eight-at-a-time answer is never taken (it falls back to one by one).
        Assert.True(Translator.WalksAreThreeWords);
}
