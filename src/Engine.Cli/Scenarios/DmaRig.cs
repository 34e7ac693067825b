using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;
using Engine.Trace;
using TraceKvmOperation = Engine.Trace.KvmOperation;

namespace Engine.Cli.Scenarios;

/// <summary>
/// The DMA scenario's platform: two Granite Rapids IOMMUs, a NIC and a GPU behind one and an NVMe
/// behind the other, all attached to one KVM domain on a VM with two 512 MiB memslots (2M-backed
/// buffers, 4K-backed NIC rings). <c>engine run</c> builds one; the soak builds one per cycle.
/// </summary>
internal sealed class DmaRig : IDisposable
{
    public const ulong SlotBytes = 512UL << 20;
    public const ulong SlotPages = SlotBytes >> HostMemory.FrameShift;
    public const ulong MemoryBytes = 4UL << 30;

    // Bracket every KVM operation, so a DMA can tell afterwards whether one ran while it was in flight.
    private long _kvmStarted;
    private long _kvmFinished;
    private bool _vmTornDown;

    private DmaRig(Platform platform)
    {
        Platform = platform;
        Dmar0 = platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
        Dmar1 = platform.AddIommu("dmar1", IommuPresets.GraniteRapidsServer);
        Nic = platform.AddDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), Dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Gpu = platform.AddDevice("gpu", TranslationRequest.Bdf(0x18, 0, 0), Dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Nvme = platform.AddDevice("nvme", TranslationRequest.Bdf(0x98, 0, 0), Dmar1, DeviceAbilities.Ats | DeviceAbilities.Pri);   // PRI needs ATS: a KVM domain refuses a device that cannot fault its pages in
        Vm = platform.CreateVm(new VmOptions { TdpLevels = 5, MaxHugePageLevel = 3, Name = "guest" });
        Vm.AddMemslot(0, 0, SlotBytes, PageSize.Size2M);             // GPU and NVMe buffers
        Vm.AddMemslot(1, SlotBytes, SlotBytes, PageSize.Size4K);     // NIC rings
        Vm.Map(0, 2 * SlotPages, Access.All);
        Tdp = Vm.ExportTdp();
        Domain = platform.AllocateKvmDomain(Nic, Tdp);
        Domain.Attach(Nic);
        Domain.Attach(Gpu);
        Domain.Attach(Nvme);
    }

    // A platform loaded from a checkpoint of a rig (engine run --restore): the same parts, found by name.
    private DmaRig(Platform platform, bool loaded)
    {
        _ = loaded;
        Platform = platform;
        IommuInstance Iommu(string name) => platform.Iommus.FirstOrDefault(i => i.Name == name)
            ?? throw new InvalidDataException($"the checkpoint's platform has no IOMMU '{name}': it is not a checkpoint of engine run.");
        Device Dev(string name) => platform.Devices.FirstOrDefault(d => d.Name == name)
            ?? throw new InvalidDataException($"the checkpoint's platform has no device '{name}': it is not a checkpoint of engine run.");
        Dmar0 = Iommu("dmar0");
        Dmar1 = Iommu("dmar1");
        Nic = Dev("nic");
        Gpu = Dev("gpu");
        Nvme = Dev("nvme");
        Domain = Nic.Domain as KvmDomain ?? throw new InvalidDataException("the checkpoint's NIC is not attached to a KVM domain: it is not a checkpoint of engine run.");
        Tdp = Domain.Tdp;
        Vm = Tdp.Vm;
        if (Gpu.Domain != Domain || Nvme.Domain != Domain)
            throw new InvalidDataException("the checkpoint's GPU and NVMe are not attached to the NIC's KVM domain: it is not a checkpoint of engine run.");
    }

    /// <summary>A rig over a platform loaded from a checkpoint of one (<see cref="Platform.Load"/>); disposes it when that is not one.</summary>
    public static DmaRig FromLoaded(Platform platform, long kvmStarted, long kvmFinished)
    {
        try
        {
            return new DmaRig(platform, loaded: true) { _kvmStarted = kvmStarted, _kvmFinished = kvmFinished };
        }
        catch
        {
            platform.Dispose();
            throw;
        }
    }

    public Platform Platform { get; }
    public IommuInstance Dmar0 { get; }
    public IommuInstance Dmar1 { get; }
    public Device Nic { get; }
    public Device Gpu { get; }
    public Device Nvme { get; }
    public Vm Vm { get; }
    public KvmTdpFd Tdp { get; }
    public KvmDomain Domain { get; }

    /// <summary>When set (one thread only), every DMA and KVM operation is written to this trace first.</summary>
    public TraceRecorder? Recorder { get; set; }

