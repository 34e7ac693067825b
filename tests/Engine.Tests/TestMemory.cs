using Engine.Memory;

namespace Engine.Tests;

/// <summary>Small host memories for tests: lazily committed, so generous sizes cost nothing.</summary>
internal static class TestMemory
{
    public static HostMemory Create(ulong sizeMiB = 256, bool poison = false, int reclaimThreshold = 4096) =>
        new(new HostMemoryOptions
        {
            Size = sizeMiB << 20,
            PoisonFreedFrames = poison,
            ReclaimThreshold = reclaimThreshold,
            DisposeTimeout = TimeSpan.FromSeconds(5),
        });
}
