using Engine.Memory;

namespace Engine.Iommu;

/// <summary>
/// Builds and edits a unit's translation structures in host memory the way the driver does: a root
/// table, legacy or scalable context tables, PASID directories and tables. Multi-qword entries are
/// written with the qword that holds P last, each qword one atomic store, so a concurrent reader
/// never sees a present entry with half-written fields.
/// </summary>
/// <remarks>After changing a present entry the caller must invalidate the unit's caches (context cache, PASID cache, IOTLB) as the spec's order requires.</remarks>
internal sealed class TranslationTables
{
    private readonly HostMemory _memory;
    private readonly Dictionary<(int Bus, bool Upper), ulong> _contextTables = [];
    private readonly Dictionary<ushort, ulong> _pasidDirectories = [];
    private readonly Dictionary<(ushort SourceId, uint DirIndex), ulong> _pasidTables = [];
    private readonly Lock _lock = new();

    /// <summary>Allocates an empty root table in <paramref name="memory"/>.</summary>
    public TranslationTables(HostMemory memory, bool scalable)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        Scalable = scalable;
        RootTable = memory.AllocateFrame();
    }

    /// <summary>HPA of the root table.</summary>
    public ulong RootTable { get; private set; }

    /// <summary>Whether the tables are in scalable-mode format.</summary>
    public bool Scalable { get; }

    /// <summary>PASID-directory size code used for new scalable context entries (2^(PDTS+7) entries; default 0 → 128 entries, PASIDs below 8192).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not 0..7 (the 3-bit PDTS field; 7 covers every 20-bit PASID).</exception>
    public int Pdts
    {
        get => _pdts;
        init => _pdts = value is >= 0 and <= MaxPdts
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Pdts), value, $"PDTS is a 3-bit field: 0..{MaxPdts}.");
    }

    private const int MaxPdts = 7;
    private readonly int _pdts;

    /// <summary>Writes a legacy context entry for <paramref name="sourceId"/> (creating its context table and root entry).</summary>
    public void SetContext(ushort sourceId, in ContextEntry entry)
    {
        RequireMode(scalable: false);
        lock (_lock)
        {
            ulong table = ContextTable(sourceId >> 8, upper: false);
            ulong at = table + (ulong)(byte)sourceId * ContextEntry.Size;
            _memory.WriteEntry(at, 0);
            _memory.WriteEntry(at + 8, entry.Hi);
            _memory.WriteEntry(at, entry.Lo);
        }
    }

    /// <summary>
    /// Writes a scalable context entry for <paramref name="sourceId"/> pointing at its PASID directory
    /// (created on first use), with these enables and RID_PASID.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ridPasid"/> has more than 20 bits.</exception>
    public void SetScalableContext(ushort sourceId, uint ridPasid = 0, bool pasidEnable = false, bool pageRequestEnable = false, bool deviceTlbEnable = false, bool fpd = false)
    {
        RequireMode(scalable: true);
        RequirePasid(ridPasid, nameof(ridPasid));
        lock (_lock)
        {
            ulong table = ContextTable(sourceId >> 8, upper: RootEntry.IsUpperHalf((byte)sourceId));
            ulong at = table + (ulong)ScalableContextEntry.IndexOf((byte)sourceId) * ScalableContextEntry.Size;
            var entry = ScalableContextEntry.Create(PasidDirectory(sourceId), Pdts, ridPasid, pasidEnable, pageRequestEnable, deviceTlbEnable, fpd);
            _memory.WriteEntry(at, 0);
            _memory.WriteEntry(at + 8, entry.Qw1);
            _memory.WriteEntry(at, entry.Qw0);
        }
    }

    /// <summary>Writes the PASID-table entry of (<paramref name="sourceId"/>, <paramref name="pasid"/>), creating its directory entry and table.</summary>
    public void SetPasidEntry(ushort sourceId, uint pasid, in PasidEntry entry)
    {
        RequireMode(scalable: true);
        RequirePasid(pasid, nameof(pasid));
        if (PasidDirectoryEntry.IndexOf(pasid) >= 1u << (Pdts + 7))
            throw new ArgumentOutOfRangeException(nameof(pasid), pasid, $"PASID {pasid} does not fit a PASID directory of PDTS {Pdts}.");
        lock (_lock)
        {
            ulong at = PasidTable(sourceId, PasidDirectoryEntry.IndexOf(pasid)) + PasidEntry.IndexOf(pasid) * PasidEntry.Size;
            _memory.WriteEntry(at, 0);
            _memory.WriteEntry(at + 16, entry.Qw2);
            _memory.WriteEntry(at + 8, entry.Qw1);
            _memory.WriteEntry(at, entry.Qw0);
        }
    }

    /// <summary>Clears the P bit of the context entry of <paramref name="sourceId"/> (its DMA then faults); nothing to do when its table was never created.</summary>
    public void ClearContext(ushort sourceId)
    {
        lock (_lock)
        {
            if (_contextTables.TryGetValue((sourceId >> 8, Scalable && RootEntry.IsUpperHalf((byte)sourceId)), out ulong table))
            {
                ulong at = Scalable ? table + (ulong)ScalableContextEntry.IndexOf((byte)sourceId) * ScalableContextEntry.Size : table + (ulong)(byte)sourceId * ContextEntry.Size;
                _memory.WriteEntry(at, 0);
            }
        }
    }

    /// <summary>Clears a PASID-table entry (blocks the PASID); nothing to do when its table was never created.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pasid"/> has more than 20 bits.</exception>
    public void ClearPasidEntry(ushort sourceId, uint pasid)
    {
        RequirePasid(pasid, nameof(pasid));
        lock (_lock)
        {
            if (_pasidTables.TryGetValue((sourceId, PasidDirectoryEntry.IndexOf(pasid)), out ulong table))
                _memory.WriteEntry(table + PasidEntry.IndexOf(pasid) * PasidEntry.Size, 0);
        }
    }

    /// <summary>Writes a raw qword into a structure (tests use it to plant reserved bits).</summary>
    public void Poke(ulong hpa, ulong value) => _memory.WriteEntry(hpa, value);

    /// <summary>HPA of the context entry of <paramref name="sourceId"/>.</summary>
    /// <exception cref="ArgumentException">No context table covers <paramref name="sourceId"/> yet (no context was set on its bus, or, in scalable mode, its half of the bus).</exception>
    public ulong ContextEntryAddress(ushort sourceId)
    {
        bool upper = Scalable && RootEntry.IsUpperHalf((byte)sourceId);
        lock (_lock)
        {
            if (!_contextTables.TryGetValue((sourceId >> 8, upper), out ulong table))
                throw new ArgumentException(
                    $"No context table covers source 0x{sourceId:x4} (bus 0x{sourceId >> 8:x2}{(Scalable ? upper ? ", upper half" : ", lower half" : "")}): set a context for it first.",
                    nameof(sourceId));
            return Scalable ? table + (ulong)ScalableContextEntry.IndexOf((byte)sourceId) * ScalableContextEntry.Size : table + (ulong)(byte)sourceId * ContextEntry.Size;
        }
    }

    /// <summary>HPA of the PASID-table entry of (<paramref name="sourceId"/>, <paramref name="pasid"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pasid"/> has more than 20 bits.</exception>
    /// <exception cref="ArgumentException">No PASID table covers the pair yet (no PASID entry of its block of 64 was set).</exception>
    public ulong PasidEntryAddress(ushort sourceId, uint pasid)
    {
        RequirePasid(pasid, nameof(pasid));
        lock (_lock)
        {
            if (!_pasidTables.TryGetValue((sourceId, PasidDirectoryEntry.IndexOf(pasid)), out ulong table))
                throw new ArgumentException(
                    $"No PASID table covers source 0x{sourceId:x4}, PASID {pasid} (PASIDs {pasid & ~0x3Fu}..{pasid | 0x3F}): set a PASID entry there first.",
                    nameof(pasid));
            return table + PasidEntry.IndexOf(pasid) * PasidEntry.Size;
        }
    }

    private static void RequirePasid(uint pasid, string paramName)
    {
        if (pasid > FaultRecord.MaxPasid)
            throw new ArgumentOutOfRangeException(paramName, pasid, "A PASID has 20 bits.");
    }

    private void RequireMode(bool scalable)
    {
        if (Scalable != scalable)
            throw new InvalidOperationException($"These tables are in {(Scalable ? "scalable" : "legacy")} format.");
    }

    private ulong ContextTable(int bus, bool upper)
    {
        if (_contextTables.TryGetValue((bus, upper), out ulong table))
            return table;
        table = _memory.AllocateFrame();
        _contextTables[(bus, upper)] = table;
        ulong rootEntry = RootTable + (ulong)bus * RootEntry.Size + (upper ? 8UL : 0);
        _memory.WriteEntry(rootEntry, RootEntry.PresentHalf(table));
        return table;
    }

    private ulong PasidDirectory(ushort sourceId)
    {
        if (!_pasidDirectories.TryGetValue(sourceId, out ulong dir))
        {
            // 2^(PDTS+7) 8-byte entries: one frame holds 512, so PDTS ≤ 2 fits a single frame.
            ulong frames = Math.Max(1, (8UL << (Pdts + 7)) / HostMemory.FrameSize);
            dir = frames == 1 ? _memory.AllocateFrame() : _memory.AllocateContiguous(frames, 1);
            _pasidDirectories[sourceId] = dir;
        }
        return dir;
    }

    private ulong PasidTable(ushort sourceId, uint dirIndex)
    {
        if (_pasidTables.TryGetValue((sourceId, dirIndex), out ulong table))
            return table;
        ulong dir = PasidDirectory(sourceId);
        table = _memory.AllocateFrame();
        _pasidTables[(sourceId, dirIndex)] = table;
        _memory.WriteEntry(dir + dirIndex * 8, PasidDirectoryEntry.Create(table).Value);
        return table;
    }

    /// <summary>Checkpoint: the root table and every context, PASID-directory and PASID table (their contents are host memory).</summary>
    internal void SaveState(Memory.CheckpointWriter w)
    {
        lock (_lock)
        {
            w.U64(RootTable);
            w.U32((uint)_contextTables.Count);
            foreach (var ((bus, upper), table) in _contextTables.OrderBy(e => e.Key.Bus).ThenBy(e => e.Key.Upper))
            {
                w.U16((ushort)bus);
                w.Bool(upper);
                w.U64(table);
            }
            w.U32((uint)_pasidDirectories.Count);
            foreach (var (sourceId, dir) in _pasidDirectories.OrderBy(e => e.Key))
            {
                w.U16(sourceId);
                w.U64(dir);
            }
            w.U32((uint)_pasidTables.Count);
            foreach (var ((sourceId, dirIndex), table) in _pasidTables.OrderBy(e => e.Key.SourceId).ThenBy(e => e.Key.DirIndex))
            {
                w.U16(sourceId);
                w.U32(dirIndex);
                w.U64(table);
            }
        }
    }

    /// <summary>Checkpoint: replaces every table address with the checkpoint's.</summary>
    internal void RestoreState(Memory.CheckpointReader r)
    {
        lock (_lock)
        {
            ulong Frame(string what)
            {
                ulong hpa = r.U64(what);
                if ((hpa & (HostMemory.FrameSize - 1)) != 0 || !_memory.Contains(hpa, HostMemory.FrameSize))
                    throw r.Fail($"{what}: a 4 KiB-aligned frame inside host memory, found 0x{hpa:x}", 8);
                return hpa;
            }
            RootTable = Frame("the driver's root table");
            _contextTables.Clear();
            _pasidDirectories.Clear();
            _pasidTables.Clear();
            int contexts = r.Count("context tables", 11, 512);
            for (int i = 0; i < contexts; i++)
            {
                ushort bus = r.U16("a context table's bus");
                bool upper = r.Bool("a context table's half");
                if (bus > 255 || !_contextTables.TryAdd((bus, upper), Frame("a context table")))
                    throw r.Fail($"a distinct (bus 0..255, half) per context table, found bus {bus}");
            }
            int dirs = r.Count("PASID directories", 10, 65536);
            for (int i = 0; i < dirs; i++)
            {
                ushort sid = r.U16("a PASID directory's source id");
                if (!_pasidDirectories.TryAdd(sid, Frame("a PASID directory")))
                    throw r.Fail($"one PASID directory per source id, found 0x{sid:x4} twice");
            }
            int tables = r.Count("PASID tables", 14);
            for (int i = 0; i < tables; i++)
            {
                ushort sid = r.U16("a PASID table's source id");
                uint dirIndex = r.U32("a PASID table's directory index");
                if (!_pasidTables.TryAdd((sid, dirIndex), Frame("a PASID table")))
                    throw r.Fail($"one PASID table per (source id, directory index), found 0x{sid:x4}/{dirIndex} twice");
            }
        }
    }
}
