using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Engine.Memory;

namespace Engine.Paging;

// The three vector batch walkers: each is a width and a way to load, over the one driver in
// PageWalker.VectorBatch.cs. Their BatchWalkerKind names (avx2, avx512, avx512-loads) say which
// instruction sets they need; the class names say what they do.
internal static unsafe partial class PageWalker
{
    /// <summary>
    /// 4 lanes per vector, each vector's entries read by one masked AVX2 gather (<c>vpgatherqq ymm</c>),
    /// the checks as 256-bit compares (<see cref="BatchWalkerKind.Avx2Gather"/>).
    /// </summary>
    /// <remarks>
    /// A gather loads each lane's entry once, with one aligned 8-byte element load, and only for the
    /// lanes of its mask — a lane whose table pointer lies outside host memory is masked off, never
    /// dereferenced. Element loads of one gather are unordered among themselves, which does not
    /// matter: each lane's next load depends on its own entry's address bits, as in the scalar walk.
    /// </remarks>
    public static class Gather4Batch
    {
        /// <summary>Lanes per vector.</summary>
        public const int Lanes = 4;

        /// <summary>Whether AVX2 is available to this process (false with <c>DOTNET_EnableAVX2=0</c> or <c>DOTNET_EnableHWIntrinsic=0</c>).</summary>
        public static bool IsSupported => Gather4.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with this walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results) =>
            Dispatch(BatchWalkerKind.Avx2Gather, memory, config, rootHpa, default, levels, addresses, access, results);

        /// <summary>What this walker needs, for the message when it is not supported.</summary>
        internal const string Needs = "AVX2";
    }

    /// <summary>
    /// 8 lanes per vector, the checks as 512-bit compares into mask registers, each vector's entries
    /// read by two masked 4-lane AVX2 gathers, one per half (.NET 10 has no 512-bit gather)
    /// (<see cref="BatchWalkerKind.Avx512Gather"/>).
    /// </summary>
    public static class Gather8Batch
    {
        /// <summary>Lanes per vector.</summary>
        public const int Lanes = 8;

        /// <summary>Whether AVX-512F (the checks) and AVX2 (the gathers) are available to this process.</summary>
        public static bool IsSupported => Gather8.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with this walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results) =>
            Dispatch(BatchWalkerKind.Avx512Gather, memory, config, rootHpa, default, levels, addresses, access, results);

        /// <summary>What this walker needs, for the message when it is not supported.</summary>
        internal const string Needs = "AVX-512F and AVX2";
    }

    /// <summary>
    /// 8 lanes per vector, the checks as 512-bit compares, each lane's entry read with a plain 8-byte
    /// load (the offsets stored, loaded one by one, the entries put together in registers): the 32
    /// loads of a level overlap as the interleaved walker's do, without its per-lane bookkeeping or a
    /// gather's microcode (<see cref="BatchWalkerKind.Avx512Loads"/>).
    /// </summary>
    public static class Loads8Batch
    {
        /// <summary>Lanes per vector.</summary>
        public const int Lanes = 8;

        /// <summary>Whether AVX-512F is available to this process (false with <c>DOTNET_EnableAVX512=0</c> or <c>DOTNET_EnableHWIntrinsic=0</c>).</summary>
        public static bool IsSupported => Loads8.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with this walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results) =>
            Dispatch(BatchWalkerKind.Avx512Loads, memory, config, rootHpa, default, levels, addresses, access, results);

        /// <summary>What this walker needs, for the message when it is not supported.</summary>
        internal const string Needs = "AVX-512F";
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    // rootHpas: one root per address, or empty for rootHpa throughout.
    private static void RunVectorWalker<TVector, TOps, TLoads>(BatchWalkerKind kind, string needs, HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        where TVector : unmanaged
        where TOps : struct, IVectorOps<TVector>
        where TLoads : struct, IEntryLoads<TVector>
    {
        if (!TLoads.IsSupported)
            throw new PlatformNotSupportedException($"The {kind.Name()} batch walker needs {needs}, which this CPU or the runtime (DOTNET_Enable*=0?) does not offer; supported here: {SupportedBatchWalkerNames}.");
        if (!WalkBatchPrologue(memory, config, rootHpa, rootHpas, levels, addresses, access, results))
            WalkVectorGroups<TVector, TOps, TLoads>(memory, config, rootHpa, rootHpas, levels, addresses, access, results);
    }
}
