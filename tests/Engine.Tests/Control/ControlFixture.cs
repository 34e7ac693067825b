using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>The cover letter's setup: a VM, its TDP exported, two server IOMMUs with devices behind them.</summary>
internal sealed class ControlFixture : IDisposable
{
    public ControlFixture(int levels = 5, int maxHugePageLevel = 3, IommuPreset? preset = null, PlatformOptions? options = null)
    {
        Platform = new Platform(options ?? new PlatformOptions { Memory = new HostMemoryOptions { Size = 8UL << 30 } });
        Dmar0 = Platform.AddIommu("dmar0", preset ?? IommuPresets.GraniteRapidsServer);
        Dmar1 = Platform.AddIommu("dmar1", preset ?? IommuPresets.GraniteRapidsServer);
        Nic = Platform.AddDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), Dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri | DeviceAbilities.Pasid);
        Nvme = Platform.AddDevice("nvme", TranslationRequest.Bdf(0x98, 0, 0), Dmar1);
        Gpu = Platform.AddDevice("gpu", TranslationRequest.Bdf(0x98, 1, 0), Dmar1, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Vm = Platform.CreateVm(new VmOptions { TdpLevels = levels, MaxHugePageLevel = maxHugePageLevel });
        Vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        Vm.AddMemslot(1, 1UL << 30, 1UL << 30, PageSize.Size4K);
        Tdp = Vm.ExportTdp();
    }

    public Platform Platform { get; }

    public IommuInstance Dmar0 { get; }

    public IommuInstance Dmar1 { get; }

    public Device Nic { get; }

    public Device Nvme { get; }

    public Device Gpu { get; }

    public Vm Vm { get; }

    public KvmTdpFd Tdp { get; }

    public ulong Backing(ulong gpa) => Vm.FindSlot(gpa >> 12)!.PeekHpa(gpa >> 12) | (gpa & 0xFFF);

    public void Dispose() => Platform.Dispose();
}
