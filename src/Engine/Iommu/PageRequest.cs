namespace Engine.Iommu;

/// <summary>
/// A page request (PCIe PRI) as a unit queues it: the 256-bit descriptor Linux reads in
/// <c>struct page_req_dsc</c> — qw0: type 7:0 (1), PASID present 8, RID 31:16, PASID 51:32,
/// execute 52, privileged 53; qw1: read 0, write 1, last-in-group 2, PRG index 11:3, address 63:12.
/// </summary>
internal readonly record struct PageRequest(ushort SourceId, ulong Address, bool Read, bool Write, bool Execute, bool LastInGroup, ushort GroupIndex, uint Pasid = TranslationRequest.NoPasid)
{
    /// <summary>Bytes per page-request descriptor.</summary>
    public const int Size = 32;

    private const ulong TypePageRequest = 1, PasidPresentBit = 1UL << 8, ExecuteBit = 1UL << 52;
    private const ulong ReadBit = 1, WriteBit = 2, LastInGroupBit = 4, AddressMask = ~0xFFFUL;
    private const int RequesterIdShift = 16, PasidShift = 32, GroupIndexShift = 3;
    private const ulong PasidBits = 0xF_FFFF, GroupIndexBits = 0x1FF;

    /// <summary>Whether the request carries a PASID.</summary>
    public bool HasPasid => Pasid != TranslationRequest.NoPasid;

    /// <summary>qw0 of the descriptor.</summary>
    public ulong Qw0 => TypePageRequest | (HasPasid ? PasidPresentBit | ((Pasid & PasidBits) << PasidShift) : 0)
        | ((ulong)SourceId << RequesterIdShift) | (Execute ? ExecuteBit : 0);

    /// <summary>qw1 of the descriptor.</summary>
    public ulong Qw1 => (Address & AddressMask) | ((GroupIndex & GroupIndexBits) << GroupIndexShift)
        | (LastInGroup ? LastInGroupBit : 0) | (Write ? WriteBit : 0) | (Read ? ReadBit : 0);

    /// <summary>Decodes a descriptor.</summary>
    public static PageRequest Decode(ulong qw0, ulong qw1) => new(
        (ushort)(qw0 >> RequesterIdShift), qw1 & AddressMask, (qw1 & ReadBit) != 0, (qw1 & WriteBit) != 0, (qw0 & ExecuteBit) != 0,
        (qw1 & LastInGroupBit) != 0, (ushort)((qw1 >> GroupIndexShift) & GroupIndexBits),
        (qw0 & PasidPresentBit) != 0 ? (uint)((qw0 >> PasidShift) & PasidBits) : TranslationRequest.NoPasid);
}

/// <summary>Page-group response codes (Linux <c>QI_RESP_*</c>).</summary>
internal enum PageResponseCode : byte
{
    /// <summary>The pages are there: retry.</summary>
    Success = 0x0,

    /// <summary>The request was invalid.</summary>
    Invalid = 0x1,

    /// <summary>The request failed: the DMA faults.</summary>
    Failure = 0xF,
}

/// <summary>
/// A page-group response (queued-invalidation descriptor type 9, Linux <c>QI_PGRP_*</c>): qw0 type 9,
/// PASID present 4, PDP 5, response code 15:12, RID 31:16, PASID 51:32; qw1 last-in-group 2, PRG index 11:3.
/// </summary>
internal readonly record struct PageGroupResponse(ushort SourceId, ushort GroupIndex, PageResponseCode Code, bool LastInGroup = true, uint Pasid = TranslationRequest.NoPasid)
{
    /// <summary>The descriptor to submit.</summary>
    public InvalidationDescriptor ToDescriptor() => new(
        9UL | (Pasid != TranslationRequest.NoPasid ? 1UL << 4 : 0) | ((ulong)Code << 12) | ((ulong)SourceId << 16)
            | (Pasid != TranslationRequest.NoPasid ? (ulong)(Pasid & 0xF_FFFF) << 32 : 0),
        (LastInGroup ? 4UL : 0) | ((ulong)(GroupIndex & 0x1FF) << 3));

    /// <summary>Decodes a type-9 descriptor.</summary>
    public static PageGroupResponse Decode(in InvalidationDescriptor d) => new(
        d.ResponseRequesterId, d.ResponseGroupIndex, d.ResponseCode, d.ResponseLastInGroup,
        d.ResponsePasidPresent ? d.Pasid : TranslationRequest.NoPasid);
}

/// <summary>What became of a page request offered to a unit.</summary>
internal enum PageRequestStatus
{
    /// <summary>Queued in the page-request queue.</summary>
    Queued = 0,

    /// <summary>The queue was full: PRS.PRO set, the request dropped (the device sees no response and must treat it as failed).</summary>
    Overflow,

    /// <summary>The unit has no page-request queue programmed or does not support page requests.</summary>
    NotEnabled,

    /// <summary>The requester's context does not allow page requests (fault 0x47, or 0x32 in legacy mode).</summary>
    Refused,
}
