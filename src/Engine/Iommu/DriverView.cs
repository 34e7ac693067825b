using System.Numerics;

namespace Engine.Iommu;

/// <summary>
/// What the Linux Intel IOMMU driver derives from CAP and ECAP (SPEC.md §2.3; <c>iommu.c</c>
/// <c>__iommu_calculate_sagaw</c>, <c>__iommu_calculate_agaw</c>, <c>domain_update_iommu_superpage</c>,
/// <c>iommu_paging_structure_coherency</c>, <c>sm_supported</c>).
/// </summary>
/// <param name="Cap">The capability register.</param>
/// <param name="Ecap">The extended capability register.</param>
/// <param name="ScalableModeEnabled">The driver's scalable-mode switch (<c>intel_iommu=sm_on</c>); scalable mode is used only when this and ECAP.SMTS hold.</param>
public sealed record DriverView(CapabilityRegister Cap, ExtendedCapabilityRegister Ecap, bool ScalableModeEnabled = true)
{
    /// <summary>The width the driver asks the unit for when it picks <see cref="Agaw"/> (<c>DEFAULT_DOMAIN_ADDRESS_WIDTH</c>).</summary>
    public const int DefaultDomainAddressWidth = 57;

    /// <summary>Scalable mode in use (<c>sm_supported</c>): the switch and ECAP.SMTS.</summary>
    public bool ScalableMode => ScalableModeEnabled && Ecap.ScalableMode;

    /// <summary>SAGAW the first-level tables support: 4-level always, 5-level with CAP.FL5LP.</summary>
    public int FirstLevelSagaw => 1 << 2 | (Cap.Fl5lp ? 1 << 3 : 0);

    /// <summary>
    /// The SAGAW mask the driver uses (<c>__iommu_calculate_sagaw</c>): CAP.SAGAW in legacy mode or
    /// without FLTS; the first-level mask without SLTS; otherwise both narrowed to what they share.
    /// </summary>
    public int EffectiveSagaw
    {
        get
        {
            int secondLevel = Cap.Sagaw;
            if (!ScalableMode || !Ecap.Flts)
                return secondLevel;
            if (!Ecap.Slts)
                return FirstLevelSagaw;
            return FirstLevelSagaw & secondLevel;
        }
    }

    /// <summary>The agaw the driver picks: the widest supported at most 57 bits, or −1 when none (the unit is then ignored).</summary>
    public int Agaw => CalculateAgaw(DefaultDomainAddressWidth);

    /// <summary>The widest agaw up to 64 bits (<c>msagaw</c>, used for pass-through AW).</summary>
    public int Msagaw => CalculateAgaw(64);

    /// <summary>Address width of <see cref="Agaw"/> in bits, or −1.</summary>
    public int AgawWidth => Agaw < 0 ? -1 : AgawMath.AgawToWidth(Agaw);

    /// <summary>MGAW in bits.</summary>
    public int Mgaw => Cap.Mgaw;

    /// <summary>
    /// Second-stage superpage level (<c>iommu_superpage</c>): fls of SLLPS masked to 2M|1G, so
    /// 0 = 4K only, 1 = up to 2M, 2 = up to 1G.
    /// </summary>
    public int SuperpageLevel => 32 - BitOperations.LeadingZeroCount((uint)(Cap.Sllps & 0x3));

    /// <summary>Number of domain ids.</summary>
    public int NumberOfDomains => Cap.NumberOfDomains;

    /// <summary>Paging-structure coherency: ECAP.SMPWC in scalable mode, ECAP.C otherwise.</summary>
    public bool PagingStructureCoherency => ScalableMode ? Ecap.Smpwc : Ecap.Coherent;

    /// <summary>Fault-recording registers.</summary>
    public int FaultRegisters => Cap.NumberOfFaultRegisters;

    /// <summary>Byte offset of the fault-recording registers.</summary>
    public int FaultRegisterOffset => Cap.FaultRecordingOffset;

    /// <summary>Byte offset of the IOTLB registers (IVA; IOTLB_REG at +8).</summary>
    public int IotlbRegisterOffset => Ecap.IotlbRegisterOffset;

    /// <summary>PASIDs usable: scalable mode and ECAP.PASID (<c>pasid_supported</c>).</summary>
    public bool PasidSupported => ScalableMode && Ecap.Pasid;

    /// <summary>Nested translation usable: scalable mode and ECAP.NEST.</summary>
    public bool NestedSupported => ScalableMode && Ecap.Nested;

    /// <summary>Second-stage A/D usable (<c>ssads_supported</c>): scalable mode and SLADS.</summary>
    public bool SsadsSupported => ScalableMode && Ecap.Slads;

    private int CalculateAgaw(int maxGaw)
    {
        int sagaw = EffectiveSagaw;
        for (int agaw = AgawMath.WidthToAgaw(maxGaw); agaw >= 0; agaw--)
        {
            if ((sagaw & (1 << agaw)) != 0)
                return agaw;
        }
        return -1;
    }
}

/// <summary>The driver's agaw / width / level conversions (SPEC.md §2.3).</summary>
internal static class AgawMath
{
    /// <summary><c>agaw_to_level</c>: agaw + 2.</summary>
    public static int AgawToLevel(int agaw) => agaw + 2;

    /// <summary><c>agaw_to_width</c>: min(30 + 9·agaw, 64).</summary>
    public static int AgawToWidth(int agaw) => Math.Min(30 + 9 * agaw, 64);

    /// <summary><c>width_to_agaw</c>: ceil((width − 30) / 9).</summary>
    public static int WidthToAgaw(int width) => (width - 30 + 8) / 9;

    /// <summary><c>guestwidth_to_adjustwidth</c>: rounds a width up to 12 + 9k, capped at 64 (40 → 48, 48 → 48).</summary>
    public static int GuestWidthToAdjustWidth(int gaw)
    {
        int r = (gaw - 12) % 9;
        int adjusted = r == 0 ? gaw : gaw + 9 - r;
        return Math.Min(adjusted, 64);
    }
}
