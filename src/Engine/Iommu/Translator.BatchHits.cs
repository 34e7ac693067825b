using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Paging;

namespace Engine.Iommu;

// The batch's hit pass: the straight line of Translate for eight requests at a time — the request
// checks, the fast contexts (AVX2 gathers), the tags and sets as vectors, each set probed on its own
// (at the smallest page size the domain has cached: in a domain of mixed sizes, the larger pages are
// looked up again one by one), and the results built and stored as vectors
// instead of one result struct per request. Requests the straight line does not take are left to the caller.
internal unsafe partial struct Translator
{
    /// <summary>Whether the batch builds its hit results eight at a time (AVX-512).</summary>
    internal static bool BatchHitsUseVector512 => Avx512F.IsSupported && Avx512DQ.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Translates the requests of <paramref name="requests"/> (at most 64) that the straight line takes,
    /// writing their results; returns a mask of those done (bit i = request i). Identical results to
    /// <see cref="TryTranslateHit"/> request by request. <paramref name="missed"/>: the requests the
    /// straight line took and whose probe missed (every size the domain caches probed), which need
    /// only a walk (see <see cref="TryMissContextWords"/>).
    /// </summary>
    [SkipLocalsInit]
    private ulong TranslateHits(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results, out ulong missed)
    {
        int count = requests.Length;
        missed = 0;
        if (!_useBatchVector || !Volatile.Read(ref _translationEnabled))
            return TranslateHitsOneByOne(requests, results, 0, ref missed);

        // Scratch for the probes: 16 words on a 64-byte boundary.
        ulong* block = stackalloc ulong[24];
        ulong* scratch = (ulong*)(((nuint)block + 63) & ~(nuint)63);
        ref TranslationRequest first = ref MemoryMarshal.GetReference(requests);
        ulong* fastWords = _fastWords;
        Vector512<ulong> stamp = Vector512.Create(fastWords[ContextCache.SourceIds]);
        Iotlb iotlb = Iotlb;

        // Eight requests at a time: the straight line's checks and the 4K probe as vectors, then the
        // results built and stored; lanes that missed are written too, then left to the caller.
        ulong done = 0;
        ulong misses = 0;   // a local, not the out parameter: that one is written through memory
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
        // Word 1 of a request the straight line takes: PASID all ones, not an ATS request.
        Vector512<ulong> plainMask = Vector512.Create(0xFF00_0000_FFFF_FFFFUL);
        Vector512<ulong> plain = Vector512.Create(0x0000_0000_FFFF_FFFFUL);
        ref ulong requestWords = ref Unsafe.As<TranslationRequest, ulong>(ref first);
        int i8 = 0;
        for (; i8 + 8 <= count; i8 += 8)
        {
            // Eight requests: words 0 (IOVA) and 1 (PASID, source id, access, ATS) of each.
            Vector512<ulong> front = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8));
            Vector512<ulong> back = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8 + 8));
            Vector512<ulong> iova = Avx512F.PermuteVar8x64x2(front, evens, back);
            Vector512<ulong> info = Avx512F.PermuteVar8x64x2(front, odds, back);
            Vector512<ulong> word = SourceWords(fastWords, ref Unsafe.As<ulong, ushort>(ref Unsafe.Add(ref requestWords, 2 * i8)));
            Vector512<ulong> straight = Vector512.Equals(info & plainMask, plain) & Vector512.Equals(word >> FastContextWord.StampShift, stamp)
                & Vector512.Equals(Avx512F.ShiftRightLogicalVariable(iova, (word >> FastContextWord.WidthShift) & Vector512.Create(FastContextWord.WidthMask)), Vector512<ulong>.Zero);
            Vector512<ulong> d = iotlb.LookupDataSmallest(word & Vector512.Create(0xFFFFUL), iova, straight, scratch, out Vector512<ulong> sizes);
            Vector512<ulong> access = (info >> 48) & Vector512.Create(7UL);
            Vector512<ulong> need = Avx512F.ShiftRightLogicalVariable(requiredByAccess, access << 2) & Vector512.Create(0xFUL);
            // A hit: every required bit (bit 3 marks an entry) present in the data word.
            ulong hits = Vector512.Equals(Vector512.AndNot(need, d), Vector512<ulong>.Zero).ExtractMostSignificantBits();
            if (hits != 0xFF)
            {
                // A miss where the domain caches at most one size is final: not probed again one by
                // one (worked out only when a lane missed, so a chunk of hits pays one branch).
                Vector512<ulong> final = straight & Vector512.Equals(d, Vector512<ulong>.Zero) & Vector512.Equals(sizes & (sizes - one), Vector512<ulong>.Zero);
                misses |= final.ExtractMostSignificantBits() << i8;
                if (hits == 0)
                    continue;
            }
            Vector512<ulong> shift = (d >> IotlbData.PageShiftShift) & byteMask;
            Vector512<ulong> offsetMask = Avx512F.ShiftLeftLogicalVariable(one, shift) - one;
            Vector512<ulong> hpa = (d & addressMask) | (iova & offsetMask);
            Vector512<ulong> level = Avx512DQ.MultiplyLow(shift, Vector512.Create(7UL)) >> 6;
            // Bytes 8..15 of a result: DID, status 0, size, permissions, snoop, fault 0, IOTLB hit.
            Vector512<ulong> meta = (word & Vector512.Create(0xFFFFUL)) | (level << 24)
                | ((d & Vector512.Create(7UL)) << 32) | (((d >> IotlbData.SnoopShift) & one) << 40) | hitFlag;
            ref TranslationResult lane = ref Unsafe.Add(ref output, i8);
            Avx512F.PermuteVar8x64x2(hpa, lowFirst, meta).StoreUnsafe(ref Unsafe.As<TranslationResult, ulong>(ref lane));
            Avx512F.PermuteVar8x64x2(hpa, highFirst, meta).StoreUnsafe(ref Unsafe.As<TranslationResult, ulong>(ref Unsafe.Add(ref lane, 4)));
            done |= hits << i8;
        }
        // As in TryTranslateHit, the hits count only if the contexts are still current after every
        // probe; if an invalidation came in between, the chunk is done again one by one.
        if (Volatile.Read(ref fastWords[ContextCache.SourceIds]) != stamp.ToScalar())
            done = misses = 0;
        missed = misses;
        // The tail, and lanes the vector pass left (mostly larger pages of a domain of mixed sizes).
        ulong all = count == 64 ? ulong.MaxValue : (1UL << count) - 1;
        return (done | missed) == all ? done : TranslateHitsOneByOne(requests, results, done, ref missed);
    }

    /// <summary>
    /// The walk contexts of the requests in <paramref name="lanes"/> (misses of the straight line), eight at
    /// a time, as <see cref="TryMissContextWords"/> builds them one by one: each request's fast word read
    /// again, current at <paramref name="contextGeneration"/> and covering its address, then its root word
    /// (gathered after the fast words: see <see cref="FastRootWord"/>), valid and of the word's DID. Each
    /// is stored at its request's index in <paramref name="contexts"/>; returns the lanes that got one
    /// (the rest go one by one, where they are refused too, to the general path).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong MissContexts(ReadOnlySpan<TranslationRequest> requests, ulong lanes, uint contextGeneration, ResolvedContext* contexts)
    {
        ref ulong requestWords = ref Unsafe.As<TranslationRequest, ulong>(ref MemoryMarshal.GetReference(requests));
        Vector512<ulong> stamp = Vector512.Create(FastContextWord.StampOf(contextGeneration));
        Vector512<ulong> evens = Vector512.Create(0UL, 2, 4, 6, 8, 10, 12, 14);
        ulong* fastWords = _fastWords;
        ulong* rootWords = _rootWords;
        ulong ready = 0;
        for (int i8 = 0; i8 + 8 <= requests.Length; i8 += 8)
        {
            ulong eight = (lanes >> i8) & 0xFF;
            if (eight == 0)
                continue;
            Vector512<ulong> front = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8));
            Vector512<ulong> back = Vector512.LoadUnsafe(ref requestWords, (nuint)(2 * i8 + 8));
            Vector512<ulong> iova = Avx512F.PermuteVar8x64x2(front, evens, back);
            // Each request's words by its source id, eight plain loads each (see SourceWords).
            ref ushort sources = ref Unsafe.As<ulong, ushort>(ref Unsafe.Add(ref requestWords, 2 * i8));
            Vector512<ulong> word = SourceWords(fastWords, ref sources);
            Vector512<ulong> rootWord = SourceWords(rootWords, ref sources);
            Vector512<ulong> did = word & Vector512.Create(0xFFFFUL);
            // The word current and covering the address; FastRootWord.Matches as one compare (valid and DID).
            Vector512<ulong> matches = Vector512.Equals(word >> FastContextWord.StampShift, stamp)
                & Vector512.Equals(Avx512F.ShiftRightLogicalVariable(iova, (word >> FastContextWord.WidthShift) & Vector512.Create(FastContextWord.WidthMask)), Vector512<ulong>.Zero)
                & Vector512.Equals((rootWord >> FastRootWord.DidShift) & Vector512.Create(FastRootWord.ValidAndDidMask), did | Vector512.Create(FastRootWord.ValidAfterShift));
            Vector512<ulong> root = (rootWord & Vector512.Create(FastRootWord.FrameNumberMask)) << 12;
            // The tail as TryMissContextWords makes it: DID | levels << 16 | width << 24 | flags << 32.
            Vector512<ulong> tail = did | (((rootWord >> FastRootWord.LevelsShift) & Vector512.Create(7UL)) << 16)
                | (((word >> FastContextWord.WidthShift) & Vector512.Create(FastContextWord.WidthMask)) << 24)
                | (((word >> FastContextWord.FlagsShift) & Vector512.Create(0xFFUL)) << 32);
            ref ulong output = ref *(ulong*)(contexts + i8);
            Avx512F.PermuteVar8x64x2(root, Vector512.Create(0UL, 8, 1, 9, 2, 10, 3, 11), tail).StoreUnsafe(ref output);
            Avx512F.PermuteVar8x64x2(root, Vector512.Create(4UL, 12, 5, 13, 6, 14, 7, 15), tail).StoreUnsafe(ref Unsafe.Add(ref output, 8));
            ready |= (matches.ExtractMostSignificantBits() & eight) << i8;
        }
        return ready;
    }

    /// <summary>
    /// <paramref name="words"/>[source id] of eight consecutive requests, the first at <paramref name="requests"/>
    /// (read as ushorts): eight plain loads, not AVX2 gathers, which on Zen 4 cost about twice as much
    /// (a gather of four words 1.7–2.0 ns, four loads and inserts 0.8 ns, throughput).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> SourceWords(ulong* words, ref ushort requests)
    {
        // A request is eight ushorts; its source id is the seventh (bytes 12-13).
        const int Stride = 8, SourceAt = 6;
        return Vector512.Create(
            Volatile.Read(ref words[Unsafe.Add(ref requests, SourceAt)]), Volatile.Read(ref words[Unsafe.Add(ref requests, Stride + SourceAt)]),
            Volatile.Read(ref words[Unsafe.Add(ref requests, (2 * Stride) + SourceAt)]), Volatile.Read(ref words[Unsafe.Add(ref requests, (3 * Stride) + SourceAt)]),
            Volatile.Read(ref words[Unsafe.Add(ref requests, (4 * Stride) + SourceAt)]), Volatile.Read(ref words[Unsafe.Add(ref requests, (5 * Stride) + SourceAt)]),
            Volatile.Read(ref words[Unsafe.Add(ref requests, (6 * Stride) + SourceAt)]), Volatile.Read(ref words[Unsafe.Add(ref requests, (7 * Stride) + SourceAt)]));
    }

    // The scalar twin of TranslateHits (and its path without AVX-512): the straight line for every
    // request not yet in <done> or <missed>. Out of line, so the vector loop keeps its registers.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong TranslateHitsOneByOne(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results, ulong done, ref ulong missed)
    {
        ulong skip = done | missed;
        DmarUnit owner = _owner;
        for (int i = 0; i < requests.Length; i++)
        {
            if ((skip >> i & 1) != 0)
                continue;
            if (TryTranslateHit(owner, requests[i], out results[i], out bool miss))
                done |= 1UL << i;
            else if (miss)
                missed |= 1UL << i;
        }
        return done;
    }
}
