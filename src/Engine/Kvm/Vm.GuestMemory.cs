using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

// Guest RAM by guest-physical address, as the VMM sees it: through the memslots, not the EPT. KVM's
// EPT is a cache of the memslots' mapping — a zap drops the mapping, never the page's contents — so
// an embedder that checks what a device wrote, or seeds a buffer a device will read, must not depend
// on what KVM happens to map right now.
public sealed partial class Vm
{
    /// <summary>
    /// Copies guest RAM at [<paramref name="gpa"/>, +<paramref name="destination"/>.Length) into
    /// <paramref name="destination"/>, crossing pages, memslots and backing sizes.
    /// </summary>
    /// <remarks>
    /// Reads the memslots' backing whatever the EPT maps (a zapped or write-protected page reads as
    /// it was written); a page never touched reads as zeros and stays untouched. Runs under the MMU
    /// lock (so no memslot goes away under it) and inside the host memory's epochs (so no frame is
    /// reused under the copy). Nothing is copied unless every byte of the range lies in a memslot.
    /// Use it for checks and set-up, not at DMA rates: it serializes with KVM's map, zap and faults.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The range goes beyond the guest-physical width.</exception>
    /// <exception cref="EngineException">EFAULT, naming the first such GPA, when part of the range lies in no memslot.</exception>
    /// <exception cref="ObjectDisposedException">The VM or its host memory has been disposed.</exception>
    public void ReadGuest(ulong gpa, Span<byte> destination) => CopyGuest(gpa, destination, write: false);

    /// <summary>
    /// Copies <paramref name="source"/> into guest RAM at <paramref name="gpa"/>, crossing pages,
    /// memslots and backing sizes, as the VMM writes guest memory.
    /// </summary>
    /// <remarks>
    /// Writes the memslots' backing whatever the EPT maps, allocating backing on first touch as a
    /// mapping would; read-only slots and write-tracked pages are written too (they restrict the
    /// guest, not the host), and nothing is dirty-logged (KVM logs only the guest's writes). Same
    /// locking and epochs as <see cref="ReadGuest"/>; nothing is written unless every byte of the
    /// range lies in a memslot and has backing.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The range goes beyond the guest-physical width.</exception>
    /// <exception cref="EngineException">EFAULT, naming the first such GPA, when part of the range lies in no memslot; ENOMEM when host memory ran out for backing (backing allocated before that stays, zeroed).</exception>
    /// <exception cref="ObjectDisposedException">The VM or its host memory has been disposed.</exception>
    public void WriteGuest(ulong gpa, ReadOnlySpan<byte> source) =>
        CopyGuest(gpa, Dma.MemoryMarshalHelpers.AsWritable(source), write: true);

    private unsafe void CopyGuest(ulong gpa, Span<byte> buffer, bool write)
    {
        ulong length = (ulong)buffer.Length;
        ulong maxGpa = MaxGfn << HostMemory.FrameShift;
        if (length > maxGpa || gpa > maxGpa - length)
            throw new ArgumentOutOfRangeException(nameof(gpa), gpa, $"GPA range 0x{gpa:x}+0x{length:x} goes beyond the {Tdp.AddressWidth}-bit guest-physical width.");
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            if (length == 0)
                return;
            ulong lastGfn = (gpa + length - 1) >> HostMemory.FrameShift;
            for (ulong g = gpa >> HostMemory.FrameShift; g <= lastGfn;)
            {
                Memslot slot = FindSlot(g) ?? throw new EngineException(Errno.EFAULT,
                    $"GPA 0x{Math.Max(g << HostMemory.FrameShift, gpa):x} is not in any memslot: no guest RAM backs it; nothing was {(write ? "written" : "read")}.");
                g = slot.BaseGfn + slot.Pages;
            }
            if (write)
                TouchBacking(gpa >> HostMemory.FrameShift, lastGfn);
            using (Memory.Epochs.Enter())
            {
                ulong done = 0;
                while (done < length)
                {
                    ulong address = gpa + done, gfn = address >> HostMemory.FrameShift;
                    Memslot slot = FindSlot(gfn)!;
                    // A backing chunk is contiguous in host memory, so one copy runs to its end.
                    ulong chunkBytes = slot.BackingPageSize.Bytes();
                    int chunk = (int)Math.Min(length - done, chunkBytes - (address & (chunkBytes - 1)));
                    Span<byte> caller = buffer.Slice((int)done, chunk);
                    ulong hpa = slot.PeekHpa(gfn);
                    if (hpa == 0)
                    {
                        caller.Clear(); // never touched: reads as zeros (writes touched it above)
                    }
                    else
                    {
                        byte* host = Memory.TryGetPointer(hpa + (address & (HostMemory.FrameSize - 1)), (ulong)chunk);
                        // Null only when the host memory is being disposed (its limit dropped to 0).
                        ObjectDisposedException.ThrowIf(host == null, Memory);
                        var target = new Span<byte>(host, chunk);
                        if (write)
                            caller.CopyTo(target);
                        else
                            target.CopyTo(caller);
                    }
                    done += (ulong)chunk;
                }
            }
        }
    }

    // Caller holds the MMU lock and has checked that every GFN lies in a memslot.
    private void TouchBacking(ulong firstGfn, ulong lastGfn)
    {
        try
        {
            for (ulong g = firstGfn; g <= lastGfn;)
            {
                Memslot slot = FindSlot(g)!;
                ulong perChunk = slot.BackingPageSize.Pages();
                slot.Touch(Memory, g, out _);
                g = (g - slot.BaseGfn) / perChunk * perChunk + slot.BaseGfn + perChunk;
            }
        }
        catch (HostMemoryExhaustedException e)
        {
            throw new EngineException(Errno.ENOMEM, $"writing guest memory at GFN 0x{firstGfn:x}..0x{lastGfn:x}: host memory ran out for backing ({e.Message}); nothing was written.");
        }
    }
}
