using Engine.Iommu;

namespace Engine.Control;

/// <summary>
/// A translation domain devices attach to: a second-stage table (owned by the driver for a
/// <see cref="PagingDomain"/>, by KVM for a <see cref="KvmDomain"/>) and the devices using it.
/// </summary>
public abstract class Domain : IDisposable
{
    private readonly List<Device> _devices = [];

    private protected Domain(Platform platform, string kind)
    {
        Platform = platform;
        Kind = kind;
    }

    /// <summary>The platform.</summary>
    public Platform Platform { get; }

    /// <summary>"paging" or "kvm".</summary>
    public string Kind { get; }

    /// <summary>Input-address width in bits.</summary>
    public abstract int Width { get; }

    /// <summary>agaw: levels − 2 (2 = 48-bit/4-level, 3 = 57-bit/5-level).</summary>
    public abstract int Agaw { get; }

    /// <summary>HPA of the second-stage root table (pgd).</summary>
    public abstract ulong Pgd { get; }

    /// <summary>Largest leaf the domain may contain: 0 = 4K, 1 = 2M, 2 = 1G (Linux <c>iommu_superpage</c>).</summary>
    public abstract int SuperpageLevel { get; }

    /// <summary>Whether every DMA through the domain snoops (force_snooping).</summary>
    public abstract bool ForceSnooping { get; }

    /// <summary>Whether the domain handles IO page faults (devices with PRI get PRE and page requests are served).</summary>
    public virtual bool FaultCapable => false;

    /// <summary>Aperture: the last input address a device may use.</summary>
    public ulong ApertureEnd => Width >= 64 ? ulong.MaxValue : (1UL << Width) - 1;

    /// <summary>Devices attached now (a snapshot: it does not change when devices attach or detach later).</summary>
    public IReadOnlyList<Device> Devices => Volatile.Read(ref _attached).Devices;

    /// <summary>Whether the domain has been freed: by <see cref="Dispose"/>, or revoked because what it translates through went away (see <see cref="KvmDomain.Revoke"/>).</summary>
    public bool IsFreed { get; private set; }

    // Why the domain was revoked, for the messages of later calls; null when it was not.
    private string? _revokedBecause;

    /// <summary>The IOMMUs the domain is attached to (a snapshot, as <see cref="Devices"/>).</summary>
    public IReadOnlyList<IommuInstance> Iommus => Volatile.Read(ref _attached).Iommus;

    // The attached devices, their IOMMUs and each IOMMU's ATS devices, rebuilt whenever a device
    // attaches or detaches: every unmap and KVM invalidation flushes per IOMMU, and building these
    // lists there allocated about 9.6 KB per DMA command in dma-strict (issue 14: 0 B/op).
    private Attachment _attached = Attachment.None;

    /// <summary>What the flushes of <paramref name="iommu"/> need: the ATS devices attached through it (empty when none).</summary>
    private protected IReadOnlyList<Device> AtsDevicesOf(IommuInstance iommu) => Volatile.Read(ref _attached).AtsDevicesOf(iommu);

    private void RebuildAttachment()
    {
        lock (_devices)
            Volatile.Write(ref _attached, new Attachment([.. _devices]));
    }

    /// <summary>An immutable snapshot of the attachment (see <c>_attached</c>).</summary>
    private sealed class Attachment
    {
        public static readonly Attachment None = new([]);

        private readonly IommuInstance[] _iommus;
        private readonly Device[][] _atsByIommu;

        public Attachment(Device[] devices)
        {
            Devices = Array.AsReadOnly(devices);
            _iommus = [.. devices.Select(d => d.Iommu!).Distinct()];
            Iommus = Array.AsReadOnly(_iommus);
            _atsByIommu = [.. _iommus.Select(i => devices.Where(d => d.Iommu == i && (d.Abilities & DeviceAbilities.Ats) != 0).ToArray())];
        }

