namespace Engine.Memory;

/// <summary>
/// Counts the native bytes the engine currently holds (reserved address space and side tables),
/// so tests and embedders can check that disposing everything returns the count to zero.
/// </summary>
internal static class NativeMemoryTracker
{
    private static long _reservedBytes;
    private static long _liveAllocations;

    /// <summary>Native bytes reserved by the engine and not yet released.</summary>
    public static long ReservedBytes => Volatile.Read(ref _reservedBytes);

    /// <summary>Native reservations (regions and side tables) not yet released.</summary>
    public static long LiveAllocations => Volatile.Read(ref _liveAllocations);

    internal static void OnReserved(ulong bytes)
    {
        Interlocked.Add(ref _reservedBytes, (long)bytes);
        Interlocked.Increment(ref _liveAllocations);
    }

    internal static void OnReleased(ulong bytes)
    {
        Interlocked.Add(ref _reservedBytes, -(long)bytes);
        Interlocked.Decrement(ref _liveAllocations);
    }
}
