using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

/// <summary>
/// KVM's TDP MMU: owns one EPT of 4 or 5 levels in host memory and changes it with single atomic
/// 64-bit stores, so a lock-free walker (the IOMMU) always sees either the old or the new entry.
/// </summary>
/// <remarks>
/// <para>
/// Its public members describe the MMU's shape and activity and stay readable after the VM is
/// disposed (<see cref="RootHpa"/> then names a frame that is no longer the VM's, and
/// <see cref="TdpMmuStatistics.TablePages"/> is 0); every operation goes through the <see cref="Vm"/>,
/// which answers <see cref="ObjectDisposedException"/> by then.
/// </para>
/// <para>
/// Every method here runs under the VM's MMU lock. Each public VM operation ends with
/// <see cref="Flush"/>: importers are told which ranges changed after the entries changed, and only
/// then are freed table frames retired, so none can be reused before the importers have flushed.
/// Split by operation: this file holds the primitives, <c>TdpMmu.Range.cs</c> zap and
/// write-protect, <c>TdpMmu.Map.cs</c> mapping and the fault op.
/// </para>
/// </remarks>
internal sealed partial class TdpMmu
{
    private readonly HostMemory _memory;
    private readonly Vm _vm;
    private readonly List<(ulong Gfn, ulong Pages)> _changed = [];
    private readonly List<ulong> _unlinkedTables = [];
    private long _tablePages;
    private long _flushes;
    private long _invalidatedRanges;
    private long _splits;
    private long _faultsFixed;
    private long _faultsFailed;

    internal TdpMmu(Vm vm, HostMemory memory, int levels, int maxHugePageLevel, int physicalAddressWidth)
    {
        _vm = vm;
        _memory = memory;
        Levels = levels;
        MaxHugePageLevel = maxHugePageLevel;
        PhysicalAddressWidth = physicalAddressWidth;
        RsvdBitsMask = ReservedBitMasks.ForEpt(physicalAddressWidth, maxHugePageLevel, bit11Reserved: true);
        WalkerConfig = WalkerConfig.Ept(RsvdBitsMask);
        RootHpa = AllocateTable();
    }

    /// <summary>Levels of the EPT (4 or 5).</summary>
    public int Levels { get; }

    /// <summary>Guest-physical address width the EPT translates (48 or 57).</summary>
    public int AddressWidth => PageSizes.WidthOfLevels(Levels);

    /// <summary>HPA of the root table. It never changes while the VM lives.</summary>
    public ulong RootHpa { get; private set; }

    /// <summary>The guest's physical address width the must-be-zero masks were built for.</summary>
    public int PhysicalAddressWidth { get; }

    /// <summary>Largest leaf the MMU creates: 1 = 4K, 2 = 2M, 3 = 1G.</summary>
    public int MaxHugePageLevel { get; }

    /// <summary>Must-be-zero bits of this MMU's entries; bit 11 is among them everywhere.</summary>
    public ReservedBitMasks RsvdBitsMask { get; }

    /// <summary>The CPU's (EPT) view of these tables, for walkers.</summary>
    public WalkerConfig WalkerConfig { get; }

    /// <summary>Activity counters.</summary>
    public TdpMmuStatistics Statistics => new(
        Interlocked.Read(ref _tablePages), Interlocked.Read(ref _flushes), Interlocked.Read(ref _invalidatedRanges),
        Interlocked.Read(ref _splits), Interlocked.Read(ref _faultsFixed), Interlocked.Read(ref _faultsFailed));

    internal void CountFault(bool fixedIt) => Interlocked.Increment(ref fixedIt ? ref _faultsFixed : ref _faultsFailed);

    /// <summary>The VM's teardown retired every table frame: none is linked any more.</summary>
    internal void OnTablesFreed() => Interlocked.Exchange(ref _tablePages, 0);

    private static bool IsPresent(ulong entry) => (entry & EptEntry.PermissionMask) != 0;

    private static bool IsLeaf(ulong entry, int level) => level == 1 || (entry & EptEntry.PageSizeBit) != 0;

    private static ulong PagesAt(int level) => 1UL << (PageSizes.LevelStride * (level - 1));

    private static ulong EntryAddress(ulong table, ulong gfn, int level) =>
        table + (((gfn >> (PageSizes.LevelStride * (level - 1))) & PageSizes.LevelMask) << 3);

    // The MMU follows pointers it wrote itself, but an embedder can write any bits into host memory:
    // a pointer that leaves the region is a clear error, never an access violation.
    private ulong Read(ulong entryHpa) => Volatile.Read(ref Checked(entryHpa));

    // One atomic 64-bit release store: a walker sees the old or the new entry, and when it sees a
    // new table pointer it also sees the table's contents written before.
    // Inside an operation the value replaced is logged first, for RollBack.
    private void Write(ulong entryHpa, ulong value)
    {
        ref ulong entry = ref Checked(entryHpa);
        LogStore(entryHpa, entry);
        Volatile.Write(ref entry, value);
    }

