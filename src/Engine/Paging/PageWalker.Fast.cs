using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

// The fast path: the reference's checks before the first load, then the straight line
// (PageWalker.Line.cs) over the region that holds the root.
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

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static WalkResult WalkFast<TRules>(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, Access access)
        where TRules : struct, IFormatRules
    {
        if ((uint)(levels - 2) > 3)
            return WalkResult.Faulted(WalkFault.UnsupportedLevels, levels);
        if ((address >> PageSizes.WidthOfLevels(levels)) != 0)
            return WalkResult.Faulted(WalkFault.AddressBeyondWidth, levels);
        ulong required = RequiredPermissions(config, access);
        // Only the root can be misaligned: every later pointer is masked to bits 51:12.
        if ((rootHpa & (HostMemory.FrameSize - 1)) != 0)
            return WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, levels);
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong offset = rootHpa - baseHpa;
        if (offset >= limit || baseHpa + limit > config.LineCeiling)
            return OffRegion<TRules>(memory, config, rootHpa, levels, address, required);
        return Line<TRules>(memory, config, memory.RegionPointer, Rebase(config, baseHpa), limit, offset, levels, address, required);
    }

    // Out of line: the root is outside Engine's region (in embedder RAM, the usual case being a
    // guest's tables all in its RAM: the straight line over that region), or the region does not fit
    // under the line's ceiling, or nowhere (the fault, from the walk across regions).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WalkResult OffRegion<TRules>(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ulong address, ulong required)
        where TRules : struct, IFormatRules
    {
        if (memory.TryFindRegion(rootHpa, out ulong regionHpa, out ulong regionSize, out byte* region) && regionHpa + regionSize <= config.LineCeiling)
            return Line<TRules>(memory, config, region, Rebase(config, regionHpa), regionSize, rootHpa - regionHpa, levels, address, required);
        return WalkAcrossRegions<TRules>(memory, config, rootHpa, levels, address, required, config.PermissionMask);
    }
}
