using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// The IOTLB: a lock-free, set-associative cache of second-stage translations in pinned memory,
/// tagged by DID, page size and input page number (SPEC.md §2.9).
/// </summary>
/// <remarks>
/// <para>Layout: each set is one 64-byte cache line, <c>[version][tag0][data0][tag1][data1][tag2][data2][victim]</c>,
/// so a set holds <see cref="Ways"/> entries.</para>
/// <code>
/// tag:  63 valid | 62:61 size (1 = 4K, 2 = 2M, 3 = 1G) | 60:45 DID | 44:0 page number at that size
/// data: 63 always 1 | 62:53 generation | 52 snoop | 51:12 page HPA | 11:4 page shift (12, 21, 30) | 3 always 1 | 2 X | 1 W | 0 R
/// </code>
/// <para>A lookup needs no loop: each domain keeps a hint of the page sizes it has ever cached, so a
/// domain mapped only with 1G pages probes one set, not three, and a hit compares one stamp
/// (<c>data &gt;&gt; 53</c>, the present bit and the generation). Bit 3, set in every entry, lets the hot
/// path fold "hit" into its permission test; the page shift sits where it can cut the page offset with one BZHI.</para>
/// <para>Readers never wait and never write. A set is a seqlock: a reader reads the version, the
/// words, and the version again, and treats an odd or changed version as a miss. Fills take a set
/// by CAS of its version from even to odd and simply skip the fill when it is taken (a fill is only
/// a cache), so translating threads never block; invalidations on the control path spin for it.</para>
/// <para>Global and domain-selective invalidation are O(1): an entry carries the generation
/// (global + per-DID counter, 10 bits) it was filled under and is valid only while that is still
/// current. Before a 10-bit generation could wrap onto a stale entry, a sweep (every 256 steps of
/// either counter, so at most 512 steps pass between sweeps) erases every entry that is not current.</para>
/// <para>The promise: once an invalidation has returned, no lookup that starts afterwards returns
/// an entry it covered. Fills capture the generation and the page-invalidation sequence before
/// their walk and re-check both under the set lock, so a walk that raced an invalidation never
/// plants the stale translation afterwards.</para>
/// </remarks>
internal sealed unsafe class Iotlb : IDisposable
{
    /// <summary>Entries per set (one cache line).</summary>
    public const int Ways = 3;

    private const int SetWords = 8;
    private const ulong ValidBit = 1UL << 63;
    private const int SizeShift = 61;
    private const int DidShift = 45;
    private const ulong PageNumberMask = (1UL << 45) - 1;
    private const int StampShift = IotlbData.StampShift;
    private const uint GenerationMask = 0x3FF;
    private const uint StampPresent = 0x400;
    private const uint SweepInterval = 256;
    private const int SizeHintShift = 32;
    private const int Domains = 65536;

    private readonly PinnedWords _setBlock;       // owns _sets (see PinnedWords: why not native memory)
    private readonly PinnedWords _domainBlock;    // owns _domainStates
    private readonly ulong* _sets;
    // Per DID: 31:0 domain-selective invalidations, 34:32 page sizes ever cached (4K, 2M, 1G) —
    // a hint only: a size missing from it costs a miss, never a wrong answer.
    private readonly ulong* _domainStates;
    private readonly ulong _setMask;
    private readonly bool _useVector512;
    private readonly Lock _controlLock = new();
    private uint _globalGeneration;
    private ulong _pageInvalidationSequence;
    private bool _disposed;

    /// <summary>Creates an IOTLB of <paramref name="sets"/> sets (a power of two) × <see cref="Ways"/> ways.</summary>
    /// <param name="sets">Sets; default 1024 (3072 entries, 64 KiB), the size of a hardware IOTLB.</param>
    /// <param name="useSimd">Whether a whole set may be compared with one AVX-512 instruction where the CPU has it; false forces the scalar path (its twin).</param>
    public Iotlb(int sets = 1024, bool useSimd = true)
    {
        if (sets < 1 || sets > (1 << 24) || !BitOperations.IsPow2(sets))
            throw new ArgumentOutOfRangeException(nameof(sets), sets, "The set count must be a power of two from 1 to 2^24.");
        Sets = sets;
        _setMask = (ulong)sets - 1;
        _setBlock = new PinnedWords((long)sets * SetWords);
        _sets = _setBlock.Pointer;
        _domainBlock = new PinnedWords(Domains);
        _domainStates = _domainBlock.Pointer;
        _useVector512 = useSimd && Vector512.IsHardwareAccelerated;
    }

