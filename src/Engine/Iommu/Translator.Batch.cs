using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

// Batch translation: IOTLB probes for the whole batch, then each chunk's misses walked together by
// the batch walker, each in its own domain's table (their loads overlap), then filled. Zero
// allocation: the per-chunk bookkeeping lives on the stack.
internal unsafe partial struct Translator
{
    private const int BatchChunk = 64;   // TranslateHits answers with a 64-bit mask

    /// <summary>
    /// Translates <paramref name="requests"/> into <paramref name="results"/> (one each, same order);
    /// the same translations and faults as calling <see cref="Translate"/> for each request in order
    /// (only <see cref="TranslationResult.IotlbHit"/> differs when a page repeats inside one batch:
    /// both requests walked together).
    /// </summary>
    /// <remarks>
    /// Each chunk of 64 requests reads the context-cache stamp once, as if its requests all started
    /// together: an invalidation that returns while a batch runs may still be missed by the rest of
    /// that chunk, never by a later batch. After <see cref="DmarUnit.Dispose"/> every result is
    /// <see cref="TranslationStatus.Disposed"/>.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="requests"/>.</exception>
    [SkipLocalsInit]
    public void TranslateBatch(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results)
    {
        if (results.Length < requests.Length)
            throw new ArgumentException($"results holds {results.Length} entries for {requests.Length} requests.", nameof(results));
        // The chunk's misses, by position in the chunk; room for a last whole vector of sixteen (MissPositions).
        Span<int> missIndex = stackalloc int[BatchChunk + 16];
        ResolvedContext* contextBlock = stackalloc ResolvedContext[BatchChunk];   // by position: a miss's walk context
        var contexts = new Span<ResolvedContext>(contextBlock, BatchChunk);
        Span<WalkResult> walks = stackalloc WalkResult[BatchChunk];
        for (int start = 0; start < requests.Length; start += BatchChunk)
        {
            int count = Math.Min(BatchChunk, requests.Length - start);
            int misses = 0;
            uint generation = _contextCache.Generation;   // before any context of the chunk is looked up
            // Pass 1: everything that needs no walk — the straight line's hits for the whole chunk,
            // then one by one TE off, faults before the IOTLB, and the hits it does not take.
            // A request the hit pass probed and missed goes straight to the walk list (its context from
            // its fast and root words); the rest take steps 1-5 in full.
            ReadOnlySpan<TranslationRequest> chunk = requests.Slice(start, count);
            Span<TranslationResult> chunkResults = results.Slice(start, count);
            ulong answered = TranslateHits(chunk, chunkResults, out ulong missed);
            // The straight-line misses' contexts eight at a time where AVX-512 runs the hit pass (a
            // separate pass: built inside the hit loop, their values took its registers).
            ulong ready = missed != 0 && _useBatchVector ? MissContexts(chunk, missed, generation, contextBlock) : 0;
            // Only the requests left: a chunk of hits runs no iteration at all. A miss the vector pass
            // gave its context (ready) only joins the list.
            ulong all = count == BatchChunk ? ulong.MaxValue : (1UL << count) - 1;
            ulong left = all & ~answered;
            if (_useBatchVector && left != 0 && (left & ~ready) == 0)
            {
                // Every request left is a miss with its context: the list is their positions, compressed.
                misses = MissPositions(left, missIndex);
                left = 0;
            }
            for (; left != 0; left &= left - 1)
            {
                int i = BitOperations.TrailingZeroCount(left);
                if ((ready >> i & 1) == 0)
                {
                    ref readonly TranslationRequest request = ref chunk[i];
                    // A straight-line miss's context goes into the list as two words, straight from the
                    // request's fast and root words: through a ResolvedContext local, the JIT stored it as
                    // two words and loaded it back as one 16-byte word (a failed store forward, issue 14).
                    if ((missed >> i & 1) != 0 && TryMissContextWords(request, generation, out ulong root, out ulong tail))
                    {
                        ref ulong entry = ref Unsafe.As<ResolvedContext, ulong>(ref contexts[i]);
                        entry = root;
                        Unsafe.Add(ref entry, 1) = tail;
                    }
                    else if (!TryWalkContext(request, generation, out chunkResults[i], out contexts[i]))
                    {
                        continue;
                    }
                }
                missIndex[misses++] = i;
            }
            if (misses != 0)
                WalkAndFillMisses(chunk, chunkResults, missIndex, misses, contexts, generation, walks);
        }
        GC.KeepAlive(_owner);   // as in Translate: the caches stay reachable until the last read
    }

