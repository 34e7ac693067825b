using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

// The hot path (DmarUnit.Translate forwards here). Allocates nothing, throws nothing, takes no lock: a fault is a value.
internal unsafe partial struct Translator
{
    // The translate path's counters (_counters, in Translator.cs), one cache line per thread, added to
    // with plain stores: an interlocked increment is a full barrier, and one per miss kept the next
    // miss's walk from overlapping this one's (issue 14). Summed when read.
    private const int MissCounter = 0;
    private const int ContextMissCounter = 1;
    private const int FaultCounter = 2;

    /// <summary>Translations that missed the IOTLB and walked.</summary>
    public long IotlbMisses => _counters.Read(MissCounter);

    /// <summary>Translations that missed the context cache and read the tables.</summary>
    public long ContextMisses => _counters.Read(ContextMissCounter);

    /// <summary>Translations that faulted (recorded or not).</summary>
    public long Faults => _counters.Read(FaultCounter);

    /// <summary>Translations (and page requests) that faulted with <paramref name="reason"/>.</summary>
    public long FaultsWith(FaultReason reason) => Interlocked.Read(ref _faultsByReason[(byte)reason]);

    /// <summary>
    /// Translates one request: context (cached) → IOTLB → second-stage walk → fill, or a fault with
    /// its VT-d reason code. Thread-safe; concurrent with invalidations and table changes.
    /// </summary>
    /// <remarks>
    /// The common case runs in one straight line: translation on, no PASID, not an ATS request, a
    /// current fast context word (which exists only for contexts that translate), the address within
    /// the width, an IOTLB hit with the permissions asked for. Anything else takes the general path,
    /// which gives the same answer for these requests too.
    /// <para>After <see cref="DmarUnit.Dispose"/> every translation answers <see cref="TranslationStatus.Disposed"/>.</para>
    /// <para>
    /// Static over the unit that holds the translator, and reading the fields as <c>owner.Translator.X</c>:
    /// inlined into a caller's loop, each is one load off the unit's register, as when they were the
    /// unit's own fields. As an instance call on the struct, the JIT kept the struct's address in a
    /// temporary (a null check, a spill, reloads) on every iteration (tier-1 listing of iotlb-hit).
    /// </para>
    /// </remarks>
    /// <param name="owner">The unit this translator is the <see cref="DmarUnit.Translator"/> of, kept reachable past the hit's last read.</param>
    /// <param name="request">The request.</param>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into the caller's loop, as it was by itself before it grew the miss call
    public static TranslationResult Translate(DmarUnit owner, in TranslationRequest request)
    {
        // The straight line, written out here rather than through TryTranslateHit: with an answer to
        // pass back (hit, miss, neither), the hit's result went through the stack (tier-1 listings of iotlb-hit).
        ulong missWord;
        if (Volatile.Read(ref owner.Translator._translationEnabled) && request.Pasid == TranslationRequest.NoPasid && !request.IsTranslationRequest)
        {
            // Raw words with the layouts' static readers: wrapped in struct locals, the loop's words
            // spilled to the stack and iotlb-hit slowed (measured), so the hot path keeps ulongs.
            ulong word = Volatile.Read(ref owner.Translator._fastWords[request.SourceId]);
            ulong iova = request.Iova;
            if (FastContextWord.Covers(word, iova))
            {
                ulong data = owner.Translator.Iotlb.LookupData(FastContextWord.DidOf(word), iova);
                if (IsStraightHit(owner, data, word, request.Access))
                {
                    // The caches the hit read are freed only once the unit is unreachable: keep it reachable
                    // past the last read, even if the caller dropped its reference (see PinnedWords).
                    GC.KeepAlive(owner);
                    return HitResult(data, word, iova);
                }
                // A miss under a word ever written (bit 63, the stamp's valid bit): walk at once.
                missWord = data == 0 && (long)word < 0 ? word : 0;
            }
            else
            {
                missWord = 0;
            }
        }
        else
        {
            missWord = 0;   // each path sets it after leaving the hit's: set before, it cost the hit a store (listing)
        }
        // One call site for both: with a third return, the hit's result went through the stack.
        return owner.Translator.TranslateMiss(request, missWord);
    }

