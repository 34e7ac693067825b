using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

// Checkpoints: memslots with their backing frames and dirty bitmaps, write tracking, the TDP MMU's
// root and counters. The tables and the guest's RAM are host-memory frames, saved with host memory.
public sealed partial class Vm
{
    /// <summary>Whether the TDP of address space 0 is exported (a loaded VM exports it again).</summary>
    internal bool HasExport
    {
        get
        {
            lock (_mmuLock)
                return _export is not null;
        }
    }

    internal void SaveState(CheckpointWriter w)
    {
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            Tdp.SaveState(w);
            w.U32((uint)_slots.Count);
            foreach (Memslot slot in _slots)
            {
                w.I32(slot.Id);
                w.U64(slot.BaseGfn);
                w.U64(slot.Pages);
                w.U8((byte)slot.BackingPageSize);
                w.U32((uint)slot.Flags);
                foreach (ulong chunk in slot.Chunks)
                    w.U64(chunk);
                foreach (ulong word in slot.DirtyBits)
                    w.U64(word);
            }
            w.U32((uint)_writeTracked.Count);
            foreach (ulong gfn in _writeTracked.Order())
                w.U64(gfn);
        }
    }

    /// <summary>Takes a checkpoint's state; the VM must be new (no memslot, nothing mapped, not exported).</summary>
    internal void RestoreState(CheckpointReader r)
    {
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            if (_slots.Count != 0 || _export is not null)
                throw new InvalidOperationException("a checkpoint is restored into a new VM only.");
            Tdp.RestoreState(r);
            int slots = r.Count("memslots", 29, 32768);
            for (int i = 0; i < slots; i++)
            {
                int id = r.I32("memslot id");
                ulong baseGfn = r.U64("memslot base GFN");
                ulong pages = r.U64("memslot pages");
                byte backing = r.U8("memslot backing page size");
                if (backing is < 1 or > 3)
                    throw r.Fail($"a backing page size of 1, 2 or 3 (4K, 2M, 1G), found {backing}", 1);
                uint flags = r.U32("memslot flags");
                if ((flags & ~3u) != 0)
                    throw r.Fail($"memslot flags within 0x3, found 0x{flags:x}", 4);
                ulong perChunk = ((PageSize)backing).Pages();
                if (pages == 0 || pages % perChunk != 0 || pages > MaxGfn || baseGfn > MaxGfn - pages || _slots.Any(s => s.Id == id))
                    throw r.Fail($"memslot {id}: a unique id and a non-empty GFN range inside the guest's width in whole backing pages, found GFN 0x{baseGfn:x} + {pages}");
                var slot = new Memslot(id, baseGfn, pages, (PageSize)backing, (MemslotFlags)flags);
                for (int c = 0; c < slot.Chunks.Length; c++)
                {
                    ulong chunk = r.U64("a backing chunk's HPA");
                    if (chunk != 0 && ((chunk & ((perChunk << HostMemory.FrameShift) - 1)) != 0 || !Memory.Contains(chunk, perChunk << HostMemory.FrameShift)))
                        throw r.Fail($"a backing chunk aligned to its size inside host memory (or 0), found 0x{chunk:x}", 8);
                    slot.Chunks[c] = chunk;
                }
                for (int d = 0; d < slot.DirtyBits.Length; d++)
                    slot.DirtyBits[d] = r.U64("a dirty-bitmap word");
                _slots.Add(slot);
            }
            int tracked = r.Count("write-tracked GFNs", 8);
            for (int i = 0; i < tracked; i++)
            {
                ulong gfn = r.U64("a write-tracked GFN");
                if (gfn >= MaxGfn || !_writeTracked.Add(gfn))
                    throw r.Fail($"a distinct write-tracked GFN below 0x{MaxGfn:x}, found 0x{gfn:x}", 8);
                CountTracked(gfn, 1);
            }
        }
    }
}
