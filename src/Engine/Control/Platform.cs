using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;

namespace Engine.Control;

/// <summary>
/// The entry object: host memory, VMs, IOMMUs and devices, and the driver / IOMMUFD-like control
/// operations over them (hw_info, paging and KVM domains, attach and detach). Several platforms may
/// live in one process. Control operations serialize on one lock; translation never takes it.
/// </summary>
public sealed partial class Platform : IDisposable
{
    private readonly List<IommuInstance> _iommus = [];
    private readonly List<Device> _devices = [];
    private readonly List<Vm> _vms = [];
    private readonly Dictionary<(IommuInstance, ushort), ushort> _groupIndex = [];
    private bool _disposed;

    /// <summary>Creates a platform with its own host memory.</summary>
    public Platform(PlatformOptions? options = null)
    {
        Options = options ?? new PlatformOptions();
        Memory = new HostMemory(Options.Memory);
    }

    /// <summary>How it was built.</summary>
    public PlatformOptions Options { get; }

    /// <summary>Host memory.</summary>
    public HostMemory Memory { get; }

    /// <summary>The IOMMUs.</summary>
    public IReadOnlyList<IommuInstance> Iommus
    {
        get
        {
            lock (ControlLock)
                return [.. _iommus];
        }
    }

    // The devices as an array rebuilt on each add (devices are never removed), read without the control
    // lock or a copy by the device-TLB counting of every flush (issue 14: map and unmap allocate nothing).
    private Device[] _deviceSnapshot = [];

    /// <summary>The devices added so far, as a snapshot array the caller must not change.</summary>
    internal Device[] DeviceSnapshot => Volatile.Read(ref _deviceSnapshot);

    /// <summary>The devices.</summary>
    public IReadOnlyList<Device> Devices
    {
        get
        {
            lock (ControlLock)
                return [.. _devices];
        }
    }

    internal Lock ControlLock { get; } = new();

    /// <summary>The VMs created here (disposed ones included), in creation order.</summary>
    internal IReadOnlyList<Vm> Vms
    {
        get
        {
            lock (ControlLock)
                return [.. _vms];
        }
    }

    /// <summary>
    /// Brings your own RAM: registers memory this process owns as host memory at
    /// [<paramref name="hpa"/>, <paramref name="hpa"/> + <paramref name="size"/>), with no copy. Root,
    /// context and second-level tables, invalidation and page-request queues, and DMA buffers placed
    /// there (by the embedder or its simulated guest) are read and written in place; translations
    /// whose tables live there are walked without any callback. Engine never allocates from it, frees
    /// it or moves it: keep it mapped until this platform is disposed. An HPA outside every region is
    /// the spec's fault, never an access violation.
    /// </summary>
    /// <param name="hpa">Host-physical address of the first byte; 4 KiB aligned.</param>
    /// <param name="host">The memory in this process; 4 KiB aligned.</param>
    /// <param name="size">Bytes; a non-zero multiple of 4 KiB.</param>
    /// <exception cref="ArgumentException">Null, unaligned, empty, wrapping or wider than the host address width.</exception>
    /// <exception cref="EngineException"><see cref="Errno.EEXIST"/> when the range (by HPA or by host address) overlaps Engine's region or a region added before.</exception>
    /// <exception cref="ObjectDisposedException">The platform is disposed.</exception>
    public void AddRam(ulong hpa, nint host, ulong size)
    {
        lock (ControlLock)
        {
            ThrowIfDisposed();
            Memory.AddEmbedderRegion(hpa, host, size);
        }
    }

    /// <summary>Adds an IOMMU with these registers (the driver takes it over: tables, QI, page requests, TE).</summary>
    /// <exception cref="EngineException">ENODEV when the unit offers no usable address width; EEXIST for a duplicate name.</exception>
    public IommuInstance AddIommu(string name, CapabilityRegister cap, ExtendedCapabilityRegister ecap) =>
        AddIommu(name, new DmarUnitOptions { Cap = cap, Ecap = ecap });

