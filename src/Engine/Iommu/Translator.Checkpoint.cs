using Engine.Memory;

namespace Engine.Iommu;

// The translator's part of a unit checkpoint, in the pieces the unit's format interleaves with the
// register file, the queues and the fault recorder (DmarUnit.Checkpoint.cs). Control path, on a quiet unit.
internal partial struct Translator
{
    /// <summary>Writes the latched root table, scalable bit, TE and invalid-TTM bit.</summary>
    internal void SaveLatches(CheckpointWriter w)
    {
        w.U64(Volatile.Read(ref _rootTable));
        w.Bool(Volatile.Read(ref _scalableRoot));
        w.Bool(Volatile.Read(ref _translationEnabled));
        w.Bool(Volatile.Read(ref _invalidTtm));
    }

    /// <summary>Sets the latches read back from a checkpoint, TE last.</summary>
    internal void RestoreLatches(ulong root, bool scalable, bool invalidTtm, bool translationEnabled)
    {
        Volatile.Write(ref _rootTable, root);
        Volatile.Write(ref _scalableRoot, scalable);
        Volatile.Write(ref _invalidTtm, invalidTtm);
        Volatile.Write(ref _translationEnabled, translationEnabled);
    }

    /// <summary>Writes the translation counters and the faults by reason.</summary>
    internal void SaveCounters(CheckpointWriter w)
    {
        for (int c = 0; c < ThreadCounters.MaxCounters; c++)
            w.I64(_counters.Read(c));
        for (int i = 0; i < _faultsByReason.Length; i++)
            w.I64(Interlocked.Read(ref _faultsByReason[i]));
    }

    /// <summary>Reads what <see cref="SaveCounters"/> wrote.</summary>
    internal void RestoreCounters(CheckpointReader r)
    {
        for (int c = 0; c < ThreadCounters.MaxCounters; c++)
        {
            long value = r.I64("a translation counter");
            _counters.Add(c, value - _counters.Read(c));
        }
        for (int i = 0; i < _faultsByReason.Length; i++)
            _faultsByReason[i] = r.I64("a fault count by reason");
    }

    /// <summary>Writes the context/PASID cache and the IOTLB.</summary>
    internal void SaveCaches(CheckpointWriter w)
    {
        _contextCache.SaveState(w);
        Iotlb.SaveState(w);
    }

    /// <summary>Reads what <see cref="SaveCaches"/> wrote.</summary>
    internal void RestoreCaches(CheckpointReader r)
    {
        _contextCache.RestoreState(r);
        Iotlb.RestoreState(r);
    }
}
