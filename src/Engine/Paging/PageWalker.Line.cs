using System.Numerics;
using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

// The straight line: the walk both Walk and BoundWalker run, unrolled from the top level down
// (goto from label to label), over one region. A table pointer stays on it with one addition (the
// rebase), one test, one AND and one bound test; anything else — a fault, a large leaf, a table pointer without every permission or
// outside the region — leaves it with the entry in hand for OffLine, which judges that entry as the
// reference does and walks on. So every entry is read once, and the result is the reference's.
internal static unsafe partial class PageWalker
{
    internal interface IFormatRules
    {
        static abstract bool RejectWriteOnly { get; }
    }

    internal readonly struct EptRules : IFormatRules
    {
        public static bool RejectWriteOnly => true;
    }

    internal readonly struct SecondStageRules : IFormatRules
    {
        public static bool RejectWriteOnly => false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool WriteOnly<TRules>(ulong entry) where TRules : struct, IFormatRules =>
        TRules.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit;

    /// <summary>
    /// What the line adds to an entry: −(first HPA of the region + <see cref="WalkerConfig.PermissionMask"/>).
    /// The sum's low bits are 0 only for an entry with every permission, and its address bits are the
    /// table's offset in the region (an addition, not a subtraction, so the JIT can make it one LEA).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Rebase(in WalkerConfig config, ulong regionHpa) => 0 - (regionHpa + config.PermissionMask);

    /// <summary>
    /// Walks <paramref name="address"/> from the root table at <paramref name="offset"/> in the region
    /// at <paramref name="region"/> of <paramref name="limit"/> bytes; <paramref name="rebase"/> is
    /// <see cref="Rebase"/> of the region's first HPA.
    /// </summary>
    /// <remarks>
    /// The caller has checked what the reference checks before the first load: 2..5
    /// <paramref name="levels"/>, the address within their width, the root 4 KiB aligned and inside
    /// the region (offset &lt; limit), and the region ending at or below
    /// <see cref="WalkerConfig.LineCeiling"/> (what makes the subtraction's test exact).
    /// </remarks>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static WalkResult Line<TRules>(HostMemory memory, in WalkerConfig config, byte* region, ulong rebase, ulong limit,
        ulong offset, int levels, ulong address, ulong required)
        where TRules : struct, IFormatRules
    {
        ulong e;
        int level;
        // Compares, not a jump table: a walker runs one shape, so these are predicted.
        if (levels == 4)
            goto L4;
        if (levels == 5)
            goto L5;
        if (levels == 3)
            goto L3;
        goto L2;

    L5:
        e = Volatile.Read(ref *(ulong*)(region + offset + ((BitOperations.RotateRight(address, 48) & PageSizes.LevelMask) << 3)));
        offset = e + rebase;
        if ((offset & config.LineMask(5)) != 0)
        {
            level = 5;
            goto Off;
        }
        offset &= EptEntry.AddressMask;
        if (offset >= limit)
        {
            level = 5;
            goto Off;
        }
        goto L4;
    L4:
        e = Volatile.Read(ref *(ulong*)(region + offset + ((BitOperations.RotateRight(address, 39) & PageSizes.LevelMask) << 3)));
        offset = e + rebase;
        if ((offset & config.LineMask(4)) != 0)
        {
            level = 4;
            goto Off;
        }
        offset &= EptEntry.AddressMask;
        if (offset >= limit)
        {
            level = 4;
            goto Off;
        }
        goto L3;
    L3:
        e = Volatile.Read(ref *(ulong*)(region + offset + ((BitOperations.RotateRight(address, 30) & PageSizes.LevelMask) << 3)));
        offset = e + rebase;
        if ((offset & config.LineMask(3)) != 0)
        {
            level = 3;
            goto Off;
        }
        offset &= EptEntry.AddressMask;
        if (offset >= limit)
        {
            level = 3;
            goto Off;
        }
        goto L2;
    L2:
        e = Volatile.Read(ref *(ulong*)(region + offset + ((BitOperations.RotateRight(address, 21) & PageSizes.LevelMask) << 3)));
        offset = e + rebase;
        if ((offset & config.LineMask(2)) != 0)
        {
            level = 2;
            goto Off;
        }
        offset &= EptEntry.AddressMask;
        if (offset >= limit)
        {
            level = 2;
            goto Off;
        }
        // The leaf: every table pointer above had every permission, so the effective permissions
        // are the leaf's, and (what the request needs being among them) the request's test is on
        // the entry itself.
        e = Volatile.Read(ref *(ulong*)(region + offset + ((BitOperations.RotateRight(address, 12) & PageSizes.LevelMask) << 3)));
        if ((e & config.PresentMask) == 0 || (e & config.LeafDivertMask) != 0 || WriteOnly<TRules>(e))
        {
            level = 1;
            goto Off;
        }
        if ((e & required) != required)
            return WalkResult.Faulted(WalkFault.Permission, 1, e);
        return new WalkResult((e & EptEntry.AddressMask) | (address & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)(e & config.PermissionMask));

    // One call site, so the JIT keeps the result in registers on the line. (The address mask is the
    // constant, one MOV more a level than an AND from the config, but one load fewer: with the load,
    // walk-cold lost its fast runs — more loads a walk, fewer walks in flight.)
    Off:
        return OffLine<TRules>(memory, config, level, e, address, required);
    }

