using System.Runtime.InteropServices;

namespace Engine.Iommu;

/// <summary>PASID-granular translation type (PGTT, PASID-entry bits 8:6).</summary>
internal enum Pgtt : byte
{
    /// <summary>First-level only (not modelled: such an entry faults as invalid).</summary>
    FirstLevel = 1,

    /// <summary>Second-level only: what paging and KVM domains use.</summary>
    SecondLevel = 2,

    /// <summary>Nested (not modelled: faults as invalid).</summary>
    Nested = 3,

    /// <summary>Pass-through.</summary>
    PassThrough = 4,
}

/// <summary>
/// A scalable-mode PASID-table entry (512 bits, 64 per table, indexed by PASID &amp; 0x3f), with the
/// fields Linux programs (SPEC.md §2.6): P 0, FPD 1, AW 4:2, PGTT 8:6, SSADE 9, SSPTPTR 63:12,
/// DID 79:64, PWSNP 87, PGSNP 88, SRE 128.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal readonly record struct PasidEntry
{
    /// <summary>Bytes per entry.</summary>
    public const int Size = 64;

    /// <summary>The entry of <paramref name="pasid"/> in its PASID table: PASID bits 5:0.</summary>
    public static uint IndexOf(uint pasid) => pasid % PasidDirectoryEntry.PasidsPerTable;

    /// <summary>SSPTPTR, qw0 bits 63:12.</summary>
    public const ulong SsptPtrMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>qw0.</summary>
    [FieldOffset(0)] public readonly ulong Qw0;

    /// <summary>qw1.</summary>
    [FieldOffset(8)] public readonly ulong Qw1;

    /// <summary>qw2.</summary>
    [FieldOffset(16)] public readonly ulong Qw2;

    /// <summary>Wraps raw values (qw3–qw7 are zero in every entry the model builds).</summary>
    public PasidEntry(ulong qw0, ulong qw1, ulong qw2 = 0)
    {
        Qw0 = qw0;
        Qw1 = qw1;
        Qw2 = qw2;
    }

    /// <summary>Present.</summary>
    public bool Present => (Qw0 & 1) != 0;

    /// <summary>Fault processing disable.</summary>
    public bool Fpd => (Qw0 & 2) != 0;

    /// <summary>Address width code (agaw: 2 = 48-bit/4-level, 3 = 57-bit/5-level).</summary>
    public int Aw => (int)((Qw0 >> 2) & 7);

    /// <summary>Translation type.</summary>
    public Pgtt Pgtt => (Pgtt)((Qw0 >> 6) & 7);

    /// <summary>Second-stage A/D enable.</summary>
    public bool Ssade => (Qw0 & (1UL << 9)) != 0;

    /// <summary>Second-stage page-table pointer.</summary>
    public ulong SsptPtr => Qw0 & SsptPtrMask;

    /// <summary>Domain id.</summary>
    public ushort Did => (ushort)Qw1;

    /// <summary>Page-walk snoop (bit 87).</summary>
    public bool Pwsnp => (Qw1 & (1UL << 23)) != 0;

    /// <summary>Page snoop (bit 88): every access through this entry snoops.</summary>
    public bool Pgsnp => (Qw1 & (1UL << 24)) != 0;

    /// <summary>Supervisor-request enable (bit 128).</summary>
    public bool Sre => (Qw2 & 1) != 0;

    /// <summary>A present second-level (PGTT 2) entry, as <c>intel_pasid_setup_second_level</c> writes it.</summary>
    public static PasidEntry SecondLevel(ulong ssptPtr, int aw, ushort did, bool pgsnp, bool pwsnp, bool ssade = false, bool fpd = false) =>
        new((ssptPtr & SsptPtrMask) | (ssade ? 1UL << 9 : 0) | ((ulong)Pgtt.SecondLevel << 6) | ((ulong)(aw & 7) << 2) | (fpd ? 2UL : 0) | 1,
            did | (pwsnp ? 1UL << 23 : 0) | (pgsnp ? 1UL << 24 : 0));

    /// <summary>A present pass-through (PGTT 4) entry.</summary>
    public static PasidEntry PassThrough(int aw, ushort did, bool fpd = false) =>
        new(((ulong)Pgtt.PassThrough << 6) | ((ulong)(aw & 7) << 2) | (fpd ? 2UL : 0) | 1, did);

    /// <summary>Reserved bits of qw0 checked by the model: 11:10 and the address bits at or above the host width.</summary>
    public static ulong ReservedMaskQw0(int hostAddressWidth) => 0xC00UL | ~((1UL << hostAddressWidth) - 1);
}
