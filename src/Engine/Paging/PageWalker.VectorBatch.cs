using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Memory;

namespace Engine.Paging;

// One driver for the vector batch walkers. A group of BatchGroup (32) addresses is held as
// BatchGroup / Lanes vectors and walked level by level: per level, every vector's entries are loaded
// first (independent loads, in flight together), then checked with vector compares — pointer inside
// memory, present, none of the level's reserved bits nor PS. A lane that fails a check leaves its
// vector for the scalar walk (FinishLanes), so the results are Walk's, bit for bit. Each lane carries
// its own table offset from the root down, so the lanes may start in different tables of one level
// count (WalkBatchPerRoot: the translator's batch walks the misses of several domains as one group).
// Where all eight lanes of a vector end in 4 KiB translations, the vector is stored as eight results at once.
//
// What varies is policy, in operator structs as TensorPrimitives does it: the vector width (IVectorOps:
// 4 lanes of Vector256, 8 of Vector512) and how one vector's entries are read (IEntryLoads: one AVX2
// gather, two AVX2 gathers for 8 lanes, or plain loads). Each walker is one line choosing them.
internal static unsafe partial class PageWalker
{
    /// <summary>The lane-wise operations the driver needs, for one vector width of 64-bit lanes.</summary>
    private interface IVectorOps<TVector>
        where TVector : unmanaged
    {
        static abstract int Lanes { get; }

        static abstract TVector Zero { get; }

        /// <summary>0, 1, 2, … in lane order.</summary>
        static abstract TVector LaneIndex { get; }

        static abstract TVector Create(ulong value);

        static abstract TVector Load(ulong* source);

        static abstract void Store(TVector value, ulong* destination);

        static abstract TVector And(TVector left, TVector right);

        static abstract TVector Or(TVector left, TVector right);

        /// <summary><paramref name="left"/> and not <paramref name="right"/>.</summary>
        static abstract TVector AndNot(TVector left, TVector right);

        static abstract TVector Add(TVector left, TVector right);

        static abstract TVector Subtract(TVector left, TVector right);

        static abstract TVector ShiftRight(TVector value, int count);

        static abstract TVector ShiftLeft(TVector value, int count);

        /// <summary>All ones in the lanes where <paramref name="left"/> &lt; <paramref name="right"/> (unsigned).</summary>
        static abstract TVector LessThan(TVector left, TVector right);

        /// <summary>All ones in the lanes where the two are equal.</summary>
        static abstract TVector Equal(TVector left, TVector right);

        static abstract bool IsZero(TVector value);

        /// <summary>Bit <c>i</c> = the top bit of lane <c>i</c>.</summary>
        static abstract uint LaneMask(TVector value);

        /// <summary>
        /// Stores one <see cref="WalkResult"/> per lane at <paramref name="destination"/>, as three words
        /// each: <paramref name="hpa"/>, <paramref name="entry"/>, <paramref name="misc"/> (fault | level
        /// &lt;&lt; 8 | permissions &lt;&lt; 16). Only where <see cref="ResultsAreThreeWords"/>.
        /// </summary>
        static abstract void StoreResults(TVector hpa, TVector entry, TVector misc, ref ulong destination);
    }

    /// <summary>How the entries of one vector of lanes are read at one level.</summary>
    private interface IEntryLoads<TVector>
        where TVector : unmanaged
    {
        /// <summary>Whether this CPU and runtime can run these loads.</summary>
        static abstract bool IsSupported { get; }

        /// <summary>
        /// The entries at <paramref name="region"/> + <paramref name="at"/> for the lanes of
        /// <paramref name="mask"/>, 0 elsewhere; a lane outside the mask is never dereferenced there
        /// (<paramref name="safe"/> is an offset inside memory it may read instead). <paramref name="scratch"/>
        /// holds 2 × Lanes aligned words.
        /// </summary>
        static abstract TVector Load(byte* region, TVector at, TVector mask, TVector safe, ulong* scratch);
    }

