using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Memory;

namespace Engine.Iommu;

/// <summary>Attributes of a resolved context (and, in scalable mode, PASID entry).</summary>
[Flags]
internal enum ContextFlags : byte
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Output = input (TT 2 / PGTT 4).</summary>
    PassThrough = 1,
    /// <summary>PGSNP: every access snoops.</summary>
    PageSnoop = 2,
    /// <summary>Faults are not recorded (FPD).</summary>
    FaultProcessingDisabled = 4,
    /// <summary>Page requests enabled (scalable context PRE).</summary>
    PageRequest = 8,
    /// <summary>Device TLB enabled.</summary>
    DeviceTlb = 16,
    /// <summary>PWSNP: page walks snoop.</summary>
    PageWalkSnoop = 32,
    /// <summary>Resolved through scalable-mode structures.</summary>
    Scalable = 64,

    /// <summary>From the per-source fast word: <see cref="ResolvedContext.Root"/> is not filled in (look it up before walking).</summary>
    RootUnknown = 128,
}

/// <summary>What the context (and PASID) structures say about a requester: where its second-stage table is and how to use it.</summary>
/// <param name="Root">Second-stage root table HPA.</param>
/// <param name="Did">Domain id.</param>
/// <param name="Levels">Levels of the table (agaw + 2).</param>
/// <param name="Width">Input-address width: min(AW width, MGAW).</param>
/// <param name="Flags">Attributes.</param>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct ResolvedContext(ulong Root, ushort Did, byte Levels, byte Width, ContextFlags Flags)
{
    /// <summary>
    /// A context from its two 8-byte words as they lie in memory: <paramref name="root"/>, then
    /// DID | levels &lt;&lt; 16 | width &lt;&lt; 24 | flags &lt;&lt; 32 (the batch's miss list stores one
    /// per miss: built field by field it went through the stack as narrow stores read back wide, issue 14).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ResolvedContext FromWords(ulong root, ulong tail) => TwoWords.Make<ResolvedContext>(root, tail);
}

/// <summary>
/// The context cache and PASID cache in one: resolved contexts keyed by (source id, PASID),
/// direct-mapped, seqlocked like the IOTLB and validated by one generation number, so any
/// context-cache or PASID-cache invalidation is a single increment (over-invalidating a
/// domain- or device-selective request is allowed by the spec and keeps this O(1)).
/// </summary>
internal sealed unsafe class ContextCache : IDisposable
{
    /// <summary>The PASID key of a request without PASID (one past the 20-bit PASID range).</summary>
    public const uint NoPasidKey = 0x10_0000;

    private const int SlotWords = 8; // [version][key][root][did | levels | width | flags][generation], one cache line
    private const ulong ValidBit = 1UL << 63;
    private readonly PinnedWords _slotBlock;     // owns _slots (see PinnedWords: why not native memory)
    private readonly PinnedWords _sourceBlock;   // owns _bySource
    private readonly ulong* _slots;
    private readonly ulong _mask;
    private uint _generation;
    private bool _disposed;

    // The hot path's shortcut for requests without PASID: one native word per source id, read with
    // one load (no seqlock needed), holding everything an IOTLB hit needs. Only contexts that
    // translate (not pass-through) get one, so a word that is current means "probe the IOTLB":
    // 63:41 stamp (1 | 22-bit generation) | 33:26 flags | 25:23 levels | 22:16 width | 15:0 DID.
    // A 22-bit generation could wrap onto a stale word after 2^22 invalidations, so the words are
    // cleared every 2^21.
    private readonly ulong* _bySource;   // one word per source id, then the stamp
    // Beside each fast word, its root word (FastRootWord): the table a miss walks, so a miss needs no slot read.
    private readonly PinnedWords _rootBlock;
    private readonly ulong* _rootBySource;
    private readonly Lock _invalidationLock = new();
    /// <summary>Source ids (and the index of the stamp in <see cref="FastWords"/>).</summary>
    public const int SourceIds = 65536;