    private ref ulong Checked(ulong entryHpa)
    {
        if (!_memory.Contains(entryHpa, 8))
            throw new InvalidOperationException($"The EPT is corrupted: an entry at HPA 0x{entryHpa:x} lies outside host memory.");
        return ref _memory.EntryRef(entryHpa);
    }

    private ulong AllocateTable()
    {
        ulong table = _memory.AllocateFrame();
        Interlocked.Increment(ref _tablePages);
        NoteNewTable(table);
        return table;
    }

    /// <summary>Records that present leaves for [gfn, gfn + pages) changed; importers hear of it at the next flush.</summary>
    private void RecordChange(ulong gfn, ulong pages) => _changed.Add((gfn, pages));

    /// <summary>
    /// Builds a table of 512 leaves one level down that map exactly what <paramref name="leaf"/>
    /// maps, with the same permissions and attributes. The table is filled before it is published.
    /// </summary>
    private ulong Split(ulong leaf, int level)
    {
        ulong table = AllocateTable();
        int childLevel = level - 1;
        ulong childBytes = PagesAt(childLevel) << HostMemory.FrameShift;
        ulong attributes = leaf & ~EptEntry.AddressMask & ~EptEntry.PageSizeBit;
        if (childLevel > 1)
            attributes |= EptEntry.PageSizeBit;
        ulong frame = leaf & EptEntry.AddressMask;
        for (int i = 0; i < PageSizes.EntriesPerTable; i++)
            _memory.EntryRef(table + ((ulong)i << 3)) = attributes | (frame + (ulong)i * childBytes);
        Interlocked.Increment(ref _splits);
        NoteSplit();
        return table;
    }

    /// <summary>
    /// Unlinks nothing itself: collects the frames of a subtree that the caller has just unlinked,
    /// and records every present leaf in it as changed.
    /// </summary>
    private void CollectUnlinked(ulong table, int level, ulong baseGfn)
    {
        _unlinkedTables.Add(table);
        for (int i = 0; i < PageSizes.EntriesPerTable; i++)
        {
            ulong entry = Read(table + ((ulong)i << 3));
            if (!IsPresent(entry))
                continue;
            ulong gfn = baseGfn + (ulong)i * PagesAt(level);
            if (IsLeaf(entry, level))
                RecordChange(gfn, PagesAt(level));
            else
                CollectUnlinked(entry & EptEntry.AddressMask, level - 1, gfn);
        }
    }

    /// <summary>
    /// The end of every operation: tells importers which guest ranges changed (merged into maximal
    /// runs), then retires the table frames the operation unlinked.
    /// </summary>
    internal void Flush()
    {
        if (_changed.Count > 0)
        {
            _changed.Sort((a, b) => a.Gfn.CompareTo(b.Gfn));
            var merged = new List<(ulong Gfn, ulong Pages)>();
            foreach (var (gfn, pages) in _changed)
            {
                if (merged.Count > 0 && merged[^1].Gfn + merged[^1].Pages >= gfn)
                {
                    var last = merged[^1];
                    merged[^1] = (last.Gfn, Math.Max(last.Gfn + last.Pages, gfn + pages) - last.Gfn);
                }
                else
                {
                    merged.Add((gfn, pages));
                }
            }
            _changed.Clear();
            Interlocked.Increment(ref _flushes);
            Interlocked.Add(ref _invalidatedRanges, merged.Count);
            foreach (var (gfn, pages) in merged)
                _vm.NotifyImporters(gfn << HostMemory.FrameShift, pages << HostMemory.FrameShift);
        }
        if (_unlinkedTables.Count > 0)
        {
            Interlocked.Add(ref _tablePages, -_unlinkedTables.Count);
            _memory.RetireFrames(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_unlinkedTables));
            _unlinkedTables.Clear();
        }
        if (_rolledBackBacking.Count > 0)
        {
            _memory.RetireFrames(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_rolledBackBacking));
            _rolledBackBacking.Clear();
        }
    }

    /// <summary>The leaf (or non-present entry) for <paramref name="gfn"/> and its level. Caller holds the MMU lock.</summary>
    internal (ulong Entry, int Level) Lookup(ulong gfn)
    {
        ulong table = RootHpa;
        for (int level = Levels; ; level--)
        {
            ulong entry = Read(EntryAddress(table, gfn, level));
            if (!IsPresent(entry) || IsLeaf(entry, level))
                return (entry, level);
            table = entry & EptEntry.AddressMask;
        }
    }

    /// <summary>Every frame of the tables (root included), for the VM's teardown. Caller holds the MMU lock.</summary>
    internal void CollectAllTables(List<ulong> frames)
    {
        void Visit(ulong table, int level)
        {
            frames.Add(table);
            if (level == 1)
                return;
            for (int i = 0; i < PageSizes.EntriesPerTable; i++)
            {
                ulong entry = Read(table + ((ulong)i << 3));
                ulong child = entry & EptEntry.AddressMask;
                // A corrupted pointer is not followed: teardown frees what it can reach.
                if (IsPresent(entry) && !IsLeaf(entry, level) && _memory.Contains(child, HostMemory.FrameSize))
                    Visit(child, level - 1);
            }
        }
        Visit(RootHpa, Levels);
    }
}
