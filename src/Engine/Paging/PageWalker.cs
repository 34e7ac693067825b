using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

/// <summary>
/// The scalar page walker: the oracle every faster path is checked against.
/// </summary>
/// <remarks>
/// Pure function over host memory. The caller must be inside a protected region of
/// <see cref="HostMemory.Epochs"/> (<c>using (memory.Epochs.Enter()) { ... }</c>) so no table frame
/// it reaches is reused under it. Each entry is read exactly once with a volatile 64-bit load.
/// Nothing is ever dereferenced outside host memory: such a pointer is a fault.
/// </remarks>
internal static unsafe partial class PageWalker
{
    /// <summary>
    /// The reference walk: the numbered steps below, one level per loop iteration. Every faster path
    /// (<see cref="Walk"/>'s straight line, the batch walkers) must give bit-identical results.
    /// </summary>
    [SkipLocalsInit]
    public static WalkResult WalkReference(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access)
    {
        // Step 1: the table's shape. 2..5 levels (Linux agaw 0..3) are what VT-d defines.
        if ((uint)(levels - 2) > 3)
            return WalkResult.Faulted(WalkFault.UnsupportedLevels, levels);

        // Step 2: the input address must fit the width the levels translate (39, 48 or 57 bits).
        if ((address >> PageSizes.WidthOfLevels(levels)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, levels);

        // Step 3: what the request needs. Without enforced execute, an execute access is a read.
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;

        ulong table = rootHpa;
        ulong permissions = config.PermissionMask;

        for (int level = levels; ; level--)
        {
            int shift = PageSizes.ShiftOfLevel(level);

            // Step 4: locate the table; its whole frame must lie inside host memory (Engine's region
            // or one the embedder registered). Inside the caller's protected region, so a disposed
            // memory answers null here.
            byte* frame = (table & (HostMemory.FrameSize - 1)) == 0 ? memory.TryGetPointer(table, HostMemory.FrameSize) : null;
            if (frame == null)
                return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, level);

            // Step 5: one volatile 64-bit load of the entry.
            ulong entry = Volatile.Read(ref *(ulong*)(frame + (((address >> shift) & PageSizes.LevelMask) << 3)));

            // Step 6: present?
            if ((entry & config.PresentMask) == 0)
                return WalkResult.Faulted(WalkFault.NotPresent, level, entry);

            // Step 7: must-be-zero bits for this level and PS value (PS means nothing at level 1).
            int ps = level > 1 ? (int)(entry >> 7) & 1 : 0;
            if ((entry & config.Mask(ps * ReservedBitMasks.MaxLevels + level - 1)) != 0
                || (config.RejectWriteOnly && (entry & (EptEntry.ReadBit | EptEntry.WriteBit)) == EptEntry.WriteBit))
                return WalkResult.Faulted(WalkFault.ReservedBit, level, entry);

            // Step 8: permissions are the AND over the whole path.
            permissions &= entry;

            // Step 9: a leaf ends the walk (level 1, or PS at a level whose mask allowed it).
            if (ps != 0 || level == 1)
            {
                if ((required & ~permissions) != 0)
                    return WalkResult.Faulted(WalkFault.Permission, level, entry);
                ulong pageMask = (1UL << shift) - 1;
                ulong hpa = (entry & EptEntry.AddressMask & ~pageMask) | (address & pageMask);
                return new WalkResult(hpa, entry, WalkFault.None, (byte)level, (Access)permissions);
            }

            // Step 10: descend.
            table = entry & EptEntry.AddressMask;
        }
    }
}
