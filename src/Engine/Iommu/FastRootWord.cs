using System.Runtime.CompilerServices;

namespace Engine.Iommu;

/// <summary>
/// The context cache's per-source root word, beside the <see cref="FastContextWord"/>: what the miss
/// path needs beyond the fast word to walk — the second-stage table's root and levels — so a miss
/// reads two words instead of the seqlocked slot (issue 14).
/// </summary>
/// <remarks>
/// <para>Layout: 63 valid | 58:56 levels | 55:40 DID | 39:0 root HPA bits 51:12. 0 is never valid.</para>
/// <para>Both words of a source are written by one put of the context cache, under that source's
/// slot lock, the root word first (release stores), so a reader that saw a fast word current and then
/// reads the root word gets the root word of the same put or of a later one — never an older one.
/// A later put comes from a later generation (an invalidation raced the miss) or from the same one
/// (the tables changed without an invalidation). Under another DID, <see cref="Matches"/> fails and
/// the miss takes the general path, so a walk never pairs one domain's table with another's DID.
/// Under the same DID the miss walks the later table with the earlier word's width and flags: a
/// result that is neither context's exactly, but only of that domain. After an invalidation it is not
/// cached: the fill checks the generation, which the invalidation moved. Without one (the driver
/// changed a present context entry and did not invalidate) it may be, as either context's may be. The
/// walk checks the address against its own levels, so it reads nothing outside the table.</para>
/// </remarks>
internal static class FastRootWord
{
    private const ulong ValidBit = 1UL << 63;
    internal const int DidShift = 40;
    internal const int LevelsShift = 56;
    internal const ulong FrameNumberMask = (1UL << 40) - 1;

    /// <summary>The word shifted down by <see cref="DidShift"/> and masked with this keeps the valid bit and the DID (<see cref="Matches"/> as one compare, for vectors).</summary>
    internal const ulong ValidAndDidMask = (ValidBit >> DidShift) | 0xFFFF;

    /// <summary>What a matching word shows through <see cref="ValidAndDidMask"/>, less its DID.</summary>
    internal const ulong ValidAfterShift = ValidBit >> DidShift;

    /// <summary>The word for <paramref name="context"/>, or 0 (never valid: the miss path takes the general one) when its root does not fit the layout (not 4 KiB aligned, or 2^52 or above).</summary>
    public static ulong Create(in ResolvedContext context) =>
        (context.Root & ~(FrameNumberMask << 12)) != 0 ? 0
            : ValidBit | (ulong)(context.Levels & 7) << LevelsShift | (ulong)context.Did << DidShift | (context.Root >> 12);

    /// <summary>Whether <paramref name="rootWord"/> is valid and belongs to the DID of <paramref name="fastWord"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Matches(ulong rootWord, ulong fastWord) =>
        (long)rootWord < 0 && (ushort)(rootWord >> DidShift) == FastContextWord.DidOf(fastWord);

    /// <summary>The table's root HPA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong RootOf(ulong rootWord) => (rootWord & FrameNumberMask) << 12;

    /// <summary>The table's levels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LevelsOf(ulong rootWord) => (int)(rootWord >> LevelsShift) & 7;
}
