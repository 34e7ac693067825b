using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Memory;

namespace Engine.Iommu;

/// <summary>Attributes of a resolved context (and, in scalable mode, PASID entry).</summary>
[Flags]
public enum ContextFlags : byte
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Output = input (TT 2 / PGTT 4).</summary>
    PassThrough = 1,
    /// <summary>PGSNP: every access snoops.</summary>
    PageSnoop = 2,
    /// <summary>Faults are not recorded (FPD).</summary>
    FaultProcessingDisabled = 4,
    /// <summary>Page requests enabled (scalable context PRE).</summary>
    PageRequest = 8,
    /// <summary>Device TLB enabled.</summary>
    DeviceTlb = 16,
    /// <summary>PWSNP: page walks snoop.</summary>
    PageWalkSnoop = 32,
    /// <summary>Resolved through scalable-mode structures.</summary>
    Scalable = 64,
}

/// <summary>What the context (and PASID) structures say about a requester: where its second-stage table is and how to use it.</summary>
/// <param name="Root">Second-stage root table HPA.</param>
/// <param name="Did">Domain id.</param>
/// <param name="Levels">Levels of the table (agaw + 2).</param>
/// <param name="Width">Input-address width: min(AW width, MGAW).</param>
/// <param name="Flags">Attributes.</param>
public readonly record struct ResolvedContext(ulong Root, ushort Did, byte Levels, byte Width, ContextFlags Flags);

/// <summary>
/// The context cache and PASID cache in one: resolved contexts keyed by (source id, PASID),
/// direct-mapped, seqlocked like the IOTLB and validated by one generation number, so any
/// context-cache or PASID-cache invalidation is a single increment (over-invalidating a
/// domain- or device-selective request is allowed by the spec and keeps this O(1)).
/// </summary>
internal sealed unsafe class ContextCache : IDisposable
{
    private const int SlotWords = 8; // [version][key][root][did | levels | width | flags][generation], one cache line
    private const ulong ValidBit = 1UL << 63;
    private readonly ulong* _slots;
    private readonly ulong _mask;
    private uint _generation;
    private bool _disposed;

    public ContextCache(int slots = 1024)
    {
        _mask = (ulong)slots - 1;
        Slots = slots;
        _slots = (ulong*)NativeMemory.AlignedAlloc((nuint)slots * SlotWords * sizeof(ulong), 64);
        NativeMemory.Clear(_slots, (nuint)slots * SlotWords * sizeof(ulong));
        NativeMemoryTracker.OnReserved((ulong)slots * SlotWords * sizeof(ulong));
    }

    public int Slots { get; }

    public uint Generation => Volatile.Read(ref _generation);

    public void InvalidateAll() => Interlocked.Increment(ref _generation);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Key(ushort sourceId, uint pasid) => ValidBit | ((ulong)sourceId << 21) | (pasid & 0x1F_FFFF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong* SlotOf(ulong key) => _slots + (((key ^ (key >> 21) ^ (key >> 9)) & _mask) * SlotWords);

    /// <summary>Looks up (source id, PASID); <paramref name="pasid"/> is 0x100000 for "no PASID".</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(ushort sourceId, uint pasid, out ResolvedContext context)
    {
        ulong key = Key(sourceId, pasid);
        ulong* slot = SlotOf(key);
        ulong v1 = Volatile.Read(ref slot[0]);
        ulong k = Volatile.Read(ref slot[1]);
        ulong root = Volatile.Read(ref slot[2]);
        ulong packed = Volatile.Read(ref slot[3]);
        ulong generation = Volatile.Read(ref slot[4]);
        ulong v2 = Volatile.Read(ref slot[0]);
        if (v1 == v2 && (v1 & 1) == 0 && k == key && generation == Volatile.Read(ref _generation))
        {
            context = new ResolvedContext(root, (ushort)packed, (byte)(packed >> 16), (byte)(packed >> 24), (ContextFlags)(packed >> 32));
            return true;
        }
        context = default;
        return false;
    }

    /// <summary>Caches a resolution made under generation <paramref name="generation"/>; skipped if the slot is busy or the generation moved.</summary>
    public void TryPut(ushort sourceId, uint pasid, in ResolvedContext context, uint generation)
    {
        ulong key = Key(sourceId, pasid);
        ulong* slot = SlotOf(key);
        ulong version = Volatile.Read(ref slot[0]);
        if ((version & 1) != 0 || Interlocked.CompareExchange(ref slot[0], version + 1, version) != version)
            return;
        if (Volatile.Read(ref _generation) == generation)
        {
            Volatile.Write(ref slot[1], key);
            Volatile.Write(ref slot[2], context.Root);
            Volatile.Write(ref slot[3], ((ulong)context.Flags << 32) | ((ulong)context.Width << 24) | ((ulong)context.Levels << 16) | context.Did);
            Volatile.Write(ref slot[4], generation);
        }
        Volatile.Write(ref slot[0], version + 2);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.AlignedFree(_slots);
        NativeMemoryTracker.OnReleased((ulong)Slots * SlotWords * sizeof(ulong));
    }
}
