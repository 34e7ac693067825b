namespace Engine.Iommu;

/// <summary>The register page of one DMA-remapping unit, declared from its CAP and ECAP (SPEC.md §2.6–2.8).</summary>
internal static class DmarRegisters
{
    /// <summary>VER_REG value: architecture version 1.0.</summary>
    public const ulong Version = 0x10;

    /// <summary>Fault status RW1C bits: PFO (0), IQE (4), ICE (5), ITE (6), PRO (7).</summary>
    public const ulong FaultStatusWriteOneToClear = 0b1111_0001;

    /// <summary>F (bit 63 of a fault-recording register's upper qword): write 1 to clear.</summary>
    public const ulong FaultRecordF = 1UL << 63;

    /// <summary>IM (bit 31 of IECTL and PECTL): the event is masked.</summary>
    public const ulong EventControlIm = 1UL << 31;

    /// <summary>IP (bit 30 of IECTL and PECTL): an interrupt condition is pending (held while IM is set).</summary>
    public const ulong EventControlIp = 1UL << 30;

    /// <summary>IWC (bit 0 of ICS): an invalidation wait descriptor with IF completed; write 1 to clear.</summary>
    public const ulong InvalidationCompletionIwc = 1;

    /// <summary>PPR (bit 0 of PRS): page requests are pending; write 1 to clear.</summary>
    public const ulong PageRequestStatusPpr = 1;

    /// <summary>PRO (bit 1 of PRS): a page request was dropped because the queue was full; write 1 to clear.</summary>
    public const ulong PageRequestStatusPro = 2;

    /// <summary>Declares every register of a unit with these capabilities: the fixed page, the IOTLB pair at ECAP.IRO × 16 and CAP.NFR fault-recording registers at CAP.FRO × 16.</summary>
    /// <exception cref="ArgumentException">The IOTLB or fault-recording registers would overlap the fixed ones or each other.</exception>
    public static RegisterFile CreateFile(CapabilityRegister cap, ExtendedCapabilityRegister ecap)
    {
        const ulong All32 = 0xFFFF_FFFF, All64 = ulong.MaxValue;
        const ulong InterruptMask = 1UL << 31;
        var declarations = new List<RegisterDeclaration>
        {
            new("VER_REG", RegisterOffsets.Version, 4, Version, 0, 0),
            new("CAP_REG", RegisterOffsets.Capability, 8, cap.Value, 0, 0),
            new("ECAP_REG", RegisterOffsets.ExtendedCapability, 8, ecap.Value, 0, 0),
            // GCMD reads as 0 to software; the unit consumes each write and reflects it in GSTS.
            new("GCMD_REG", RegisterOffsets.GlobalCommand, 4, 0, 0xFF80_0000, 0),
            new("GSTS_REG", RegisterOffsets.GlobalStatus, 4, 0, 0, 0),
            new("RTADDR_REG", RegisterOffsets.RootTableAddress, 8, 0, 0xFFFF_FFFF_FFFF_FC00, 0),
            new("CCMD_REG", RegisterOffsets.ContextCommand, 8, 0, All64, 0),
            new("FSTS_REG", RegisterOffsets.FaultStatus, 4, 0, 0, FaultStatusWriteOneToClear),
            new("FECTL_REG", RegisterOffsets.FaultEventControl, 4, InterruptMask, InterruptMask, 0),
            new("FEDATA_REG", RegisterOffsets.FaultEventData, 4, 0, All32, 0),
            new("FEADDR_REG", RegisterOffsets.FaultEventAddress, 4, 0, 0xFFFF_FFFC, 0),
            new("FEUADDR_REG", RegisterOffsets.FaultEventUpperAddress, 4, 0, All32, 0),
            new("AFLOG_REG", RegisterOffsets.AdvancedFaultLog, 8, 0, 0xFFFF_FFFF_FFFF_F000 | 0xE00, 0),
            new("PMEN_REG", RegisterOffsets.ProtectedMemoryEnable, 4, 0, 1UL << 31, 0),
            new("IQH_REG", RegisterOffsets.InvalidationQueueHead, 8, 0, 0, 0),
            new("IQT_REG", RegisterOffsets.InvalidationQueueTail, 8, 0, 0x7_FFF0, 0),
            new("IQA_REG", RegisterOffsets.InvalidationQueueAddress, 8, 0, 0xFFFF_FFFF_FFFF_F000 | 0x800 | 0x7, 0),
            new("ICS_REG", RegisterOffsets.InvalidationCompletionStatus, 4, 0, 0, 1),
            new("IECTL_REG", RegisterOffsets.InvalidationEventControl, 4, InterruptMask, InterruptMask, 0),
            new("IEDATA_REG", RegisterOffsets.InvalidationEventData, 4, 0, All32, 0),
            new("IEADDR_REG", RegisterOffsets.InvalidationEventAddress, 4, 0, 0xFFFF_FFFC, 0),
            new("IEUADDR_REG", RegisterOffsets.InvalidationEventUpperAddress, 4, 0, All32, 0),
            new("IQERCD_REG", RegisterOffsets.InvalidationQueueErrorRecord, 8, 0, 0, 0),
            new("IRTA_REG", RegisterOffsets.InterruptRemappingTableAddress, 8, 0, 0xFFFF_FFFF_FFFF_F000 | 0x80F, 0),
            new("PQH_REG", RegisterOffsets.PageRequestQueueHead, 8, 0, 0x7_FFE0, 0),
            new("PQT_REG", RegisterOffsets.PageRequestQueueTail, 8, 0, 0, 0),
            new("PQA_REG", RegisterOffsets.PageRequestQueueAddress, 8, 0, 0xFFFF_FFFF_FFFF_F000 | 0x7, 0),
            new("PRS_REG", RegisterOffsets.PageRequestStatus, 4, 0, 0, 0b11),
            new("PECTL_REG", RegisterOffsets.PageRequestEventControl, 4, InterruptMask, InterruptMask, 0),
            new("PEDATA_REG", RegisterOffsets.PageRequestEventData, 4, 0, All32, 0),
            new("PEADDR_REG", RegisterOffsets.PageRequestEventAddress, 4, 0, 0xFFFF_FFFC, 0),
            new("PEUADDR_REG", RegisterOffsets.PageRequestEventUpperAddress, 4, 0, All32, 0),
        };
        int iro = ecap.IotlbRegisterOffset;
        declarations.Add(new("IVA_REG", iro, 8, 0, 0xFFFF_FFFF_FFFF_F000 | 0x7F, 0));
        declarations.Add(new("IOTLB_REG", iro + 8, 8, 0, (1UL << 63) | (3UL << 60) | (3UL << 48) | (0xFFFFUL << 32), 0));
        int fro = cap.FaultRecordingOffset;
        for (int i = 0; i < cap.NumberOfFaultRegisters; i++)
        {
            declarations.Add(new($"FRCD_REG[{i}].lo", fro + 16 * i, 8, 0, 0, 0));
            declarations.Add(new($"FRCD_REG[{i}].hi", fro + 16 * i + 8, 8, 0, 0, FaultRecordF));
        }
        return new RegisterFile(declarations);
    }
}
