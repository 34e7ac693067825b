using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Engine.Memory;

namespace Engine.Paging;

// The batch walkers: many addresses of one table walked level by level, so the loads of one level
// are independent and in flight together — memory-level parallelism, the C anchors' "batched 16"
// row. A lane that meets anything unusual (a fault, a large leaf, a pointer outside Engine's region)
// is finished by the scalar walk, so results are exactly Walk's. Four walkers: the interleaved
// scalar one below, and three vector ones over one driver (PageWalker.VectorBatch.cs, the walkers in
// PageWalker.VectorWalkers.cs): 4-lane AVX2 gathers, 8-lane checks over AVX2 gathers, 8-lane checks
// over plain loads. WalkBatch dispatches to the one chosen in PageWalker.BatchSelection.cs.
internal static unsafe partial class PageWalker
{
    /// <summary>Addresses walked together per group (every batch walker).</summary>
    /// <remarks>
    /// 64, not the C anchors' 16: the C walk is leaner, so 16 of its walks fill the core's window;
    /// ours need more in flight. 32 beat 16, and 64 beat 32 again (a batch chunk's 64 misses then walk
    /// as one group, each level's 64 loads together; the measurements are in
    /// bench/Engine.Benchmarks/RESULTS.md, "Figures behind constants"). Lane masks are 64-bit: 64 is the most.
    /// </remarks>
    public const int BatchGroup = 64;

    /// <summary>The shortest batch <see cref="WalkBatch"/> gives to a selected gather walker; shorter ones go to the interleaved walker.</summary>
    /// <remarks>
    /// A lone gather's latency is not hidden by others: below about 8 lanes the interleaved walker's
    /// plain loads win, on cache-resident and DRAM-bound tables alike (figures in RESULTS.md,
    /// "Figures behind constants").
    /// </remarks>
    public const int GatherMinimumBatch = 8;