    /// <summary>
    /// The positions of the bits of <paramref name="lanes"/>, ascending, into <paramref name="positions"/>
    /// sixteen at a time (AVX-512 compress); returns how many. <paramref name="positions"/> has room for
    /// sixteen past the last (each store is a whole vector).
    /// </summary>
    /// <remarks>Issue 14: bit by bit, the list cost a batched miss about 20 instructions.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int MissPositions(ulong lanes, Span<int> positions)
    {
        if (positions.Length < BatchChunk + 16)
            throw new ArgumentException("The miss list has no room for a whole last vector.", nameof(positions));
        ref int at = ref MemoryMarshal.GetReference(positions);
        Vector512<int> bit = Vector512.Create(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
        Vector512<int> position = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        int count = 0;
        for (int sixteen = 0; sixteen < BatchChunk; sixteen += 16)
        {
            int bits = (int)(lanes >> sixteen) & 0xFFFF;
            if (bits == 0)
                continue;
            Vector512<int> set = ~Vector512.Equals(Vector512.Create(bits) & bit, Vector512<int>.Zero);
            Avx512F.Compress(Vector512<int>.Zero, set, position + Vector512.Create(sixteen)).StoreUnsafe(ref at, (nuint)count);
            count += BitOperations.PopCount((uint)bits);
        }
        return count;
    }

    /// <summary>
    /// Pass 2 of a chunk: its misses walked together, each in its own domain's table, then every walk
    /// turned into its result and filled.
    /// </summary>
    /// <remarks>
    /// <para>The batch walker takes a root per address, so misses of different domains walk as one group
    /// and their loads overlap; only a chunk whose tables differ in level count is walked in one group per
    /// count (grouped by table and DID before, a chunk over four domains was four short walks, and the
    /// grouping cost a batched miss about 90 instructions, issue 14).</para>
    /// <para>One epoch protection and one thread-slot read for the whole chunk, and the miss counter added
    /// to once: the walks run with no fill between them, so the only locked instructions (the fills' set
    /// takes) come after the chunk's last table load. Each miss's fill ticket is taken for its own DID
    /// before any walk, as a single miss takes it before its walk, so every fill is checked against its
    /// own DID's ticket.</para>
    /// <para>What each walk's answer needs is laid out in rows of one stack block, in walk order (see
    /// <see cref="AddressRow"/>); the spans are read through references without bounds checks (their lengths
    /// are the chunk's, checked once here). <paramref name="requests"/>, <paramref name="results"/> and
    /// <paramref name="contextsByPosition"/>: the chunk's, by position; <paramref name="missIndex"/>: the
    /// positions of its misses, ascending; <paramref name="walks"/>: scratch of at least
    /// <paramref name="missIndex"/>'s length rounded up to eight.</para>
    /// </remarks>
    [SkipLocalsInit]
    private void WalkAndFillMisses(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results,
        Span<int> missIndex, int misses, ReadOnlySpan<ResolvedContext> contextsByPosition, uint generation, Span<WalkResult> walks)
    {
        int padded = (misses + 7) & ~7;
        if (misses <= 0 || misses > BatchChunk || requests.Length > BatchChunk || results.Length < requests.Length || contextsByPosition.Length < requests.Length
            || walks.Length < padded || missIndex.Length < padded)
            throw new ArgumentException("The batch's scratch is shorter than its chunk.");
        // The positions come from the bits of the chunk's request mask, so each is below its length.
        Debug.Assert(!missIndex[..misses].ContainsAnyExceptInRange(0, requests.Length - 1), "A miss outside the chunk.");
        ref ulong contextWords = ref Unsafe.As<ResolvedContext, ulong>(ref MemoryMarshal.GetReference(contextsByPosition));   // root, tail per context
        ref readonly int indexes = ref MemoryMarshal.GetReference(missIndex);
        ref readonly TranslationRequest firstRequest = ref MemoryMarshal.GetReference(requests);
        ulong* rows = stackalloc ulong[Rows * BatchChunk];
        ulong* address = rows + (AddressRow * BatchChunk);
        ulong* root = rows + (RootRow * BatchChunk);

        // The rows in miss order, with the tickets: taken here, before any walk.
        int levels = ContextLevels(Unsafe.Add(ref contextWords, (2 * indexes) + 1));
        int otherLevels = 0;
        if (_useBatchVector)
        {
            for (int n = misses; n < padded; n++)
                missIndex[n] = indexes;   // a padded lane repeats the first miss: in bounds, the same level count; walked by no one
            otherLevels = MissRowsEight(requests, (int*)Unsafe.AsPointer(ref Unsafe.AsRef(in indexes)), (ulong*)Unsafe.AsPointer(ref contextWords), padded, levels, rows);
        }
        else
        {
            // The scalar twin of MissRowsEight.
            for (int n = 0; n < misses; n++)
            {
                int index = Unsafe.Add(ref Unsafe.AsRef(in indexes), n);
                ulong tail = Unsafe.Add(ref contextWords, (2 * index) + 1);
                Iotlb.FillTicket ticket = Iotlb.BeginFill((ushort)tail);
                address[n] = Unsafe.Add(ref Unsafe.AsRef(in firstRequest), index).Iova;
                root[n] = Unsafe.Add(ref contextWords, 2 * index);
                rows[(PositionRow * BatchChunk) + n] = (ulong)index;
                rows[(ContextRow * BatchChunk) + n] = tail;
                rows[(TicketGenerationRow * BatchChunk) + n] = ticket.Generation;
                rows[(TicketSequenceRow * BatchChunk) + n] = ticket.PageSequence;
                otherLevels |= ContextLevels(tail) ^ levels;
            }
        }
        int* levelEnds = stackalloc int[MaxLevels + 1];   // with several level counts: where each count's walks end
        if (otherLevels != 0)
            SortRowsByLevels(rows, misses, levelEnds);

        int slot = ThreadSlots.Current;
        _epochs.Protect(slot);
        try
        {
            if (otherLevels == 0)
            {
                PageWalker.WalkBatchPerRoot(_batchWalker, _memory, _walker, new ReadOnlySpan<ulong>(root, misses), levels, new ReadOnlySpan<ulong>(address, misses), Access.None, walks);
            }
            else
            {
                for (int count = 0, start = 0; count <= MaxLevels; count++)
                {
                    int end = levelEnds[count];
                    if (end > start)
                        PageWalker.WalkBatchPerRoot(_batchWalker, _memory, _walker, new ReadOnlySpan<ulong>(root + start, end - start), count, new ReadOnlySpan<ulong>(address + start, end - start), Access.None, walks[start..]);
                    start = end;
                }
            }
        }
        finally
        {
            _epochs.Unprotect(slot);
        }
        CountMiss(slot, misses);
        if (_useBatchVector && WalksAreThreeWords)
        {
            FillAndAnswerEight(requests, results, rows, (WalkResult*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(walks)), misses, generation);
            return;
        }
        ref WalkResult walked = ref MemoryMarshal.GetReference(walks);
        ref TranslationResult firstResult = ref MemoryMarshal.GetReference(results);
        for (int k = 0; k < misses; k++)
            AnswerOneByOne(ref firstResult, firstRequest, rows, Unsafe.Add(ref walked, k), k, generation);
    }

    /// <summary>
    /// The input rows of <see cref="WalkAndFillMisses"/> eight misses at a time (AVX-512): each miss's
    /// address, position, context words and fill ticket gathered by its position. Nonzero when some
    /// miss's table has a level count other than <paramref name="levels"/>.
    /// </summary>
    /// <remarks>
    /// Issue 14: one by one, these rows cost a batched miss about 47 instructions. The tickets are taken
    /// here, before any walk, as <see cref="Iotlb.BeginFill"/> takes them. <paramref name="indexes"/>
    /// holds <paramref name="padded"/> positions (a multiple of eight; the padding repeats a real miss);
    /// <paramref name="contextWords"/>: the chunk's contexts by position, two words each, on the stack.
    /// </remarks>
    [SkipLocalsInit]
    private int MissRowsEight(ReadOnlySpan<TranslationRequest> requests, int* indexes, ulong* contextWords, int padded, int levels, ulong* rows)
    {
        Vector512<ulong> sequence = Vector512.Create(Iotlb.PageSequenceForFill);
        Vector512<ulong> levelCount = Vector512.Create((ulong)levels);
        Vector512<ulong> differ = Vector512<ulong>.Zero;
        Iotlb iotlb = Iotlb;
        fixed (TranslationRequest* pinnedRequests = requests)   // the caller's array may move: read through a pointer, so pinned
        {
            ulong* requestWords = (ulong*)pinnedRequests;
            for (int n8 = 0; n8 < padded; n8 += 8)
            {
                // Eight loads per row, not AVX2 gathers: on Zen 4 a gather of four words costs about
                // twice four loads and inserts. A context and a request are two words each.
                int* at = indexes + n8;
                Vector512<ulong> tail = PairWords(contextWords + 1, at);
                ulong* tailRow = rows + (ContextRow * BatchChunk) + n8;
                tail.Store(tailRow);   // the DIDs, for the domain states' loads
                iotlb.BeginFillGenerationsOfStates(iotlb.DomainStatesAt(tailRow), out Vector512<ulong> cachedSizes).Store(rows + (TicketGenerationRow * BatchChunk) + n8);
                cachedSizes.Store(rows + (CachedSizesRow * BatchChunk) + n8);
                sequence.Store(rows + (TicketSequenceRow * BatchChunk) + n8);
                PairWords(requestWords, at).Store(rows + (AddressRow * BatchChunk) + n8);
                PairWords(contextWords, at).Store(rows + (RootRow * BatchChunk) + n8);
                Avx512F.ConvertToVector512Int64(Vector256.Load(at)).AsUInt64().Store(rows + (PositionRow * BatchChunk) + n8);
                differ |= ((tail >> 16) & Vector512.Create(0xFFUL)) ^ levelCount;
            }
        }
        return differ == Vector512<ulong>.Zero ? 0 : 1;
    }

    /// <summary>The level count in a context's tail word (DID | levels &lt;&lt; 16 | width &lt;&lt; 24 | flags &lt;&lt; 32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ContextLevels(ulong tail) => (int)(tail >> 16) & 0xFF;

    /// <summary>The largest level count a context's byte can hold: walks are grouped by count, one bucket each (a cached context has 2 to 5).</summary>
    private const int MaxLevels = byte.MaxValue;

    /// <summary>
    /// Reorders the input rows of <see cref="WalkAndFillMisses"/> (the first <paramref name="misses"/> of each)
    /// by the level count of each miss's table, a stable counting sort; <paramref name="levelEnds"/>[c] is
    /// then where the walks of count c end. Only a chunk whose tables differ in level count comes here.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SortRowsByLevels(ulong* rows, int misses, int* levelEnds)
    {
        ulong* context = rows + (ContextRow * BatchChunk);
        new Span<int>(levelEnds, MaxLevels + 1).Clear();
        for (int n = 0; n < misses; n++)
            levelEnds[ContextLevels(context[n])]++;
        for (int c = 0, at = 0; c <= MaxLevels; c++)
        {
            at += levelEnds[c];
            levelEnds[c] = at;
        }
        int* target = stackalloc int[BatchChunk];
        int* next = stackalloc int[MaxLevels + 1];
        for (int c = 0; c <= MaxLevels; c++)
            next[c] = c == 0 ? 0 : levelEnds[c - 1];
        for (int n = 0; n < misses; n++)
            target[n] = next[ContextLevels(context[n])]++;
        ulong* copy = stackalloc ulong[BatchChunk];
        foreach (int row in InputRows)
        {
            ulong* words = rows + (row * BatchChunk);
            new ReadOnlySpan<ulong>(words, misses).CopyTo(new Span<ulong>(copy, misses));
            for (int n = 0; n < misses; n++)
                words[target[n]] = copy[n];
        }
    }

    /// <summary>
    /// The one-by-one answer of walk <paramref name="k"/> of <see cref="WalkAndFillMisses"/>: its request,
    /// context and ticket from the rows, the result, fault and fill from <see cref="ResultOfBatchedWalk"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AnswerOneByOne(ref TranslationResult firstResult, in TranslationRequest firstRequest, ulong* rows, in WalkResult walk, int k, uint generation)
    {
        int index = (int)rows[(PositionRow * BatchChunk) + k];
        ResolvedContext context = ResolvedContext.FromWords(rows[(RootRow * BatchChunk) + k], rows[(ContextRow * BatchChunk) + k]);
        var ticket = new Iotlb.FillTicket((uint)rows[(TicketGenerationRow * BatchChunk) + k], rows[(TicketSequenceRow * BatchChunk) + k]);
        Unsafe.Add(ref firstResult, index) = ResultOfBatchedWalk(Unsafe.Add(ref Unsafe.AsRef(in firstRequest), index), context.Did, context.Flags, walk, ticket, generation);
    }

    /// <summary>
    /// Whether a <see cref="WalkResult"/> is the three 8-byte words <see cref="FillAndAnswerEight"/> gathers
    /// (<see cref="PageWalker.ResultsAreThreeWords"/>): a reordered struct falls back to the one-by-one answer.
    /// </summary>
    internal static bool WalksAreThreeWords => PageWalker.ResultsAreThreeWords;

    /// <summary>
    /// The end of <see cref="WalkAndFillMisses"/> with AVX-512: each walk's fill (tag, set, data word) and
    /// result words worked out eight at a time; then the walks that faulted, or whose permissions the
    /// request lacks, answered by <see cref="ResultOfBatchedWalk"/> as before (the fault recorded, the fill
    /// made as the one-by-one path makes it); then one pass that takes each set and writes its fill, and
    /// one that stores the results.
    /// </summary>
    /// <remarks>
    /// The same fills and results as <see cref="ResultOfWalk(in TranslationRequest, ushort, ContextFlags, in WalkResult, Iotlb.FillTicket, uint)"/>,
    /// request by request (issue 14: that call was ~185 executed instructions a batched miss, with the
    /// fill's tag, set and data worked out one by one). Split into passes, each keeps its values in
    /// registers; the fill pass checks the context once and skips the size check for a size the DID had
    /// cached when its ticket was taken. The scalar twin is the loop it replaces
    /// (<see cref="AnswerOneByOne"/>), which runs without AVX-512 (and with <c>UseSimd = false</c>);
    /// <c>TranslateBatchTests</c> run both. <paramref name="rows"/>: <see cref="WalkAndFillMisses"/>'s, whose
    /// input rows hold <paramref name="misses"/> walks and have room for a whole last vector (its lanes
    /// past the last walk are padded here); <paramref name="walks"/>: as many, rounded up to eight.
    /// </remarks>
    [SkipLocalsInit]
    private void FillAndAnswerEight(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results, ulong* rows, WalkResult* walks, int misses, uint generation)
    {
        int padded = (misses + 7) & ~7;
        for (int k = misses; k < padded; k++)
            rows[(PositionRow * BatchChunk) + k] = 0;   // a padded lane gathers request 0, in bounds; its answer is dropped
        ulong answerable = 0;   // walks that translated and grant what their request asks
        ulong unnoted = 0;      // walks whose page size their DID's state may not hold yet
        // Word 3j + c of eight walks (c: 0 hpa, 1 entry, 2 misc): lanes 0-4 (0-5 for hpa) from the first
        // two vectors, then the rest from the third (8 + its lane) over them.
        Vector512<ulong> hpaFirst = Vector512.Create(0UL, 3, 6, 9, 12, 15, 0, 0), hpaLast = Vector512.Create(0UL, 1, 2, 3, 4, 5, 10, 13);
        Vector512<ulong> entryFirst = Vector512.Create(1UL, 4, 7, 10, 13, 0, 0, 0), entryLast = Vector512.Create(0UL, 1, 2, 3, 4, 8, 11, 14);
        Vector512<ulong> miscFirst = Vector512.Create(2UL, 5, 8, 11, 14, 0, 0, 0), miscLast = Vector512.Create(0UL, 1, 2, 3, 4, 9, 12, 15);
        Vector512<ulong> byteMask = Vector512.Create(0xFFUL);
        Vector512<ulong> one = Vector512<ulong>.One;
        Vector512<ulong> snoopBit = Vector512.Create(_snoopBit);
        ref readonly TranslationRequest firstRequest = ref MemoryMarshal.GetReference(requests);
        fixed (TranslationRequest* pinnedRequests = requests)   // the caller's array may move: gathered from, so pinned
        for (int k8 = 0; k8 < padded; k8 += 8)
        {
            ulong* requestWords = (ulong*)pinnedRequests;
            // Walks k8..k8+7 are 24 consecutive words (hpa, entry, misc each): three loads, their columns
            // picked out by permutes (AVX2 gathers, as before, are several times slower on Zen 4).
            ulong* words = (ulong*)(walks + k8);
            Vector512<ulong> w0 = Vector512.Load(words), w1 = Vector512.Load(words + 8), w2 = Vector512.Load(words + 16);
            Vector512<ulong> hpa = Avx512F.PermuteVar8x64x2(Avx512F.PermuteVar8x64x2(w0, hpaFirst, w1), hpaLast, w2);
            Vector512<ulong> entry = Avx512F.PermuteVar8x64x2(Avx512F.PermuteVar8x64x2(w0, entryFirst, w1), entryLast, w2);
            Vector512<ulong> misc = Avx512F.PermuteVar8x64x2(Avx512F.PermuteVar8x64x2(w0, miscFirst, w1), miscLast, w2);   // fault | level << 8 | permissions << 16
            Vector512<ulong> level = (misc >> 8) & byteMask;
            Vector512<ulong> permissions = (misc >> 16) & byteMask;
            // Each walk's context tail (DID | levels << 16 | width << 24 | flags << 32) and request.
            Vector512<ulong> tail = Vector512.Load(rows + (ContextRow * BatchChunk) + k8);
            ulong* at = rows + (PositionRow * BatchChunk) + k8;
            Vector512<ulong> info = Vector512.Create(requestWords[(2 * at[0]) + 1], requestWords[(2 * at[1]) + 1], requestWords[(2 * at[2]) + 1], requestWords[(2 * at[3]) + 1],
                requestWords[(2 * at[4]) + 1], requestWords[(2 * at[5]) + 1], requestWords[(2 * at[6]) + 1], requestWords[(2 * at[7]) + 1]);   // PASID, source id, access, ATS
            Vector512<ulong> did = tail & Vector512.Create(0xFFFFUL);
            // Snoop: the context's PGSNP (flag 2), or the leaf's SNP where ECAP.SC counts it.
            Vector512<ulong> snoop = Vector512.Min((tail >> 32) & Vector512.Create((ulong)ContextFlags.PageSnoop), one)
                | (~Vector512.Equals(entry & snoopBit, Vector512<ulong>.Zero) & one);
            Iotlb.PrepareFills(did, Vector512.Load(rows + (AddressRow * BatchChunk) + k8), level, hpa, permissions, snoop, Vector512.Load(rows + (TicketGenerationRow * BatchChunk) + k8),
                out Vector512<ulong> tag, out Vector512<ulong> set, out Vector512<ulong> data);
            set.Store(rows + (SetRow * BatchChunk) + k8);
            tag.Store(rows + (TagRow * BatchChunk) + k8);
            data.Store(rows + (DataRow * BatchChunk) + k8);
            hpa.Store(rows + (HpaRow * BatchChunk) + k8);
            // Bytes 8..15 of the result: DID, status 0, size, permissions, snoop, fault 0, no IOTLB hit.
            (did | (level << 24) | (permissions << 32) | (snoop << 40)).Store(rows + (TailRow * BatchChunk) + k8);
            Vector512<ulong> need = Avx512F.ShiftRightLogicalVariable(Vector512.Create((ulong)RequiredBitsByAccess), ((info >> 48) & Vector512.Create(7UL)) << 2) & Vector512.Create(7UL);
            answerable |= (Vector512.Equals(misc & byteMask, Vector512<ulong>.Zero) & Vector512.Equals(Vector512.AndNot(need, permissions), Vector512<ulong>.Zero))
                .ExtractMostSignificantBits() << k8;
            // The fills whose size the DID had not cached when its ticket was taken (sizes are only added).
            Vector512<ulong> sizes = Vector512.Load(rows + (CachedSizesRow * BatchChunk) + k8);
            unnoted |= Vector512.Equals(Avx512F.ShiftRightLogicalVariable(sizes, level - one) & one, Vector512<ulong>.Zero).ExtractMostSignificantBits() << k8;
        }
        ref TranslationResult firstResult = ref MemoryMarshal.GetReference(results);
        ulong walked = misses == BatchChunk ? ulong.MaxValue : (1UL << misses) - 1;
        answerable &= walked;   // not the padding
        // A fault, or a grant short of the request: the one-by-one answer records the fault (in walk
        // order, as before) and makes the fill a single miss makes.
        for (ulong other = walked & ~answerable; other != 0; other &= other - 1)
        {
            int k = BitOperations.TrailingZeroCount(other);
            AnswerOneByOne(ref firstResult, firstRequest, rows, walks[k], k, generation);
        }
        // The fills, only under a context still current (see ResultOfWalk). Checked once, after the
        // walks: as for a single miss, a context invalidation after the check is caught by the DID
        // flush that must follow it, through each fill's ticket.
        if (_contextCache.Generation == generation)
        {
            Iotlb iotlb = Iotlb;   // once: a field read and null check per fill otherwise
            // A size the DID had not cached when its ticket was taken is noted before any fill (rare:
            // once per domain and size), so the fills skip that check.
            for (ulong note = unnoted & answerable; note != 0; note &= note - 1)
            {
                ulong tail = rows[(TailRow * BatchChunk) + BitOperations.TrailingZeroCount(note)];
                iotlb.NoteCachedSize((ushort)tail, (int)(tail >> 24) & 0xFF);
            }
            for (ulong fill = answerable; fill != 0; fill &= fill - 1)
            {
                // Walk k's column: one pointer, each row at a constant offset from it (indexed by k, every
                // row cost a sign extension and an add).
                ulong* column = rows + BitOperations.TrailingZeroCount(fill);
                ulong tail = column[TailRow * BatchChunk];
                iotlb.TryFillPrepared((ulong*)column[SetRow * BatchChunk], column[TagRow * BatchChunk], column[DataRow * BatchChunk], (ushort)tail, (int)(tail >> 24) & 0xFF,
                    new Iotlb.FillTicket((uint)column[TicketGenerationRow * BatchChunk], column[TicketSequenceRow * BatchChunk]), sizeNoted: true);
            }
        }
        for (ulong answer = answerable; answer != 0; answer &= answer - 1)
        {
            ulong* column = rows + BitOperations.TrailingZeroCount(answer);
            Unsafe.Add(ref firstResult, (nint)column[PositionRow * BatchChunk]) = TranslationResult.FromWords(column[HpaRow * BatchChunk], column[TailRow * BatchChunk]);
        }
    }

    // WalkAndFillMisses's rows, BatchChunk words each, in walk order. Input (one per miss, before the
    // walks): the request's address and position in the chunk, its context's root and tail words, its
    // fill ticket. Output (FillAndAnswerEight's, after the walks): the fill's set, tag and data word,
    // the result's two words.
    // CachedSizesRow (MissRowsEight's only): the sizes the ticket's DID had cached when it was taken.
    private const int AddressRow = 0, PositionRow = 1, RootRow = 2, ContextRow = 3, TicketGenerationRow = 4, TicketSequenceRow = 5,
        CachedSizesRow = 6, SetRow = 7, TagRow = 8, DataRow = 9, TailRow = 10, HpaRow = 11, Rows = 12;

    // The rows SortRowsByLevels reorders.
    private static ReadOnlySpan<int> InputRows => [AddressRow, PositionRow, RootRow, ContextRow, TicketGenerationRow, TicketSequenceRow, CachedSizesRow];

    /// <summary>Word 0 of the two-word items <paramref name="words"/>[<paramref name="index"/>[j]] (word 1: pass <c>words + 1</c>), eight loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> PairWords(ulong* words, int* index) => Vector512.Create(
        words[2 * (nint)index[0]], words[2 * (nint)index[1]], words[2 * (nint)index[2]], words[2 * (nint)index[3]],
        words[2 * (nint)index[4]], words[2 * (nint)index[5]], words[2 * (nint)index[6]], words[2 * (nint)index[7]]);

