using Engine.Workloads;
using System.Runtime.CompilerServices;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Benchmarks.Experiments;

/// <summary>The ten must-be-zero masks of a <see cref="WalkerConfig"/>, copied into a flat array for the experiment.</summary>
[InlineArray(ReservedBitMasks.Count)]
public struct ExperimentMasks
{
    private ulong _element0;
}

/// <summary>EXPERIMENT: a <see cref="WalkerConfig"/> flattened so that the mask of a constant [PS][level] needs no bounds check.</summary>
public readonly struct ExperimentConfig
{
    public readonly ExperimentMasks Masks;

    /// <summary>Per level − 1: the PS = 0 must-be-zero mask plus PS itself above level 1, so one test per level catches "reserved bit or large leaf".</summary>
    public readonly ExperimentMasks HotMasks;
    public readonly ulong PresentMask;
    public readonly ulong PermissionMask;
    public readonly bool ExecuteEnforced;
    public readonly bool RejectWriteOnly;

    public ExperimentConfig(in WalkerConfig config)
    {
        ReservedBitMasks source = config.Masks;
        for (int i = 0; i < ReservedBitMasks.Count; i++)
            Masks[i] = source[i];
        for (int level = 1; level <= ReservedBitMasks.MaxLevels; level++)
            HotMasks[level - 1] = source[level - 1] | (level > 1 ? EptEntry.PageSizeBit : 0);
        PresentMask = config.PresentMask;
        PermissionMask = config.PermissionMask;
        ExecuteEnforced = config.ExecuteEnforced;
        RejectWriteOnly = config.RejectWriteOnly;
    }
}

/// <summary>
/// EXPERIMENT (not engine code): variants of <see cref="PageWalker.Walk"/> to find where the
/// managed walk loses time against anchors.c <c>walk4</c>. Every variant except
/// <see cref="CFloor"/> keeps the engine's semantics for a 4-level table (same faults, same checks);
/// <see cref="WalkerExperimentBenchmarks"/> checks each against the engine before timing.
/// </summary>
public static unsafe class ExperimentalWalkers
{
    private const ulong Fault = ulong.MaxValue;

