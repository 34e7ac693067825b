namespace Engine.Workloads;

/// <summary>
/// Linux's IOVA allocator in miniature (<c>drivers/iommu/iova.c</c>, as <c>iommu-dma</c> uses it):
/// sizes rounded up to a power of two and aligned to it, ranges taken top-down below a limit, and
/// recently freed ranges of up to 32 pages handed out again first from a per-size cache of
/// magazines (the <c>rcache</c>), most recently freed first.
/// </summary>
/// <remarks>
/// <para>What is modelled: <c>alloc_iova_fast</c> — the rcache of the size's order (a loaded and a
/// previous magazine of <see cref="MagazineSize"/> ranges, then a depot of
/// <see cref="DepotMagazines"/> full magazines), else the range tree searched top-down from below
/// the last allocation (<c>cached_node</c>), and once more from the limit when that finds no room.
/// <c>free_iova_fast</c> — into the loaded magazine; a full one is swapped with the previous one if
/// that is empty, else goes to the depot; with the depot full too its ranges go back to the tree.
/// A range freed to the tree above the search point moves the search point up to it
/// (<c>__cached_rbnode_delete_update</c>). What is not: one CPU (no per-CPU caches), no depot
/// trimming timer, no 32-bit/64-bit split of cached nodes (the caller gives one limit).</para>
/// <para>No allocation once built: the tree is a sorted array with room for
/// <paramref name="capacity"/> ranges, the magazines are preallocated.</para>
/// </remarks>
/// <param name="startPfn">Lowest page frame number handed out (Linux: 1 for 4 KiB granules).</param>
/// <param name="limitPfn">Highest page frame number handed out (Linux tries below 4 GiB first for PCI devices: 0xFFFFF).</param>
/// <param name="capacity">Ranges the tree can hold at once.</param>
public sealed class IovaAllocator(ulong startPfn, ulong limitPfn, int capacity = 1 << 14)
{
    /// <summary>Largest order cached: sizes up to 2^5 = 32 pages (<c>IOVA_RANGE_CACHE_MAX_SIZE</c> 6).</summary>
    public const int MaxCachedOrder = 5;

    /// <summary>Ranges per magazine (<c>IOVA_MAG_SIZE</c> in Linux 6.1).</summary>
    public const int MagazineSize = 128;

    /// <summary>Full magazines the depot of one size holds (<c>MAX_GLOBAL_MAGS</c>).</summary>
    public const int DepotMagazines = 32;

    private readonly ulong[] _starts = new ulong[capacity];   // allocated ranges in the tree, sorted by start
    private readonly ulong[] _sizes = new ulong[capacity];
    private int _count;
    private ulong _searchFrom = limitPfn + 1;   // the cached node: searches start below it
    private readonly RangeCache[] _caches = [.. Enumerable.Range(0, MaxCachedOrder + 1).Select(_ => new RangeCache())];

    /// <summary>Ranges in the tree (allocated, or cached in a magazine: Linux keeps those in the tree too).</summary>
    public int TreeRanges => _count;

    /// <summary>Allocations answered from the rcache so far.</summary>
    public long CacheHits { get; private set; }

    /// <summary>
    /// Allocates <paramref name="pages"/> pages (rounded up to a power of two) aligned to that size;
    /// returns the first page frame number.
    /// </summary>
    /// <exception cref="InvalidOperationException">No aligned range of that size is free below the limit.</exception>
    public ulong Allocate(ulong pages)
    {
        ArgumentOutOfRangeException.ThrowIfZero(pages);
        ulong size = RoundUp(pages);
        int order = System.Numerics.BitOperations.Log2(size);
        if (order <= MaxCachedOrder && _caches[order].TryTake(out ulong pfn))
        {
            CacheHits++;
            return pfn;
        }
        return AllocateFromTree(size);
    }

    /// <summary>Frees the range <see cref="Allocate"/> returned for <paramref name="pages"/> pages at <paramref name="pfn"/>.</summary>
    public void Free(ulong pfn, ulong pages)
    {
        ulong size = RoundUp(pages);
        int order = System.Numerics.BitOperations.Log2(size);
        if (order <= MaxCachedOrder)
        {
            _caches[order].Put(pfn, this);
            return;
        }
        FreeToTree(pfn);
    }

    private static ulong RoundUp(ulong pages) => System.Numerics.BitOperations.RoundUpToPowerOf2(pages);

