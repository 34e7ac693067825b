using System.Runtime.CompilerServices;
using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>
/// The platform a trace header describes, built in the header's order, and the code that applies
/// one record to it. Indices in records are indices into the header's lists.
/// </summary>
public sealed class ReplayRig : IDisposable
{
    private readonly Device[] _devices;
    private readonly DmarUnit?[] _units;
    private readonly ushort[] _sids;
    private readonly IommuInstance[] _iommus;
    private readonly Vm[] _vms;
    private readonly KvmTdpFd?[] _exports;
    private readonly Domain[] _domains;
    private readonly int _pageRequestsPerPage;

    private ReplayRig(Platform platform, TracePlatform description, int? iotlbSets)
    {
        Platform = platform;
        Description = description;
        _pageRequestsPerPage = description.PageRequestsPerPage;
        _iommus = [.. description.Iommus.Select(i => platform.AddIommu(i.Name, new DmarUnitOptions
        {
            Cap = new CapabilityRegister(i.Cap),
            Ecap = new ExtendedCapabilityRegister(i.Ecap),
            Name = i.Name,
            IotlbSets = iotlbSets ?? i.IotlbSets,
            ContextCacheSlots = i.ContextCacheSlots,
            UseSimd = i.UseSimd,
            FaultCollapsing = (FaultCollapsing)i.FaultCollapsing,
            ScalablePermissionFaults = (ScalablePermissionFaultStyle)i.PermissionFaultStyle,
        }))];
        _devices = [.. description.Devices.Select(d => platform.AddDevice(d.Name, d.SourceId, d.Iommu < 0 ? null : _iommus[d.Iommu], d.Abilities))];
        _units = [.. _devices.Select(d => d.Iommu?.Unit)];
        _sids = [.. _devices.Select(d => d.SourceId)];
        _vms = new Vm[description.Vms.Count];
        _exports = new KvmTdpFd?[description.Vms.Count];
        for (int v = 0; v < _vms.Length; v++)
        {
            TraceVm vm = description.Vms[v];
            _vms[v] = platform.CreateVm(new VmOptions
            {
                Name = vm.Name,
                TdpLevels = vm.TdpLevels,
                MaxHugePageLevel = vm.MaxHugePageLevel,
                PhysicalAddressWidth = vm.PhysicalAddressWidth == 0 ? null : vm.PhysicalAddressWidth,
            });
            foreach (TraceMemslot m in vm.Memslots)
                _vms[v].AddMemslot(m.Id, m.Gpa, m.Size, m.Backing);
            foreach (TraceVmMap m in vm.InitialMaps)
                _vms[v].Map(m.Gfn, m.Pages, m.Access);
        }
        _domains = new Domain[description.Domains.Count];
        for (int d = 0; d < _domains.Length; d++)
        {
            TraceDomain domain = description.Domains[d];
            Device? device = domain.AllocationDevice < 0 ? null : _devices[domain.AllocationDevice];
            if (domain.Kind == TraceDomainKind.Paging)
            {
                _domains[d] = platform.AllocatePagingDomain(device);
            }
            else
            {
                KvmTdpFd tdp = _exports[domain.Vm] ??= _vms[domain.Vm].ExportTdp();
                _domains[d] = platform.AllocateKvmDomain(device!, tdp);
            }
        }
        foreach (TraceAttachment a in description.Attachments)
            _domains[a.Domain].Attach(_devices[a.Device], a.Flags);
    }

    /// <summary>The platform.</summary>
    public Platform Platform { get; }

    /// <summary>What it was built from.</summary>
    public TracePlatform Description { get; }

    /// <summary>The IOMMUs, in header order.</summary>
    public IReadOnlyList<IommuInstance> Iommus => _iommus;

    /// <summary>The devices, in header order.</summary>
    public IReadOnlyList<Device> Devices => _devices;

