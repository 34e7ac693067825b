using Engine.Memory;

namespace Engine.Iommu;

/// <summary>Why queued invalidation stopped (IQERCD_REG.IQEI, bits 3:0). The codes are the model's; SPEC.md does not settle them.</summary>
internal enum InvalidationQueueError : byte
{
    /// <summary>No error.</summary>
    None = 0,
    /// <summary>Unknown descriptor type, or a reserved bit set.</summary>
    InvalidDescriptor = 1,
    /// <summary>The descriptor lies outside host memory.</summary>
    DescriptorUnreadable = 2,
    /// <summary>IQT is not aligned to the descriptor width.</summary>
    TailMisaligned = 3,
    /// <summary>256-bit descriptors (IQA.DW) on a unit without scalable mode.</summary>
    InvalidDescriptorWidth = 4,
    /// <summary>A wait descriptor's status address lies outside allocated host memory.</summary>
    StatusWriteFailed = 5,
    /// <summary>IQT holds an index beyond the queue IQA describes (QEMU: "invalid QI tail").</summary>
    TailBeyondQueue = 6,
}

/// <summary>A device-TLB invalidation a unit processed, for embedders that model ATS devices.</summary>
/// <param name="SourceId">The device.</param>
/// <param name="Address">Address (with the size encoded in the low bits when <paramref name="SizeBit"/> is set).</param>
/// <param name="SizeBit">The S bit.</param>
/// <param name="Pasid">PASID for PASID-based device-TLB invalidation, or <see cref="TranslationRequest.NoPasid"/>.</param>
internal readonly record struct DeviceTlbInvalidation(ushort SourceId, ulong Address, bool SizeBit, uint Pasid);

// Queued invalidation: a ring of descriptors in host memory between IQH (hardware) and IQT
// (software). Processing is synchronous with the IQT write; a bad descriptor stops the queue with
// FSTS.IQE and IQH left on it, so nothing behind it is lost: software fixes it, clears IQE, and the
// unit resumes there. Tail == head means empty, so a ring of N slots holds at most N − 1 pending
// descriptors; Submit feeds longer lists in pieces as the head advances.
public sealed unsafe partial class DmarUnit
{
    internal const ulong FaultStatusIqe = 1UL << 4;
    private const ulong IqaDw = 1UL << 11;
    private long _descriptorsProcessed;

    /// <summary>Raised for each device-TLB invalidation descriptor (types 3 and 8).</summary>
    /// <remarks>
    /// Raised on the thread that wrote IQT, after IQH has moved past the descriptor, with the unit's
    /// register lock held; a handler may call <see cref="Submit"/> (its descriptors run after those
    /// already queued) but must not wait for another thread that writes this unit's registers.
    /// </remarks>
    internal event Action<DeviceTlbInvalidation>? DeviceTlbInvalidated;

    /// <summary>
    /// The invalidation-completion interrupt: a wait descriptor with IF completes while ICS.IWC is clear (a new
    /// condition) and IECTL.IM is clear; with IM set IECTL.IP holds it until software clears IM (the event is
    /// raised then) or services it by clearing IWC (it is dropped).
    /// </summary>
    internal event Action? InvalidationEvent;

    /// <summary>Descriptors processed so far.</summary>
    public long DescriptorsProcessed => Interlocked.Read(ref _descriptorsProcessed);

    /// <summary>The error that stopped the queue, or <see cref="InvalidationQueueError.None"/>.</summary>
    internal InvalidationQueueError QueueError =>
        (Registers.Get(RegisterOffsets.FaultStatus) & FaultStatusIqe) != 0
            ? (InvalidationQueueError)(Registers.Get(RegisterOffsets.InvalidationQueueErrorRecord) & 0xF)
            : InvalidationQueueError.None;

    /// <summary>The ring as IQA_REG describes it now.</summary>
    private readonly record struct QueueGeometry(ulong BaseHpa, bool Wide, int Shift, ulong Slots)
    {
        public ulong Bytes => Slots << Shift;

        public static QueueGeometry Of(ulong iqa)
        {
            bool wide = (iqa & IqaDw) != 0;
            int shift = wide ? 5 : 4;
            return new QueueGeometry(iqa & RegisterBaseMask, wide, shift, ((ulong)HostMemory.FrameSize << (int)(iqa & 7)) >> shift);
        }
    }

