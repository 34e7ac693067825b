namespace Engine.Iommu;

/// <summary>Which later faults a pending fault record absorbs.</summary>
public enum FaultCollapsing : byte
{
    /// <summary>
    /// Any fault from a source id that has a record with F set (the spec's FRCD_REG.F: "hardware may collapse
    /// additional faults from the same source-id"; QEMU <c>vtd_try_collapse_fault</c>).
    /// </summary>
    SameSource = 0,

    /// <summary>Only a fault identical to a pending record: same SID, PASID, reason, type and page.</summary>
    SameFault = 1,

    /// <summary>Nothing collapses: every fault takes a register while one is free.</summary>
    None = 2,
}
