using Engine.Memory;

namespace Engine.Iommu;

/// <summary>
/// Queued invalidation of a unit: a ring of descriptors in host memory between IQH (hardware) and
/// IQT (software), processed synchronously with the IQT write.
/// </summary>
/// <remarks>
/// <para>
/// SPEC.md §2.8; QEMU <c>vtd_process_inv_queue</c>. A bad descriptor stops the queue with FSTS.IQE
/// and IQH left on it, so nothing behind it is lost: software fixes it, clears IQE, and the unit
/// resumes there. Tail == head means empty, so a ring of N slots holds at most N − 1 pending
/// descriptors; <see cref="Submit"/> feeds longer lists in pieces as the head advances.
/// </para>
/// <para>
/// Control path, under the unit's register lock (<see cref="DmarRegisterModel.Lock"/>). The
/// caches are invalidated through the register model (IOTLB) and the unit (context cache);
/// page-group responses are handed to the <see cref="PageRequestQueue"/>.
/// </para>
/// </remarks>
internal sealed unsafe class InvalidationQueue
{
    private const ulong IqaDw = 1UL << 11;   // 256-bit descriptors
    private const int NarrowShift = 4, WideShift = 5;

    private readonly IDmarUnitHost _host;
    private readonly DmarRegisterModel _registerModel;
    private readonly PageRequestQueue _pageRequests;
    private readonly RegisterFile _registers;
    private readonly FaultRecorder _faultRecorder;
    private readonly HostMemory _memory;
    private readonly ExtendedCapabilityRegister _ecap;
    private readonly string _name;
    private long _descriptorsProcessed;
    private long _deviceTlbInvalidations;

    /// <summary>A queue for the unit behind <paramref name="host"/>; it runs on every IQT write from now until <see cref="Detach"/>.</summary>
    public InvalidationQueue(IDmarUnitHost host, DmarRegisterModel registerModel, PageRequestQueue pageRequests, RegisterFile registers,
        FaultRecorder faultRecorder, HostMemory memory, ExtendedCapabilityRegister ecap, string name)
    {
        _host = host;
        _registerModel = registerModel;
        _pageRequests = pageRequests;
        _registers = registers;
        _faultRecorder = faultRecorder;
        _memory = memory;
        _ecap = ecap;
        _name = name;
        _registers.Written += OnRegisterWritten;
    }

    /// <summary>Raised for each device-TLB invalidation descriptor (types 3 and 8).</summary>
    /// <remarks>
    /// Raised on the thread that wrote IQT, after IQH has moved past the descriptor, with the unit's
    /// register lock held; a handler may call <see cref="Submit"/> (its descriptors run after those
    /// already queued) but must not wait for another thread that writes this unit's registers.
    /// </remarks>
    public event Action<DeviceTlbInvalidation>? DeviceTlbInvalidated;

    /// <summary>Descriptors processed so far.</summary>
    public long DescriptorsProcessed => Interlocked.Read(ref _descriptorsProcessed);

    /// <summary>Device-TLB invalidation descriptors processed (with or without PASID).</summary>
    public long DeviceTlbInvalidations => Interlocked.Read(ref _deviceTlbInvalidations);

    /// <summary>The error that stopped the queue, or <see cref="InvalidationQueueError.None"/>.</summary>
    public InvalidationQueueError Error =>
        (_registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusIqe) != 0
            ? (InvalidationQueueError)RegisterField.Get(_registers.Get(RegisterOffsets.InvalidationQueueErrorRecord), 3, 0)   // IQEI
            : InvalidationQueueError.None;

    /// <summary>Stops acting on register writes (the unit is being disposed; call under the register lock).</summary>
    public void Detach() => _registers.Written -= OnRegisterWritten;

    // The ring as IQA_REG describes it now: 16-byte slots, or 32-byte ones with IQA.DW.
    private RingGeometry Ring(out bool wide)
    {
        ulong iqa = _registers.Get(RegisterOffsets.InvalidationQueueAddress);
        wide = (iqa & IqaDw) != 0;
        return RingGeometry.Of(iqa, wide ? WideShift : NarrowShift);
    }

