using Engine.Iommu;
using Engine.Memory;

namespace Engine.Control;

/// <summary>
/// One IOMMU as the driver runs it: the hardware unit, its root/context/PASID tables, a domain-id
/// allocator, queued invalidation and the page-request queue, and the cache flushes in the order
/// the spec and Linux use (SPEC.md §2.6, §2.8).
/// </summary>
/// <remarks>
/// After <see cref="Dispose"/> (the platform's, or a direct one) <see cref="DidOf"/> and every
/// control operation that would program or flush the unit answer <see cref="ObjectDisposedException"/>;
/// a detach only does the bookkeeping, since a disposed unit translates nothing. The descriptive
/// properties stay readable.
/// </remarks>
public sealed class IommuInstance : IDisposable
{
    private readonly Lock _lock = new();
    private readonly bool[] _didUsed;
    private readonly Dictionary<Domain, (ushort Did, int Devices)> _domains = [];
    private bool _disposed;

    internal IommuInstance(Platform platform, string name, DmarUnitOptions options, bool scalableModeEnabled)
    {
        Platform = platform;
        Name = name;
        try
        {
            Unit = new DmarUnit(platform.Memory, options with { Name = name });
        }
        catch (ArgumentException e)
        {
            // The reason is for a person: .NET's "(Parameter '…')" suffix names an argument they never passed.
            string reason = e.ParamName is { } param ? e.Message.Replace($" (Parameter '{param}')", "", StringComparison.Ordinal) : e.Message;
            throw new EngineException(Errno.EINVAL, $"{name}: impossible capability registers: {reason}");
        }
        Driver = new DriverView(Unit.Cap, Unit.Ecap, scalableModeEnabled);
        if (Driver.Agaw < 0)
        {
            Unit.Dispose();
            throw new EngineException(Errno.ENODEV, $"{name}: SAGAW 0x{Driver.EffectiveSagaw:x} offers no usable address width; the driver ignores such a unit.");
        }
        ScalableMode = Driver.ScalableMode;
        _didUsed = new bool[Math.Min(Driver.NumberOfDomains, 65536)];
        // DID 0 tags invalid entries in caching mode; in scalable mode DID 1 is FLPT_DEFAULT_DID.
        _didUsed[0] = true;
        if (ScalableMode && _didUsed.Length > 1)
            _didUsed[1] = true;
        // Every frame the unit needs is taken before it is programmed, so host memory running out
        // leaves nothing behind: the unit has not seen a frame yet, and each one goes straight back.
        // The wait-status frame is among them, so no later invalidation has to allocate.
        var frames = new List<ulong>();
        ulong queue = 0, pageRequests = 0;
        try
        {
            Tables = new TranslationTables(platform.Memory, ScalableMode);
            frames.Add(Tables.RootTable);
            if (Unit.Ecap.Qi)
            {
                frames.Add(queue = platform.Memory.AllocateFrame());
                frames.Add(_statusFrame = platform.Memory.AllocateFrame());
            }
            if (Unit.Ecap.Prs && ScalableMode)
                frames.Add(pageRequests = platform.Memory.AllocateFrame());
        }
        catch (Memory.HostMemoryExhaustedException)
        {
            Unit.Dispose();
            foreach (ulong frame in frames)
                platform.Memory.FreeFrame(frame);
            throw;
        }
        if (queue != 0)
            Unit.EnableQueuedInvalidation(queue, 0, wideDescriptors: ScalableMode);
        if (pageRequests != 0)
        {
            Unit.EnablePageRequestQueue(pageRequests);
            Unit.WriteRegister(RegisterOffsets.PageRequestEventControl, 4, 0); // unmask: the driver takes page-request events
        }
        Unit.DeviceTlbInvalidated += OnDeviceTlbInvalidated;
        Unit.SetRootTable(Tables.RootTable, ScalableMode);
        Unit.SetTranslationEnabled(true);
    }

    /// <summary>The platform.</summary>
    public Platform Platform { get; }

    /// <summary>Name (e.g. "dmar0").</summary>
    public string Name { get; }

    /// <summary>The hardware unit.</summary>
    public DmarUnit Unit { get; }

    /// <summary>What the driver derived from CAP/ECAP.</summary>
    public DriverView Driver { get; }

