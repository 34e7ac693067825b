namespace Engine.Memory;

/// <summary>A snapshot of a <see cref="HostMemory"/> region's frame accounting.</summary>
/// <param name="CapacityFrames">Frames the region holds.</param>
/// <param name="FramesInUse">Frames allocated or retired but not yet reclaimed.</param>
/// <param name="PeakFramesInUse">The largest <paramref name="FramesInUse"/> seen.</param>
/// <param name="RetiredFrames">Frames waiting for their epoch grace period.</param>
/// <param name="FreeFrames">Frames in the free pool.</param>
/// <param name="FreshFrames">Frames never handed out.</param>
/// <param name="ReclaimedFrames">Retired frames moved to the free pool so far.</param>
public readonly record struct HostMemoryStatistics(
    ulong CapacityFrames,
    ulong FramesInUse,
    ulong PeakFramesInUse,
    ulong RetiredFrames,
    ulong FreeFrames,
    ulong FreshFrames,
    ulong ReclaimedFrames);
