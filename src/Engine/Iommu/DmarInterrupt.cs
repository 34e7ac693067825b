namespace Engine.Iommu;

/// <summary>Which of the unit's three interrupts fired; the values are the C ABI's <c>ENGINE_IRQ_*</c>.</summary>
public enum DmarInterruptKind
{
    /// <summary>The fault event (FECTL/FEDATA/FEADDR): a fault was recorded while FECTL.IM was clear, or IM was cleared with IP pending.</summary>
    Fault = 1,

    /// <summary>The invalidation-completion event (IECTL): a wait descriptor with IF completed.</summary>
    InvalidationComplete = 2,

    /// <summary>The page-request event (PECTL): a page request was queued.</summary>
    PageRequest = 3,
}

/// <summary>The data of <see cref="DmarUnit.Interrupt"/>: which interrupt fired (the sender is the unit).</summary>
public sealed class DmarInterruptEventArgs : EventArgs
{
    // One instance per kind: an interrupt allocates nothing, and handlers can compare by reference.
    internal static readonly DmarInterruptEventArgs Fault = new(DmarInterruptKind.Fault);
    internal static readonly DmarInterruptEventArgs InvalidationComplete = new(DmarInterruptKind.InvalidationComplete);
    internal static readonly DmarInterruptEventArgs PageRequest = new(DmarInterruptKind.PageRequest);

    private DmarInterruptEventArgs(DmarInterruptKind kind) => Kind = kind;

    /// <summary>Which interrupt.</summary>
    public DmarInterruptKind Kind { get; }
}
