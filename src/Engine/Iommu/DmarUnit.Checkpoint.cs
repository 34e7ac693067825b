using Engine.Memory;

namespace Engine.Iommu;

// Checkpoints: the latched root table and TE, the register file, the counters, the context/PASID
// cache, the IOTLB and the fault recorder. Tables, queues and the page-request ring are host-memory
// frames (their heads and tails are registers), saved with host memory. Control path, on a quiet unit.
public sealed partial class DmarUnit
{
    internal void SaveState(CheckpointWriter w)
    {
        lock (_registerModel.Lock)
        {
            ThrowIfDisposed();
            _translator.SaveLatches(w);
            int[] offsets = [.. Registers.Declarations.Keys.Order()];
            w.U32((uint)offsets.Length);
            foreach (int offset in offsets)
            {
                w.I32(offset);
                w.U64(Registers.Get(offset));
            }
            _translator.SaveCounters(w);
            _pageRequestQueue.SaveState(w);
            _invalidationQueue.SaveState(w);
            _translator.SaveCaches(w);
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
            _translator.RestoreCounters(r);
            _pageRequestQueue.RestoreState(r);
            _invalidationQueue.RestoreState(r);
            _translator.RestoreCaches(r);
            FaultRecorder.RestoreState(r);
            _translator.RestoreLatches(root, scalable, invalidTtm, te);
        }
    }
}
