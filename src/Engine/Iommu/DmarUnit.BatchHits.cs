using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Paging;

namespace Engine.Iommu;

// The batch's hit pass: the straight line of Translate for a whole chunk, in two steps — each
// request's fast context and 4K IOTLB probe (scalar: the probes are independent, so they overlap;
// large pages are looked up again one by one),
// then the results of eight requests at a time built and stored with AVX-512 — instead of one
// result struct per request. Requests the straight line does not take are left to the caller.
public sealed unsafe partial class DmarUnit
{
    /// <summary>Whether the batch builds its hit results eight at a time (AVX-512).</summary>
    internal static bool BatchHitsUseVector512 => Avx512F.IsSupported && Avx512DQ.IsSupported;

    /// <summary>
    /// Translates the requests of <paramref name="requests"/> (at most 64) that the straight line takes,
    /// writing their results; returns a mask of those done (bit i = request i). Identical results to
    /// <see cref="TryTranslateHit"/> request by request.
    /// </summary>
    [SkipLocalsInit]
    private ulong TranslateHits(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results)
    {
        int count = requests.Length;
        if (!_useBatchVector || !Volatile.Read(ref _translationEnabled))
            return TranslateHitsOneByOne(requests, results);

        // Step 1: per request, the data word of its IOTLB entry (0 when the straight line does not apply).
        ulong* data = stackalloc ulong[BatchChunk];
        ulong* words = stackalloc ulong[BatchChunk];
        ref TranslationRequest first = ref MemoryMarshal.GetReference(requests);
        ProbeChunk(ref first, count, data, words);

        // Step 2: eight results at a time; lanes that missed are written too, then left to the caller.
        ulong done = 0;
        ref TranslationResult output = ref MemoryMarshal.GetReference(results);
        Vector512<ulong> addressMask = Vector512.Create(EptEntry.AddressMask);
        Vector512<ulong> byteMask = Vector512.Create(0xFFUL);
        Vector512<ulong> one = Vector512<ulong>.One;
        Vector512<ulong> hitFlag = Vector512.Create(1UL << 56);
        Vector512<ulong> lowFirst = Vector512.Create(0UL, 8, 1, 9, 2, 10, 3, 11);
        Vector512<ulong> highFirst = Vector512.Create(4UL, 12, 5, 13, 6, 14, 7, 15);
        Vector512<ulong> evens = Vector512.Create(0UL, 2, 4, 6, 8, 10, 12, 14);
        Vector512<ulong> odds = Vector512.Create(1UL, 3, 5, 7, 9, 11, 13, 15);
        Vector512<ulong> requiredByAccess = Vector512.Create((ulong)RequiredBitsByAccess);
        ref ulong requestWords = ref Unsafe.As<TranslationRequest, ulong>(ref first);
        int i8 = 0;
        for (; i8 + 8 <= count; i8 += 8)
        {
            Vector512<ulong> d = Vector512.Load(data + i8);
            // Eight requests: words 0 (IOVA) and 1 (PASID, source id, access, ATS) of each.
            Vector512<ulong> front = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8));
            Vector512<ulong> back = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8 + 8));
            Vector512<ulong> access = (Avx512F.PermuteVar8x64x2(front, odds, back) >> 48) & Vector512.Create(7UL);
            Vector512<ulong> need = Avx512F.ShiftRightLogicalVariable(requiredByAccess, access << 2) & Vector512.Create(0xFUL);
            // A hit: every required bit (bit 3 marks an entry) present in the data word.
            ulong hits = Vector512.Equals(Vector512.AndNot(need, d), Vector512<ulong>.Zero).ExtractMostSignificantBits();
            if (hits == 0)
                continue;
            Vector512<ulong> iova = Avx512F.PermuteVar8x64x2(front, evens, back);
            Vector512<ulong> shift = (d >> Iotlb.PageShiftShift) & byteMask;
            Vector512<ulong> offsetMask = Avx512F.ShiftLeftLogicalVariable(one, shift) - one;
            Vector512<ulong> hpa = (d & addressMask) | (iova & offsetMask);
            Vector512<ulong> level = Avx512DQ.MultiplyLow(shift, Vector512.Create(7UL)) >> 6;
            // Bytes 8..15 of a result: DID, status 0, size, permissions, snoop, fault 0, IOTLB hit.
            Vector512<ulong> meta = (Vector512.Load(words + i8) & Vector512.Create(0xFFFFUL)) | (level << 24)
                | ((d & Vector512.Create(7UL)) << 32) | (((d >> 52) & one) << 40) | hitFlag;
            ref TranslationResult lane = ref Unsafe.Add(ref output, i8);
            Avx512F.PermuteVar8x64x2(hpa, lowFirst, meta).StoreUnsafe(ref Unsafe.As<TranslationResult, ulong>(ref lane));
            Avx512F.PermuteVar8x64x2(hpa, highFirst, meta).StoreUnsafe(ref Unsafe.As<TranslationResult, ulong>(ref Unsafe.Add(ref lane, 4)));
            done |= hits << i8;
        }
        if (i8 < count)
            done |= TranslateHitsOneByOne(requests[i8..], results[i8..]) << i8;
        return done;
    }

    // Step 1 on its own, so the register allocator sees only this loop.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ProbeChunk(ref TranslationRequest first, int count, ulong* data, ulong* words)
    {
        ulong* fastWords = _fastWords;
        ulong stamp = fastWords[ContextCache.SourceIds];
        Iotlb iotlb = Iotlb;
        for (int i = 0; i < count; i++)
        {
            ref TranslationRequest request = ref Unsafe.Add(ref first, i);
            ulong iova = request.Iova;
            ulong word = fastWords[request.SourceId];
            ulong d = 0;
            if (request.Pasid == TranslationRequest.NoPasid && !request.IsTranslationRequest
                && (word >> 41) == stamp && (iova >> (int)(word >> 16)) == 0)
                d = iotlb.LookupData4K((ushort)word, iova);
            data[i] = d;
            words[i] = word;
        }
    }

    // The scalar twin of TranslateHits (and its path without AVX-512).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong TranslateHitsOneByOne(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results)
    {
        ulong done = 0;
        for (int i = 0; i < requests.Length; i++)
        {
            if (TryTranslateHit(requests[i], out results[i]))
                done |= 1UL << i;
        }
        return done;
    }
}