    /// <summary>
    /// Builds the platform of <paramref name="description"/>; <paramref name="iotlbSets"/> overrides
    /// every IOMMU's IOTLB sets. Nothing is left behind when a step is refused.
    /// </summary>
    /// <exception cref="TraceFormatException">The platform refused the description (offset: the header's).</exception>
    public static ReplayRig Build(TracePlatform description, int? iotlbSets = null, Engine.Paging.BatchWalkerKind? batchWalker = null)
    {
        ArgumentNullException.ThrowIfNull(description);
        var platform = new Platform(new PlatformOptions
        {
            BatchWalker = batchWalker,
            Memory = new HostMemoryOptions { Size = description.MemoryBytes, BaseHpa = description.MemoryBaseHpa, HostAddressWidth = description.HostAddressWidth },
            ScalableModeEnabled = description.ScalableMode,
            ServePageRequestsImmediately = description.ServePageRequestsImmediately,
        });
        try
        {
            return new ReplayRig(platform, description, iotlbSets);
        }
        catch (Exception e) when (e is EngineException or ArgumentException or InvalidOperationException or HostMemoryExhaustedException)
        {
            platform.Dispose();
            throw new TraceFormatException(TraceFormat.PreambleBytes, $"the platform the header describes cannot be built: {e.Message}");
        }
        catch
        {
            platform.Dispose();
            throw;
        }
    }

    // A device without an IOMMU passes through: rare, and kept out of the hot loop so the JIT
    // inlines the unit's translation there instead.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private TranslationResult TranslateWithoutIommu(int device, ulong iova, Access access, uint pasid) => _devices[device].Translate(iova, access, pasid);

    /// <summary>The unit in front of device <paramref name="device"/>, or null.</summary>
    public DmarUnit? UnitOf(int device) => _units[device];

    /// <summary>The source id of device <paramref name="device"/>.</summary>
    public ushort SourceIdOf(int device) => _sids[device];

    /// <summary>Translates one translate record (the hot path of a replay).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Translate(in TraceRecord r, ref ReplayTally tally)
    {
        DmarUnit? unit = _units[r.Target];
        TranslationResult t = unit is null
            ? _devices[r.Target].Translate(r.Address, (Access)r.Code, r.Pasid)
            : unit.Translate(new TranslationRequest(_sids[r.Target], r.Address, (Access)r.Code, r.Pasid));
        tally.Add(r.Address, t);
    }

    /// <summary>Translates one translate record's fields.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Translate(int device, ulong iova, Access access, uint pasid, ref ReplayTally tally)
    {
        DmarUnit? unit = _units[device];
        TranslationResult t = unit is null
            ? _devices[device].Translate(iova, access, pasid)
            : unit.Translate(new TranslationRequest(_sids[device], iova, access, pasid));
        tally.Add(iova, t);
    }

    /// <summary>The sink replay hands <see cref="TraceReader.ReadTranslates"/>: translates and counts.</summary>
    /// <remarks>It holds the rig's per-device arrays itself, so the reader's loop reaches a unit in two loads.</remarks>
    public struct TranslateSink(ReplayRig rig) : ITranslateSink, ITallySink
    {
        private readonly DmarUnit?[] _units = rig._units;
        private readonly ushort[] _sids = rig._sids;
        private readonly ReplayRig _rig = rig;

        /// <summary>What the translations came to.</summary>
        public ReplayTally Tally;

        /// <inheritdoc/>
        public readonly ReplayTally Result => Tally;

        /// <inheritdoc/>
        public void Translate(ReadOnlySpan<byte> records)
        {
            ref byte run = ref TranslateRecords.Start(records);
            DmarUnit?[] units = _units;
            ushort[] sids = _sids;
            // Accumulators in registers rather than the tally's fields in memory: half the cost of a hit.
            long hits = 0, faults = 0;
            ulong hpaSum = 0, checksum = 0;
            for (int at = 0; at < records.Length; at += TranslateRecords.Size)
            {
                (int device, ulong iova, Access access, uint pasid) = TranslateRecords.At(ref run, at);
                DmarUnit? unit = units[device];
                TranslationResult t = unit is null
                    ? _rig.TranslateWithoutIommu(device, iova, access, pasid)
                    : unit.Translate(TranslationRequest.FromChecked(sids[device], iova, access, pasid));
                hits += t.IotlbHit ? 1 : 0;
                if (t.IsSuccess)
                    hpaSum += t.Hpa;
                else
                    faults++;
                checksum += ReplayTally.Hash(iova, t);
            }
            Tally.Translations += records.Length / TranslateRecords.Size;
            Tally.IotlbHits += hits;
            Tally.Faults += faults;
            Tally.HpaSum += hpaSum;
            Tally.Checksum += checksum;
        }
    }

