using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Memory;

namespace Engine.Paging;

// The 8-lane batch walker: a group of 32 addresses as four 8-lane vectors, walked level by level,
// the checks as 512-bit compares (mask registers). .NET 10 exposes no 512-bit gather (Avx512F,
// Avx10v1.V512 and Vector512 have none; the only gathers are Avx2's VEX forms), so each 8-lane load
// is two 4-lane vpgatherqq, the halves of the vector, issued back to back.
internal static unsafe partial class PageWalker
{
    /// <summary>
    /// The 8-lane ("AVX-512") batch walker: a group of <see cref="BatchGroup"/> addresses as four
    /// 8-lane vectors; the present / reserved / in-memory checks as 512-bit compares into mask
    /// registers. .NET 10 exposes no 512-bit gather intrinsic (<c>Avx512F</c>, <c>Avx10v1.V512</c>
    /// and <c>Vector512</c> have none), so each level's 8-lane load is two interleaved 4-lane AVX2
    /// masked gathers (<c>vpgatherqq ymm</c>), one per half. Results are bit-identical to
    /// <see cref="WalkReference"/>.
    /// </summary>
    /// <remarks>
    /// A gather loads each lane's entry once, with one aligned 8-byte element load, and only for the
    /// lanes of its mask — a lane whose table pointer lies outside host memory is masked off, never
    /// dereferenced. Element loads of one gather are unordered among themselves, which does not
    /// matter: each lane's next load depends on its own entry's address bits, as in the scalar walk.
    /// </remarks>
    public static class Avx512GatherBatch
    {
        /// <summary>Lanes per vector (two 4-lane gathers).</summary>
        public const int Lanes = 8;


        /// <summary>
        /// Whether AVX-512F (for the 512-bit checks) and AVX2 (for the gathers) are available to this
        /// process: false with <c>DOTNET_EnableAVX512=0</c>, <c>DOTNET_EnableAVX2=0</c> or <c>DOTNET_EnableHWIntrinsic=0</c>.
        /// </summary>
        public static bool IsSupported => Avx512F.IsSupported && Avx2.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with the 8-lane walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        {
            if (!IsSupported)
                throw new PlatformNotSupportedException($"The avx512 batch walker needs AVX-512F and AVX2, which this CPU or the runtime (DOTNET_EnableAVX512=0?) does not offer; supported here: {SupportedBatchWalkerNames}.");
            if (!WalkBatchPrologue(memory, config, rootHpa, levels, addresses, access, results))
                WalkGroups8<GatherLoads>(memory, config, rootHpa, levels, addresses, access, results);
        }
    }

    /// <summary>
    /// The 8-lane batch walker with scalar loads: <see cref="Avx512GatherBatch"/>'s 512-bit checks,
    /// but each lane's entry read with a plain 8-byte load (the lane offsets stored, loaded one by one,
    /// the entries put together in registers). The 16 loads of a level are independent, so they overlap
    /// as the interleaved walker's do, without its per-lane bookkeeping or a gather's microcode.
    /// Results are bit-identical to <see cref="WalkReference"/>.
    /// </summary>
    public static class Avx512LoadsBatch
    {
        /// <summary>Whether AVX-512F is available to this process (false with <c>DOTNET_EnableAVX512=0</c> or <c>DOTNET_EnableHWIntrinsic=0</c>).</summary>
        public static bool IsSupported => Avx512F.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with this walker.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        {
            if (!IsSupported)
                throw new PlatformNotSupportedException($"The avx512-loads batch walker needs AVX-512F, which this CPU or the runtime (DOTNET_EnableAVX512=0?) does not offer; supported here: {SupportedBatchWalkerNames}.");
            if (!WalkBatchPrologue(memory, config, rootHpa, levels, addresses, access, results))
                WalkGroups8<ScalarLoads>(memory, config, rootHpa, levels, addresses, access, results);
        }
    }

    /// <summary>How an 8-lane walker reads the entries of one level.</summary>
    private interface IEntryLoads
    {
        /// <summary>
        /// The entries at <paramref name="region"/> + <paramref name="at"/> of the lanes of <paramref name="mask"/>, 0
        /// elsewhere; <paramref name="safe"/> is an offset inside memory, <paramref name="scratch"/> 16 aligned words.
        /// </summary>
        static abstract Vector512<ulong> Load8(byte* region, Vector512<ulong> at, Vector512<ulong> mask, Vector512<ulong> safe, ulong* scratch);
    }

