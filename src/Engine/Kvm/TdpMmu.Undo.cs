using Engine.Memory;

namespace Engine.Kvm;

// All or nothing. Host memory can run out in the middle of a map, a split or a fault: every store
// into a table that existed before the operation is logged with the value it replaced, and every
// table and backing chunk the operation allocated is remembered. A failed operation stores the old
// values back (newest first, each one atomic store, so a walker sees the old or the new entry as
// ever), and its frames are retired at the flush that follows — after the importers were told,
// since a walker may have cached for a moment what the operation installed.
//
// Stores into tables the operation allocated are not logged: restoring the entry that linked such
// a table unlinks all of it at once. So mapping fresh ranges logs next to nothing; a remap of
// existing leaves logs one entry per leaf, freed when the operation ends.
internal sealed partial class TdpMmu
{
    private const int RetainedUndoCapacity = 4096;

    private readonly List<(ulong EntryHpa, ulong Old)> _undo = [];
    private readonly HashSet<ulong> _newTables = [];
    private readonly List<(Memslot Slot, ulong Gfn)> _newChunks = [];
    private readonly List<ulong> _rolledBackBacking = [];
    private bool _inOperation;
    private int _unlinkedMark;
    private long _splitsInOperation;
    private ulong _installedStart, _installedEnd;

    /// <summary>Starts logging for <see cref="RollBack"/>. Caller holds the MMU lock and ends with <see cref="EndOperation"/>.</summary>
    internal void BeginOperation()
    {
        _inOperation = true;
        _unlinkedMark = _unlinkedTables.Count;
        _splitsInOperation = 0;
        _installedStart = ulong.MaxValue;
        _installedEnd = 0;
    }

    /// <summary>Forgets the log: the operation stands (or was rolled back).</summary>
    internal void EndOperation()
    {
        _inOperation = false;
        _undo.Clear();
        if (_undo.Capacity > RetainedUndoCapacity)
            _undo.Capacity = RetainedUndoCapacity;
        _newTables.Clear();
        _newChunks.Clear();
    }

    /// <summary>
    /// Puts every entry the operation changed back as it was and queues every frame it allocated
    /// for retirement at the next <see cref="Flush"/>, which also tells the importers about every
    /// range the operation touched. Caller holds the MMU lock.
    /// </summary>
    internal void RollBack()
    {
        for (int i = _undo.Count - 1; i >= 0; i--)
            Volatile.Write(ref Checked(_undo[i].EntryHpa), _undo[i].Old);
        // Subtrees the operation unlinked are linked again; the tables it allocated are not.
        _unlinkedTables.RemoveRange(_unlinkedMark, _unlinkedTables.Count - _unlinkedMark);
        _unlinkedTables.AddRange(_newTables);
        foreach (var (slot, gfn) in _newChunks)
            slot.Untouch(gfn, _rolledBackBacking);
        Interlocked.Add(ref _splits, -_splitsInOperation);
        // Leaves it made present were not recorded (a new mapping needs no flush), but a walker may
        // have cached one before it went again.
        if (_installedEnd > _installedStart)
            RecordChange(_installedStart, _installedEnd - _installedStart);
        EndOperation();
    }

    private void LogStore(ulong entryHpa, ulong old)
    {
        if (_inOperation && !_newTables.Contains(entryHpa & ~(ulong)(HostMemory.FrameSize - 1)))
            _undo.Add((entryHpa, old));
    }

    private void NoteNewTable(ulong table)
    {
        if (_inOperation)
            _newTables.Add(table);
    }

    private void NoteSplit()
    {
        if (_inOperation)
            _splitsInOperation++;
    }

    private void NoteNewChunk(Memslot slot, ulong gfn)
    {
        if (_inOperation)
            _newChunks.Add((slot, gfn));
    }

    private void NoteInstalled(ulong gfn, ulong pages)
    {
        if (!_inOperation)
            return;
        _installedStart = Math.Min(_installedStart, gfn);
        _installedEnd = Math.Max(_installedEnd, gfn + pages);
    }
}
