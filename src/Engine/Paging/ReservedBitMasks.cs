using System.Runtime.CompilerServices;

namespace Engine.Paging;

/// <summary>
/// Must-be-zero bits of a paging entry, indexed [PS][level − 1] like KVM's
/// <c>rsvd_bits_mask[2][PT64_ROOT_MAX_LEVEL]</c> (PS = bit 7 of the entry, taken as 0 at level 1).
/// </summary>
/// <remarks>
/// A PS bit where no large page is allowed (PML4E, PML5E, or a size the walker does not support)
/// is expressed by putting bit 7 in the [1][level − 1] mask, so one AND per entry checks everything.
/// </remarks>
[InlineArray(Count)]
internal struct ReservedBitMasks
{
    /// <summary>2 PS values × 5 levels.</summary>
    public const int Count = 10;

    /// <summary>Maximum levels of a table (PT64_ROOT_MAX_LEVEL).</summary>
    public const int MaxLevels = 5;

    private ulong _element0;

    /// <summary>The mask for an entry with PS = <paramref name="ps"/> (0 or 1) at <paramref name="level"/> (1..5).</summary>
    public readonly ulong Get(int ps, int level)
    {
        ValidateIndex(ps, level);
        return this[ps * MaxLevels + level - 1];
    }

    /// <summary>Sets the mask for [<paramref name="ps"/>][<paramref name="level"/> − 1].</summary>
    public void Set(int ps, int level, ulong mask)
    {
        ValidateIndex(ps, level);
        this[ps * MaxLevels + level - 1] = mask;
    }

    /// <summary>Whether every one of the ten masks contains all of <paramref name="bits"/>.</summary>
    public readonly bool AllContain(ulong bits)
    {
        for (int i = 0; i < Count; i++)
        {
            if ((this[i] & bits) != bits)
                return false;
        }
        return true;
    }

    /// <summary>Bits <paramref name="low"/>..<paramref name="high"/> inclusive (KVM's <c>rsvd_bits</c>); 0 when high &lt; low.</summary>
    public static ulong Bits(int low, int high) =>
        high < low ? 0 : (ulong.MaxValue >> (63 - high)) & ~((1UL << low) - 1);

    private static void ValidateIndex(int ps, int level)
    {
        if (ps is not (0 or 1))
            throw new ArgumentOutOfRangeException(nameof(ps), ps, "PS must be 0 or 1.");
        if (level is < 1 or > MaxLevels)
            throw new ArgumentOutOfRangeException(nameof(level), level, "The level must be 1..5.");
    }

    /// <summary>
    /// KVM's EPT must-be-zero masks (<c>__reset_rsvds_bits_mask_ept</c>): address bits at and above
    /// <paramref name="physicalAddressWidth"/>, bits 7:3 in PML4E/PML5E, 6:3 in non-leaf PDPTE/PDE,
    /// the low address bits of large pages, PS where <paramref name="maxHugePageLevel"/> forbids it,
    /// and with <paramref name="bit11Reserved"/> bit 11 everywhere (patch 24 of the series).
    /// </summary>
    public static ReservedBitMasks ForEpt(int physicalAddressWidth, int maxHugePageLevel, bool bit11Reserved)
    {
        if (physicalAddressWidth is < 32 or > 52)
            throw new ArgumentOutOfRangeException(nameof(physicalAddressWidth), physicalAddressWidth, "The physical address width must be 32..52 bits.");
        if (maxHugePageLevel is < 1 or > 3)
            throw new ArgumentOutOfRangeException(nameof(maxHugePageLevel), maxHugePageLevel, "The max huge-page level must be 1 (4K), 2 (2M) or 3 (1G).");
        ulong high = Bits(physicalAddressWidth, 51);
        ulong b11 = bit11Reserved ? EptEntry.Bit11 : 0;
        var m = new ReservedBitMasks();
        m.Set(0, 5, high | Bits(3, 7) | b11);
        m.Set(0, 4, high | Bits(3, 7) | b11);
        m.Set(0, 3, high | Bits(3, 6) | b11);
        m.Set(0, 2, high | Bits(3, 6) | b11);
        m.Set(0, 1, high | b11);
        m.Set(1, 5, m.Get(0, 5));
        m.Set(1, 4, m.Get(0, 4));
        m.Set(1, 3, high | Bits(12, 29) | b11 | (maxHugePageLevel < 3 ? EptEntry.PageSizeBit : 0));
        m.Set(1, 2, high | Bits(12, 20) | b11 | (maxHugePageLevel < 2 ? EptEntry.PageSizeBit : 0));
        m.Set(1, 1, m.Get(0, 1));
        return m;
    }

    /// <summary>
    /// VT-d second-stage must-be-zero masks (SPEC.md §2.4, QEMU's per-level masks): address bits at
    /// and above the host address width; SNP (11) and TM (62) in non-leaf entries, and in leaves
    /// when the unit lacks snoop control / device TLBs; PS in PML4E/PML5E and in PDE/PDPTE beyond
    /// <paramref name="superpageLevel"/> (Linux's <c>iommu_superpage</c>: 0 = 4K, 1 = 2M, 2 = 1G);
    /// the low address bits of large leaves.
    /// </summary>
    public static ReservedBitMasks ForSecondStage(int hostAddressWidth, int superpageLevel, bool snoopControl, bool deviceTlb)
    {
        if (hostAddressWidth is < 32 or > 52)
            throw new ArgumentOutOfRangeException(nameof(hostAddressWidth), hostAddressWidth, "The host address width must be 32..52 bits.");
        if (superpageLevel is < 0 or > 2)
            throw new ArgumentOutOfRangeException(nameof(superpageLevel), superpageLevel, "The superpage level must be 0 (4K), 1 (2M) or 2 (1G).");
        ulong high = Bits(hostAddressWidth, 51);
        ulong nonLeaf = high | SlPte.SnoopBit | SlPte.TransientMappingBit;
        ulong leaf = high | (snoopControl ? 0 : SlPte.SnoopBit) | (deviceTlb ? 0 : SlPte.TransientMappingBit);
        var m = new ReservedBitMasks();
        m.Set(0, 5, nonLeaf);
        m.Set(0, 4, nonLeaf);
        m.Set(0, 3, nonLeaf);
        m.Set(0, 2, nonLeaf);
        m.Set(0, 1, leaf);
        m.Set(1, 5, nonLeaf | SlPte.PageSizeBit);
        m.Set(1, 4, nonLeaf | SlPte.PageSizeBit);
        m.Set(1, 3, leaf | Bits(12, 29) | (superpageLevel < 2 ? SlPte.PageSizeBit : 0));
        m.Set(1, 2, leaf | Bits(12, 20) | (superpageLevel < 1 ? SlPte.PageSizeBit : 0));
        m.Set(1, 1, leaf);
        return m;
    }
}
