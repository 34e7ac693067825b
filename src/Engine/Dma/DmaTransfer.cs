using System.Runtime.CompilerServices;
using Engine.Control;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Dma;

/// <summary>How a DMA transfer ended.</summary>
public enum DmaStatus : byte
{
    /// <summary>Every byte moved.</summary>
    Complete = 0,

    /// <summary>A page faulted: the bytes before it moved, <see cref="DmaResult.Fault"/> says why.</summary>
    Faulted = 1,

    /// <summary>A translation pointed outside host memory (e.g. a device BAR): the bytes before it moved.</summary>
    TargetOutsideMemory = 2,

    /// <summary>
    /// The platform, or the device's IOMMU, was disposed before the transfer (or its next page)
    /// started: the bytes before it moved, nothing after; <see cref="DmaResult.FaultAddress"/> is the
    /// first byte not moved and <see cref="DmaResult.Fault"/> is none.
    /// </summary>
    Disposed = 3,
}

/// <summary>The outcome of a DMA read or write: bytes moved and, for a partial transfer, the fault.</summary>
/// <param name="Status">How it ended.</param>
/// <param name="Transferred">Bytes moved (all of them, or those before the faulting page).</param>
/// <param name="FaultAddress">IOVA of the first byte not moved (0 when complete).</param>
/// <param name="Fault">The VT-d fault reason when <see cref="DmaStatus.Faulted"/>.</param>
/// <param name="Translations">Translations the transfer made: one per page it touched, plus one per retry after a page request answered SUCCESS.</param>
/// <param name="PageRequests">Page requests the device sent and the unit queued (IO page faults it recovered from or not); a fault that sends none (an address beyond the width, a unit or device without page requests) counts nothing.</param>
public readonly record struct DmaResult(DmaStatus Status, int Transferred, ulong FaultAddress, FaultReason Fault, int Translations = 0, int PageRequests = 0)
{
    /// <summary>Whether every byte moved.</summary>
    public bool IsComplete => Status == DmaStatus.Complete;
}

/// <summary>
/// DMA data movement through translation: a transfer is cut at page boundaries of the translations
/// it gets, each page is translated once, and the bytes move between the caller's buffer and host
/// memory inside an epoch-protected region (a frame KVM retires mid-copy is not reused under it).
/// </summary>
public static unsafe class DmaTransfer
{
    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="iova"/> through <paramref name="port"/> into <paramref name="buffer"/>.</summary>
    /// <param name="port">The port of the device doing the DMA (<see cref="Device.Port"/>).</param>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">Where the bytes go.</param>
    /// <param name="pasid">PASID, or none.</param>
    /// <param name="pageFaults">Recover from IO page faults as a PRI device does (page request, wait, retry once); only a device whose page requests are enabled sends one.</param>
    public static DmaResult Read(DevicePort port, ulong iova, Span<byte> buffer, uint pasid = TranslationRequest.NoPasid, bool pageFaults = false) =>
        Move(port, iova, buffer, pasid, write: false, pageFaults);

    /// <summary>Writes <paramref name="buffer"/> at <paramref name="iova"/> through <paramref name="port"/>.</summary>
    /// <param name="port">The port of the device doing the DMA (<see cref="Device.Port"/>).</param>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">The bytes.</param>
    /// <param name="pasid">PASID, or none.</param>
    /// <param name="pageFaults">Recover from IO page faults as a PRI device does (page request, wait, retry once); only a device whose page requests are enabled sends one.</param>
    public static DmaResult Write(DevicePort port, ulong iova, ReadOnlySpan<byte> buffer, uint pasid = TranslationRequest.NoPasid, bool pageFaults = false) =>
        Move(port, iova, MemoryMarshalHelpers.AsWritable(buffer), pasid, write: true, pageFaults);

    /// <summary>As <see cref="Read(DevicePort, ulong, Span{byte}, uint, bool)"/> through <paramref name="device"/>'s port.</summary>
    /// <param name="device">The device doing the DMA.</param>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">Where the bytes go.</param>
    /// <param name="pasid">PASID, or none.</param>
    /// <param name="pageFaults">Recover from IO page faults as a PRI device does.</param>
    public static DmaResult Read(Device device, ulong iova, Span<byte> buffer, uint pasid = TranslationRequest.NoPasid, bool pageFaults = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        return Move(device.Port, iova, buffer, pasid, write: false, pageFaults);
    }