    /// <summary>Sets in the cache.</summary>
    public int Sets { get; }

    /// <summary>Entries the cache can hold.</summary>
    public int Capacity => Sets * Ways;

    /// <summary>Whether lookups compare a whole set with AVX-512.</summary>
    public bool UsesVector512 => _useVector512;

    /// <summary>What a fill must capture before it walks, and hand back to <see cref="TryFill(ushort, ulong, int, ulong, Access, bool, FillTicket)"/>.</summary>
    public readonly record struct FillTicket(uint Generation, ulong PageSequence);

    /// <summary>Captures the state a later fill is checked against. Call before walking.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public FillTicket BeginFill(ushort did) =>
        new(CurrentStamp(did), Volatile.Read(ref _pageInvalidationSequence));

    /// <summary>
    /// <see cref="BeginFill"/> for eight DIDs at once (AVX-512): each lane's ticket generation, from the
    /// DID's state word in <paramref name="state"/>, read by the caller with <see cref="DomainStatesAt"/>
    /// just before.
    /// The page sequence, the same for every DID, is <see cref="PageSequenceForFill"/>. Call before walking.
    /// <paramref name="cachedSizes"/>: each DID's cached sizes then (bit 0 = 4K, 1 = 2M, 2 = 1G, as in
    /// <see cref="LookupData"/>). Sizes are only ever added, so a size present then is present at the
    /// fill: such a fill needs no <see cref="NoteCachedSize"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector512<ulong> BeginFillGenerationsOfStates(Vector512<ulong> state, out Vector512<ulong> cachedSizes)
    {
        cachedSizes = (state >> SizeHintShift) & Vector512.Create(7UL);
        return StampsOf(state);
    }

    /// <summary>
    /// The state word of each DID (indexed by DID; generation and cached sizes). Read only; valid as
    /// long as this cache is reachable.
    /// </summary>
    internal ulong* DomainStateWords => _domainStates;

    /// <summary>
    /// The state words of the eight DIDs in bits 15:0 of <paramref name="didWords"/>[0..7], with plain
    /// loads: on Zen 4 an AVX2 gather of four words costs about twice four loads and inserts. The DIDs
    /// may have just been stored there as one vector (a wide store forwards to narrow loads).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector512<ulong> DomainStatesAt(ulong* didWords)
    {
        ulong* states = _domainStates;
        return Vector512.Create(
            Volatile.Read(ref states[(ushort)didWords[0]]), Volatile.Read(ref states[(ushort)didWords[1]]),
            Volatile.Read(ref states[(ushort)didWords[2]]), Volatile.Read(ref states[(ushort)didWords[3]]),
            Volatile.Read(ref states[(ushort)didWords[4]]), Volatile.Read(ref states[(ushort)didWords[5]]),
            Volatile.Read(ref states[(ushort)didWords[6]]), Volatile.Read(ref states[(ushort)didWords[7]]));
    }

    /// <summary><see cref="StampOf"/> for eight domain states.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector512<ulong> StampsOf(Vector512<ulong> state) =>
        ((state + Vector512.Create((ulong)Volatile.Read(ref _globalGeneration))) & Vector512.Create((ulong)GenerationMask)) | Vector512.Create((ulong)StampPresent);

    /// <summary>The page sequence <see cref="BeginFill"/> captures, for <see cref="BeginFillGenerationsOfStates"/>'s tickets.</summary>
    internal ulong PageSequenceForFill => Volatile.Read(ref _pageInvalidationSequence);

