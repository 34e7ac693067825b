using Engine.Control;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>
/// Tests that set the ENGINE_BATCH_WALKER variable run in this collection, one at a time. The
/// walker itself is configuration (unit or platform options), so no test changes another's walker.
/// </summary>
[CollectionDefinition(nameof(BatchWalkerSelectionCollection))]
public sealed class BatchWalkerSelectionCollection;

[Trait("Category", "Simd")]
[Collection(nameof(BatchWalkerSelectionCollection))]
public class BatchWalkerSelectionTests
{
    [Fact]
    public void TheMeasurementPicksTheFastestSupportedWalker()
    {
        BatchWalkerSelection s = PageWalker.MeasureBatchWalkers();
        Assert.True(PageWalker.IsBatchWalkerSupported(s.Kind), $"selected {s}");
        if (PageWalker.SupportedBatchWalkers.Count == 1)
        {
            Assert.Equal(BatchWalkerSelectionReason.OnlyCandidate, s.Reason);
            Assert.Equal(BatchWalkerKind.Interleaved, s.Kind);
            return;
        }
        Assert.Equal(BatchWalkerSelectionReason.Measured, s.Reason);
        Assert.Equal(PageWalker.SupportedBatchWalkers, s.Timings.Select(t => t.Kind));
        foreach (BatchWalkerTiming t in s.Timings)
            Assert.True(double.IsFinite(t.NsPerWalk) && t.NsPerWalk > 0, $"{t.Kind.Name()}: {t.NsPerWalk} ns per walk");
        Assert.Equal(s.Timings.MinBy(t => t.NsPerWalk).Kind, s.Kind);
        Assert.StartsWith($"{s.Kind.Name()} (measured ns/walk: interleaved ", s.ToString());
    }