    private void OnRegisterWritten(RegisterDeclaration register, ulong before, ulong after)
    {
        bool run = register.Offset == RegisterOffsets.InvalidationQueueTail
            // Software fixed the bad descriptor and cleared IQE: processing resumes at IQH.
            || (register.Offset == RegisterOffsets.FaultStatus
                && (before & FaultRecorder.FaultStatusIqe) != 0 && (after & FaultRecorder.FaultStatusIqe) == 0);
        if (!run)
            return;
        lock (_registerModel.Lock)
        {
            if (_host.IsDisposed)
                return;   // a write that raced Dispose: the unit no longer acts on its registers
            Process();
        }
    }

    // Runs under the register lock. Each step re-reads IQA, IQH and IQT instead of keeping them in
    // locals, because the handlers raised between descriptors may write IQT themselves (a Submit from
    // a DeviceTlbInvalidated handler): that nested call runs the ring on from IQH, which already points
    // past the descriptor whose handler is running, and when it returns this loop must not run what
    // the nested call already ran. Ring order is kept either way.
    private void Process()
    {
        while (ProcessNextDescriptor())
        {
        }
    }

    // One descriptor at IQH, if the queue is enabled, not stopped, and not empty. Returns whether one ran.
    private bool ProcessNextDescriptor()
    {
        var status = (GlobalCommand)_registers.Get(RegisterOffsets.GlobalStatus);
        if ((status & GlobalCommand.QueuedInvalidationEnable) == 0 || (_registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusIqe) != 0)
            return false;
        RingGeometry ring = Ring(out bool wide);
        ulong tailRegister = _registers.Get(RegisterOffsets.InvalidationQueueTail);
        if (wide && !_ecap.ScalableMode)
            return Stop(InvalidationQueueError.InvalidDescriptorWidth);
        if (!ring.IsAligned(tailRegister))
            return Stop(InvalidationQueueError.TailMisaligned);
        // IQT can name any slot of the largest queue; wrapping an index beyond this one would run
        // descriptors software never meant (QEMU's "invalid QI tail" check).
        ulong tail = ring.SlotOf(tailRegister);
        if (tail >= ring.Slots)
            return Stop(InvalidationQueueError.TailBeyondQueue);
        // IQH is the hardware's and always inside the ring it was advanced in; only a smaller IQA
        // written while QIE is set (undefined per spec) can leave it outside: wrap it there.
        ulong head = ring.SlotOf(_registers.Get(RegisterOffsets.InvalidationQueueHead)) % ring.Slots;
        if (head == tail)
            return false;

        InvalidationDescriptor d;
        InvalidationQueueError error;
        bool raiseInvalidationEvent;
        _memory.Epochs.Protect();
        try
        {
            error = ReadDescriptor(ring.SlotHpa(head), wide, out d);
            if (error == InvalidationQueueError.None)
                error = Validate(d);
            raiseInvalidationEvent = error == InvalidationQueueError.None && Apply(d);
        }
        finally
        {
            _memory.Epochs.Unprotect();
        }
        if (error != InvalidationQueueError.None)
            return Stop(error);
        // IQH moves past the descriptor before its handlers run, so a handler that submits more
        // work finds the ring as it is and never sees this descriptor again.
        _registers.SetByHardware(RegisterOffsets.InvalidationQueueHead, ring.OffsetOf((head + 1) % ring.Slots));
        Interlocked.Increment(ref _descriptorsProcessed);
        RaiseEvents(d, raiseInvalidationEvent);
        return true;
    }

    private bool Stop(InvalidationQueueError error)
    {
        // The record first, so a fault-event handler that reads it finds this error. IQE is an
        // interrupt condition like a recorded fault; the recorder owns FSTS and FECTL's state machine.
        _registers.SetByHardware(RegisterOffsets.InvalidationQueueErrorRecord, (ulong)error);
        _faultRecorder.ReportStatus(FaultRecorder.FaultStatusIqe);
        return false;
    }

