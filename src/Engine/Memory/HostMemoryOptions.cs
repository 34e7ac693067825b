namespace Engine.Memory;

/// <summary>How a <see cref="HostMemory"/> region is laid out.</summary>
public sealed record HostMemoryOptions
{
    /// <summary>Bytes of host-physical address space (a multiple of 4 KiB). Default 64 GiB, committed lazily.</summary>
    public ulong Size { get; init; } = 64UL << 30;

    /// <summary>Host-physical address of the first frame; must be 1 GiB aligned so 1 GiB pages can be backed. Default 4 GiB.</summary>
    public ulong BaseHpa { get; init; } = 4UL << 30;

    /// <summary>Host address width in bits (HAW): entry address bits at and above it are reserved. Default 46.</summary>
    public int HostAddressWidth { get; init; } = 46;

    /// <summary>Ask Linux to back the region with transparent huge pages (a hint; default off).</summary>
    public bool TransparentHugePages { get; init; }

    /// <summary>
    /// Fill every frame with <see cref="HostMemory.PoisonByte"/> when it returns to the free pool,
    /// so a reader that reaches a reclaimed frame sees poison instead of plausible entries.
    /// Costs a 4 KiB write per free; meant for tests and debugging. Default off.
    /// </summary>
    public bool PoisonFreedFrames { get; init; }

    /// <summary>Retired frames that trigger an automatic reclamation pass. Default 4096.</summary>
    public int ReclaimThreshold { get; init; } = 4096;

    /// <summary>How long <see cref="HostMemory.Dispose"/> waits for walkers to leave their protected regions.</summary>
    public TimeSpan DisposeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    internal void Validate()
    {
        if (HostAddressWidth is < 32 or > 52)
            throw new ArgumentOutOfRangeException(nameof(HostAddressWidth), HostAddressWidth, "The host address width must be between 32 and 52 bits.");
        if (Size == 0 || Size % HostMemory.FrameSize != 0)
            throw new ArgumentOutOfRangeException(nameof(Size), Size, "The size must be a non-zero multiple of 4096 bytes.");
        if (Size / HostMemory.FrameSize > uint.MaxValue - 1)
            throw new ArgumentOutOfRangeException(nameof(Size), Size, "The size must be below 16 TiB (2^32 frames).");
        if (BaseHpa % (1UL << 30) != 0)
            throw new ArgumentOutOfRangeException(nameof(BaseHpa), BaseHpa, "The base HPA must be 1 GiB aligned.");
        if (BaseHpa + Size < BaseHpa || BaseHpa + Size > 1UL << HostAddressWidth)
            throw new ArgumentOutOfRangeException(nameof(Size), Size, $"Base 0x{BaseHpa:x} + size 0x{Size:x} does not fit the {HostAddressWidth}-bit host address width.");
        if (ReclaimThreshold < 1)
            throw new ArgumentOutOfRangeException(nameof(ReclaimThreshold), ReclaimThreshold, "The reclaim threshold must be at least 1.");
        if (DisposeTimeout < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(DisposeTimeout), DisposeTimeout, "The dispose timeout must not be negative.");
    }
}
