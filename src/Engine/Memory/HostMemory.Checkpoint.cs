using System.Runtime.InteropServices;

namespace Engine.Memory;

// Checkpoints (Platform.Save / Load, docs/checkpoint-format.md): the allocator's state and the
// contents of every frame in use, sparse — only frames below the bump pointer have a state, and only
// allocated or retired frames that are not all zero carry their 4 KiB. Control path: the caller holds
// the platform quiet (no translation, no control operation) while this runs.
public sealed unsafe partial class HostMemory
{
    internal void SaveState(CheckpointWriter w)
    {
        ThrowIfDisposed();
        if (HasEmbedderRegions)
            throw new EngineException(Errno.EOPNOTSUPP, "a platform with embedder RAM (AddRam) cannot be checkpointed: that memory belongs to the embedder, not to Engine.");
        ulong bump = Math.Min(FrameCount, Volatile.Read(ref _bump));
        w.U64(bump);
        w.U32((uint)(Volatile.Read(ref _head) >> 32));
        w.I64(Volatile.Read(ref _inUse));
        w.I64(Volatile.Read(ref _peak));
        w.I64(Volatile.Read(ref _reclaimedCount));
        w.U64(Epochs.Current);
        w.Bytes(new ReadOnlySpan<byte>(_state, (int)bump));
        // The free list, top first (its order decides which frame the next allocation gets).
        var free = new List<uint>();
        for (uint top = (uint)Volatile.Read(ref _head); top != 0; top = _next[top - 1])
        {
            if (free.Count > (int)bump)
                throw new InvalidOperationException("HostMemory: the free list has a cycle.");
            free.Add(top - 1);
        }
        w.U32((uint)free.Count);
        foreach (uint f in free)
            w.U32(f);
        lock (_retireLock)
        {
            w.U32((uint)_retired.Count);
            foreach ((uint frame, ulong tag) in _retired)
            {
                w.U32(frame);
                w.U64(tag);
            }
        }
    }

    /// <summary>The frames whose bytes a checkpoint carries: allocated or retired, and not all zero, in increasing order.</summary>
    internal List<uint> FramesWithContents()
    {
        ThrowIfDisposed();
        ulong bump = Math.Min(FrameCount, Volatile.Read(ref _bump));
        var frames = new List<uint>();
        for (uint f = 0; f < bump; f++)
        {
            if ((FrameState)_state[f] is FrameState.Allocated or FrameState.Retired
                && new ReadOnlySpan<byte>(_pointer + ((ulong)f << FrameShift), FrameSize).ContainsAnyExcept((byte)0))
                frames.Add(f);
        }
        return frames;
    }

    /// <summary>The 4 KiB of frame <paramref name="frame"/> (an index from <see cref="FramesWithContents"/>).</summary>
    internal ReadOnlySpan<byte> FrameBytes(uint frame) => new(_pointer + ((ulong)frame << FrameShift), FrameSize);

    /// <summary>
    /// Takes one section of frame contents after <see cref="RestoreState"/>: u32 count, then (u32 frame,
    /// 4096 bytes) each, frames increasing across all such sections (<paramref name="previous"/> carries the last one, -1 at first).
    /// </summary>
    internal void RestoreFrames(CheckpointReader r, ref long previous)
    {
        ThrowIfDisposed();
        ulong bump = Math.Min(FrameCount, Volatile.Read(ref _bump));
        int count = r.Count("frames in this section", 4 + FrameSize);
        for (int i = 0; i < count; i++)
        {
            uint f = r.U32("a frame index");
            if (f >= bump || (FrameState)_state[f] is not (FrameState.Allocated or FrameState.Retired) || f <= previous)
                throw r.Fail($"frames in increasing order, each below the bump pointer ({bump}) and allocated or retired, found {f}", 4);
            previous = f;
            r.Bytes(FrameSize, "the frame's 4096 bytes").CopyTo(new Span<byte>(_pointer + ((ulong)f << FrameShift), FrameSize));
        }
    }

