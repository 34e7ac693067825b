using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// Host memory: one lazily committed native region of 4 KiB frames, plus any RAM the embedder
/// registers (<see cref="AddEmbedderRegion"/>). An HPA in Engine's region is <see cref="BaseHpa"/>
/// plus an offset into it. Page-table frames of KVM and of the IOMMU driver, and the frames that back
/// guest RAM, all come from Engine's region; embedder regions are read and written, never allocated.
/// </summary>
/// <remarks>
/// The class is split by concern: this file holds the region and bounds-checked access,
/// <c>HostMemory.Frames.cs</c> the lock-free allocator, <c>HostMemory.Reclaim.cs</c> retirement
/// through <see cref="Epochs"/>, <c>HostMemory.Embedder.cs</c> the embedder's regions.
/// </remarks>
public sealed unsafe partial class HostMemory : IDisposable
{
    /// <summary>Bytes in a frame.</summary>
    public const int FrameSize = 4096;

    /// <summary>log2 of <see cref="FrameSize"/>.</summary>
    public const int FrameShift = 12;

    /// <summary>The byte pattern of a freed frame when <see cref="HostMemoryOptions.PoisonFreedFrames"/> is on.</summary>
    public const byte PoisonByte = 0xDB;

    /// <summary>A 64-bit word of poison, as a walker would read it.</summary>
    public const ulong PoisonWord = 0xDBDB_DBDB_DBDB_DBDBUL;

    private readonly VirtualRegion _region;
    private readonly byte* _pointer;
    private readonly HostMemoryOptions _options;
    private ulong _limit;
    private int _disposed;

    /// <summary>Reserves a region as <paramref name="options"/> say (defaults: 64 GiB at HPA 4 GiB).</summary>
    public HostMemory(HostMemoryOptions? options = null)
    {
        _options = options ?? new HostMemoryOptions();
        _options.Validate();
        BaseHpa = _options.BaseHpa;
        Size = _options.Size;
        FrameCount = Size >> FrameShift;
        HostAddressWidth = _options.HostAddressWidth;
        _region = new VirtualRegion(Size, _options.TransparentHugePages);
        try
        {
            _pointer = _region.Pointer;
            InitializeFrames();
        }
        catch
        {
            _region.Dispose();
            throw;
        }
        _limit = Size;
        Epochs = new EpochManager();
    }

    /// <summary>HPA of the first frame.</summary>
    public ulong BaseHpa { get; }

    /// <summary>Bytes in the region.</summary>
    public ulong Size { get; }

    /// <summary>One past the last HPA of the region.</summary>
    public ulong EndHpa => BaseHpa + Size;

    /// <summary>Frames in the region.</summary>
    public ulong FrameCount { get; }

    /// <summary>Host address width (HAW) in bits.</summary>
    public int HostAddressWidth { get; }

    /// <summary>The epochs that protect walkers from frame reuse.</summary>
    internal EpochManager Epochs { get; }

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Hot-path translation of an HPA range to a pointer: null when any byte of it is outside the
    /// region (or the region is disposed). Never throws. Callers must be inside a protected region.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* TryGetPointer(ulong hpa, ulong length)
    {
        ulong offset = hpa - BaseHpa;
        ulong limit = Volatile.Read(ref _limit);
        // One unsigned compare covers hpa below the base (the subtraction wraps) and past the end.
        if (offset < limit && length <= limit - offset)
            return _pointer + offset;
        return TryGetEmbedderPointer(hpa, length);
    }

    /// <summary>
    /// The entry at <paramref name="hpa"/> without checks, for writers that walk their own tables
    /// (every table pointer they follow was written by them and lies inside the region).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref ulong EntryRef(ulong hpa)
    {
        System.Diagnostics.Debug.Assert(Contains(hpa, 8) && (hpa & 7) == 0, "entry outside host memory");
        return ref *(ulong*)(_pointer + (hpa - BaseHpa));
    }

    /// <summary>Base pointer and current limit for walkers that do their own bounds checks.</summary>
    internal byte* RegionPointer => _pointer;

    /// <summary>Bytes a walker may address; 0 once disposal has begun.</summary>
    internal ulong Limit => Volatile.Read(ref _limit);

    /// <summary>Whether every byte of [<paramref name="hpa"/>, <paramref name="hpa"/> + <paramref name="length"/>) lies in the region.</summary>
    public bool Contains(ulong hpa, ulong length = 1)
    {
        ulong offset = hpa - BaseHpa;
        return offset < Size && length <= Size - offset;
    }