    /// <summary>Adds an IOMMU built with <paramref name="options"/> (IOTLB size, SIMD, fault styles).</summary>
    /// <exception cref="EngineException">ENODEV when the unit offers no usable address width; EEXIST for a duplicate name; EINVAL for impossible registers.</exception>
    public IommuInstance AddIommu(string name, DmarUnitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        lock (ControlLock)
        {
            ThrowIfDisposed();
            if (_iommus.Any(i => i.Name == name))
                throw new EngineException(Errno.EEXIST, $"an IOMMU called '{name}' already exists.");
            IommuInstance iommu;
            try
            {
                iommu = new IommuInstance(this, name, options.BatchWalker is null && Options.BatchWalker is not null ? options with { BatchWalker = Options.BatchWalker } : options,
                    Options.ScalableModeEnabled);
            }
            catch (HostMemoryExhaustedException e)
            {
                throw new EngineException(Errno.ENOMEM, $"{name}: {e.Message}");
            }
            if (Options.ServePageRequestsImmediately)
                iommu.Unit.PageRequestEvent += () => ServePageRequests(iommu);
            _iommus.Add(iommu);
            return iommu;
        }
    }

    /// <summary>Adds an IOMMU from a preset.</summary>
    public IommuInstance AddIommu(string name, IommuPreset preset)
    {
        ArgumentNullException.ThrowIfNull(preset);
        return AddIommu(name, preset.Cap, preset.Ecap);
    }

    /// <summary>Adds a device at PCI <paramref name="bus"/>:<paramref name="device"/>.<paramref name="function"/> behind <paramref name="iommu"/> (null: no IOMMU).</summary>
    /// <exception cref="ArgumentOutOfRangeException">bus is not 0..255, device 0..31, or function 0..7.</exception>
    /// <exception cref="EngineException">EEXIST when that IOMMU already has a device at that id; EINVAL for an IOMMU of another platform.</exception>
    public Device AddDevice(string name, int bus, int device, int function, IommuInstance? iommu, DeviceAbilities abilities = DeviceAbilities.None) =>
        AddDevice(name, TranslationRequest.Bdf(bus, device, function), iommu, abilities);