    /// <summary>A verbatim copy of the engine's walker (so the experiment's harness can be trusted).</summary>
    [SkipLocalsInit]
    public static WalkResult CopyLoop(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access)
    {
        if ((uint)(levels - 2) > 3)
            return WalkResult.Faulted(WalkFault.UnsupportedLevels, levels);
        if ((address >> PageSizes.WidthOfLevels(levels)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, levels);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong table = rootHpa;
        ulong permissions = config.PermissionMask;
        for (int level = levels; ; level--)
        {
            int shift = PageSizes.ShiftOfLevel(level);
            ulong offset = table - baseHpa + (((address >> shift) & PageSizes.LevelMask) << 3);
            if ((table & (HostMemory.FrameSize - 1)) != 0 || table - baseHpa >= limit)
                return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
            ulong entry = Volatile.Read(ref *(ulong*)(region + offset));
            if ((entry & config.PresentMask) == 0)
                return WalkResult.Faulted(WalkFault.NotPresent, level, entry);
            int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
            if ((entry & config.Mask(ps * ReservedBitMasks.MaxLevels + level - 1)) != 0
                || (config.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit))
                return WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
            permissions &= entry;
            if (ps != 0 || level == 1)
            {
                if ((required & ~permissions) != 0)
                    return WalkResult.Faulted(WalkFault.Permission, level, entry);
                ulong pageMask = (1UL << shift) - 1;
                ulong hpa = (entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask);
                return new WalkResult(hpa, entry, WalkFault.None, (byte)level, (Access)permissions);
            }
            table = entry & EptEntry.AddressMask;
        }
    }

    /// <summary>
    /// The engine's loop with two changes: the alignment check only for the root (a pointer taken
    /// from an entry is masked with bits 51:12, so it is always aligned), and the mask read without
    /// a bounds check (the index is 0..9 by construction).
    /// </summary>
    [SkipLocalsInit]
    public static WalkResult LoopNoChecks(HostMemory memory, in ExperimentConfig config, ulong rootHpa, int levels, ulong address, Access access)
    {
        if ((uint)(levels - 2) > 3)
            return WalkResult.Faulted(WalkFault.UnsupportedLevels, levels);
        if ((address >> PageSizes.WidthOfLevels(levels)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, levels);
        if ((rootHpa & (HostMemory.FrameSize - 1)) != 0)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, levels);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong table = rootHpa;
        ulong permissions = config.PermissionMask;
        ref ulong masks = ref Unsafe.AsRef(in config.Masks[0]);
        for (int level = levels; ; level--)
        {
            int shift = PageSizes.ShiftOfLevel(level);
            ulong offset = table - baseHpa;
            if (offset >= limit)
                return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
            ulong entry = Volatile.Read(ref *(ulong*)(region + offset + (((address >> shift) & PageSizes.LevelMask) << 3)));
            if ((entry & config.PresentMask) == 0)
                return WalkResult.Faulted(WalkFault.NotPresent, level, entry);
            int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
            if ((entry & Unsafe.Add(ref masks, ps * ReservedBitMasks.MaxLevels + level - 1)) != 0
                || (config.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit))
                return WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
            permissions &= entry;
            if (ps != 0 || level == 1)
            {
                if ((required & ~permissions) != 0)
                    return WalkResult.Faulted(WalkFault.Permission, level, entry);
                ulong pageMask = (1UL << shift) - 1;
                ulong hpa = (entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask);
                return new WalkResult(hpa, entry, WalkFault.None, (byte)level, (Access)permissions);
            }
            table = entry & EptEntry.AddressMask;
        }
    }

    /// <summary>
    /// One level of a walk, inlined into <see cref="Unrolled4"/> with a constant level, so the
    /// shift, the mask indexes and the level tests fold to constants.
    /// </summary>
    /// <returns>0 to descend (<paramref name="table"/> updated), 1 for a leaf, 2 for a fault (<paramref name="result"/> set).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Step<TLoad>(byte* region, ulong baseHpa, ulong limit, in ExperimentConfig config, int level,
        ulong address, ref ulong table, ref ulong permissions, out ulong entry, out WalkResult result)
        where TLoad : struct, ILoad
    {
        ulong offset = table - baseHpa;
        if (offset >= limit)
        {
            entry = 0;
            result = WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
            return 2;
        }
        entry = TLoad.Load((ulong*)(region + offset + (((address >> PageSizes.ShiftOfLevel(level)) & PageSizes.LevelMask) << 3)));
        if ((entry & config.PresentMask) == 0)
        {
            result = WalkResult.Faulted(WalkFault.NotPresent, level, entry);
            return 2;
        }
        ulong ps = level > 1 ? (entry >> 7) & 1 : 0;
        ulong m0 = config.Masks[level - 1];
        ulong m1 = config.Masks[ReservedBitMasks.MaxLevels + level - 1];
        ulong mask = m0 ^ ((m0 ^ m1) & (0 - ps));
        if ((entry & mask) != 0
            || (config.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit))
        {
            result = WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
            return 2;
        }
        permissions &= entry;
        result = default;
        if (level == 1 || ps != 0)
            return 1;
        table = entry & EptEntry.AddressMask;
        return 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WalkResult Leaf(int level, ulong entry, ulong permissions, ulong required, ulong address)
    {
        if ((required & ~permissions) != 0)
            return WalkResult.Faulted(WalkFault.Permission, level, entry);
        ulong pageMask = (1UL << PageSizes.ShiftOfLevel(level)) - 1;
        return new WalkResult((entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask), entry, WalkFault.None, (byte)level, (Access)permissions);
    }

    /// <summary>A 4-level walk unrolled (levels as constants), all of the engine's checks kept.</summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static WalkResult Unrolled4<TLoad>(HostMemory memory, in ExperimentConfig config, ulong rootHpa, ulong address, Access access)
        where TLoad : struct, ILoad
    {
        if ((address >> PageSizes.WidthOfLevels(4)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, 4);
        if ((rootHpa & (HostMemory.FrameSize - 1)) != 0)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 4);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong table = rootHpa;
        ulong permissions = config.PermissionMask;
        int s = Step<TLoad>(region, baseHpa, limit, in config, 4, address, ref table, ref permissions, out ulong entry, out WalkResult result);
        if (s != 0)
            return s == 1 ? Leaf(4, entry, permissions, required, address) : result;
        s = Step<TLoad>(region, baseHpa, limit, in config, 3, address, ref table, ref permissions, out entry, out result);
        if (s != 0)
            return s == 1 ? Leaf(3, entry, permissions, required, address) : result;
        s = Step<TLoad>(region, baseHpa, limit, in config, 2, address, ref table, ref permissions, out entry, out result);
        if (s != 0)
            return s == 1 ? Leaf(2, entry, permissions, required, address) : result;
        s = Step<TLoad>(region, baseHpa, limit, in config, 1, address, ref table, ref permissions, out entry, out result);
        return s == 1 ? Leaf(1, entry, permissions, required, address) : result;
    }

    /// <summary>
    /// The C anchor's <c>walk4</c> transliterated (present bit, PS at levels 3 and 2, bounds check,
    /// HPA or all-ones): the floor for managed code, not the engine's semantics.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong CFloor(byte* region, ulong baseHpa, ulong limit, ulong root, ulong iova)
    {
        const ulong R = 1, Ps = 1UL << 7, PaMask = EptEntry.AddressMask;
        ulong t = root - baseHpa;
        ulong e = *(ulong*)(region + t + (((iova >> 39) & 511) << 3));
        if ((e & R) == 0)
            return Fault;
        t = (e & PaMask) - baseHpa;
        if (t >= limit)
            return Fault;
        e = *(ulong*)(region + t + (((iova >> 30) & 511) << 3));
        if ((e & R) == 0)
            return Fault;
        if ((e & Ps) != 0)
            return (e & PaMask & ~((1UL << 30) - 1)) | (iova & ((1UL << 30) - 1));
        t = (e & PaMask) - baseHpa;
        if (t >= limit)
            return Fault;
        e = *(ulong*)(region + t + (((iova >> 21) & 511) << 3));
        if ((e & R) == 0)
            return Fault;
        if ((e & Ps) != 0)
            return (e & PaMask & ~((1UL << 21) - 1)) | (iova & ((1UL << 21) - 1));
        t = (e & PaMask) - baseHpa;
        if (t >= limit)
            return Fault;
        e = *(ulong*)(region + t + (((iova >> 12) & 511) << 3));
        if ((e & R) == 0)
            return Fault;
        return (e & PaMask) | (iova & 0xfff);
    }
}

/// <summary>
/// EXPERIMENT: the lean walker. Per level the hot path is: bounds check, load, one test for
/// "not present", one for "reserved bit or PS" (a combined per-level mask), AND of permissions and
/// address. Anything unusual (fault or large leaf) leaves for <see cref="Unusual"/>, which
/// classifies it exactly as the engine does. The format (EPT's write-only rule) is a type parameter.
/// </summary>
public static unsafe class LeanWalker
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static WalkResult Walk4<TFormat>(HostMemory memory, in ExperimentConfig config, ulong rootHpa, ulong address, Access access)
        where TFormat : struct, IWalkFormat
    {
        if ((address >> PageSizes.WidthOfLevels(4)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, 4);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong present = config.PresentMask;
        ulong permissions = config.PermissionMask;

        ulong offset = rootHpa - baseHpa;
        if ((rootHpa & (HostMemory.FrameSize - 1)) != 0 || offset >= limit)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 4);
        ulong e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 39) & PageSizes.LevelMask) << 3)));
        if ((e & present) == 0 || (e & config.HotMasks[3]) != 0 || WriteOnly<TFormat>(e))
            return Unusual<TFormat>(in config, 4, e, permissions, required, address);
        permissions &= e;

        offset = (e & EptEntry.AddressMask) - baseHpa;
        if (offset >= limit)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 3);
        e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 30) & PageSizes.LevelMask) << 3)));
        if ((e & present) == 0 || (e & config.HotMasks[2]) != 0 || WriteOnly<TFormat>(e))
            return Unusual<TFormat>(in config, 3, e, permissions, required, address);
        permissions &= e;

        offset = (e & EptEntry.AddressMask) - baseHpa;
        if (offset >= limit)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 2);
        e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 21) & PageSizes.LevelMask) << 3)));
        if ((e & present) == 0 || (e & config.HotMasks[1]) != 0 || WriteOnly<TFormat>(e))
            return Unusual<TFormat>(in config, 2, e, permissions, required, address);
        permissions &= e;

        offset = (e & EptEntry.AddressMask) - baseHpa;
        if (offset >= limit)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 1);
        e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 12) & PageSizes.LevelMask) << 3)));
        if ((e & present) == 0 || (e & config.HotMasks[0]) != 0 || WriteOnly<TFormat>(e))
            return Unusual<TFormat>(in config, 1, e, permissions, required, address);
        permissions &= e;
        if ((required & ~permissions) != 0)
            return WalkResult.Faulted(WalkFault.Permission, 1, e);
        return new WalkResult((e & EptEntry.AddressMask) | (address & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)permissions);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool WriteOnly<TFormat>(ulong e) where TFormat : struct, IWalkFormat =>
        TFormat.RejectWriteOnly && (e & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit;

    // Out of line: a fault, or a large leaf (PS), at this level. Same order of checks as the engine.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WalkResult Unusual<TFormat>(in ExperimentConfig config, int level, ulong entry, ulong permissions, ulong required, ulong address)
        where TFormat : struct, IWalkFormat
    {
        if ((entry & config.PresentMask) == 0)
            return WalkResult.Faulted(WalkFault.NotPresent, level, entry);
        int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
        if ((entry & config.Masks[ps * ReservedBitMasks.MaxLevels + level - 1]) != 0 || WriteOnly<TFormat>(entry))
            return WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
        // Only a large leaf gets here: without PS the hot test would have passed.
        permissions &= entry;
        if ((required & ~permissions) != 0)
            return WalkResult.Faulted(WalkFault.Permission, level, entry);
        ulong pageMask = (1UL << PageSizes.ShiftOfLevel(level)) - 1;
        return new WalkResult((entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask), entry, WalkFault.None, (byte)level, (Access)permissions);
    }
}

/// <summary>EXPERIMENT: the entry format as a type, so format-only rules fold to constants.</summary>
public interface IWalkFormat
{
    static abstract bool RejectWriteOnly { get; }
}

/// <summary>VT-d second stage: W without R is simply not readable.</summary>
public readonly struct SecondStageFormat : IWalkFormat
{
    public static bool RejectWriteOnly => false;
}

/// <summary>EPT: W without R is a misconfiguration.</summary>
public readonly struct EptFormat : IWalkFormat
{
    public static bool RejectWriteOnly => true;
}

/// <summary>How an experimental walker loads an entry.</summary>
public unsafe interface ILoad
{
    static abstract ulong Load(ulong* p);
}

/// <summary>Volatile.Read, as the engine does.</summary>
public readonly unsafe struct VolatileLoad : ILoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load(ulong* p) => Volatile.Read(ref *p);
}

/// <summary>A plain load.</summary>
public readonly unsafe struct PlainLoad : ILoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load(ulong* p) => *p;
}
