namespace Engine.Iommu;

/// <summary>
/// VT-d DMA-remapping fault reasons with the spec's numbers (SPEC.md §2.7; Linux <c>dmar.c</c>,
/// QEMU <c>VTDFaultReason</c>): legacy 0x1–0xD, scalable mode 0x30–0x90.
/// </summary>
public enum FaultReason : byte
{
    /// <summary>No fault.</summary>
    None = 0x00,

    /// <summary>0x1: root entry not present (legacy).</summary>
    RootEntryNotPresent = 0x01,
    /// <summary>0x2: context entry not present (legacy).</summary>
    ContextEntryNotPresent = 0x02,
    /// <summary>0x3: invalid context-entry programming (legacy).</summary>
    ContextEntryInvalid = 0x03,
    /// <summary>0x4: input address above 2^x − 1 (MGAW / AW).</summary>
    AddressBeyondMgaw = 0x04,
    /// <summary>0x5: write without W permission.</summary>
    Write = 0x05,
    /// <summary>0x6: read without R permission.</summary>
    Read = 0x06,
    /// <summary>0x7: error accessing a second-level paging entry / bad next-table pointer.</summary>
    PagingEntryInvalid = 0x07,
    /// <summary>0x8: error accessing the root table.</summary>
    RootTableInvalid = 0x08,
    /// <summary>0x9: error accessing a context table.</summary>
    ContextTableInvalid = 0x09,
    /// <summary>0xA: reserved bit set in a present root entry.</summary>
    RootEntryReserved = 0x0A,
    /// <summary>0xB: reserved bit set in a present context entry.</summary>
    ContextEntryReserved = 0x0B,
    /// <summary>0xC: reserved bit set in a present second-level entry.</summary>
    PagingEntryReserved = 0x0C,
    /// <summary>0xD: request blocked by the context entry's translation type.</summary>
    ContextEntryTranslationType = 0x0D,

    /// <summary>0x30: invalid root-table address (scalable mode).</summary>
    SmRootTableAddressInvalid = 0x30,
    /// <summary>0x31: legacy translation-table mode for a request with PASID.</summary>
    SmTtmLegacyWithPasid = 0x31,
    /// <summary>0x32: legacy translation-table mode for a page-group request.</summary>
    SmTtmLegacyPageRequest = 0x32,
    /// <summary>0x38: error accessing a scalable-mode root entry.</summary>
    SmRootEntryAccess = 0x38,
    /// <summary>0x39: scalable-mode root entry not present.</summary>
    SmRootEntryNotPresent = 0x39,
    /// <summary>0x3A: reserved bit in a scalable-mode root entry.</summary>
    SmRootEntryReserved = 0x3A,
    /// <summary>0x40: error accessing a scalable-mode context entry.</summary>
    SmContextEntryAccess = 0x40,
    /// <summary>0x41: scalable-mode context entry not present.</summary>
    SmContextEntryNotPresent = 0x41,
    /// <summary>0x42: reserved bit in a scalable-mode context entry.</summary>
    SmContextEntryReserved = 0x42,
    /// <summary>0x43: invalid scalable-mode context entry.</summary>
    SmContextEntryInvalid = 0x43,
    /// <summary>0x44: DTE clear for a translation request.</summary>
    SmDteClear = 0x44,
    /// <summary>0x45: PASIDE clear for a request with PASID.</summary>
    SmPasidEnableClear = 0x45,
    /// <summary>0x46: PASID larger than the PASID-directory size allows.</summary>
    SmPasidTooLarge = 0x46,
    /// <summary>0x47: PRE clear for a page request.</summary>
    SmPageRequestEnableClear = 0x47,
    /// <summary>0x48: RID_PASID field error.</summary>
    SmRidPasidError = 0x48,
    /// <summary>0x50: error accessing a PASID-directory entry.</summary>
    SmPasidDirectoryAccess = 0x50,
    /// <summary>0x51: PASID-directory entry not present.</summary>
    SmPasidDirectoryNotPresent = 0x51,
    /// <summary>0x52: reserved bit in a PASID-directory entry.</summary>
    SmPasidDirectoryReserved = 0x52,
    /// <summary>0x58: error accessing a PASID-table entry.</summary>
    SmPasidTableAccess = 0x58,
    /// <summary>0x59: PASID-table entry not present.</summary>
    SmPasidEntryNotPresent = 0x59,
    /// <summary>0x5A: reserved bit in a PASID-table entry.</summary>
    SmPasidEntryReserved = 0x5A,
    /// <summary>0x5B: invalid PASID-table entry programming (e.g. an unsupported PGTT or AW).</summary>
    SmPasidEntryInvalid = 0x5B,
    /// <summary>0x5C: ERE clear in the PASID entry.</summary>
    SmPasidEreClear = 0x5C,
    /// <summary>0x5D: SRE clear in the PASID entry.</summary>
    SmPasidSreClear = 0x5D,
    /// <summary>0x70: error accessing a first-level entry.</summary>
    SmFirstLevelAccess = 0x70,
    /// <summary>0x71: first-level entry not present.</summary>
    SmFirstLevelNotPresent = 0x71,
    /// <summary>0x72: reserved bit in a first-level entry.</summary>
    SmFirstLevelReserved = 0x72,
    /// <summary>0x78: error accessing a second-level paging entry.</summary>
    SmSecondLevelAccess = 0x78,
    /// <summary>0x79: read/write permission error in a second-level entry (non-present included).</summary>
    SmSecondLevelPermission = 0x79,
    /// <summary>0x7A: reserved field set in a second-level entry.</summary>
    SmSecondLevelReserved = 0x7A,
    /// <summary>0x7B: invalid second-level page-table pointer.</summary>
    SmSecondLevelPointerInvalid = 0x7B,
    /// <summary>0x7C: A/D update needed in a second-level entry set up as no-snoop.</summary>
    SmSecondLevelAdNoSnoop = 0x7C,
    /// <summary>0x80: first-level address not canonical.</summary>
    SmNonCanonical = 0x80,
    /// <summary>0x81: U/S = 0 for a user request.</summary>
    SmUserSupervisor = 0x81,
    /// <summary>0x82: no execute permission.</summary>
    SmNoExecute = 0x82,
    /// <summary>0x83: address beyond the DMA hardware's maximum.</summary>
    SmAddressBeyondMax = 0x83,
    /// <summary>0x84: second-level entry address beyond the maximum.</summary>
    SmSecondLevelAddressBeyondMax = 0x84,
    /// <summary>0x85: no write permission for a Write/AtomicOp request.</summary>
    SmWrite = 0x85,
    /// <summary>0x86: no read permission for a Read/AtomicOp request.</summary>
    SmRead = 0x86,
    /// <summary>0x87: output address in the interrupt range.</summary>
    SmInterruptAddress = 0x87,
    /// <summary>0x90: A/D update needed in a first-level entry set up as no-snoop.</summary>
    SmFirstLevelAdNoSnoop = 0x90,
}
