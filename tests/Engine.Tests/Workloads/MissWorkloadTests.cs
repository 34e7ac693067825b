using Engine.Workloads;

namespace Engine.Tests.Workloads;

/// <summary>
/// The issue-14 workloads run and report sane numbers: invariants only, never speeds (CI is loaded).
/// </summary>
public class MissWorkloadTests
{
    [Fact]
    public void TheReplayWorkloadAllocatesNothingOnceWarm()
    {
        // Each pass rewinds one reader over the trace: a reader a pass was 1 B/op.
        using var w = WorkloadCatalog.Create("replay-hit", 1);
        w.Setup();
        ulong expected = w.RunPass();
        Assert.Equal(expected, w.RunPass());
        SteadyStateAllocation.AssertSomeRoundAllocatesNothing(() =>
        {
            for (int i = 0; i < 3; i++)
                w.RunPass();
        }, "3 passes");
    }

    [Theory]
    [InlineData("dma-strict")]
    [InlineData("dma-lazy")]
    public void TheDmaApiWorkloadsTranslateEverythingAtALowHitRate(string name)
    {
        using var w = (DmaApiWorkload)WorkloadCatalog.Create(name, 1);
        w.Setup();
        for (int pass = 0; pass < 3; pass++)
            w.RunPass();
        Assert.Equal(0, w.Failures);
        Assert.True(w.OperationsPerPass > DmaApiWorkload.CommandsPerPass * 8, $"{w.OperationsPerPass} translations per pass");
        // About 3 / (3 + pages) with 8..32 pages a command: 12–13 % (issue 14's traces).
        Assert.NotNull(w.IotlbHitRate);
        Assert.InRange(w.IotlbHitRate!.Value, 0.10, 0.15);
        Assert.StartsWith("hit rate", w.Note);
        // The buffers' IOVAs come back from the rcache: Linux's reuse of recently freed ranges.
        Assert.True(w.IovaCacheHits > DmaApiWorkload.CommandsPerPass, $"only {w.IovaCacheHits} allocations from the rcache");
    }

    [Fact]
    public void TranslateMissBatchWalksEveryPageAndAgreesWithTranslateMiss()
    {
        using var batch = WorkloadCatalog.Create("translate-miss-batch", 1);
        using var scalar = WorkloadCatalog.Create("translate-miss", 1);
        batch.Setup();
        scalar.Setup();
        Assert.Equal(scalar.OperationsPerPass, batch.OperationsPerPass);
        ulong expected = scalar.RunPass();
        Assert.Equal(expected, batch.RunPass());
        Assert.Equal(expected, batch.RunPass());
        Assert.True(batch.UsesBatchWalker);
    }

    [Fact]
    public void WalkMissSetWalksTheSamePagesToTheSameAddressesAsTranslateMiss()
    {
        using var walks = WorkloadCatalog.Create("walk-missset", 1);
        using var scalar = WorkloadCatalog.Create("translate-miss", 1);
        walks.Setup();
        scalar.Setup();
        Assert.Equal(scalar.OperationsPerPass, walks.OperationsPerPass);
        ulong expected = scalar.RunPass();
        Assert.NotEqual(0UL, expected);
        Assert.Equal(expected, walks.RunPass());
        Assert.Equal(expected, walks.RunPass());
    }

    [Theory]
    [InlineData("translate-miss")]
    [InlineData("translate-miss-batch")]
    [InlineData("walk-missset")]
    public void TheMissWorkloadsAllocateNothing(string name)
    {
        using var w = WorkloadCatalog.Create(name, 1);
        w.Setup();
        w.RunPass();
        w.RunPass();
        SteadyStateAllocation.AssertSomeRoundAllocatesNothing(() =>
        {
            for (int i = 0; i < 50; i++)
                w.RunPass();
        }, "50 passes");
    }

    [Theory]
    [InlineData("dma-strict")]
    [InlineData("dma-lazy")]
    public void TheDmaApiWorkloadsAllocateNothingOnceWarm(string name)
    {
        // Each pass maps, translates and unmaps 1024 commands: the control path's flushes included.
        using var w = WorkloadCatalog.Create(name, 1);
        w.Setup();
        w.RunPass();
        SteadyStateAllocation.AssertSomeRoundAllocatesNothing(() =>
        {
            for (int i = 0; i < 3; i++)
                w.RunPass();
        }, "3 passes");
    }
}