    // Access 0..7 (None, R, W, RW, X, RX, WX, RWX) → entry bits required: 8 | R/W as asked | R for X.
    private const uint RequiredBitsByAccess = 0xBB99_BA98;

    /// <summary>Whether the probe's <paramref name="data"/> answers the request: granted, and the word still current.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsStraightHit(DmarUnit owner, ulong data, ulong word, Access access)
    {
        // The bits a hit needs, by access (a nibble each): execute needs read (no ERS/SSEE; X
        // itself is not checked), and bit 3, set in every entry, makes a miss (0) fail too.
        uint required = RequiredBitsByAccess >> ((int)access << 2);
        // The word is checked against the stamp after the probe, not before: a word current
        // then was current all along (stamps only grow), so the probe used a live context.
        // Checked before, a device moved off a DID could pair its old context with the entries
        // of the DID's next owner, filled between the check and the probe. Any such entry was
        // filled after the context invalidation that freed the DID, so a probe that saw it
        // sees the stamp move too (loads are ordered, and this one is volatile). A stale word
        // probes for nothing worse than a miss: every DID has its state and sets.
        return IotlbData.Grants(data, required) && FastContextWord.StampOf(word) == Volatile.Read(ref owner.Translator._fastWords[ContextCache.SourceIds]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TranslationResult HitResult(ulong data, ulong word, ulong iova) =>
        new(TranslationStatus.Translated, IotlbData.PageHpaOf(data) | IotlbData.OffsetOf(data, iova),
            (PageSize)IotlbData.LevelOf(data), IotlbData.PermissionsOf(data), IotlbData.SnoopOf(data), FaultReason.None, FastContextWord.DidOf(word), true);

    /// <summary>The straight line of <see cref="Translate"/> for the batch's one-by-one pass: a hit, a miss to walk, or neither.</summary>
    /// <param name="owner">The unit this translator belongs to (kept reachable by the batch).</param>
    /// <param name="request">The request.</param>
    /// <param name="result">The hit's result, when true.</param>
    /// <param name="missed">When false: whether the probe missed under a word ever written, so the request needs only a walk (see <see cref="TryMissContextWords"/>).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryTranslateHit(DmarUnit owner, in TranslationRequest request, out TranslationResult result, out bool missed)
    {
        missed = false;
        if (Volatile.Read(ref owner.Translator._translationEnabled) && request.Pasid == TranslationRequest.NoPasid && !request.IsTranslationRequest)
        {
            ulong word = Volatile.Read(ref owner.Translator._fastWords[request.SourceId]);
            ulong iova = request.Iova;
            if (FastContextWord.Covers(word, iova))
            {
                ulong data = owner.Translator.Iotlb.LookupData(FastContextWord.DidOf(word), iova);
                if (IsStraightHit(owner, data, word, request.Access))
                {
                    result = HitResult(data, word, iova);
                    return true;
                }
                missed = data == 0 && (long)word < 0;
            }
        }
        result = default;
        return false;
    }

    /// <summary>Steps 1–6 in full: everything the straight line above does not take.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private TranslationResult TranslateGeneral(in TranslationRequest request)
    {
        // Steps 1-5 (TE, context, ATS check, pass-through, width, IOTLB) are shared with the batch path.
        // Step 6: walk the second-stage table and cache what it found.
        uint generation = _contextCache.Generation;
        TranslationResult result = TryTranslateWithoutWalk(request, generation, out TranslationResult early, out ResolvedContext context)
            ? early
            : WalkAndFill(request, context, generation);
        GC.KeepAlive(_owner);   // as in Translate
        return result;
    }

    /// <summary>
    /// The miss path of the straight line: the probe under <paramref name="word"/> missed; walk, fill once,
    /// answer. A <paramref name="word"/> of 0: not a straight-line miss, the general path.
    /// </summary>
    /// <remarks>
    /// The straight line has already done steps 1–5 for this request (TE on, no PASID, not ATS, the
    /// address within the word's width, the IOTLB probed), so a miss runs: the word's stamp against the
    /// context cache's generation, the source's root word for the table (not the seqlocked slot: two
    /// loads instead of a key, a hash and six), the fill ticket, the walk, one fill and the result. The
    /// root word is the word's put's or a later one's under the same DID (see <see cref="FastRootWord"/>).
    /// Anything unusual — a stale word, a root word of another DID or none — goes to
    /// <see cref="TranslateGeneral"/>, which decides from scratch (and probes again: the context may have changed).
    /// <para>Written for the registers (issue 14: a miss was 543 executed instructions, 324 of them
    /// here — 301 now — and a thread's next miss cannot overlap this one's walk when the two are that far apart):
    /// the context's fields are taken into locals and passed by value, never by reference, so the
    /// JIT keeps them in registers; the result is built once, at the return; the walk runs without a
    /// <c>try</c>/<c>finally</c> (see <see cref="WalkProtected"/>).</para>
    /// </remarks>
    [SkipLocalsInit] // its walk and result structs were zeroed in the prologue: three 64-byte stores a miss
    [MethodImpl(MethodImplOptions.NoInlining)] // the miss path stays out of the hit path's code
    private TranslationResult TranslateMiss(in TranslationRequest request, ulong word)
    {
        // The thread's slot first: the thread-static read is a call, and whatever is live across it is spilled.
        int slot = ThreadSlots.Current;   // once per miss: the epoch slot and the counters' line
        uint generation = _contextCache.Generation;
        if (word == 0 || FastContextWord.StampOf(word) != FastContextWord.StampOf(generation))
            return TranslateGeneral(request);
        ulong rootWord = Volatile.Read(ref _rootWords[request.SourceId]);
        if (!FastRootWord.Matches(rootWord, word))
            return TranslateGeneral(request);
        ushort did = FastContextWord.DidOf(word);
        ContextFlags flags = FastContextWord.FlagsOf(word);
        ulong iova = request.Iova;
        Iotlb.FillTicket ticket = Iotlb.BeginFill(did);
        WalkResult walk = WalkProtected(FastRootWord.RootOf(rootWord), FastRootWord.LevelsOf(rootWord), iova, slot);
        CountMiss(slot);
        TranslationResult result = ResultOfWalk(request, did, flags, walk, ticket, generation);
        GC.KeepAlive(_owner);   // as in Translate: past the fill, the last use of the caches
        return result;
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // the miss path stays out of the hit path's code
    private TranslationResult WalkAndFill(in TranslationRequest request, in ResolvedContext fastContext, uint contextGeneration)
    {
        ResolvedContext context = fastContext;
        if ((context.Flags & ContextFlags.RootUnknown) != 0 && !TryCompleteContext(request, ref context, out TranslationResult fault))
            return fault;
        Iotlb.FillTicket ticket = Iotlb.BeginFill(context.Did);
        int slot = ThreadSlots.Current;   // once per miss: the epoch slot and the counters' line
        WalkResult walk = WalkProtected(context.Root, context.Levels, request.Iova, slot);
        return FinishWalk(request, context, walk, ticket, contextGeneration, slot);
    }

    /// <summary>One second-stage walk of <paramref name="iova"/> in the table at <paramref name="root"/>, inside the epoch protection of <paramref name="slot"/>.</summary>
    /// <remarks>
    /// No <c>try</c>/<c>finally</c>: its region made the JIT store every value the walk produced to the
    /// stack and load it back (issue 14). None is needed: only the walk runs inside the protection, and
    /// a walk throws nothing (faults are values; it allocates nothing and calls nothing that throws),
    /// so the protection is always left.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private WalkResult WalkProtected(ulong root, int levels, ulong iova, int slot)
    {
        EpochManager epochs = _epochs;
        bool entered = epochs.EnterIfIdle(slot);
        WalkResult walk = PageWalker.Walk(_memory, _walker, root, levels, iova, Access.None);
        epochs.LeaveEntered(slot, entered);
        return walk;
    }

    /// <summary>Counts one miss on the line of <paramref name="slot"/>, the calling thread's (see <see cref="MissCounter"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CountMiss(int slot, long misses = 1) => ThreadCounters.Add(_missCells, slot, misses);

    /// <summary>Turns a walk into a result: a fault with its reason, or a fill and the permission check.</summary>
    /// <param name="request">The request.</param>
    /// <param name="context">The context it was walked in.</param>
    /// <param name="walk">The walk.</param>
    /// <param name="ticket">Taken before the walk.</param>
    /// <param name="contextGeneration">The context cache's generation read before <paramref name="context"/> was looked up.</param>
    /// <param name="slot">The calling thread's <c>ThreadSlots.Current</c>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult FinishWalk(in TranslationRequest request, in ResolvedContext context, in WalkResult walk, Iotlb.FillTicket ticket, uint contextGeneration, int slot)
    {
        CountMiss(slot);
        return ResultOfWalk(request, context, walk, ticket, contextGeneration);
    }

    /// <summary><see cref="FinishWalk"/> without counting the miss (the batch counts a chunk's misses at once).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult ResultOfWalk(in TranslationRequest request, in ResolvedContext context, in WalkResult walk, Iotlb.FillTicket ticket, uint contextGeneration) =>
        ResultOfWalk(request, context.Did, context.Flags, walk, ticket, contextGeneration);

    /// <summary>
    /// Turns a walk in the context of DID <paramref name="did"/> with <paramref name="flags"/> into a
    /// result: a fault with its reason, or a fill and the permission check. The context's fields come
    /// by value, so the miss paths keep them in registers (issue 14).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult ResultOfWalk(in TranslationRequest request, ushort did, ContextFlags flags, in WalkResult walk, Iotlb.FillTicket ticket, uint contextGeneration)
    {
        if (!walk.IsSuccess)
            return WalkFaulted(request, did, flags, walk.Fault);
        Access granted = walk.Permissions;
        int level = walk.Level;
        bool snoop = (flags & ContextFlags.PageSnoop) != 0 || (walk.Entry & _snoopBit) != 0;
        // Fill only under a context that is still current. If the context was invalidated since it
        // was looked up, the driver may have freed its DID and given it to another device: an entry
        // filled now would hand this device's page to the new owner. The IOTLB's ticket catches the
        // DID flush that follows the context invalidation when that flush comes after this check.
        if (_contextCache.Generation == contextGeneration)
            Iotlb.TryFill(did, request.Iova, level, walk.Hpa, granted, snoop, ticket);
        if (((RequiredBitsByAccess >> ((int)request.Access << 2)) & 7 & ~(uint)granted) != 0)
            return PermissionFaulted(request, did, flags, granted);
        return TranslationResult.FromWords(walk.Hpa, TranslationResult.Tail(TranslationStatus.Translated, (PageSize)level, granted, snoop, FaultReason.None, did, false));
    }

    /// <summary>The fault a failed walk reports, by its <see cref="WalkFault"/> and the context's mode.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult WalkFaulted(in TranslationRequest request, in ResolvedContext context, WalkFault fault) =>
        WalkFaulted(request, context.Did, context.Flags, fault);

    /// <summary><see cref="WalkFaulted(in TranslationRequest, in ResolvedContext, WalkFault)"/> from the context's DID and flags (passed by value: the miss path keeps them in registers).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // faults are rare: their switch stays out of the miss path
    private TranslationResult WalkFaulted(in TranslationRequest request, ushort did, ContextFlags flags, WalkFault fault)
    {
        bool scalable = (flags & ContextFlags.Scalable) != 0;
        FaultReason reason = fault switch
        {
            WalkFault.NotPresent => PermissionFault(request.Access, scalable),
            WalkFault.ReservedBit => scalable ? FaultReason.SmSecondLevelReserved : FaultReason.PagingEntryReserved,
            WalkFault.AddressBeyondWidth => scalable ? FaultReason.SmAddressBeyondMax : FaultReason.AddressBeyondMgaw,
            WalkFault.TablePointerOutsideMemory => scalable ? FaultReason.SmSecondLevelPointerInvalid : FaultReason.PagingEntryInvalid,
            _ => scalable ? FaultReason.SmPasidEntryInvalid : FaultReason.ContextEntryInvalid,
        };
        return Fault(request, reason, did, (flags & ContextFlags.FaultProcessingDisabled) != 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult Complete(in TranslationRequest request, in ResolvedContext context, in IotlbEntry entry, bool iotlbHit)
    {
        if ((RequiredFor(request.Access) & ~entry.Permissions) != 0)
            return PermissionFaulted(request, context, entry.Permissions);
        ulong offsetMask = entry.Size.Bytes() - 1;
        return new TranslationResult(TranslationStatus.Translated, entry.PageHpa | (request.Iova & offsetMask), entry.Size,
            entry.Permissions, entry.Snoop, FaultReason.None, context.Did, iotlbHit);
    }

    /// <summary>The permissions an access needs: without execute requests (ECAP.ERS and SSEE) an execute access needs read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Access RequiredFor(Access access) =>
        (access & Access.Execute) != 0 ? (access & ~Access.Execute) | Access.Read : access;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TranslationResult PermissionFaulted(in TranslationRequest request, in ResolvedContext context, Access granted) =>
        PermissionFaulted(request, context.Did, context.Flags, granted);

    [MethodImpl(MethodImplOptions.NoInlining)] // out of the success path: its reason needs the mode and the style
    private TranslationResult PermissionFaulted(in TranslationRequest request, ushort did, ContextFlags flags, Access granted) =>
        Fault(request, PermissionFault(request.Access & ~granted, (flags & ContextFlags.Scalable) != 0), did, (flags & ContextFlags.FaultProcessingDisabled) != 0);

    /// <summary>
    /// Turns a fast context (no root) into a full one before a walk: from the context cache, or
    /// resolved again. False with a fault result when the tables say otherwise now.
    /// </summary>
    private bool TryCompleteContext(in TranslationRequest request, ref ResolvedContext context, out TranslationResult fault)
    {
        fault = default;
        if (_contextCache.TryGet(request.SourceId, NoPasidKey, out ResolvedContext full))
        {
            context = full;
            return true;
        }
        FaultReason reason = ResolveSlow(request, NoPasidKey, out full, out bool fpd);
        if (reason != FaultReason.None)
        {
            fault = Fault(request, reason, 0, fpd);
            return false;
        }
        context = full;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private FaultReason ResolveSlow(in TranslationRequest request, uint pasidKey, out ResolvedContext context, out bool fpd)
    {
        _counters.Increment(ContextMissCounter);
        uint generation = _contextCache.Generation;
        FaultReason fault = ResolveProtected(request, out context, out fpd);
        if (fault == FaultReason.None)
            _contextCache.TryPut(request.SourceId, pasidKey, context, generation);
        return fault;
    }

    private FaultReason PermissionFault(Access missing, bool scalable)
    {
        bool write = (missing & Access.Write) != 0;
        if (!scalable)
            return write ? FaultReason.Write : FaultReason.Read;
        if (_legacyStylePermissions)
            return write ? FaultReason.SmWrite : FaultReason.SmRead;
        return FaultReason.SmSecondLevelPermission;
    }

    private static bool Fpd(in ResolvedContext context) => (context.Flags & ContextFlags.FaultProcessingDisabled) != 0;

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal TranslationResult Fault(in TranslationRequest request, FaultReason reason, ushort did, bool fpd)
    {
        _counters.Increment(FaultCounter);
        Interlocked.Increment(ref _faultsByReason[(byte)reason]);
        OnFault(request, reason, fpd);
        return TranslationResult.Faulted(reason, did);
    }

    // Recording takes the recorder's lock: faults are the slow path, and the registers need one writer.
    private void OnFault(in TranslationRequest request, FaultReason reason, bool fpd) =>
        FaultRecorder.Record(FaultRecord.FromRequest(request, reason, fpd));
}
