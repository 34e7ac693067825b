namespace Engine.Iommu;

/// <summary>Why queued invalidation stopped (IQERCD_REG.IQEI, bits 3:0). The codes are the model's; SPEC.md does not settle them.</summary>
internal enum InvalidationQueueError : byte
{
    /// <summary>No error.</summary>
    None = 0,
    /// <summary>Unknown descriptor type, or a reserved bit set.</summary>
    InvalidDescriptor = 1,
    /// <summary>The descriptor lies outside host memory.</summary>
    DescriptorUnreadable = 2,
    /// <summary>IQT is not aligned to the descriptor width.</summary>
    TailMisaligned = 3,
    /// <summary>256-bit descriptors (IQA.DW) on a unit without scalable mode.</summary>
    InvalidDescriptorWidth = 4,
    /// <summary>A wait descriptor's status address lies outside allocated host memory.</summary>
    StatusWriteFailed = 5,
    /// <summary>IQT holds an index beyond the queue IQA describes (QEMU: "invalid QI tail").</summary>
    TailBeyondQueue = 6,
}
