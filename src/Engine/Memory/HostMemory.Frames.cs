using System.Runtime.InteropServices;

namespace Engine.Memory;

// The lock-free frame allocator.
//
// Frames are handed out from two sources: a Treiber stack of freed frames, and a bump pointer
// over frames never used (which read as zero because the OS maps them lazily). The stack's links
// live in a side array, not in the frames, so a freed frame can carry poison and a stale reader
// never mistakes a link for an entry. The head is (tag << 32 | index + 1); every successful CAS
// bumps the tag, which defeats ABA (pop A, pop B, push A would otherwise let a stale CAS succeed).
//
// A per-frame state byte (Fresh / Allocated / Retired / Free) is moved only by CAS, which is what
// turns a double free or a free of a never-allocated frame into a clear error instead of a
// corrupted free list.
public sealed unsafe partial class HostMemory
{
    private byte* _state;
    private uint* _next;
    private ulong _head;
    private ulong _bump;
    private long _inUse;
    private long _peak;
    private long _freeCount;

    private void InitializeFrames()
    {
        // calloc-backed: the OS commits these side tables lazily too.
        _state = (byte*)NativeMemory.AllocZeroed((nuint)FrameCount);
        NativeMemoryTracker.OnReserved(FrameCount);
        _next = (uint*)NativeMemory.AllocZeroed((nuint)FrameCount, sizeof(uint));
        NativeMemoryTracker.OnReserved(FrameCount * sizeof(uint));
    }

    private void ReleaseFrames()
    {
        NativeMemory.Free(_state);
        NativeMemoryTracker.OnReleased(FrameCount);
        NativeMemory.Free(_next);
        NativeMemoryTracker.OnReleased(FrameCount * sizeof(uint));
        _state = null;
        _next = null;
    }

    /// <summary>Allocates one zeroed frame.</summary>
    /// <returns>The frame's HPA.</returns>
    /// <exception cref="HostMemoryExhaustedException">No frame is free, even after reclaiming retired ones.</exception>
    public ulong AllocateFrame()
    {
        if (TryAllocateFrame(out ulong hpa))
            return hpa;
        throw new HostMemoryExhaustedException(
            $"Host memory is exhausted: all {FrameCount:N0} frames ({Size:N0} bytes) are in use, {RetiredCount:N0} of them retired and still visible to walkers.");
    }

    /// <summary>Allocates one zeroed frame, or returns false when none is left.</summary>
    public bool TryAllocateFrame(out ulong hpa)
    {
        ThrowIfDisposed();
        if (TryPop(out uint frame) || TryBump(1, 1, out frame))
        {
            hpa = TakeFrame(frame);
            return true;
        }
        // Out of fresh and free frames: retired frames whose grace period ended are the last source.
        if (Reclaim() > 0 && TryPop(out frame))
        {
            hpa = TakeFrame(frame);
            return true;
        }
        hpa = 0;
        return false;
    }

    /// <summary>
    /// Allocates <paramref name="frames"/> contiguous zeroed frames whose first HPA is aligned to
    /// <paramref name="alignmentFrames"/> frames (a power of two), e.g. 512 for a 2 MiB page.
    /// </summary>
    /// <remarks>
    /// The alignment is of the host-physical address itself, not of the offset into the region: a
    /// region whose <see cref="BaseHpa"/> is less aligned than asked still answers an HPA that is a
    /// multiple of <paramref name="alignmentFrames"/> × 4 KiB. Runs come only from never-used frames;
    /// freed runs return to the pool frame by frame.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="frames"/> is 0 or more than the region holds, or <paramref name="alignmentFrames"/> is
    /// not a power of two or is larger than the host address width can express.
    /// </exception>
    /// <exception cref="HostMemoryExhaustedException">No such run is left.</exception>
    public ulong AllocateContiguous(ulong frames, ulong alignmentFrames)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfZero(frames);
        if (frames > FrameCount)
            throw new ArgumentOutOfRangeException(nameof(frames), frames, $"The region holds only {FrameCount:N0} frames.");
        if (alignmentFrames == 0 || (alignmentFrames & (alignmentFrames - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignmentFrames), alignmentFrames, "The alignment must be a power of two number of frames.");
        // Bounding the alignment by the address width keeps every HPA computed from it below 2^52.
        if (alignmentFrames > MaxAlignmentFrames)
            throw new ArgumentOutOfRangeException(nameof(alignmentFrames), alignmentFrames,
                $"The alignment must be at most {MaxAlignmentFrames:N0} frames (2^{HostAddressWidth} bytes, the host address width).");
        if (!TryBump(frames, alignmentFrames, out uint first))
            throw new HostMemoryExhaustedException(
                $"Host memory has no run of {frames:N0} contiguous frames aligned to {alignmentFrames:N0} frames left ({FreshCount:N0} never-used frames remain at the end of the region).");
        for (ulong i = 0; i < frames; i++)
            TakeFrame((uint)(first + i));
        return BaseHpa + ((ulong)first << FrameShift);
    }

    private ulong MaxAlignmentFrames => 1UL << (HostAddressWidth - FrameShift);

    /// <summary>
    /// Returns an allocated frame to the pool at once. Only for frames no walker can reach (never
    /// published, or unlinked and waited for); otherwise use <see cref="RetireFrame"/>.
    /// </summary>
    /// <exception cref="InvalidHostAddressException">The HPA is not an allocated frame of this region.</exception>
    public void FreeFrame(ulong hpa)
    {
        ThrowIfDisposed();
        uint frame = FrameIndexOf(hpa, nameof(hpa));
        Transition(frame, FrameState.Allocated, FrameState.Free, hpa, "free");
        Interlocked.Decrement(ref _inUse);
        Push(frame);
    }