    [Fact]
    public void EverySupportedWalkerCanBeAskedForAndWalkBatchUsesIt()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var t = new TableBuilder(memory, 4);
        t.Set(0x1000, 1, 0x1_0000_0000UL | 3);
        var config = WalkerConfig.SecondStage(46, 2);
        ulong[] addresses = [0x1234, 0x5000, 1UL << 50, .. Enumerable.Range(0, 37).Select(i => 0x1000UL * (ulong)(i % 3) + (ulong)i)];
        var results = new WalkResult[addresses.Length];
        foreach (BatchWalkerKind kind in PageWalker.SupportedBatchWalkers)
        {
            BatchWalkerSelection s = PageWalker.ForcedBatchWalker(kind);
            Assert.Equal(new BatchWalkerSelection(kind, BatchWalkerSelectionReason.Forced, s.Timings), s);
            Assert.Empty(s.Timings);
            Assert.Equal($"{kind.Name()} (forced)", s.ToString());
            using (memory.Epochs.Enter())
            {
                // Short batches (below GatherMinimumBatch) and long ones.
                foreach (int length in new[] { 0, 1, PageWalker.GatherMinimumBatch - 1, PageWalker.GatherMinimumBatch, 40 })
                {
                    Array.Fill(results, default);
                    PageWalker.WalkBatch(kind, memory, config, t.Root, 4, addresses.AsSpan(0, length), Access.Read, results);
                    for (int i = 0; i < length; i++)
                        Assert.Equal(PageWalker.WalkReference(memory, config, t.Root, 4, addresses[i], Access.Read), results[i]);
                }
            }
            Assert.Equal(0x1_0000_0234UL, results[0].Hpa);
            Assert.Equal(WalkFault.NotPresent, results[1].Fault);
            Assert.Equal(WalkFault.AddressBeyondWidth, results[2].Fault);
            // By name, as the CLI and the environment variable spell it.
            Assert.Equal(kind, PageWalker.ParseBatchWalker(kind.Name().ToUpperInvariant())!.Kind);
        }
        Assert.Null(PageWalker.ParseBatchWalker("auto"));
    }

    [Fact]
    public void TwoUnitsInOneProcessUseTheWalkersTheirOptionsName()
    {
        IReadOnlyList<BatchWalkerKind> kinds = PageWalker.SupportedBatchWalkers;
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 }, BatchWalker = kinds[^1] });
        IommuPreset preset = IommuPresets.Get("server");
        IommuInstance first = platform.AddIommu("dmar0", new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, BatchWalker = kinds[0] });
        IommuInstance second = platform.AddIommu("dmar1", preset);   // the platform's choice
        Assert.Equal(kinds[0], first.Unit.BatchWalker.Kind);
        Assert.Equal(kinds[^1], second.Unit.BatchWalker.Kind);
        Assert.Equal(BatchWalkerSelectionReason.Forced, second.Unit.BatchWalker.Reason);

        // The same misses through both units: same answers, whichever walker walked them.
        (TranslationStatus, ulong, PageSize, Access, FaultReason)[] Translate(IommuInstance iommu, int bus)
        {
            Device d = platform.AddDevice($"d{bus}", bus, 0, 0, iommu);
            PagingDomain domain = platform.AllocatePagingDomain(d);
            domain.Attach(d);
            ulong buffer = platform.Memory.AllocateContiguous(16, 1);
            domain.Map(0x10_0000, buffer, 16 * 4096, Access.ReadWrite);
            TranslationRequest[] requests = [.. Enumerable.Range(0, 40).Select(i => new TranslationRequest(d.SourceId, 0x10_0000 + (ulong)i * 0x1800 % 0x1_2000, Access.Read))];
            var results = new TranslationResult[requests.Length];
            iommu.Unit.TranslateBatch(requests, results);
            return [.. results.Select(r => (r.Status, r.IsSuccess ? r.Hpa - buffer : 0, r.Size, r.Permissions, r.Fault))];
        }
        Assert.Equal(Translate(first, 1), Translate(second, 2));
    }

    [Fact]
    public void AWalkerThisCpuCannotRunIsRefusedWhenTheUnitIsBuilt()
    {
        BatchWalkerKind[] missing = [.. BatchWalkerKinds.All.Where(k => !PageWalker.IsBatchWalkerSupported(k))];
        using var memory = new HostMemory(new HostMemoryOptions { Size = 64UL << 20 });
        IommuPreset preset = IommuPresets.Get("server");
        foreach (BatchWalkerKind kind in missing)
        {
            var e = Assert.Throws<NotSupportedException>(() => new DmarUnit(memory, new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, BatchWalker = kind }));
            Assert.Contains(kind.Name(), e.Message);
        }
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => new DmarUnit(memory, new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, BatchWalker = (BatchWalkerKind)7 }));
        Assert.Contains("No batch walker has the value 7", bad.Message);
    }

    [Fact]
    public void TheEnvironmentVariableNamesTheDefault()
    {
        foreach (BatchWalkerKind kind in PageWalker.SupportedBatchWalkers)
        {
            BatchWalkerSelection s = PageWalker.FromVariable($" {kind.Name()} ")!;
            Assert.Equal(kind, s.Kind);
            Assert.Equal(BatchWalkerSelectionReason.Environment, s.Reason);
            Assert.Equal($"{kind.Name()} (forced by ENGINE_BATCH_WALKER)", s.ToString());
        }
        // auto, blank and unset all mean: measure.
        Assert.Null(PageWalker.FromVariable("auto"));
        Assert.Null(PageWalker.FromVariable(" "));
        Assert.Null(PageWalker.FromVariable(null));
        // The process default is made once and kept: asking again gives the same selection.
        Assert.Same(BatchWalkerDefault.Selection, BatchWalkerDefault.Selection);
        Assert.True(PageWalker.IsBatchWalkerSupported(BatchWalkerDefault.Selection.Kind));
    }

    [Fact]
    public void UnknownNamesAndValuesAreClearErrors()
    {
        var variable = Assert.Throws<InvalidOperationException>(() => PageWalker.FromVariable("avx1024"));
        Assert.Equal($"ENGINE_BATCH_WALKER=avx1024 names no batch walker; use one of interleaved|avx2|avx512|avx512-loads|auto (supported here: {string.Join(", ", PageWalker.SupportedBatchWalkers.Select(k => k.Name()))}).", variable.Message);
        var name = Assert.Throws<ArgumentException>(() => PageWalker.ParseBatchWalker("gather"));
        Assert.Contains("'gather' names no batch walker; known: interleaved|avx2|avx512|avx512-loads|auto", name.Message);
        Assert.Equal("name", name.ParamName);
        var value = Assert.Throws<ArgumentOutOfRangeException>(() => PageWalker.ForcedBatchWalker((BatchWalkerKind)7));
        Assert.Contains("No batch walker has the value 7", value.Message);
        Assert.False(PageWalker.IsBatchWalkerSupported((BatchWalkerKind)7));
        Assert.False(BatchWalkerKinds.TryParse("auto", out _));
    }
}
