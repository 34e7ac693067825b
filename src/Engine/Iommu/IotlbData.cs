using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// The data word of one IOTLB entry, as a probe returns it (0 for a miss).
/// </summary>
/// <remarks>
/// Layout: 63 always 1 | 62:53 generation | 52 snoop | 51:12 page HPA | 11:4 page shift (12, 21, 30) |
/// 3 always 1 | 2:0 R/W/X. Bits 63:53 compare with the domain's current stamp in one go; bit 3 makes
/// a miss (0) fail every access test (<see cref="Grants(ulong, uint)"/>).
/// </remarks>
internal readonly struct IotlbData(ulong value)
{
    /// <summary>The packed word.</summary>
    public readonly ulong Value = value;

    internal const int StampShift = 53;
    internal const int SnoopShift = 52;
    internal const ulong SnoopBit = 1UL << SnoopShift;
    internal const ulong EntryBit = 1UL << 3;
    internal const int PageShiftShift = 4;

    /// <summary>The word for a page at <paramref name="pageHpa"/> of <paramref name="level"/>, filled under <paramref name="generation"/>.</summary>
    public static IotlbData Create(uint generation, ulong pageHpa, int level, bool snoop, Access permissions) => new(
        ((ulong)generation << StampShift) | (pageHpa & EptEntry.AddressMask) | ((ulong)PageSizes.ShiftOfLevel(level) << PageShiftShift)
        | EntryBit | (snoop ? SnoopBit : 0) | ((ulong)permissions & 7));

    /// <summary>Bits 63:53: present and generation, to compare with the domain's stamp.</summary>
    public ulong Stamp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value >> StampShift;
    }

    /// <summary>Whether the probe found an entry (a miss is 0).</summary>
    public bool IsHit => Value != 0;

    /// <summary>Whether the entry grants every bit of <paramref name="required"/>'s low nibble (R/W/X and bit 3; see <see cref="Grants(ulong, uint)"/>).</summary>
    public bool Grants(uint required) => Grants(Value, required);

    /// <summary>The permissions granted.</summary>
    public Access Permissions
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (Access)(Value & 7);
    }

    /// <summary>The page's host-physical address.</summary>
    public ulong PageHpa
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value & EptEntry.AddressMask;
    }

    /// <summary>Whether the page is snooped (PGSNP / SNP).</summary>
    public bool Snoop
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (Value & SnoopBit) != 0;
    }

    /// <summary>The page's level: 1 (4K), 2 (2M), 3 (1G).</summary>
    public int Level
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => LevelOf(Value);
    }

    /// <summary>The offset of <paramref name="iova"/> in the page.</summary>
    public ulong OffsetOf(ulong iova) => OffsetOf(Value, iova);

    // The hot path's readers of a raw word: the same fields without a struct local (see DmarUnit.TryTranslateHit).

    /// <summary>
    /// Whether <paramref name="data"/> grants every bit of the low nibble of <paramref name="required"/>
    /// (R/W/X as the access needs, and bit 3, which every entry has and a miss, 0, has not); bits of
    /// <paramref name="required"/> above the nibble are ignored, so a shifted table of nibbles can be passed as it is.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Grants(ulong data, uint required) => (required & ~(uint)data & 0xF) == 0;

    /// <summary>The permissions of <paramref name="data"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Access PermissionsOf(ulong data) => (Access)(data & 7);

    /// <summary>The page HPA of <paramref name="data"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageHpaOf(ulong data) => data & EptEntry.AddressMask;

    /// <summary>The snoop bit of <paramref name="data"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool SnoopOf(ulong data) => (data & SnoopBit) != 0;

    /// <summary>The level of <paramref name="data"/>: 1 (4K), 2 (2M), 3 (1G).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LevelOf(ulong data) => ((int)(data >> PageShiftShift) & 0xFF) * 7 >> 6;   // 12, 21, 30 → 1, 2, 3

    /// <summary>The offset of <paramref name="iova"/> in the page of <paramref name="data"/> (one BZHI where BMI2 is there: it reads only the shift's low byte).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong OffsetOf(ulong data, ulong iova) => Bmi2.X64.IsSupported
        ? Bmi2.X64.ZeroHighBits(iova, data >> PageShiftShift)
        : iova & ((1UL << (int)(data >> PageShiftShift)) - 1);
}
