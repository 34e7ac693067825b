using System.Runtime.InteropServices;

namespace Engine.Iommu;

/// <summary>
/// A root-table entry (128 bits, 256 per table, indexed by bus). Legacy: lo bit 0 P, lo 63:12 the
/// context-table pointer. Scalable mode: lo covers devfn 0x00–0x7f, hi devfn 0x80–0xff, each with
/// its own P bit 0 and pointer 63:12 (SPEC.md §2.6).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal readonly record struct RootEntry
{
    /// <summary>Bytes per entry.</summary>
    public const int Size = 16;

    /// <summary>Present (bit 0 of each half).</summary>
    public const ulong PresentBit = 1;

    /// <summary>Pointer bits 63:12.</summary>
    public const ulong PointerMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>Low qword.</summary>
    [FieldOffset(0)] public readonly ulong Lo;

    /// <summary>High qword.</summary>
    [FieldOffset(8)] public readonly ulong Hi;

    /// <summary>Wraps raw values.</summary>
    public RootEntry(ulong lo, ulong hi)
    {
        Lo = lo;
        Hi = hi;
    }

    /// <summary>Device functions each half of a scalable-mode root entry covers (lo 0x00–0x7f, hi 0x80–0xff).</summary>
    public const int ScalableHalfDevFns = 0x80;

    /// <summary>A legacy root entry pointing at <paramref name="contextTable"/>.</summary>
    public static RootEntry Legacy(ulong contextTable) => new(PresentHalf(contextTable), 0);

    /// <summary>A scalable-mode root entry; a zero pointer leaves that half not present.</summary>
    public static RootEntry Scalable(ulong lowerContextTable, ulong upperContextTable) => new(
        lowerContextTable == 0 ? 0 : PresentHalf(lowerContextTable),
        upperContextTable == 0 ? 0 : PresentHalf(upperContextTable));

    /// <summary>One present half (a legacy lo, or either scalable half) pointing at <paramref name="contextTable"/>.</summary>
    public static ulong PresentHalf(ulong contextTable) => (contextTable & PointerMask) | PresentBit;

    /// <summary>Legacy: the entry is present (lo bit 0).</summary>
    public bool Present => IsPresent(Lo);

    /// <summary>Legacy: the context table of the bus (lo 63:12), indexed by devfn.</summary>
    public ulong ContextTablePointer => ContextTablePointerOf(Lo);

    /// <summary>Scalable mode: the lower context table (devfn 0x00–0x7f) is present (lo bit 0).</summary>
    public bool LowerPresent => IsPresent(Lo);

    /// <summary>Scalable mode: the upper context table (devfn 0x80–0xff) is present (hi bit 0).</summary>
    public bool UpperPresent => IsPresent(Hi);

    /// <summary>Scalable mode: the lower context table, devfn 0x00–0x7f (lo 63:12).</summary>
    public ulong LowerContextTablePointer => ContextTablePointerOf(Lo);

    /// <summary>Scalable mode: the upper context table, devfn 0x80–0xff (hi 63:12).</summary>
    public ulong UpperContextTablePointer => ContextTablePointerOf(Hi);

    /// <summary>Whether one half (a legacy lo, or either scalable half) has its P bit (bit 0) set.</summary>
    public static bool IsPresent(ulong half) => (half & PresentBit) != 0;

    /// <summary>The context-table pointer of one half (bits 63:12).</summary>
    public static ulong ContextTablePointerOf(ulong half) => half & PointerMask;

    /// <summary>Scalable mode: whether <paramref name="devFn"/> is served by the upper half (hi, devfn 0x80–0xff).</summary>
    public static bool IsUpperHalf(byte devFn) => devFn >= ScalableHalfDevFns;

    /// <summary>Scalable mode: the byte offset in the root entry of the half that serves <paramref name="devFn"/> (0 lo, 8 hi).</summary>
    public static int ScalableHalfOffset(byte devFn) => IsUpperHalf(devFn) ? sizeof(ulong) : 0;

    /// <summary>Reserved bits of one half: 11:1 and the address bits at or above the host width.</summary>
    public static ulong ReservedMask(int hostAddressWidth) => 0xFFEUL | ~((1UL << hostAddressWidth) - 1);
}