    /// <summary><see cref="ResultOfWalk(in TranslationRequest, ushort, ContextFlags, in WalkResult, Iotlb.FillTicket, uint)"/> for the batch, as a call of its own.</summary>
    /// <remarks>
    /// Not inlined: inside the batch's loop, with its spans and indexes live, the fill and the result
    /// had no registers left and went through the stack value by value (a batched miss executed 285
    /// instructions in that loop, issue 14); in a frame of their own they keep their values in registers.
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private TranslationResult ResultOfBatchedWalk(in TranslationRequest request, ushort did, ContextFlags flags, in WalkResult walk, Iotlb.FillTicket ticket, uint contextGeneration) =>
        ResultOfWalk(request, did, flags, walk, ticket, contextGeneration);

    /// <summary>
    /// Steps 1–5 in full for a request of the batch the straight line did not take: false with its
    /// <paramref name="result"/> when it needs no walk (or faulted), true with the complete context to walk in.
    /// </summary>
    /// <remarks>Not inlined: in the batch's loop, its many paths took the registers of the straight-line misses' (issue 14).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryWalkContext(in TranslationRequest request, uint contextGeneration, out TranslationResult result, out ResolvedContext context)
    {
        if (TryTranslateWithoutWalk(request, contextGeneration, out result, out context))
            return false;
        return (context.Flags & ContextFlags.RootUnknown) == 0 || TryCompleteContext(request, ref context, out result);
    }

