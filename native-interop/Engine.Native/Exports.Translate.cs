using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Dma;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Native;

// The hot path: translation and DMA. No lock and no allocation on a successful call: the handle is
// resolved by two loads (HandleTable), the request is handed to DmarUnit as it is, and only a fault
// (recorded under the unit's fault-recording lock, as hardware logs one at a time) or an error
// (its message) does more.
internal static unsafe partial class Exports
{
    private const uint MaxPasid = 0xF_FFFF;

    [UnmanagedCallersOnly(EntryPoint = "engine_translate")]
    [SkipLocalsInit]
    public static int Translate(nint u, EngineRequest* request, EngineTranslation* result)
    {
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle("engine_translate", "u", u);
            if (request == null || result == null)
                return Errors.Null("engine_translate", request == null ? "req" : "out");
            if (!IsValid(in *request))
                return BadRequest("engine_translate", in *request, 0);
            // The request is read where C put it: copying it into a TranslationRequest field by field
            // and reading that back whole stalls on store forwarding, which costs more than the rest
            // of the call.
            TranslationResult t = Layout.RequestIsTranslationRequest
                ? iommu.Unit.Translate(in *(TranslationRequest*)request)
                : iommu.Unit.Translate(new TranslationRequest(request->SourceId, request->Iova, (Access)request->Access, request->Pasid, request->Flags != 0));
            // A request racing engine_platform_destroy may see the unit still on and its memory already
            // gone, and fault: only a fault needs the second look, so the hit path pays nothing.
            if (t.Status == TranslationStatus.Disposed || (t.Status == TranslationStatus.Faulted && iommu.Unit.IsDisposed))
                return Errors.BadHandle("engine_translate", "u", u);
            if (Layout.ResultIsPacked)
            {
                // Read as the two qwords it came back in: a field-wise copy followed by a qword load
                // would stall on store forwarding.
                ulong* words = (ulong*)&t;
                ulong* output = (ulong*)result;
                output[0] = words[0];
                output[1] = BatchLayout.ConvertWord(words[1], out _);
            }
            else
            {
                *result = Convert(t);
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From("engine_translate", e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_translate_batch")]
    [SkipLocalsInit]
    public static int TranslateBatch(nint u, EngineRequest* requests, EngineTranslation* results, nuint count)
    {
        const string Fn = "engine_translate_batch";
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(Fn, "u", u);
            if (count == 0)
                return 0;
            if (requests == null || results == null)
                return Errors.Null(Fn, requests == null ? "reqs" : "out");
            // TranslateBatch writes results while it still reads later requests: one buffer for both would misread.
            if ((byte*)results < (byte*)(requests + count) && (byte*)requests < (byte*)(results + count))
                return Errors.Fail(Errors.Einval, $"{Fn}: reqs and out overlap; they must be separate buffers.");
            // Every request is checked before any is translated: a malformed one fails the whole call.
            bool simd = iommu.Unit.Options.UseSimd;
            if (!BatchLayout.AllValid(requests, count, simd))
            {
                for (nuint i = 0; i < count; i++)
                {
                    if (!IsValid(in requests[i]))
                        return BadRequest(Fn, in requests[i], i);
                }
            }
            DmarUnit unit = iommu.Unit;
            bool disposed = false, faulted = false;
            if (Layout.RequestIsTranslationRequest && Layout.ResultIsPacked)
            {
                // In place: the C requests are Engine's requests byte for byte (validated above), and
                // each result is produced in the caller's slot, then rewritten in the C layout.
                for (nuint start = 0; start < count; start += BatchSlice)
                {
                    int n = (int)Math.Min(BatchSlice, count - start);
                    var input = new ReadOnlySpan<TranslationRequest>(requests + start, n);
                    var output = new Span<TranslationResult>(results + start, n);
                    unit.TranslateBatch(input, output);
                    ulong statuses = BatchLayout.Convert(results + start, n, simd);
                    disposed |= (statuses & 1UL << (int)TranslationStatus.Disposed) != 0;
                    faulted |= (statuses & 1UL << (int)TranslationStatus.Faulted) != 0;
                }
            }
            else
            {
                // Engine's layouts changed: still correct, one request at a time.
                for (nuint i = 0; i < count; i++)
                {
                    EngineRequest r = requests[i];
                    TranslationResult t = unit.Translate(new TranslationRequest(r.SourceId, r.Iova, (Access)r.Access, r.Pasid, r.Flags != 0));
                    disposed |= t.Status == TranslationStatus.Disposed;
                    faulted |= t.Status == TranslationStatus.Faulted;
                    results[i] = Convert(t);
                }
            }
            // As in engine_translate: faults from a batch that raced the platform's destroy are not answers.
            return disposed || (faulted && unit.IsDisposed) ? Errors.BadHandle(Fn, "u", u) : 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    // Spans are int-sized; a slice of a huge batch is still far beyond any cache.
    private const nuint BatchSlice = 1 << 20;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsValid(in EngineRequest r) =>
        (r.Access & ~Abi.AccessMask) == 0 && (r.Flags & ~Abi.RequestAts) == 0 && (r.Pasid <= MaxPasid || r.Pasid == Abi.NoPasid);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int BadRequest(string fn, in EngineRequest r, nuint index) => Errors.Fail(Errors.Einval,
        $"{fn}: request {index} is malformed (access 0x{r.Access:x} may only have ENGINE_ACCESS_READ|WRITE|EXEC, flags 0x{r.Flags:x} only ENGINE_REQ_ATS, "
        + $"pasid 0x{r.Pasid:x} must be 20 bits or ENGINE_NO_PASID).");

    /// <summary>
    /// Engine's result in the C layout: translated and pass-through are both ENGINE_TRANSLATED (pass-through
    /// flagged, hpa = iova); a fault is ENGINE_FAULTED with its VT-d reason and page_shift 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static EngineTranslation Convert(in TranslationResult t)
    {
        bool faulted = t.Status == TranslationStatus.Faulted;
        return new EngineTranslation
        {
            Hpa = t.Hpa,
            Status = faulted ? Abi.Faulted : Abi.Translated,
            FaultReason = (byte)t.Fault,
            PageShift = faulted ? (byte)0 : (byte)(3 + 9 * (int)t.Size),
            Permissions = (byte)t.Permissions,
            DomainId = t.Did,
            Flags = (ushort)((t.Snoop ? Abi.TrSnoop : 0) | (t.IotlbHit ? Abi.TrIotlbHit : 0)
                | (t.Status == TranslationStatus.PassThrough ? Abi.TrPassThrough : 0)),
        };
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_dma_read")]
    public static int DmaRead(nint u, ushort sourceId, uint pasid, ulong iova, byte* buffer, ulong length, ulong* done) =>
        Dma("engine_dma_read", u, sourceId, pasid, iova, buffer, length, done, write: false);

    [UnmanagedCallersOnly(EntryPoint = "engine_dma_write")]
    public static int DmaWrite(nint u, ushort sourceId, uint pasid, ulong iova, byte* buffer, ulong length, ulong* done) =>
        Dma("engine_dma_write", u, sourceId, pasid, iova, buffer, length, done, write: true);

    // Spans are int-sized: a longer transfer moves in slices of 1 GiB.
    private const ulong DmaSlice = 1UL << 30;

    private static int Dma(string fn, nint u, ushort sourceId, uint pasid, ulong iova, byte* buffer, ulong length, ulong* done, bool write)
    {
        ulong moved = 0;
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(fn, "u", u);
            if (done == null)
                return Errors.Null(fn, "done");
            *done = 0;
            if (length == 0)
                return 0;
            if (buffer == null)
                return Errors.Null(fn, "buf");
            if (pasid > MaxPasid && pasid != Abi.NoPasid)
                return Errors.Fail(Errors.Einval, $"{fn}: pasid 0x{pasid:x} must be 20 bits or ENGINE_NO_PASID.");
            if (length - 1 > ulong.MaxValue - iova)
                return Errors.Fail(Errors.Einval, $"{fn}: [0x{iova:x}, +0x{length:x}) wraps around the address space.");
            DeviceHandle? device = iommu.DeviceAt(sourceId);
            int code = device is not null
                ? DeviceDma(fn, device, pasid, iova, buffer, length, write, ref moved)
                : UnitDma(fn, iommu, sourceId, pasid, iova, buffer, length, write, ref moved);
            *done = moved;
            return code;
        }
        catch (Exception e)
        {
            if (done != null)
                *done = moved;
            return Errors.From(fn, e);
        }
    }

    /// <summary>
    /// A device's DMA through <see cref="DmaTransfer"/>: as the device does it, so a PRI device attached
    /// to a KVM domain recovers from an IO page fault with a page request before it gives up.
    /// </summary>
    private static int DeviceDma(string fn, DeviceHandle device, uint pasid, ulong iova, byte* buffer, ulong length, bool write, ref ulong moved)
    {
        while (moved < length)
        {
            int slice = (int)Math.Min(DmaSlice, length - moved);
            var span = new Span<byte>(buffer + moved, slice);
            DmaResult r = write
                ? DmaTransfer.Write(device.Device, iova + moved, span, pasid, pageFaults: true)
                : DmaTransfer.Read(device.Device, iova + moved, span, pasid, pageFaults: true);
            moved += (ulong)r.Transferred;
            if (r.IsComplete)
                continue;
            // A disposed unit stops a DMA as a fault without reason; one racing the destroy may fault
            // on memory already gone. Neither is the device's fault.
            if (device.Iommu.Unit.IsDisposed)
                return Errors.BadHandle(fn, "u", device.Iommu.Handle);
            return DmaFault(fn, r.Status, r.FaultAddress, r.Fault, moved);
        }
        return 0;
    }

    /// <summary>
    /// DMA from a source id no engine_device_create made: translated by the unit as any requester is
    /// (without a context it faults, and the fault is recorded), the bytes moved page by page.
    /// </summary>
    private static int UnitDma(string fn, IommuHandle iommu, ushort sourceId, uint pasid, ulong iova, byte* buffer, ulong length, bool write, ref ulong moved)
    {
        DmarUnit unit = iommu.Unit;
        HostMemory memory = iommu.Owner.Platform.Memory;
        Access access = write ? Access.Write : Access.Read;
        // The copies run inside the host memory's epochs, as DmaTransfer's do: a frame retired while
        // bytes move into it is not reused under them.
        memory.Epochs.Protect();
        try
        {
            while (moved < length)
            {
                ulong address = iova + moved;
                TranslationResult t = unit.Translate(new TranslationRequest(sourceId, address, access, pasid));
                if (t.Status == TranslationStatus.Disposed || (!t.IsSuccess && unit.IsDisposed))
                    return Errors.BadHandle(fn, "u", iommu.Handle);
                if (!t.IsSuccess)
                    return DmaFault(fn, DmaStatus.Faulted, address, t.Fault, moved);
                ulong pageBytes = t.Size.Bytes();
                int chunk = (int)Math.Min(length - moved, pageBytes - (address & (pageBytes - 1)));
                Span<byte> host;
                try
                {
                    host = memory.GetSpan(t.Hpa, chunk);
                }
                catch (InvalidHostAddressException)
                {
                    return DmaFault(fn, DmaStatus.TargetOutsideMemory, address, FaultReason.None, moved);
                }
                var caller = new Span<byte>(buffer + moved, chunk);
                if (write)
                    caller.CopyTo(host);
                else
                    host.CopyTo(caller);
                moved += (ulong)chunk;
            }
        }
        finally
        {
            memory.Epochs.Unprotect();
        }
        return 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int DmaFault(string fn, DmaStatus status, ulong address, FaultReason reason, ulong moved) => Errors.Fail(Errors.Efault, status == DmaStatus.Faulted
        ? $"{fn}: the translation of IOVA 0x{address:x} faulted with reason 0x{(byte)reason:x2} ({reason}) after 0x{moved:x} bytes."
        : $"{fn}: IOVA 0x{address:x} translated to an address outside host memory (nothing recorded: not a VT-d fault) after 0x{moved:x} bytes.");
}
