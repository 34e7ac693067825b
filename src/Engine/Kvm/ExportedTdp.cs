using Engine.Paging;

namespace Engine.Kvm;

/// <summary>Platform type of exported TDP metadata (<c>enum kvm_exported_tdp_type</c>).</summary>
internal enum TdpType
{
    /// <summary>Not set: importers must refuse it.</summary>
    None = 0,

    /// <summary>Intel EPT (<c>KVM_TDP_TYPE_EPT</c> = 1), the only type KVM defines.</summary>
    Ept = 1,
}

/// <summary>
/// The vendor metadata KVM exports with a TDP (<c>struct kvm_exported_tdp_meta_vmx</c>, SPEC.md §1.4):
/// what an IOMMU needs to walk KVM's EPT as its second-stage table.
/// </summary>
/// <param name="Type">Platform type; importers check it first.</param>
/// <param name="Level">Levels of the TDP (4 or 5).</param>
/// <param name="RootHpa">HPA of the root table; constant for the export's lifetime.</param>
/// <param name="MaxHugePageLevel">Largest leaf KVM may create: 1 = 4K, 2 = 2M, 3 = 1G.</param>
/// <param name="RsvdBitsMask">KVM's must-be-zero bits, [PS][level − 1]; KVM never sets them, not even for software use.</param>
internal sealed record ExportedTdp(TdpType Type, int Level, ulong RootHpa, int MaxHugePageLevel, ReservedBitMasks RsvdBitsMask)
{
    /// <summary>The size argument of <see cref="ITdpImporter.Invalidate"/> that means "everything" (C's −1).</summary>
    public const ulong InvalidateAll = ulong.MaxValue;
}

/// <summary>
/// An importer of an exported TDP (an IOMMU domain): told to invalidate whatever it cached of a
/// guest-physical range every time KVM flushes after changing entries, and before any table frame
/// freed by that change can be reused; and told when the export ends, before the tables are freed.
/// </summary>
/// <remarks>Called with KVM's MMU lock held: the callbacks must not call back into the VM.</remarks>
internal interface ITdpImporter
{
    /// <summary>Invalidate [<paramref name="gpa"/>, <paramref name="gpa"/> + <paramref name="size"/>); (0, <see cref="ExportedTdp.InvalidateAll"/>) means everything.</summary>
    void Invalidate(ulong gpa, ulong size);

    /// <summary>
    /// The export ends (<see cref="KvmTdpFd.Dispose"/>, or <see cref="Vm.Dispose"/> of its VM): stop
    /// using the tables for good. When this returns, no walk through the importer may start and
    /// nothing it cached may be used again; the VM frees the tables right after, and their frames go
    /// to whoever allocates next (another VM's guest memory, for instance).
    /// </summary>
    /// <remarks>
    /// In the series a TDP FD holds its VM and IOMMUFD holds the TDP FD, so the tables outlive every
    /// importer and KVM never has to ask. A disposed <see cref="Vm"/> cannot wait for its importers,
    /// so it revokes them first, in the order the series tears a KVM HWPT down (the domain stops
    /// using the tables, the importer is unregistered, then the tables may go). An exception means
    /// the importer could not stop; the VM then keeps every frame rather than free one under it.
    /// </remarks>
    void Revoke();
}

/// <summary>Outcome of KVM's fault op for an exported TDP (patch 37).</summary>
public enum TdpFaultResult
{
    /// <summary>The GFN is mapped with the access asked for (RET_PF_FIXED, or already mapped).</summary>
    Fixed = 0,

    /// <summary>No memslot covers the GFN: emulated MMIO, cannot be faulted in (-EFAULT).</summary>
    NoMemslot,

    /// <summary>The GFN is write-tracked (a guest page table): a DMA write cannot be emulated (-EINVAL).</summary>
    WriteTracked,

    /// <summary>A write to a read-only memslot (-EFAULT).</summary>
    ReadOnlyMemslot,

    /// <summary>The GFN is beyond the guest address width (-EFAULT).</summary>
    BeyondAddressWidth,

    /// <summary>Host memory ran out while mapping (-ENOMEM); nothing was changed.</summary>
    OutOfMemory,

    /// <summary>
    /// The export was closed or its VM disposed. Only importers see it (their page requests are
    /// answered INVALID); <see cref="KvmTdpFd.Fault"/> throws <see cref="ObjectDisposedException"/> instead.
    /// </summary>
    ExportClosed,
}
