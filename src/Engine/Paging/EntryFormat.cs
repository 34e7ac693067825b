namespace Engine.Paging;

/// <summary>Which architecture's rules a walker applies to the same 64-bit entries.</summary>
internal enum EntryFormat : byte
{
    /// <summary>The CPU's EPT view: present = R|W|X, X enforced, W without R is a misconfiguration.</summary>
    Ept = 0,

    /// <summary>The IOMMU's VT-d second-stage view: present = R|W, X only with execute requests enabled.</summary>
    SecondStage = 1,
}
