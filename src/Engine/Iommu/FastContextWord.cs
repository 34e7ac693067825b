using System.Runtime.CompilerServices;

namespace Engine.Iommu;

/// <summary>
/// The context cache's per-source fast word, read by the hit path without a lock: what a request
/// without PASID needs from its context, and the stamp that says whether it is current.
/// </summary>
/// <remarks>
/// Layout: 63:41 stamp (bit 63 valid, 62:41 the cache generation) | 33:26 <see cref="ContextFlags"/> |
/// 25:23 levels | 22:16 input width | 15:0 DID. A word is current exactly when its stamp equals the
/// stamp word after the last source id; 0 is never current (the valid bit).
/// </remarks>
internal readonly struct FastContextWord(ulong value)
{
    /// <summary>The packed word.</summary>
    public readonly ulong Value = value;

    internal const int StampShift = 41;
    internal const int WidthShift = 16;
    internal const ulong WidthMask = 0x7F;
    private const int LevelsShift = 23;
    internal const int FlagsShift = 26;
    internal const uint GenerationMask = (1u << 22) - 1;
    internal const ulong StampValid = 1UL << 22;

    /// <summary>The stamp a word made under <paramref name="generation"/> carries (and the stamp word holds while it is current).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong StampOf(uint generation) => StampValid | (generation & GenerationMask);

    /// <summary>The word for <paramref name="context"/>, resolved under <paramref name="generation"/>.</summary>
    public static FastContextWord Create(uint generation, in ResolvedContext context) => new(
        StampOf(generation) << StampShift | (ulong)(byte)context.Flags << FlagsShift | (ulong)(context.Levels & 7) << LevelsShift
        | (ulong)(context.Width & WidthMask) << WidthShift | context.Did);

    /// <summary>Bits 63:41: compare with the stamp word.</summary>
    public ulong Stamp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value >> StampShift;
    }

    /// <summary>The domain id.</summary>
    public ushort Did
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (ushort)Value;
    }

    /// <summary>The input address width in bits.</summary>
    public int Width => (int)((Value >> WidthShift) & WidthMask);

    /// <summary>The second-stage table's levels.</summary>
    public int Levels => (int)(Value >> LevelsShift) & 7;

    /// <summary>The context's flags.</summary>
    public ContextFlags Flags => (ContextFlags)(byte)(Value >> FlagsShift);

    /// <summary>Whether <paramref name="iova"/> fits the input width.</summary>
    public bool Covers(ulong iova) => Covers(Value, iova);

    // The hot path's readers of a raw word: the same fields without a struct local (see Translator.TryTranslateHit).

    /// <summary>Whether <paramref name="iova"/> fits the input width of <paramref name="word"/>.</summary>
    /// <remarks>
    /// One shift and one test: the shift count is the word shifted down to the width, whose low six
    /// bits are the width (at most 57) — the shift instruction reads no more, so the bits above need no mask.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Covers(ulong word, ulong iova) => (iova >> (int)(word >> WidthShift)) == 0;

    /// <summary>The stamp of <paramref name="word"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong StampOf(ulong word) => word >> StampShift;

    /// <summary>The context flags of <paramref name="word"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ContextFlags FlagsOf(ulong word) => (ContextFlags)(byte)(word >> FlagsShift);

    /// <summary>The DID of <paramref name="word"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort DidOf(ulong word) => (ushort)word;
}
