namespace Engine.Iommu;

// The page-request queue: a ring of 32-byte descriptors between PQH (software) and PQT (hardware).
// A device whose DMA faulted sends a page request; software handles it and answers with a
// page-group response descriptor through queued invalidation.
public sealed unsafe partial class DmarUnit
{
    private const ulong PrsPpr = 1, PrsPro = 2;
    private long _pageRequests;
    private long _pageRequestOverflows;

    /// <summary>
    /// Raised after a page request is queued, unless PECTL.IM masks the event: then PECTL.IP holds it until
    /// software clears IM (the event is raised then) or clears PRS.PPR (it is dropped).
    /// </summary>
    internal event Action? PageRequestEvent;

    /// <summary>Raised for each page-group response software submits (descriptor type 9): the device's answer.</summary>
    internal event Action<PageGroupResponse>? PageResponse;

    /// <summary>Page requests queued so far.</summary>
    public long PageRequests => Interlocked.Read(ref _pageRequests);

    /// <summary>Page requests dropped because the queue was full.</summary>
    public long PageRequestOverflows => Interlocked.Read(ref _pageRequestOverflows);

    /// <summary>Programs PQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and empties it.</summary>
    /// <exception cref="EngineException">EOPNOTSUPP: the unit has no page requests (ECAP.PRS = 0).</exception>
    /// <exception cref="ArgumentException">The queue is not 4 KiB aligned, not 2^0..2^7 frames, or not in allocated host memory.</exception>
    public void EnablePageRequestQueue(ulong queueHpa, int queueSizeOrder = 0)
    {
        ThrowIfDisposed();
        if (!Ecap.Prs)
            throw new EngineException(Errno.EOPNOTSUPP, $"{Name} does not support page requests (ECAP.PRS = 0).");
        if ((queueHpa & 0xFFF) != 0 || queueSizeOrder is < 0 or > 7)
            throw new ArgumentException("The page-request queue must be 4 KiB aligned and 2^0..2^7 frames.", nameof(queueHpa));
        RequireAllocatedQueue(queueHpa, queueSizeOrder, nameof(queueHpa));
        lock (_registerLock)
        {
            Registers.SetByHardware(RegisterOffsets.PageRequestQueueTail, 0);
            WriteRegister(RegisterOffsets.PageRequestQueueHead, 8, 0);
            WriteRegister(RegisterOffsets.PageRequestQueueAddress, 8, queueHpa | (uint)queueSizeOrder);
        }
    }

    /// <summary>
    /// A device's page request (PCIe PRI) arriving at the unit: checked against the requester's
    /// context (scalable mode with PRE), then written at PQT. Faults on the way are reported as
    /// translation faults are.
    /// </summary>
    internal PageRequestStatus SubmitPageRequest(in PageRequest request)
    {
        ThrowIfDisposed();
        if (!Ecap.Prs)
            return PageRequestStatus.NotEnabled;
        var probe = new TranslationRequest(request.SourceId, request.Address, Paging.Access.Read, request.Pasid);
        FaultReason fault = ResolveProtected(probe, out ResolvedContext context, out bool fpd);
        if (fault == FaultReason.None && (context.Flags & ContextFlags.Scalable) == 0)
            fault = FaultReason.SmTtmLegacyPageRequest;
        else if (fault == FaultReason.None && (context.Flags & ContextFlags.PageRequest) == 0)
            fault = FaultReason.SmPageRequestEnableClear;
        if (fault != FaultReason.None)
        {
            Fault(probe, fault, context.Did, fpd);
            return PageRequestStatus.Refused;
        }

        bool raise;
        lock (_registerLock)
        {
            ulong pqa = Registers.Get(RegisterOffsets.PageRequestQueueAddress);
            ulong baseHpa = pqa & RegisterBaseMask;
            if (baseHpa == 0)
                return PageRequestStatus.NotEnabled;
            ulong count = ((ulong)Engine.Memory.HostMemory.FrameSize << (int)(pqa & 7)) / PageRequest.Size;
            ulong tail = (Registers.Get(RegisterOffsets.PageRequestQueueTail) >> 5) % count;
            ulong head = (Registers.Get(RegisterOffsets.PageRequestQueueHead) >> 5) % count;
            ulong next = (tail + 1) % count;
            if (next == head || !TryWritePageRequest(baseHpa + tail * PageRequest.Size, request))
            {
                Registers.UpdateByHardware(RegisterOffsets.PageRequestStatus, 0, PrsPro, out _);
                Interlocked.Increment(ref _pageRequestOverflows);
                return PageRequestStatus.Overflow;
            }
            Registers.SetByHardware(RegisterOffsets.PageRequestQueueTail, next << 5);
            Registers.UpdateByHardware(RegisterOffsets.PageRequestStatus, 0, PrsPpr, out _);
            raise = RaiseInterruptCondition(RegisterOffsets.PageRequestEventControl);
            Interlocked.Increment(ref _pageRequests);
        }
        if (raise)
            RaiseInterrupt(DmarInterruptKind.PageRequest);
        return PageRequestStatus.Queued;
    }

