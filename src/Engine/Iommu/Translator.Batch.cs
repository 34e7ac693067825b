using System.Numerics;
using System.Runtime.CompilerServices;
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
        Span<int> missIndex = stackalloc int[BatchChunk];
        Span<ResolvedContext> missContext = stackalloc ResolvedContext[BatchChunk];
        Span<ulong> addresses = stackalloc ulong[BatchChunk];
        Span<int> order = stackalloc int[BatchChunk];
        Span<WalkResult> walks = stackalloc WalkResult[BatchChunk];
        Span<Iotlb.FillTicket> tickets = stackalloc Iotlb.FillTicket[BatchChunk];
        for (int start = 0; start < requests.Length; start += BatchChunk)
        {
            int count = Math.Min(BatchChunk, requests.Length - start);
            int misses = 0;
            uint generation = _contextCache.Generation;   // before any context of the chunk is looked up
            // Pass 1: everything that needs no walk — the straight line's hits for the whole chunk,
            // then one by one TE off, faults before the IOTLB, and the hits it does not take.
            // A request the hit pass probed and missed goes straight to the walk list (its context from
            // the slot); the rest take steps 1-5 in full.
            ulong answered = TranslateHits(requests.Slice(start, count), results.Slice(start, count), out ulong missed);
            // Only the requests left: a chunk of hits runs no iteration at all.
            ulong all = count == BatchChunk ? ulong.MaxValue : (1UL << count) - 1;
            for (ulong left = all & ~answered; left != 0; left &= left - 1)
            {
                int i = BitOperations.TrailingZeroCount(left);
                ref readonly TranslationRequest request = ref requests[start + i];
                if ((missed >> i & 1) == 0 || !TryMissContext(request, generation, out ResolvedContext context))
                {
                    if (TryTranslateWithoutWalk(request, generation, out results[start + i], out context))
                        continue;
                    if ((context.Flags & ContextFlags.RootUnknown) != 0 && !TryCompleteContext(request, ref context, out results[start + i]))
                        continue;
                }
                missIndex[misses] = start + i;
                missContext[misses] = context;
                misses++;
            }
            if (misses != 0)
                WalkAndFillMisses(requests, results, missIndex[..misses], missContext[..misses], generation, order, addresses, walks, tickets);
        }
        GC.KeepAlive(_owner);   // as in Translate: the caches stay reachable until the last read
    }

    /// <summary>
    /// Pass 2 of a chunk: its misses grouped by second-stage table (root and level count), each group
    /// walked together by the batch walker, then every walk turned into its result and filled.
    /// </summary>
    /// <remarks>
    /// One epoch protection and one thread-slot read for the whole chunk, and the miss counter added
    /// to once: the walks of all groups run back to back with no fill between them, so the only
    /// locked instructions (the fills' set takes) come after the chunk's last table load (issue 14).
    /// Each group's fill ticket is taken before its walk, as a single miss takes it.
    /// <paramref name="order"/>, <paramref name="addresses"/>, <paramref name="walks"/> and
    /// <paramref name="tickets"/>: scratch of at least <paramref name="missIndex"/>'s length, in walk order.
    /// </remarks>
    private void WalkAndFillMisses(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results,
        ReadOnlySpan<int> missIndex, ReadOnlySpan<ResolvedContext> missContext, uint generation,
        Span<int> order, Span<ulong> addresses, Span<WalkResult> walks, Span<Iotlb.FillTicket> tickets)
    {
        int misses = missIndex.Length;
        int slot = ThreadSlots.Current;
        _epochs.Protect(slot);
        try
        {
            // Misses not yet in a group, one bit each (a chunk has at most 64).
            ulong left = misses == BatchChunk ? ulong.MaxValue : (1UL << misses) - 1;
            int walked = 0;
            while (left != 0)
            {
                int first = BitOperations.TrailingZeroCount(left);
                ref readonly ResolvedContext leader = ref missContext[first];
                int start = walked;
                for (ulong scan = left; scan != 0; scan &= scan - 1)
                {
                    int n = BitOperations.TrailingZeroCount(scan);
                    if (missContext[n].Root == leader.Root && missContext[n].Levels == leader.Levels)
                    {
                        order[walked] = n;
                        addresses[walked] = requests[missIndex[n]].Iova;
                        walked++;
                        left &= ~(1UL << n);
                    }
                }
                Iotlb.FillTicket ticket = Iotlb.BeginFill(leader.Did);
                tickets[start..walked].Fill(ticket);
                PageWalker.WalkBatch(_batchWalker, _memory, _walker, leader.Root, leader.Levels, addresses[start..walked], Access.None, walks[start..]);
            }
        }
        finally
        {
            _epochs.Unprotect(slot);
        }
        CountMiss(slot, misses);
        for (int k = 0; k < misses; k++)
        {
            int n = order[k];
            int index = missIndex[n];
            ref readonly ResolvedContext context = ref missContext[n];
            results[index] = ResultOfBatchedWalk(requests[index], context.Did, context.Flags, walks[k], tickets[k], generation);
        }
    }

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
    /// The walk context of a request whose straight-line probe missed: its fast word still current at
    /// <paramref name="contextGeneration"/> and covering the address, and its root word (the table, see
    /// <see cref="FastRootWord"/>). False sends the request through <see cref="TryTranslateWithoutWalk"/>.
    /// </summary>
    /// <remarks>
    /// The word is read again, not taken from the hit pass: the root word is read after it, so it is
    /// that word's put's or a later one's (see <see cref="FastRootWord"/>). If it changed since the probe, the request
    /// walks under the newer context without probing for it: a walk where a hit might have been, the
    /// same translation.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryMissContext(in TranslationRequest request, uint contextGeneration, out ResolvedContext context)
    {
        ulong word = Volatile.Read(ref _fastWords[request.SourceId]);
        ulong rootWord = Volatile.Read(ref _rootWords[request.SourceId]);   // after the word: its put's or a later one's
        if (FastContextWord.StampOf(word) == FastContextWord.StampOf(contextGeneration) && FastContextWord.Covers(word, request.Iova)
            && FastRootWord.Matches(rootWord, word))
        {
            context = new ResolvedContext(FastRootWord.RootOf(rootWord), FastContextWord.DidOf(word), (byte)FastRootWord.LevelsOf(rootWord),
                (byte)(word >> FastContextWord.WidthShift & FastContextWord.WidthMask), FastContextWord.FlagsOf(word));
            return true;
        }
        context = default;
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
