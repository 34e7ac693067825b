namespace Engine.Iommu;

/// <summary>
/// What the cold models of a unit (<see cref="DmarRegisterModel"/>, <see cref="InvalidationQueue"/>,
/// <see cref="PageRequestQueue"/>) may do to the translator's side of it: latch what SRTP and TE
/// latch, drop the context cache, and deliver an interrupt through the unit's events.
/// </summary>
/// <remarks>
/// The translator reads these latches on every translation without a lock, so they are fields of the
/// unit's <see cref="Translator"/>; the models write them only through this interface (the unit
/// forwards), under their register lock. The IOTLB is handed to the models directly: its invalidations are its own methods.
/// </remarks>
internal interface IDmarUnitHost
{
    /// <summary>Whether the unit is disposed: the models then act on no register write and every control call throws.</summary>
    bool IsDisposed { get; }

    /// <summary>Latches RTADDR as SRTP does: the root table's address, whether it is scalable (TTM 01), whether TTM is reserved (10/11).</summary>
    void LatchRootTable(ulong rootTable, bool scalable, bool invalidTtm);

    /// <summary>Latches GSTS.TES for the translator.</summary>
    void LatchTranslationEnabled(bool enabled);

    /// <summary>Drops every cached context and PASID entry (one generation step).</summary>
    void InvalidateContextCache();

    /// <summary>Raises the unit's events for an interrupt of <paramref name="kind"/> (the legacy event, then <see cref="DmarUnit.Interrupt"/>).</summary>
    void RaiseInterrupt(DmarInterruptKind kind);
}
