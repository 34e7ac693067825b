namespace Engine.Paging;

/// <summary>
/// Read / write / execute, as a request's access and as an entry's permissions. The values are the
/// bit positions of R, W and X in both EPT and VT-d second-stage entries (bits 0, 1, 2).
/// </summary>
[Flags]
public enum Access : byte
{
    /// <summary>No access: a probe walk that only asks for the translation.</summary>
    None = 0,

    /// <summary>Read (R, bit 0).</summary>
    Read = 1,

    /// <summary>Write (W, bit 1).</summary>
    Write = 2,

    /// <summary>Execute (X, bit 2).</summary>
    Execute = 4,

    /// <summary>Read and write.</summary>
    ReadWrite = Read | Write,

    /// <summary>Read, write and execute.</summary>
    All = Read | Write | Execute,
}
