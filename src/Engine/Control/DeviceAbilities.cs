namespace Engine.Control;

/// <summary>PCIe abilities of a device that matter to the IOMMU.</summary>
[Flags]
public enum DeviceAbilities
{
    /// <summary>None: plain untranslated DMA.</summary>
    None = 0,

    /// <summary>Address Translation Services: the device has a device TLB.</summary>
    Ats = 1,

    /// <summary>Page Request Interface: the device can ask for pages after a fault (IOPF).</summary>
    Pri = 2,

    /// <summary>PASID TLP prefixes.</summary>
    Pasid = 4,
}

/// <summary>Flags of a domain allocation (IOMMU_HWPT_ALLOC_*).</summary>
[Flags]
public enum DomainAllocFlags
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>IOMMU_HWPT_ALLOC_NEST_PARENT: the domain will be a nesting parent.</summary>
    NestParent = 1,

    /// <summary>IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain tracks dirty pages.</summary>
    DirtyTracking = 2,
}

/// <summary>Options of <see cref="Domain.Attach"/>.</summary>
[Flags]
public enum AttachFlags
{
    /// <summary>None: follow the series — a fault-capable (KVM) domain refuses a device that cannot take IO page faults (ENODEV).</summary>
    None = 0,

    /// <summary>
    /// Attach to a fault-capable (KVM) domain even when the device cannot send page requests through
    /// its IOMMU (no PRI or ATS, or a unit without ECAP.PRS / ECAP.DT). The device then runs without
    /// page requests (<see cref="Device.PageRequestsEnabled"/> false, PRE clear): its DMA faults
    /// wherever KVM has not mapped, so the VMM must keep every DMA target mapped, as with pinning.
    /// The series has no such mode; it exists for embedders that pre-map guest memory.
    /// </summary>
    AllowWithoutPageRequests = 1,
}
