using Engine.Iommu;
using Engine.Kvm;

namespace Engine.Control;

/// <summary>
/// Whether an IOMMU can walk KVM's exported EPT as a KVM domain's second stage (the seed's
/// <c>is_iommu_cap_compatible_to_kvm_domain</c>, SPEC.md §1.6), with every failing condition named.
/// </summary>
internal static class KvmDomainCompatibility
{
    /// <summary>Width in bits of a TDP of <paramref name="level"/> levels (48 or 57).</summary>
    public static int WidthOfLevel(int level) => level == 5 ? 57 : 48;

    /// <summary>
    /// Every reason <paramref name="iommu"/> cannot carry a KVM domain with this metadata; empty when it can.
    /// </summary>
    /// <remarks>
    /// The RFC compares the domain's agaw with CAP.MGAW, an agaw code against a bit count, which is
    /// always false; the intent — the domain's width must fit the unit's MGAW — is what is checked here.
    /// </remarks>
    public static IReadOnlyList<string> Check(DriverView iommu, ExportedTdp tdp)
    {
        ArgumentNullException.ThrowIfNull(iommu);
        ArgumentNullException.ThrowIfNull(tdp);
        var reasons = new List<string>();
        int width = WidthOfLevel(tdp.Level);
        int agaw = AgawMath.WidthToAgaw(AgawMath.GuestWidthToAdjustWidth(width));
        int superpage = tdp.MaxHugePageLevel - 1;
        if (!iommu.Ecap.SnoopControl)
            reasons.Add("the IOMMU has no snoop control (ECAP.SC = 0): DMA cannot be forced to snoop, and KVM's memory types need it");
        if (!iommu.ScalableMode)
            reasons.Add(iommu.Ecap.ScalableMode
                ? "scalable mode is switched off in the driver: PGSNP in the PASID entry is needed instead of per-PTE SNP (bit 11)"
                : "the IOMMU has no scalable mode (ECAP.SMTS = 0): PGSNP in the PASID entry is needed instead of per-PTE SNP (bit 11)");
        if (!iommu.PagingStructureCoherency)
            reasons.Add("the IOMMU's page walks are not coherent (ECAP.SMPWC = 0 in scalable mode, ECAP.C otherwise): KVM never flushes its tables from the CPU caches");
        if (superpage > iommu.SuperpageLevel)
            reasons.Add($"KVM may create {(superpage == 2 ? "1 GiB" : "2 MiB")} pages but the IOMMU walks only {(iommu.SuperpageLevel switch { 0 => "4 KiB", 1 => "up to 2 MiB", _ => "up to 1 GiB" })} pages (SLLPS 0x{iommu.Cap.Sllps:x})");
        if (agaw > iommu.Agaw)
            reasons.Add(iommu.Agaw < 0
                ? $"the IOMMU supports no usable address width (SAGAW 0x{iommu.EffectiveSagaw:x})"
                : $"the TDP has {tdp.Level} levels ({width}-bit, agaw {agaw}) but the IOMMU walks at most agaw {iommu.Agaw} ({AgawMath.AgawToLevel(iommu.Agaw)} levels); KVM domains are never level-stripped");
        if (width > iommu.Mgaw)
            reasons.Add($"the TDP's {width}-bit guest-physical width exceeds the IOMMU's MGAW of {iommu.Mgaw} bits");
        return reasons;
    }
}
