using System.Runtime.InteropServices;
using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Native;

// Domains (the driver / IOMMUFD layer) and the KVM compatibility check.
internal static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "engine_domain_alloc_paging")]
    public static int DomainAllocPaging(nint dev, nint* output)
    {
        const string Fn = "engine_domain_alloc_paging";
        try
        {
            DeviceHandle? device = HandleTable.Get<DeviceHandle>(dev, HandleKind.Device);
            if (device is null)
                return Errors.BadHandle(Fn, "dev", dev);
            if (output == null)
                return Errors.Null(Fn, "out");
            PagingDomain domain = device.Owner.Platform.AllocatePagingDomain(device.Device);
            try
            {
                *output = device.Owner.Adopt(new DomainHandle(device.Owner, domain, null));
            }
            catch
            {
                domain.Dispose();
                throw;
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_alloc_kvm")]
    public static int DomainAllocKvm(nint dev, nint vm, nint* output)
    {
        const string Fn = "engine_domain_alloc_kvm";
        try
        {
            DeviceHandle? device = HandleTable.Get<DeviceHandle>(dev, HandleKind.Device);
            if (device is null)
                return Errors.BadHandle(Fn, "dev", dev);
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            if (output == null)
                return Errors.Null(Fn, "out");
            if (!ReferenceEquals(device.Owner, v.Owner))
                return Errors.Fail(Errors.Einval, $"{Fn}: the device and the VM belong to different platforms.");
            lock (v.Lock)
            {
                if (v.Destroyed)
                    return Errors.BadHandle(Fn, "vm", vm);
                // KVM exports an address space once; every KVM domain of this VM imports that one export.
                v.Export ??= v.Vm.ExportTdp();
                KvmDomain domain = device.Owner.Platform.AllocateKvmDomain(device.Device, v.Export);
                try
                {
                    *output = device.Owner.Adopt(new DomainHandle(device.Owner, domain, v));
                }
                catch
                {
                    domain.Dispose();
                    throw;
                }
                v.KvmDomains++;
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_map")]
    public static int DomainMap(nint d, ulong iova, ulong hpa, ulong size, uint access)
    {
        const string Fn = "engine_domain_map";
        try
        {
            DomainHandle? domain = HandleTable.Get<DomainHandle>(d, HandleKind.Domain);
            if (domain is null)
                return Errors.BadHandle(Fn, "d", d);
            if ((access & ~(uint)Abi.AccessMask) != 0)
                return Errors.Fail(Errors.Einval, $"{Fn}: access 0x{access:x} has bits other than ENGINE_ACCESS_READ, _WRITE and _EXEC.");
            switch (domain.Domain)
            {
                case PagingDomain paging:
                    paging.Map(iova, hpa, size, (Access)access);
                    return 0;
                case KvmDomain kvm:
                    kvm.Map(iova, hpa, size, (Access)access);   // refused: KVM owns the mappings (EOPNOTSUPP)
                    return 0;
                default:
                    return Errors.Fail(Errors.Eopnotsupp, $"{Fn}: a {domain.Domain.Kind} domain has no map operation.");
            }
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_unmap")]
    public static int DomainUnmap(nint d, ulong iova, ulong size)
    {
        const string Fn = "engine_domain_unmap";
        try
        {
            DomainHandle? domain = HandleTable.Get<DomainHandle>(d, HandleKind.Domain);
            if (domain is null)
                return Errors.BadHandle(Fn, "d", d);
            switch (domain.Domain)
            {
                case PagingDomain paging:
                    paging.Unmap(iova, size);
                    return 0;
                case KvmDomain kvm:
                    kvm.Unmap(iova, size);   // refused: KVM owns the mappings (EOPNOTSUPP)
                    return 0;
                default:
                    return Errors.Fail(Errors.Eopnotsupp, $"{Fn}: a {domain.Domain.Kind} domain has no unmap operation.");
            }
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_attach")]
    public static int DomainAttach(nint d, nint dev)
    {
        const string Fn = "engine_domain_attach";
        try
        {
            DomainHandle? domain = HandleTable.Get<DomainHandle>(d, HandleKind.Domain);
            if (domain is null)
                return Errors.BadHandle(Fn, "d", d);
            DeviceHandle? device = HandleTable.Get<DeviceHandle>(dev, HandleKind.Device);
            if (device is null)
                return Errors.BadHandle(Fn, "dev", dev);
            domain.Domain.Attach(device.Device);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_detach")]
    public static int DomainDetach(nint d, nint dev)
    {
        const string Fn = "engine_domain_detach";
        try
        {
            DomainHandle? domain = HandleTable.Get<DomainHandle>(d, HandleKind.Domain);
            if (domain is null)
                return Errors.BadHandle(Fn, "d", d);
            DeviceHandle? device = HandleTable.Get<DeviceHandle>(dev, HandleKind.Device);
            if (device is null)
                return Errors.BadHandle(Fn, "dev", dev);
            domain.Domain.Detach(device.Device);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_domain_free")]
    public static int DomainFree(nint d)
    {
        const string Fn = "engine_domain_free";
        try
        {
            DomainHandle? domain = HandleTable.Get<DomainHandle>(d, HandleKind.Domain);
            if (domain is null)
                return Errors.BadHandle(Fn, "d", d);
            // Refused with EBUSY while devices are attached; the handle then stays valid.
            domain.Domain.Dispose();
            if (!domain.TryMarkFreed())
                return Errors.BadHandle(Fn, "d", d);
            domain.Owner.Forget(domain);
            if (domain.Vm is { } vm)
            {
                lock (vm.Lock)
                    vm.KvmDomains--;
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    /// <summary>
    /// engine_kvm_check: what <c>engine kvm-check</c> does — a throw-away platform with one IOMMU of
    /// these registers, a device, a VM exporting a TDP of this shape, and an attempt to allocate and
    /// attach a KVM domain. 0 when it works; otherwise the refusal's code with every failing condition.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "engine_kvm_check")]
    public static int KvmCheck(ulong cap, ulong ecap, uint level, uint maxHugePageLevel)
    {
        const string Fn = "engine_kvm_check";
        try
        {
            if (maxHugePageLevel is < 1 or > 3)
                return Errors.Fail(Errors.Einval, $"{Fn}: max_huge_page_level is {maxHugePageLevel}; it must be 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB).");
            if (level is not (4 or 5))
                return Errors.Fail(Errors.Eopnotsupp, $"{Fn}: not compatible: the exported TDP has {level} levels; a KVM domain needs 4 or 5.");
            var capability = new CapabilityRegister(cap);
            var extended = new ExtendedCapabilityRegister(ecap);
            using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 } });
            IommuInstance iommu;
            try
            {
                iommu = platform.AddIommu("dmar0", capability, extended);
            }
            catch (EngineException e)
            {
                // The unit cannot even be built: still name every condition the domain would fail, then
                // why. A unit that cannot exist cannot carry a KVM domain either: EOPNOTSUPP, as the
                // contract's "0 or -EOPNOTSUPP" says (the CLI reports the unit's own errno here).
                var meta = new ExportedTdp(TdpType.Ept, (int)level, 0, (int)maxHugePageLevel, ReservedBitMasks.ForEpt(46, (int)maxHugePageLevel, true));
                List<string> reasons = [.. KvmDomainCompatibility.Check(new DriverView(capability, extended), meta), $"{e.Reason} ({e.Errno})"];
                return Errors.Fail(Errors.Eopnotsupp, $"{Fn}: not compatible: {string.Join("; ", reasons)}.");
            }
            Device device = platform.AddDevice("dev", TranslationRequest.Bdf(1, 0, 0), iommu, DeviceAbilities.Ats | DeviceAbilities.Pri);
            Vm vm = platform.CreateVm(new VmOptions { TdpLevels = (int)level, MaxHugePageLevel = (int)maxHugePageLevel });
            using KvmTdpFd tdp = vm.ExportTdp();
            try
            {
                KvmDomain domain = platform.AllocateKvmDomain(device, tdp);
                domain.Attach(device);
                domain.Detach(device);
                domain.Dispose();
                return 0;
            }
            catch (KvmDomainRefusedException e)
            {
                return Errors.Fail((int)e.Errno, $"{Fn}: not compatible: {string.Join("; ", e.Reasons)}.");
            }
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }
}