        public IReadOnlyList<Device> Devices { get; }

        public IReadOnlyList<IommuInstance> Iommus { get; }

        public IReadOnlyList<Device> AtsDevicesOf(IommuInstance iommu)
        {
            for (int i = 0; i < _iommus.Length; i++)
            {
                if (ReferenceEquals(_iommus[i], iommu))
                    return _atsByIommu[i];
            }
            return [];
        }
    }

    /// <summary>Attaches <paramref name="device"/>: checks it can, takes a DID on its IOMMU, programs its entry and flushes.</summary>
    /// <remarks>
    /// A fault-capable (KVM) domain needs the device to take IO page faults: the series enables IOPF
    /// right after attaching to a KVM HWPT and fails the attach when that fails (patch 16), because
    /// nothing pins guest memory for such a domain. So by default a device that cannot send page
    /// requests through this IOMMU (no PRI, no ATS, or a unit without ECAP.PRS or ECAP.DT) is refused
    /// with ENODEV, the errno <c>intel_iommu_enable_iopf</c> gives, naming what is missing.
    /// <see cref="AttachFlags.AllowWithoutPageRequests"/> attaches it anyway without page requests.
    /// </remarks>
    /// <param name="device">The device to attach.</param>
    /// <param name="flags">Options; see <see cref="AttachFlags"/>.</param>
    /// <exception cref="EngineException">ENODEV without an IOMMU or, on a fault-capable domain, without IO page faults; EBUSY when already attached; EINVAL when incompatible or freed; ENOMEM when host memory runs out.</exception>
    public void Attach(Device device, AttachFlags flags = AttachFlags.None)
    {
        ArgumentNullException.ThrowIfNull(device);
        if ((flags & ~AttachFlags.AllowWithoutPageRequests) != 0)
            throw new ArgumentOutOfRangeException(nameof(flags), flags, "Unknown attach flags.");
        ThrowIfFreed();
        lock (Platform.ControlLock)
        {
            ThrowIfFreed();
            ThrowIfPlatformDisposed();
            IommuInstance iommu = device.Iommu ?? throw new EngineException(Errno.ENODEV, $"{device} has no IOMMU in front of it.");
            ObjectDisposedException.ThrowIf(iommu.IsDisposed, iommu);
            if (device.Domain is not null)
                throw new EngineException(Errno.EBUSY, $"{device} is already attached to a {device.Domain.Kind} domain; detach it first.");
            if (!ReferenceEquals(device.Platform, Platform))
                throw new EngineException(Errno.EINVAL, $"{device} belongs to another platform.");
            try
            {
                PrepareAttach(iommu);
            }
            catch (Memory.HostMemoryExhaustedException e)
            {
                throw new EngineException(Errno.ENOMEM, $"attach {device}: {e.Message}");
            }
            bool pageRequests = false;
            if (FaultCapable)
            {
                List<string> missing = PageRequestBlockers(iommu, device);
                pageRequests = missing.Count == 0;
                if (!pageRequests && (flags & AttachFlags.AllowWithoutPageRequests) == 0)
                    throw new EngineException(Errno.ENODEV,
                        $"{device} cannot take IO page faults through {iommu.Name}, and a {Kind} domain maps guest memory only on demand: {string.Join("; ", missing)}. " +
                        $"Attach with {nameof(AttachFlags)}.{nameof(AttachFlags.AllowWithoutPageRequests)} to use it without page requests (its DMA then faults wherever KVM has not mapped).");
            }
            ushort did = iommu.AttachDid(this);
            try
            {
                Program(iommu, device, did, pageRequests);
                iommu.FlushAfterEntryChange(device, did);
            }
            catch (Memory.HostMemoryExhaustedException e)
            {
                UndoProgram(iommu, device, did);
                throw new EngineException(Errno.ENOMEM, $"attach {device}: host memory ran out ({e.Message}); the device stays detached.");
            }
            catch
            {
                UndoProgram(iommu, device, did);
                throw;
            }
            device.Domain = this;
            // The same decision that set PRE in the context entry: the flag never claims what the unit was not told.
            device.PageRequestsEnabled = pageRequests;
            lock (_devices)
                _devices.Add(device);
            RebuildAttachment();
        }
    }