    /// <summary>Adds a device at <paramref name="sourceId"/> (see <see cref="TranslationRequest.Bdf"/>) behind <paramref name="iommu"/> (null: no IOMMU).</summary>
    /// <exception cref="EngineException">EEXIST when that IOMMU already has a device at that id; EINVAL for an IOMMU of another platform.</exception>
    public Device AddDevice(string name, ushort sourceId, IommuInstance? iommu, DeviceAbilities abilities = DeviceAbilities.None)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        lock (ControlLock)
        {
            ThrowIfDisposed();
            if (iommu is not null && !ReferenceEquals(iommu.Platform, this))
                throw new EngineException(Errno.EINVAL, $"{iommu.Name} belongs to another platform.");
            if (_devices.Any(d => d.Iommu == iommu && d.SourceId == sourceId))
                throw new EngineException(Errno.EEXIST, $"{iommu?.Name ?? "no IOMMU"} already has a device at {sourceId >> 8:x2}:{(sourceId >> 3) & 0x1F:x2}.{sourceId & 7}.");
            var device = new Device(this, sourceId, iommu, abilities, name);
            _devices.Add(device);
            Volatile.Write(ref _deviceSnapshot, [.. _devices]);
            return device;
        }
    }

    /// <summary>Creates a VM in this platform's host memory.</summary>
    public Vm CreateVm(VmOptions? options = null)
    {
        lock (ControlLock)
        {
            ThrowIfDisposed();
            var vm = new Vm(Memory, options);
            _vms.Add(vm);
            return vm;
        }
    }

    /// <summary>hw_info: the capabilities of the IOMMU in front of <paramref name="device"/>.</summary>
    /// <exception cref="EngineException">ENODEV when the device has no IOMMU.</exception>
    public DriverView HwInfo(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ThrowIfDisposed();
        return (device.Iommu ?? throw new EngineException(Errno.ENODEV, $"{device} has no IOMMU in front of it.")).Driver;
    }

    /// <summary>Allocates a paging domain (driver-owned tables). With a device, that device's IOMMU must exist.</summary>
    public PagingDomain AllocatePagingDomain(Device? device = null, DomainAllocFlags flags = DomainAllocFlags.None)
    {
        lock (ControlLock)
        {
            ThrowIfDisposed();
            if (device is not null && device.Iommu is null)
                throw new EngineException(Errno.ENODEV, $"{device} has no IOMMU in front of it.");
            if ((flags & DomainAllocFlags.DirtyTracking) != 0 && device?.Iommu is { } i && !i.Driver.SsadsSupported)
                throw new EngineException(Errno.EOPNOTSUPP, $"{i.Name} has no second-stage A/D support (SLADS) for dirty tracking.");
            if ((flags & DomainAllocFlags.NestParent) != 0 && device?.Iommu is { } n && !n.Driver.NestedSupported)
                throw new EngineException(Errno.EOPNOTSUPP, $"{n.Name} does not support nested translation (ECAP.NEST).");
            try
            {
                return new PagingDomain(this);
            }
            catch (HostMemoryExhaustedException e)
            {
                throw new EngineException(Errno.ENOMEM, $"paging domain: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Allocates a KVM domain for <paramref name="device"/> from KVM's exported TDP, checking in the
    /// seed's order: no IOMMU → ENODEV; the feature off → EOPNOTSUPP; nest parent → EOPNOTSUPP;
    /// dirty tracking asked for → EOPNOTSUPP (the RFC silently ignores that flag);
    /// metadata missing or not EPT → EINVAL; level not 4 or 5 → EOPNOTSUPP; KVM's must-be-zero masks
    /// without bit 11 → EOPNOTSUPP; an incompatible IOMMU → EOPNOTSUPP (every failing condition named).
    /// </summary>
    /// <param name="device">The device whose IOMMU the domain is checked against.</param>
    /// <param name="tdp">The exported TDP (KVM's TDP FD).</param>
    /// <param name="flags">Allocation flags.</param>
    public KvmDomain AllocateKvmDomain(Device device, KvmTdpFd? tdp, DomainAllocFlags flags = DomainAllocFlags.None) =>
        AllocateKvmDomain(device, tdp, flags, metadata: null);

    /// <summary>
    /// Allocates a KVM domain for <paramref name="device"/> from KVM's exported TDP, checking in the
    /// seed's order: no IOMMU → ENODEV; the feature off → EOPNOTSUPP; nest parent → EOPNOTSUPP;
    /// dirty tracking asked for → EOPNOTSUPP (the RFC silently ignores that flag);
    /// metadata missing or not EPT → EINVAL; level not 4 or 5 → EOPNOTSUPP; KVM's must-be-zero masks
    /// without bit 11 → EOPNOTSUPP; an incompatible IOMMU → EOPNOTSUPP (every failing condition named).
    /// </summary>
    /// <param name="device">The device whose IOMMU the domain is checked against.</param>
    /// <param name="tdp">The exported TDP (KVM's TDP FD).</param>
    /// <param name="flags">Allocation flags.</param>
    /// <param name="metadata">The metadata to use instead of <c>tdp.Metadata</c> (what <c>get_metadata</c> returned); null uses the TDP's.</param>
    internal KvmDomain AllocateKvmDomain(Device device, KvmTdpFd? tdp, DomainAllocFlags flags, ExportedTdp? metadata)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (ControlLock)
        {
            ThrowIfDisposed();
            IommuInstance iommu = device.Iommu ?? throw new EngineException(Errno.ENODEV, $"{device} has no IOMMU in front of it.");
            if (!Options.KvmDomainSupport)
                throw new EngineException(Errno.EOPNOTSUPP, "KVM domains are not supported: the feature (CONFIG_INTEL_IOMMU_KVM) is switched off.");
            if ((flags & DomainAllocFlags.NestParent) != 0)
                throw new EngineException(Errno.EOPNOTSUPP, "a KVM domain does not work as a nesting parent.");
            // The RFC ignores this flag and leaves dirty tracking off; asking for it is refused here.
            if ((flags & DomainAllocFlags.DirtyTracking) != 0)
                throw new EngineException(Errno.EOPNOTSUPP, "a KVM domain does not track dirty pages (KVM's dirty log does); IOMMU_HWPT_ALLOC_DIRTY_TRACKING is refused.");
            ExportedTdp? meta = metadata ?? tdp?.Metadata;
            if (tdp is null || meta is null)
                throw new EngineException(Errno.EINVAL, "no exported TDP metadata was given.");
            if (meta.Type != TdpType.Ept)
                throw new EngineException(Errno.EINVAL, $"the exported TDP is of type {meta.Type} ({(int)meta.Type}), not EPT (1).");
            if (meta.Level is not (4 or 5))
                throw new EngineException(Errno.EOPNOTSUPP, $"the exported TDP has {meta.Level} levels; a KVM domain needs 4 or 5.");
            if (!meta.RsvdBitsMask.AllContain(Paging.EptEntry.Bit11))
                throw new EngineException(Errno.EOPNOTSUPP, "KVM's must-be-zero masks do not reserve bit 11 at every level, so KVM may set it; to VT-d bit 11 is SNP or reserved.");
            IReadOnlyList<string> reasons = KvmDomainCompatibility.Check(iommu.Driver, meta);
            if (reasons.Count > 0)
                throw new KvmDomainRefusedException(Errno.EOPNOTSUPP, $"{iommu.Name} cannot carry a KVM domain: {string.Join("; ", reasons)}.", reasons);
            return new KvmDomain(this, tdp, meta);
        }
    }

    /// <summary>
    /// Allocates a KVM domain for <paramref name="device"/> from <paramref name="tdp"/> and attaches
    /// <paramref name="device"/> to it: <see cref="AllocateKvmDomain(Device, KvmTdpFd?, DomainAllocFlags)"/> then <see cref="Domain.Attach"/>,
    /// without naming the device twice. Attach more devices with <see cref="Domain.Attach"/>.
    /// </summary>
    /// <remarks>All or nothing: when the attach is refused, the domain is freed before the exception leaves.</remarks>
    /// <param name="device">The device whose IOMMU the domain is checked against, and which is attached.</param>
    /// <param name="tdp">The exported TDP (KVM's TDP FD).</param>
    /// <param name="attachFlags">Options of the attach; see <see cref="AttachFlags"/>.</param>
    /// <exception cref="EngineException">Every refusal of <see cref="AllocateKvmDomain(Device, KvmTdpFd?, DomainAllocFlags)"/> and of <see cref="Domain.Attach"/>.</exception>
    public KvmDomain AttachKvmDomain(Device device, KvmTdpFd tdp, AttachFlags attachFlags = AttachFlags.None)
    {
        KvmDomain domain = AllocateKvmDomain(device, tdp);
        try
        {
            domain.Attach(device, attachFlags);
        }
        catch
        {
            domain.Dispose();
            throw;
        }
        return domain;
    }

    /// <summary>
    /// The IOPF path: drains <paramref name="iommu"/>'s page-request queue, hands each page group to
    /// the requester's KVM domain, and answers with one page-group response per group (INVALID when
    /// the requester has no fault-capable domain).
    /// </summary>
    /// <returns>Groups answered.</returns>
    /// <exception cref="ObjectDisposedException">The platform is disposed.</exception>
    public int ServePageRequests(IommuInstance iommu)
    {
        ArgumentNullException.ThrowIfNull(iommu);
        ThrowIfDisposed();
        // One server at a time per IOMMU, and a serving call ends only after it answered every group
        // it drained: a device whose request another thread drained waits here for that answer
        // (Device.RecoverWithPageRequest). Outermost lock: taken with no other lock held.
        lock (iommu.PageRequestServing)
            return ServePageRequestsLocked(iommu);
    }

    private int ServePageRequestsLocked(IommuInstance iommu)
    {
        IReadOnlyList<PageRequest> requests = iommu.Unit.DrainPageRequests();
        var pending = new Dictionary<(ushort Sid, ushort Group), List<PageRequest>>();
        int answered = 0;
        foreach (PageRequest request in requests)
        {
            var key = (request.SourceId, request.GroupIndex);
            if (!pending.TryGetValue(key, out var group))
                pending[key] = group = [];
            group.Add(request);
            if (!request.LastInGroup)
                continue;
            pending.Remove(key);
            Device? device = Devices.FirstOrDefault(d => d.Iommu == iommu && d.SourceId == request.SourceId);
            PageResponseCode code = device?.Domain is KvmDomain kvm && device.PageRequestsEnabled
                ? kvm.ServePageGroup(group)
                : PageResponseCode.Invalid;
            iommu.Submit(new PageGroupResponse(request.SourceId, request.GroupIndex, code, true, request.Pasid).ToDescriptor());
            answered++;
        }
        return answered;
    }

    internal ushort NextGroupIndex(IommuInstance iommu, ushort sourceId)
    {
        lock (_groupIndex)
        {
            ushort next = (ushort)((_groupIndex.GetValueOrDefault((iommu, sourceId)) + 1) & 0x1FF);
            _groupIndex[(iommu, sourceId)] = next;
            return next;
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);

    /// <summary>
    /// Tears everything down: the IOMMUs first (so no device translates through a table that is about
    /// to go), then the VMs, then host memory.
    /// </summary>
    /// <remarks>
    /// Afterwards every translation of its devices answers <see cref="TranslationStatus.Disposed"/>
    /// (devices without an IOMMU too: their DMA would land in freed host memory), DMA moves nothing,
    /// and every control call throws <see cref="ObjectDisposedException"/>. A thread still translating
    /// or moving data while this runs finishes safely: walks and copies run inside the host memory's
    /// epochs, which <see cref="HostMemory.Dispose"/> waits out before it unmaps anything.
    /// </remarks>
    public void Dispose()
    {
        lock (ControlLock)
        {
            if (_disposed)
                return;
            Volatile.Write(ref _disposed, true);
        }
        // Outside the control lock: a VM's teardown takes KVM's MMU lock, and KVM's flushes take the
        // MMU lock before the control lock. Each step runs even if one before it failed.
        var failures = new List<Exception>();
        foreach (IommuInstance iommu in _iommus)
            Try(iommu.Dispose, failures);
        foreach (Vm vm in _vms)
            Try(vm.Dispose, failures);
        Try(Memory.Dispose, failures);
        if (failures.Count > 0)
            throw new AggregateException("Platform.Dispose: some parts could not be torn down; the rest was.", failures);
    }

    private static void Try(Action step, List<Exception> failures)
    {
        try
        {
            step();
        }
        catch (Exception e) when (e is InvalidOperationException or EngineException)
        {
            failures.Add(e);
        }
    }
}

/// <summary>A KVM-domain refusal for an incompatible IOMMU, carrying every failing condition.</summary>
public sealed class KvmDomainRefusedException(Errno errno, string message, IReadOnlyList<string> reasons) : EngineException(errno, message)
{
    /// <summary>Every failing condition.</summary>
    public IReadOnlyList<string> Reasons { get; } = reasons;
}