/// <summary>
/// A legacy context entry (128 bits, indexed by devfn): lo P 0, FPD 1, TT 3:2, SLPTPTR 63:12;
/// hi AW 2:0, AVL 6:3, DID 23:8 (SPEC.md §2.6).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal readonly record struct ContextEntry
{
    /// <summary>Bytes per entry.</summary>
    public const int Size = 16;

    /// <summary>SLPTPTR, lo bits 63:12.</summary>
    public const ulong SlptPtrMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>TT = 0: untranslated requests only, through the second-level table.</summary>
    public const int TranslationTypeUntranslated = 0;

    /// <summary>TT = 1: untranslated and translation requests (device TLB).</summary>
    public const int TranslationTypeAll = 1;

    /// <summary>TT = 2: pass-through.</summary>
    public const int TranslationTypePassThrough = 2;

    /// <summary>Low qword.</summary>
    [FieldOffset(0)] public readonly ulong Lo;

    /// <summary>High qword.</summary>
    [FieldOffset(8)] public readonly ulong Hi;

    /// <summary>Wraps raw values.</summary>
    public ContextEntry(ulong lo, ulong hi)
    {
        Lo = lo;
        Hi = hi;
    }

    /// <summary>Present.</summary>
    public bool Present => (Lo & 1) != 0;

    /// <summary>Fault processing disable.</summary>
    public bool Fpd => (Lo & 2) != 0;

    /// <summary>Translation type.</summary>
    public int TranslationType => (int)((Lo >> 2) & 3);

    /// <summary>Second-level page-table pointer.</summary>
    public ulong SlptPtr => Lo & SlptPtrMask;

    /// <summary>Address width code (agaw).</summary>
    public int Aw => (int)(Hi & 7);

    /// <summary>Domain id.</summary>
    public ushort Did => (ushort)(Hi >> 8);

    /// <summary>Builds a present entry.</summary>
    public static ContextEntry Create(ulong slptPtr, int aw, ushort did, int translationType = TranslationTypeUntranslated, bool fpd = false) =>
        new((slptPtr & SlptPtrMask) | ((ulong)(translationType & 3) << 2) | (fpd ? 2UL : 0) | 1, (ulong)(uint)(aw & 7) | ((ulong)did << 8));

    /// <summary>Reserved bits of the low qword: 11:4 and the address bits at or above the host width.</summary>
    public static ulong ReservedMaskLo(int hostAddressWidth) => 0xFF0UL | ~((1UL << hostAddressWidth) - 1);

    /// <summary>Reserved bits of the high qword: 7 and 63:24.</summary>
    public const ulong ReservedMaskHi = 0xFFFF_FFFF_FF00_0080UL;
}

