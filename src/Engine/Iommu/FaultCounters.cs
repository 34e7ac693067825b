namespace Engine.Iommu;

/// <summary>
/// A snapshot of a recorder's fault counters. They keep the true totals however the registers
/// overflow: <see cref="Total"/> = <see cref="Recorded"/> + <see cref="Collapsed"/> + <see cref="Overflowed"/> + <see cref="Suppressed"/>.
/// </summary>
/// <param name="Total">Every fault handed to the recorder.</param>
/// <param name="Recorded">Faults written to a fault-recording register.</param>
/// <param name="Collapsed">Faults collapsed into a pending record.</param>
/// <param name="Overflowed">Faults lost to primary fault overflow.</param>
/// <param name="Suppressed">Qualified faults not recorded because of FPD.</param>
public sealed record FaultCounters(long Total, long Recorded, long Collapsed, long Overflowed, long Suppressed);
