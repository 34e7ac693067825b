using Engine.Memory;

namespace Engine.Iommu;

/// <summary>Why queued invalidation stopped (IQERCD_REG.IQEI, bits 3:0). The codes are the model's; SPEC.md does not settle them.</summary>
public enum InvalidationQueueError : byte
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
}

/// <summary>A device-TLB invalidation a unit processed, for embedders that model ATS devices.</summary>
/// <param name="SourceId">The device.</param>
/// <param name="Address">Address (with the size encoded in the low bits when <paramref name="SizeBit"/> is set).</param>
/// <param name="SizeBit">The S bit.</param>
/// <param name="Pasid">PASID for PASID-based device-TLB invalidation, or <see cref="TranslationRequest.NoPasid"/>.</param>
public readonly record struct DeviceTlbInvalidation(ushort SourceId, ulong Address, bool SizeBit, uint Pasid);

// Queued invalidation: a ring of descriptors in host memory between IQH (hardware) and IQT
// (software). Processing is synchronous with the IQT write; a bad descriptor stops the queue with
// FSTS.IQE and IQH left on it, so nothing behind it is lost: software fixes it, clears IQE, and the
// unit resumes there.
public sealed unsafe partial class DmarUnit
{
    internal const ulong FaultStatusIqe = 1UL << 4;
    private const ulong IqaDw = 1UL << 11;
    private long _descriptorsProcessed;

    /// <summary>Raised for each device-TLB invalidation descriptor (types 3 and 8).</summary>
    public event Action<DeviceTlbInvalidation>? DeviceTlbInvalidated;

    /// <summary>Raised when a wait descriptor with IF completes and the invalidation event is not masked.</summary>
    public event Action? InvalidationEvent;

    /// <summary>Descriptors processed so far.</summary>
    public long DescriptorsProcessed => Interlocked.Read(ref _descriptorsProcessed);

    /// <summary>The error that stopped the queue, or <see cref="InvalidationQueueError.None"/>.</summary>
    public InvalidationQueueError QueueError =>
        (Registers.Get(RegisterOffsets.FaultStatus) & FaultStatusIqe) != 0
            ? (InvalidationQueueError)(Registers.Get(RegisterOffsets.InvalidationQueueErrorRecord) & 0xF)
            : InvalidationQueueError.None;

    // Runs under _registerLock.
    private void ProcessInvalidationQueue()
    {
        var status = (GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus);
        if ((status & GlobalCommand.QueuedInvalidationEnable) == 0 || (Registers.Get(RegisterOffsets.FaultStatus) & FaultStatusIqe) != 0)
            return;
        ulong iqa = Registers.Get(RegisterOffsets.InvalidationQueueAddress);
        bool wide = (iqa & IqaDw) != 0;
        int shift = wide ? 5 : 4;
        ulong queueBytes = (ulong)HostMemory.FrameSize << (int)(iqa & 7);
        ulong count = queueBytes >> shift;
        ulong baseHpa = iqa & RootEntry.PointerMask;
        ulong tailRegister = Registers.Get(RegisterOffsets.InvalidationQueueTail);
        if (wide && !Ecap.ScalableMode)
        {
            StopQueue(InvalidationQueueError.InvalidDescriptorWidth);
            return;
        }
        if ((tailRegister & ((1UL << shift) - 1)) != 0)
        {
            StopQueue(InvalidationQueueError.TailMisaligned);
            return;
        }
        ulong tail = (tailRegister >> shift) % count;
        ulong head = (Registers.Get(RegisterOffsets.InvalidationQueueHead) >> shift) % count;
        _memory.Epochs.Protect();
        try
        {
            while (head != tail)
            {
                InvalidationQueueError error = ProcessDescriptor(baseHpa + (head << shift), wide);
                if (error != InvalidationQueueError.None)
                {
                    StopQueue(error);
                    break;
                }
                head = (head + 1) % count;
                Registers.SetByHardware(RegisterOffsets.InvalidationQueueHead, head << shift);
                Interlocked.Increment(ref _descriptorsProcessed);
            }
        }
        finally
        {
            _memory.Epochs.Unprotect();
        }
    }

    private void StopQueue(InvalidationQueueError error)
    {
        // Clear-then-set under the register file's lock: a read-modify-write could undo a PPF/PFO the recorder just set.
        Registers.UpdateByHardware(RegisterOffsets.FaultStatus, 0, FaultStatusIqe, out _);
        Registers.SetByHardware(RegisterOffsets.InvalidationQueueErrorRecord, (ulong)error);
    }