    /// <summary>Detaches <paramref name="device"/>: its entry is cleared and flushed, and the DID freed with the domain's last device on that IOMMU.</summary>
    /// <remarks>Teardown stays possible: after its IOMMU or the platform was disposed (nothing translates then) only the bookkeeping is done.</remarks>
    /// <exception cref="EngineException">EINVAL when the device is not attached here (a revoked domain has detached its devices already).</exception>
    public void Detach(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (Platform.ControlLock)
        {
            if (!ReferenceEquals(device.Domain, this))
                throw new EngineException(Errno.EINVAL, _revokedBecause is null
                    ? $"{device} is not attached to this domain."
                    : $"{device} is not attached to this domain: the domain was revoked ({_revokedBecause}) and detached its devices then.");
            DetachLocked(device);
        }
    }

    // The entry is cleared and the caches flushed before the DID is given back: a DID reused while
    // the unit still caches this domain's translations under it would hand them to another domain.
    // A disposed unit translates nothing, so only the bookkeeping is left to do there.
    private void DetachLocked(Device device)
    {
        IommuInstance iommu = device.Iommu!;
        if (!iommu.IsDisposed && !Platform.Memory.IsDisposed)
        {
            ushort did = iommu.FindDid(this)!.Value;
            if (iommu.ScalableMode)
                iommu.Tables.ClearPasidEntry(device.SourceId, 0);
            else
                iommu.Tables.ClearContext(device.SourceId);
            iommu.FlushAfterEntryChange(device, did);
        }
        iommu.DetachDid(this);
        device.Domain = null;
        device.PageRequestsEnabled = false;
        lock (_devices)
            _devices.Remove(device);
        RebuildAttachment();
    }

    /// <summary>
    /// Frees the domain because what it translates through is going away: every device is detached
    /// first (entry cleared, caches flushed), so no DMA translates through the domain once this
    /// returns. <see cref="Free"/> is not called: the owner has dropped the domain already.
    /// Caller holds the control lock.
    /// </summary>
    /// <exception cref="AggregateException">Some devices could not be detached (their unit's invalidation failed); they stay attached, the domain is freed.</exception>
    private protected void RevokeLocked(string because)
    {
        _revokedBecause = because;
        List<Exception>? failures = null;
        foreach (Device device in Devices)
        {
            try
            {
                DetachLocked(device);
            }
            catch (Exception e) when (e is EngineException or ObjectDisposedException or InvalidOperationException)
            {
                (failures ??= []).Add(e);
            }
        }
        IsFreed = true;
        if (failures is not null)
            throw new AggregateException($"the {Kind} domain could not detach {failures.Count} device(s) while being revoked ({because}).", failures);
    }

    /// <summary>Checks (and adapts to) <paramref name="iommu"/> before the first device behind it attaches; throws EINVAL when it cannot.</summary>
    private protected abstract void PrepareAttach(IommuInstance iommu);

    // A failed attach may have written the entry already (the PASID entry before its context entry
    // ran out of memory, or a flush that failed): it is cleared and flushed again before the DID goes
    // back, so nothing of the half-made attach can be found or stay cached under a reused DID.
    private void UndoProgram(IommuInstance iommu, Device device, ushort did)
    {
        try
        {
            if (iommu.ScalableMode)
                iommu.Tables.ClearPasidEntry(device.SourceId, 0);
            else
                iommu.Tables.ClearContext(device.SourceId);
            iommu.FlushAfterEntryChange(device, did);
        }
        catch (Exception e) when (e is EngineException or ObjectDisposedException)
        {
            // The unit's invalidation itself fails: keep the DID out of use rather than reuse it
            // under translations the unit may still cache. The original error is what the caller hears.
            return;
        }
        iommu.DetachDid(this);
    }

