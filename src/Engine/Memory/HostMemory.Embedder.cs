using System.Runtime.CompilerServices;

namespace Engine.Memory;

// Memory an embedder owns and registers as host memory: (hpa, pointer, size), 4 KiB aligned, any
// number of regions, no copy. Engine never allocates from it, frees it or moves it; it only reads
// and writes it where the guest's tables and the DMA say so.
//
// Walkers keep their one-region fast path: an address inside Engine's own region costs exactly what
// it did before. Only an address outside it takes the out-of-line lookup below, which scans the
// registered regions (an immutable array swapped on registration, so readers need no lock).
public sealed unsafe partial class HostMemory
{
    /// <summary>The most regions an embedder may register: the lookup scans them in order.</summary>
    public const int MaxEmbedderRegions = 64;

    private EmbedderRegion[] _embedder = [];
    private readonly Lock _embedderLock = new();

    /// <summary>One region of embedder RAM.</summary>
    internal readonly struct EmbedderRegion(ulong hpa, ulong size, byte* pointer)
    {
        public readonly ulong Hpa = hpa;
        public readonly ulong Size = size;
        public readonly byte* Pointer = pointer;
    }

    /// <summary>
    /// Registers memory the embedder owns as host memory at [<paramref name="hpa"/>,
    /// <paramref name="hpa"/> + <paramref name="size"/>). Tables, queues and DMA buffers placed there are
    /// read and written in place. The embedder keeps the memory mapped, and does not reuse it for
    /// anything else, until this host memory is disposed; Engine never frees it.
    /// </summary>
    /// <param name="hpa">The host-physical address of the first byte; 4 KiB aligned.</param>
    /// <param name="host">Where the memory is in this process; 4 KiB aligned, not null.</param>
    /// <param name="size">Bytes; a non-zero multiple of 4 KiB.</param>
    /// <exception cref="ArgumentException">An argument is null, unaligned, zero, wraps, or lies beyond the host address width.</exception>
    /// <exception cref="EngineException"><see cref="Errno.EEXIST"/>: the range overlaps Engine's own region or a region registered before; <see cref="Errno.ENOSPC"/>: <see cref="MaxEmbedderRegions"/> are registered already.</exception>
    /// <exception cref="ObjectDisposedException">This host memory is disposed.</exception>
    public void AddEmbedderRegion(ulong hpa, nint host, ulong size)
    {
        const ulong Page = FrameSize - 1;
        if (host == 0)
            throw new ArgumentNullException(nameof(host), "The host pointer is null.");
        if (size == 0)
            throw new ArgumentOutOfRangeException(nameof(size), "The size is 0.");
        if (((hpa | size) & Page) != 0 || ((ulong)host & Page) != 0)
            throw new ArgumentException($"hpa 0x{hpa:x}, host 0x{host:x} and size 0x{size:x} must all be 4 KiB aligned.", nameof(hpa));
        if (hpa + size < hpa || (ulong)host + size < (ulong)host)
            throw new ArgumentOutOfRangeException(nameof(size), $"[0x{hpa:x}, +0x{size:x}) wraps around the address space.");
        if (HostAddressWidth < 64 && (hpa + size - 1) >> HostAddressWidth != 0)
            throw new ArgumentOutOfRangeException(nameof(hpa), $"[0x{hpa:x}, +0x{size:x}) goes beyond the {HostAddressWidth}-bit host address width.");
        lock (_embedderLock)
        {
            ThrowIfDisposed();
            if (hpa < EndHpa && BaseHpa < hpa + size)
                throw new EngineException(Errno.EEXIST, $"[0x{hpa:x}, +0x{size:x}) overlaps Engine's own host memory [0x{BaseHpa:x}, 0x{EndHpa:x}).");
            EmbedderRegion[] current = _embedder;
            foreach (EmbedderRegion r in current)
            {
                if (hpa < r.Hpa + r.Size && r.Hpa < hpa + size)
                    throw new EngineException(Errno.EEXIST, $"[0x{hpa:x}, +0x{size:x}) overlaps the region [0x{r.Hpa:x}, +0x{r.Size:x}) registered before.");
                if ((ulong)host < (ulong)r.Pointer + r.Size && (ulong)r.Pointer < (ulong)host + size)
                    throw new EngineException(Errno.EEXIST, $"the host memory at 0x{host:x} (+0x{size:x}) overlaps the memory of the region [0x{r.Hpa:x}, +0x{r.Size:x}) registered before: one byte cannot sit at two HPAs.");
            }
            if (current.Length >= MaxEmbedderRegions)
                throw new EngineException(Errno.ENOSPC, $"{MaxEmbedderRegions} embedder regions are registered already.");
            Volatile.Write(ref _embedder, [.. current, new EmbedderRegion(hpa, size, (byte*)host)]);
        }
    }

