namespace Engine.Iommu;

/// <summary>A device-TLB invalidation a unit processed, for embedders that model ATS devices.</summary>
/// <param name="SourceId">The device.</param>
/// <param name="Address">Address (with the size encoded in the low bits when <paramref name="SizeBit"/> is set).</param>
/// <param name="SizeBit">The S bit.</param>
/// <param name="Pasid">PASID for PASID-based device-TLB invalidation, or <see cref="TranslationRequest.NoPasid"/>.</param>
internal readonly record struct DeviceTlbInvalidation(ushort SourceId, ulong Address, bool SizeBit, uint Pasid);
