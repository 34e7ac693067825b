using Engine.Paging;

namespace Engine.Iommu;

/// <summary>A cached translation as the IOTLB hands it out.</summary>
/// <param name="PageHpa">HPA of the start of the page.</param>
/// <param name="Size">Page size.</param>
/// <param name="Permissions">Effective R/W (and X where honoured).</param>
/// <param name="Snoop">Whether accesses through it snoop (PGSNP, or the leaf's SNP).</param>
internal readonly record struct IotlbEntry(ulong PageHpa, PageSize Size, Access Permissions, bool Snoop);