    /// <summary>
    /// A span over [<paramref name="hpa"/>, <paramref name="hpa"/> + <paramref name="length"/>),
    /// which must lie inside frames that are currently allocated.
    /// </summary>
    /// <exception cref="InvalidHostAddressException">The range leaves the region or touches a frame that is not allocated.</exception>
    public Span<byte> GetSpan(ulong hpa, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ThrowIfDisposed();
        if (!Contains(hpa, (ulong)Math.Max(length, 1)) && TryGetEmbedderPointer(hpa, (ulong)Math.Max(length, 1)) is var embedder && embedder != null)
            return new Span<byte>(embedder, length);
        if (!Contains(hpa, (ulong)Math.Max(length, 1)))
            throw new InvalidHostAddressException(hpa, $"the range of {length} bytes is outside host memory [0x{BaseHpa:x}, 0x{EndHpa:x}).", nameof(hpa));
        if (length > 0)
        {
            ulong first = (hpa - BaseHpa) >> FrameShift, last = (hpa - BaseHpa + (ulong)length - 1) >> FrameShift;
            for (ulong f = first; f <= last; f++)
            {
                if ((FrameState)Volatile.Read(ref _state[f]) != FrameState.Allocated)
                    throw new InvalidHostAddressException(hpa, $"frame 0x{BaseHpa + (f << FrameShift):x} is {(FrameState)_state[f]}, not allocated.", nameof(hpa));
            }
        }
        return new Span<byte>(_pointer + (hpa - BaseHpa), length);
    }

    /// <summary>The 4 KiB of an allocated frame (or of a frame in an embedder region).</summary>
    public Span<byte> GetFrame(ulong hpa)
    {
        if ((hpa & (FrameSize - 1)) == 0 && !Contains(hpa) && IsEmbedderMemory(hpa, FrameSize))
            return GetSpan(hpa, FrameSize);
        _ = FrameIndexOf(hpa, nameof(hpa));
        return GetSpan(hpa, FrameSize);
    }

    /// <summary>Reads the 64-bit entry at <paramref name="hpa"/> (8-byte aligned) with a volatile load.</summary>
    public ulong ReadEntry(ulong hpa)
    {
        ulong* p = EntryPointer(hpa);
        return Volatile.Read(ref *p);
    }

    /// <summary>Writes the 64-bit entry at <paramref name="hpa"/> (8-byte aligned) with one atomic store.</summary>
    /// <remarks>A release store: whatever the writer filled in before (a new table's entries) is visible to a walker that sees the entry.</remarks>
    public void WriteEntry(ulong hpa, ulong value)
    {
        ulong* p = EntryPointer(hpa);
        Volatile.Write(ref *p, value);
    }

    /// <summary>Replaces the entry at <paramref name="hpa"/> with <paramref name="value"/> if it still holds <paramref name="expected"/>.</summary>
    /// <returns>The value found.</returns>
    public ulong CompareExchangeEntry(ulong hpa, ulong value, ulong expected)
    {
        ulong* p = EntryPointer(hpa);
        return Interlocked.CompareExchange(ref *p, value, expected);
    }

    private ulong* EntryPointer(ulong hpa)
    {
        ThrowIfDisposed();
        if ((hpa & 7) != 0)
            throw new InvalidHostAddressException(hpa, "an entry address must be 8-byte aligned.", nameof(hpa));
        if (!Contains(hpa, 8) && TryGetEmbedderPointer(hpa, 8) is var embedder && embedder != null)
            return (ulong*)embedder;
        if (!Contains(hpa, 8))
            throw new InvalidHostAddressException(hpa, $"outside host memory [0x{BaseHpa:x}, 0x{EndHpa:x}).", nameof(hpa));
        ulong frame = (hpa - BaseHpa) >> FrameShift;
        if ((FrameState)Volatile.Read(ref _state[frame]) is not (FrameState.Allocated or FrameState.Retired))
            throw new InvalidHostAddressException(hpa, $"its frame is {(FrameState)_state[frame]}, not allocated.", nameof(hpa));
        return (ulong*)(_pointer + (hpa - BaseHpa));
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>
    /// Releases the region. Walkers still inside protected regions are waited for (up to
    /// <see cref="HostMemoryOptions.DisposeTimeout"/>); new walks see an empty region and fault.
    /// </summary>
    /// <exception cref="InvalidOperationException">A walker stayed inside a protected region past the timeout; the region is then kept (leaked) rather than unmapped under it.</exception>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        // Walkers read the limit inside their protected region: once it is 0 and every walker that
        // entered before has left, nobody can hold a pointer into the region.
        Volatile.Write(ref _limit, 0);
        ForgetEmbedderRegions();
        ulong tag = Epochs.Bump();
        if (!Epochs.WaitUntilSafe(tag, _options.DisposeTimeout))
            throw new InvalidOperationException($"HostMemory.Dispose: a thread stayed inside an epoch-protected region for more than {_options.DisposeTimeout}; the region is left mapped so that thread cannot fault.");
        Epochs.Dispose();
        ReleaseFrames();
        _region.Dispose();
    }
}
