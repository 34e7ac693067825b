namespace Engine.Tests.Embedding;

/// <summary>
/// The Engine assembly's public types, pinned: a type that becomes public (or stops being public)
/// without this list changing in the same commit fails the build's tests, so the embedder-facing
/// surface only moves on purpose.
/// </summary>
/// <remarks>
/// 59 types, in groups an embedder names: the platform and its control objects (platform, IOMMU,
/// device and its port, VM and memslots, domains, attach flags), translation request/result/status
/// and fault reasons, DMA, errors, presets, CAP/ECAP with their fields, options and their enums,
/// MMIO offsets and status, interrupts, counters and metrics, host memory with its errors. Walkers,
/// epochs, the IOTLB, table entries, descriptors and page requests are internal; tests, benchmarks,
/// the workloads, the CLI and the C ABI reach them through InternalsVisibleTo.
/// </remarks>
public class PublicSurfaceTests
{
    private static readonly string[] Expected =
    [
        "Engine.Control.AttachFlags",
        "Engine.Control.Device",
        "Engine.Control.DeviceAbilities",
        "Engine.Control.DevicePort",
        "Engine.Control.Domain",
        "Engine.Control.DomainAllocFlags",
        "Engine.Control.IommuInstance",
        "Engine.Control.KvmDomain",
        "Engine.Control.KvmDomainRefusedException",
        "Engine.Control.PagingDomain",
        "Engine.Control.Platform",
        "Engine.Control.PlatformOptions",
        "Engine.Diagnostics.EngineMetrics",
        "Engine.Diagnostics.EngineTotals",
        "Engine.Diagnostics.MetricsRegistration",
        "Engine.Diagnostics.UnitTally",
        "Engine.Dma.DmaResult",
        "Engine.Dma.DmaStatus",
        "Engine.Dma.DmaTransfer",
        "Engine.EngineException",
        "Engine.Errno",
        "Engine.Iommu.CapabilityFields",
        "Engine.Iommu.CapabilityRegister",
        "Engine.Iommu.DmarInterruptEventArgs",
        "Engine.Iommu.DmarInterruptKind",
        "Engine.Iommu.DmarUnit",
        "Engine.Iommu.DmarUnitOptions",
        "Engine.Iommu.DriverView",
        "Engine.Iommu.ExtendedCapabilityFields",
        "Engine.Iommu.ExtendedCapabilityRegister",
        "Engine.Iommu.FaultCollapsing",
        "Engine.Iommu.FaultCounters",
        "Engine.Iommu.FaultReason",
        "Engine.Iommu.FaultRecord",
        "Engine.Iommu.IommuPreset",
        "Engine.Iommu.IommuPresets",
        "Engine.Iommu.RegisterAccessStatus",
        "Engine.Iommu.RegisterOffsets",
        "Engine.Iommu.ScalablePermissionFaultStyle",
        "Engine.Iommu.TranslationRequest",
        "Engine.Iommu.TranslationResult",
        "Engine.Iommu.TranslationStatus",
        "Engine.Kvm.KvmTdpFd",
        "Engine.Kvm.Memslot",
        "Engine.Kvm.MemslotFlags",
        "Engine.Kvm.TdpFaultResult",
        "Engine.Kvm.Vm",
        "Engine.Kvm.VmOptions",
        "Engine.Memory.FrameState",
        "Engine.Memory.HostMemory",
        "Engine.Memory.HostMemoryExhaustedException",
        "Engine.Memory.HostMemoryOptions",
        "Engine.Memory.HostMemoryStatistics",
        "Engine.Memory.InvalidHostAddressException",
        "Engine.Paging.Access",
        "Engine.Paging.BatchWalkerKind",
        "Engine.Paging.PageSize",
        "Engine.Paging.WalkFault",
        "Engine.Paging.WalkResult",
    ];

    [Fact]
    public void ThePublicTypesAreExactlyTheListedOnes()
    {
        string[] actual = [.. typeof(Engine.Control.Platform).Assembly.GetExportedTypes().Select(t => t.FullName!).Order(StringComparer.Ordinal)];
        string[] added = [.. actual.Except(Expected)];
        string[] removed = [.. Expected.Except(actual)];
        Assert.True(added.Length == 0 && removed.Length == 0,
            $"The public surface of Engine changed. Newly public: [{string.Join(", ", added)}]; no longer public: [{string.Join(", ", removed)}]. " +
            "If that is meant, update the list in PublicSurfaceTests (and keep issue 10's ~40-type goal in mind); otherwise make the type internal.");
    }

    [Fact]
    public void TheListIsSortedAndHasNoDuplicates()
    {
        Assert.Equal(Expected.Order(StringComparer.Ordinal).Distinct(), Expected);
    }
}
