using System.Runtime.InteropServices;

namespace Engine.Paging;

/// <summary>
/// The outcome of one page walk: a translation (HPA, page size, effective permissions) or a fault
/// with the level it happened at. A value, never an exception.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct WalkResult
{
    /// <summary>The translated host-physical address (page frame plus the input's offset); 0 on a fault.</summary>
    public readonly ulong Hpa;

    /// <summary>The leaf entry, or on a fault the entry that caused it (0 when none was read).</summary>
    public readonly ulong Entry;

    /// <summary>The fault, or <see cref="WalkFault.None"/>.</summary>
    public readonly WalkFault Fault;

    /// <summary>Level of the leaf (1 = 4K, 2 = 2M, 3 = 1G), or the level the fault happened at.</summary>
    public readonly byte Level;

    /// <summary>Permissions: the AND of R/W(/X) over every level of the path.</summary>
    public readonly Access Permissions;

    /// <summary>Creates a result; used by walkers.</summary>
    public WalkResult(ulong hpa, ulong entry, WalkFault fault, byte level, Access permissions)
    {
        Hpa = hpa;
        Entry = entry;
        Fault = fault;
        Level = level;
        Permissions = permissions;
    }

    /// <summary>Whether the walk produced a translation.</summary>
    public bool IsSuccess => Fault == WalkFault.None;

    /// <summary>The leaf's page size (meaningful on success).</summary>
    public PageSize PageSize => (PageSize)Level;

    /// <summary>HPA of the start of the mapped page (meaningful on success).</summary>
    public ulong PageHpa => Hpa & ~(PageSize.Bytes() - 1);

    /// <summary>A fault result.</summary>
    public static WalkResult Faulted(WalkFault fault, int level, ulong entry = 0) => new(0, entry, fault, (byte)level, Access.None);

    /// <inheritdoc/>
    public override string ToString() => IsSuccess
        ? $"0x{Hpa:x} ({PageSize}, {Permissions})"
        : $"{Fault} at level {Level} (entry 0x{Entry:x})";
}
