namespace Engine.Paging;

/// <summary>Why a walk did not produce a translation. The IOMMU layer maps these to VT-d reason codes.</summary>
public enum WalkFault : byte
{
    /// <summary>The walk produced a translation.</summary>
    None = 0,

    /// <summary>An entry on the path is not present (VT-d: R = W = 0; EPT: R = W = X = 0).</summary>
    NotPresent = 1,

    /// <summary>The leaf was reached but the effective permissions lack the access asked for.</summary>
    Permission = 2,

    /// <summary>A present entry has a must-be-zero bit set (at <see cref="WalkResult.Level"/>).</summary>
    ReservedBit = 3,

    /// <summary>The input address has bits at or above the table's width (2^(12 + 9·levels)).</summary>
    AddressBeyondWidth = 4,

    /// <summary>A root or next-table pointer lies outside host memory; nothing was read there.</summary>
    TablePointerOutsideMemory = 5,

    /// <summary>The level count is not 2..5, so no walk was attempted.</summary>
    UnsupportedLevels = 6,
}
