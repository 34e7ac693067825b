namespace Engine.Iommu;

/// <summary>What the fault logic did with one fault.</summary>
internal enum FaultOutcome : byte
{
    /// <summary>Written to a fault-recording register (F set).</summary>
    Recorded = 0,

    /// <summary>Not recorded: a pending record already holds a fault it collapses into (<see cref="FaultCollapsing"/>).</summary>
    Collapsed = 1,

    /// <summary>Not recorded: FSTS.PFO was already set, or the next fault-recording register still had F set (PFO is then set).</summary>
    Overflowed = 2,

    /// <summary>Not recorded: a qualified fault under FPD = 1 (<see cref="FaultQualification"/>).</summary>
    Suppressed = 3,
}

/// <summary>One fault as reported to an embedder: the fault, what happened to it, and which register it went to.</summary>
/// <param name="Fault">The fault.</param>
/// <param name="Outcome">Recorded, collapsed, overflowed or suppressed.</param>
/// <param name="RecordIndex">The fault-recording register written (<see cref="FaultOutcome.Recorded"/>) or collapsed into (<see cref="FaultOutcome.Collapsed"/>); −1 otherwise.</param>
internal readonly record struct FaultReport(FaultRecord Fault, FaultOutcome Outcome, int RecordIndex);
