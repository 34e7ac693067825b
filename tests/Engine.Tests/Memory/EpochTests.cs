using Engine.Memory;

namespace Engine.Tests.Memory;

public class EpochTests
{
    [Fact]
    public void ARetiredFrameWaitsForAReaderThatEnteredBefore()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        using var readerInside = new ManualResetEventSlim();
        using var readerMayLeave = new ManualResetEventSlim();
        var reader = new Thread(() =>
        {
            using (memory.Epochs.Enter())
            {
                readerInside.Set();
                readerMayLeave.Wait(TestContext.Current.CancellationToken);
            }
        });
        reader.Start();
        readerInside.Wait(TestContext.Current.CancellationToken);

        memory.RetireFrame(hpa);
        Assert.Equal(0, memory.Reclaim());
        Assert.Equal(FrameState.Retired, memory.GetFrameState(hpa));

        readerMayLeave.Set();
        reader.Join();
        Assert.Equal(1, memory.Reclaim());
        Assert.Equal(FrameState.Free, memory.GetFrameState(hpa));
    }

    [Fact]
    public void AReaderThatEntersAfterTheRetirementDoesNotHoldItBack()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        memory.RetireFrame(hpa);
        using (memory.Epochs.Enter())
            Assert.Equal(1, memory.Reclaim());
    }

    [Fact]
    public void RegionsNestAndOnlyTheOutermostLeaves()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        memory.Epochs.Protect();
        memory.Epochs.Protect();
        memory.RetireFrame(hpa);
        memory.Epochs.Unprotect();
        Assert.True(memory.Epochs.IsProtected);
        memory.Epochs.Unprotect();
        Assert.False(memory.Epochs.IsProtected);
        // The same thread held the epoch at retirement; once out, reclamation proceeds.
        Assert.Equal(1, memory.Reclaim());
    }

    [Fact]
    public void LeavingWithoutEnteringIsAnError()
    {
        using var memory = TestMemory.Create(16);
        var e = Assert.Throws<InvalidOperationException>(() => memory.Epochs.Unprotect());
        Assert.Contains("not inside a protected region", e.Message);
    }

    [Fact]
    public void SafeEpochIsTheOldestReaderOrTheCurrentEpochWhenNoneIsInside()
    {
        using var epochs = new EpochManager();
        // Never beyond the epoch its barrier covered: a frame tagged later waits for the next scan.
        Assert.Equal(epochs.Current, epochs.SafeEpoch());
        ulong entered = epochs.Current;
        using (epochs.Enter())
        {
            epochs.Bump();
            epochs.Bump();
            Assert.Equal(entered, epochs.SafeEpoch());
            Assert.False(epochs.IsSafe(entered + 1));
            Assert.True(epochs.IsSafe(entered));
        }
        Assert.True(epochs.IsSafe(epochs.Current));
        Assert.False(epochs.IsSafe(epochs.Current + 1));
    }

    [Fact]
    public void RetiringAFrameTwiceOrAFreeFrameIsRefusedAndChangesNothing()
    {
        using var memory = TestMemory.Create(16);
        ulong a = memory.AllocateFrame(), b = memory.AllocateFrame();
        memory.RetireFrame(a);
        Assert.Contains("double free", Assert.Throws<InvalidHostAddressException>(() => memory.RetireFrame(a)).Message);
        // A batch with one bad frame retires none of them.
        Assert.Throws<InvalidHostAddressException>(() => memory.RetireFrames([b, a]));
        Assert.Equal(FrameState.Allocated, memory.GetFrameState(b));
        Assert.Equal(1UL, memory.Statistics.RetiredFrames);
    }

    [Fact]
    public void DisposeWaitsForReadersAndTheirWalksThenSeeAnEmptyRegion()
    {
        var memory = TestMemory.Create(16);
        ulong root = memory.AllocateFrame();
        using var inside = new ManualResetEventSlim();
        var results = new List<Engine.Paging.WalkFault>();
        var reader = new Thread(() =>
        {
            using (memory.Epochs.Enter())
            {
                inside.Set();
                Thread.Sleep(200);
                results.Add(Engine.Paging.PageWalker.Walk(memory, Engine.Paging.WalkerConfig.SecondStage(46, 2), root, 4, 0, Engine.Paging.Access.Read).Fault);
            }
        });
        reader.Start();
        inside.Wait(TestContext.Current.CancellationToken);
        memory.Dispose();
        reader.Join();
        // The walk that raced disposal found the limit at 0 and faulted instead of touching freed memory.
        Assert.Equal([Engine.Paging.WalkFault.TablePointerOutsideMemory], results);
    }

    // The miss path's entry (issue 14): EnterIfIdle / LeaveEntered, no nesting count.

    [Fact]
    public void AnIdleThreadThatEntersHoldsBackFramesTaggedAfterItsEntryUntilItLeaves()
    {
        using var epochs = new EpochManager();
        int slot = ThreadSlots.Current;
        ulong entered = epochs.Current;
        Assert.True(epochs.EnterIfIdle(slot));
        ulong tag = epochs.Bump();   // a frame unlinked while the walk may still hold it
        Assert.Equal(entered, epochs.SafeEpoch());
        Assert.False(epochs.IsSafe(tag));
        epochs.LeaveEntered(slot, entered: true);
        Assert.True(epochs.IsSafe(tag));
        Assert.Equal(epochs.Current, epochs.SafeEpoch());
        // It left no depth behind: a region entered and left afterwards nests as usual, and nothing is left to leave.
        Assert.False(epochs.IsProtected);
        epochs.Protect();
        Assert.True(epochs.IsProtected);
        epochs.Unprotect();
        Assert.False(epochs.IsProtected);
        Assert.Throws<InvalidOperationException>(() => epochs.Unprotect());
    }

    [Fact]
    public void InsideARegionEnterIfIdleChangesNothingAndItsLeaveLeavesTheRegionProtected()
    {
        using var epochs = new EpochManager();
        int slot = ThreadSlots.Current;
        ulong entered = epochs.Current;
        epochs.Protect(slot);
        ulong before = epochs.Bump();   // tagged after the region's entry: held back by it
        // Refused, and the slot keeps the region's (older) epoch: not moved up to the current one.
        Assert.False(epochs.EnterIfIdle(slot));
        ulong during = epochs.Bump();
        Assert.Equal(entered, epochs.SafeEpoch());
        epochs.LeaveEntered(slot, entered: false);
        Assert.True(epochs.IsProtected);
        Assert.Equal(entered, epochs.SafeEpoch());
        Assert.False(epochs.IsSafe(before));
        Assert.False(epochs.IsSafe(during));
        epochs.Unprotect(slot);
        Assert.False(epochs.IsProtected);
        Assert.True(epochs.IsSafe(during));
        Assert.Throws<InvalidOperationException>(() => epochs.Unprotect(slot));
    }

    [Fact]
    public void EnterIfIdleAndItsLeaveGoTogetherWithNestedRegionsOfTheSameThread()
    {
        // Entered twice with Protect and once with EnterIfIdle (refused): only the outermost Unprotect leaves.
        using var epochs = new EpochManager();
        int slot = ThreadSlots.Current;
        ulong entered = epochs.Current;
        epochs.Protect(slot);
        epochs.Protect(slot);
        bool inner = epochs.EnterIfIdle(slot);
        ulong tag = epochs.Bump();
        epochs.LeaveEntered(slot, inner);
        epochs.Unprotect(slot);
        Assert.True(epochs.IsProtected);
        Assert.Equal(entered, epochs.SafeEpoch());
        epochs.Unprotect(slot);
        Assert.True(epochs.IsSafe(tag));
    }

    [Fact]
    public void AFrameRetiredWhileAnotherThreadIsEnteredIfIdleWaitsForItsLeave()
    {
        using var memory = TestMemory.Create(16);
        ulong hpa = memory.AllocateFrame();
        using var readerInside = new ManualResetEventSlim();
        using var readerMayLeave = new ManualResetEventSlim();
        bool entered = false;
        var reader = new Thread(() =>
        {
            int slot = ThreadSlots.Current;
            entered = memory.Epochs.EnterIfIdle(slot);
            readerInside.Set();
            readerMayLeave.Wait(TestContext.Current.CancellationToken);
            memory.Epochs.LeaveEntered(slot, entered);
        });
        reader.Start();
        readerInside.Wait(TestContext.Current.CancellationToken);
        Assert.True(Volatile.Read(ref entered));

        memory.RetireFrame(hpa);
        Assert.Equal(0, memory.Reclaim());
        Assert.Equal(FrameState.Retired, memory.GetFrameState(hpa));

        readerMayLeave.Set();
        reader.Join();
        Assert.Equal(1, memory.Reclaim());
        Assert.Equal(FrameState.Free, memory.GetFrameState(hpa));
    }
}
