using Engine.Control;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>An IOMMU of the traced platform: its registers and the unit's build options.</summary>
public sealed record TraceIommu(string Name, ulong Cap, ulong Ecap, int IotlbSets = 1024, int ContextCacheSlots = 1024, bool UseSimd = true,
    byte FaultCollapsing = 1, byte PermissionFaultStyle = 0);

/// <summary>A device: name, source id, the index of its IOMMU (-1: none) and its abilities.</summary>
public sealed record TraceDevice(string Name, ushort SourceId, int Iommu, DeviceAbilities Abilities);

/// <summary>A memslot of a VM.</summary>
public sealed record TraceMemslot(int Id, ulong Gpa, ulong Size, PageSize Backing);

/// <summary>A range KVM maps before the trace starts (<c>Vm.Map(gfn, pages, access)</c>).</summary>
public sealed record TraceVmMap(ulong Gfn, ulong Pages, Access Access);

/// <summary>A VM: its TDP shape, memslots and the ranges mapped at the start.</summary>
public sealed record TraceVm(string Name, int TdpLevels, int MaxHugePageLevel, int PhysicalAddressWidth,
    IReadOnlyList<TraceMemslot> Memslots, IReadOnlyList<TraceVmMap> InitialMaps);

/// <summary>What kind of domain.</summary>
public enum TraceDomainKind : byte
{
    /// <summary>A paging domain (driver-owned tables; paging map/unmap records change it).</summary>
    Paging = 1,

    /// <summary>A KVM domain over a VM's exported TDP (KVM records change it).</summary>
    Kvm = 2,
}

/// <summary>A domain: kind, the VM of a KVM domain (-1 for paging), the device it is allocated for (-1: none).</summary>
public sealed record TraceDomain(TraceDomainKind Kind, int Vm, int AllocationDevice);

/// <summary>An attachment in place when the trace starts.</summary>
public sealed record TraceAttachment(int Domain, int Device, AttachFlags Flags);

/// <summary>
/// The trace header's platform description: what replay builds before the first record, in this
/// order — host memory, IOMMUs, devices, VMs (memslots, then the initial maps), domains, attachments.
/// </summary>
public sealed record TracePlatform
{
    /// <summary>Host memory bytes.</summary>
    public ulong MemoryBytes { get; init; } = 4UL << 30;

    /// <summary>HPA of host memory's first byte.</summary>
    public ulong MemoryBaseHpa { get; init; } = 4UL << 30;

    /// <summary>Host address width in bits.</summary>
    public int HostAddressWidth { get; init; } = 46;

    /// <summary><see cref="PlatformOptions.ScalableModeEnabled"/>.</summary>
    public bool ScalableMode { get; init; } = true;

    /// <summary><see cref="PlatformOptions.ServePageRequestsImmediately"/>.</summary>
    public bool ServePageRequestsImmediately { get; init; } = true;

    /// <summary>Page requests a device sends for one page of one DMA record before the DMA faults (1 to 255).</summary>
    public int PageRequestsPerPage { get; init; } = 4;

    /// <summary>Where the trace came from (a command line, a log file), for people.</summary>
    public string Source { get; init; } = "";

    /// <summary>For a trace imported from QEMU: the log's IOTLB hit lines (0 otherwise).</summary>
    public ulong QemuHits { get; init; }

    /// <summary>For a trace imported from QEMU: the log's IOTLB update lines (0 otherwise).</summary>
    public ulong QemuUpdates { get; init; }

    /// <summary>The IOMMUs.</summary>
    public IReadOnlyList<TraceIommu> Iommus { get; init; } = [];

    /// <summary>The devices.</summary>
    public IReadOnlyList<TraceDevice> Devices { get; init; } = [];

    /// <summary>The VMs.</summary>
    public IReadOnlyList<TraceVm> Vms { get; init; } = [];

    /// <summary>The domains.</summary>
    public IReadOnlyList<TraceDomain> Domains { get; init; } = [];

    /// <summary>The attachments at the start.</summary>
    public IReadOnlyList<TraceAttachment> Attachments { get; init; } = [];
}
