using Engine.Memory;

namespace Engine.Kvm;

// Checkpoints: the root and the counters; the tables themselves are host-memory frames, saved there.
internal sealed partial class TdpMmu
{
    internal void SaveState(CheckpointWriter w)
    {
        if (_inOperation || _changed.Count != 0 || _unlinkedTables.Count != 0)
            throw new InvalidOperationException("the TDP MMU is in the middle of an operation; a checkpoint is taken between operations.");
        w.U64(RootHpa);
        w.I64(Interlocked.Read(ref _tablePages));
        w.I64(Interlocked.Read(ref _flushes));
        w.I64(Interlocked.Read(ref _invalidatedRanges));
        w.I64(Interlocked.Read(ref _splits));
        w.I64(Interlocked.Read(ref _faultsFixed));
        w.I64(Interlocked.Read(ref _faultsFailed));
    }

    /// <summary>Takes the checkpoint's root (the frame this MMU allocated when built is forgotten with the rest of host memory).</summary>
    internal void RestoreState(CheckpointReader r)
    {
        ulong root = r.U64("the TDP root HPA");
        if ((root & (HostMemory.FrameSize - 1)) != 0 || !_memory.Contains(root, HostMemory.FrameSize))
            throw r.Fail($"a 4 KiB-aligned TDP root inside host memory, found 0x{root:x}", 8);
        RootHpa = root;
        _tablePages = r.I64("TDP table pages");
        _flushes = r.I64("TDP flushes");
        _invalidatedRanges = r.I64("TDP invalidated ranges");
        _splits = r.I64("TDP huge-page splits");
        _faultsFixed = r.I64("TDP faults fixed");
        _faultsFailed = r.I64("TDP faults failed");
    }
}