    /// <summary>
    /// The walk context of a request whose straight-line probe missed: its fast word still current at
    /// <paramref name="contextGeneration"/> and covering the address, and its root word (the table, see
    /// <see cref="FastRootWord"/>). False sends the request through <see cref="TryTranslateWithoutWalk"/>.
    /// </summary>
    /// <remarks>
    /// The word is read again, not taken from the hit pass: the root word is read after it, so it is
    /// that word's put's or a later one's (see <see cref="FastRootWord"/>). If it changed since the probe, the request
    /// walks under the newer context without probing for it: a walk where a hit might have been, the
    /// same translation. The context comes back as the two words of a <see cref="ResolvedContext"/> (see
    /// <see cref="ResolvedContext.FromWords"/>), both 0 when false.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryMissContextWords(in TranslationRequest request, uint contextGeneration, out ulong root, out ulong tail)
    {
        ulong word = Volatile.Read(ref _fastWords[request.SourceId]);
        ulong rootWord = Volatile.Read(ref _rootWords[request.SourceId]);   // after the word: its put's or a later one's
        if (FastContextWord.StampOf(word) == FastContextWord.StampOf(contextGeneration) && FastContextWord.Covers(word, request.Iova)
            && FastRootWord.Matches(rootWord, word))
        {
            root = FastRootWord.RootOf(rootWord);
            tail = FastContextWord.DidOf(word) | (ulong)FastRootWord.LevelsOf(rootWord) << 16
                | (word >> FastContextWord.WidthShift & FastContextWord.WidthMask) << 24 | (ulong)FastContextWord.FlagsOf(word) << 32;
            return true;
        }
        root = 0;
        tail = 0;
        return false;
    }

