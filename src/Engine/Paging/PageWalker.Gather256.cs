using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Memory;

namespace Engine.Paging;

// The AVX2 gather batch walker: a group of 32 addresses as eight 4-lane vectors, walked level by
// level; per level and vector one masked vpgatherqq loads the 4 entries, and the checks of the
// interleaved walker (pointer inside memory, present, no reserved bit or PS) are vector compares.
// A lane that fails one leaves the vector for the scalar walk, exactly as in the interleaved walker.
internal static unsafe partial class PageWalker
{
    /// <summary>
    /// The AVX2 gather batch walker: per level, one masked <c>vpgatherqq</c> of the entries of 4
    /// lanes (eight of them in flight for a group of <see cref="BatchGroup"/>), the present / reserved /
    /// in-memory checks as 256-bit compares. Results are bit-identical to <see cref="WalkReference"/>.
    /// </summary>
    /// <remarks>
    /// A gather loads each lane's entry once, with one aligned 8-byte element load, and only for the
    /// lanes of its mask — a lane whose table pointer lies outside host memory is masked off, never
    /// dereferenced. Element loads of one gather are unordered among themselves, which does not
    /// matter: each lane's next load depends on its own entry's address bits, as in the scalar walk.
    /// </remarks>
    public static class Avx2GatherBatch
    {
        /// <summary>Lanes per gather.</summary>
        public const int Lanes = 4;

        private const int Vectors = BatchGroup / Lanes;

        private const int VectorBytes = Lanes * sizeof(ulong);

        /// <summary>Whether AVX2 is available to this process (false with <c>DOTNET_EnableAVX2=0</c> or <c>DOTNET_EnableHWIntrinsic=0</c>).</summary>
        public static bool IsSupported => Avx2.IsSupported;

        /// <summary>As <see cref="PageWalker.WalkBatch"/>, always with AVX2 gathers.</summary>
        /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
        /// <exception cref="PlatformNotSupportedException"><see cref="IsSupported"/> is false.</exception>
        public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
        {
            if (!IsSupported)
                throw new PlatformNotSupportedException($"The avx2 batch walker needs AVX2, which this CPU or the runtime (DOTNET_EnableAVX2=0?) does not offer; supported here: {SupportedBatchWalkerNames}.");
            if (!WalkBatchPrologue(memory, config, rootHpa, levels, addresses, access, results))
                WalkGroups(memory, config, rootHpa, levels, addresses, access, results);
        }

        // AggressiveOptimization: full optimization from the first call, so the start-up measurement
        // times the same code a long run uses.
        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void WalkGroups(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
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

            Vector256<ulong> zero = Vector256<ulong>.Zero;
            Vector256<ulong> present = Vector256.Create(config.PresentMask);
            Vector256<ulong> limits = Vector256.Create(limit);
            Vector256<ulong> addressMask = Vector256.Create(EptEntry.AddressMask);
            Vector256<ulong> bases = Vector256.Create(baseHpa);
            Vector256<ulong> required = Vector256.Create(RequiredPermissions(config, access));
            Vector256<ulong> levelMask = Vector256.Create((ulong)PageSizes.LevelMask);
            Vector256<ulong> frameOffset = Vector256.Create((ulong)(HostMemory.FrameSize - 1));
            Vector256<ulong> roots = Vector256.Create(rootOffset);
            Vector256<ulong> allPermissions = Vector256.Create(config.PermissionMask);
            Vector256<ulong> laneIndex = Vector256.Create(0UL, 1, 2, 3);

            // The per-vector state in one block aligned to the vector size: stackalloc promises less,
            // and a vector that straddles two cache lines slows every load and store of it (see the
            // 8-lane walker, where it showed).
            // 6 state arrays of Vectors, the tail copy (Vectors), 3 leaf arrays (1 each), 1 for alignment.
            byte* block = stackalloc byte[(7 * Vectors + 4) * VectorBytes];
            Vector256<ulong>* address = (Vector256<ulong>*)(((nuint)block + VectorBytes - 1) & ~(nuint)(VectorBytes - 1));
            Vector256<ulong>* offset = address + Vectors;
            Vector256<ulong>* permissions = offset + Vectors;
            Vector256<ulong>* active = permissions + Vectors;
            Vector256<ulong>* loaded = active + Vectors;
            Vector256<ulong>* entry = loaded + Vectors;
            ulong* tail = (ulong*)(entry + Vectors);  // BatchGroup = Vectors * Lanes ulongs
            ulong* leafHpa = tail + BatchGroup;       // Lanes ulongs each: one vector
            ulong* leafEntry = leafHpa + Lanes;
            ulong* leafPermissions = leafEntry + Lanes;

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
                        Vector256<ulong> a = Vector256.Load(group + v * Lanes);
                        Vector256<ulong> exists = Vector256.LessThan(laneIndex, Vector256.Create((ulong)(count - v * Lanes)));
                        Vector256<ulong> fits = Vector256.Equals(Vector256.ShiftRightLogical(a, width), zero);
                        address[v] = a;
                        offset[v] = roots;
                        permissions[v] = allPermissions;
                        active[v] = exists & fits;
                        beyond |= Vector256.AndNot(exists, fits).ExtractMostSignificantBits() << (v * Lanes);
                    }
                    if (beyond != 0)
                        FinishLanes(memory, config, rootHpa, levels, addresses, access, results, start, beyond);

                    for (int level = levels; level >= 1; level--)
                    {
                        int shift = PageSizes.ShiftOfLevel(level);
                        Vector256<ulong> hot = Vector256.Create(config.Hot(level));

                        // All gathers of this level first: independent, so their loads overlap.
                        for (int v = 0; v < used; v++)
                        {
                            Vector256<ulong> load = active[v] & Vector256.LessThan(offset[v], limits);
                            Vector256<ulong> at = offset[v] + (((address[v] >> shift) & levelMask) << 3);
                            loaded[v] = load;
                            entry[v] = load == zero ? zero : Avx2.GatherMaskVector256(zero, (ulong*)region, at.AsInt64(), load, 1);
                        }

                        uint unusual = 0;
                        uint walking = 0;
                        for (int v = 0; v < used; v++)
                        {
                            Vector256<ulong> e = entry[v];
                            // Usual: loaded (inside memory), present, and none of this level's reserved bits nor PS.
                            Vector256<ulong> usual = Vector256.AndNot(loaded[v], Vector256.Equals(e & present, zero)) & Vector256.Equals(e & hot, zero);
                            unusual |= Vector256.AndNot(active[v], usual).ExtractMostSignificantBits() << (v * Lanes);
                            Vector256<ulong> p = permissions[v] & e;
                            if (level == 1)
                            {
                                uint leaves = usual.ExtractMostSignificantBits();
                                if (leaves == 0)
                                    continue;
                                uint denied = ~Vector256.Equals(Vector256.AndNot(required, p), zero).ExtractMostSignificantBits() & leaves;
                                ((e & addressMask) | (address[v] & frameOffset)).Store(leafHpa);
                                e.Store(leafEntry);
                                p.Store(leafPermissions);
                                WriteLeaves(results, start + v * Lanes, leaves, denied, leafHpa, leafEntry, leafPermissions);
                                continue;
                            }
                            offset[v] = (e & addressMask) - bases;
                            permissions[v] = p;
                            active[v] = usual;
                            walking |= usual.ExtractMostSignificantBits();
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
