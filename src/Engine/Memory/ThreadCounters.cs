using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// Up to eight 64-bit counters kept per thread: each thread adds to its own cache line (indexed by
/// its <see cref="ThreadSlots"/> slot) with a plain load and store — no locked instruction — and a
/// reader sums the lines. For counters on the translate path (issue 14), where an interlocked
/// increment is a full barrier that keeps one miss's table loads from overlapping the next's.
/// </summary>
/// <remarks>
/// <para>Exact totals: a line has one writer, the thread that holds the slot, so an add is never lost;
/// 64-bit aligned loads and stores are atomic, so a reader never sees a torn value. A slot is handed to
/// a new thread only after its previous owner died (its lease finalized), and the new owner carries
/// on from the value the old one left: the line is cumulative, so totals stay exact.</para>
/// <para>A read is a snapshot of each line in turn, not of all at once: a total read while threads
/// count is some value between the totals before and after the read, as with any striped counter.</para>
/// <para>Cost: 64 bytes per possible thread (<see cref="ThreadSlots.MaxThreads"/>), 64 KiB an
/// instance, in a pinned array aligned to cache lines.</para>
/// </remarks>
internal sealed class ThreadCounters
{
    /// <summary>Counters an instance holds (one cache line of them per thread).</summary>
    public const int MaxCounters = 8;

    private readonly long[] _cells;
    private readonly int _first;   // index of the first cache-line-aligned cell

    /// <summary>Creates a set of <see cref="MaxCounters"/> counters, all 0.</summary>
    public ThreadCounters()
    {
        _cells = GC.AllocateArray<long>((ThreadSlots.MaxThreads + 1) * LineLongs, pinned: true);
        unsafe
        {
            nint start = (nint)Unsafe.AsPointer(ref _cells[0]);
            _first = (int)(((64 - (start & 63)) & 63) / sizeof(long));
        }
    }

    /// <summary>Adds 1 to counter <paramref name="counter"/> (0..7) on the calling thread's line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Increment(int counter) => Add(counter, 1);

    /// <summary>Adds <paramref name="value"/> to counter <paramref name="counter"/> (0..7) on the calling thread's line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int counter, long value) => Add(ThreadSlots.Current, counter, value);

    /// <summary>Adds 1 to counter <paramref name="counter"/> on the line of <paramref name="slot"/>, the calling thread's <c>ThreadSlots.Current</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Increment(int slot, int counter) => Add(slot, counter, 1);

    /// <summary>Adds <paramref name="value"/> to counter <paramref name="counter"/> on the line of <paramref name="slot"/>, the calling thread's <c>ThreadSlots.Current</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int slot, int counter, long value)
    {
        ref long cell = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_cells), _first + (slot & (ThreadSlots.MaxThreads - 1)) * LineLongs + (counter & (LineLongs - 1)));
        // One writer per line: a plain read-modify-write; the store is volatile only so the JIT
        // cannot keep the counter in a register across the caller's loop.
        Volatile.Write(ref cell, cell + value);
    }

    /// <summary>
    /// Counter <paramref name="counter"/>'s cell on the line of slot 0; slot <c>n</c>'s is
    /// <see cref="LineLongs"/> × <c>n</c> cells on. For a hot path that keeps the pointer: an add is then one
    /// increment, not the loads of the array, its first cell and the bounds (issue 14). Valid while the
    /// instance is reachable (the cells are a pinned array).
    /// </summary>
    public unsafe long* CellOfSlotZero(int counter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(counter);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(counter, MaxCounters);
        return (long*)Unsafe.AsPointer(ref _cells[_first + counter]);
    }

    /// <summary>
    /// Adds <paramref name="value"/> to the cell of <paramref name="slot"/> (the calling thread's) whose
    /// slot-0 cell is <paramref name="cellOfSlotZero"/> (from <see cref="CellOfSlotZero"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Add(long* cellOfSlotZero, int slot, long value)
    {
        long* cell = cellOfSlotZero + (nint)(uint)(slot & (ThreadSlots.MaxThreads - 1)) * LineLongs;
        // One writer per line: a plain add; volatile so the JIT keeps no copy in a register.
        Volatile.Write(ref *cell, *cell + value);
    }

    /// <summary>Longs per thread's line: the stride between one slot's cell and the next's.</summary>
    public const int LineLongs = 8;

    /// <summary>The total of counter <paramref name="counter"/> over every thread.</summary>
    public long Read(int counter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(counter);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(counter, MaxCounters);
        long sum = 0;
        for (int t = 0; t < ThreadSlots.MaxThreads; t++)
            sum += Volatile.Read(ref _cells[_first + t * LineLongs + counter]);
        return sum;
    }
}
