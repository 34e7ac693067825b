namespace Engine.Iommu;

/// <summary>Offsets of the DMA-remapping registers (Linux <c>DMAR_*_REG</c>, QEMU <c>DMAR_*_REG</c>).</summary>
public static class RegisterOffsets
{
    /// <summary>VER_REG: architecture version (32-bit).</summary>
    public const int Version = 0x00;
    /// <summary>CAP_REG (64-bit).</summary>
    public const int Capability = 0x08;
    /// <summary>ECAP_REG (64-bit).</summary>
    public const int ExtendedCapability = 0x10;
    /// <summary>GCMD_REG: global command (32-bit, write-only).</summary>
    public const int GlobalCommand = 0x18;
    /// <summary>GSTS_REG: global status (32-bit, read-only).</summary>
    public const int GlobalStatus = 0x1C;
    /// <summary>RTADDR_REG: root-table address (64-bit).</summary>
    public const int RootTableAddress = 0x20;
    /// <summary>CCMD_REG: context command (64-bit).</summary>
    public const int ContextCommand = 0x28;
    /// <summary>FSTS_REG: fault status (32-bit).</summary>
    public const int FaultStatus = 0x34;
    /// <summary>FECTL_REG: fault event control (32-bit).</summary>
    public const int FaultEventControl = 0x38;
    /// <summary>FEDATA_REG (32-bit).</summary>
    public const int FaultEventData = 0x3C;
    /// <summary>FEADDR_REG (32-bit).</summary>
    public const int FaultEventAddress = 0x40;
    /// <summary>FEUADDR_REG (32-bit).</summary>
    public const int FaultEventUpperAddress = 0x44;
    /// <summary>AFLOG_REG: advanced fault log (64-bit).</summary>
    public const int AdvancedFaultLog = 0x58;
    /// <summary>PMEN_REG: protected memory enable (32-bit).</summary>
    public const int ProtectedMemoryEnable = 0x64;
    /// <summary>IQH_REG: invalidation queue head (64-bit, read-only).</summary>
    public const int InvalidationQueueHead = 0x80;
    /// <summary>IQT_REG: invalidation queue tail (64-bit).</summary>
    public const int InvalidationQueueTail = 0x88;
    /// <summary>IQA_REG: invalidation queue address (64-bit).</summary>
    public const int InvalidationQueueAddress = 0x90;
    /// <summary>ICS_REG: invalidation completion status (32-bit).</summary>
    public const int InvalidationCompletionStatus = 0x9C;
    /// <summary>IECTL_REG: invalidation event control (32-bit).</summary>
    public const int InvalidationEventControl = 0xA0;
    /// <summary>IEDATA_REG (32-bit).</summary>
    public const int InvalidationEventData = 0xA4;
    /// <summary>IEADDR_REG (32-bit).</summary>
    public const int InvalidationEventAddress = 0xA8;
    /// <summary>IEUADDR_REG (32-bit).</summary>
    public const int InvalidationEventUpperAddress = 0xAC;
    /// <summary>IQERCD_REG: invalidation queue error record (64-bit, read-only).</summary>
    public const int InvalidationQueueErrorRecord = 0xB0;
    /// <summary>IRTA_REG: interrupt-remapping table address (64-bit).</summary>
    public const int InterruptRemappingTableAddress = 0xB8;
    /// <summary>PQH_REG: page-request queue head (64-bit).</summary>
    public const int PageRequestQueueHead = 0xC0;
    /// <summary>PQT_REG: page-request queue tail (64-bit, read-only to software).</summary>
    public const int PageRequestQueueTail = 0xC8;
    /// <summary>PQA_REG: page-request queue address (64-bit).</summary>
    public const int PageRequestQueueAddress = 0xD0;
    /// <summary>PRS_REG: page-request status (32-bit).</summary>
    public const int PageRequestStatus = 0xDC;
    /// <summary>PECTL_REG: page-request event control (32-bit).</summary>
    public const int PageRequestEventControl = 0xE0;
    /// <summary>PEDATA_REG (32-bit).</summary>
    public const int PageRequestEventData = 0xE4;
    /// <summary>PEADDR_REG (32-bit).</summary>
    public const int PageRequestEventAddress = 0xE8;
    /// <summary>PEUADDR_REG (32-bit).</summary>
    public const int PageRequestEventUpperAddress = 0xEC;
}
