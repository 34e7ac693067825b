namespace Engine.Kvm;

/// <summary>How a <see cref="Vm"/>'s TDP MMU is shaped.</summary>
public sealed record VmOptions
{
    /// <summary>EPT levels: 4 (48-bit guest-physical) or 5 (57-bit). Default 4.</summary>
    public int TdpLevels { get; init; } = 4;

    /// <summary>Largest leaf KVM creates: 1 = 4K, 2 = 2M, 3 = 1G (min of EPT capability and KVM_MAX_HUGEPAGE_LEVEL). Default 3.</summary>
    public int MaxHugePageLevel { get; init; } = 3;

    /// <summary>Host physical-address width used for the must-be-zero masks; default: host memory's width.</summary>
    public int? PhysicalAddressWidth { get; init; }

    /// <summary>Name shown in diagnostics.</summary>
    public string Name { get; init; } = "vm";
}