    /// <summary>Applies any record; counts translation results in <paramref name="tally"/>.</summary>
    /// <exception cref="EngineException">The platform refused a control record (the caller names the offset).</exception>
    public DmaOutcome Apply(in TraceRecord r, ref ReplayTally tally)
    {
        switch (r.Kind)
        {
            case TraceRecordKind.Translate:
                Translate(r, ref tally);
                break;
            case TraceRecordKind.Dma:
                return TraceDma.Run(_devices[r.Target], r.Address, (int)r.Value, r.Code == 1, r.Pasid, _pageRequestsPerPage, ref tally);
            case TraceRecordKind.Kvm:
                ApplyKvm(r);
                break;
            case TraceRecordKind.PagingMap:
                ((PagingDomain)_domains[r.Target]).Map(r.Address, r.Value, r.Size, (Access)r.Code);
                break;
            case TraceRecordKind.PagingUnmap:
                ((PagingDomain)_domains[r.Target]).Unmap(r.Address, r.Value);
                break;
            case TraceRecordKind.Invalidate:
                Invalidate(r);
                break;
            case TraceRecordKind.Attach:
                _domains[r.Target].Attach(_devices[r.Other], (AttachFlags)r.Code);
                break;
            case TraceRecordKind.Detach:
                _domains[r.Target].Detach(_devices[r.Other]);
                break;
        }
        return default;
    }

    private void ApplyKvm(in TraceRecord r)
    {
        Vm vm = _vms[r.Target];
        switch ((KvmOperation)r.Code2)
        {
            case KvmOperation.Map:
                vm.Map(r.Address, r.Value, (Access)r.Code);
                break;
            case KvmOperation.Zap:
                vm.Zap(r.Address, r.Value);
                break;
            case KvmOperation.WriteProtect:
                vm.WriteProtect(r.Address, r.Value);
                break;
            default:
                vm.FaultIn(r.Address, (Access)r.Code);
                break;
        }
    }

    // Through the driver's invalidation queue (or registers), as the driver would issue it. Engine's
    // IOTLB is not tagged by PASID: a PASID-based page invalidation drops those pages of the domain,
    // a whole-PASID one the whole domain (a superset: never a stale entry left behind).
    private void Invalidate(in TraceRecord r)
    {
        IommuInstance iommu = _iommus[r.Target];
        var kind = (InvalidationKind)r.Code;
        if (kind == InvalidationKind.Global)
        {
            Issue(iommu, InvalidationDescriptor.Iotlb(1), 1, 0, 0, 0);
            return;
        }
        if (iommu.FindDid(_domains[r.Other]) is not ushort did)
            return;   // not attached there: that unit caches nothing of the domain
        ulong address = r.Address & ~((1UL << (12 + r.Code2)) - 1);
        bool selective = kind is InvalidationKind.Page or InvalidationKind.PasidPage && iommu.Unit.Cap.Psi && r.Code2 <= iommu.Unit.Cap.Mamv;
        if (selective)
            Issue(iommu, InvalidationDescriptor.Iotlb(3, did, address, r.Code2), 3, did, address, r.Code2);
        else
            Issue(iommu, InvalidationDescriptor.Iotlb(2, did), 2, did, 0, 0);
    }

    private static void Issue(IommuInstance iommu, InvalidationDescriptor descriptor, int granularity, ushort did, ulong address, int am)
    {
        if (iommu.Unit.Ecap.Qi)
        {
            iommu.Submit(descriptor);
            return;
        }
        if (granularity == 3)
            iommu.Unit.WriteRegister(iommu.Unit.Ecap.IotlbRegisterOffset, 8, address | (uint)am);
        iommu.Unit.WriteRegister(iommu.Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | (ulong)granularity << 60 | (ulong)did << 32);
    }

    /// <summary>Disposes the platform (and everything on it).</summary>
    public void Dispose() => Platform.Dispose();
}