    /// <summary>Two 4-lane AVX2 masked gathers, one per half.</summary>
    private readonly struct GatherLoads : IEntryLoads
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load8(byte* region, Vector512<ulong> at, Vector512<ulong> mask, Vector512<ulong> safe, ulong* scratch)
        {
            Vector256<ulong> zero = Vector256<ulong>.Zero;
            Vector256<ulong> low = Avx2.GatherMaskVector256(zero, (ulong*)region, at.GetLower().AsInt64(), mask.GetLower(), 1);
            Vector256<ulong> high = Avx2.GatherMaskVector256(zero, (ulong*)region, at.GetUpper().AsInt64(), mask.GetUpper(), 1);
            return Vector512.Create(low, high);
        }
    }

    /// <summary>Eight plain loads; a lane outside the mask reads a harmless word inside memory and is zeroed after.</summary>
    private readonly struct ScalarLoads : IEntryLoads
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load8(byte* region, Vector512<ulong> at, Vector512<ulong> mask, Vector512<ulong> safe, ulong* scratch)
        {
            // The offsets go out through memory (a wide store forwards to narrow loads); the entries
            // come back through registers (narrow stores would not forward to a wide load).
            Vector512.ConditionalSelect(mask, at, safe).Store(scratch);
            return Vector512.Create(
                *(ulong*)(region + scratch[0]), *(ulong*)(region + scratch[1]), *(ulong*)(region + scratch[2]), *(ulong*)(region + scratch[3]),
                *(ulong*)(region + scratch[4]), *(ulong*)(region + scratch[5]), *(ulong*)(region + scratch[6]), *(ulong*)(region + scratch[7])) & mask;
        }
    }

    // AggressiveOptimization: full optimization from the first call, so the start-up measurement
    // times the same code a long run uses.
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WalkGroups8<TLoads>(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        where TLoads : struct, IEntryLoads
    {
        const int Lanes = Avx512GatherBatch.Lanes;
        const int Vectors = BatchGroup / Lanes;
        const int VectorBytes = Lanes * sizeof(ulong);
        {
            int width = PageSizes.WidthOfLevels(levels);
            byte* region = memory.RegionPointer;
            ulong baseHpa = memory.BaseHpa;
            ulong limit = memory.Limit;
            ulong rootOffset = rootHpa - baseHpa;
            if (rootOffset >= limit)
            {
                // The root is outside memory (or memory is being disposed): every lane faults there.
                for (int i = 0; i < addresses.Length; i++)
                    results[i] = Walk(memory, config, rootHpa, levels, addresses[i], access);
                return;
            }

            Vector512<ulong> zero = Vector512<ulong>.Zero;
            Vector512<ulong> present = Vector512.Create(config.PresentMask);
            Vector512<ulong> limits = Vector512.Create(limit);
            Vector512<ulong> addressMask = Vector512.Create(EptEntry.AddressMask);
            Vector512<ulong> bases = Vector512.Create(baseHpa);
            Vector512<ulong> required = Vector512.Create(RequiredPermissions(config, access));
            Vector512<ulong> levelMask = Vector512.Create((ulong)PageSizes.LevelMask);
            Vector512<ulong> frameOffset = Vector512.Create((ulong)(HostMemory.FrameSize - 1));
            Vector512<ulong> roots = Vector512.Create(rootOffset);
            Vector512<ulong> allPermissions = Vector512.Create(config.PermissionMask);
            Vector512<ulong> laneIndex = Vector512.Create(0UL, 1, 2, 3, 4, 5, 6, 7);

            // The per-vector state in one block aligned to the vector size: stackalloc promises less,
            // and a vector that straddles two cache lines slows every load and store of it. (Before,
            // the 8-lane walker took 7.0 to 10.2 ns per walk depending on the process; now a steady 8.4.)
            // 6 state arrays of Vectors, the tail copy (Vectors), 3 leaf arrays (1 each), 1 for alignment.
            byte* block = stackalloc byte[(9 * Vectors + 4) * VectorBytes];
            Vector512<ulong>* address = (Vector512<ulong>*)(((nuint)block + VectorBytes - 1) & ~(nuint)(VectorBytes - 1));
            Vector512<ulong>* offset = address + Vectors;
            Vector512<ulong>* permissions = offset + Vectors;
            Vector512<ulong>* active = permissions + Vectors;
            Vector512<ulong>* loaded = active + Vectors;
            Vector512<ulong>* entry = loaded + Vectors;
            ulong* tail = (ulong*)(entry + Vectors);  // BatchGroup = Vectors * Lanes ulongs
            ulong* leafHpa = tail + BatchGroup;       // Lanes ulongs each: one vector
            ulong* leafEntry = leafHpa + Lanes;
            ulong* leafPermissions = leafEntry + Lanes;
            ulong* scratch = leafPermissions + Lanes;   // 2 * Lanes words, for TLoads

            fixed (ulong* source = addresses)
            {
                for (int start = 0; start < addresses.Length; start += BatchGroup)
                {
                    int count = Math.Min(BatchGroup, addresses.Length - start);
                    int used = (count + Lanes - 1) / Lanes;
                    ulong* group = source + start;
                    if (count < BatchGroup)
                    {
                        // The last, short group: its lanes from a zero-padded copy, the rest masked off.
                        new Span<ulong>(tail, BatchGroup).Clear();
                        new ReadOnlySpan<ulong>(group, count).CopyTo(new Span<ulong>(tail, count));
                        group = tail;
                    }

                    // Lanes that exist and fit the width walk; an address beyond the width is the scalar walk's fault.
                    uint beyond = 0;
                    for (int v = 0; v < used; v++)
                    {
                        Vector512<ulong> a = Vector512.Load(group + v * Lanes);
                        Vector512<ulong> exists = Vector512.LessThan(laneIndex, Vector512.Create((ulong)(count - v * Lanes)));
                        Vector512<ulong> fits = Vector512.Equals(Vector512.ShiftRightLogical(a, width), zero);
                        address[v] = a;
                        offset[v] = roots;
                        permissions[v] = allPermissions;
                        active[v] = exists & fits;
                        beyond |= (uint)Vector512.AndNot(exists, fits).ExtractMostSignificantBits() << (v * Lanes);
                    }
                    if (beyond != 0)
                        FinishLanes(memory, config, rootHpa, levels, addresses, access, results, start, beyond);

                    for (int level = levels; level >= 1; level--)
                    {
                        int shift = PageSizes.ShiftOfLevel(level);
                        Vector512<ulong> hot = Vector512.Create(config.Hot(level));

                        // All gathers of this level first: independent, so their loads overlap.
                        for (int v = 0; v < used; v++)
                        {
                            Vector512<ulong> load = active[v] & Vector512.LessThan(offset[v], limits);
                            Vector512<ulong> at = offset[v] + (((address[v] >> shift) & levelMask) << 3);
                            loaded[v] = load;
                            entry[v] = load == zero ? zero : TLoads.Load8(region, at, load, roots, scratch + v * 2 * Lanes);
                        }

                        uint unusual = 0;
                        uint walking = 0;
                        for (int v = 0; v < used; v++)
                        {
                            Vector512<ulong> e = entry[v];
                            // Usual: loaded (inside memory), present, and none of this level's reserved bits nor PS.
                            Vector512<ulong> usual = Vector512.AndNot(loaded[v], Vector512.Equals(e & present, zero)) & Vector512.Equals(e & hot, zero);
                            unusual |= (uint)Vector512.AndNot(active[v], usual).ExtractMostSignificantBits() << (v * Lanes);
                            Vector512<ulong> p = permissions[v] & e;
                            if (level == 1)
                            {
                                uint leaves = (uint)usual.ExtractMostSignificantBits();
                                if (leaves == 0)
                                    continue;
                                uint denied = ~(uint)Vector512.Equals(Vector512.AndNot(required, p), zero).ExtractMostSignificantBits() & leaves;
                                ((e & addressMask) | (address[v] & frameOffset)).Store(leafHpa);
                                e.Store(leafEntry);
                                p.Store(leafPermissions);
                                WriteLeaves(results, start + v * Lanes, leaves, denied, leafHpa, leafEntry, leafPermissions);
                                continue;
                            }
                            offset[v] = (e & addressMask) - bases;
                            permissions[v] = p;
                            active[v] = usual;
                            walking |= (uint)usual.ExtractMostSignificantBits();
                        }
                        if (unusual != 0)
                            FinishLanes(memory, config, rootHpa, levels, addresses, access, results, start, unusual);
                        if (walking == 0)
                            break;
                    }
                }
            }
        }
    }
}
