using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>
/// Tests that change the process-wide batch-walker selection run in this collection, one at a time
/// (the selection tests and the CLI's --batch-walker tests). Other tests may walk batches meanwhile:
/// every walker gives the same results, so only these tests' own assertions could race.
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
        try
        {
            BatchWalkerSelection s = PageWalker.SelectFastestBatchWalker();
            Assert.True(PageWalker.IsBatchWalkerSupported(s.Kind), $"selected {s}");
            Assert.Equal(s.Kind, PageWalker.SelectedBatchWalker);
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
        finally
        {
            PageWalker.ResetBatchWalkerSelection();
        }
    }

    [Fact]
    public void EverySupportedWalkerCanBeForcedAndWalkBatchThenUsesIt()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var t = new TableBuilder(memory, 4);
        t.Set(0x1000, 1, 0x1_0000_0000UL | 3);
        var config = WalkerConfig.SecondStage(46, 2);
        ulong[] addresses = [0x1234, 0x5000, 1UL << 50, .. Enumerable.Range(0, 37).Select(i => 0x1000UL * (ulong)(i % 3) + (ulong)i)];
        var results = new WalkResult[addresses.Length];
        try
        {
            foreach (BatchWalkerKind kind in PageWalker.SupportedBatchWalkers)
            {
                BatchWalkerSelection s = PageWalker.SelectBatchWalker(kind);
                Assert.Equal(new BatchWalkerSelection(kind, BatchWalkerSelectionReason.Forced, s.Timings), s);
                Assert.Empty(s.Timings);
                Assert.Equal(kind, PageWalker.SelectedBatchWalker);
                Assert.Equal($"{kind.Name()} (forced)", PageWalker.BatchWalkerSelection.ToString());
                using (memory.Epochs.Enter())
                {
                    // Short batches (below GatherMinimumBatch) and long ones, through the dispatcher.
                    foreach (int length in new[] { 0, 1, PageWalker.GatherMinimumBatch - 1, PageWalker.GatherMinimumBatch, 40 })
                    {
                        Array.Fill(results, default);
                        PageWalker.WalkBatch(memory, config, t.Root, 4, addresses.AsSpan(0, length), Access.Read, results);
                        for (int i = 0; i < length; i++)
                            Assert.Equal(PageWalker.WalkReference(memory, config, t.Root, 4, addresses[i], Access.Read), results[i]);
                    }
                }
                Assert.Equal(0x1_0000_0234UL, results[0].Hpa);
                Assert.Equal(WalkFault.NotPresent, results[1].Fault);
                Assert.Equal(WalkFault.AddressBeyondWidth, results[2].Fault);
                // By name, as the CLI and the environment variable spell it.
                Assert.Equal(kind, PageWalker.SelectBatchWalker(kind.Name().ToUpperInvariant()).Kind);
            }
            BatchWalkerSelection auto = PageWalker.SelectBatchWalker("auto");
            Assert.Equal(PageWalker.SupportedBatchWalkers.Count > 1 ? BatchWalkerSelectionReason.Measured : BatchWalkerSelectionReason.OnlyCandidate, auto.Reason);
        }
        finally
        {
            PageWalker.ResetBatchWalkerSelection();
        }
    }

    [Fact]
    public void TheEnvironmentVariableForcesTheWalkerAtFirstUse()
    {
        string? saved = Environment.GetEnvironmentVariable(PageWalker.BatchWalkerVariable);
        try
        {
            foreach (BatchWalkerKind kind in PageWalker.SupportedBatchWalkers)
            {
                Environment.SetEnvironmentVariable(PageWalker.BatchWalkerVariable, $" {kind.Name()} ");
                PageWalker.ResetBatchWalkerSelection();
                BatchWalkerSelection s = PageWalker.BatchWalkerSelection;
                Assert.Equal(kind, s.Kind);
                Assert.Equal(BatchWalkerSelectionReason.Environment, s.Reason);
                Assert.Equal($"{kind.Name()} (forced by ENGINE_BATCH_WALKER)", s.ToString());
            }
            // auto, blank and unset all mean: measure.
            Assert.Null(PageWalker.FromVariable("auto"));
            Assert.Null(PageWalker.FromVariable(" "));
            Assert.Null(PageWalker.FromVariable(null));
        }
        finally
        {
            Environment.SetEnvironmentVariable(PageWalker.BatchWalkerVariable, saved);
            PageWalker.ResetBatchWalkerSelection();
        }
    }

    [Fact]
    public void UnknownNamesAndValuesAreClearErrors()
    {
        var variable = Assert.Throws<InvalidOperationException>(() => PageWalker.FromVariable("avx1024"));
        Assert.Equal($"ENGINE_BATCH_WALKER=avx1024 names no batch walker; use one of interleaved|avx2|avx512|avx512-loads|auto (supported here: {string.Join(", ", PageWalker.SupportedBatchWalkers.Select(k => k.Name()))}).", variable.Message);
        var name = Assert.Throws<ArgumentException>(() => PageWalker.SelectBatchWalker("gather"));
        Assert.Contains("'gather' names no batch walker; known: interleaved|avx2|avx512|avx512-loads|auto", name.Message);
        Assert.Equal("name", name.ParamName);
        var value = Assert.Throws<ArgumentOutOfRangeException>(() => PageWalker.SelectBatchWalker((BatchWalkerKind)7));
        Assert.Contains("No batch walker has the value 7", value.Message);
        Assert.False(PageWalker.IsBatchWalkerSupported((BatchWalkerKind)7));
        Assert.False(BatchWalkerKinds.TryParse("auto", out _));
    }
}