    /// <summary>
    /// Looks up <paramref name="iova"/> in domain <paramref name="did"/>, probing one set per page size
    /// allowed by <paramref name="superpageLevel"/> (0 = 4K only, 1 = 2M too, 2 = 1G too) that the
    /// domain has cached, smallest first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookup(ushort did, ulong iova, int superpageLevel, out IotlbEntry entry)
    {
        ulong data = (iova >> 57) == 0 ? LookupData(did, iova, (2u << superpageLevel) - 1) : 0;
        var d = new IotlbData(data);
        entry = d.IsHit ? new IotlbEntry(d.PageHpa, (PageSize)d.Level, d.Permissions, d.Snoop) : default;
        return data != 0;
    }

    /// <summary>
    /// The hot path's lookup: the data word of the entry for <paramref name="iova"/> (see the layout;
    /// <see cref="IotlbData"/> reads it), or 0 on a miss. Probes only the sizes in
    /// <paramref name="sizes"/> (bit 0 = 4K, 1 = 2M, 2 = 1G) that the domain has cached.
    /// <paramref name="iova"/> must be below 2^57 (the widest input address); callers check the width first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong LookupData(ushort did, ulong iova, uint sizes = 7)
    {
        ulong state = Volatile.Read(ref _domainStates[did]);
        ulong stamp = StampOf(state);
        sizes &= (uint)(state >> SizeHintShift);
        if ((sizes & 1) != 0)
        {
            ulong data = ProbeLevel(did, iova, 1);
            if (data >> StampShift == stamp)
                return data;
        }
        return (sizes & 6) != 0 ? LookupLarge(did, iova, sizes, stamp) : 0;
    }

    // 2M and 1G probes, out of line so the 4K path stays short.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong LookupLarge(ushort did, ulong iova, uint sizes, ulong stamp)
    {
        if ((sizes & 2) != 0)
        {
            ulong data = ProbeLevel(did, iova, 2);
            if (data >> StampShift == stamp)
                return data;
        }
        if ((sizes & 4) != 0)
        {
            ulong data = ProbeLevel(did, iova, 3);
            if (data >> StampShift == stamp)
                return data;
        }
        return 0;
    }

    /// <summary>
    /// Caches a translation found by a walk that began with <paramref name="ticket"/>. Skipped (false)
    /// when the set is busy or an invalidation happened since the ticket was taken.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryFill(ushort did, ulong iova, in IotlbEntry entry, FillTicket ticket) =>
        TryFill(did, iova & ((1UL << 57) - 1), (int)entry.Size, entry.PageHpa, entry.Permissions, entry.Snoop, ticket);

    /// <summary>
    /// <see cref="TryFill(ushort, ulong, in IotlbEntry, FillTicket)"/> from a walk's fields: the page of
    /// <paramref name="level"/> (1 = 4K, 2 = 2M, 3 = 1G) holding <paramref name="hpa"/> (any address in
    /// it: the page offset is cut here). <paramref name="iova"/> must be below 2^57, as every address
    /// that was walked is.
    /// </summary>
    /// <remarks>
    /// Scalars, the page shift worked out once and the way addressed by pointer: in the miss paths the
    /// fill was the largest part of a miss (about 100 of 470 executed instructions, issue 14), with its
    /// shift computed three times and its entry struct spilled. Inlined into the miss paths.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFill(ushort did, ulong iova, int level, ulong hpa, Access permissions, bool snoop, FillTicket ticket)
    {
        int shift = PageSizes.ShiftOfLevel(level);
        ulong page = iova >> shift;   // below 2^45: iova is below 2^57
        ulong tag = ValidBit | ((ulong)level << SizeShift) | ((ulong)did << DidShift) | page;
        ulong data = ((ulong)ticket.Generation << StampShift) | ((hpa >> shift << shift) & EptEntry.AddressMask)
            | ((ulong)shift << IotlbData.PageShiftShift) | IotlbData.EntryBit | (snoop ? IotlbData.SnoopBit : 0) | ((ulong)permissions & 7);
        return TryFillPrepared(SetOfPage(did, page, level), tag, data, did, level, ticket);
    }