    // Out of line: the entry at this level left the straight line, every entry above it having had
    // every permission. Judged as the reference does; a table pointer walks on across regions.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WalkResult OffLine<TRules>(HostMemory memory, in WalkerConfig config, int level, ulong entry, ulong address, ulong required)
        where TRules : struct, IFormatRules
    {
        ulong permissions = config.PermissionMask;
        if (Ends<TRules>(config, level, entry, ref permissions, required, address, out WalkResult result))
            return result;
        return WalkAcrossRegions<TRules>(memory, config, entry & EptEntry.AddressMask, level - 1, address, required, permissions);
    }

    // Level by level for tables anywhere in host memory, from the table at `table` (4 KiB aligned)
    // at `level`. The region of the last table is kept, so tables that share a region (the usual
    // case: a guest's tables all sit in its RAM) cost one range compare per level after the first
    // lookup. The region lookup reads the live bounds, so frames allocated after a walker was bound
    // are reached.
    [SkipLocalsInit]
    private static WalkResult WalkAcrossRegions<TRules>(HostMemory memory, in WalkerConfig config, ulong table, int level, ulong address, ulong required, ulong permissions)
        where TRules : struct, IFormatRules
    {
        ulong regionHpa = 0, regionSize = 0;
        byte* region = null;
        for (; ; level--)
        {
            ulong offset = table - regionHpa;
            if (offset >= regionSize)
            {
                if (!memory.TryFindRegion(table, out regionHpa, out regionSize, out region))
                    return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);
                offset = table - regionHpa;
            }
            ulong e = Volatile.Read(ref *(ulong*)(region + offset + (((address >> PageSizes.ShiftOfLevel(level)) & PageSizes.LevelMask) << 3)));
            if (Ends<TRules>(config, level, e, ref permissions, required, address, out WalkResult result))
                return result;
            table = e & EptEntry.AddressMask;
        }
    }

    // Reference steps 6–9 for one entry: a fault or a leaf ends the walk (true, with its result); a
    // table pointer continues it, its permissions folded into `permissions`.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Ends<TRules>(in WalkerConfig config, int level, ulong entry, ref ulong permissions, ulong required, ulong address, out WalkResult result)
        where TRules : struct, IFormatRules
    {
        if ((entry & config.PresentMask) == 0)
        {
            result = WalkResult.Faulted(WalkFault.NotPresent, level, entry);
            return true;
        }
        int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
        if ((entry & config.Mask(ps * ReservedBitMasks.MaxLevels + level - 1)) != 0 || WriteOnly<TRules>(entry))
        {
            result = WalkResult.Faulted(WalkFault.ReservedBit, level, entry);
            return true;
        }
        permissions &= entry;
        if (ps != 0 || level == 1)
        {
            if ((required & ~permissions) != 0)
            {
                result = WalkResult.Faulted(WalkFault.Permission, level, entry);
                return true;
            }
            ulong pageMask = (1UL << PageSizes.ShiftOfLevel(level)) - 1;
            result = new WalkResult((entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask), entry, WalkFault.None, (byte)level, (Access)permissions);
            return true;
        }
        result = default;
        return false;
    }
}
