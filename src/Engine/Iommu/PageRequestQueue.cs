using Engine.Memory;

namespace Engine.Iommu;

/// <summary>
/// The page-request queue of a unit: a ring of 32-byte descriptors between PQH (software) and PQT
/// (hardware). A device whose DMA faulted sends a page request; software drains the ring and answers
/// with a page-group response descriptor through queued invalidation.
/// </summary>
/// <remarks>
/// SPEC.md §2.8; Linux <c>intel_svm_process_prq</c>. Control path, under the unit's register lock.
/// The requester's context is checked by the unit before a request gets here (that is the
/// translator's work); this class owns the ring, PRS and the counters.
/// </remarks>
internal sealed unsafe class PageRequestQueue
{
    private const int SlotShift = 5;   // log2(PageRequest.Size)

    private readonly IDmarUnitHost _host;
    private readonly DmarRegisterModel _registerModel;
    private readonly RegisterFile _registers;
    private readonly HostMemory _memory;
    private readonly ExtendedCapabilityRegister _ecap;
    private readonly string _name;
    private long _requests;
    private long _overflows;

    /// <summary>A queue for the unit behind <paramref name="host"/>, in its registers and memory.</summary>
    public PageRequestQueue(IDmarUnitHost host, DmarRegisterModel registerModel, RegisterFile registers, HostMemory memory, ExtendedCapabilityRegister ecap, string name)
    {
        _host = host;
        _registerModel = registerModel;
        _registers = registers;
        _memory = memory;
        _ecap = ecap;
        _name = name;
    }

    /// <summary>Raised for each page-group response software submits (descriptor type 9): the device's answer.</summary>
    public event Action<PageGroupResponse>? PageResponse;

    /// <summary>Page requests queued so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Page requests dropped because the queue was full.</summary>
    public long Overflows => Interlocked.Read(ref _overflows);

    /// <summary>Programs PQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and empties it.</summary>
    /// <exception cref="EngineException">EOPNOTSUPP: the unit has no page requests (ECAP.PRS = 0).</exception>
    /// <exception cref="ArgumentException">The queue is not 4 KiB aligned, not 2^0..2^7 frames, or not in allocated host memory.</exception>
    public void Enable(ulong queueHpa, int queueSizeOrder)
    {
        _registerModel.ThrowIfDisposed();
        if (!_ecap.Prs)
            throw new EngineException(Errno.EOPNOTSUPP, $"{_name} does not support page requests (ECAP.PRS = 0).");
        if ((queueHpa & ~RingGeometry.BaseMask) != 0 || queueSizeOrder is < 0 or > 7)
            throw new ArgumentException("The page-request queue must be 4 KiB aligned and 2^0..2^7 frames.", nameof(queueHpa));
        RingGeometry.RequireAllocated(_memory, queueHpa, queueSizeOrder, nameof(queueHpa));
        lock (_registerModel.Lock)
        {
            _registers.SetByHardware(RegisterOffsets.PageRequestQueueTail, 0);
            _registerModel.Write(RegisterOffsets.PageRequestQueueHead, 8, 0);
            _registerModel.Write(RegisterOffsets.PageRequestQueueAddress, 8, queueHpa | (uint)queueSizeOrder);
        }
    }

    /// <summary>
    /// Writes a request whose context allows it at PQT, sets PRS.PPR and raises the page-request
    /// interrupt condition; a full ring (or one outside writable memory) drops it and sets PRS.PRO.
    /// </summary>
    public PageRequestStatus Enqueue(in PageRequest request)
    {
        bool raise;
        lock (_registerModel.Lock)
        {
            ulong pqa = _registers.Get(RegisterOffsets.PageRequestQueueAddress);
            var ring = RingGeometry.Of(pqa, SlotShift);
            if (ring.BaseHpa == 0)
                return PageRequestStatus.NotEnabled;
            ulong tail = ring.SlotOf(_registers.Get(RegisterOffsets.PageRequestQueueTail)) % ring.Slots;
            ulong head = ring.SlotOf(_registers.Get(RegisterOffsets.PageRequestQueueHead)) % ring.Slots;
            ulong next = (tail + 1) % ring.Slots;
            if (next == head || !TryWrite(ring.SlotHpa(tail), request))
            {
                _registers.UpdateByHardware(RegisterOffsets.PageRequestStatus, 0, DmarRegisters.PageRequestStatusPro, out _);
                Interlocked.Increment(ref _overflows);
                return PageRequestStatus.Overflow;
            }
            _registers.SetByHardware(RegisterOffsets.PageRequestQueueTail, ring.OffsetOf(next));
            _registers.UpdateByHardware(RegisterOffsets.PageRequestStatus, 0, DmarRegisters.PageRequestStatusPpr, out _);
            raise = _registerModel.RaiseInterruptCondition(RegisterOffsets.PageRequestEventControl);
            Interlocked.Increment(ref _requests);
        }
        if (raise)
            _host.RaiseInterrupt(DmarInterruptKind.PageRequest);
        return PageRequestStatus.Queued;
    }

    // Inside a protected region, as the queue's status writes are: the frame cannot be reclaimed and
    // the region not unmapped between the checks and the stores.
    private bool TryWrite(ulong slotHpa, in PageRequest request)
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
    public IReadOnlyList<PageRequest> Drain()
    {
        _registerModel.ThrowIfDisposed();
        var drained = new List<PageRequest>();
        lock (_registerModel.Lock)
        {
            var ring = RingGeometry.Of(_registers.Get(RegisterOffsets.PageRequestQueueAddress), SlotShift);
            if (ring.BaseHpa == 0)
                return drained;
            ulong tail = ring.SlotOf(_registers.Get(RegisterOffsets.PageRequestQueueTail)) % ring.Slots;
            ulong head = ring.SlotOf(_registers.Get(RegisterOffsets.PageRequestQueueHead)) % ring.Slots;
            if (head != tail)
                RequireAllocatedRing(ring);
            while (head != tail)
            {
                ulong at = ring.SlotHpa(head);
                drained.Add(PageRequest.Decode(_memory.ReadEntry(at), _memory.ReadEntry(at + 8)));
                head = (head + 1) % ring.Slots;
            }
            _registerModel.Write(RegisterOffsets.PageRequestQueueHead, 8, ring.OffsetOf(head));
            _registerModel.Write(RegisterOffsets.PageRequestStatus, 4, DmarRegisters.PageRequestStatusPpr);
        }
        return drained;
    }

    private void RequireAllocatedRing(RingGeometry ring)
    {
        try
        {
            _ = _memory.GetSpan(ring.BaseHpa, (int)ring.Bytes);
        }
        catch (InvalidHostAddressException e)
        {
            throw new InvalidOperationException(
                $"{_name}: PQA_REG places the page-request queue at 0x{ring.BaseHpa:x} ({ring.Bytes} bytes), which is not allocated host memory: {e.Message}", e);
        }
    }

    /// <summary>Delivers a page-group response descriptor (type 9) that queued invalidation processed.</summary>
    public void Respond(in InvalidationDescriptor d) => PageResponse?.Invoke(PageGroupResponse.Decode(d));

    /// <summary>Writes the counters (requests, then overflows).</summary>
    public void SaveState(CheckpointWriter w)
    {
        w.I64(Interlocked.Read(ref _requests));
        w.I64(Interlocked.Read(ref _overflows));
    }

    /// <summary>Reads what <see cref="SaveState"/> wrote.</summary>
    public void RestoreState(CheckpointReader r)
    {
        _requests = r.I64("page requests");
        _overflows = r.I64("page-request overflows");
    }
}
