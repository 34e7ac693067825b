using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

// Batch translation: IOTLB probes for the whole batch, then the misses of each domain walked
// together by the batch walker (their loads overlap), then filled. Zero allocation: the per-chunk
// bookkeeping lives on the stack.
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
        Span<int> missIndex = stackalloc int[BatchChunk];   // the chunk's misses, by position in the chunk
        ResolvedContext* contextBlock = stackalloc ResolvedContext[BatchChunk];   // by position: a miss's walk context
        var contexts = new Span<ResolvedContext>(contextBlock, BatchChunk);
        Span<ulong> addresses = stackalloc ulong[BatchChunk];
        Span<int> order = stackalloc int[BatchChunk];
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
            for (ulong left = all & ~answered; left != 0; left &= left - 1)
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
                WalkAndFillMisses(chunk, chunkResults, missIndex[..misses], contexts, generation, order, addresses, walks);
        }
        GC.KeepAlive(_owner);   // as in Translate: the caches stay reachable until the last read
    }

    /// <summary>
    /// Pass 2 of a chunk: its misses grouped by second-stage table (root and level count) and DID, each
    /// group walked together by the batch walker, then every walk turned into its result and filled.
    /// </summary>
    /// <remarks>
    /// <para>One epoch protection and one thread-slot read for the whole chunk, and the miss counter added
    /// to once: the walks of all groups run back to back with no fill between them, so the only
    /// locked instructions (the fills' set takes) come after the chunk's last table load (issue 14).
    /// Each group's fill ticket is taken before its walk, as a single miss takes it, for the group's
    /// DID: a group is one table under one DID, so every fill is checked against its own DID's ticket
    /// (grouped by table alone, two DIDs sharing a table filled with the first one's ticket).</para>
    /// <para>The grouping is one pass (each miss looks for its group among those found so far: a chunk
    /// touches few domains) and a counting sort, not a scan of the misses left per group; the spans are
    /// read through references without bounds checks (their lengths are the chunk's, checked once here).</para>
    /// <para><paramref name="requests"/>, <paramref name="results"/> and <paramref name="contextsByPosition"/>: the chunk's,
    /// by position; <paramref name="missIndex"/>: the positions of its misses, ascending.
    /// <paramref name="order"/>, <paramref name="addresses"/> and <paramref name="walks"/>: scratch of at
    /// least <paramref name="missIndex"/>'s length, in walk order.</para>
    /// </remarks>
    [SkipLocalsInit]
    private void WalkAndFillMisses(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results,
        ReadOnlySpan<int> missIndex, ReadOnlySpan<ResolvedContext> contextsByPosition, uint generation,
        Span<int> order, Span<ulong> addresses, Span<WalkResult> walks)
    {
        int misses = missIndex.Length;
        if (misses > BatchChunk || requests.Length > BatchChunk || results.Length < requests.Length || contextsByPosition.Length < requests.Length
            || order.Length < misses || addresses.Length < misses || walks.Length < misses)
            throw new ArgumentException("The batch's scratch is shorter than its chunk.");
        // The positions come from the bits of the chunk's request mask, so each is below its length.
        Debug.Assert(!missIndex.ContainsAnyExceptInRange(0, requests.Length - 1), "A miss outside the chunk.");
        ref readonly ResolvedContext byPosition = ref MemoryMarshal.GetReference(contextsByPosition);
        ref readonly int indexes = ref MemoryMarshal.GetReference(missIndex);
        ref readonly TranslationRequest firstRequest = ref MemoryMarshal.GetReference(requests);
        // Each miss's context, by miss: gathered once, so the grouping reads a contiguous list.
        ResolvedContext* missContexts = stackalloc ResolvedContext[BatchChunk];
        for (int n = 0; n < misses; n++)
            missContexts[n] = Unsafe.Add(ref Unsafe.AsRef(in byPosition), Unsafe.Add(ref Unsafe.AsRef(in indexes), n));
        ref readonly ResolvedContext contexts = ref *missContexts;

        // Each miss's group (the first miss of each group is its leader), and the groups' sizes.
        byte* groupOf = stackalloc byte[BatchChunk];
        int* leader = stackalloc int[BatchChunk];
        int* next = stackalloc int[BatchChunk];   // sizes, then where each group's next miss goes
        int groups = 0;
        for (int n = 0; n < misses; n++)
        {
            ref readonly ResolvedContext context = ref Unsafe.Add(ref Unsafe.AsRef(in contexts), n);
            int g = 0;
            while (g < groups && !SameWalk(Unsafe.Add(ref Unsafe.AsRef(in contexts), leader[g]), context))
                g++;
            if (g == groups)
            {
                leader[groups++] = n;
                next[g] = 0;
            }
            groupOf[n] = (byte)g;
            next[g]++;
        }
        for (int g = 0, at = 0; g < groups; g++)
        {
            int size = next[g];
            next[g] = at;
            at += size;
        }
        ref int walkOrder = ref MemoryMarshal.GetReference(order);
        ref ulong walkAddress = ref MemoryMarshal.GetReference(addresses);
        for (int n = 0; n < misses; n++)
        {
            int at = next[groupOf[n]]++;
            Unsafe.Add(ref walkOrder, at) = n;
            Unsafe.Add(ref walkAddress, at) = Unsafe.Add(ref Unsafe.AsRef(in firstRequest), Unsafe.Add(ref Unsafe.AsRef(in indexes), n)).Iova;
        }

        Iotlb.FillTicket* tickets = stackalloc Iotlb.FillTicket[groups];
        int slot = ThreadSlots.Current;
        _epochs.Protect(slot);
        try
        {
            for (int g = 0, start = 0; g < groups; g++)
            {
                // next[g] is now where group g ends (and g + 1 starts).
                ref readonly ResolvedContext head = ref Unsafe.Add(ref Unsafe.AsRef(in contexts), leader[g]);
                tickets[g] = Iotlb.BeginFill(head.Did);
                PageWalker.WalkBatch(_batchWalker, _memory, _walker, head.Root, head.Levels, addresses[start..next[g]], Access.None, walks[start..]);
                start = next[g];
            }
        }
        finally
        {
            _epochs.Unprotect(slot);
        }
        CountMiss(slot, misses);
        int padded = (misses + 7) & ~7;   // FillAndAnswerEight reads (and pads) whole vectors of these
        if (_useBatchVector && WalksAreThreeWords && walks.Length >= padded && addresses.Length >= padded && order.Length >= padded)
        {
            FillAndAnswerEight(requests, results, indexes, missContexts, (int*)Unsafe.AsPointer(ref walkOrder), (ulong*)Unsafe.AsPointer(ref walkAddress),
                (WalkResult*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(walks)), tickets, groupOf, next, groups, misses, generation);
            return;
        }
        ref WalkResult walked = ref MemoryMarshal.GetReference(walks);
        ref TranslationResult firstResult = ref MemoryMarshal.GetReference(results);
        for (int k = 0; k < misses; k++)
        {
            int n = Unsafe.Add(ref walkOrder, k);
            int index = Unsafe.Add(ref Unsafe.AsRef(in indexes), n);
            ref readonly ResolvedContext context = ref Unsafe.Add(ref Unsafe.AsRef(in contexts), n);
            Unsafe.Add(ref firstResult, index) = ResultOfBatchedWalk(Unsafe.Add(ref Unsafe.AsRef(in firstRequest), index), context.Did, context.Flags,
                Unsafe.Add(ref walked, k), tickets[groupOf[n]], generation);
        }
    }

    /// <summary>
    /// Whether a <see cref="WalkResult"/> is the three 8-byte words <see cref="FillAndAnswerEight"/> gathers:
    /// HPA, entry, then fault | level &lt;&lt; 8 | permissions &lt;&lt; 16. Checked from the layout itself, so a
    /// reordered struct falls back to the one-by-one answer instead of reading the wrong bytes.
    /// </summary>
    internal static readonly bool WalksAreThreeWords = WalkResultLayoutIsThreeWords();

    private static bool WalkResultLayoutIsThreeWords()
    {
        WalkResult walk = default;
        return Unsafe.SizeOf<WalkResult>() == 24 && OffsetOf(walk, walk.Hpa) == 0 && OffsetOf(walk, walk.Entry) == 8
            && OffsetOf(walk, walk.Fault) == 16 && OffsetOf(walk, walk.Level) == 17 && OffsetOf(walk, walk.Permissions) == 18;
    }

    private static nint OffsetOf<T>(in WalkResult walk, in T field) =>
        Unsafe.ByteOffset(ref Unsafe.As<WalkResult, byte>(ref Unsafe.AsRef(in walk)), ref Unsafe.As<T, byte>(ref Unsafe.AsRef(in field)));

    /// <summary>
    /// The end of <see cref="WalkAndFillMisses"/> with AVX-512: each walk's fill (tag, set, data word) and
    /// result words worked out eight at a time, then one pass that takes each set, writes the fill and
    /// stores the result. A walk that faulted, or whose permissions the request lacks, is answered by
    /// <see cref="ResultOfBatchedWalk"/> as before (its fault recorded, the fill made as the one-by-one path makes it).
    /// </summary>
    /// <remarks>
    /// The same fills and results as <see cref="ResultOfWalk(in TranslationRequest, ushort, ContextFlags, in WalkResult, Iotlb.FillTicket, uint)"/>,
    /// request by request (issue 14: that call was ~185 executed instructions a batched miss, with the
    /// fill's tag, set and data worked out one by one). The scalar twin is the loop it replaces, which
    /// runs without AVX-512 (and with <c>UseSimd = false</c>); <c>TranslateBatchTests</c> run both.
    /// <paramref name="walkOrder"/>, <paramref name="addresses"/> and <paramref name="walks"/>: in walk
    /// order, at least <paramref name="misses"/> rounded up to eight long (the lanes past the last are padded here),
    /// on the stack (<see cref="TranslateBatch"/>'s), as are <paramref name="indexes"/> and <paramref name="missContexts"/>.
    /// </remarks>
    [SkipLocalsInit]
    private void FillAndAnswerEight(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results, in int indexes, ResolvedContext* missContexts,
        int* walkOrder, ulong* addresses, WalkResult* walks, Iotlb.FillTicket* tickets, byte* groupOf, int* groupEnd, int groups, int misses, uint generation)
    {
        int padded = (misses + 7) & ~7;
        for (int k = misses; k < padded; k++)
            walkOrder[k] = 0;   // a padded lane gathers miss 0's context and request, in bounds; its answer is dropped
        // Everything a walk's fill and answer need, one row of the chunk's length each, in walk order: one
        // pointer and constant offsets, so the answering loop keeps its values in registers.
        ulong* rows = stackalloc ulong[PreparedRows * BatchChunk];
        for (int g = 0, start = 0; g < groups; g++)
        {
            // A group's walks share its ticket.
            new Span<ulong>(rows + (TicketGenerationRow * BatchChunk) + start, groupEnd[g] - start).Fill(tickets[g].Generation);
            new Span<ulong>(rows + (TicketSequenceRow * BatchChunk) + start, groupEnd[g] - start).Fill(tickets[g].PageSequence);
            start = groupEnd[g];
        }
        ulong answerable = 0;   // walks that translated and grant what their request asks
        Vector256<int> threeWords = Vector256.Create(0, 3, 6, 9, 12, 15, 18, 21);
        Vector512<ulong> byteMask = Vector512.Create(0xFFUL);
        Vector512<ulong> one = Vector512<ulong>.One;
        Vector512<ulong> snoopBit = Vector512.Create(_snoopBit);
        fixed (TranslationRequest* pinnedRequests = requests)   // the caller's array may move: gathered from, so pinned
        for (int k8 = 0; k8 < padded; k8 += 8)
        {
            ulong* requestWords = (ulong*)pinnedRequests;
            Vector256<int> at = threeWords + Vector256.Create(3 * k8);
            ulong* words = (ulong*)walks;
            Vector512<ulong> hpa = Gather8(words, at);
            Vector512<ulong> entry = Gather8(words + 1, at);
            Vector512<ulong> misc = Gather8(words + 2, at);   // fault | level << 8 | permissions << 16
            Vector512<ulong> level = (misc >> 8) & byteMask;
            Vector512<ulong> permissions = (misc >> 16) & byteMask;
            // Each walk's miss: its context's tail (DID | levels << 16 | width << 24 | flags << 32) and its request.
            Vector256<int> miss = Vector256.Load(walkOrder + k8);
            Vector512<ulong> tail = Gather8((ulong*)missContexts + 1, miss + miss);
            Vector256<int> position = Avx2.GatherVector256((int*)Unsafe.AsPointer(ref Unsafe.AsRef(in indexes)), miss, sizeof(int));
            Vector512<ulong> info = Gather8(requestWords + 1, position + position);   // PASID, source id, access, ATS
            Vector512<ulong> did = tail & Vector512.Create(0xFFFFUL);
            // Snoop: the context's PGSNP (flag 2), or the leaf's SNP where ECAP.SC counts it.
            Vector512<ulong> snoop = Vector512.Min((tail >> 32) & Vector512.Create((ulong)ContextFlags.PageSnoop), one)
                | (~Vector512.Equals(entry & snoopBit, Vector512<ulong>.Zero) & one);
            Iotlb.PrepareFills(did, Vector512.Load(addresses + k8), level, hpa, permissions, snoop, Vector512.Load(rows + (TicketGenerationRow * BatchChunk) + k8),
                out Vector512<ulong> tag, out Vector512<ulong> set, out Vector512<ulong> data);
            set.Store(rows + (SetRow * BatchChunk) + k8);
            tag.Store(rows + (TagRow * BatchChunk) + k8);
            data.Store(rows + (DataRow * BatchChunk) + k8);
            hpa.Store(rows + (HpaRow * BatchChunk) + k8);
            Avx512F.ConvertToVector512UInt64(position).Store(rows + (PositionRow * BatchChunk) + k8);
            // Bytes 8..15 of the result: DID, status 0, size, permissions, snoop, fault 0, no IOTLB hit.
            (did | (level << 24) | (permissions << 32) | (snoop << 40)).Store(rows + (TailRow * BatchChunk) + k8);
            Vector512<ulong> need = Avx512F.ShiftRightLogicalVariable(Vector512.Create((ulong)RequiredBitsByAccess), ((info >> 48) & Vector512.Create(7UL)) << 2) & Vector512.Create(7UL);
            answerable |= (Vector512.Equals(misc & byteMask, Vector512<ulong>.Zero) & Vector512.Equals(Vector512.AndNot(need, permissions), Vector512<ulong>.Zero))
                .ExtractMostSignificantBits() << k8;
        }
        ref TranslationResult firstResult = ref MemoryMarshal.GetReference(results);
        for (int k = 0; k < misses; k++)
        {
            if ((answerable >> k & 1) == 0)
            {
                // A fault, or a grant short of the request: the one-by-one answer records the fault.
                int n = walkOrder[k];
                int index = Unsafe.Add(ref Unsafe.AsRef(in indexes), n);
                ref readonly ResolvedContext context = ref missContexts[n];
                Unsafe.Add(ref firstResult, index) = ResultOfBatchedWalk(requests[index], context.Did, context.Flags, walks[k], tickets[groupOf[n]], generation);
                continue;
            }
            ulong tail = rows[(TailRow * BatchChunk) + k];
            // Fill only under a context still current (see ResultOfWalk).
            if (_contextCache.Generation == generation)
            {
                Iotlb.TryFillPrepared((ulong*)rows[(SetRow * BatchChunk) + k], rows[(TagRow * BatchChunk) + k], rows[(DataRow * BatchChunk) + k], (ushort)tail,
                    (int)(tail >> 24) & 0xFF, new Iotlb.FillTicket((uint)rows[(TicketGenerationRow * BatchChunk) + k], rows[(TicketSequenceRow * BatchChunk) + k]));
            }
            Unsafe.Add(ref firstResult, (nint)rows[(PositionRow * BatchChunk) + k]) = TranslationResult.FromWords(rows[(HpaRow * BatchChunk) + k], tail);
        }
    }

    // FillAndAnswerEight's rows.
    private const int SetRow = 0, TagRow = 1, DataRow = 2, TailRow = 3, HpaRow = 4, PositionRow = 5, TicketGenerationRow = 6, TicketSequenceRow = 7, PreparedRows = 8;

    /// <summary>Eight words at <paramref name="words"/>[<paramref name="index"/>] (two AVX2 gathers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Gather8(ulong* words, Vector256<int> index) => Vector512.Create(
        Avx2.GatherVector256(words, index.GetLower(), sizeof(ulong)), Avx2.GatherVector256(words, index.GetUpper(), sizeof(ulong)));

    /// <summary>Whether two misses walk together: the same table (root and levels) under the same DID.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SameWalk(in ResolvedContext a, in ResolvedContext b) =>
        a.Root == b.Root && a.Levels == b.Levels && a.Did == b.Did;

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
