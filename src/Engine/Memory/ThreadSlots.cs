using System.Runtime.CompilerServices;

namespace Engine.Memory;

/// <summary>
/// Gives every thread that enters an epoch-protected region a small process-wide index, shared by
/// all <see cref="EpochManager"/> instances, so each manager can keep one cache line per thread.
/// </summary>
/// <remarks>
/// The index is held in a thread-static lease object; when the thread dies the lease becomes
/// unreachable and its finalizer returns the index. One allocation per thread, never per entry.
/// </remarks>
internal static class ThreadSlots
{
    /// <summary>Threads that may be inside protected regions at the same time.</summary>
    public const int MaxThreads = 1024;

    private static readonly int[] Owners = new int[MaxThreads];

    // The index plus one (0: not registered), as a plain thread-static int: read on every miss, it is
    // one load off the thread's statics block, where the lease object behind it cost three more
    // loads and two null checks (the miss path's listing, issue 14).
    [ThreadStatic]
    private static int _indexPlusOne;

    // Held only so that its finalizer returns the index when the thread dies.
    [ThreadStatic]
    private static Lease? _lease;

    /// <summary>The calling thread's index, registering it on first use.</summary>
    /// <remarks>Inlined: the translate path reads it once per miss, and as a call it cost a frame and a
    /// spill of the caller's registers (the miss path's tier-1 listing).</remarks>
    public static int Current
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            int index = _indexPlusOne - 1;
            return index >= 0 ? index : Register();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Register()
    {
        for (int i = 0; i < MaxThreads; i++)
        {
            if (Volatile.Read(ref Owners[i]) == 0 && Interlocked.CompareExchange(ref Owners[i], 1, 0) == 0)
            {
                _lease = new Lease(i);
                _indexPlusOne = i + 1;
                return i;
            }
        }
        throw new InvalidOperationException($"More than {MaxThreads} threads are registered with epoch protection at once.");
    }

    private sealed class Lease(int index)
    {
        public int Index { get; } = index;

        ~Lease() => Volatile.Write(ref Owners[Index], 0);
    }
}