    private InvalidationQueueError ReadDescriptor(ulong hpa, bool wide, out InvalidationDescriptor d)
    {
        byte* p = _memory.TryGetPointer(hpa, wide ? 32UL : 16UL);
        if (p == null)
        {
            d = default;
            return InvalidationQueueError.DescriptorUnreadable;
        }
        d = new InvalidationDescriptor(
            Volatile.Read(ref *(ulong*)p), Volatile.Read(ref *(ulong*)(p + 8)),
            wide ? Volatile.Read(ref *(ulong*)(p + 16)) : 0, wide ? Volatile.Read(ref *(ulong*)(p + 24)) : 0);
        return InvalidationQueueError.None;
    }

    // Everything that can stop the queue is checked before anything is done, so a descriptor either
    // runs whole or leaves the queue stopped on it with no effect.
    private InvalidationQueueError Validate(in InvalidationDescriptor d)
    {
        var masks = InvalidationDescriptor.ReservedMasks(d.Type);
        if (masks is null || (d.Qw0 & masks.Value.Qw0) != 0 || (d.Qw1 & masks.Value.Qw1) != 0 || d.Qw2 != 0 || d.Qw3 != 0)
            return InvalidationQueueError.InvalidDescriptor;
        int granularity = d.Granularity;
        bool valid = d.Type switch
        {
            InvalidationDescriptorType.ContextCache => granularity != 0,
            InvalidationDescriptorType.PasidCache => granularity != 2,
            InvalidationDescriptorType.Iotlb => granularity != 0,
            InvalidationDescriptorType.PasidIotlb => granularity is 2 or 3,
            InvalidationDescriptorType.PageGroupResponse => _ecap.Prs,
            _ => true,
        };
        if (!valid)
            return InvalidationQueueError.InvalidDescriptor;
        // Only into allocated frames or embedder RAM: the status write must never land in a free page.
        if (d.Type == InvalidationDescriptorType.Wait && d.WaitStatusWrite && !_memory.IsWritable(d.WaitStatusAddress, 4))
            return InvalidationQueueError.StatusWriteFailed;
        return InvalidationQueueError.None;
    }

    // The unit's own effects of a valid descriptor. Returns whether an invalidation event is to be raised.
    private bool Apply(in InvalidationDescriptor d)
    {
        switch (d.Type)
        {
            case InvalidationDescriptorType.ContextCache:
            case InvalidationDescriptorType.PasidCache:
                // Any selectivity is served by dropping every cached context: allowed, and O(1).
                _host.InvalidateContextCache();
                return false;
            case InvalidationDescriptorType.Iotlb:
                _registerModel.InvalidateIotlb((ulong)d.Granularity, d.Did, d.Address, d.AddressMask);
                return false;
            case InvalidationDescriptorType.PasidIotlb:
                // The model caches second-level translations by DID only, so a PASID-based request is
                // served at DID granularity (never less than asked).
                _registerModel.InvalidateIotlb((ulong)d.Granularity, d.Did, d.Address, d.AddressMask);
                return false;
            case InvalidationDescriptorType.Wait:
                return CompleteWait(d);
            default:
                return false;
        }
    }

    private bool CompleteWait(in InvalidationDescriptor d)
    {
        if (d.WaitStatusWrite)
        {
            // Validate checked the frame; TryGetPointer only guards against a region being disposed under us.
            byte* p = _memory.TryGetPointer(d.WaitStatusAddress, 4);
            if (p != null)
                Volatile.Write(ref *(uint*)p, d.WaitStatusData);
        }
        if (!d.WaitInterrupt)
            return false;
        // With ICS.IWC already set this is no new interrupt condition (QEMU vtd_generate_completion_event).
        _registers.UpdateByHardware(RegisterOffsets.InvalidationCompletionStatus, 0, DmarRegisters.InvalidationCompletionIwc, out ulong ics);
        if ((ics & DmarRegisters.InvalidationCompletionIwc) != 0)
            return false;
        return _registerModel.RaiseInterruptCondition(RegisterOffsets.InvalidationEventControl);
    }