    /// <summary>Whether the driver runs the unit in scalable mode.</summary>
    public bool ScalableMode { get; }

    /// <summary>The unit's translation structures.</summary>
    internal TranslationTables Tables { get; }

    /// <summary>Address width the driver can give a domain here: min(agaw width, MGAW).</summary>
    public int Width => Math.Min(AgawMath.AgawToWidth(Driver.Agaw), Unit.Cap.Mgaw);

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>The DID <paramref name="domain"/> has on this unit, or null when it is not attached here.</summary>
    /// <exception cref="ObjectDisposedException">The IOMMU has been disposed.</exception>
    public ushort? DidOf(Domain domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ThrowIfDisposed();
        return FindDid(domain);
    }

    /// <summary><see cref="DidOf"/> without the disposal check, for teardown paths.</summary>
    internal ushort? FindDid(Domain domain)
    {
        lock (_lock)
            return _domains.TryGetValue(domain, out var d) ? d.Did : null;
    }

    /// <summary>Takes a DID for <paramref name="domain"/> (one per domain per unit) and counts the device.</summary>
    internal ushort AttachDid(Domain domain)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_domains.TryGetValue(domain, out var entry))
            {
                _domains[domain] = (entry.Did, entry.Devices + 1);
                return entry.Did;
            }
            int did = Array.IndexOf(_didUsed, false);
            if (did < 0)
                throw new EngineException(Errno.ENOSPC, $"{Name}: all {_didUsed.Length} domain ids are in use.");
            _didUsed[did] = true;
            _domains[domain] = ((ushort)did, 1);
            return (ushort)did;
        }
    }

    /// <summary>Drops one device of <paramref name="domain"/>; frees the DID with the last one.</summary>
    internal void DetachDid(Domain domain)
    {
        lock (_lock)
        {
            if (!_domains.TryGetValue(domain, out var entry))
                return;
            if (entry.Devices > 1)
            {
                _domains[domain] = (entry.Did, entry.Devices - 1);
                return;
            }
            _domains.Remove(domain);
            _didUsed[entry.Did] = false;
        }
    }

    /// <summary>
    /// Flushes after a context / PASID entry changed for <paramref name="device"/> (SPEC.md §2.6):
    /// PASID-selective PASID-cache (scalable) or device-selective context-cache (legacy), then a
    /// domain-selective IOTLB invalidation, then the device TLB.
    /// </summary>
    internal void FlushAfterEntryChange(Device device, ushort did)
    {
        if (IsDisposed)
            return;   // a disposed unit caches nothing: the flush is done already
        if (Unit.Ecap.Qi)
        {
            var descriptors = new List<InvalidationDescriptor>
            {
                ScalableMode ? InvalidationDescriptor.PasidCache(1, did, 0) : InvalidationDescriptor.ContextCache(3, did, device.SourceId),
                InvalidationDescriptor.Iotlb(2, did),
            };
            if ((device.Abilities & DeviceAbilities.Ats) != 0)
                descriptors.Add(InvalidationDescriptor.DeviceTlb(device.SourceId, (1UL << 63) - 0x1000, sizeBit: true));
            Submit([.. descriptors]);
        }
        else
        {
            Unit.WriteRegister(RegisterOffsets.ContextCommand, 8, 1UL << 63 | 3UL << 61 | (ulong)device.SourceId << 16 | did);
            Unit.WriteRegister(Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | 2UL << 60 | (ulong)did << 32);
        }
    }

    /// <summary>
    /// Page-selective IOTLB invalidation of [<paramref name="address"/>, +<paramref name="size"/>) for
    /// <paramref name="did"/> as <c>iommu_flush_iotlb_psi</c> does: the page count rounded up to a power
    /// of two, AM widened until the aligned block covers the range, domain-selective when the unit
    /// has no PSI or AM would exceed MAMV; IH = 0. Then device-TLB invalidation for ATS devices.
    /// </summary>
    internal void FlushRange(ushort did, ulong address, ulong size, IReadOnlyList<Device> atsDevices)
    {
        if (IsDisposed)
            return;   // a disposed unit caches nothing: the flush is done already
        ulong first = address >> HostMemory.FrameShift;
        ulong last = (address + size - 1) >> HostMemory.FrameShift;
        int am = 0;
        while (am < 52 && (first >> am) != (last >> am))
            am++;
        bool selective = Unit.Cap.Psi && am <= Unit.Cap.Mamv;
        if (Unit.Ecap.Qi)
        {
            // The descriptors and the wait on the stack: every unmap flushes (issue 14: map and unmap allocate nothing).
            int count = atsDevices.Count + 2;
            Span<InvalidationDescriptor> descriptors = count <= MaxStackDescriptors ? stackalloc InvalidationDescriptor[count] : new InvalidationDescriptor[count];
            descriptors[0] = selective ? InvalidationDescriptor.Iotlb(3, did, (first >> am) << am << HostMemory.FrameShift, am) : InvalidationDescriptor.Iotlb(2, did);
            for (int i = 0; i < atsDevices.Count; i++)
                descriptors[1 + i] = InvalidationDescriptor.DeviceTlb(atsDevices[i].SourceId, first << HostMemory.FrameShift);
            SubmitWithWait(descriptors);
            return;
        }
        if (selective)
            Unit.WriteRegister(Unit.Ecap.IotlbRegisterOffset, 8, ((first >> am) << am << HostMemory.FrameShift) | (uint)am);
        Unit.WriteRegister(Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | (selective ? 3UL : 2UL) << 60 | (ulong)did << 32);
    }

    /// <summary>Domain-selective IOTLB invalidation (and device TLBs).</summary>
    internal void FlushDomain(ushort did, IReadOnlyList<Device> atsDevices)
    {
        if (IsDisposed)
            return;   // a disposed unit caches nothing: the flush is done already
        if (!Unit.Ecap.Qi)
        {
            Unit.WriteRegister(Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | 2UL << 60 | (ulong)did << 32);
            return;
        }
        int count = atsDevices.Count + 2;
        Span<InvalidationDescriptor> descriptors = count <= MaxStackDescriptors ? stackalloc InvalidationDescriptor[count] : new InvalidationDescriptor[count];
        descriptors[0] = InvalidationDescriptor.Iotlb(2, did);
        for (int i = 0; i < atsDevices.Count; i++)
            descriptors[1 + i] = InvalidationDescriptor.DeviceTlb(atsDevices[i].SourceId, (1UL << 63) - 0x1000, sizeBit: true);
        SubmitWithWait(descriptors);
    }

    // Flushes put up to this many descriptors (with the wait) on the stack; more go to the heap.
    private const int MaxStackDescriptors = 16;

    /// <summary>Submits descriptors followed by a wait with status write, as <c>qi_submit_sync</c> does.</summary>
    internal void Submit(params ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        int count = descriptors.Length + 1;
        Span<InvalidationDescriptor> withWait = count <= MaxStackDescriptors ? stackalloc InvalidationDescriptor[count] : new InvalidationDescriptor[count];
        descriptors.CopyTo(withWait);
        SubmitWithWait(withWait);
    }

    /// <summary><see cref="Submit"/> of <paramref name="descriptors"/> but its last slot, which this call fills with the wait.</summary>
    private void SubmitWithWait(Span<InvalidationDescriptor> descriptors)
    {
        try
        {
            lock (_lock)
            {
                if (IsDisposed)
                    return;   // as in the flushes: nothing left to invalidate (Dispose takes _lock too)
                if (_statusFrame == 0)
                    throw new EngineException(Errno.EOPNOTSUPP, $"{Name} has no queued invalidation (ECAP.QI = 0).");
                // Tokens only grow. A descriptor handler may submit again on this thread (a page
                // response whose receiver zaps): that nested wait runs after this one and leaves its
                // larger token in the shared status word, which still proves this wait completed.
                uint token = ++_waitToken;
                descriptors[^1] = InvalidationDescriptor.Wait(_statusFrame, token);
                InvalidationQueueError error = Unit.Submit(descriptors);
                if (error != InvalidationQueueError.None || (int)((uint)Platform.Memory.ReadEntry(_statusFrame) - token) < 0)
                    throw new EngineException(Errno.EFAULT, $"{Name}: queued invalidation failed ({error}).");
            }
        }
        finally
        {
            while (_deviceTlbPending.TryDequeue(out ushort sourceId))
                CountDeviceTlbInvalidation(sourceId);
        }
    }

    private ulong _statusFrame;
    private uint _waitToken;
    private readonly System.Collections.Concurrent.ConcurrentQueue<ushort> _deviceTlbPending = new();

    // Raised by the unit inside Submit, with _lock held. The platform's device list takes the
    // control lock, and attach holds the control lock while it takes _lock: looking the device up
    // here would let a KVM flush (this path, under the MMU lock) and an attach deadlock. So the
    // source id waits until Submit lets go of _lock.
    private void OnDeviceTlbInvalidated(DeviceTlbInvalidation invalidation)
    {
        if (_lock.IsHeldByCurrentThread)
            _deviceTlbPending.Enqueue(invalidation.SourceId);
        else
            CountDeviceTlbInvalidation(invalidation.SourceId);
    }

    private void CountDeviceTlbInvalidation(ushort sourceId)
    {
        Device[] devices = Platform.DeviceSnapshot;   // no copy, no lock: every ATS flush counts here
        for (int i = 0; i < devices.Length; i++)
        {
            if (devices[i].Iommu == this && devices[i].SourceId == sourceId)
                devices[i].OnDeviceTlbInvalidation();
        }
    }

    /// <summary>Serializes <see cref="Platform.ServePageRequests"/> on this IOMMU (see there).</summary>
    internal Lock PageRequestServing { get; } = new();

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>Frees the unit's native caches. Idempotent.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            Volatile.Write(ref _disposed, true);
        }
        Unit.DeviceTlbInvalidated -= OnDeviceTlbInvalidated;
        Unit.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({(ScalableMode ? "scalable" : "legacy")} mode, {Width}-bit)";

    /// <summary>Checkpoint: the unit, the driver's tables, DIDs and queue state; <paramref name="indexOf"/> numbers the domains.</summary>
    internal void SaveState(Memory.CheckpointWriter w, Func<Domain, int> indexOf)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            Unit.SaveState(w);
            Tables.SaveState(w);
            w.U64(_statusFrame);
            w.U32(_waitToken);
            w.U32((uint)_didUsed.Length);
            foreach (bool used in _didUsed)
                w.Bool(used);
            w.U32((uint)_domains.Count);
            foreach (var (domain, (did, devices)) in _domains.OrderBy(e => e.Value.Did))
            {
                w.U32((uint)indexOf(domain));
                w.U16(did);
                w.I32(devices);
            }
        }
    }

    /// <summary>Checkpoint: replaces the state that building and attaching set up with the checkpoint's.</summary>
    internal void RestoreState(Memory.CheckpointReader r, IReadOnlyList<Domain> domains)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            Unit.RestoreState(r);
            Tables.RestoreState(r);
            ulong status = r.U64("the queued-invalidation status frame");
            if ((status == 0) != (_statusFrame == 0) || (status & 7) != 0 || (status != 0 && !Platform.Memory.Contains(status, 8)))
                throw r.Fail($"a status frame inside host memory exactly when the unit has queued invalidation, found 0x{status:x}", 8);
            _statusFrame = status;
            _waitToken = r.U32("the last wait-descriptor token");
            int dids = r.Count("domain ids", 1, _didUsed.Length);
            if (dids != _didUsed.Length)
                throw r.Fail($"{_didUsed.Length} domain ids (this unit's ND), found {dids}", 4);
            for (int i = 0; i < dids; i++)
                _didUsed[i] = r.Bool("whether a domain id is in use");
            _domains.Clear();
            int attached = r.Count("attached domains", 10, domains.Count);
            for (int i = 0; i < attached; i++)
            {
                uint index = r.U32("an attached domain's index");
                ushort did = r.U16("its domain id");
                int devices = r.I32("its devices on this unit");
                if (index >= domains.Count || did >= _didUsed.Length || !_didUsed[did] || devices < 1 || !_domains.TryAdd(domains[(int)index], (did, devices)))
                    throw r.Fail($"a distinct domain index below {domains.Count} with a domain id in use and at least one device, found index {index}, DID {did}, {devices} device(s)");
            }
        }
    }
}
