namespace Engine.Iommu;

/// <summary>GCMD_REG / GSTS_REG bits (SPEC.md §2.8): a command in GCMD and its status at the same position in GSTS.</summary>
[Flags]
internal enum GlobalCommand : uint
{
    /// <summary>No command.</summary>
    None = 0,
    /// <summary>Compatibility-format interrupts (CFI / CFIS), bit 23.</summary>
    CompatibilityFormatInterrupt = 1u << 23,
    /// <summary>Set interrupt-remapping table pointer (SIRTP / IRTPS), bit 24.</summary>
    SetInterruptRemapTablePointer = 1u << 24,
    /// <summary>Interrupt remapping enable (IRE / IRES), bit 25.</summary>
    InterruptRemappingEnable = 1u << 25,
    /// <summary>Queued invalidation enable (QIE / QIES), bit 26.</summary>
    QueuedInvalidationEnable = 1u << 26,
    /// <summary>Write-buffer flush (WBF / WBFS), bit 27.</summary>
    WriteBufferFlush = 1u << 27,
    /// <summary>Enable advanced fault logging (EAFL / AFLS), bit 28.</summary>
    EnableAdvancedFaultLogging = 1u << 28,
    /// <summary>Set fault log (SFL / FLS), bit 29.</summary>
    SetFaultLog = 1u << 29,
    /// <summary>Set root-table pointer (SRTP / RTPS), bit 30.</summary>
    SetRootTablePointer = 1u << 30,
    /// <summary>Translation enable (TE / TES), bit 31.</summary>
    TranslationEnable = 1u << 31,
}
