using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Native;

/// <summary>
/// The per-request work engine_translate_batch adds around <c>DmarUnit.TranslateBatch</c>: checking
/// the C requests before any is translated, and rewriting Engine's results in the C layout in place.
/// </summary>
/// <remarks>
/// <para>
/// Both passes are over 16-byte records whose second qword carries everything that matters, so a
/// 64-byte AVX-512 vector holds four of them, the interesting qwords in the odd lanes. Done one by
/// one they cost about as much as the IOTLB hits they wrap (about 35 instructions a request against
/// the engine's hit path); four at a time they cost a few. The scalar versions are the oracle and
/// serve the tail, units built with ENGINE_IOMMU_NO_SIMD, and machines without AVX-512; the vector
/// versions give bit-identical answers (tests compare SIMD and no-SIMD units request by request).
/// </para>
/// <para>
/// Request, second qword: pasid 31:0 | source id 47:32 | access 55:48 | flags 63:56. Valid: access
/// bits 7:3 and flags bits 7:1 clear, pasid 20 bits or 0xFFFFFFFF.
/// Engine result, second qword (<see cref="Layout.ResultIsPacked"/>): did 15:0 | status 23:16 | size
/// 31:24 | permissions 39:32 | snoop 40 | fault 55:48 | IOTLB hit 56. C result, second qword:
/// status 7:0 | fault_reason 15:8 | page_shift 23:16 | permissions 31:24 | domain_id 47:32 | flags 63:48.
/// </para>
/// </remarks>
internal static unsafe class BatchLayout
{
    private const ulong ReservedBits = 0xFEF8_0000_0000_0000UL;
    private const uint PasidLimit = 0x10_0000;

    /// <summary>Whether the vector versions run here (AVX-512F, as the NativeAOT compile targets it).</summary>
    public static bool VectorSupported => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>True when every request is well formed (see the remarks); false sends the caller to the per-request check that names the first bad one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllValid(EngineRequest* requests, nuint count, bool simd)
    {
        nuint i = 0;
        ulong bad = 0;
        if (simd && VectorSupported)
        {
            // Odd lanes only: the even ones are IOVAs, which may hold anything.
            Vector512<ulong> reserved = Vector512.Create(0, ReservedBits, 0, ReservedBits, 0, ReservedBits, 0, ReservedBits);
            Vector512<ulong> odd = Vector512.Create(0, ulong.MaxValue, 0, ulong.MaxValue, 0, ulong.MaxValue, 0, ulong.MaxValue);
            Vector512<ulong> low32 = Vector512.Create(0xFFFF_FFFFUL), limit = Vector512.Create((ulong)PasidLimit);
            Vector512<ulong> span = Vector512.Create((ulong)(Abi.NoPasid - PasidLimit));
            Vector512<ulong> acc = Vector512<ulong>.Zero;
            for (; i + 4 <= count; i += 4)
            {
                Vector512<ulong> v = Vector512.Load((ulong*)(requests + i));
                // pasid - 2^20 < 0xFFFFFFFF - 2^20 (unsigned, 64-bit): pasid in [2^20, 2^32 - 2]
                Vector512<ulong> wide = Vector512.LessThan((v & low32) - limit, span);
                acc |= (v & reserved) | (wide & odd);
            }
            bad = acc == Vector512<ulong>.Zero ? 0UL : 1UL;
        }
        ulong* q = (ulong*)(requests + i) + 1;
        for (; i < count; i++, q += 2)
        {
            ulong w = *q;
            uint pasidTooWide = (uint)w - PasidLimit < Abi.NoPasid - PasidLimit ? 1u : 0u;
            bad |= (w & ReservedBits) | pasidTooWide;
        }
        return bad == 0;
    }

    /// <summary>
    /// Rewrites <paramref name="count"/> Engine results at <paramref name="results"/> as
    /// <c>engine_translation</c>s, in place; returns the OR of 1 &lt;&lt; status over them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Convert(EngineTranslation* results, int count, bool simd)
    {
        int i = 0;
        ulong statuses = 0;
        if (simd && VectorSupported)
        {
            ref ulong table = ref MemoryMarshal.GetReference(StatusAndSize);
            Vector512<ulong> lower = Vector512.LoadUnsafe(ref table), upper = Vector512.LoadUnsafe(ref table, 8);
            Vector512<ulong> odd = Vector512.Create(0, ulong.MaxValue, 0, ulong.MaxValue, 0, ulong.MaxValue, 0, ulong.MaxValue);
            Vector512<ulong> seen = Vector512<ulong>.Zero;
            for (; i + 4 <= count; i += 4)
            {
                ulong* p = (ulong*)(results + i);
                Vector512<ulong> v = Vector512.Load(p);
                Vector512<ulong> index = (Vector512.ShiftRightLogical(v, 14) & Vector512.Create(0xCUL)) | (Vector512.ShiftRightLogical(v, 24) & Vector512.Create(3UL));
                Vector512<ulong> c = Avx512F.PermuteVar8x64x2(lower, index, upper)
                    | Vector512.ShiftLeft(v & Vector512.Create(0xFFFFUL), 32)
                    | (Vector512.ShiftRightLogical(v, 8) & Vector512.Create(0xFF00_0000UL))
                    | (Vector512.ShiftRightLogical(v, 40) & Vector512.Create(0xFF00UL))
                    | (Vector512.ShiftLeft(v, 8) & Vector512.Create(1UL << 48))
                    | (Vector512.ShiftRightLogical(v, 7) & Vector512.Create(1UL << 49));
                seen |= Avx512F.ShiftLeftLogicalVariable(Vector512<ulong>.One, Vector512.ShiftRightLogical(index, 2)) & odd;
                Vector512.ConditionalSelect(odd, c, v).Store(p);
            }
            statuses = seen[1] | seen[3] | seen[5] | seen[7];
        }
        ulong* words = (ulong*)(results + i) + 1;
        for (; i < count; i++, words += 2)
        {
            *words = ConvertWord(*words, out ulong status);
            statuses |= 1UL << (int)status;
        }
        return statuses;
    }

    /// <summary>The C result's second qword from Engine's (see the remarks); <paramref name="status"/> is Engine's status.</summary>
    /// <remarks>
    /// Shifts and masks, and one lookup, indexed by status × 4 + size, for what depends on both:
    /// ENGINE_FAULTED (bit 0), page_shift (23:16, 0 on a fault) and ENGINE_TR_PASSTHROUGH (bit 50).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ConvertWord(ulong q1, out ulong status)
    {
        ulong index = ((q1 >> 14) & 0xC) | ((q1 >> 24) & 3);
        status = index >> 2;
        return Unsafe.Add(ref MemoryMarshal.GetReference(StatusAndSize), (nint)index)
            | (q1 & 0xFFFF) << 32                       // domain_id
            | (q1 >> 8) & 0xFF00_0000UL                  // permissions
            | (q1 >> 40) & 0xFF00UL                      // fault_reason
            | (q1 << 8) & 1UL << 48                      // ENGINE_TR_SNOOP
            | (q1 >> 7) & 1UL << 49;                     // ENGINE_TR_IOTLB_HIT
    }

    // [status * 4 + size]: status 0 translated, 1 pass-through, 2 faulted, 3 disposed; size 1..3 = 4K/2M/1G.
    private static ReadOnlySpan<ulong> StatusAndSize =>
    [
        0, 12UL << 16, 21UL << 16, 30UL << 16,
        1UL << 50, 1UL << 50 | 12UL << 16, 1UL << 50 | 21UL << 16, 1UL << 50 | 30UL << 16,
        1, 1, 1, 1,
        0, 0, 0, 0,
    ];
}