    public ContextCache(int slots = 1024)
    {
        _mask = (ulong)slots - 1;
        Slots = slots;
        _slotBlock = new PinnedWords((long)slots * SlotWords);
        _slots = _slotBlock.Pointer;
        _sourceBlock = new PinnedWords(SourceIds + 1);
        _bySource = _sourceBlock.Pointer;
        _bySource[SourceIds] = FastContextWord.StampOf(0);
        _rootBlock = new PinnedWords(SourceIds);
        _rootBySource = _rootBlock.Pointer;
    }

    public int Slots { get; }

    public uint Generation => Volatile.Read(ref _generation);

    public void InvalidateAll()
    {
        // Serialized so the stamp never steps back to an older generation.
        lock (_invalidationLock)
        {
            uint g = Interlocked.Increment(ref _generation);
            Volatile.Write(ref _bySource[SourceIds], FastContextWord.StampOf(g));
            if ((g & ((1u << 21) - 1)) == 0)
                _sourceBlock.Clear(0, SourceIds);   // not the stamp
        }
    }

    /// <summary>
    /// The fast words, indexed by source id, and at <see cref="SourceIds"/> the stamp: a word is
    /// current (and its context translates) exactly when <c>word &gt;&gt; 41 == stamp</c>. DID in bits
    /// 15:0, input width in 22:16. Valid for as long as the cache is reachable, Dispose or not.
    /// </summary>
    public ulong* FastWords => _bySource;

    /// <summary>
    /// The root words (<see cref="FastRootWord"/>), indexed by source id: the table of the put that
    /// wrote the source's fast word, or of a later one. Valid for as long as the cache is reachable.
    /// </summary>
    public ulong* RootWords => _rootBySource;

    /// <summary>The fast word of <paramref name="sourceId"/> (see <see cref="FastWords"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong FastWord(ushort sourceId) => Volatile.Read(ref _bySource[sourceId]);

