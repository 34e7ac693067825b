using System.Runtime.InteropServices;

namespace Engine.Paging;

/// <summary>
/// A VT-d second-stage (second-level) paging entry, the IOMMU's view of the same 64 bits
/// (SPEC.md §2.4; VT-d spec §9.8).
/// </summary>
/// <remarks>
/// <code>
/// 63   62  61..52  51.......12  11   10   9 8  7   6    5..3  2 1 0
/// ign  TM  ign     addr         SNP  ign  D A  PS  IPAT  EMT   X W R
/// </code>
/// There is no present bit: an entry is present iff R or W is set. SNP is leaf-only and reserved
/// without ECAP.SC; TM is leaf-only and reserved without ECAP.DT; PS is reserved in PML4E/PML5E.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal readonly record struct SlPte
{
    /// <summary>Read (bit 0).</summary>
    public const ulong ReadBit = 1UL << 0;

    /// <summary>Write (bit 1).</summary>
    public const ulong WriteBit = 1UL << 1;

    /// <summary>Execute (bit 2): honoured only with ECAP.ERS and SSEE.</summary>
    public const ulong ExecuteBit = 1UL << 2;

    /// <summary>Extended memory type, bits 5:3 (leaf).</summary>
    public const ulong EmtMask = 7UL << 3;

    /// <summary>Ignore PAT (bit 6, leaf).</summary>
    public const ulong IpatBit = 1UL << 6;

    /// <summary>Page size (bit 7) in an SS-PDE / SS-PDPTE.</summary>
    public const ulong PageSizeBit = 1UL << 7;

    /// <summary>Accessed (bit 8), updated only with SSADE.</summary>
    public const ulong AccessedBit = 1UL << 8;

    /// <summary>Dirty (bit 9), updated only with SSADE.</summary>
    public const ulong DirtyBit = 1UL << 9;

    /// <summary>Snoop (bit 11, leaf).</summary>
    public const ulong SnoopBit = 1UL << 11;

    /// <summary>Address bits 51:12.</summary>
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>Transient mapping (bit 62, leaf, with ECAP.DT).</summary>
    public const ulong TransientMappingBit = 1UL << 62;

    /// <summary>The raw 64-bit value.</summary>
    [FieldOffset(0)]
    public readonly ulong Value;

    /// <summary>Wraps a raw value.</summary>
    public SlPte(ulong value) => Value = value;

    /// <summary>Present to VT-d: R or W.</summary>
    public bool IsPresent => (Value & (ReadBit | WriteBit)) != 0;

    /// <summary>R and W (X is reported only where execute requests are honoured).</summary>
    public Access Permissions => (Access)(Value & (ReadBit | WriteBit));

    /// <summary>Bit 7.</summary>
    public bool IsLargePage => (Value & PageSizeBit) != 0;

    /// <summary>Bit 11.</summary>
    public bool Snoop => (Value & SnoopBit) != 0;

    /// <summary>Address bits 51:12.</summary>
    public ulong Address => Value & AddressMask;

    /// <summary>A non-leaf entry pointing at <paramref name="tableHpa"/> with R|W, as the Linux driver builds them.</summary>
    public static SlPte Table(ulong tableHpa) => new((tableHpa & AddressMask) | ReadBit | WriteBit);

    /// <summary>A leaf mapping <paramref name="frameHpa"/> with <paramref name="permissions"/> (R/W), PS for large pages, SNP if asked.</summary>
    public static SlPte Leaf(ulong frameHpa, Access permissions, PageSize size, bool snoop = false)
    {
        ulong value = (frameHpa & AddressMask) | ((ulong)permissions & (ReadBit | WriteBit));
        if (size != PageSize.Size4K)
            value |= PageSizeBit;
        if (snoop)
            value |= SnoopBit;
        return new SlPte(value);
    }

    /// <inheritdoc/>
    public override string ToString() => $"SL 0x{Value:x16}";
}