    // Runs under _registerLock. Each step re-reads IQA, IQH and IQT instead of keeping them in
    // locals, because the handlers raised between descriptors may write IQT themselves (a Submit from
    // a DeviceTlbInvalidated handler): that nested call runs the ring on from IQH, which already points
    // past the descriptor whose handler is running, and when it returns this loop must not run what
    // the nested call already ran. Ring order is kept either way.
    private void ProcessInvalidationQueue()
    {
        while (ProcessNextDescriptor())
        {
        }
    }

    // One descriptor at IQH, if the queue is enabled, not stopped, and not empty. Returns whether one ran.
    private bool ProcessNextDescriptor()
    {
        var status = (GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus);
        if ((status & GlobalCommand.QueuedInvalidationEnable) == 0 || (Registers.Get(RegisterOffsets.FaultStatus) & FaultStatusIqe) != 0)
            return false;
        var queue = QueueGeometry.Of(Registers.Get(RegisterOffsets.InvalidationQueueAddress));
        ulong tailRegister = Registers.Get(RegisterOffsets.InvalidationQueueTail);
        if (queue.Wide && !Ecap.ScalableMode)
            return StopQueue(InvalidationQueueError.InvalidDescriptorWidth);
        if ((tailRegister & ((1UL << queue.Shift) - 1)) != 0)
            return StopQueue(InvalidationQueueError.TailMisaligned);
        // IQT can name any slot of the largest queue; wrapping an index beyond this one would run
        // descriptors software never meant (QEMU's "invalid QI tail" check).
        ulong tail = tailRegister >> queue.Shift;
        if (tail >= queue.Slots)
            return StopQueue(InvalidationQueueError.TailBeyondQueue);
        // IQH is the hardware's and always inside the ring it was advanced in; only a smaller IQA
        // written while QIE is set (undefined per spec) can leave it outside: wrap it there.
        ulong head = (Registers.Get(RegisterOffsets.InvalidationQueueHead) >> queue.Shift) % queue.Slots;
        if (head == tail)
            return false;

        InvalidationDescriptor d;
        InvalidationQueueError error;
        bool raiseInvalidationEvent;
        _memory.Epochs.Protect();
        try
        {
            error = ReadDescriptor(queue.BaseHpa + (head << queue.Shift), queue.Wide, out d);
            if (error == InvalidationQueueError.None)
                error = Validate(d);
            raiseInvalidationEvent = error == InvalidationQueueError.None && Apply(d);
        }
        finally
        {
            _memory.Epochs.Unprotect();
        }
        if (error != InvalidationQueueError.None)
            return StopQueue(error);
        // IQH moves past the descriptor before its handlers run, so a handler that submits more
        // work finds the ring as it is and never sees this descriptor again.
        Registers.SetByHardware(RegisterOffsets.InvalidationQueueHead, ((head + 1) % queue.Slots) << queue.Shift);
        Interlocked.Increment(ref _descriptorsProcessed);
        RaiseEvents(d, raiseInvalidationEvent);
        return true;
    }