    /// <summary>As <see cref="Write(DevicePort, ulong, ReadOnlySpan{byte}, uint, bool)"/> through <paramref name="device"/>'s port.</summary>
    /// <param name="device">The device doing the DMA.</param>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">The bytes.</param>
    /// <param name="pasid">PASID, or none.</param>
    /// <param name="pageFaults">Recover from IO page faults as a PRI device does.</param>
    public static DmaResult Write(Device device, ulong iova, ReadOnlySpan<byte> buffer, uint pasid = TranslationRequest.NoPasid, bool pageFaults = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        return Move(device.Port, iova, MemoryMarshalHelpers.AsWritable(buffer), pasid, write: true, pageFaults);
    }

    [SkipLocalsInit]
    private static DmaResult Move(DevicePort port, ulong iova, Span<byte> buffer, uint pasid, bool write, bool pageFaults)
    {
        if (!port.IsValid)
            throw new ArgumentException("The port is default(DevicePort); take one from Device.Port.", nameof(port));
        HostMemory memory = port.Memory;
        Access access = write ? Access.Write : Access.Read;
        int done = 0, translations = 0, pageRequests = 0;
        if (memory.IsDisposed)
            return new DmaResult(DmaStatus.Disposed, 0, iova, FaultReason.None);
        // Never throws, even if the platform is being disposed right now: host memory is then empty
        // (its limit drops to 0 before it waits for this region to end), so no copy finds a target.
        memory.Epochs.Protect();
        try
        {
            while (done < buffer.Length)
            {
                ulong address = iova + (ulong)done;
                TranslationResult t = port.Translate(address, access, pasid);
                if (t.Status == TranslationStatus.Disposed)
                    return new DmaResult(DmaStatus.Disposed, done, address, FaultReason.None, translations, pageRequests);
                translations++;
                if (!t.IsSuccess && pageFaults && pasid == TranslationRequest.NoPasid && MayRequestPage(port.Device, t.Fault))
                    t = RecoverWithPageRequest(port.Device, t, address, access, ref translations, ref pageRequests);
                if (t.Status == TranslationStatus.Disposed)
                    return new DmaResult(DmaStatus.Disposed, done, address, FaultReason.None, translations, pageRequests);
                if (!t.IsSuccess)
                    return new DmaResult(DmaStatus.Faulted, done, address, t.Fault, translations, pageRequests);
                // The translation covers the rest of its page (pass-through: the rest of the 4 KiB page).
                ulong pageBytes = t.Size.Bytes();
                int chunk = (int)Math.Min((ulong)(buffer.Length - done), pageBytes - (address & (pageBytes - 1)));
                byte* target = memory.TryGetPointer(t.Hpa, (ulong)chunk);
                if (target == null)
                    return new DmaResult(DmaStatus.TargetOutsideMemory, done, address, FaultReason.None, translations, pageRequests);
                var host = new Span<byte>(target, chunk);
                if (write)
                    buffer.Slice(done, chunk).CopyTo(host);
                else
                    host.CopyTo(buffer.Slice(done, chunk));
                done += chunk;
            }
        }
        finally
        {
            memory.Epochs.Unprotect();
        }
        return new DmaResult(DmaStatus.Complete, done, 0, FaultReason.None, translations, pageRequests);
    }

    // The faults a PRI device answers with a page request (Device.IsRecoverable); any other fault
    // (an address beyond the width, a missing context) never sends one, so nothing is counted.
    private static bool MayRequestPage(Device device, FaultReason fault) =>
        device.PageRequestsEnabled && fault is FaultReason.SmSecondLevelPermission or FaultReason.SmRead or FaultReason.SmWrite;

    /// <summary>
    /// Lets the device ask for the page and retry, counting only what happened, as the device
    /// reports it: a page request when one went out (the unit queued it), and a second translation
    /// only when the device retried, which it does only after a SUCCESS response.
    /// </summary>
    /// <remarks>Rare path (an IO page fault), kept out of the copy loop.</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static TranslationResult RecoverWithPageRequest(Device device, in TranslationResult first, ulong address, Access access, ref int translations, ref int pageRequests)
    {
        TranslationResult result = device.RecoverWithPageRequest(first, address, access, out bool sent, out bool retried);
        if (sent)
            pageRequests++;
        if (retried)
            translations++;
        return result;
    }
}

internal static class MemoryMarshalHelpers
{
    // The write path only reads from the buffer; one mover serves both directions.
    public static Span<byte> AsWritable(ReadOnlySpan<byte> span) =>
        System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(span), span.Length);
}