    /// <summary>Steps 1–5 of <see cref="Translate"/>; false when the request needs a walk (context returned).</summary>
    /// <param name="request">The request.</param>
    /// <param name="contextGeneration">The context cache's generation, read before this call.</param>
    /// <param name="result">The answer, when true.</param>
    /// <param name="context">The context to walk in, when false.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryTranslateWithoutWalk(in TranslationRequest request, uint contextGeneration, out TranslationResult result, out ResolvedContext context)
    {
        context = default;
        if (!Volatile.Read(ref _translationEnabled))
        {
            // Dispose raises its flag before it turns TE off, so TE off from Dispose is seen here.
            result = Volatile.Read(ref _disposed)
                ? TranslationResult.Disposed
                : new TranslationResult(TranslationStatus.PassThrough, request.Iova, PageSize.Size4K, Access.All, false, FaultReason.None, 0, false);
            return true;
        }
        uint pasidKey = request.HasPasid ? request.Pasid & FaultRecord.MaxPasid : NoPasidKey;
        if ((request.HasPasid || !_contextCache.TryGetFast(request.SourceId, out context))
            && !_contextCache.TryGet(request.SourceId, pasidKey, out context))
        {
            FaultReason contextFault = ResolveSlow(request, pasidKey, out context, out bool fpd);
            if (contextFault != FaultReason.None)
            {
                result = Fault(request, contextFault, 0, fpd);
                return true;
            }
        }
        bool scalable = (context.Flags & ContextFlags.Scalable) != 0;
        if (request.IsTranslationRequest && (context.Flags & ContextFlags.DeviceTlb) == 0)
        {
            result = Fault(request, scalable ? FaultReason.SmDteClear : FaultReason.ContextEntryTranslationType, context.Did, Fpd(context));
            return true;
        }
        if ((context.Flags & ContextFlags.PassThrough) != 0)
        {
            result = new TranslationResult(TranslationStatus.PassThrough, request.Iova, PageSize.Size4K, Access.All, true, FaultReason.None, context.Did, false);
            return true;
        }
        if ((request.Iova >> context.Width) != 0)
        {
            result = Fault(request, scalable ? FaultReason.SmAddressBeyondMax : FaultReason.AddressBeyondMgaw, context.Did, Fpd(context));
            return true;
        }
        // A hit counts only under a context still current after the probe (see TryTranslateHit);
        // otherwise the request walks its own (old) table and fills nothing.
        if (Iotlb.TryLookup(context.Did, request.Iova, _superpageLevel, out IotlbEntry hit) && _contextCache.Generation == contextGeneration)
        {
            result = Complete(request, context, hit, iotlbHit: true);
            return true;
        }
        result = default;
        return false;
    }
}