/// <summary>
/// A scalable-mode context entry (256 bits, 128 per table, indexed by devfn &amp; 0x7f): qw0 P 0, FPD 1,
/// DTE 2, PASIDE 3, PRE 4, PDTS 11:9, PASID-directory pointer 63:12; qw1 RID_PASID 19:0 (SPEC.md §2.6).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal readonly record struct ScalableContextEntry
{
    /// <summary>Bytes per entry.</summary>
    public const int Size = 32;

    /// <summary>PASIDDIRPTR, qw0 bits 63:12.</summary>
    public const ulong PasidDirectoryPointerMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>qw0.</summary>
    [FieldOffset(0)] public readonly ulong Qw0;

    /// <summary>qw1.</summary>
    [FieldOffset(8)] public readonly ulong Qw1;

    /// <summary>qw2 (reserved).</summary>
    [FieldOffset(16)] public readonly ulong Qw2;

    /// <summary>qw3 (reserved).</summary>
    [FieldOffset(24)] public readonly ulong Qw3;

    /// <summary>Wraps raw values.</summary>
    public ScalableContextEntry(ulong qw0, ulong qw1, ulong qw2 = 0, ulong qw3 = 0)
    {
        Qw0 = qw0;
        Qw1 = qw1;
        Qw2 = qw2;
        Qw3 = qw3;
    }

    /// <summary>Present.</summary>
    public bool Present => (Qw0 & 1) != 0;

    /// <summary>Fault processing disable.</summary>
    public bool Fpd => (Qw0 & 2) != 0;

    /// <summary>Device-TLB enable.</summary>
    public bool Dte => (Qw0 & 4) != 0;

    /// <summary>PASID enable: requests with PASID are allowed.</summary>
    public bool PasidEnable => (Qw0 & 8) != 0;

    /// <summary>Page-request enable.</summary>
    public bool PageRequestEnable => (Qw0 & 16) != 0;

    /// <summary>PASID-directory size code: 2^(PDTS + 7) directory entries.</summary>
    public int Pdts => (int)((Qw0 >> 9) & 7);

    /// <summary>PASID-directory pointer.</summary>
    public ulong PasidDirectoryPointer => Qw0 & PasidDirectoryPointerMask;

    /// <summary>Entries of the PASID directory: 2^(PDTS + 7).</summary>
    public uint PasidDirectoryEntries => 1u << (Pdts + 7);

    /// <summary>The PASID used for requests without one.</summary>
    public uint RidPasid => (uint)(Qw1 & 0xF_FFFF);

    /// <summary>Builds a present entry.</summary>
    public static ScalableContextEntry Create(ulong pasidDirectory, int pdts, uint ridPasid = 0, bool pasidEnable = false, bool pageRequestEnable = false, bool deviceTlbEnable = false, bool fpd = false) =>
        new((pasidDirectory & PasidDirectoryPointerMask) | ((ulong)(pdts & 7) << 9) | (pageRequestEnable ? 16UL : 0) | (pasidEnable ? 8UL : 0)
            | (deviceTlbEnable ? 4UL : 0) | (fpd ? 2UL : 0) | 1, ridPasid & 0xF_FFFF);

    /// <summary>Reserved bits of qw0: 8:5 and the address bits at or above the host width.</summary>
    public static ulong ReservedMaskQw0(int hostAddressWidth) => 0x1E0UL | ~((1UL << hostAddressWidth) - 1);

    /// <summary>Reserved bits of qw1: 63:21 (QEMU's mask).</summary>
    public const ulong ReservedMaskQw1 = 0xFFFF_FFFF_FFE0_0000UL;

    /// <summary>
    /// The index of <paramref name="devFn"/>'s entry in its half-table (devfn &amp; 0x7f): the root entry's
    /// lower or upper half (<see cref="RootEntry.IsUpperHalf"/>) picks the table, this the entry.
    /// </summary>
    public static int IndexOf(byte devFn) => devFn & (RootEntry.ScalableHalfDevFns - 1);
}

/// <summary>A PASID-directory entry (64 bits, indexed by PASID &gt;&gt; 6): P 0, FPD 1, PASID-table pointer 63:12.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal readonly record struct PasidDirectoryEntry
{
    /// <summary>Bytes per entry.</summary>
    public const int Size = 8;

    /// <summary>PASIDs per PASID table, the span of one directory entry (64).</summary>
    public const int PasidsPerTable = 64;

    /// <summary>The directory entry of <paramref name="pasid"/>: PASID bits 19:6.</summary>
    public static uint IndexOf(uint pasid) => pasid / PasidsPerTable;

    /// <summary>PASIDPTR, bits 63:12.</summary>
    public const ulong PasidTablePointerMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>The raw value.</summary>
    [FieldOffset(0)] public readonly ulong Value;

    /// <summary>Wraps a raw value.</summary>
    public PasidDirectoryEntry(ulong value) => Value = value;

    /// <summary>Present.</summary>
    public bool Present => (Value & 1) != 0;

    /// <summary>Fault processing disable.</summary>
    public bool Fpd => (Value & 2) != 0;

    /// <summary>PASID-table pointer.</summary>
    public ulong PasidTablePointer => Value & PasidTablePointerMask;

    /// <summary>Builds a present entry.</summary>
    public static PasidDirectoryEntry Create(ulong pasidTable, bool fpd = false) => new((pasidTable & PasidTablePointerMask) | (fpd ? 2UL : 0) | 1);

    /// <summary>Reserved bits: 11:2 and the address bits at or above the host width.</summary>
    public static ulong ReservedMask(int hostAddressWidth) => 0xFFCUL | ~((1UL << hostAddressWidth) - 1);
}
