using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

/// <summary>
/// A guest-physical range backed by host frames that are allocated on first touch, in chunks of
/// <see cref="BackingPageSize"/> (4K like normal memory, 2M like THP, 1G like hugetlbfs) so the
/// TDP MMU can map pages no larger than the backing.
/// </summary>
public sealed class Memslot
{
    private readonly ulong[] _chunks;
    private readonly ulong[]? _dirty;
    private bool _deleted;

    internal Memslot(int id, ulong baseGfn, ulong pages, PageSize backing, MemslotFlags flags)
    {
        Id = id;
        BaseGfn = baseGfn;
        Pages = pages;
        BackingPageSize = backing;
        Flags = flags;
        _chunks = new ulong[pages / backing.Pages()];
        _dirty = new ulong[(pages + 63) / 64];
    }

    /// <summary>The slot id.</summary>
    public int Id { get; }

    /// <summary>First guest frame number.</summary>
    public ulong BaseGfn { get; }

    /// <summary>Number of 4 KiB guest pages.</summary>
    public ulong Pages { get; }

    /// <summary>First guest-physical address.</summary>
    public ulong BaseGpa => BaseGfn << HostMemory.FrameShift;

    /// <summary>Bytes of guest memory.</summary>
    public ulong Size => Pages << HostMemory.FrameShift;

    /// <summary>Host page size backing the slot.</summary>
    public PageSize BackingPageSize { get; }

    /// <summary>Slot flags.</summary>
    public MemslotFlags Flags { get; internal set; }

    /// <summary>Whether <paramref name="gfn"/> lies in the slot.</summary>
    public bool Contains(ulong gfn) => gfn - BaseGfn < Pages;

    /// <summary>Whether [<paramref name="gfn"/>, <paramref name="gfn"/> + <paramref name="pages"/>) lies in the slot.</summary>
    public bool Contains(ulong gfn, ulong pages) => gfn - BaseGfn < Pages && pages <= Pages - (gfn - BaseGfn);

    /// <summary>Whether the slot was deleted (<see cref="Vm.RemoveMemslot"/>, or its VM disposed); its backing is gone then.</summary>
    public bool IsDeleted => Volatile.Read(ref _deleted);

    /// <summary>Backing chunks allocated so far.</summary>
    /// <exception cref="EngineException">ENOENT when the slot was deleted.</exception>
    public int TouchedChunks
    {
        get
        {
            ThrowIfDeleted();
            return _chunks.Count(c => c != 0);
        }
    }

    /// <summary>The host frame backing <paramref name="gfn"/>, or 0 if its chunk was never touched.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is not in the slot.</exception>
    /// <exception cref="EngineException">ENOENT when the slot was deleted: its frames may belong to someone else now.</exception>
    public ulong PeekHpa(ulong gfn)
    {
        if (!Contains(gfn))
            throw new ArgumentOutOfRangeException(nameof(gfn), gfn, $"GFN 0x{gfn:x} is not in {this}.");
        ThrowIfDeleted();
        ulong chunk = Volatile.Read(ref _chunks[(gfn - BaseGfn) / BackingPageSize.Pages()]);
        return chunk == 0 ? 0 : chunk + (((gfn - BaseGfn) % BackingPageSize.Pages()) << HostMemory.FrameShift);
    }

    private void ThrowIfDeleted()
    {
        if (IsDeleted)
            throw new EngineException(Errno.ENOENT, $"memslot {Id} was deleted (removed, or its VM disposed); its backing frames are no longer its own.");
    }

    /// <summary>The host frame backing <paramref name="gfn"/>, allocating its chunk on first touch (<paramref name="allocated"/>). Caller holds the MMU lock.</summary>
    internal ulong Touch(HostMemory memory, ulong gfn, out bool allocated)
    {
        ulong perChunk = BackingPageSize.Pages();
        ulong index = (gfn - BaseGfn) / perChunk;
        allocated = _chunks[index] == 0;
        if (allocated)
            Volatile.Write(ref _chunks[index], perChunk == 1 ? memory.AllocateFrame() : memory.AllocateContiguous(perChunk, perChunk));
        return _chunks[index] + (((gfn - BaseGfn) % perChunk) << HostMemory.FrameShift);
    }

    /// <summary>Forgets the chunk of <paramref name="gfn"/> (a rolled-back first touch) and adds its frames to <paramref name="frames"/> for retirement. Caller holds the MMU lock.</summary>
    internal void Untouch(ulong gfn, List<ulong> frames)
    {
        ulong perChunk = BackingPageSize.Pages();
        ulong index = (gfn - BaseGfn) / perChunk;
        ulong chunk = _chunks[index];
        if (chunk == 0)
            return;
        Volatile.Write(ref _chunks[index], 0UL);
        for (ulong i = 0; i < perChunk; i++)
            frames.Add(chunk + (i << HostMemory.FrameShift));
    }

    /// <summary>Every allocated backing frame (for release). Caller holds the MMU lock.</summary>
    internal IEnumerable<ulong> BackingFrames()
    {
        ulong perChunk = BackingPageSize.Pages();
        foreach (ulong chunk in _chunks)
        {
            if (chunk == 0)
                continue;
            for (ulong i = 0; i < perChunk; i++)
                yield return chunk + (i << HostMemory.FrameShift);
        }
    }

    /// <summary>The slot leaves its VM; its backing frames have been retired by the caller. Caller holds the MMU lock.</summary>
    internal void Delete()
    {
        Volatile.Write(ref _deleted, true);
        Array.Clear(_chunks);
    }

    internal void MarkDirty(ulong gfn)
    {
        ulong bit = gfn - BaseGfn;
        _dirty![bit / 64] |= 1UL << (int)(bit % 64);
    }

    /// <summary>Returns the dirty GFNs and clears the log. Caller holds the MMU lock.</summary>
    internal List<ulong> TakeDirty()
    {
        var result = new List<ulong>();
        for (int w = 0; w < _dirty!.Length; w++)
        {
            ulong word = _dirty[w];
            while (word != 0)
            {
                int b = System.Numerics.BitOperations.TrailingZeroCount(word);
                result.Add(BaseGfn + (ulong)(w * 64 + b));
                word &= word - 1;
            }
            _dirty[w] = 0;
        }
        return result;
    }

    /// <summary>The backing frames' first HPAs, one per backing page (0: not touched yet); checkpoints copy them.</summary>
    internal ulong[] Chunks => _chunks;

    /// <summary>The dirty bitmap, one bit per page; checkpoints copy it.</summary>
    internal ulong[] DirtyBits => _dirty!;

    /// <inheritdoc/>
    public override string ToString() => $"memslot {Id}: GPA 0x{BaseGpa:x} + 0x{Size:x} ({BackingPageSize} backing, {Flags})";
}
