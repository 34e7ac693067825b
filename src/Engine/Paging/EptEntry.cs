using System.Runtime.InteropServices;

namespace Engine.Paging;

/// <summary>
/// An EPT paging-structure entry as KVM's TDP MMU writes it (Intel SDM EPT format; SPEC.md §2.5).
/// </summary>
/// <remarks>
/// <code>
/// 63   62..60  59       58  57  56..52  51.......12  11  10  9 8  7  6    5..3  2 1 0
/// SVE  MMIOgen present* MW  HW  KVM sw  PFN / table  ign ign D A  PS IPAT  MT    X W R
/// </code>
/// Bits 52..63 are ignored by EPT and carry KVM software state; with the sharing series KVM's
/// "MMU present" marker moves from bit 11 to bit 59 so bit 11 stays 0 for VT-d (patch 24).
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal readonly record struct EptEntry
{
    /// <summary>Read (bit 0).</summary>
    public const ulong ReadBit = 1UL << 0;

    /// <summary>Write (bit 1).</summary>
    public const ulong WriteBit = 1UL << 1;

    /// <summary>Execute (bit 2).</summary>
    public const ulong ExecuteBit = 1UL << 2;

    /// <summary>R, W and X.</summary>
    public const ulong PermissionMask = ReadBit | WriteBit | ExecuteBit;

    /// <summary>Memory type field, bits 5:3 (leaf only).</summary>
    public const ulong MemoryTypeMask = 7UL << MemoryTypeShift;

    /// <summary>Position of the memory type field.</summary>
    public const int MemoryTypeShift = 3;

    /// <summary>Memory type write-back (6), what KVM uses for RAM without a vCPU (patch 26).</summary>
    public const ulong MemoryTypeWriteBack = 6;

    /// <summary>Memory type uncacheable (0), for MMIO.</summary>
    public const ulong MemoryTypeUncacheable = 0;

    /// <summary>Ignore PAT (bit 6, leaf only).</summary>
    public const ulong IgnorePatBit = 1UL << 6;

    /// <summary>Page size (bit 7) in a PDE or PDPTE: the entry maps a 2 MiB or 1 GiB page.</summary>
    public const ulong PageSizeBit = 1UL << 7;

    /// <summary>Accessed (bit 8) when A/D is enabled in the EPTP.</summary>
    public const ulong AccessedBit = 1UL << 8;

    /// <summary>Dirty (bit 9) when A/D is enabled in the EPTP.</summary>
    public const ulong DirtyBit = 1UL << 9;

    /// <summary>Bit 11: ignored by EPT, SNP to VT-d. KVM never sets it once the series is applied.</summary>
    public const ulong Bit11 = 1UL << 11;

    /// <summary>Address bits 51:12 (next table or page frame).</summary>
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>KVM "host writable" software bit (57).</summary>
    public const ulong HostWritableBit = 1UL << 57;

    /// <summary>KVM "MMU writable" software bit (58).</summary>
    public const ulong MmuWritableBit = 1UL << 58;

    /// <summary>KVM's software "MMU present" marker at bit 59 (CONFIG_HAVE_KVM_MMU_PRESENT_HIGH).</summary>
    public const ulong MmuPresentBit = 1UL << 59;

    /// <summary>Suppress #VE (bit 63).</summary>
    public const ulong SuppressVeBit = 1UL << 63;

    /// <summary>The raw 64-bit value.</summary>
    [FieldOffset(0)]
    public readonly ulong Value;

    /// <summary>Wraps a raw value.</summary>
    public EptEntry(ulong value) => Value = value;

    /// <summary>EPT-present: any of R, W, X.</summary>
    public bool IsPresent => (Value & PermissionMask) != 0;

    /// <summary>The R/W/X bits.</summary>
    public Access Permissions => (Access)(Value & PermissionMask);

    /// <summary>Bit 7.</summary>
    public bool IsLargePage => (Value & PageSizeBit) != 0;

    /// <summary>Memory type (bits 5:3).</summary>
    public ulong MemoryType => (Value & MemoryTypeMask) >> MemoryTypeShift;

    /// <summary>Address bits 51:12.</summary>
    public ulong Address => Value & AddressMask;

    /// <summary>An entry that points at the next table: R|W|X, as KVM makes non-leaf SPTEs.</summary>
    public static EptEntry Table(ulong tableHpa) => new((tableHpa & AddressMask) | PermissionMask | MmuPresentBit);

    /// <summary>
    /// A leaf for guest RAM as KVM builds it without a vCPU: permissions, WB memory type, IPAT,
    /// PS for a large page, and the MMU-present (and, when writable, host/MMU-writable) software bits.
    /// </summary>
    public static EptEntry Leaf(ulong frameHpa, Access permissions, PageSize size)
    {
        ulong value = (frameHpa & AddressMask) | ((ulong)permissions & PermissionMask)
            | (MemoryTypeWriteBack << MemoryTypeShift) | IgnorePatBit | MmuPresentBit | HostWritableBit;
        if ((permissions & Access.Write) != 0)
            value |= MmuWritableBit;
        if (size != PageSize.Size4K)
            value |= PageSizeBit;
        return new EptEntry(value);
    }

    /// <inheritdoc/>
    public override string ToString() => $"EPT 0x{Value:x16}";
}
