using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Control;

/// <summary>
/// A KVM domain (IOMMU_DOMAIN_KVM, the seed patch): its second-stage table is KVM's exported EPT.
/// The driver never maps, unmaps or frees it; KVM tells the domain which ranges to invalidate, and
/// IO page faults are served by KVM's fault op.
/// </summary>
public sealed class KvmDomain : Domain, ITdpImporter
{
    private readonly KvmTdpFd _tdp;
    private readonly ExportedTdp _meta;
    private long _invalidations;
    private long _pageRequestsServed;
    private long _pageRequestsFailed;

    internal KvmDomain(Platform platform, KvmTdpFd tdp, ExportedTdp metadata) : base(platform, "kvm")
    {
        // The root HPA means something only in the host memory the IOMMUs walk.
        if (!ReferenceEquals(tdp.Vm.Memory, platform.Memory))
            throw new EngineException(Errno.EINVAL, $"the exported TDP of {tdp.Vm.Name} lives in another host memory than this platform's; its root HPA means nothing to these IOMMUs.");
        _tdp = tdp;
        _meta = metadata;
        Width = KvmDomainCompatibility.WidthOfLevel(_meta.Level);
        Agaw = AgawMath.WidthToAgaw(AgawMath.GuestWidthToAdjustWidth(Width));
        SuperpageLevel = _meta.MaxHugePageLevel - 1;
        tdp.RegisterImporter(this);
    }

    /// <inheritdoc/>
    public override int Width { get; }

    /// <inheritdoc/>
    public override int Agaw { get; }

    /// <summary>KVM's root: constant for the export's lifetime.</summary>
    public override ulong Pgd => _meta.RootHpa;

    /// <inheritdoc/>
    public override int SuperpageLevel { get; }

    /// <summary>Forced on: KVM cannot honour guest memory types without a vCPU.</summary>
    public override bool ForceSnooping => true;

    /// <summary>Paging-structure coherency, forced on (KVM never flushes its tables from the CPU caches).</summary>
    public bool IommuCoherency => true;

    /// <summary>Always off for a KVM domain.</summary>
    public bool NestedParent => false;

    /// <summary>Always off for a KVM domain.</summary>
    public bool DirtyTracking => false;

    /// <summary>0: the domain has no map/unmap, so no page size is offered.</summary>
    public ulong PageSizeBitmap => 0;

    /// <summary>Largest address a device may use: 2^width − 1.</summary>
    public ulong MaxAddress => ApertureEnd;

    /// <inheritdoc/>
    public override bool FaultCapable => true;

    /// <summary>The metadata the domain was built from.</summary>
    internal ExportedTdp Metadata => _meta;

    /// <summary>The exported TDP.</summary>
    public KvmTdpFd Tdp => _tdp;

    /// <summary>Invalidations KVM asked for.</summary>
    public long Invalidations => Interlocked.Read(ref _invalidations);

    /// <summary>Page requests served with SUCCESS.</summary>
    public long PageRequestsServed => Interlocked.Read(ref _pageRequestsServed);

    /// <summary>Page requests answered FAILURE or INVALID.</summary>
    public long PageRequestsFailed => Interlocked.Read(ref _pageRequestsFailed);

    /// <summary>Whether KVM revoked the domain because its export ended (see <see cref="Revoke"/>); <see cref="Domain.IsFreed"/> is then true too.</summary>
    public bool IsRevoked { get; private set; }

    /// <summary>Refused: a KVM domain has no map operation (page-size bitmap 0); KVM owns the mappings.</summary>
    public void Map(ulong iova, ulong hpa, ulong size, Access permissions) =>
        throw new EngineException(Errno.EOPNOTSUPP, $"a KVM domain cannot be mapped (page-size bitmap 0): KVM owns its mappings; change them through the VM (IOVA 0x{iova:x}, HPA 0x{hpa:x}, size 0x{size:x}, {permissions}).");

    /// <summary>Refused: a KVM domain has no unmap operation.</summary>
    public ulong Unmap(ulong iova, ulong size) =>
        throw new EngineException(Errno.EOPNOTSUPP, $"a KVM domain cannot be unmapped (page-size bitmap 0): KVM owns its mappings (IOVA 0x{iova:x}, size 0x{size:x}).");

    /// <summary>Refused: a KVM domain is attached only through RID_PASID (no set_dev_pasid).</summary>
    public void AttachPasid(Device device, uint pasid) =>
        throw new EngineException(Errno.EOPNOTSUPP, $"a KVM domain cannot be attached to PASID {pasid} of {device}: only requests without PASID (RID_PASID) are supported.");

    /// <summary>Refused: dirty tracking is off for KVM domains.</summary>
    public void SetDirtyTracking(bool enable) =>
        throw new EngineException(Errno.EOPNOTSUPP, $"a KVM domain does not track dirty pages (asked to turn it {(enable ? "on" : "off")}); KVM's dirty log does.");

    private protected override void PrepareAttach(IommuInstance iommu)
    {
        IReadOnlyList<string> reasons = KvmDomainCompatibility.Check(iommu.Driver, _meta);
        if (reasons.Count > 0)
            throw new EngineException(Errno.EINVAL, $"{iommu.Name} cannot carry this KVM domain: {string.Join("; ", reasons)}.");
    }