    private InvalidationQueueError ProcessDescriptor(ulong hpa, bool wide)
    {
        byte* p = _memory.TryGetPointer(hpa, wide ? 32UL : 16UL);
        if (p == null)
            return InvalidationQueueError.DescriptorUnreadable;
        var d = new InvalidationDescriptor(
            Volatile.Read(ref *(ulong*)p), Volatile.Read(ref *(ulong*)(p + 8)),
            wide ? Volatile.Read(ref *(ulong*)(p + 16)) : 0, wide ? Volatile.Read(ref *(ulong*)(p + 24)) : 0);
        var masks = InvalidationDescriptor.ReservedMasks(d.Type);
        if (masks is null || (d.Qw0 & masks.Value.Qw0) != 0 || (d.Qw1 & masks.Value.Qw1) != 0 || d.Qw2 != 0 || d.Qw3 != 0)
            return InvalidationQueueError.InvalidDescriptor;
        int granularity = (int)((d.Qw0 >> 4) & 3);
        ushort did = (ushort)(d.Qw0 >> 16);
        switch (d.Type)
        {
            case InvalidationDescriptorType.ContextCache:
            case InvalidationDescriptorType.PasidCache:
                // Any selectivity is served by dropping every cached context: allowed, and O(1).
                if (d.Type == InvalidationDescriptorType.ContextCache && granularity == 0)
                    return InvalidationQueueError.InvalidDescriptor;
                if (d.Type == InvalidationDescriptorType.PasidCache && granularity == 2)
                    return InvalidationQueueError.InvalidDescriptor;
                _contextCache.InvalidateAll();
                break;
            case InvalidationDescriptorType.Iotlb:
                if (InvalidateIotlb((ulong)granularity, did, d.Qw1) == 0)
                    return InvalidationQueueError.InvalidDescriptor;
                break;
            case InvalidationDescriptorType.PasidIotlb:
                // The model caches second-level translations by DID only, so a PASID-based request is
                // served at DID granularity (never less than asked).
                if (granularity is not (2 or 3) || InvalidateIotlb((ulong)granularity, did, d.Qw1) == 0)
                    return InvalidationQueueError.InvalidDescriptor;
                break;
            case InvalidationDescriptorType.DeviceTlb:
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation((ushort)(d.Qw0 >> 32), d.Qw1 & ~0xFFFUL, (d.Qw1 & 1) != 0, TranslationRequest.NoPasid));
                break;
            case InvalidationDescriptorType.PasidDeviceTlb:
                DeviceTlbInvalidated?.Invoke(new DeviceTlbInvalidation((ushort)(d.Qw0 >> 16), d.Qw1 & ~0xFFFUL, (d.Qw1 & (1UL << 11)) != 0, (uint)((d.Qw0 >> 32) & 0xF_FFFF)));
                break;
            case InvalidationDescriptorType.InterruptEntryCache:
                break;
            case InvalidationDescriptorType.PageGroupResponse:
                if (!Ecap.Prs)
                    return InvalidationQueueError.InvalidDescriptor;
                OnPageGroupResponse(d);
                break;
            case InvalidationDescriptorType.Wait:
                return CompleteWait(d);
        }
        return InvalidationQueueError.None;
    }

    private InvalidationQueueError CompleteWait(in InvalidationDescriptor d)
    {
        const ulong If = 1UL << 4, Sw = 1UL << 5;
        if ((d.Qw0 & Sw) != 0)
        {
            ulong address = d.Qw1 & ~3UL;
            // Only into allocated frames: the status write must never land in a free or foreign page.
            if (!_memory.Contains(address, 4) || _memory.GetFrameState(address) != FrameState.Allocated)
                return InvalidationQueueError.StatusWriteFailed;
            byte* p = _memory.TryGetPointer(address, 4);
            if (p == null)
                return InvalidationQueueError.StatusWriteFailed;
            Volatile.Write(ref *(uint*)p, (uint)(d.Qw0 >> 32));
        }
        if ((d.Qw0 & If) != 0)
        {
            Registers.SetByHardware(RegisterOffsets.InvalidationCompletionStatus, 1);
            ulong iectl = Registers.Get(RegisterOffsets.InvalidationEventControl);
            const ulong Im = 1UL << 31, Ip = 1UL << 30;
            if ((iectl & Im) == 0)
                InvalidationEvent?.Invoke();
            else
                Registers.SetByHardware(RegisterOffsets.InvalidationEventControl, iectl | Ip);
        }
        return InvalidationQueueError.None;
    }

    /// <summary>
    /// Submits descriptors the way Linux's <c>qi_submit_sync</c> does: writes them at IQT, advances
    /// IQT (which processes them), and returns the queue error, if any. Needs QI enabled and IQA set.
    /// </summary>
    public InvalidationQueueError Submit(params ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        ulong iqa = Registers.Get(RegisterOffsets.InvalidationQueueAddress);
        if ((iqa & RootEntry.PointerMask) == 0)
            throw new InvalidOperationException("IQA_REG is not programmed: call EnableQueuedInvalidation first.");
        bool wide = (iqa & IqaDw) != 0;
        int shift = wide ? 5 : 4;
        ulong count = ((ulong)HostMemory.FrameSize << (int)(iqa & 7)) >> shift;
        ulong tail = Registers.Get(RegisterOffsets.InvalidationQueueTail) >> shift;
        foreach (InvalidationDescriptor d in descriptors)
        {
            Span<byte> slot = _memory.GetSpan((iqa & RootEntry.PointerMask) + (tail << shift), 1 << shift);
            BitConverter.TryWriteBytes(slot, d.Qw0);
            BitConverter.TryWriteBytes(slot[8..], d.Qw1);
            if (wide)
            {
                BitConverter.TryWriteBytes(slot[16..], d.Qw2);
                BitConverter.TryWriteBytes(slot[24..], d.Qw3);
            }
            tail = (tail + 1) % count;
        }
        WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, tail << shift);
        return QueueError;
    }

    /// <summary>Programs IQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and sets GCMD.QIE.</summary>
    public void EnableQueuedInvalidation(ulong queueHpa, int queueSizeOrder = 0, bool wideDescriptors = false)
    {
        if (!Ecap.Qi)
            throw new EngineException(Errno.EOPNOTSUPP, $"{Name} does not support queued invalidation (ECAP.QI = 0).");
        if ((queueHpa & 0xFFF) != 0 || queueSizeOrder is < 0 or > 7)
            throw new ArgumentException("The queue must be 4 KiB aligned and 2^0..2^7 frames.", nameof(queueHpa));
        WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0);
        WriteRegister(RegisterOffsets.InvalidationQueueAddress, 8, queueHpa | (wideDescriptors ? IqaDw : 0) | (uint)queueSizeOrder);
        IssueGlobalCommand(GlobalCommand.QueuedInvalidationEnable);
    }
}
