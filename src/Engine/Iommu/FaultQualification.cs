using System.Collections.Frozen;

namespace Engine.Iommu;

/// <summary>
/// Which fault reasons are "qualified": reported only when the FPD field of the context or PASID entry
/// that processed the request is 0 (SPEC.md §2.7; QEMU <c>vtd_qualified_faults</c> / <c>vtd_is_qualified_fault</c>).
/// </summary>
/// <remarks>
/// A fault can only be suppressed by FPD once the entry holding FPD has been read: faults met at or after the
/// (scalable-mode) context entry are qualified; faults met before it — the root table and root entry, the
/// RTADDR translation-table mode, and a failed read of the context table itself — are not, and neither are
/// failed reads of the PASID directory or PASID table (as in QEMU). Reasons QEMU does not produce are placed by
/// the same rule: every one found in a present context, PASID-directory or PASID entry, or in the paging
/// structures below them, is qualified. Unlike QEMU's table, 0xB (reserved bit in a present context entry)
/// is qualified: that entry was read, and QEMU's table simply leaves 0xB out (so false).
/// </remarks>
internal static class FaultQualification
{
    /// <summary>Every DMA-remapping fault reason and whether it is qualified; the one place this is decided.</summary>
    public static FrozenDictionary<FaultReason, bool> Table { get; } = new Dictionary<FaultReason, bool>
    {
        [FaultReason.None] = false,                           // QEMU VTD_FR_RESERVED
        // Legacy mode.
        [FaultReason.RootEntryNotPresent] = false,            // before the context entry
        [FaultReason.ContextEntryNotPresent] = true,
        [FaultReason.ContextEntryInvalid] = true,
        [FaultReason.AddressBeyondMgaw] = true,
        [FaultReason.Write] = true,
        [FaultReason.Read] = true,
        [FaultReason.PagingEntryInvalid] = true,
        [FaultReason.RootTableInvalid] = false,               // before the context entry
        [FaultReason.ContextTableInvalid] = false,            // the context entry could not be read
        [FaultReason.RootEntryReserved] = false,              // before the context entry
        [FaultReason.ContextEntryReserved] = true,            // QEMU: absent (false); see remarks
        [FaultReason.PagingEntryReserved] = true,
        [FaultReason.ContextEntryTranslationType] = true,
        // Scalable mode: the root table and RTADDR.
        [FaultReason.SmRootTableAddressInvalid] = false,
        [FaultReason.SmTtmLegacyWithPasid] = false,           // decided from RTADDR.TTM, before any entry
        [FaultReason.SmTtmLegacyPageRequest] = false,
        [FaultReason.SmRootEntryAccess] = false,
        [FaultReason.SmRootEntryNotPresent] = false,
        [FaultReason.SmRootEntryReserved] = false,
        // Scalable-mode context entry.
        [FaultReason.SmContextEntryAccess] = false,           // the context entry could not be read
        [FaultReason.SmContextEntryNotPresent] = true,
        [FaultReason.SmContextEntryReserved] = true,
        [FaultReason.SmContextEntryInvalid] = true,
        [FaultReason.SmDteClear] = true,
        [FaultReason.SmPasidEnableClear] = true,
        [FaultReason.SmPasidTooLarge] = true,
        [FaultReason.SmPageRequestEnableClear] = true,
        [FaultReason.SmRidPasidError] = true,
        // PASID directory and table.
        [FaultReason.SmPasidDirectoryAccess] = false,         // QEMU PASID_DIR_ACCESS_ERR
        [FaultReason.SmPasidDirectoryNotPresent] = true,      // QEMU PASID_DIR_ENTRY_P
        [FaultReason.SmPasidDirectoryReserved] = true,
        [FaultReason.SmPasidTableAccess] = false,             // QEMU PASID_TABLE_ACCESS_ERR
        [FaultReason.SmPasidEntryNotPresent] = true,          // QEMU PASID_ENTRY_P
        [FaultReason.SmPasidEntryReserved] = true,
        [FaultReason.SmPasidEntryInvalid] = true,             // QEMU PASID_TABLE_ENTRY_INV
        [FaultReason.SmPasidEreClear] = true,
        [FaultReason.SmPasidSreClear] = true,
        // First- and second-level paging, and the output address.
        [FaultReason.SmFirstLevelAccess] = true,              // QEMU FS_PAGING_ENTRY_INV
        [FaultReason.SmFirstLevelNotPresent] = true,          // QEMU FS_PAGING_ENTRY_P
        [FaultReason.SmFirstLevelReserved] = true,            // QEMU FS_PAGING_ENTRY_RSVD
        [FaultReason.SmSecondLevelAccess] = true,
        [FaultReason.SmSecondLevelPermission] = true,
        [FaultReason.SmSecondLevelReserved] = true,
        [FaultReason.SmSecondLevelPointerInvalid] = true,
        [FaultReason.SmSecondLevelAdNoSnoop] = true,
        [FaultReason.SmNonCanonical] = true,                  // QEMU FS_NON_CANONICAL
        [FaultReason.SmUserSupervisor] = true,                // QEMU FS_PAGING_ENTRY_US
        [FaultReason.SmNoExecute] = true,
        [FaultReason.SmAddressBeyondMax] = true,
        [FaultReason.SmSecondLevelAddressBeyondMax] = true,
        [FaultReason.SmWrite] = true,                         // QEMU SM_WRITE
        [FaultReason.SmRead] = true,
        [FaultReason.SmInterruptAddress] = true,              // QEMU SM_INTERRUPT_ADDR
        [FaultReason.SmFirstLevelAdNoSnoop] = true,
    }.ToFrozenDictionary();

    // The table by reason code, for the lookup on the recording path; codes not in the table are not qualified.
    private static readonly bool[] QualifiedByCode = BuildLookup();

    /// <summary>Whether FPD = 1 suppresses recording of a fault with this reason.</summary>
    public static bool IsQualified(FaultReason reason) => QualifiedByCode[(byte)reason];

    private static bool[] BuildLookup()
    {
        var lookup = new bool[256];
        foreach (KeyValuePair<FaultReason, bool> entry in Table)
            lookup[(byte)entry.Key] = entry.Value;
        return lookup;
    }
}
