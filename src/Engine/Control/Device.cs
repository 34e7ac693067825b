using Engine.Iommu;

namespace Engine.Control;

/// <summary>A PCI function (bus/device/function) behind one IOMMU.</summary>
public sealed class Device
{
    internal Device(Platform platform, ushort sourceId, IommuInstance? iommu, DeviceAbilities abilities, string name)
    {
        Platform = platform;
        SourceId = sourceId;
        Iommu = iommu;
        Abilities = abilities;
        Name = name;
        Port = new DevicePort(this, iommu?.Unit, platform.Memory);
    }

    /// <summary>
    /// The device's immutable port: what translation and DMA use on the hot path (unit, source id,
    /// abilities), without going through this control object.
    /// </summary>
    public DevicePort Port { get; }

    /// <summary>The platform it belongs to.</summary>
    public Platform Platform { get; }

    /// <summary>Requester id: bus &lt;&lt; 8 | device &lt;&lt; 3 | function.</summary>
    public ushort SourceId { get; }

    /// <summary>The IOMMU in front of it, or null (no IOMMU: ENODEV for every domain operation).</summary>
    public IommuInstance? Iommu { get; }

    /// <summary>ATS / PRI / PASID.</summary>
    public DeviceAbilities Abilities { get; }

    /// <summary>Name for diagnostics.</summary>
    public string Name { get; }

    /// <summary>The domain it is attached to, or null.</summary>
    public Domain? Domain { get; internal set; }

    /// <summary>Whether PRI (IOPF) is enabled for it (on attach to a fault-capable domain).</summary>
    public bool PageRequestsEnabled { get; internal set; }

    /// <summary>Device-TLB invalidations received (ATS devices).</summary>
    public long DeviceTlbInvalidations => Interlocked.Read(ref _deviceTlbInvalidations);

    private long _deviceTlbInvalidations;

    internal void OnDeviceTlbInvalidation() => Interlocked.Increment(ref _deviceTlbInvalidations);

    /// <summary>Bus:device.function.</summary>
    public override string ToString() => $"{Name} {SourceId >> 8:x2}:{(SourceId >> 3) & 0x1F:x2}.{SourceId & 7}";

    /// <summary>
    /// Translates one DMA as a PRI-capable device would: on a recoverable fault (not present or
    /// write-protected) with page requests enabled, it sends a page request, waits for the page-group
    /// response (served at once when the platform serves page requests immediately) and, on SUCCESS,
    /// retries once. Otherwise the fault stands. After the platform is disposed it answers
    /// <see cref="TranslationStatus.Disposed"/>, as <see cref="Translate"/> does.
    /// </summary>
    public TranslationResult TranslateWithPageRequests(ulong iova, Paging.Access access) =>
        RecoverWithPageRequest(Translate(iova, access), iova, access);

    /// <summary>
    /// What a PRI device does after <paramref name="first"/> faulted: a page request for the page,
    /// then one retry on SUCCESS. Returns <paramref name="first"/> when it cannot recover.
    /// </summary>
    public TranslationResult RecoverWithPageRequest(in TranslationResult first, ulong iova, Paging.Access access) =>
        RecoverWithPageRequest(first, iova, access, out _, out _);

    /// <summary>As the public overload, saying whether a page request went out and whether the device retried.</summary>
    internal TranslationResult RecoverWithPageRequest(in TranslationResult first, ulong iova, Paging.Access access, out bool sent, out bool retried)
    {
        sent = retried = false;
        if (first.IsSuccess || !PageRequestsEnabled || Iommu is null || !IsRecoverable(first.Fault))
            return first;
        ushort group = Platform.NextGroupIndex(Iommu, SourceId);
        int answer = -1;   // the response code, set on whichever thread serves the group
        void OnResponse(PageGroupResponse r)
        {
            if (r.SourceId == SourceId && r.GroupIndex == group)
                Volatile.Write(ref answer, (int)r.Code);
        }
        Iommu.Unit.PageResponse += OnResponse;
        try
        {
            if (Platform.IsDisposed || Iommu.Unit.IsDisposed)
                return TranslationResult.Disposed;
            var request = new PageRequest(SourceId, iova & ~0xFFFUL, (access & Paging.Access.Read) != 0 || access == Paging.Access.Execute,
                (access & Paging.Access.Write) != 0, (access & Paging.Access.Execute) != 0, LastInGroup: true, group);
            if (Iommu.Unit.SubmitPageRequest(request) != PageRequestStatus.Queued)
                return first;
            // Serve until the answer is in. Another thread's serving may have drained this request;
            // serving takes the IOMMU's serving lock, so once this call returns, whoever drained the
            // request has answered it (or this call drained and answered it itself).
            if (Volatile.Read(ref answer) < 0)
                Platform.ServePageRequests(Iommu);
        }
        catch (ObjectDisposedException)
        {
            // The platform went away between the fault and the request: nothing is translated.
            return TranslationResult.Disposed;
        }
        finally
        {
            Iommu.Unit.PageResponse -= OnResponse;
        }
        Interlocked.Increment(ref _pageRequests);
        sent = true;
        retried = Volatile.Read(ref answer) == (int)PageResponseCode.Success;
        return retried ? Translate(iova, access) : first;
    }

