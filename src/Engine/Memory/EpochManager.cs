using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// Epoch-based reclamation: readers (page walkers) enter and leave a protected region with one
/// fenced store and no lock or allocation; a frame retired at epoch <c>E</c> is reused only once
/// every thread inside a protected region entered at an epoch of at least <c>E</c>.
/// </summary>
/// <remarks>
/// <para>Ordering argument. A writer first unlinks a frame (one atomic store of the entry that
/// pointed at it), then calls <see cref="Bump"/>, an interlocked increment (a full fence) that
/// returns the frame's tag <c>E</c>. A reader publishes the epoch it read into its slot with an
/// interlocked exchange (a full fence) and only then reads page-table entries.</para>
/// <para>Take any reader and the reclaimer's scan of its slot. Both sides store, fence, then load
/// (reader: slot, then entries; reclaimer: unlink and increment, then slot), so by the
/// store-buffering argument at least one sees the other's store. (a) The scan sees the reader's
/// slot. If the slot holds an epoch below <c>E</c>, the reader may have read the old entry, and
/// the frame is held back. If it holds <c>E</c> or more, the reader read the global epoch after
/// the increment, which was ordered after the unlink, so it cannot reach the frame. (b) The scan
/// sees the slot idle: then the reader's later entry reads see the unlink, and it cannot reach the
/// frame either. Hence the frame is reused only when no reader that could have seen it is inside.</para>
/// <para>Garnet's LightEpoch shipped reuse-under-reader bugs when its entry store was not fenced;
/// the exchange here is deliberate, and <c>EpochReclamationStressTests</c> poison freed frames to
/// catch any regression.</para>
/// </remarks>
internal sealed unsafe class EpochManager : IDisposable
{
    private const int SlotBytes = 64;

    [StructLayout(LayoutKind.Explicit, Size = SlotBytes)]
    private struct Slot
    {
        /// <summary>0 = idle, otherwise the global epoch read at entry.</summary>
        [FieldOffset(0)] public ulong Epoch;

        /// <summary>Nesting depth; written only by the owning thread.</summary>
        [FieldOffset(8)] public int Depth;
    }

    // A pinned managed array rather than native memory: a thread that races Dispose can never
    // touch freed memory, because the GC keeps the table alive while anyone holds the manager.
    private readonly Slot[] _table;
    private readonly Slot* _slots;
    private ulong _current = 1;
    private bool _disposed;

    /// <summary>Creates a manager with one cache-line slot per possible thread.</summary>
    public EpochManager()
    {
        // One spare slot so the first real slot can start on a cache-line boundary.
        _table = GC.AllocateArray<Slot>(ThreadSlots.MaxThreads + 1, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref _table[0]);
        _slots = (Slot*)((start + SlotBytes - 1) & ~(nint)(SlotBytes - 1));
    }

    /// <summary>The global epoch now.</summary>
    public ulong Current => Volatile.Read(ref _current);

    /// <summary>Whether the calling thread is inside a protected region of this manager.</summary>
    public bool IsProtected => _slots[ThreadSlots.Current].Depth > 0;

    /// <summary>
    /// Enters a protected region for the calling thread; dispose the guard to leave. Regions nest.
    /// </summary>
    /// <example><c>using (memory.Epochs.Enter()) { walker.Walk(...); }</c></example>
    /// <exception cref="ObjectDisposedException">The manager is disposed.</exception>
    public EpochGuard Enter()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        Protect();
        return new EpochGuard(this);
    }

    /// <summary>Enters a protected region (see <see cref="Enter"/>); pair with <see cref="Unprotect"/>.</summary>
    /// <remarks>
    /// Never throws, so the hot path can call it: after <see cref="Dispose"/> the region is entered
    /// as before (the slots are a pinned managed array, alive while the manager is), and what it
    /// protects is empty — <see cref="HostMemory"/> sets its limit to 0 before it waits for readers.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Protect()
    {
        Slot* slot = _slots + ThreadSlots.Current;
        if (slot->Depth++ == 0)
            Interlocked.Exchange(ref slot->Epoch, Volatile.Read(ref _current));
    }

    /// <summary>Leaves the innermost protected region of the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Unprotect()
    {
        Slot* slot = _slots + ThreadSlots.Current;
        if (slot->Depth <= 0)
            throw new InvalidOperationException("Unprotect was called by a thread that is not inside a protected region.");
        // Release store: every entry read inside the region happens before the slot turns idle.
        if (--slot->Depth == 0)
            Volatile.Write(ref slot->Epoch, 0);
    }

    /// <summary>Advances the global epoch and returns the new value: the tag for frames unlinked before the call.</summary>
    public ulong Bump() => Interlocked.Increment(ref _current);

    /// <summary>
    /// The smallest epoch any thread inside a protected region entered at, or
    /// <see cref="ulong.MaxValue"/> when no thread is inside. Frames tagged at or below it are safe to reuse.
    /// </summary>
    public ulong SafeEpoch()
    {
        ulong min = ulong.MaxValue;
        for (int i = 0; i < ThreadSlots.MaxThreads; i++)
        {
            ulong e = Volatile.Read(ref _slots[i].Epoch);
            if (e != 0 && e < min)
                min = e;
        }
        return min;
    }

    /// <summary>Whether a frame tagged with <paramref name="tag"/> can be reused now.</summary>
    public bool IsSafe(ulong tag) => tag <= SafeEpoch();

    /// <summary>Spins until a frame tagged with <paramref name="tag"/> is safe, or the timeout passes.</summary>
    /// <returns>True when the tag became safe.</returns>
    public bool WaitUntilSafe(ulong tag, TimeSpan timeout)
    {
        if (IsSafe(tag))
            return true;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var spinner = new SpinWait();
        while (!IsSafe(tag))
        {
            if (Environment.TickCount64 > deadline)
                return false;
            spinner.SpinOnce();
        }
        return true;
    }

    /// <summary>Refuses further <see cref="Enter"/> calls; threads already inside may still leave.</summary>
    public void Dispose() => Volatile.Write(ref _disposed, true);
}

/// <summary>A protected region of an <see cref="EpochManager"/>; leaving is <see cref="Dispose"/>.</summary>
internal readonly ref struct EpochGuard
{
    private readonly EpochManager _manager;

    internal EpochGuard(EpochManager manager) => _manager = manager;

    /// <summary>Leaves the protected region.</summary>
    public void Dispose() => _manager?.Unprotect();
}