    /// <summary>What a current fast word holds in bits 63:41.</summary>
    public ulong FastStamp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _bySource[SourceIds]);
    }

    /// <summary>
    /// The fast context of a request without PASID: DID, width, levels and flags (with
    /// <see cref="ContextFlags.RootUnknown"/>), or false when the word is absent or stale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGetFast(ushort sourceId, out ResolvedContext context)
    {
        var w = new FastContextWord(FastWord(sourceId));
        if (w.Stamp == FastStamp)
        {
            context = new ResolvedContext(0, w.Did, (byte)w.Levels, (byte)w.Width, w.Flags | ContextFlags.RootUnknown);
            return true;
        }
        context = default;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Key(ushort sourceId, uint pasid) => ValidBit | ((ulong)sourceId << 21) | (pasid & 0x1F_FFFF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong* SlotOf(ulong key) => _slots + (((key ^ (key >> 21) ^ (key >> 9)) & _mask) * SlotWords);

    /// <summary>Looks up (source id, PASID); <paramref name="pasid"/> is 0x100000 for "no PASID".</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(ushort sourceId, uint pasid, out ResolvedContext context)
    {
        ulong key = Key(sourceId, pasid);
        ulong* slot = SlotOf(key);
        ulong v1 = Volatile.Read(ref slot[0]);
        ulong k = Volatile.Read(ref slot[1]);
        ulong root = Volatile.Read(ref slot[2]);
        ulong packed = Volatile.Read(ref slot[3]);
        ulong generation = Volatile.Read(ref slot[4]);
        ulong v2 = Volatile.Read(ref slot[0]);
        if (v1 == v2 && (v1 & 1) == 0 && k == key && generation == Volatile.Read(ref _generation))
        {
            context = new ResolvedContext(root, (ushort)packed, (byte)(packed >> 16), (byte)(packed >> 24), (ContextFlags)(packed >> 32));
            return true;
        }
        context = default;
        return false;
    }

    /// <summary>
    /// <see cref="TryGet(ushort, uint, out ResolvedContext)"/>, but only a context resolved under
    /// <paramref name="generation"/> (read by the caller before this call), while that is still the cache's generation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(ushort sourceId, uint pasid, uint generation, out ResolvedContext context)
    {
        // TryGet matches the slot's generation with the cache's at that moment; the cache's, read
        // again and still the caller's, pins the slot's to it as well: generations only grow.
        if (TryGet(sourceId, pasid, out context) && Volatile.Read(ref _generation) == generation)
            return true;
        context = default;
        return false;
    }

    /// <summary>Caches a resolution made under generation <paramref name="generation"/>; skipped if the slot is busy or the generation moved.</summary>
    public void TryPut(ushort sourceId, uint pasid, in ResolvedContext context, uint generation)
    {
        ulong key = Key(sourceId, pasid);
        ulong* slot = SlotOf(key);
        ulong version = Volatile.Read(ref slot[0]);
        if ((version & 1) != 0 || Interlocked.CompareExchange(ref slot[0], version + 1, version) != version)
            return;
        // After Dispose nothing is cached: the flag is raised before the generation moves, so a put
        // made under the new generation sees it.
        if (Volatile.Read(ref _generation) == generation && !Volatile.Read(ref _disposed))
        {
            Volatile.Write(ref slot[1], key);
            Volatile.Write(ref slot[2], context.Root);
            Volatile.Write(ref slot[3], ((ulong)context.Flags << 32) | ((ulong)context.Width << 24) | ((ulong)context.Levels << 16) | context.Did);
            Volatile.Write(ref slot[4], generation);
            if (pasid == NoPasidKey && (context.Flags & ContextFlags.PassThrough) == 0)
            {
                // Written under the slot lock after the generation check; a racing invalidation
                // makes the word stale at once, as it does the slot. The root word first: a reader
                // that sees this fast word then sees this root word or a later one (FastRootWord).
                Volatile.Write(ref _rootBySource[sourceId], FastRootWord.Create(context));
                Volatile.Write(ref _bySource[sourceId], FastContextWord.Create(generation, context).Value);
            }
        }
        Volatile.Write(ref slot[0], version + 2);
    }

    /// <summary>
    /// Empties the cache for good: every lookup that starts afterwards misses and nothing more is
    /// cached. The words stay valid for a racing reader until the cache is unreachable.
    /// </summary>
    public void Dispose()
    {
        if (Volatile.Read(ref _disposed))
            return;
        Volatile.Write(ref _disposed, true);
        InvalidateAll();
    }

    /// <summary>Checkpoint: the slots, the per-source fast words with the stamp, and the generation (on a quiet cache).</summary>
    internal void SaveState(Memory.CheckpointWriter w)
    {
        lock (_invalidationLock)
        {
            w.U32(Volatile.Read(ref _generation));
            _slotBlock.Save(w);
            _sourceBlock.Save(w);
        }
    }

    // The root words are not in the checkpoint (its format predates them): each current fast word gets
    // the root word of its source's slot; a word whose slot was evicted gets none (0), and its misses
    // take the general path until the source's context is cached again.
    private void RebuildRootWords()
    {
        _rootBlock.Clear(0, SourceIds);
        uint generation = Volatile.Read(ref _generation);
        for (int source = 0; source < SourceIds; source++)
        {
            // Only a slot that could have written the word: translating, under its DID (a pass-through
            // context put later under the same generation leaves the word but has no table).
            ulong word = _bySource[source];
            if (FastContextWord.StampOf(word) == FastContextWord.StampOf(generation)
                && TryGet((ushort)source, NoPasidKey, out ResolvedContext context)
                && (context.Flags & ContextFlags.PassThrough) == 0 && context.Did == FastContextWord.DidOf(word))
                _rootBySource[source] = FastRootWord.Create(context);
        }
    }

    /// <summary>Checkpoint: takes the contents <see cref="SaveState"/> wrote (the cache must have as many slots).</summary>
    internal void RestoreState(Memory.CheckpointReader r)
    {
        lock (_invalidationLock)
        {
            uint generation = r.U32("the context cache's generation");
            _slotBlock.Restore(r, "the context-cache slots");
            _sourceBlock.Restore(r, "the context cache's per-source words");
            Volatile.Write(ref _generation, generation);
            RebuildRootWords();
        }
    }
}