    /// <summary>
    /// Replaces the allocator's state with a checkpoint's and zeroes every frame. Whatever was
    /// allocated here before (a platform being loaded builds its objects first) is forgotten; the
    /// frames' contents follow in <see cref="RestoreFrames"/>.
    /// </summary>
    internal void RestoreState(CheckpointReader r)
    {
        ThrowIfDisposed();
        ulong bump = r.U64("the bump pointer (frames ever handed out)");
        if (bump > FrameCount)
            throw r.Fail($"a bump pointer of at most {FrameCount} frames (the memory size), found {bump}", 8);
        uint tag = r.U32("the free list's ABA tag");
        long inUse = r.I64("frames in use"), peak = r.I64("peak frames in use"), reclaimed = r.I64("frames reclaimed");
        ulong epoch = r.U64("the global epoch");
        if (epoch == 0)
            throw r.Fail("a global epoch of at least 1", 8);
        ReadOnlySpan<byte> states = r.Bytes((int)bump, "one state byte per frame below the bump pointer");
        long allocated = 0, retired = 0, freeStates = 0;
        for (int i = 0; i < states.Length; i++)
        {
            switch ((FrameState)states[i])
            {
                case FrameState.Allocated: allocated++; break;
                case FrameState.Retired: retired++; break;
                case FrameState.Free: freeStates++; break;
                default:
                    throw new InvalidDataException($"checkpoint offset {r.Offset - states.Length + i} (section {r.Section}): expected the state of frame {i} (1 allocated, 2 retired, 3 free), found {states[i]}.");
            }
        }
        if (inUse != allocated + retired || peak < inUse)
            throw r.Fail($"frames in use = allocated + retired = {allocated + retired} and peak >= in use, found in use {inUse}, peak {peak}");
        int freeCount = r.Count("free-list length", 4, (int)Math.Min(int.MaxValue, bump));
        uint[] free = new uint[freeCount];
        for (int i = 0; i < freeCount; i++)
        {
            free[i] = r.U32("a free frame");
            if (free[i] >= bump || (FrameState)states[(int)free[i]] != FrameState.Free)
                throw r.Fail($"a free frame below the bump pointer in state free, found {free[i]}", 4);
        }
        if (freeCount != freeStates)
            throw r.Fail($"a free list as long as the frames in state free ({freeStates}), found {freeCount}");
        int retiredCount = r.Count("retired frames", 12, (int)Math.Min(int.MaxValue, bump));
        var retiredQueue = new (uint Frame, ulong Tag)[retiredCount];
        for (int i = 0; i < retiredCount; i++)
        {
            retiredQueue[i] = (r.U32("a retired frame"), r.U64("its epoch tag"));
            if (retiredQueue[i].Frame >= bump || (FrameState)states[(int)retiredQueue[i].Frame] != FrameState.Retired)
                throw r.Fail($"a retired frame below the bump pointer in state retired, found {retiredQueue[i].Frame}", 12);
        }
        if (retiredCount != retired)
            throw r.Fail($"a retired queue as long as the frames in state retired ({retired}), found {retiredCount}");

        // Forget what was built before: every frame handed out so far reads zero again.
        ulong oldBump = Math.Min(FrameCount, Volatile.Read(ref _bump));
        ulong touched = Math.Max(oldBump, bump);
        _region.EnsureCommitted(touched << FrameShift);
        for (ulong f = 0; f < oldBump; f++)
        {
            if ((FrameState)_state[f] != FrameState.Fresh)
                NativeMemory.Clear(_pointer + (f << FrameShift), FrameSize);
        }
        NativeMemory.Clear(_state, (nuint)touched);
        NativeMemory.Clear(_next, (nuint)touched * sizeof(uint));
        states.CopyTo(new Span<byte>(_state, (int)bump));
        for (int i = 0; i < free.Length; i++)
            _next[free[i]] = i + 1 < free.Length ? free[i + 1] + 1 : 0;
        lock (_retireLock)
        {
            _retired.Clear();
            foreach (var item in retiredQueue)
                _retired.Enqueue(item);
        }
        Volatile.Write(ref _bump, bump);
        Volatile.Write(ref _head, (ulong)tag << 32 | (free.Length == 0 ? 0 : free[0] + 1));
        Volatile.Write(ref _inUse, inUse);
        Volatile.Write(ref _peak, peak);
        Volatile.Write(ref _freeCount, freeCount);
        Volatile.Write(ref _retiredCount, retiredCount);
        Volatile.Write(ref _reclaimedCount, reclaimed);
        Epochs.RestoreCurrent(epoch);
    }
}
