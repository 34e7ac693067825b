using Engine.Diagnostics;
using Engine.Memory;

namespace Engine.Tests.Memory;

/// <summary>Per-thread counters (issue 14): plain adds on each thread's own line, exact when summed.</summary>
public class ThreadCountersTests
{
    [Fact]
    public void TotalsAreExactAcrossManyThreadsIncludingThreadsThatExited()
    {
        var counters = new ThreadCounters();
        const int Threads = 8, PerThread = 100_000;
        // Two waves: the second wave's threads may take the slots of the first's (dead) threads,
        // and carry on from the values they left.
        for (int wave = 0; wave < 2; wave++)
        {
            var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
            {
                for (int i = 0; i < PerThread; i++)
                {
                    counters.Increment(0);
                    counters.Add(3, t);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            GC.Collect();
            GC.WaitForPendingFinalizers();   // dead threads' slots go back to the pool
        }
        Assert.Equal(2L * Threads * PerThread, counters.Read(0));
        Assert.Equal(2L * PerThread * Enumerable.Range(0, Threads).Sum(), counters.Read(3));
        Assert.Equal(0, counters.Read(1));
    }

    [Fact]
    public void ReadsWhileThreadsCountNeverGoBackwards()
    {
        var counters = new ThreadCounters();
        bool stop = false;
        var writers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
                counters.Increment(5);
        })).ToList();
        writers.ForEach(t => t.Start());
        long last = 0;
        for (int i = 0; i < 2000; i++)
        {
            long now = counters.Read(5);
            Assert.True(now >= last, $"read {now} after {last}");
            last = now;
        }
        Volatile.Write(ref stop, true);
        writers.ForEach(t => t.Join());
    }

    [Fact]
    public void AnOutOfRangeCounterIsRefusedOnRead()
    {
        var counters = new ThreadCounters();
        Assert.Throws<ArgumentOutOfRangeException>(() => counters.Read(8));
        Assert.Throws<ArgumentOutOfRangeException>(() => counters.Read(-1));
    }

    [Fact]
    public void AUnitTallySumsEveryThreadsTranslationsAndBytes()
    {
        var tally = new UnitTally();
        var threads = Enumerable.Range(1, 6).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 50_000; i++)
                tally.Add(t, i % 3 == 0 ? 4096 : 0);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(50_000L * Enumerable.Range(1, 6).Sum(), tally.Translations);
        Assert.Equal(6L * 16_667 * 4096, tally.DmaBytes);
    }

    [Fact]
    public unsafe void AddsThroughTheKeptCellPointerShowUpInTheTotalOfThatCounterOnly()
    {
        var counters = new ThreadCounters();
        const int Counter = 3;
        long* cell = counters.CellOfSlotZero(Counter);
        cell[0] += 5;                                                          // slot 0
        cell[2 * ThreadCounters.LineLongs] += 7;                               // slot 2
        cell[(ThreadSlots.MaxThreads - 1) * ThreadCounters.LineLongs] += 11;   // the last slot
        Assert.Equal(23, counters.Read(Counter));
        for (int c = 0; c < ThreadCounters.MaxCounters; c++)
        {
            if (c != Counter)
                Assert.Equal(0, counters.Read(c));
        }
        GC.KeepAlive(counters);
    }

    [Fact]
    public unsafe void TheKeptCellPointerIsTheCellTheSlotsAddsUse()
    {
        var counters = new ThreadCounters();
        long* first = counters.CellOfSlotZero(0);
        Assert.Equal(0, (nint)first & 63);   // a line per slot, starting on a cache line
        int own = ThreadSlots.Current, other = own == 5 ? 6 : 5;
        for (int c = 0; c < ThreadCounters.MaxCounters; c++)
        {
            long* cell = counters.CellOfSlotZero(c);
            Assert.True(cell == first + c, $"counter {c}'s cell is not {c} cells past counter 0's");
            counters.Add(other, c, 100 + c);
            Assert.Equal(100 + c, cell[other * ThreadCounters.LineLongs]);
            counters.Increment(c);   // the calling thread's own line
            Assert.Equal(1, cell[own * ThreadCounters.LineLongs]);
            Assert.Equal(101 + c, counters.Read(c));
        }
        GC.KeepAlive(counters);
    }

    [Fact]
    public void AnOutOfRangeCounterIsRefusedForTheCellPointer()
    {
        var counters = new ThreadCounters();
        unsafe
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = (nint)counters.CellOfSlotZero(ThreadCounters.MaxCounters); });
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = (nint)counters.CellOfSlotZero(-1); });
        }
    }
}
