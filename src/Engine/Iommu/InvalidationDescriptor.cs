namespace Engine.Iommu;

/// <summary>Queued-invalidation descriptor types (qw0 bits 3:0; SPEC.md §2.8).</summary>
internal enum InvalidationDescriptorType : byte
{
    /// <summary>Context-cache invalidation.</summary>
    ContextCache = 1,
    /// <summary>IOTLB invalidation (DID-based).</summary>
    Iotlb = 2,
    /// <summary>Device-TLB invalidation.</summary>
    DeviceTlb = 3,
    /// <summary>Interrupt-entry-cache invalidation.</summary>
    InterruptEntryCache = 4,
    /// <summary>Invalidation wait.</summary>
    Wait = 5,
    /// <summary>PASID-based IOTLB invalidation.</summary>
    PasidIotlb = 6,
    /// <summary>PASID-cache invalidation.</summary>
    PasidCache = 7,
    /// <summary>PASID-based device-TLB invalidation.</summary>
    PasidDeviceTlb = 8,
    /// <summary>Page-group response.</summary>
    PageGroupResponse = 9,
}

/// <summary>
/// One invalidation descriptor (128 bits; 256-bit descriptors add qw2/qw3, which these types leave
/// reserved). Builders for the descriptors the Linux driver submits, and the reserved-bit masks the
/// unit checks (QEMU's <c>VTD_INV_DESC_*_RSVD</c> masks).
/// </summary>
internal readonly record struct InvalidationDescriptor(ulong Qw0, ulong Qw1, ulong Qw2 = 0, ulong Qw3 = 0)
{
    /// <summary>The type field (bits 3:0; the extended type bits 11:9 must be zero).</summary>
    public InvalidationDescriptorType Type => (InvalidationDescriptorType)(Qw0 & 0xF);

    /// <summary>Bits 5:4: the granularity field of the context-cache, IOTLB and PASID descriptors.</summary>
    public int Granularity => (int)((Qw0 >> 4) & 3);

    /// <summary>Bits 31:16: the domain id of the context-cache, IOTLB and PASID descriptors (the source id in a PASID device-TLB one).</summary>
    public ushort Did => (ushort)(Qw0 >> 16);

    // qw0 flag bits that mean different things by type.
    private const ulong WaitIfBit = 1UL << 4, WaitSwBit = 1UL << 5, ResponsePasidPresentBit = 1UL << 4;
    // qw1: the address field shared by the IOTLB and device-TLB types, and the low fields beside it.
    private const ulong AddressMaskBits = 0x3F, PageAddressMask = ~0xFFFUL, WaitStatusAddressMask = ~3UL;
    private const ulong DeviceTlbSBit = 1, PasidDeviceTlbSBit = 1UL << 11, ResponseLastInGroupBit = 1UL << 2;
    private const int PasidShift = 32, RequesterIdShift = 16, ResponseCodeShift = 12, GroupIndexShift = 3;
    private const ulong PasidBits = 0xF_FFFF, ResponseCodeBits = 0xF, GroupIndexBits = 0x1FF;

    /// <summary>qw1 bits 63:12: the page address of an IOTLB, PASID-IOTLB, device-TLB or PASID device-TLB descriptor.</summary>
    public ulong Address => Qw1 & PageAddressMask;

    /// <summary>qw1 bits 5:0: AM, the address mask (2^AM pages from <see cref="Address"/>) of an IOTLB or PASID-IOTLB descriptor.</summary>
    public int AddressMask => (int)(Qw1 & AddressMaskBits);

    /// <summary>qw0 bits 51:32: the PASID of a PASID-IOTLB, PASID-cache, PASID device-TLB or page-group-response descriptor.</summary>
    public uint Pasid => (uint)((Qw0 >> PasidShift) & PasidBits);

    /// <summary>Device-TLB (type 3) qw0 bits 47:32: SID, the device whose TLB is invalidated.</summary>
    public ushort DeviceTlbSourceId => (ushort)(Qw0 >> PasidShift);

    /// <summary>Device-TLB (type 3) qw1 bit 0: S, the size is encoded in the low address bits.</summary>
    public bool DeviceTlbSizeBit => (Qw1 & DeviceTlbSBit) != 0;

    /// <summary>PASID device-TLB (type 8) qw0 bits 31:16: SID, the device whose TLB is invalidated.</summary>
    public ushort PasidDeviceTlbSourceId => (ushort)(Qw0 >> RequesterIdShift);

    /// <summary>PASID device-TLB (type 8) qw1 bit 11: S, the size is encoded in the low address bits.</summary>
    public bool PasidDeviceTlbSizeBit => (Qw1 & PasidDeviceTlbSBit) != 0;

    /// <summary>Wait (type 5) qw0 bit 4: IF, raise the invalidation-completion interrupt.</summary>
    public bool WaitInterrupt => (Qw0 & WaitIfBit) != 0;

    /// <summary>Wait (type 5) qw0 bit 5: SW, write <see cref="WaitStatusData"/> to <see cref="WaitStatusAddress"/>.</summary>
    public bool WaitStatusWrite => (Qw0 & WaitSwBit) != 0;

    /// <summary>Wait (type 5) qw0 bits 63:32: the status data.</summary>
    public uint WaitStatusData => (uint)(Qw0 >> PasidShift);

    /// <summary>Wait (type 5) qw1 bits 63:2: the 4-byte-aligned status address.</summary>
    public ulong WaitStatusAddress => Qw1 & WaitStatusAddressMask;

    /// <summary>Page-group response (type 9) qw0 bit 4: the response carries a PASID.</summary>
    public bool ResponsePasidPresent => (Qw0 & ResponsePasidPresentBit) != 0;

    /// <summary>Page-group response (type 9) qw0 bits 15:12: the response code.</summary>
    public PageResponseCode ResponseCode => (PageResponseCode)((Qw0 >> ResponseCodeShift) & ResponseCodeBits);

    /// <summary>Page-group response (type 9) qw0 bits 31:16: RID, the requester answered.</summary>
    public ushort ResponseRequesterId => (ushort)(Qw0 >> RequesterIdShift);

    /// <summary>Page-group response (type 9) qw1 bits 11:3: the page-request group index.</summary>
    public ushort ResponseGroupIndex => (ushort)((Qw1 >> GroupIndexShift) & GroupIndexBits);

    /// <summary>Page-group response (type 9) qw1 bit 2: LPIG, the last page request of the group.</summary>
    public bool ResponseLastInGroup => (Qw1 & ResponseLastInGroupBit) != 0;

    /// <summary>Context-cache invalidation: granularity 1 global, 2 domain, 3 device.</summary>
    public static InvalidationDescriptor ContextCache(int granularity, ushort did = 0, ushort sourceId = 0, int functionMask = 0) =>
        new(1 | ((ulong)(granularity & 3) << 4) | ((ulong)did << 16) | ((ulong)sourceId << 32) | ((ulong)(functionMask & 3) << 48), 0);

    /// <summary>IOTLB invalidation: granularity 1 global, 2 domain, 3 page (address, AM, IH).</summary>
    public static InvalidationDescriptor Iotlb(int granularity, ushort did = 0, ulong address = 0, int am = 0, bool ih = false) =>
        new(2 | ((ulong)(granularity & 3) << 4) | ((ulong)did << 16), (address & ~0xFFFUL) | (ih ? 1UL << 6 : 0) | (ulong)(uint)(am & 0x3F));

    /// <summary>Device-TLB invalidation for <paramref name="sourceId"/>; S = 1 with the size encoded in the low address bits.</summary>
    public static InvalidationDescriptor DeviceTlb(ushort sourceId, ulong address, bool sizeBit = false, int queueDepth = 0) =>
        new(3 | ((ulong)(queueDepth & 0x1F) << 16) | ((ulong)sourceId << 32), (address & ~0xFFFUL) | (sizeBit ? 1UL : 0));

    /// <summary>Invalidation wait: status write of <paramref name="statusData"/> to <paramref name="statusAddress"/> if asked, interrupt if asked, fence.</summary>
    public static InvalidationDescriptor Wait(ulong statusAddress, uint statusData, bool statusWrite = true, bool interrupt = false, bool fence = true) =>
        new(5 | (interrupt ? 1UL << 4 : 0) | (statusWrite ? 1UL << 5 : 0) | (fence ? 1UL << 6 : 0) | ((ulong)statusData << 32), statusAddress & ~3UL);

    /// <summary>PASID-based IOTLB invalidation: granularity 2 (all of a PASID) or 3 (pages within it).</summary>
    public static InvalidationDescriptor PasidIotlb(int granularity, ushort did, uint pasid, ulong address = 0, int am = 0, bool ih = false) =>
        new(6 | ((ulong)(granularity & 3) << 4) | ((ulong)did << 16) | ((ulong)(pasid & 0xF_FFFF) << 32), (address & ~0xFFFUL) | (ih ? 1UL << 6 : 0) | (ulong)(uint)(am & 0x3F));

    /// <summary>PASID-cache invalidation: granularity 0 domain, 1 PASID, 3 global.</summary>
    public static InvalidationDescriptor PasidCache(int granularity, ushort did = 0, uint pasid = 0) =>
        new(7 | ((ulong)(granularity & 3) << 4) | ((ulong)did << 16) | ((ulong)(pasid & 0xF_FFFF) << 32), 0);

    /// <summary>
    /// Reserved bits of qw0 and qw1 for <paramref name="type"/> (every bit no field of that type uses,
    /// including the extended-type bits 11:9); null for a type the unit does not accept.
    /// </summary>
    internal static (ulong Qw0, ulong Qw1)? ReservedMasks(InvalidationDescriptorType type) => type switch
    {
        // G 5:4, DID 31:16, SID 47:32, FM 49:48.
        InvalidationDescriptorType.ContextCache => (0xFFFC_0000_0000_FFC0UL, ulong.MaxValue),
        // G 5:4, DW 6, DR 7, DID 31:16 | ADDR 63:12, IH 6, AM 5:0.
        InvalidationDescriptorType.Iotlb => (0xFFFF_FFFF_0000_FF00UL, 0xF80UL),
        // PFSID 15:12 and 63:52, QDEP 20:16, SID 47:32 | ADDR 63:12, S 0.
        InvalidationDescriptorType.DeviceTlb => (0x000F_0000_FFE0_0FF0UL, 0xFFEUL),
        // G 4, IM 31:27, IIDX 47:32.
        InvalidationDescriptorType.InterruptEntryCache => (0xFFFF_0000_07FF_FFE0UL, ulong.MaxValue),
        // IF 4, SW 5, FN 6, PD 7, status data 63:32 | status address 63:2.
        InvalidationDescriptorType.Wait => (0xFFFF_FF00UL, 3UL),
        // G 5:4, DID 31:16, PASID 51:32 | ADDR 63:12, IH 6, AM 5:0.
        InvalidationDescriptorType.PasidIotlb => (0xFFF0_0000_0000_FFC0UL, 0xF80UL),
        // G 5:4, DID 31:16, PASID 51:32.
        InvalidationDescriptorType.PasidCache => (0xFFF0_0000_0000_FFC0UL, ulong.MaxValue),
        // QDEP 8:4, PFSID 15:12 and 63:52, SID 31:16, PASID 51:32 | ADDR 63:12, S 11, G 0.
        InvalidationDescriptorType.PasidDeviceTlb => (0xE00UL, 0x7FEUL),
        // PASID present 4, PDP 5, response code 15:12, RID 31:16, PASID 51:32 | LPIG 2, PRG index 11:3.
        InvalidationDescriptorType.PageGroupResponse => (0xFFF0_0000_0000_0FC0UL, 0xFFFF_FFFF_FFFF_F003UL),
        _ => null,
    };
}
