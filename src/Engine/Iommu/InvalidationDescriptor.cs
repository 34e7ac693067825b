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