    // Inside a protected region, as the queue's status writes are: the frame cannot be reclaimed and
    // the region not unmapped between the checks and the stores.
    private bool TryWritePageRequest(ulong slotHpa, in PageRequest request)
    {
        _memory.Epochs.Protect();
        try
        {
            byte* slot = _memory.TryGetPointer(slotHpa, PageRequest.Size);
            // As for a wait descriptor's status write: a queue that PQA places in a free frame, or
            // outside all memory, is never written; the request is dropped as if the queue were full.
            if (slot == null || !_memory.IsWritable(slotHpa, PageRequest.Size))
                return false;
            Volatile.Write(ref *(ulong*)(slot + 8), request.Qw1);
            Volatile.Write(ref *(ulong*)(slot + 16), 0UL);
            Volatile.Write(ref *(ulong*)(slot + 24), 0UL);
            Volatile.Write(ref *(ulong*)slot, request.Qw0);
            return true;
        }
        finally
        {
            _memory.Epochs.Unprotect();
        }
    }

    /// <summary>
    /// The driver's side: reads every queued page request from PQH to PQT and advances PQH
    /// (clearing PRS.PPR once the queue is empty).
    /// </summary>
    /// <exception cref="InvalidOperationException">Requests are pending in a queue that PQA_REG places outside allocated host memory (a guest moved PQA or PQH under the queue).</exception>
    internal IReadOnlyList<PageRequest> DrainPageRequests()
    {
        ThrowIfDisposed();
        var drained = new List<PageRequest>();
        lock (_registerLock)
        {
            ulong pqa = Registers.Get(RegisterOffsets.PageRequestQueueAddress);
            ulong baseHpa = pqa & RegisterBaseMask;
            if (baseHpa == 0)
                return drained;
            ulong count = ((ulong)Engine.Memory.HostMemory.FrameSize << (int)(pqa & 7)) / PageRequest.Size;
            ulong tail = (Registers.Get(RegisterOffsets.PageRequestQueueTail) >> 5) % count;
            ulong head = (Registers.Get(RegisterOffsets.PageRequestQueueHead) >> 5) % count;
            if (head != tail)
                RequireAllocatedRing(baseHpa, count * PageRequest.Size);
            while (head != tail)
            {
                ulong at = baseHpa + head * PageRequest.Size;
                drained.Add(PageRequest.Decode(_memory.ReadEntry(at), _memory.ReadEntry(at + 8)));
                head = (head + 1) % count;
            }
            WriteRegister(RegisterOffsets.PageRequestQueueHead, 8, head << 5);
            WriteRegister(RegisterOffsets.PageRequestStatus, 4, PrsPpr);
        }
        return drained;
    }

    private void RequireAllocatedRing(ulong baseHpa, ulong bytes)
    {
        try
        {
            _ = _memory.GetSpan(baseHpa, (int)bytes);
        }
        catch (Engine.Memory.InvalidHostAddressException e)
        {
            throw new InvalidOperationException(
                $"{Name}: PQA_REG places the page-request queue at 0x{baseHpa:x} ({bytes} bytes), which is not allocated host memory: {e.Message}", e);
        }
    }

    private void OnPageGroupResponse(in InvalidationDescriptor d) => PageResponse?.Invoke(PageGroupResponse.Decode(d));
}