    private readonly struct Lanes4 : IVectorOps<Vector256<ulong>>
    {
        public static int Lanes => 4;
        public static Vector256<ulong> Zero => Vector256<ulong>.Zero;
        public static Vector256<ulong> LaneIndex => Vector256.Create(0UL, 1, 2, 3);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Create(ulong value) => Vector256.Create(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Load(ulong* source) => Vector256.Load(source);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<ulong> value, ulong* destination) => value.Store(destination);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> And(Vector256<ulong> left, Vector256<ulong> right) => left & right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Or(Vector256<ulong> left, Vector256<ulong> right) => left | right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> AndNot(Vector256<ulong> left, Vector256<ulong> right) => Vector256.AndNot(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Add(Vector256<ulong> left, Vector256<ulong> right) => left + right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Subtract(Vector256<ulong> left, Vector256<ulong> right) => left - right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> ShiftRight(Vector256<ulong> value, int count) => Vector256.ShiftRightLogical(value, count);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> ShiftLeft(Vector256<ulong> value, int count) => Vector256.ShiftLeft(value, count);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> LessThan(Vector256<ulong> left, Vector256<ulong> right) => Vector256.LessThan(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<ulong> Equal(Vector256<ulong> left, Vector256<ulong> right) => Vector256.Equals(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool IsZero(Vector256<ulong> value) => value == Vector256<ulong>.Zero;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint LaneMask(Vector256<ulong> value) => value.ExtractMostSignificantBits();

        // Lane by lane: interleaving three vectors of four takes two-source permutes, which need AVX-512VL.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void StoreResults(Vector256<ulong> hpa, Vector256<ulong> entry, Vector256<ulong> misc, ref ulong destination)
        {
            for (int i = 0; i < 4; i++)
            {
                Unsafe.Add(ref destination, 3 * i) = hpa.GetElement(i);
                Unsafe.Add(ref destination, (3 * i) + 1) = entry.GetElement(i);
                Unsafe.Add(ref destination, (3 * i) + 2) = misc.GetElement(i);
            }
        }
    }

    private readonly struct Lanes8 : IVectorOps<Vector512<ulong>>
    {
        public static int Lanes => 8;
        public static Vector512<ulong> Zero => Vector512<ulong>.Zero;
        public static Vector512<ulong> LaneIndex => Vector512.Create(0UL, 1, 2, 3, 4, 5, 6, 7);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Create(ulong value) => Vector512.Create(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Load(ulong* source) => Vector512.Load(source);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<ulong> value, ulong* destination) => value.Store(destination);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> And(Vector512<ulong> left, Vector512<ulong> right) => left & right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Or(Vector512<ulong> left, Vector512<ulong> right) => left | right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> AndNot(Vector512<ulong> left, Vector512<ulong> right) => Vector512.AndNot(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Add(Vector512<ulong> left, Vector512<ulong> right) => left + right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Subtract(Vector512<ulong> left, Vector512<ulong> right) => left - right;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> ShiftRight(Vector512<ulong> value, int count) => Vector512.ShiftRightLogical(value, count);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> ShiftLeft(Vector512<ulong> value, int count) => Vector512.ShiftLeft(value, count);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> LessThan(Vector512<ulong> left, Vector512<ulong> right) => Vector512.LessThan(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<ulong> Equal(Vector512<ulong> left, Vector512<ulong> right) => Vector512.Equals(left, right);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool IsZero(Vector512<ulong> value) => value == Vector512<ulong>.Zero;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint LaneMask(Vector512<ulong> value) => (uint)value.ExtractMostSignificantBits();

        // Eight results are 24 words, three vectors: each put together by two two-source permutes
        // (hpa with entry, then misc into the gaps).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void StoreResults(Vector512<ulong> hpa, Vector512<ulong> entry, Vector512<ulong> misc, ref ulong destination)
        {
            Vector512<ulong> low = Avx512F.PermuteVar8x64x2(hpa, Vector512.Create(0UL, 8, 0, 1, 9, 0, 2, 10), entry);
            Avx512F.PermuteVar8x64x2(low, Vector512.Create(0UL, 1, 8, 3, 4, 9, 6, 7), misc).StoreUnsafe(ref destination);
            Vector512<ulong> middle = Avx512F.PermuteVar8x64x2(hpa, Vector512.Create(0UL, 3, 11, 0, 4, 12, 0, 5), entry);
            Avx512F.PermuteVar8x64x2(middle, Vector512.Create(10UL, 1, 2, 11, 4, 5, 12, 7), misc).StoreUnsafe(ref destination, 8);
            Vector512<ulong> high = Avx512F.PermuteVar8x64x2(hpa, Vector512.Create(13UL, 0, 6, 14, 0, 7, 15, 0), entry);
            Avx512F.PermuteVar8x64x2(high, Vector512.Create(0UL, 13, 2, 3, 14, 5, 6, 15), misc).StoreUnsafe(ref destination, 16);
        }
    }

    /// <summary>One masked 4-lane AVX2 gather (<c>vpgatherqq ymm</c>).</summary>
    private readonly struct Gather4 : IEntryLoads<Vector256<ulong>>
    {
        public static bool IsSupported => Avx2.IsSupported;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<ulong> Load(byte* region, Vector256<ulong> at, Vector256<ulong> mask, Vector256<ulong> safe, ulong* scratch) =>
            Avx2.GatherMaskVector256(Vector256<ulong>.Zero, (ulong*)region, at.AsInt64(), mask, 1);
    }

    /// <summary>
    /// Two masked 4-lane AVX2 gathers, one per half of an 8-lane vector: .NET 10 exposes no 512-bit
    /// gather (<c>Avx512F</c>, <c>Avx10v1.V512</c> and <c>Vector512</c> have none).
    /// </summary>
    private readonly struct Gather8 : IEntryLoads<Vector512<ulong>>
    {
        public static bool IsSupported => Avx512F.IsSupported && Avx2.IsSupported;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load(byte* region, Vector512<ulong> at, Vector512<ulong> mask, Vector512<ulong> safe, ulong* scratch)
        {
            Vector256<ulong> zero = Vector256<ulong>.Zero;
            Vector256<ulong> low = Avx2.GatherMaskVector256(zero, (ulong*)region, at.GetLower().AsInt64(), mask.GetLower(), 1);
            Vector256<ulong> high = Avx2.GatherMaskVector256(zero, (ulong*)region, at.GetUpper().AsInt64(), mask.GetUpper(), 1);
            return Vector512.Create(low, high);
        }
    }

    /// <summary>Eight plain loads; a lane outside the mask reads a harmless word inside memory and is zeroed after.</summary>
    private readonly struct Loads8 : IEntryLoads<Vector512<ulong>>
    {
        public static bool IsSupported => Avx512F.IsSupported;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load(byte* region, Vector512<ulong> at, Vector512<ulong> mask, Vector512<ulong> safe, ulong* scratch)
        {
            // The offsets go out through memory (a wide store forwards to narrow loads); the entries
            // come back through registers (narrow stores would not forward to a wide load).
            Vector512.ConditionalSelect(mask, at, safe).Store(scratch);
            return Vector512.Create(
                *(ulong*)(region + scratch[0]), *(ulong*)(region + scratch[1]), *(ulong*)(region + scratch[2]), *(ulong*)(region + scratch[3]),
                *(ulong*)(region + scratch[4]), *(ulong*)(region + scratch[5]), *(ulong*)(region + scratch[6]), *(ulong*)(region + scratch[7])) & mask;
        }
    }

    // WalkVectorGroups's record per vector of lanes: its addresses, table offsets, permissions so far,
    // lanes still walking, lanes loaded at this level, their entries, and the loads' scratch (two vectors).
    private const int AddressField = 0, OffsetField = 1, PermissionsField = 2, ActiveField = 3, LoadedField = 4, EntryField = 5, ScratchField = 6, StateVectors = 8;

    /// <summary>
    /// The vector walk of every group of <paramref name="addresses"/>, with the width and loads the type
    /// arguments choose: in the table at <paramref name="rootHpa"/>, or where <paramref name="rootHpas"/>
    /// is not empty, each address in the table at its own root (the same length as <paramref name="addresses"/>).
    /// </summary>
    /// <remarks>
    /// AggressiveOptimization: full optimization from the first call, so the start-up measurement
    /// times the same code a long run uses (tier 0 would be several times slower).
    /// </remarks>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WalkVectorGroups<TVector, TOps, TLoads>(HostMemory memory, in WalkerConfig config, ulong rootHpa, ReadOnlySpan<ulong> rootHpas, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        where TVector : unmanaged
        where TOps : struct, IVectorOps<TVector>
        where TLoads : struct, IEntryLoads<TVector>
    {
        int lanes = TOps.Lanes;
        int vectors = BatchGroup / lanes;
        int vectorBytes = lanes * sizeof(ulong);
        int width = PageSizes.WidthOfLevels(levels);
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        bool perAddress = !rootHpas.IsEmpty;
        ulong rootOffset = rootHpa - baseHpa;
        if (!perAddress && rootOffset >= limit)
        {
            // The root is outside Engine's region (embedder RAM, or memory being disposed): the scalar walk decides.
            for (int i = 0; i < addresses.Length; i++)
                results[i] = Walk(memory, config, rootHpa, levels, addresses[i], access);
            return;
        }

        TVector zero = TOps.Zero;
        TVector present = TOps.Create(config.PresentMask);
        TVector limits = TOps.Create(limit);
        TVector addressMask = TOps.Create(EptEntry.AddressMask);
        TVector bases = TOps.Create(baseHpa);
        TVector required = TOps.Create(RequiredPermissions(config, access));
        TVector levelMask = TOps.Create((ulong)PageSizes.LevelMask);
        TVector frameOffset = TOps.Create((ulong)(HostMemory.FrameSize - 1));
        // With a root per address, `roots` is only the harmless offset a masked-off lane may read (0 lies
        // inside memory whenever a lane loads at all: every lane's root was checked against the limit).
        TVector roots = TOps.Create(perAddress ? 0 : rootOffset);
        TVector allPermissions = TOps.Create(config.PermissionMask);
        TVector laneIndex = TOps.LaneIndex;
        TVector levelOne = TOps.Create(1UL << 8);   // a result's third word: no fault, level 1
        TVector byteMask = TOps.Create(0xFFUL);
        uint allLanes = (1u << lanes) - 1;

        // The per-vector state in one block aligned to the vector size: stackalloc promises less, and
        // a vector that straddles two cache lines slows every load and store of it (the 8-lane walker's
        // time per walk varied with the process before this alignment).
        // One record of StateVectors vectors per vector of lanes (its fields at constant offsets from
        // one pointer: as six arrays, each array's pointer was a register or a spill, issue 14), three
        // leaf vectors, the tail copy (BatchGroup words of addresses, then as many of roots), and one
        // vector of slack for the alignment.
        byte* block = stackalloc byte[(StateVectors * vectors + 3 + 1) * vectorBytes + 2 * BatchGroup * sizeof(ulong)];
        TVector* state = (TVector*)(((nuint)block + (nuint)vectorBytes - 1) & ~(nuint)(vectorBytes - 1));
        ulong* leafHpa = (ulong*)(state + StateVectors * vectors);   // one vector each
        ulong* leafEntry = leafHpa + lanes;
        ulong* leafPermissions = leafEntry + lanes;
        ulong* tail = leafPermissions + lanes;        // 2 × BatchGroup words

        fixed (ulong* source = addresses)
        fixed (ulong* rootSource = rootHpas)
        {
            for (int start = 0; start < addresses.Length; start += BatchGroup)
            {
                int count = Math.Min(BatchGroup, addresses.Length - start);
                int used = (count + lanes - 1) / lanes;
                ulong* group = source + start;
                ulong* groupRoots = rootSource + start;   // with a root per address
                if (count < BatchGroup)
                {
                    // The last, short group: its lanes from a zero-padded copy, the rest masked off.
                    new Span<ulong>(tail, BatchGroup).Clear();
                    new ReadOnlySpan<ulong>(group, count).CopyTo(new Span<ulong>(tail, count));
                    group = tail;
                    if (perAddress)
                    {
                        // The roots after the addresses, in the second half of the copy's room (the lanes past count are masked off).
                        new ReadOnlySpan<ulong>(groupRoots, count).CopyTo(new Span<ulong>(tail + BatchGroup, count));
                        groupRoots = tail + BatchGroup;
                    }
                }

                // Lanes that exist and fit the width walk; an address beyond the width is the scalar walk's fault.
                ulong beyond = 0;
                for (int v = 0; v < used; v++)
                {
                    TVector a = TOps.Load(group + v * lanes);
                    TVector exists = TOps.LessThan(laneIndex, TOps.Create((ulong)(count - v * lanes)));
                    TVector fits = TOps.Equal(TOps.ShiftRight(a, width), zero);
                    TVector root = roots;
                    if (perAddress)
                    {
                        // Each lane's own table: one outside Engine's region, or misaligned, is the scalar walk's.
                        TVector laneRootHpas = TOps.Load(groupRoots + v * lanes);
                        root = TOps.Subtract(laneRootHpas, bases);
                        fits = TOps.And(fits, TOps.And(TOps.LessThan(root, limits), TOps.Equal(TOps.And(laneRootHpas, frameOffset), zero)));
                    }
                    TVector* record = state + (v * StateVectors);
                    record[AddressField] = a;
                    record[OffsetField] = root;
                    record[PermissionsField] = allPermissions;
                    record[ActiveField] = TOps.And(exists, fits);
                    beyond |= (ulong)TOps.LaneMask(TOps.AndNot(exists, fits)) << (v * lanes);
                }
                if (beyond != 0)
                    FinishLanes(memory, config, rootHpa, rootHpas, levels, addresses, access, results, start, beyond);

                for (int level = levels; level >= 1; level--)
                {
                    int shift = PageSizes.ShiftOfLevel(level);
                    TVector divert = TOps.Create(config.DivertMask(level));

                    // All loads of this level first: independent, so they overlap.
                    for (int v = 0; v < used; v++)
                    {
                        TVector* record = state + (v * StateVectors);
                        TVector offset = record[OffsetField];
                        TVector load = TOps.And(record[ActiveField], TOps.LessThan(offset, limits));
                        TVector at = TOps.Add(offset, TOps.ShiftLeft(TOps.And(TOps.ShiftRight(record[AddressField], shift), levelMask), 3));
                        record[LoadedField] = load;
                        record[EntryField] = TOps.IsZero(load) ? zero : TLoads.Load(region, at, load, roots, (ulong*)(record + ScratchField));
                    }

                    ulong unusual = 0;
                    ulong walking = 0;
                    for (int v = 0; v < used; v++)
                    {
                        TVector* record = state + (v * StateVectors);
                        TVector e = record[EntryField];
                        // Usual: loaded (inside memory), present, and none of this level's reserved bits nor PS.
                        TVector usual = TOps.And(TOps.AndNot(record[LoadedField], TOps.Equal(TOps.And(e, present), zero)), TOps.Equal(TOps.And(e, divert), zero));
                        unusual |= (ulong)TOps.LaneMask(TOps.AndNot(record[ActiveField], usual)) << (v * lanes);
                        TVector p = TOps.And(record[PermissionsField], e);
                        if (level == 1)
                        {
                            uint leaves = TOps.LaneMask(usual);
                            if (leaves == 0)
                                continue;
                            uint denied = ~TOps.LaneMask(TOps.Equal(TOps.AndNot(required, p), zero)) & leaves;
                            TVector hpa = TOps.Or(TOps.And(e, addressMask), TOps.And(record[AddressField], frameOffset));
                            int first = start + (v * lanes);
                            if (leaves == allLanes && denied == 0 && ResultsAreThreeWords && first + lanes <= results.Length)
                            {
                                // The usual vector: every lane a 4 KiB translation, stored whole.
                                TOps.StoreResults(hpa, e, TOps.Or(levelOne, TOps.ShiftLeft(TOps.And(p, byteMask), 16)),
                                    ref Unsafe.As<WalkResult, ulong>(ref results[first]));
                                continue;
                            }
                            TOps.Store(hpa, leafHpa);
                            TOps.Store(e, leafEntry);
                            TOps.Store(p, leafPermissions);
                            WriteLeaves(results, first, leaves, denied, leafHpa, leafEntry, leafPermissions);
                            continue;
                        }
                        record[OffsetField] = TOps.Subtract(TOps.And(e, addressMask), bases);
                        record[PermissionsField] = p;
                        record[ActiveField] = usual;
                        walking |= TOps.LaneMask(usual);
                    }
                    if (unusual != 0)
                        FinishLanes(memory, config, rootHpa, rootHpas, levels, addresses, access, results, start, unusual);
                    if (walking == 0)
                        break;
                }
            }
        }
    }
}
