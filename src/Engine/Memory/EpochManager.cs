using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// Epoch-based reclamation: readers (page walkers) enter and leave a protected region with plain
/// stores — no lock, no fence, no allocation; a frame retired at epoch <c>E</c> is reused only once
/// every thread inside a protected region entered at an epoch of at least <c>E</c>.
/// </summary>
/// <remarks>
/// <para>Why no fence on entry. A fenced entry (an interlocked exchange, as this class had until
/// issue 14) is a full barrier on x86: it drains the store buffer and holds back every later load,
/// so a thread translating one miss after another could not start the next walk's table loads
/// until the previous walk had finished — no memory-level parallelism on the miss path. The fence
/// is moved to the side that runs rarely: the reclaimer (an asymmetric fence, as userspace RCU and
/// folly's hazard pointers do). Before it scans the slots for a tag it has not yet fenced, it calls
/// <see cref="Interlocked.MemoryBarrierProcessWide"/> (Linux: <c>membarrier</c>, else an IPI through
/// <c>mprotect</c>; Windows: <c>FlushProcessWriteBuffers</c>), which executes a full barrier on every
/// CPU running a thread of this process (a descheduled thread went through one at its context switch).</para>
/// <para>Ordering argument. A writer first unlinks a frame (one atomic store of the entry that
/// pointed at it, or <see cref="HostMemory"/>'s limit set to 0), then calls <see cref="Bump"/>, an
/// interlocked increment (a full fence) that returns the frame's tag <c>E</c>. A reader loads the
/// global epoch, stores it into its slot (a plain store) and only then reads page-table entries
/// (volatile loads; the JIT keeps volatile accesses in program order, so only the CPU could hoist a
/// load above the slot store). The reclaimer reads the global epoch <c>C ≥ E</c>, runs the
/// process-wide barrier, and scans the slots. Take any reader R and the point <c>T</c> where the
/// barrier ran on R's CPU: every access of R before <c>T</c> in program order is globally visible
/// at <c>T</c>, and none after <c>T</c> has been performed. (a) R's slot store is before <c>T</c>:
/// the scan, which runs after the barrier returned, sees it (or a later value of the slot). An epoch
/// below <c>E</c> holds the frame back; an epoch of <c>E</c> or more was loaded after the increment,
/// which was ordered after the unlink, so R's entry loads (after its epoch load) cannot reach the
/// frame; 0 means R left, and its release store of 0 came after its entry loads. (b) R's slot store
/// is after <c>T</c>: then so are all its entry loads, and the unlink and the increment happened
/// before the barrier began, so R sees the unlink and cannot reach the frame. Either way a frame is
/// reused only when no reader that could have seen it is inside. Later scans for the same tag need
/// no new barrier: a reader's later entries are after its <c>T</c> (case b), and its earlier ones were
/// visible at the first scan (case a). <see cref="SafeEpoch"/> therefore fences only when the
/// global epoch has moved since its last barrier, and answers at most the epoch it read before
/// fencing: a frame tagged after that barrier is not covered by it and waits for the next scan.</para>
/// <para>Garnet's LightEpoch shipped reuse-under-reader bugs when its entry store was not fenced
/// and nothing fenced for it; here the reclaimer's barrier is that fence, and
/// <c>EpochReclamationStressTests</c> poison freed frames to catch any regression.</para>
/// <para>Protection is per call (a walk, a batch's chunk, a DMA transfer), never held while a thread
/// is idle: a thread that stops translating has left its region, so nothing waits on it, and a
/// thread cannot exit inside a region (each region is a <c>try</c>/<c>finally</c> or a <c>using</c>,
/// except the miss paths' walk in <c>Translator.WalkProtected</c>, where nothing that can throw runs
/// between the entry and the exit: a walk returns faults as values).</para>
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
    private ulong _fenced;   // the global epoch read before the last process-wide barrier
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

    /// <summary>Enters a protected region (see <see cref="Enter"/>); pair with <see cref="Unprotect()"/>.</summary>
    /// <remarks>
    /// Never throws, so the hot path can call it: after <see cref="Dispose"/> the region is entered
    /// as before (the slots are a pinned managed array, alive while the manager is), and what it
    /// protects is empty — <see cref="HostMemory"/> sets its limit to 0 before it waits for readers.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Protect() => Protect(ThreadSlots.Current);

    /// <summary>
    /// <see cref="Protect()"/> for the thread that holds <paramref name="slot"/> (its <c>ThreadSlots.Current</c>),
    /// so a caller that needs the slot for other per-thread state looks it up once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Protect(int slot)
    {
        Slot* s = _slots + slot;
        // A plain store, no fence: the reclaimer's process-wide barrier orders it (see the remarks).
        if (s->Depth++ == 0)
            Volatile.Write(ref s->Epoch, Volatile.Read(ref _current));
    }

    /// <summary>
    /// The miss path's entry: enters a region for the thread that holds <paramref name="slot"/> unless it
    /// is inside one already, and says which (pass the answer to <see cref="LeaveEntered"/>).
    /// </summary>
    /// <remarks>
    /// No nesting count: a thread inside a region (<see cref="Protect(int)"/>) has a nonzero epoch, and
    /// that region protects the walk; an idle thread gets the epoch and has it taken back, and its depth
    /// stays 0 throughout. Two loads and a store where <see cref="Protect(int)"/> is a read-modify-write
    /// of the depth as well, and the leave needs no check (issue 14: every instruction of a miss counts).
    /// <para>Only for a region that calls nothing that protects: a <see cref="Protect(int)"/> inside it
    /// sees depth 0, overwrites the epoch and clears it on leaving, and <see cref="IsProtected"/> reads
    /// false inside it. Its one user, the miss paths' walk (<c>Translator.WalkProtected</c>), runs only the walker.</para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool EnterIfIdle(int slot)
    {
        Slot* s = _slots + slot;
        if (s->Epoch != 0)
            return false;
        Volatile.Write(ref s->Epoch, Volatile.Read(ref _current));   // a plain store, as Protect's
        return true;
    }

    /// <summary>Leaves the region <see cref="EnterIfIdle"/> entered, if it did (<paramref name="entered"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void LeaveEntered(int slot, bool entered)
    {
        if (entered)
            Volatile.Write(ref _slots[slot].Epoch, 0);   // release: the walk's loads come before it
    }

    /// <summary>Leaves the innermost protected region of the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Unprotect() => Unprotect(ThreadSlots.Current);

    /// <summary><see cref="Unprotect()"/> for the thread that holds <paramref name="slot"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Unprotect(int slot)
    {
        Slot* s = _slots + slot;
        if (s->Depth <= 0)
            ThrowNotProtected();
        // Release store: every entry read inside the region happens before the slot turns idle.
        if (--s->Depth == 0)
            Volatile.Write(ref s->Epoch, 0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // keeps the throw out of the inlined leave
    private static void ThrowNotProtected() =>
        throw new InvalidOperationException("Unprotect was called by a thread that is not inside a protected region.");

    /// <summary>Advances the global epoch and returns the new value: the tag for frames unlinked before the call.</summary>
    public ulong Bump() => Interlocked.Increment(ref _current);

    /// <summary>Sets the global epoch from a checkpoint (no thread may be inside a region): retired frames keep their tags' meaning.</summary>
    internal void RestoreCurrent(ulong epoch)
    {
        Volatile.Write(ref _current, epoch);
        Volatile.Write(ref _fenced, 0);
    }

    /// <summary>
    /// The epoch up to which frames are safe to reuse: the smallest epoch any thread inside a
    /// protected region entered at, and never more than the global epoch read before the scan's
    /// barrier. Frames tagged at or below it are safe to reuse.
    /// </summary>
    /// <remarks>Runs a process-wide memory barrier first when the global epoch moved since the last one (see the remarks of the class): call it on the control path.</remarks>
    public ulong SafeEpoch()
    {
        ulong bound = FenceReaders();
        ulong min = ScanSlots();
        return Math.Min(min, bound);
    }

    /// <summary>
    /// Makes every reader's slot store that precedes its entry loads visible to the scans that follow:
    /// one process-wide barrier per step of the global epoch at most. Returns the epoch it covers.
    /// </summary>
    private ulong FenceReaders()
    {
        ulong current = Volatile.Read(ref _current);
        if (Volatile.Read(ref _fenced) >= current)
            return current;
        Interlocked.MemoryBarrierProcessWide();
        // Several reclaimers may race here; the largest epoch fenced wins (it only ever grows).
        ulong seen;
        while ((seen = Volatile.Read(ref _fenced)) < current && Interlocked.CompareExchange(ref _fenced, current, seen) != seen)
        {
        }
        return current;
    }

    /// <summary>The smallest epoch in a slot now, or <see cref="ulong.MaxValue"/> when every slot is idle.</summary>
    private ulong ScanSlots()
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
