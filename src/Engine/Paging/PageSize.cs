namespace Engine.Paging;

/// <summary>Page sizes of a leaf entry; the value is the level the leaf sits at (KVM numbering: 1 = 4K).</summary>
public enum PageSize : byte
{
    /// <summary>4 KiB, a leaf at level 1 (PTE).</summary>
    Size4K = 1,

    /// <summary>2 MiB, a leaf at level 2 (PDE with PS).</summary>
    Size2M = 2,

    /// <summary>1 GiB, a leaf at level 3 (PDPTE with PS).</summary>
    Size1G = 3,
}

/// <summary>Arithmetic on <see cref="PageSize"/> and page-table levels.</summary>
internal static class PageSizes
{
    /// <summary>Index bits per table level (512 entries).</summary>
    public const int LevelStride = 9;

    /// <summary>Mask of one level's index.</summary>
    public const int LevelMask = 0x1ff;

    /// <summary>Entries in one table.</summary>
    public const int EntriesPerTable = 512;

    /// <summary>log2 of the bytes a leaf at <paramref name="level"/> maps (12, 21, 30, 39, 48).</summary>
    public static int ShiftOfLevel(int level) => 12 + LevelStride * (level - 1);

    /// <summary>Bytes a page of this size maps.</summary>
    public static ulong Bytes(this PageSize size) => 1UL << ShiftOfLevel((int)size);

    /// <summary>log2 of <see cref="Bytes"/>.</summary>
    public static int Shift(this PageSize size) => ShiftOfLevel((int)size);

    /// <summary>4 KiB pages in a page of this size (1, 512, 262144).</summary>
    public static ulong Pages(this PageSize size) => 1UL << (LevelStride * ((int)size - 1));

    /// <summary>Input-address width of a table of <paramref name="levels"/> levels (39, 48, 57).</summary>
    public static int WidthOfLevels(int levels) => 12 + LevelStride * levels;
}