    /// <summary>
    /// Everything that keeps <paramref name="device"/> from sending page requests through
    /// <paramref name="iommu"/>, as the driver sees it (<c>pri_supported</c> needs ATS, ECAP.PRS and
    /// scalable mode; <c>intel_iommu_enable_iopf</c> needs ATS enabled, hence ECAP.DT); empty when it can.
    /// </summary>
    private static List<string> PageRequestBlockers(IommuInstance iommu, Device device)
    {
        var missing = new List<string>();
        if ((device.Abilities & DeviceAbilities.Pri) == 0)
            missing.Add("the device has no PRI (Page Request Interface)");
        if ((device.Abilities & DeviceAbilities.Ats) == 0)
            missing.Add("the device has no ATS, and PRI works only with ATS enabled");
        if (!iommu.Unit.Ecap.Prs)
            missing.Add($"{iommu.Name} does not support page requests (ECAP.PRS = 0)");
        if (!iommu.Unit.Ecap.DeviceTlb)
            missing.Add($"{iommu.Name} has no device-TLB support (ECAP.DT = 0), so ATS cannot be enabled");
        if (!iommu.ScalableMode)
            missing.Add($"{iommu.Name} is not run in scalable mode, where page requests are taken");
        return missing;
    }

    /// <summary>Writes the device's context (legacy) or RID_PASID PASID entry (scalable) for this domain.</summary>
    private protected virtual void Program(IommuInstance iommu, Device device, ushort did, bool pageRequests)
    {
        bool ats = (device.Abilities & DeviceAbilities.Ats) != 0 && iommu.Unit.Ecap.DeviceTlb;
        if (iommu.ScalableMode)
        {
            iommu.Tables.SetPasidEntry(device.SourceId, 0, PasidEntry.SecondLevel(Pgd, Agaw, did, pgsnp: ForceSnooping, pwsnp: iommu.Unit.Ecap.Smpwc, ssade: false));
            iommu.Tables.SetScalableContext(device.SourceId, ridPasid: 0, pasidEnable: (device.Abilities & DeviceAbilities.Pasid) != 0,
                pageRequestEnable: pageRequests, deviceTlbEnable: ats);
        }
        else
        {
            iommu.Tables.SetContext(device.SourceId, ContextEntry.Create(Pgd, Agaw, did,
                ats ? ContextEntry.TranslationTypeAll : ContextEntry.TranslationTypeUntranslated));
        }
    }

    // The platform keeps its disposed flag to itself; its host memory goes last in Platform.Dispose,
    // and nothing a domain does means anything once it is gone.
    private protected void ThrowIfPlatformDisposed() => ObjectDisposedException.ThrowIf(Platform.IsDisposed || Platform.Memory.IsDisposed, Platform);

    private protected void ThrowIfFreed()
    {
        if (IsFreed)
            throw new EngineException(Errno.EINVAL, _revokedBecause is null
                ? $"the {Kind} domain has been freed."
                : $"the {Kind} domain was revoked: {_revokedBecause}.");
    }

    /// <summary>Frees the domain. Devices still attached are refused (EBUSY). Idempotent; after the platform was disposed only the bookkeeping is done.</summary>
    /// <remarks>Every later call answers: attach and the domain's operations EINVAL ("freed"), detach EINVAL (not attached).</remarks>
    public void Dispose()
    {
        lock (Platform.ControlLock)
        {
            if (IsFreed)
                return;
            if (Devices.Count > 0)
                throw new EngineException(Errno.EBUSY, $"the {Kind} domain still has {Devices.Count} device(s) attached.");
            IsFreed = true;
            Free();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the domain owns. Runs under the control lock, also after host memory was disposed.</summary>
    private protected abstract void Free();
}
