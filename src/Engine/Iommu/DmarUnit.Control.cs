namespace Engine.Iommu;

// The control calls of the façade. Each checks disposal here, where the caller's unit is named, and
// forwards to the cold model that owns the state: DmarRegisterModel, InvalidationQueue, PageRequestQueue.
public sealed partial class DmarUnit
{
    /// <summary>A software register read (4 or 8 bytes); bad offsets and sizes are answered, not thrown.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public RegisterAccessStatus ReadRegister(int offset, int size, out ulong value)
    {
        ThrowIfDisposed();
        return Registers.Read(offset, size, out value);
    }

    /// <summary>A software register write (4 or 8 bytes) with its hardware side effects; bad offsets and sizes are answered, not thrown.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public RegisterAccessStatus WriteRegister(int offset, int size, ulong value) => _registerModel.Write(offset, size, value);

    /// <summary>Programs RTADDR and issues SRTP, as the driver does (scalable or legacy root table).</summary>
    public void SetRootTable(ulong rootTableHpa, bool scalable) => _registerModel.SetRootTable(rootTableHpa, scalable);

    /// <summary>Sets or clears GCMD.TE.</summary>
    public void SetTranslationEnabled(bool enabled) => _registerModel.SetTranslationEnabled(enabled);

    /// <summary>Writes GCMD with the current persistent bits plus <paramref name="command"/> (how Linux issues one-shot commands).</summary>
    internal void IssueGlobalCommand(GlobalCommand command) => _registerModel.IssueGlobalCommand(command);

    /// <summary>Raised for each device-TLB invalidation descriptor (types 3 and 8).</summary>
    /// <remarks>
    /// Raised on the thread that wrote IQT, after IQH has moved past the descriptor, with the unit's
    /// register lock held; a handler may call <see cref="Submit"/> (its descriptors run after those
    /// already queued) but must not wait for another thread that writes this unit's registers.
    /// </remarks>
    internal event Action<DeviceTlbInvalidation>? DeviceTlbInvalidated
    {
        add => _invalidationQueue.DeviceTlbInvalidated += value;
        remove => _invalidationQueue.DeviceTlbInvalidated -= value;
    }

    /// <summary>Descriptors processed so far.</summary>
    public long DescriptorsProcessed => _invalidationQueue.DescriptorsProcessed;

    /// <summary>Device-TLB invalidation descriptors processed (with or without PASID).</summary>
    public long DeviceTlbInvalidations => _invalidationQueue.DeviceTlbInvalidations;

    /// <summary>The error that stopped the queue, or <see cref="InvalidationQueueError.None"/>.</summary>
    internal InvalidationQueueError QueueError => _invalidationQueue.Error;

    /// <summary>
    /// Submits descriptors the way Linux's <c>qi_submit_sync</c> does: writes them at IQT, advances
    /// IQT (which processes them), and returns the queue error, if any. Needs QI enabled and IQA set.
    /// </summary>
    /// <remarks>
    /// Any number of descriptors, fed to the ring in pieces as it drains; a bad one stops the queue
    /// with its error returned. Thread-safe; handlers of <see cref="DeviceTlbInvalidated"/>,
    /// <see cref="PageResponse"/> or <see cref="InvalidationEvent"/> may submit too. See
    /// <see cref="InvalidationQueue.Submit"/> for the whole contract.
    /// </remarks>
    /// <returns>The queue error, or <see cref="InvalidationQueueError.None"/> when every descriptor ran.</returns>
    /// <exception cref="InvalidOperationException">IQA_REG is not programmed or lies outside allocated host memory, or GSTS.QIES is clear.</exception>
    internal InvalidationQueueError Submit(params ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        ThrowIfDisposed();
        return _invalidationQueue.Submit(descriptors);
    }

    /// <summary>Programs IQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and sets GCMD.QIE.</summary>
    /// <exception cref="EngineException">EOPNOTSUPP: the unit has no queued invalidation (ECAP.QI = 0).</exception>
    /// <exception cref="ArgumentException">The queue is not 4 KiB aligned, not 2^0..2^7 frames, or not in allocated host memory.</exception>
    public void EnableQueuedInvalidation(ulong queueHpa, int queueSizeOrder = 0, bool wideDescriptors = false) =>
        _invalidationQueue.Enable(queueHpa, queueSizeOrder, wideDescriptors);

    /// <summary>Raised for each page-group response software submits (descriptor type 9): the device's answer.</summary>
    internal event Action<PageGroupResponse>? PageResponse
    {
        add => _pageRequestQueue.PageResponse += value;
        remove => _pageRequestQueue.PageResponse -= value;
    }

    /// <summary>Page requests queued so far.</summary>
    public long PageRequests => _pageRequestQueue.Requests;

    /// <summary>Page requests dropped because the queue was full.</summary>
    public long PageRequestOverflows => _pageRequestQueue.Overflows;

    /// <summary>Programs PQA with a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> and empties it.</summary>
    /// <exception cref="EngineException">EOPNOTSUPP: the unit has no page requests (ECAP.PRS = 0).</exception>
    /// <exception cref="ArgumentException">The queue is not 4 KiB aligned, not 2^0..2^7 frames, or not in allocated host memory.</exception>
    public void EnablePageRequestQueue(ulong queueHpa, int queueSizeOrder = 0) => _pageRequestQueue.Enable(queueHpa, queueSizeOrder);

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
        // The context check is the translator's: resolved as a translation would be, faults recorded as its are.
        var probe = new TranslationRequest(request.SourceId, request.Address, Paging.Access.Read, request.Pasid);
        FaultReason fault = _translator.ResolveProtected(probe, out ResolvedContext context, out bool fpd);
        if (fault == FaultReason.None && (context.Flags & ContextFlags.Scalable) == 0)
            fault = FaultReason.SmTtmLegacyPageRequest;
        else if (fault == FaultReason.None && (context.Flags & ContextFlags.PageRequest) == 0)
            fault = FaultReason.SmPageRequestEnableClear;
        if (fault != FaultReason.None)
        {
            _translator.Fault(probe, fault, context.Did, fpd);
            return PageRequestStatus.Refused;
        }
        return _pageRequestQueue.Enqueue(request);
    }

    /// <summary>
    /// The driver's side: reads every queued page request from PQH to PQT and advances PQH
    /// (clearing PRS.PPR once the queue is empty).
    /// </summary>
    /// <exception cref="InvalidOperationException">Requests are pending in a queue that PQA_REG places outside allocated host memory (a guest moved PQA or PQH under the queue).</exception>
    internal IReadOnlyList<PageRequest> DrainPageRequests()
    {
        ThrowIfDisposed();
        return _pageRequestQueue.Drain();
    }
}
