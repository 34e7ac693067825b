namespace Engine.Iommu;

/// <summary>
/// Which scalable-mode reason a second-level permission or not-present fault reports. SPEC.md §2.7
/// leaves the split between 0x79 and 0x85/0x86 unconfirmed; the default follows the Linux table's
/// second-level wording.
/// </summary>
public enum ScalablePermissionFaultStyle
{
    /// <summary>0x79 "read/write permission error in second-level entry" for both (default).</summary>
    SecondLevelEntry = 0,

    /// <summary>0x85 (no write permission) / 0x86 (no read permission), by the request.</summary>
    ByRequest = 1,
}

/// <summary>How a <see cref="DmarUnit"/> is built.</summary>
public sealed record DmarUnitOptions
{
    /// <summary>The capability register.</summary>
    public required CapabilityRegister Cap { get; init; }

    /// <summary>The extended capability register.</summary>
    public required ExtendedCapabilityRegister Ecap { get; init; }

    /// <summary>Name for diagnostics (e.g. "dmar0").</summary>
    public string Name { get; init; } = "dmar0";

    /// <summary>IOTLB sets (power of two); entries = sets × 3. Default 1024.</summary>
    public int IotlbSets { get; init; } = 1024;

    /// <summary>Context/PASID-cache slots (power of two). Default 1024.</summary>
    public int ContextCacheSlots { get; init; } = 1024;

    /// <summary>Allow SIMD paths (AVX-512 set compare). False forces the scalar twins.</summary>
    public bool UseSimd { get; init; } = true;

    /// <summary>Which repeated faults the fault-recording registers collapse (default: any from the same source, as the spec allows and QEMU does).</summary>
    public FaultCollapsing FaultCollapsing { get; init; } = FaultCollapsing.SameSource;

    /// <summary>Scalable-mode reason for second-level permission faults.</summary>
    public ScalablePermissionFaultStyle ScalablePermissionFaults { get; init; }

    /// <summary>
    /// The batch walker <see cref="DmarUnit.TranslateBatch"/> walks its misses with; null (default):
    /// the process default — the <c>ENGINE_BATCH_WALKER</c> variable, else the fastest here by a
    /// short measurement made once per process. A walker this CPU cannot run makes the unit's
    /// constructor throw <see cref="NotSupportedException"/>.
    /// </summary>
    public Paging.BatchWalkerKind? BatchWalker { get; init; }
}
