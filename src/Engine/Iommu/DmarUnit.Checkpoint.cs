using Engine.Memory;

namespace Engine.Iommu;

// Checkpoints: the latched root table and TE, the register file, the counters, the context/PASID
// cache, the IOTLB and the fault recorder. Tables, queues and the page-request ring are host-memory
// frames (their heads and tails are registers), saved with host memory. Control path, on a quiet unit.
public sealed unsafe partial class DmarUnit
{
    internal void SaveState(CheckpointWriter w)
    {
        lock (_registerModel.Lock)
        {
            ThrowIfDisposed();
            w.U64(Volatile.Read(ref _rootTable));
            w.Bool(Volatile.Read(ref _scalableRoot));
            w.Bool(Volatile.Read(ref _translationEnabled));
            w.Bool(Volatile.Read(ref _invalidTtm));
            int[] offsets = [.. Registers.Declarations.Keys.Order()];
            w.U32((uint)offsets.Length);
            foreach (int offset in offsets)
            {
                w.I32(offset);
                w.U64(Registers.Get(offset));
            }
            for (int c = 0; c < ThreadCounters.MaxCounters; c++)
                w.I64(_counters.Read(c));
            for (int i = 0; i < _faultsByReason.Length; i++)
                w.I64(Interlocked.Read(ref _faultsByReason[i]));
            _pageRequestQueue.SaveState(w);
            _invalidationQueue.SaveState(w);
            _contextCache.SaveState(w);
            Iotlb.SaveState(w);
            FaultRecorder.SaveState(w);
        }
    }

    /// <summary>Takes a checkpoint's state; the unit must have been built with the same options.</summary>
    internal void RestoreState(CheckpointReader r)
    {
        lock (_registerModel.Lock)
        {
            ThrowIfDisposed();
            ulong root = r.U64("the latched root-table address");
            bool scalable = r.Bool("the latched scalable-mode bit");
            bool te = r.Bool("TE (translation enabled)");
            bool invalidTtm = r.Bool("the invalid-TTM bit");
            int count = r.Count("registers", 12, Registers.Declarations.Count);
            if (count != Registers.Declarations.Count)
                throw r.Fail($"{Registers.Declarations.Count} registers (this unit's register file), found {count}", 4);
            for (int i = 0; i < count; i++)
            {
                int offset = r.I32("a register offset");
                if (!Registers.Declarations.ContainsKey(offset))
                    throw r.Fail($"the offset of a declared register, found 0x{offset:x}", 4);
                Registers.SetByHardware(offset, r.U64("the register's value"));
            }
            for (int c = 0; c < ThreadCounters.MaxCounters; c++)
            {
                long value = r.I64("a translation counter");
                _counters.Add(c, value - _counters.Read(c));
            }
            for (int i = 0; i < _faultsByReason.Length; i++)
                _faultsByReason[i] = r.I64("a fault count by reason");
            _pageRequestQueue.RestoreState(r);
            _invalidationQueue.RestoreState(r);
            _contextCache.RestoreState(r);
            Iotlb.RestoreState(r);
            FaultRecorder.RestoreState(r);
            Volatile.Write(ref _rootTable, root);
            Volatile.Write(ref _scalableRoot, scalable);
            Volatile.Write(ref _invalidTtm, invalidTtm);
            Volatile.Write(ref _translationEnabled, te);
        }
    }
}
