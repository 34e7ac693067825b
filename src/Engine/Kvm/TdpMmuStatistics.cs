namespace Engine.Kvm;

/// <summary>A snapshot of a TDP MMU's activity.</summary>
/// <param name="TablePages">Page-table frames currently linked into the TDP (root included).</param>
/// <param name="Flushes">Flushes that notified importers (one per operation that changed present entries).</param>
/// <param name="InvalidatedRanges">Ranges handed to importers in total.</param>
/// <param name="HugePageSplits">Large leaves split into a table of smaller leaves.</param>
/// <param name="FaultsFixed">Fault-op calls that mapped something.</param>
/// <param name="FaultsFailed">Fault-op calls that failed.</param>
internal readonly record struct TdpMmuStatistics(
    long TablePages,
    long Flushes,
    long InvalidatedRanges,
    long HugePageSplits,
    long FaultsFixed,
    long FaultsFailed);
