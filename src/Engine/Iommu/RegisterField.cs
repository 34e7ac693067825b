namespace Engine.Iommu;

/// <summary>Bit-field arithmetic for 64-bit hardware registers.</summary>
internal static class RegisterField
{
    /// <summary>Bits <paramref name="high"/>..<paramref name="low"/> of <paramref name="value"/>.</summary>
    public static ulong Get(ulong value, int high, int low) => (value >> low) & Mask(high, low);

    /// <summary><paramref name="value"/> with bits <paramref name="high"/>..<paramref name="low"/> replaced by <paramref name="field"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The field does not fit.</exception>
    public static ulong Set(ulong value, int high, int low, ulong field, string name)
    {
        ulong mask = Mask(high, low);
        if (field > mask)
            throw new ArgumentOutOfRangeException(name, field, $"{name} does not fit in bits {high}:{low} (max {mask}).");
        return (value & ~(mask << low)) | (field << low);
    }

    /// <summary>Bit <paramref name="bit"/> as a boolean.</summary>
    public static bool Bit(ulong value, int bit) => ((value >> bit) & 1) != 0;

    /// <summary><paramref name="value"/> with bit <paramref name="bit"/> set to <paramref name="on"/>.</summary>
    public static ulong SetBit(ulong value, int bit, bool on) => on ? value | (1UL << bit) : value & ~(1UL << bit);

    private static ulong Mask(int high, int low) => high - low == 63 ? ulong.MaxValue : (1UL << (high - low + 1)) - 1;
}