    private void RaiseEvents(in InvalidationDescriptor d, bool invalidationEvent)
    {
        switch (d.Type)
        {
            case InvalidationDescriptorType.DeviceTlb:
                Interlocked.Increment(ref _deviceTlbInvalidations);
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation(d.DeviceTlbSourceId, d.Address, d.DeviceTlbSizeBit, TranslationRequest.NoPasid));
                break;
            case InvalidationDescriptorType.PasidDeviceTlb:
                Interlocked.Increment(ref _deviceTlbInvalidations);
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation(d.PasidDeviceTlbSourceId, d.Address, d.PasidDeviceTlbSizeBit, d.Pasid));
                break;
            case InvalidationDescriptorType.PageGroupResponse:
                _pageRequests.Respond(d);
                break;
        }
        if (invalidationEvent)
            _host.RaiseInterrupt(DmarInterruptKind.InvalidationComplete);
    }

    /// <summary>
    /// Submits descriptors the way Linux's <c>qi_submit_sync</c> does: writes them at IQT, advances
    /// IQT (which processes them), and returns the queue error, if any. Needs QI enabled and IQA set.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Any number of descriptors may be submitted. The ring holds at most slots − 1 of them (tail ==
    /// head means empty), so a longer list is written in pieces, each as large as the free space, and
    /// the next piece is written only once the unit has processed the previous one — the way the
    /// driver waits for free slots. Nothing already in the ring is ever overwritten.
    /// </para>
    /// <para>
    /// A bad descriptor stops the queue (FSTS.IQE) with IQH on it: the error is returned, and the
    /// descriptors after it in this call that did not fit in the ring yet are not written. While the
    /// queue is stopped nothing is written at all and the standing error is returned; software
    /// repairs the ring and clears IQE to resume.
    /// </para>
    /// <para>
    /// Thread-safe: submissions from several threads do not interleave within a piece. A handler of
    /// <see cref="DeviceTlbInvalidated"/>, <see cref="PageRequestQueue.PageResponse"/> or the unit's
    /// invalidation event may submit too; its descriptors run after those already queued. Handlers
    /// raised by a descriptor run on the submitting thread while it holds the unit's register lock, so
    /// they must not wait for another thread that writes this unit's registers.
    /// </para>
    /// </remarks>
    /// <returns>The queue error, or <see cref="InvalidationQueueError.None"/> when every descriptor ran.</returns>
    /// <exception cref="InvalidOperationException">IQA_REG is not programmed or lies outside allocated host memory, or GSTS.QIES is clear.</exception>
    public InvalidationQueueError Submit(ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        _registerModel.ThrowIfDisposed();
        lock (_registerModel.Lock)
        {
            int done = 0;
            while (true)
            {
                // Read afresh for every piece: a handler run by the previous piece may have reprogrammed the queue.
                RingGeometry ring = Ring(out bool wide);
                if (ring.BaseHpa == 0)
                    throw new InvalidOperationException("IQA_REG is not programmed: call EnableQueuedInvalidation first.");
                if (((GlobalCommand)_registers.Get(RegisterOffsets.GlobalStatus) & GlobalCommand.QueuedInvalidationEnable) == 0)
                    throw new InvalidOperationException("Queued invalidation is not enabled (GSTS.QIES = 0): call EnableQueuedInvalidation first.");
                Span<byte> bytes = RingBytes(ring);
                // Work a guest driver left between IQH and IQT (written before QIE was set) runs first, in
                // ring order; a bad IQT stops the queue here, before anything is written.
                Process();
                InvalidationQueueError error = Error;
                if (error != InvalidationQueueError.None || done == descriptors.Length)
                    return error;
                // Not stopped, so the ring ran to its tail (validated below the size): it is empty and
                // free is slots − 1. Zero would mean a ring that cannot drain, and waiting would never end.
                ulong head = ring.SlotOf(_registers.Get(RegisterOffsets.InvalidationQueueHead)) % ring.Slots;
                ulong tail = ring.SlotOf(_registers.Get(RegisterOffsets.InvalidationQueueTail));
                ulong free = (head + ring.Slots - tail - 1) % ring.Slots;
                if (free == 0)
                    throw new InvalidOperationException($"{_name}: the invalidation queue is full and not advancing (IQH {head}, IQT {tail}).");
                int piece = (int)Math.Min(free, (ulong)(descriptors.Length - done));
                for (int i = 0; i < piece; i++)
                {
                    WriteSlot(bytes.Slice((int)ring.OffsetOf(tail), ring.SlotSize), descriptors[done + i], wide);
                    tail = (tail + 1) % ring.Slots;
                }
                done += piece;
                _registerModel.Write(RegisterOffsets.InvalidationQueueTail, 8, ring.OffsetOf(tail));
            }
        }
    }

    private Span<byte> RingBytes(RingGeometry ring)
    {
        try
        {
            return _memory.GetSpan(ring.BaseHpa, (int)ring.Bytes);
        }
        catch (InvalidHostAddressException e)
        {
            throw new InvalidOperationException(
                $"{_name}: IQA_REG places the invalidation queue at 0x{ring.BaseHpa:x} ({ring.Bytes} bytes), which is not allocated host memory: {e.Message}", e);
        }
    }

    private static void WriteSlot(Span<byte> slot, in InvalidationDescriptor d, bool wide)
    {
        // qw0 last is not needed: the unit reads the slot only after the IQT write that follows.
        BitConverter.TryWriteBytes(slot, d.Qw0);
        BitConverter.TryWriteBytes(slot[8..], d.Qw1);
        if (wide)
        {
            BitConverter.TryWriteBytes(slot[16..], d.Qw2);
            BitConverter.TryWriteBytes(slot[24..], d.Qw3);
        }
    }

    /// <summary>Programs IQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and sets GCMD.QIE.</summary>
    /// <exception cref="EngineException">EOPNOTSUPP: the unit has no queued invalidation (ECAP.QI = 0).</exception>
    /// <exception cref="ArgumentException">The queue is not 4 KiB aligned, not 2^0..2^7 frames, or not in allocated host memory.</exception>
    public void Enable(ulong queueHpa, int queueSizeOrder, bool wideDescriptors)
    {
        _registerModel.ThrowIfDisposed();
        if (!_ecap.Qi)
            throw new EngineException(Errno.EOPNOTSUPP, $"{_name} does not support queued invalidation (ECAP.QI = 0).");
        if ((queueHpa & ~RingGeometry.BaseMask) != 0 || queueSizeOrder is < 0 or > 7)
            throw new ArgumentException("The queue must be 4 KiB aligned and 2^0..2^7 frames.", nameof(queueHpa));
        RingGeometry.RequireAllocated(_memory, queueHpa, queueSizeOrder, nameof(queueHpa));
        _registerModel.Write(RegisterOffsets.InvalidationQueueTail, 8, 0);
        _registerModel.Write(RegisterOffsets.InvalidationQueueAddress, 8, queueHpa | (wideDescriptors ? IqaDw : 0) | (uint)queueSizeOrder);
        _registerModel.IssueGlobalCommand(GlobalCommand.QueuedInvalidationEnable);
    }

    /// <summary>Writes the counters (descriptors processed, then device-TLB invalidations).</summary>
    public void SaveState(CheckpointWriter w)
    {
        w.I64(Interlocked.Read(ref _descriptorsProcessed));
        w.I64(Interlocked.Read(ref _deviceTlbInvalidations));
    }

    /// <summary>Reads what <see cref="SaveState"/> wrote.</summary>
    public void RestoreState(CheckpointReader r)
    {
        _descriptorsProcessed = r.I64("invalidation descriptors processed");
        _deviceTlbInvalidations = r.I64("device-TLB invalidations");
    }
}