    private bool StopQueue(InvalidationQueueError error)
    {
        // The record first, so a fault-event handler that reads it finds this error. IQE is an
        // interrupt condition like a recorded fault; the recorder owns FSTS and FECTL's state machine.
        Registers.SetByHardware(RegisterOffsets.InvalidationQueueErrorRecord, (ulong)error);
        FaultRecorder.ReportStatus(FaultStatusIqe);
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
            InvalidationDescriptorType.PageGroupResponse => Ecap.Prs,
            _ => true,
        };
        if (!valid)
            return InvalidationQueueError.InvalidDescriptor;
        if (d.Type == InvalidationDescriptorType.Wait && (d.Qw0 & WaitSw) != 0)
        {
            // Only into allocated frames or embedder RAM: the status write must never land in a free page.
            ulong address = d.Qw1 & ~3UL;
            if (!_memory.IsWritable(address, 4))
                return InvalidationQueueError.StatusWriteFailed;
        }
        return InvalidationQueueError.None;
    }

    private const ulong WaitIf = 1UL << 4, WaitSw = 1UL << 5;
    private const ulong IcsIwc = 1;

    // The unit's own effects of a valid descriptor. Returns whether an invalidation event is to be raised.
    private bool Apply(in InvalidationDescriptor d)
    {
        int granularity = d.Granularity;
        ushort did = d.Did;
        switch (d.Type)
        {
            case InvalidationDescriptorType.ContextCache:
            case InvalidationDescriptorType.PasidCache:
                // Any selectivity is served by dropping every cached context: allowed, and O(1).
                _contextCache.InvalidateAll();
                return false;
            case InvalidationDescriptorType.Iotlb:
                InvalidateIotlb((ulong)granularity, did, d.Qw1);
                return false;
            case InvalidationDescriptorType.PasidIotlb:
                // The model caches second-level translations by DID only, so a PASID-based request is
                // served at DID granularity (never less than asked).
                InvalidateIotlb((ulong)granularity, did, d.Qw1);
                return false;
            case InvalidationDescriptorType.Wait:
                return CompleteWait(d);
            default:
                return false;
        }
    }

    private bool CompleteWait(in InvalidationDescriptor d)
    {
        if ((d.Qw0 & WaitSw) != 0)
        {
            // Validate checked the frame; TryGetPointer only guards against a region being disposed under us.
            byte* p = _memory.TryGetPointer(d.Qw1 & ~3UL, 4);
            if (p != null)
                Volatile.Write(ref *(uint*)p, (uint)(d.Qw0 >> 32));
        }
        if ((d.Qw0 & WaitIf) == 0)
            return false;
        // With ICS.IWC already set this is no new interrupt condition (QEMU vtd_generate_completion_event).
        Registers.UpdateByHardware(RegisterOffsets.InvalidationCompletionStatus, 0, IcsIwc, out ulong ics);
        if ((ics & IcsIwc) != 0)
            return false;
        return RaiseInterruptCondition(RegisterOffsets.InvalidationEventControl);
    }

    private long _deviceTlbInvalidations;

    /// <summary>Device-TLB invalidation descriptors processed (with or without PASID).</summary>
    public long DeviceTlbInvalidations => Interlocked.Read(ref _deviceTlbInvalidations);

    private void RaiseEvents(in InvalidationDescriptor d, bool invalidationEvent)
    {
        switch (d.Type)
        {
            case InvalidationDescriptorType.DeviceTlb:
                Interlocked.Increment(ref _deviceTlbInvalidations);
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation((ushort)(d.Qw0 >> 32), d.Qw1 & ~0xFFFUL, (d.Qw1 & 1) != 0, TranslationRequest.NoPasid));
                break;
            case InvalidationDescriptorType.PasidDeviceTlb:
                Interlocked.Increment(ref _deviceTlbInvalidations);
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation((ushort)(d.Qw0 >> 16), d.Qw1 & ~0xFFFUL, (d.Qw1 & (1UL << 11)) != 0, (uint)((d.Qw0 >> 32) & 0xF_FFFF)));
                break;
            case InvalidationDescriptorType.PageGroupResponse:
                OnPageGroupResponse(d);
                break;
        }
        if (invalidationEvent)
            RaiseInterrupt(DmarInterruptKind.InvalidationComplete);
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
    /// <see cref="DeviceTlbInvalidated"/>, <see cref="PageResponse"/> or <see cref="InvalidationEvent"/>
    /// may submit too; its descriptors run after those already queued. Handlers raised by a descriptor
    /// run on the submitting thread while it holds the unit's register lock, so they must not wait for
    /// another thread that writes this unit's registers.
    /// </para>
    /// </remarks>
    /// <returns>The queue error, or <see cref="InvalidationQueueError.None"/> when every descriptor ran.</returns>
    /// <exception cref="InvalidOperationException">IQA_REG is not programmed or lies outside allocated host memory, or GSTS.QIES is clear.</exception>
    internal InvalidationQueueError Submit(params ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        ThrowIfDisposed();
        lock (_registerLock)
        {
            int done = 0;
            while (true)
            {
                // Read afresh for every piece: a handler run by the previous piece may have reprogrammed the queue.
                var queue = QueueGeometry.Of(Registers.Get(RegisterOffsets.InvalidationQueueAddress));
                if (queue.BaseHpa == 0)
                    throw new InvalidOperationException("IQA_REG is not programmed: call EnableQueuedInvalidation first.");
                if (((GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus) & GlobalCommand.QueuedInvalidationEnable) == 0)
                    throw new InvalidOperationException("Queued invalidation is not enabled (GSTS.QIES = 0): call EnableQueuedInvalidation first.");
                Span<byte> ring = QueueRing(queue);
                // Work a guest driver left between IQH and IQT (written before QIE was set) runs first, in
                // ring order; a bad IQT stops the queue here, before anything is written.
                ProcessInvalidationQueue();
                InvalidationQueueError error = QueueError;
                if (error != InvalidationQueueError.None || done == descriptors.Length)
                    return error;
                // Not stopped, so the ring ran to its tail (validated below the size): it is empty and
                // free is slots − 1. Zero would mean a ring that cannot drain, and waiting would never end.
                ulong head = (Registers.Get(RegisterOffsets.InvalidationQueueHead) >> queue.Shift) % queue.Slots;
                ulong tail = Registers.Get(RegisterOffsets.InvalidationQueueTail) >> queue.Shift;
                ulong free = (head + queue.Slots - tail - 1) % queue.Slots;
                if (free == 0)
                    throw new InvalidOperationException($"{Name}: the invalidation queue is full and not advancing (IQH {head}, IQT {tail}).");
                int piece = (int)Math.Min(free, (ulong)(descriptors.Length - done));
                for (int i = 0; i < piece; i++)
                {
                    WriteSlot(ring.Slice((int)(tail << queue.Shift), 1 << queue.Shift), descriptors[done + i], queue.Wide);
                    tail = (tail + 1) % queue.Slots;
                }
                done += piece;
                WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, tail << queue.Shift);
            }
        }
    }

    private Span<byte> QueueRing(QueueGeometry queue)
    {
        try
        {
            return _memory.GetSpan(queue.BaseHpa, (int)queue.Bytes);
        }
        catch (InvalidHostAddressException e)
        {
            throw new InvalidOperationException(
                $"{Name}: IQA_REG places the invalidation queue at 0x{queue.BaseHpa:x} ({queue.Bytes} bytes), which is not allocated host memory: {e.Message}", e);
        }
    }

    // The unit writes into the queues it is given (Submit's descriptors, page requests): refuse at once
    // memory it could not use, rather than at the first submission.
    private void RequireAllocatedQueue(ulong queueHpa, int queueSizeOrder, string paramName)
    {
        try
        {
            _ = _memory.GetSpan(queueHpa, HostMemory.FrameSize << queueSizeOrder);
        }
        catch (InvalidHostAddressException e)
        {
            throw new ArgumentException($"The queue at 0x{queueHpa:x} ({HostMemory.FrameSize << queueSizeOrder} bytes) is not allocated host memory: {e.Message}", paramName, e);
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
    public void EnableQueuedInvalidation(ulong queueHpa, int queueSizeOrder = 0, bool wideDescriptors = false)
    {
        ThrowIfDisposed();
        if (!Ecap.Qi)
            throw new EngineException(Errno.EOPNOTSUPP, $"{Name} does not support queued invalidation (ECAP.QI = 0).");
        if ((queueHpa & 0xFFF) != 0 || queueSizeOrder is < 0 or > 7)
            throw new ArgumentException("The queue must be 4 KiB aligned and 2^0..2^7 frames.", nameof(queueHpa));
        RequireAllocatedQueue(queueHpa, queueSizeOrder, nameof(queueHpa));
        WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0);
        WriteRegister(RegisterOffsets.InvalidationQueueAddress, 8, queueHpa | (wideDescriptors ? IqaDw : 0) | (uint)queueSizeOrder);
        IssueGlobalCommand(GlobalCommand.QueuedInvalidationEnable);
    }
}