    /// <summary>
    /// KVM's flush notification (<c>cache_invalidate_kvm</c>): a range becomes a page-selective
    /// invalidation on every unit the domain is attached to (AM rounded up; domain-selective without
    /// PSI or beyond MAMV; IH = 0) and device-TLB invalidations for ATS devices; (0, all) is
    /// domain-selective. A range not 4 KiB aligned is widened to page bounds — the RFC drops it.
    /// </summary>
    /// <remarks>A freed (or revoked) domain caches nothing, so the call does nothing there.</remarks>
    public void Invalidate(ulong gpa, ulong size)
    {
        if (IsFreed)
            return;
        Interlocked.Increment(ref _invalidations);
        IReadOnlyList<IommuInstance> iommus = Iommus;
        for (int i = 0; i < iommus.Count; i++)   // indexed: a foreach over the interface allocates its enumerator
        {
            IommuInstance iommu = iommus[i];
            ushort? did = iommu.IsDisposed ? null : iommu.FindDid(this);
            if (did is null)
                continue;
            IReadOnlyList<Device> ats = AtsDevicesOf(iommu);
            if (gpa == 0 && size == ExportedTdp.InvalidateAll)
            {
                iommu.FlushDomain(did.Value, ats);
                continue;
            }
            ulong start = gpa & ~(ulong)(HostMemory.FrameSize - 1);
            ulong end = gpa + size < gpa ? ulong.MaxValue : (gpa + size + HostMemory.FrameSize - 1) & ~(ulong)(HostMemory.FrameSize - 1);
            if (size == 0 || end <= start)
                continue;
            iommu.FlushRange(did.Value, start, end - start, ats);
        }
    }

    /// <summary>
    /// Serves one page group (the IOPF handler of patch 15): KVM's fault op for each request, in
    /// order, stopping at the first failure (errors are sticky); one response for the group:
    /// SUCCESS, FAILURE when KVM failed, INVALID when the request makes no sense.
    /// </summary>
    internal PageResponseCode ServePageGroup(IReadOnlyList<PageRequest> group)
    {
        ArgumentNullException.ThrowIfNull(group);
        PageResponseCode code = PageResponseCode.Success;
        foreach (PageRequest request in group)
        {
            Access access = (request.Read ? Access.Read : 0) | (request.Write ? Access.Write : 0) | (request.Execute ? Access.Execute : 0);
            if (access == Access.None || request.Address > MaxAddress || IsFreed)
            {
                code = PageResponseCode.Invalid;
                break;
            }
            TdpFaultResult result = _tdp.FaultForImporter(request.Address >> HostMemory.FrameShift, access);
            if (result != TdpFaultResult.Fixed)
            {
                // A closed export is a missing HWPT to patch 15: INVALID. Never an exception here:
                // this runs inside the device's DMA when page requests are served at once.
                code = result == TdpFaultResult.ExportClosed ? PageResponseCode.Invalid : PageResponseCode.Failure;
                break;
            }
        }
        if (code == PageResponseCode.Success)
            Interlocked.Increment(ref _pageRequestsServed);
        else
            Interlocked.Increment(ref _pageRequestsFailed);
        return code;
    }

    /// <summary>
    /// KVM ends the export this domain imports — its <see cref="Vm"/> is being disposed or the
    /// <see cref="KvmTdpFd"/> closed — and frees the tables right after this returns. Every attached
    /// device is detached as <see cref="Domain.Detach"/> does (its RID_PASID entry cleared; PASID
    /// cache, IOTLB and device TLB flushed), so from then on every translation and DMA through it
    /// faults with the unit's answer for a missing entry (scalable mode: <see cref="FaultReason.SmPasidEntryNotPresent"/>,
    /// 0x59), its page requests get no domain (INVALID), and it can be attached to another domain.
    /// The domain is freed (<see cref="Domain.IsFreed"/>, <see cref="IsRevoked"/>): attaching answers
    /// EINVAL; <see cref="Domain.Dispose"/> does nothing more. Called by KVM; idempotent.
    /// </summary>
    /// <remarks>
    /// The series never gets here: the TDP FD holds its VM, and IOMMUFD holds the TDP FD until the
    /// HWPT is destroyed (free the domain, unregister the importer, put the FD). Revoking does the
    /// same steps in the same order from KVM's side, so a disposed VM's frames can be reused safely.
    /// </remarks>
    /// <exception cref="AggregateException">A device could not be detached (its unit's invalidation failed); KVM then keeps its tables.</exception>
    public void Revoke()
    {
        lock (Platform.ControlLock)
        {
            if (IsFreed)
                return;
            IsRevoked = true;
            RevokeLocked($"the TDP export of {_tdp.Vm.Name} ended (the VM was disposed or the TDP FD closed)");
        }
    }

    /// <summary>Unregisters from KVM; KVM's tables are left exactly as they are.</summary>
    private protected override void Free() => _tdp.UnregisterImporter(this);

    /// <summary>Checkpoint: the counters a KVM domain keeps.</summary>
    internal (long Invalidations, long Served, long Failed) CheckpointCounters
    {
        get => (Interlocked.Read(ref _invalidations), Interlocked.Read(ref _pageRequestsServed), Interlocked.Read(ref _pageRequestsFailed));
        set
        {
            Interlocked.Exchange(ref _invalidations, value.Invalidations);
            Interlocked.Exchange(ref _pageRequestsServed, value.Served);
            Interlocked.Exchange(ref _pageRequestsFailed, value.Failed);
        }
    }
}
