using Engine.Memory;

namespace Engine.Control;

/// <summary>How a <see cref="Platform"/> is built.</summary>
public sealed record PlatformOptions
{
    /// <summary>Host memory layout.</summary>
    public HostMemoryOptions Memory { get; init; } = new();

    /// <summary>The Kconfig switch CONFIG_INTEL_IOMMU_KVM: off makes KVM-domain allocation answer "not supported". Default on.</summary>
    public bool KvmDomainSupport { get; init; } = true;

    /// <summary>The driver's scalable-mode switch (<c>intel_iommu=sm_on</c>). Default on.</summary>
    public bool ScalableModeEnabled { get; init; } = true;

    /// <summary>Serve page requests as soon as they arrive (the IOPF workqueue, run synchronously). Default on.</summary>
    public bool ServePageRequestsImmediately { get; init; } = true;

    /// <summary>
    /// The batch walker of every IOMMU added to this platform whose own options name none
    /// (<see cref="Iommu.DmarUnitOptions.BatchWalker"/>); null (default): the process default.
    /// </summary>
    public Paging.BatchWalkerKind? BatchWalker { get; init; }
}