    /// <summary>
    /// The trace header's description of this platform: what <see cref="Create"/> builds, in its
    /// order (the initial map is the one the constructor makes before exporting the TDP).
    /// </summary>
    public static TracePlatform Describe(string source)
    {
        IommuPreset preset = IommuPresets.GraniteRapidsServer;
        var defaults = new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap };
        TraceIommu Iommu(string name) => new(name, preset.Cap.Value, preset.Ecap.Value, defaults.IotlbSets, defaults.ContextCacheSlots, defaults.UseSimd,
            (byte)defaults.FaultCollapsing, (byte)defaults.ScalablePermissionFaults);
        const DeviceAbilities Pri = DeviceAbilities.Ats | DeviceAbilities.Pri;
        var options = new PlatformOptions { Memory = new HostMemoryOptions { Size = MemoryBytes } };
        return new TracePlatform
        {
            Source = source,
            MemoryBytes = options.Memory.Size,
            MemoryBaseHpa = options.Memory.BaseHpa,
            HostAddressWidth = options.Memory.HostAddressWidth,
            ScalableMode = options.ScalableModeEnabled,
            ServePageRequestsImmediately = options.ServePageRequestsImmediately,
            PageRequestsPerPage = DmaTraffic.MaxPageRequestsPerPage,
            Iommus = [Iommu("dmar0"), Iommu("dmar1")],
            Devices =
            [
                new TraceDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), 0, Pri),
                new TraceDevice("gpu", TranslationRequest.Bdf(0x18, 0, 0), 0, Pri),
                new TraceDevice("nvme", TranslationRequest.Bdf(0x98, 0, 0), 1, Pri),
            ],
            Vms =
            [
                new TraceVm("guest", 5, 3, 0,
                    [new TraceMemslot(0, 0, SlotBytes, PageSize.Size2M), new TraceMemslot(1, SlotBytes, SlotBytes, PageSize.Size4K)],
                    [new TraceVmMap(0, 2 * SlotPages, Access.All)]),
            ],
            Domains = [new TraceDomain(TraceDomainKind.Kvm, 0, 0)],
            Attachments = [new TraceAttachment(0, 0, AttachFlags.None), new TraceAttachment(0, 1, AttachFlags.None), new TraceAttachment(0, 2, AttachFlags.None)],
        };
    }

    /// <summary>The trace's index of <paramref name="device"/> (the order of <see cref="Describe"/>).</summary>
    public int IndexOf(Device device) => device == Nic ? 0 : device == Gpu ? 1 : device == Nvme ? 2 : throw new ArgumentException($"{device} is not on this rig.", nameof(device));

    /// <summary>KVM operations begun so far.</summary>
    public long KvmStarted => Volatile.Read(ref _kvmStarted);

    /// <summary>KVM operations finished so far.</summary>
    public long KvmFinished => Volatile.Read(ref _kvmFinished);

    /// <summary>Builds the platform; nothing is left behind when a step fails.</summary>
    public static DmaRig Create()
    {
        var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = MemoryBytes } });
        try
        {
            return new DmaRig(platform);
        }
        catch
        {
            platform.Dispose();
            throw;
        }
    }

    /// <summary>One KVM operation on the guest's tables, chosen by <paramref name="rng"/>.</summary>
    public void KvmOperation(ref SplitMix64 rng)
    {
        Interlocked.Increment(ref _kvmStarted);
        try
        {
            (TraceKvmOperation op, ulong gfn, ulong pages) = (rng.Next() % 4) switch
            {
                // migration: write-protect a 2 MiB range (the next DMA write faults and is logged)
                0 => (TraceKvmOperation.WriteProtect, (rng.Next() % (SlotPages / 512)) * 512, 512UL),
                // balloon: zap 64 pages around the NIC's ring (the next packets fault them back in)
                1 => (TraceKvmOperation.Zap, SlotPages + rng.Next() % 256, 64UL),
                // re-map a 2 MiB range of the buffer slot
                2 => (TraceKvmOperation.Map, (rng.Next() % (SlotPages / 512)) * 512, 512UL),
                // zap a 2 MiB range of the buffer slot (GPU and NVMe fault it back)
                _ => (TraceKvmOperation.Zap, (rng.Next() % (SlotPages / 512)) * 512, 512UL),
            };
            Recorder?.Write(TraceRecord.Kvm(0, op, gfn, pages, op == TraceKvmOperation.Map ? Access.All : Access.None));
            switch (op)
            {
                case TraceKvmOperation.WriteProtect:
                    Vm.WriteProtect(gfn, pages);
                    break;
                case TraceKvmOperation.Map:
                    Vm.Map(gfn, pages, Access.All);
                    break;
                default:
                    Vm.Zap(gfn, pages);
                    break;
            }
        }
        finally
        {
            Interlocked.Increment(ref _kvmFinished);
        }
    }

    /// <summary>
    /// Detaches the devices, frees the domain and the export and disposes the VM, leaving the
    /// platform with its IOMMUs only (the soak counts the frames still in use then).
    /// </summary>
    public void TearDownVm()
    {
        if (_vmTornDown)
            return;
        _vmTornDown = true;
        foreach (Device d in new[] { Nic, Gpu, Nvme })
            Domain.Detach(d);
        Domain.Dispose();
        Tdp.Dispose();
        Vm.Dispose();
    }

    /// <summary>Tears the VM down (if not yet) and disposes the platform.</summary>
    public void Dispose()
    {
        try
        {
            TearDownVm();
        }
        finally
        {
            Platform.Dispose();
        }
    }
}