    /// <summary>
    /// The batch's fills, eight at a time: for each lane the tag, the set and the data word
    /// <see cref="TryFill(ushort, ulong, int, ulong, Access, bool, FillTicket)"/> would compute, for
    /// <see cref="TryFillPrepared(ulong*, ulong, ulong, ushort, int, FillTicket)"/> to write. Levels 1–3, addresses below 2^57; lanes the caller does not fill may hold anything.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void PrepareFills(Vector512<ulong> did, Vector512<ulong> iova, Vector512<ulong> level, Vector512<ulong> hpa, Vector512<ulong> permissions,
        Vector512<ulong> snoop, Vector512<ulong> generation, out Vector512<ulong> tag, out Vector512<ulong> set, out Vector512<ulong> data)
    {
        Vector512<ulong> shift = (level << 3) + level + Vector512.Create(3UL);   // 12, 21, 30
        Vector512<ulong> page = Avx512F.ShiftRightLogicalVariable(iova, shift);
        tag = Vector512.Create(ValidBit) | (level << SizeShift) | (did << DidShift) | page;
        Vector512<ulong> index = (page ^ (page >> 11) ^ (did << 6) ^ ((level - Vector512<ulong>.One) << 4)) & Vector512.Create(_setMask);
        set = Vector512.Create((ulong)_sets) + (index << 6);
        data = (generation << StampShift) | (Avx512F.ShiftLeftLogicalVariable(Avx512F.ShiftRightLogicalVariable(hpa, shift), shift) & Vector512.Create(EptEntry.AddressMask))
            | (shift << IotlbData.PageShiftShift) | Vector512.Create(IotlbData.EntryBit) | (snoop << IotlbData.SnoopShift) | (permissions & Vector512.Create(7UL));
    }

    /// <summary>
    /// Writes a fill <see cref="PrepareFills"/> prepared (the set, the tag and the data of a walk of
    /// <paramref name="level"/> in domain <paramref name="did"/> that began with <paramref name="ticket"/>),
    /// under the same lock and checks as <see cref="TryFill(ushort, ulong, int, ulong, Access, bool, FillTicket)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFillPrepared(ulong* set, ulong tag, ulong data, ushort did, int level, FillTicket ticket) =>
        TryFillPrepared(set, tag, data, did, level, ticket, sizeNoted: false);

    /// <summary>
    /// <see cref="TryFillPrepared(ulong*, ulong, ulong, ushort, int, FillTicket)"/>; with <paramref name="sizeNoted"/>,
    /// the caller has made sure the domain's state already holds the page size of <paramref name="level"/>
    /// (its ticket saw it, see <see cref="BeginFillGenerationsOfStates"/>, or
    /// it called <see cref="NoteCachedSize"/>), and the fill skips that check.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFillPrepared(ulong* set, ulong tag, ulong data, ushort did, int level, FillTicket ticket, bool sizeNoted)
    {
        ulong version = Volatile.Read(ref set[0]);
        if ((version & 1) != 0 || Interlocked.CompareExchange(ref set[0], version + 1, version) != version)
            return false;
        bool filled = false;
        if (!Volatile.Read(ref _disposed) && CurrentStamp(did) == ticket.Generation && Volatile.Read(ref _pageInvalidationSequence) == ticket.PageSequence)
        {
            if (!sizeNoted)
                NoteSize(did, level);
            ulong* way = set + 1 + 2 * ChooseWay(set, tag);
            Volatile.Write(ref way[0], tag);
            Volatile.Write(ref way[1], data);
            filled = true;
        }
        Volatile.Write(ref set[0], version + 2);
        return filled;
    }

    /// <summary>
    /// Adds the page size of <paramref name="level"/> (1 = 4K, 2 = 2M, 3 = 1G) to what domain
    /// <paramref name="did"/> has cached, so lookups probe it: before a fill of that size can be seen.
    /// A size noted for a fill that is then refused costs lookups a probe, never a wrong answer.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // once per domain and size: out of the fill loops
    internal void NoteCachedSize(ushort did, int level)
    {
        if (!Volatile.Read(ref _disposed))   // a disposed cache's domains stay without sizes (see Dispose)
            NoteSize(did, level);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void NoteSize(ushort did, int level)
    {
        ulong hint = 1UL << (SizeHintShift + level - 1);
        if ((Volatile.Read(ref _domainStates[did]) & hint) == 0)
            Interlocked.Or(ref _domainStates[did], hint);   // before the entry can be seen
    }

    /// <summary>Global invalidations so far (read-only; for metrics: the generation counter the lookup already uses).</summary>
    public long GlobalInvalidations => Volatile.Read(ref _globalGeneration);

    /// <summary>Page-selective invalidations so far (read-only; the sequence number fills already check).</summary>
    public long PageInvalidations => (long)Volatile.Read(ref _pageInvalidationSequence);

    /// <summary>
    /// Domain-selective invalidations so far, summed over every DID's generation (bits 31:0 of its
    /// state word). A scan of 65,536 words: for metrics once a second, never for the hot path.
    /// </summary>
    public long DomainInvalidations
    {
        get
        {
            if (Volatile.Read(ref _disposed))
                return 0;
            long sum = 0;
            for (int did = 0; did < Domains; did++)
                sum += (uint)Volatile.Read(ref _domainStates[did]);
            return sum;
        }
    }

    /// <summary>Invalidates everything (global invalidation): O(1).</summary>
    /// <remarks>After <see cref="Dispose"/> the cache is empty, so every invalidation returns at once.</remarks>
    public void InvalidateAll()
    {
        lock (_controlLock)
        {
            if (_disposed)
                return;
            uint g = Interlocked.Increment(ref _globalGeneration);
            if (g % SweepInterval == 0)
                Sweep();
        }
    }

    /// <summary>Invalidates every entry of domain <paramref name="did"/> (domain-selective): O(1).</summary>
    public void InvalidateDomain(ushort did)
    {
        lock (_controlLock)
        {
            if (_disposed)
                return;
            uint g = NextDomainGeneration(did);
            if (g % SweepInterval == 0)
                Sweep();
        }
    }

    /// <summary>
    /// Adds one to the domain-selective count in bits 31:0 of <paramref name="did"/>'s state, wrapping
    /// within them: an increment of the whole word carried into the cached sizes after 2^32
    /// invalidations of one DID (about an hour of a driver flushing a domain a million times a second).
    /// A CAS, not a plain add: fills set size bits with <see cref="Interlocked.Or(ref ulong, ulong)"/> meanwhile.
    /// </summary>
    private uint NextDomainGeneration(ushort did)
    {
        ref ulong state = ref _domainStates[did];
        while (true)
        {
            ulong old = Volatile.Read(ref state);
            ulong next = (old & ~(ulong)uint.MaxValue) | (uint)(old + 1);
            if (Interlocked.CompareExchange(ref state, next, old) == old)
                return (uint)next;
        }
    }

    /// <summary>
    /// Page-selective invalidation: every entry of <paramref name="did"/> overlapping the 2^<paramref name="am"/>
    /// pages at <paramref name="address"/> (aligned down to that block, as the spec's AM does). Large
    /// entries that overlap the block go too.
    /// </summary>
    public void InvalidatePages(ushort did, ulong address, int am)
    {
        if (am is < 0 or > 52)
            throw new ArgumentOutOfRangeException(nameof(am), am, "The address mask must be 0..52.");
        lock (_controlLock)
        {
            if (_disposed)
                return;
            // Announce first: a fill whose walk started before this cannot land afterwards.
            Interlocked.Increment(ref _pageInvalidationSequence);
            ulong pages = 1UL << am;
            ulong first = (address >> HostMemory.FrameShift) & ~(pages - 1);
            for (int level = 1; level <= 3; level++)
            {
                int shift = PageSizes.LevelStride * (level - 1);
                ulong firstAtLevel = first >> shift;
                ulong countAtLevel = Math.Max(1, pages >> shift);
                if (countAtLevel >= (ulong)Sets)
                {
                    ClearMatching(did, level, firstAtLevel, countAtLevel);
                    continue;
                }
                for (ulong i = 0; i < countAtLevel; i++)
                {
                    ulong tag = ValidBit | ((ulong)level << SizeShift) | ((ulong)did << DidShift) | ((firstAtLevel + i) & PageNumberMask);
                    ClearInSet(SetOf(tag), tag);
                }
            }
        }
    }

    /// <summary>Entries currently valid (a slow scan, for tests and statistics).</summary>
    public int CountValid()
    {
        int n = 0;
        for (ulong s = 0; s < (ulong)Sets; s++)
        {
            ulong* set = _sets + s * SetWords;
            for (int w = 0; w < Ways; w++)
            {
                ulong tag = Volatile.Read(ref set[1 + 2 * w]);
                ulong data = Volatile.Read(ref set[2 + 2 * w]);
                if ((tag & ValidBit) != 0 && (data >> StampShift) == CurrentStamp((ushort)(tag >> DidShift)))
                    n++;
            }
        }
        return n;
    }

    /// <summary>What a current entry of <paramref name="did"/> holds in data bits 63:53: present and the generation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint CurrentStamp(ushort did) => (uint)StampOf(Volatile.Read(ref _domainStates[did]));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong StampOf(ulong domainState) =>
        StampPresent | (((uint)domainState + Volatile.Read(ref _globalGeneration)) & GenerationMask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong* SetOf(ulong tag) => SetOfPage((ushort)(tag >> DidShift), tag & PageNumberMask, (int)(tag >> SizeShift) & 3);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong* SetOfPage(ushort did, ulong page, int level) =>
        _sets + ((page ^ (page >> 11) ^ ((ulong)did << 6) ^ ((ulong)(level - 1) << 4)) & _setMask) * SetWords;

    /// <summary>One set probe at a constant level: the data word of the matching way, or 0 (miss, or a writer was active).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ProbeLevel(ushort did, ulong iova, int level)
    {
        ulong page = iova >> PageSizes.ShiftOfLevel(level);   // below 2^45: iova is below 2^57
        ulong tag = ValidBit | ((ulong)level << SizeShift) | ((ulong)did << DidShift) | page;
        return ProbeSet(SetOfPage(did, page, level), tag);
    }

    /// <summary>One probe of a known set: the data word of the way holding <paramref name="tag"/>, or 0 (miss, or a writer was active).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ProbeSet(ulong* set, ulong tag)
    {
        ulong v1 = Volatile.Read(ref set[0]);
        ulong data = _useVector512 ? SelectVector512(set, tag) : SelectScalar(set, tag);
        ulong v2 = Volatile.Read(ref set[0]);
        return v1 == v2 && (v1 & 1) == 0 ? data : 0;
    }

    /// <summary>
    /// Eight lookups at once (the batch's vector path), each at the smallest page size its domain has
    /// cached — the only size of a domain mapped with one size, so a hit there is final, and a miss in
    /// a mixed domain is looked up again one by one. DIDs in bits 15:0 of <paramref name="did"/>, IOVAs
    /// below 2^57; lanes outside <paramref name="active"/> (all ones or zero per lane) come back 0.
    /// The domain states are read with plain loads and the tags and set addresses computed as
    /// vectors; each set is then probed on its own. <paramref name="scratch"/>: 16 words, 64-byte aligned.
    /// <paramref name="sizes"/>: each lane's domain's page-size hint (bits 2:0 as in <see cref="LookupData"/>);
    /// where it has at most one bit, the lane's probe was the only one, and a miss (0) is as final as <see cref="LookupData"/>'s.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector512<ulong> LookupDataSmallest(Vector512<ulong> did, Vector512<ulong> iova, Vector512<ulong> active, ulong* scratch, out Vector512<ulong> sizes)
    {
        // The states with plain loads, not AVX2 gathers (on Zen 4 a gather of four words costs about
        // twice four loads): the DIDs go out through the scratch (a wide store forwards to narrow loads).
        did.Store(scratch);
        Vector512<ulong> state = DomainStatesAt(scratch);
        Vector512<ulong> stamp = StampsOf(state);
        sizes = (state >> SizeHintShift) & Vector512.Create(7UL);
        active &= ~Vector512.Equals(sizes, Vector512<ulong>.Zero);
        Vector512<ulong> tag, index;
        // Nearly always every domain has 4K entries: then the tags and sets wait for nothing but the
        // requests (a predicted branch, not a data dependence on the gathered states).
        if ((Vector512.Equals(sizes & Vector512<ulong>.One, Vector512<ulong>.Zero) & active) == Vector512<ulong>.Zero)
        {
            Vector512<ulong> page = iova >> PageSizes.ShiftOfLevel(1);
            tag = Vector512.Create(ValidBit | (1UL << SizeShift)) | (did << DidShift) | page;
            index = (page ^ (page >> 11) ^ (did << 6)) & Vector512.Create(_setMask);
        }
        else
        {
            // The smallest size cached: lowest hint bit 1, 2, 4 → level 1, 2, 3; page shift 3 + 9 × level.
            Vector512<ulong> level = ((sizes & (Vector512<ulong>.Zero - sizes)) >> 1) + Vector512<ulong>.One;
            Vector512<ulong> page = Avx512F.ShiftRightLogicalVariable(iova, (level << 3) + level + Vector512.Create(3UL));
            tag = Vector512.Create(ValidBit) | (level << SizeShift) | (did << DidShift) | page;
            index = (page ^ (page >> 11) ^ (did << 6) ^ ((level - Vector512<ulong>.One) << 4)) & Vector512.Create(_setMask);
        }
        Vector512<ulong> sets = Vector512.Create((ulong)_sets);
        // A lane that is not probed reads set 0: harmless, and its answer is dropped.
        Vector512.ConditionalSelect(active, sets + (index << 6), sets).Store(scratch);
        tag.Store(scratch + 8);
        Vector512<ulong> data = Vector512.Create(
            ProbeSet((ulong*)scratch[0], scratch[8]), ProbeSet((ulong*)scratch[1], scratch[9]),
            ProbeSet((ulong*)scratch[2], scratch[10]), ProbeSet((ulong*)scratch[3], scratch[11]),
            ProbeSet((ulong*)scratch[4], scratch[12]), ProbeSet((ulong*)scratch[5], scratch[13]),
            ProbeSet((ulong*)scratch[6], scratch[14]), ProbeSet((ulong*)scratch[7], scratch[15]));
        return data & active & Vector512.Equals(data >> StampShift, stamp);
    }

    /// <summary>The scalar twin: branch-free way select (no unpredictable branch per way).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SelectScalar(ulong* set, ulong tag)
    {
        ulong m0 = (ulong)-(long)(Volatile.Read(ref set[1]) == tag ? 1 : 0);
        ulong m1 = (ulong)-(long)(Volatile.Read(ref set[3]) == tag ? 1 : 0);
        ulong m2 = (ulong)-(long)(Volatile.Read(ref set[5]) == tag ? 1 : 0);
        return (Volatile.Read(ref set[2]) & m0) | (Volatile.Read(ref set[4]) & m1) | (Volatile.Read(ref set[6]) & m2);
    }

    /// <summary>One 64-byte load and compare of the whole set; identical results to <see cref="SelectScalar"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SelectVector512(ulong* set, ulong tag)
    {
        Vector512<ulong> line = Vector512.LoadAligned(set);
        // Tags sit in lanes 1, 3 and 5; a fill never leaves two ways with one tag.
        uint hits = (uint)Vector512.Equals(line, Vector512.Create(tag)).ExtractMostSignificantBits() & 0b10_1010;
        return hits == 0 ? 0 : Volatile.Read(ref *(set + 1 + (nuint)BitOperations.TrailingZeroCount(hits)));
    }

    // The way a fill writes: the one already holding the tag (never two ways with one tag), else the
    // first that holds nothing current, else the round-robin victim. Tags first, as three compares:
    // a stamp costs two loads, and after any invalidation the first stale way ends the search.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int ChooseWay(ulong* set, ulong tag)
    {
        if (set[1] == tag)
            return 0;
        if (set[3] == tag)
            return 1;
        if (set[5] == tag)
            return 2;
        for (int w = 0; w < Ways; w++)
        {
            ulong t = set[1 + 2 * w];
            if ((t & ValidBit) == 0 || (set[2 + 2 * w] >> StampShift) != CurrentStamp((ushort)(t >> DidShift)))
                return w;
        }
        ulong victim = set[7]++;
        return (int)(victim % Ways);
    }

    private void ClearInSet(ulong* set, ulong tag)
    {
        ulong version = LockSet(set);
        for (int w = 0; w < Ways; w++)
        {
            if (set[1 + 2 * w] == tag)
            {
                Volatile.Write(ref set[1 + 2 * w], 0);
                Volatile.Write(ref set[2 + 2 * w], 0);
            }
        }
        Volatile.Write(ref set[0], version + 2);
    }

    private void ClearMatching(ushort did, int level, ulong firstPage, ulong count)
    {
        for (ulong s = 0; s < (ulong)Sets; s++)
        {
            ulong* set = _sets + s * SetWords;
            ulong version = LockSet(set);
            for (int w = 0; w < Ways; w++)
            {
                ulong t = set[1 + 2 * w];
                if ((t & ValidBit) != 0 && (int)((t >> SizeShift) & 3) == level && (ushort)(t >> DidShift) == did
                    && (t & PageNumberMask) - firstPage < count)
                {
                    Volatile.Write(ref set[1 + 2 * w], 0);
                    Volatile.Write(ref set[2 + 2 * w], 0);
                }
            }
            Volatile.Write(ref set[0], version + 2);
        }
    }

    // Erases every entry whose generation is not current, so 12-bit generations can never wrap onto one.
    private void Sweep()
    {
        for (ulong s = 0; s < (ulong)Sets; s++)
        {
            ulong* set = _sets + s * SetWords;
            ulong version = LockSet(set);
            for (int w = 0; w < Ways; w++)
            {
                ulong t = set[1 + 2 * w];
                if ((t & ValidBit) != 0 && (set[2 + 2 * w] >> StampShift) != CurrentStamp((ushort)(t >> DidShift)))
                {
                    Volatile.Write(ref set[1 + 2 * w], 0);
                    Volatile.Write(ref set[2 + 2 * w], 0);
                }
            }
            Volatile.Write(ref set[0], version + 2);
        }
    }

    // Control path: waits out a fill that holds the set (a few nanoseconds of work).
    private static ulong LockSet(ulong* set)
    {
        var spinner = new SpinWait();
        while (true)
        {
            ulong version = Volatile.Read(ref set[0]);
            if ((version & 1) == 0 && Interlocked.CompareExchange(ref set[0], version + 1, version) == version)
                return version;
            spinner.SpinOnce();
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>
    /// Empties the cache for good: every lookup that starts afterwards misses, fills are refused,
    /// and invalidations return at once (there is nothing left to invalidate). A lookup racing it returns an
    /// entry cached before, or a miss; its arrays stay valid until the cache is unreachable.
    /// </summary>
    public void Dispose()
    {
        lock (_controlLock)
        {
            if (_disposed)
                return;
            Volatile.Write(ref _disposed, true);
            // A domain with no size in its hint probes nothing: every later lookup misses. A fill that
            // passed its disposal check before the flag was set may still plant an entry and its size
            // bit; clearing the sets too leaves it nothing to find.
            _domainBlock.Clear(0, Domains);
            for (int s = 0; s < Sets; s++)
            {
                ulong* set = _sets + s * SetWords;
                ulong version = LockSet(set);
                for (int w = 1; w < SetWords; w++)
                    Volatile.Write(ref set[w], 0);
                Volatile.Write(ref set[0], version + 2);
            }
        }
    }

    /// <summary>Checkpoint: the sets, the per-DID states and the generations (on a quiet IOTLB: no fill or invalidation running).</summary>
    internal void SaveState(Memory.CheckpointWriter w)
    {
        lock (_controlLock)
        {
            w.U32(Volatile.Read(ref _globalGeneration));
            w.U64(Volatile.Read(ref _pageInvalidationSequence));
            _setBlock.Save(w);
            _domainBlock.Save(w);
        }
    }

    /// <summary>Checkpoint: takes the contents <see cref="SaveState"/> wrote (the IOTLB must have as many sets).</summary>
    internal void RestoreState(Memory.CheckpointReader r)
    {
        lock (_controlLock)
        {
            uint generation = r.U32("the IOTLB's global generation");
            ulong sequence = r.U64("the IOTLB's page-invalidation sequence");
            _setBlock.Restore(r, "the IOTLB sets");
            _domainBlock.Restore(r, "the IOTLB's per-DID states");
            Volatile.Write(ref _pageInvalidationSequence, sequence);
            Volatile.Write(ref _globalGeneration, generation);
        }
    }
}
