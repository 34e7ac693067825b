namespace Engine.Memory;

// Retirement: a frame that walkers may still be reading (an unlinked page table) is tagged with a
// fresh epoch and queued; it joins the free pool only when Epochs says every walker that could
// have seen it has left (see EpochManager for the ordering argument).
public sealed unsafe partial class HostMemory
{
    private readonly Lock _retireLock = new();
    private readonly Queue<(uint Frame, ulong Tag)> _retired = new();
    private long _retiredCount;
    private long _reclaimedCount;

    private long RetiredCount => Volatile.Read(ref _retiredCount);

    /// <summary>
    /// Retires a frame that has been unlinked from every table: it is reused only after every
    /// walker that could have seen it has left its protected region.
    /// </summary>
    /// <exception cref="InvalidHostAddressException">The HPA is not an allocated frame of this region.</exception>
    public void RetireFrame(ulong hpa) => RetireFrames([hpa]);

    /// <summary>Retires several unlinked frames under one epoch (see <see cref="RetireFrame"/>).</summary>
    /// <remarks>All of them are validated before any is retired, so a bad HPA — or one listed twice — changes nothing.</remarks>
    /// <exception cref="InvalidHostAddressException">An HPA is not an allocated frame of this region, or appears twice.</exception>
    public void RetireFrames(ReadOnlySpan<ulong> hpas)
    {
        ThrowIfDisposed();
        foreach (ulong hpa in hpas)
            _ = FrameIndexOf(hpa, nameof(hpas));
        // Allocated -> Retired for each, undone on the first failure: a frame listed twice fails its
        // second transition ("already retired"), which a check of the states alone would not catch.
        int moved = 0;
        try
        {
            for (; moved < hpas.Length; moved++)
                Transition((uint)((hpas[moved] - BaseHpa) >> FrameShift), FrameState.Allocated, FrameState.Retired, hpas[moved], "retire");
        }
        catch (InvalidHostAddressException)
        {
            for (int i = 0; i < moved; i++)
                Volatile.Write(ref _state[(hpas[i] - BaseHpa) >> FrameShift], (byte)FrameState.Allocated);
            throw;
        }
        bool reclaim;
        lock (_retireLock)
        {
            // The callers' unlinking stores happen before this increment (a full fence), which
            // gives the tag. Taking it under the lock keeps the queue's tags in increasing order.
            // Marking the frames Retired before the tag is harmless: only the queue frees them.
            ulong tag = Epochs.Bump();
            foreach (ulong hpa in hpas)
                _retired.Enqueue(((uint)((hpa - BaseHpa) >> FrameShift), tag));
            reclaim = _retired.Count >= _options.ReclaimThreshold;
        }
        Interlocked.Add(ref _retiredCount, hpas.Length);
        if (reclaim)
            Reclaim();
    }

    /// <summary>Moves every retired frame whose grace period has ended into the free pool.</summary>
    /// <returns>Frames reclaimed.</returns>
    public int Reclaim()
    {
        ThrowIfDisposed();
        ulong safe = Epochs.SafeEpoch();
        int count = 0;
        lock (_retireLock)
        {
            // Tags are queued in increasing order, so the first unsafe one ends the pass.
            while (_retired.TryPeek(out var item) && item.Tag <= safe)
            {
                _retired.Dequeue();
                Volatile.Write(ref _state[item.Frame], (byte)FrameState.Free);
                Interlocked.Decrement(ref _inUse);
                Interlocked.Decrement(ref _retiredCount);
                Push(item.Frame);
                Interlocked.Increment(ref _reclaimedCount);
                count++;
            }
        }
        return count;
    }
}