    private long _pageRequests;

    /// <summary>Page requests this device sent.</summary>
    public long PageRequests => Interlocked.Read(ref _pageRequests);

    private static bool IsRecoverable(FaultReason fault) =>
        fault is FaultReason.SmSecondLevelPermission or FaultReason.SmRead or FaultReason.SmWrite;

    /// <summary>
    /// DMA: reads guest (or, without an IOMMU, host) memory at <paramref name="iova"/> into
    /// <paramref name="buffer"/> through this device's translation, as <see cref="Dma.DmaTransfer.Read(DevicePort, ulong, Span{byte}, uint, bool)"/> does.
    /// </summary>
    /// <remarks>
    /// IO page faults are recovered from exactly when <see cref="PageRequestsEnabled"/> is true (the
    /// device has PRI and was attached to a fault-capable domain with page requests on), as the device
    /// would on hardware; otherwise a fault stops the transfer and the result says where and why. Use
    /// <see cref="Dma.DmaTransfer"/> to choose otherwise.
    /// </remarks>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">Where the bytes go.</param>
    /// <param name="pasid">PASID, or <see cref="TranslationRequest.NoPasid"/>.</param>
    public Dma.DmaResult DmaRead(ulong iova, Span<byte> buffer, uint pasid = TranslationRequest.NoPasid) =>
        Dma.DmaTransfer.Read(Port, iova, buffer, pasid, pageFaults: true);

    /// <summary>
    /// DMA: writes <paramref name="buffer"/> at <paramref name="iova"/> through this device's
    /// translation, as <see cref="Dma.DmaTransfer.Write(DevicePort, ulong, ReadOnlySpan{byte}, uint, bool)"/> does; page faults as <see cref="DmaRead"/>.
    /// </summary>
    /// <param name="iova">Input address of the first byte.</param>
    /// <param name="buffer">The bytes.</param>
    /// <param name="pasid">PASID, or <see cref="TranslationRequest.NoPasid"/>.</param>
    public Dma.DmaResult DmaWrite(ulong iova, ReadOnlySpan<byte> buffer, uint pasid = TranslationRequest.NoPasid) =>
        Dma.DmaTransfer.Write(Port, iova, buffer, pasid, pageFaults: true);

    /// <summary>Translates one DMA of this device (no page-request handling), as <see cref="DevicePort.Translate"/> does.</summary>
    /// <remarks>
    /// Without an IOMMU the DMA passes through (output = input). Once the platform (or the device's
    /// IOMMU) is disposed, every translation answers <see cref="TranslationStatus.Disposed"/>.
    /// </remarks>
    public TranslationResult Translate(ulong iova, Paging.Access access, uint pasid = TranslationRequest.NoPasid) =>
        Port.Translate(iova, access, pasid);

    /// <summary>Checkpoint: the counters a device keeps.</summary>
    internal (long PageRequests, long DeviceTlbInvalidations) CheckpointCounters
    {
        get => (Interlocked.Read(ref _pageRequests), Interlocked.Read(ref _deviceTlbInvalidations));
        set
        {
            Interlocked.Exchange(ref _pageRequests, value.PageRequests);
            Interlocked.Exchange(ref _deviceTlbInvalidations, value.DeviceTlbInvalidations);
        }
    }
}
