using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

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

    public Platform Platform { get; }
    public IommuInstance Dmar0 { get; }
    public IommuInstance Dmar1 { get; }
    public Device Nic { get; }
    public Device Gpu { get; }
    public Device Nvme { get; }
    public Vm Vm { get; }
    public KvmTdpFd Tdp { get; }
    public KvmDomain Domain { get; }

    /// <summary>KVM operations begun so far.</summary>
    public long KvmStarted => Volatile.Read(ref _kvmStarted);

    /// <summary>KVM operations finished so far.</summary>
    public long KvmFinished => Volatile.Read(ref _kvmFinished);

    /// <summary>Builds the platform; nothing is left behind when a step fails.</summary>
    public static DmaRig Create()
    {
        var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 4UL << 30 } });
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
            switch (rng.Next() % 4)
            {
                case 0:   // migration: write-protect a 2 MiB range (the next DMA write faults and is logged)
                    Vm.WriteProtect((rng.Next() % (SlotPages / 512)) * 512, 512);
                    break;
                case 1:   // balloon: zap 64 pages around the NIC's ring (the next packets fault them back in)
                    Vm.Zap(SlotPages + rng.Next() % 256, 64);
                    break;
                case 2:   // re-map a 2 MiB range of the buffer slot
                    Vm.Map((rng.Next() % (SlotPages / 512)) * 512, 512, Access.All);
                    break;
                default:  // zap a 2 MiB range of the buffer slot (GPU and NVMe fault it back)
                    Vm.Zap((rng.Next() % (SlotPages / 512)) * 512, 512);
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