    /// <summary>Top-down: the highest aligned gap below the search point, else below the limit.</summary>
    private ulong AllocateFromTree(ulong size)
    {
        if (_count == _starts.Length)
            throw new InvalidOperationException($"the IOVA tree is full ({_count} ranges).");
        if (!TryFindGap(_searchFrom, size, out ulong pfn, out int index) && !TryFindGap(limitPfn + 1, size, out pfn, out index))
            throw new InvalidOperationException($"no free IOVA range of {size} pages below PFN 0x{limitPfn:x}.");
        Array.Copy(_starts, index, _starts, index + 1, _count - index);
        Array.Copy(_sizes, index, _sizes, index + 1, _count - index);
        _starts[index] = pfn;
        _sizes[index] = size;
        _count++;
        _searchFrom = pfn;
        return pfn;
    }

    // Walks the ranges below <top> downwards; the first gap an aligned block fits is taken.
    private bool TryFindGap(ulong top, ulong size, out ulong pfn, out int index)
    {
        // The first range at or above top bounds the first gap from above.
        int i = LowerBound(top);
        ulong high = top;   // exclusive
        while (true)
        {
            ulong low = i == 0 ? startPfn : _starts[i - 1] + _sizes[i - 1];
            if (i > 0 && _starts[i - 1] + _sizes[i - 1] > high)
                low = high;   // overlapping the search point: no gap here
            if (high >= size)
            {
                ulong candidate = (high - size) & ~(size - 1);
                if (candidate >= low && candidate >= startPfn && candidate + size - 1 <= limitPfn)
                {
                    pfn = candidate;
                    index = i;
                    return true;
                }
            }
            if (i == 0)
                break;
            i--;
            high = _starts[i];
        }
        pfn = 0;
        index = 0;
        return false;
    }

    private void FreeToTree(ulong pfn)
    {
        int i = LowerBound(pfn);
        if (i == _count || _starts[i] != pfn)
            throw new InvalidOperationException($"PFN 0x{pfn:x} is not an allocated IOVA range.");
        Array.Copy(_starts, i + 1, _starts, i, _count - i - 1);
        Array.Copy(_sizes, i + 1, _sizes, i, _count - i - 1);
        _count--;
        // __cached_rbnode_delete_update: a range freed at or above the search point moves it up to the
        // next range above (the search then starts just below that one).
        if (pfn >= _searchFrom)
            _searchFrom = i < _count ? _starts[i] : limitPfn + 1;
    }

    // Index of the first range whose start is at or above pfn.
    private int LowerBound(ulong pfn)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_starts[mid] < pfn)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }

    /// <summary>The rcache of one size: a loaded and a previous magazine, and a depot of full ones.</summary>
    private sealed class RangeCache
    {
        private Magazine _loaded = new();
        private Magazine _previous = new();
        private readonly Magazine[] _depot = [.. Enumerable.Range(0, DepotMagazines).Select(_ => new Magazine())];
        private int _depotCount;

        public bool TryTake(out ulong pfn)
        {
            if (_loaded.Count == 0)
            {
                if (_previous.Count > 0)
                    (_loaded, _previous) = (_previous, _loaded);
                else if (_depotCount > 0)
                {
                    // Slots from _depotCount on hold empty magazines: the empty loaded one goes there.
                    _depotCount--;
                    Magazine full = _depot[_depotCount];
                    _depot[_depotCount] = _loaded;
                    _loaded = full;
                }
                else
                {
                    pfn = 0;
                    return false;
                }
            }
            pfn = _loaded.Pop();
            return true;
        }

        public void Put(ulong pfn, IovaAllocator owner)
        {
            if (_loaded.Count == MagazineSize)
            {
                if (_previous.Count == 0)
                    (_loaded, _previous) = (_previous, _loaded);
                else if (_depotCount < DepotMagazines)
                {
                    Magazine empty = _depot[_depotCount];
                    _depot[_depotCount++] = _loaded;
                    _loaded = empty;
                }
                else
                {
                    // Depot full: the loaded magazine's ranges go back to the tree.
                    while (_loaded.Count > 0)
                        owner.FreeToTree(_loaded.Pop());
                }
            }
            _loaded.Push(pfn);
        }
    }

    private sealed class Magazine
    {
        private readonly ulong[] _pfns = new ulong[MagazineSize];

        public int Count { get; private set; }

        public void Push(ulong pfn) => _pfns[Count++] = pfn;

        public ulong Pop() => _pfns[--Count];
    }
}
