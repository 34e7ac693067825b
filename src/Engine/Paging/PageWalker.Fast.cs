using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

// The fast path: the same walk as WalkReference, unrolled into a straight line (goto case from the
// top level down), one "present" and one "reserved-or-PS" test per level. Anything unusual — a
// fault or a large leaf — leaves the line for Unusual, which classifies it exactly as the reference
// does. Measured (bench/Engine.Benchmarks/RESULTS.md): the loop costs ~25 instructions per level.
internal static unsafe partial class PageWalker
{
    /// <summary>
    /// Walks the table at <paramref name="rootHpa"/> of <paramref name="levels"/> levels (2..5) for
    /// <paramref name="address"/> and checks <paramref name="access"/> against the effective permissions.
    /// Identical results to <see cref="WalkReference"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static WalkResult Walk(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access) =>
        config.RejectWriteOnly
            ? WalkFast<EptRules>(memory, config, rootHpa, levels, address, access)
            : WalkFast<SecondStageRules>(memory, config, rootHpa, levels, address, access);

    private interface IFormatRules
    {
        static abstract bool RejectWriteOnly { get; }
    }

    private readonly struct EptRules : IFormatRules
    {
        public static bool RejectWriteOnly => true;
    }

    private readonly struct SecondStageRules : IFormatRules
    {
        public static bool RejectWriteOnly => false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool WriteOnly<TRules>(ulong entry) where TRules : struct, IFormatRules =>
        TRules.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WalkResult WalkFast<TRules>(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access)
        where TRules : struct, IFormatRules =>
        WalkLine<TRules>(memory, memory.RegionPointer, memory.BaseHpa, memory.Limit, acrossOnOutside: false, config, rootHpa, levels, address, access);

    // The straight line over one region (base pointer, first HPA, bytes). A pointer outside it goes
    // to OutsideRegion, or — when this line already runs over the root's embedder region — to the
    // walk across regions. The flag is a constant at each call, so the JIT keeps one branch.
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WalkResult WalkLine<TRules>(HostMemory memory, byte* region, ulong baseHpa, ulong limit, bool acrossOnOutside,
        in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access)
        where TRules : struct, IFormatRules
    {
        if ((uint)(levels - 2) > 3)
            return WalkResult.Faulted(WalkFault.UnsupportedLevels, levels);
        if ((address >> PageSizes.WidthOfLevels(levels)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, levels);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;

        ulong present = config.PresentMask;
        ulong permissions = config.PermissionMask;
        // Only the root can be misaligned: every later pointer is masked to bits 51:12.
        if ((rootHpa & (HostMemory.FrameSize - 1)) != 0)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, levels);
        ulong offset = rootHpa - baseHpa;
        ulong e;
        int level = levels;

        switch (levels)
        {
            case 5:
                if (offset >= limit)
                    goto Outside;
                e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 48) & PageSizes.LevelMask) << 3)));
                if ((e & present) == 0 || (e & config.DivertMask(5)) != 0 || WriteOnly<TRules>(e))
                    goto Unusual;
                permissions &= e;
                offset = (e & EptEntry.AddressMask) - baseHpa;
                level = 4;
                goto case 4;
            case 4:
                if (offset >= limit)
                    goto Outside;
                e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 39) & PageSizes.LevelMask) << 3)));
                if ((e & present) == 0 || (e & config.DivertMask(4)) != 0 || WriteOnly<TRules>(e))
                    goto Unusual;
                permissions &= e;
                offset = (e & EptEntry.AddressMask) - baseHpa;
                level = 3;
                goto case 3;
            case 3:
                if (offset >= limit)
                    goto Outside;
                e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 30) & PageSizes.LevelMask) << 3)));
                if ((e & present) == 0 || (e & config.DivertMask(3)) != 0 || WriteOnly<TRules>(e))
                    goto Unusual;
                permissions &= e;
                offset = (e & EptEntry.AddressMask) - baseHpa;
                level = 2;
                goto case 2;
            case 2:
            default:
                if (offset >= limit)
                    goto Outside;
                e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 21) & PageSizes.LevelMask) << 3)));
                if ((e & present) == 0 || (e & config.DivertMask(2)) != 0 || WriteOnly<TRules>(e))
                    goto Unusual;
                permissions &= e;
                offset = (e & EptEntry.AddressMask) - baseHpa;
                level = 1;
                if (offset >= limit)
                    goto Outside;
                e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> 12) & PageSizes.LevelMask) << 3)));
                if ((e & present) == 0 || (e & config.DivertMask(1)) != 0 || WriteOnly<TRules>(e))
                    goto Unusual;
                permissions &= e;
                if ((required & ~permissions) != 0)
                    return WalkResult.Faulted(WalkFault.Permission, 1, e);
                return new WalkResult((e & EptEntry.AddressMask) | (address & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)permissions);
        }

    Outside:
        return acrossOnOutside
            ? WalkAcrossRegions<TRules>(memory, config, rootHpa, levels, address, required)
            : OutsideRegion<TRules>(memory, region, config, rootHpa, levels, address, access, required, level);
    Unusual:
        return Unusual<TRules>(config, level, e, permissions, required, address);
    }

    // Out of line: a table pointer left Engine's region. With embedder RAM registered the tables may
    // live there: the straight line again over the root's region (the usual case: a guest's tables
    // all sit in its RAM), else level by level across regions. Without it, this is the fault.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WalkResult OutsideRegion<TRules>(HostMemory memory, byte* region, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access, ulong required, int level)
        where TRules : struct, IFormatRules
    {
        if (!memory.HasEmbedderRegions)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
        if (memory.TryFindRegion(rootHpa, out ulong rootRegionHpa, out ulong rootRegionSize, out byte* rootRegion) && rootRegion != region)
            return WalkLine<TRules>(memory, rootRegion, rootRegionHpa, rootRegionSize, acrossOnOutside: true, config, rootHpa, levels, address, access);
        return WalkAcrossRegions<TRules>(memory, config, rootHpa, levels, address, required);
    }

    // The straight line's checks, level by level, for tables anywhere in host memory. The region of
    // the last table is kept, so tables that share a region (the usual case: a guest's tables all
    // sit in its RAM) cost one range compare per level after the first lookup, and no callback.
    [SkipLocalsInit]
    private static WalkResult WalkAcrossRegions<TRules>(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, ulong required)
        where TRules : struct, IFormatRules
    {
        ulong permissions = config.PermissionMask;
        ulong table = rootHpa;
        ulong regionHpa = 0, regionSize = 0;
        byte* region = null;
        for (int level = levels; ; level--)
        {
            ulong offset = table - regionHpa;
            if (offset >= regionSize)
            {
                if (!memory.TryFindRegion(table, out regionHpa, out regionSize, out region))
                    return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
                offset = table - regionHpa;
            }
            ulong e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> PageSizes.ShiftOfLevel(level)) & PageSizes.LevelMask) << 3)));
            if ((e & config.PresentMask) == 0 || (e & config.DivertMask(level)) != 0 || WriteOnly<TRules>(e))
                return Unusual<TRules>(config, level, e, permissions, required, address);
            permissions &= e;
            if (level == 1)
            {
                if ((required & ~permissions) != 0)
                    return WalkResult.Faulted(WalkFault.Permission, 1, e);
                return new WalkResult((e & EptEntry.AddressMask) | (address & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)permissions);
            }
            table = e & EptEntry.AddressMask;
        }
    }

    // Out of line: a fault or a large leaf at this level, checked in the reference's order.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WalkResult Unusual<TRules>(in WalkerConfig config, int level, ulong entry, ulong permissions, ulong required, ulong address)
        where TRules : struct, IFormatRules
    {
        if ((entry & config.PresentMask) == 0)
            return WalkResult.Faulted(WalkFault.NotPresent, level, entry);
        int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
        if ((entry & config.Mask(ps * ReservedBitMasks.MaxLevels + level - 1)) != 0 || WriteOnly<TRules>(entry))
            return WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
        // Only a large leaf the masks allow gets here (without PS the straight line would have passed).
        permissions &= entry;
        if ((required & ~permissions) != 0)
            return WalkResult.Faulted(WalkFault.Permission, level, entry);
        ulong pageMask = (1UL << PageSizes.ShiftOfLevel(level)) - 1;
        return new WalkResult((entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask), entry, WalkFault.None, (byte)level, (Access)permissions);
    }
}