    /// <summary>The state of the frame that contains <paramref name="hpa"/>.</summary>
    public FrameState GetFrameState(ulong hpa)
    {
        ThrowIfDisposed();
        if (!Contains(hpa))
        {
            if (IsEmbedderMemory(hpa))
                return FrameState.Embedder;
            throw new InvalidHostAddressException(hpa, $"outside host memory [0x{BaseHpa:x}, 0x{EndHpa:x}) and every embedder region.", nameof(hpa));
        }
        return (FrameState)Volatile.Read(ref _state[(hpa - BaseHpa) >> FrameShift]);
    }

    /// <summary>Frame accounting now.</summary>
    public HostMemoryStatistics Statistics
    {
        get
        {
            ulong fresh = FreshCount;
            return new HostMemoryStatistics(
                FrameCount,
                (ulong)Volatile.Read(ref _inUse),
                (ulong)Volatile.Read(ref _peak),
                (ulong)RetiredCount,
                (ulong)Math.Max(0, Volatile.Read(ref _freeCount)),
                fresh,
                (ulong)Volatile.Read(ref _reclaimedCount));
        }
    }

    private ulong FreshCount => FrameCount - Math.Min(FrameCount, Volatile.Read(ref _bump));

    private uint FrameIndexOf(ulong hpa, string paramName)
    {
        if ((hpa & (FrameSize - 1)) != 0)
            throw new InvalidHostAddressException(hpa, "not 4 KiB aligned.", paramName);
        if (!Contains(hpa))
        {
            throw new InvalidHostAddressException(hpa, IsEmbedderMemory(hpa)
                ? "the frame belongs to an embedder region; Engine never allocates or frees those."
                : $"outside host memory [0x{BaseHpa:x}, 0x{EndHpa:x}).", paramName);
        }
        return (uint)((hpa - BaseHpa) >> FrameShift);
    }

    private void Transition(uint frame, FrameState from, FrameState to, ulong hpa, string what)
    {
        byte found = Interlocked.CompareExchange(ref _state[frame], (byte)to, (byte)from);
        if (found == (byte)from)
            return;
        string why = (FrameState)found switch
        {
            FrameState.Free => "double free: the frame is already free.",
            FrameState.Retired => "double free: the frame is already retired.",
            FrameState.Fresh => "the frame was never allocated.",
            _ => $"the frame is {(FrameState)found}, expected {from}.",
        };
        throw new InvalidHostAddressException(hpa, $"cannot {what}: {why}", nameof(hpa));
    }

    private ulong TakeFrame(uint frame)
    {
        byte previous = Interlocked.Exchange(ref _state[frame], (byte)FrameState.Allocated);
        byte* p = _pointer + ((ulong)frame << FrameShift);
        if (previous == (byte)FrameState.Free)
            NativeMemory.Clear(p, FrameSize);
        long inUse = Interlocked.Increment(ref _inUse);
        long peak;
        while (inUse > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, inUse, peak) != peak)
        {
        }
        return BaseHpa + ((ulong)frame << FrameShift);
    }

    private bool TryPop(out uint frame)
    {
        while (true)
        {
            ulong head = Volatile.Read(ref _head);
            uint top = (uint)head;
            if (top == 0)
            {
                frame = 0;
                return false;
            }
            uint next = Volatile.Read(ref _next[top - 1]);
            ulong replacement = ((head >> 32) + 1) << 32 | next;
            if (Interlocked.CompareExchange(ref _head, replacement, head) == head)
            {
                Interlocked.Decrement(ref _freeCount);
                frame = top - 1;
                return true;
            }
        }
    }

    private void Push(uint frame)
    {
        if (_options.PoisonFreedFrames)
            NativeMemory.Fill(_pointer + ((ulong)frame << FrameShift), FrameSize, PoisonByte);
        while (true)
        {
            ulong head = Volatile.Read(ref _head);
            Volatile.Write(ref _next[frame], (uint)head);
            ulong replacement = ((head >> 32) + 1) << 32 | (frame + 1);
            if (Interlocked.CompareExchange(ref _head, replacement, head) == head)
            {
                Interlocked.Increment(ref _freeCount);
                return;
            }
        }
    }

    // alignment is a power of two of at most 2^(HAW − 12) frames and frames at most FrameCount, so
    // none of the sums below can wrap: the base frame, the bump and the alignment are each below 2^40.
    private bool TryBump(ulong frames, ulong alignment, out uint first)
    {
        ulong baseFrame = BaseHpa >> FrameShift;
        while (true)
        {
            ulong bump = Volatile.Read(ref _bump);
            // Aligned as an HPA: the base is only 1 GiB aligned, so aligning the offset is not enough.
            ulong start = ((baseFrame + bump + alignment - 1) & ~(alignment - 1)) - baseFrame;
            if (start + frames > FrameCount)
            {
                first = 0;
                return false;
            }
            if (Interlocked.CompareExchange(ref _bump, start + frames, bump) != bump)
                continue;
            _region.EnsureCommitted((start + frames) << FrameShift);
            // Frames skipped to reach the alignment join the free pool.
            for (ulong f = bump; f < start; f++)
            {
                Volatile.Write(ref _state[f], (byte)FrameState.Free);
                Push((uint)f);
            }
            first = (uint)start;
            return true;
        }
    }
}