    /// <summary>The embedder regions registered so far, as (HPA, size) in registration order.</summary>
    public IReadOnlyList<(ulong Hpa, ulong Size)> EmbedderRegions =>
        [.. Volatile.Read(ref _embedder).Select(r => (r.Hpa, r.Size))];

    /// <summary>Whether any embedder region is registered (walkers then look past their own region before faulting).</summary>
    internal bool HasEmbedderRegions
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _embedder).Length != 0;
    }

    /// <summary>Whether [<paramref name="hpa"/>, +<paramref name="length"/>) lies inside one embedder region.</summary>
    public bool IsEmbedderMemory(ulong hpa, ulong length = 1) => TryGetEmbedderPointer(hpa, length) != null;

    // The lookup behind TryGetPointer for addresses outside Engine's region. Null when no one region
    // holds the whole range (a range never spans two regions: they need not be adjacent in the host).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private byte* TryGetEmbedderPointer(ulong hpa, ulong length)
    {
        EmbedderRegion[] regions = Volatile.Read(ref _embedder);
        for (int i = 0; i < regions.Length; i++)
        {
            ulong offset = hpa - regions[i].Hpa;
            if (offset < regions[i].Size && length <= regions[i].Size - offset)
                return regions[i].Pointer + offset;
        }
        return null;
    }

    /// <summary>
    /// The region (Engine's or an embedder's) that holds the whole frame at <paramref name="hpa"/>:
    /// its first HPA, its size as a walker may address it, and its pointer. False when none does
    /// (or memory is disposed). Never throws; callers are inside a protected region.
    /// </summary>
    internal bool TryFindRegion(ulong hpa, out ulong regionHpa, out ulong regionSize, out byte* pointer)
    {
        ulong limit = Volatile.Read(ref _limit);
        if (hpa - BaseHpa < limit && FrameSize <= limit - (hpa - BaseHpa))
        {
            regionHpa = BaseHpa;
            regionSize = limit;
            pointer = _pointer;
            return true;
        }
        EmbedderRegion[] regions = Volatile.Read(ref _embedder);
        for (int i = 0; i < regions.Length; i++)
        {
            ulong offset = hpa - regions[i].Hpa;
            if (offset < regions[i].Size && FrameSize <= regions[i].Size - offset)
            {
                regionHpa = regions[i].Hpa;
                regionSize = regions[i].Size;
                pointer = regions[i].Pointer;
                return true;
            }
        }
        regionHpa = regionSize = 0;
        pointer = null;
        return false;
    }

    /// <summary>
    /// Whether a device or the unit may write [<paramref name="hpa"/>, +<paramref name="length"/>):
    /// every frame of it allocated in Engine's region, or all of it inside one embedder region.
    /// </summary>
    internal bool IsWritable(ulong hpa, ulong length)
    {
        if (Contains(hpa, Math.Max(length, 1)))
        {
            ulong first = (hpa - BaseHpa) >> FrameShift, last = (hpa - BaseHpa + Math.Max(length, 1) - 1) >> FrameShift;
            for (ulong f = first; f <= last; f++)
            {
                if ((FrameState)Volatile.Read(ref _state[f]) != FrameState.Allocated)
                    return false;
            }
            return !IsDisposed;
        }
        return TryGetEmbedderPointer(hpa, Math.Max(length, 1)) != null;
    }

    // Disposal: walkers that start after this find no embedder region and fault.
    private void ForgetEmbedderRegions() => Volatile.Write(ref _embedder, []);
}