    /// <summary>
    /// Walks every address of <paramref name="addresses"/> in the table at <paramref name="rootHpa"/>
    /// with the batch walker <paramref name="kind"/> and writes one result each to
    /// <paramref name="results"/>; identical to calling <see cref="Walk"/> for each. The caller is
    /// inside an epoch-protected region.
    /// </summary>
    /// <remarks>
    /// A batch shorter than <see cref="GatherMinimumBatch"/> goes to the interleaved walker even when
    /// a gather walker is asked for: a lone gather's latency is not hidden by others. The caller has
    /// checked that <paramref name="kind"/> runs here (<see cref="ForcedBatchWalker"/>).
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
    public static void WalkBatch(BatchWalkerKind kind, HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
    {
        if (kind > BatchWalkerKind.Interleaved && addresses.Length < GatherMinimumBatch)
            kind = BatchWalkerKind.Interleaved;
        WalkBatchWith(kind, memory, config, rootHpa, levels, addresses, access, results);
    }

    /// <summary>
    /// <see cref="WalkBatch"/> with the walker <paramref name="kind"/>, whatever is selected (and whatever the batch length).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a batch walker.</exception>
    /// <exception cref="PlatformNotSupportedException">This CPU or runtime cannot run <paramref name="kind"/>.</exception>
    public static void WalkBatchWith(BatchWalkerKind kind, HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results) =>
        Dispatch(kind, memory, config, rootHpa, default, levels, addresses, access, results);

    // The walker `kind`, over one table (rootHpas empty) or a table per address (rootHpas[i], rootHpa its first).
    private static void Dispatch(BatchWalkerKind kind, HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
    {
        switch (kind)
        {
            case BatchWalkerKind.Interleaved:
                if (!WalkBatchPrologue(memory, config, rootHpa, rootHpas, levels, addresses, access, results))
                    InterleavedBatch.WalkGroups(memory, config, rootHpa, rootHpas, levels, addresses, access, results);
                return;
            case BatchWalkerKind.Avx2Gather:
                RunVectorWalker<Vector256<ulong>, Lanes4, Gather4>(kind, Gather4Batch.Needs, memory, config, rootHpa, rootHpas, levels, addresses, access, results);
                return;
            case BatchWalkerKind.Avx512Gather:
                RunVectorWalker<Vector512<ulong>, Lanes8, Gather8>(kind, Gather8Batch.Needs, memory, config, rootHpa, rootHpas, levels, addresses, access, results);
                return;
            case BatchWalkerKind.Avx512Loads:
                RunVectorWalker<Vector512<ulong>, Lanes8, Loads8>(kind, Loads8Batch.Needs, memory, config, rootHpa, rootHpas, levels, addresses, access, results);
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Not a batch walker; known: {BatchWalkerKinds.Names}.");
        }
    }

    /// <summary>
    /// <see cref="WalkBatch"/> for addresses that each walk their own table: address <c>i</c> in the
    /// table at <paramref name="rootHpas"/>[<c>i</c>], every table of <paramref name="levels"/> levels;
    /// identical to calling <see cref="Walk"/> for each. The caller is inside an epoch-protected region.
    /// </summary>
    /// <remarks>
    /// The loads of one level are in flight together whatever table each address walks, so a batch
    /// that spans several domains is walked as one group instead of one group per table (the
    /// translator's batch, issue 14). A root outside Engine's region, or not frame-aligned, sends its
    /// address to the scalar walk.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="results"/> or <paramref name="rootHpas"/> is shorter than <paramref name="addresses"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a batch walker.</exception>
    /// <exception cref="PlatformNotSupportedException">This CPU or runtime cannot run <paramref name="kind"/>.</exception>
    public static void WalkBatchPerRoot(BatchWalkerKind kind, HostMemory memory, in WalkerConfig config, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
    {
        if ((uint)kind > (uint)BatchWalkerKind.Avx512Loads)   // before a short batch turns any kind into the interleaved walker
            throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Not a batch walker; known: {BatchWalkerKinds.Names}.");
        if (rootHpas.Length < addresses.Length)
            throw new ArgumentException($"rootHpas holds {rootHpas.Length} roots for {addresses.Length} addresses.", nameof(rootHpas));
        if (rootHpas.IsEmpty)
        {
            if (results.Length < addresses.Length)
                throw new ArgumentException($"results holds {results.Length} entries for {addresses.Length} addresses.", nameof(results));
            return;
        }
        if (kind > BatchWalkerKind.Interleaved && addresses.Length < GatherMinimumBatch)
            kind = BatchWalkerKind.Interleaved;
        rootHpas = rootHpas[..addresses.Length];
        Dispatch(kind, memory, config, rootHpas[0], rootHpas, levels, addresses, access, results);
    }

    /// <summary>The table address <c>i</c> walks: its own root where <paramref name="rootHpas"/> has one per address, else <paramref name="rootHpa"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong RootOf(ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int i) => rootHpas.IsEmpty ? rootHpa : rootHpas[i];

    /// <summary>
    /// The checks every batch walker makes first: the result span's length (misuse: an exception),
    /// then shapes the vector paths do not serve — an odd level count, a misaligned root, the CPU's
    /// EPT view — which are walked one by one here. True when nothing is left to do.
    /// </summary>
    private static bool WalkBatchPrologue(HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
    {
        if (results.Length < addresses.Length)
            throw new ArgumentException($"results holds {results.Length} entries for {addresses.Length} addresses.", nameof(results));
        // With a root per address, a misaligned root is its own lane's scalar walk (the vector setup checks it).
        if ((uint)(levels - 2) > 3 || (rootHpas.IsEmpty && (rootHpa & (HostMemory.FrameSize - 1)) != 0) || config.RejectWriteOnly)
        {
            // Unusual shapes and the CPU's EPT view take the scalar path; the batch serves the IOMMU's.
            for (int i = 0; i < addresses.Length; i++)
                results[i] = Walk(memory, config, RootOf(rootHpa, rootHpas, i), levels, addresses[i], access);
            return true;
        }
        return false;
    }

    /// <summary>
    /// Whether a <see cref="WalkResult"/> is three 8-byte words: HPA, entry, then fault | level &lt;&lt; 8 |
    /// permissions &lt;&lt; 16 (a successful walk's fault is 0). Checked from the layout itself, so a reordered
    /// struct makes the vector code that writes and reads results whole fall back to field by field.
    /// </summary>
    internal static readonly bool ResultsAreThreeWords = ResultLayoutIsThreeWords();

    private static bool ResultLayoutIsThreeWords()
    {
        WalkResult walk = default;
        return Unsafe.SizeOf<WalkResult>() == 24 && OffsetOf(walk, walk.Hpa) == 0 && OffsetOf(walk, walk.Entry) == 8
            && OffsetOf(walk, walk.Fault) == 16 && OffsetOf(walk, walk.Level) == 17 && OffsetOf(walk, walk.Permissions) == 18
            && (byte)WalkFault.None == 0 && Unsafe.SizeOf<WalkFault>() == 1 && Unsafe.SizeOf<Access>() == 1;
    }

    private static nint OffsetOf<T>(in WalkResult walk, in T field) =>
        Unsafe.ByteOffset(ref Unsafe.As<WalkResult, byte>(ref Unsafe.AsRef(in walk)), ref Unsafe.As<T, byte>(ref Unsafe.AsRef(in field)));

    /// <summary>The permission bits <paramref name="access"/> needs (without enforced execute, X is checked as R).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong RequiredPermissions(in WalkerConfig config, Access access)
    {
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        return required;
    }

    /// <summary>
    /// Finishes the lanes of <paramref name="lanes"/> (bit <c>i</c> = address <c>first + i</c>) with
    /// the scalar walk. Out of line: the vector walkers send only unusual lanes here.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FinishLanes(HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results, int first, ulong lanes)
    {
        while (lanes != 0)
        {
            int i = first + BitOperations.TrailingZeroCount(lanes);
            lanes &= lanes - 1;
            results[i] = Walk(memory, config, RootOf(rootHpa, rootHpas, i), levels, addresses[i], access);
        }
    }

    /// <summary>
    /// Writes the level-1 results of the lanes of <paramref name="leaves"/> (bit <c>i</c> = address
    /// <c>first + i</c>, values at index <c>i</c> of the three arrays): a permission fault for the
    /// lanes of <paramref name="permissionFaults"/>, a 4 KiB translation for the others, as Walk does.
    /// </summary>
    /// <remarks>
    /// AggressiveInlining: the JIT does not inline a method with a loop on its own, and out of line
    /// this runs as tier-0 code for the first ~100 ms of a process — long enough to halve the gather
    /// walkers' speed in the start-up measurement.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteLeaves(Span<WalkResult> results, int first, uint leaves, uint permissionFaults, ulong* hpas, ulong* entries, ulong* permissions)
    {
        while (leaves != 0)
        {
            int i = BitOperations.TrailingZeroCount(leaves);
            leaves &= leaves - 1;
            results[first + i] = (permissionFaults & (1u << i)) != 0
                ? WalkResult.Faulted(WalkFault.Permission, 1, entries[i])
                : new WalkResult(hpas[i], entries[i], WalkFault.None, 1, (Access)permissions[i]);
        }
    }

    /// <summary>
    /// The interleaved scalar batch walker: groups of <see cref="BatchGroup"/> addresses, level by
    /// level, all loads of one level issued before any is used. Runs on every CPU.
    /// </summary>
    public static class InterleavedBatch
    {
        /// <summary>Always true: plain scalar code.</summary>
        public static bool IsSupported => true;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with the interleaved walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        {
            Dispatch(BatchWalkerKind.Interleaved, memory, config, rootHpa, default, levels, addresses, access, results);
        }

        // AggressiveOptimization: full optimization from the first call, so the start-up measurement
        // times the same code a long run uses (tier 0 would be several times slower).
        // rootHpas: one root per address, or empty for rootHpa throughout.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        internal static void WalkGroups(HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        {
            ulong required = RequiredPermissions(config, access);
            int width = PageSizes.WidthOfLevels(levels);
            byte* region = memory.RegionPointer;
            ulong baseHpa = memory.BaseHpa;
            ulong limit = memory.Limit;
            ulong present = config.PresentMask;
            ulong rootOffset = rootHpa - baseHpa;

            ulong* offsets = stackalloc ulong[BatchGroup];
            ulong* entries = stackalloc ulong[BatchGroup];
            ulong* permissions = stackalloc ulong[BatchGroup];
            int* lanes = stackalloc int[BatchGroup];

            for (int start = 0; start < addresses.Length; start += BatchGroup)
            {
                int count = Math.Min(BatchGroup, addresses.Length - start);
                int active = 0;
                for (int i = 0; i < count; i++)
                {
                    ulong address = addresses[start + i];
                    ulong laneRootHpa = RootOf(rootHpa, rootHpas, start + i);
                    ulong laneRoot = laneRootHpa - baseHpa;
                    if ((address >> width) != 0 || laneRoot >= limit || (laneRootHpa & (HostMemory.FrameSize - 1)) != 0)
                    {
                        results[start + i] = Walk(memory, config, RootOf(rootHpa, rootHpas, start + i), levels, address, access);
                        continue;
                    }
                    lanes[active] = i;
                    offsets[active] = laneRoot;
                    permissions[active] = config.PermissionMask;
                    active++;
                }
                for (int level = levels; level >= 1 && active > 0; level--)
                {
                    int shift = PageSizes.ShiftOfLevel(level);
                    ulong divert = config.DivertMask(level);
                    // All loads of this level first: independent, so they overlap.
                    for (int k = 0; k < active; k++)
                    {
                        ulong index = (addresses[start + lanes[k]] >> shift) & PageSizes.LevelMask;
                        entries[k] = offsets[k] < limit ? Volatile.Read(ref *(ulong*)(region + offsets[k] + (index << 3))) : 0;
                    }
                    int kept = 0;
                    for (int k = 0; k < active; k++)
                    {
                        ulong e = entries[k];
                        int lane = lanes[k];
                        if (offsets[k] >= limit || (e & present) == 0 || (e & divert) != 0)
                        {
                            results[start + lane] = Walk(memory, config, RootOf(rootHpa, rootHpas, start + lane), levels, addresses[start + lane], access);
                            continue;
                        }
                        ulong perms = permissions[k] & e;
                        if (level == 1)
                        {
                            results[start + lane] = (required & ~perms) != 0
                                ? WalkResult.Faulted(WalkFault.Permission, 1, e)
                                : new WalkResult((e & EptEntry.AddressMask) | (addresses[start + lane] & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)perms);
                            continue;
                        }
                        lanes[kept] = lane;
                        offsets[kept] = (e & EptEntry.AddressMask) - baseHpa;
                        permissions[kept] = perms;
                        kept++;
                    }
                    active = kept;
                }
            }
        }
    }
}
