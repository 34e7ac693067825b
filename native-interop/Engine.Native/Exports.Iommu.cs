using System.Runtime.InteropServices;
using Engine.Control;
using Engine.Iommu;

namespace Engine.Native;

// IOMMUs, their registers and interrupts, and devices.
internal static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_create")]
    public static int IommuCreate(nint p, byte* name, ulong cap, ulong ecap, nint* output) =>
        CreateIommu("engine_iommu_create", p, name, cap, ecap, null, output);

    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_create_ex")]
    public static int IommuCreateEx(nint p, byte* name, ulong cap, ulong ecap, EngineIommuOptions* options, nint* output) =>
        CreateIommu("engine_iommu_create_ex", p, name, cap, ecap, options, output);

    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_create_preset")]
    public static int IommuCreatePreset(nint p, byte* name, byte* preset, nint* output)
    {
        const string Fn = "engine_iommu_create_preset";
        try
        {
            if (HandleTable.Resolve(p, HandleKind.Platform) is null)
                return Errors.BadHandle(Fn, "p", p);
            if (preset == null)
                return Errors.Null(Fn, "preset");
            // IommuPresets.Get throws ArgumentException naming every preset: EINVAL with that list.
            IommuPreset chosen = IommuPresets.Get(Utf8(preset));
            return CreateIommu(Fn, p, name, chosen.Cap.Value, chosen.Ecap.Value, null, output);
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    private static int CreateIommu(string fn, nint p, byte* name, ulong cap, ulong ecap, EngineIommuOptions* options, nint* output)
    {
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(fn, "p", p);
            if (name == null)
                return Errors.Null(fn, "name");
            if (output == null)
                return Errors.Null(fn, "out");
            var unitOptions = new DmarUnitOptions { Cap = new CapabilityRegister(cap), Ecap = new ExtendedCapabilityRegister(ecap) };
            if (options != null)
            {
                EngineIommuOptions o = *options;
                if (o.StructSize != sizeof(EngineIommuOptions))
                    return Errors.Fail(Errors.Einval, $"{fn}: options->struct_size is {o.StructSize}; this library (ABI {Abi.Version}) expects sizeof(engine_iommu_options) = {sizeof(EngineIommuOptions)}.");
                if ((o.Flags & ~Abi.IommuNoSimd) != 0)
                    return Errors.Fail(Errors.Einval, $"{fn}: options->flags 0x{o.Flags:x} has unknown bits.");
                if (o.IotlbSets > 1 << 20 || o.ContextCacheSlots > 1 << 16)
                    return Errors.Fail(Errors.Einval, $"{fn}: at most 2^20 IOTLB sets and 2^16 context-cache slots.");
                unitOptions = unitOptions with
                {
                    IotlbSets = o.IotlbSets == 0 ? unitOptions.IotlbSets : (int)o.IotlbSets,
                    ContextCacheSlots = o.ContextCacheSlots == 0 ? unitOptions.ContextCacheSlots : (int)o.ContextCacheSlots,
                    UseSimd = (o.Flags & Abi.IommuNoSimd) == 0,
                };
            }
            IommuInstance iommu = platform.Platform.AddIommu(Utf8(name), unitOptions);
            *output = platform.Adopt(new IommuHandle(platform, iommu));
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_mmio_read")]
    public static int IommuMmioRead(nint u, ulong offset, uint size, ulong* value)
    {
        const string Fn = "engine_iommu_mmio_read";
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(Fn, "u", u);
            if (value == null)
                return Errors.Null(Fn, "value");
            if (offset > int.MaxValue)
                return Errors.Fail(Errors.Einval, $"{Fn}: no register at offset 0x{offset:x}.");
            RegisterAccessStatus status = iommu.Unit.ReadRegister((int)offset, (int)Math.Min(size, 16u), out ulong v);
            if (status != RegisterAccessStatus.Ok)
                return MmioRefused(Fn, status, offset, size);
            *value = v;
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_mmio_write")]
    public static int IommuMmioWrite(nint u, ulong offset, uint size, ulong value)
    {
        const string Fn = "engine_iommu_mmio_write";
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(Fn, "u", u);
            if (offset > int.MaxValue)
                return Errors.Fail(Errors.Einval, $"{Fn}: no register at offset 0x{offset:x}.");
            if (size == 4 && value > uint.MaxValue)
                return Errors.Fail(Errors.Einval, $"{Fn}: value 0x{value:x} does not fit a 4-byte write.");
            RegisterAccessStatus status = iommu.Unit.WriteRegister((int)offset, (int)Math.Min(size, 16u), value);
            return status == RegisterAccessStatus.Ok ? 0 : MmioRefused(Fn, status, offset, size);
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    private static int MmioRefused(string fn, RegisterAccessStatus status, ulong offset, uint size) => Errors.Fail(Errors.Einval, status switch
    {
        RegisterAccessStatus.UnknownOffset => $"{fn}: no register at offset 0x{offset:x}.",
        RegisterAccessStatus.BadSize => $"{fn}: a {size}-byte access at 0x{offset:x} is not allowed (4 or 8 bytes, at most the register's width).",
        RegisterAccessStatus.Misaligned => $"{fn}: offset 0x{offset:x} is not aligned to the {size}-byte access.",
        _ => $"{fn}: the access at 0x{offset:x} was refused ({status}).",
    });

    [UnmanagedCallersOnly(EntryPoint = "engine_iommu_set_interrupt")]
    public static int IommuSetInterrupt(nint u, nint function, nint user)
    {
        const string Fn = "engine_iommu_set_interrupt";
        try
        {
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(Fn, "u", u);
            iommu.SetInterrupt(function, user);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_device_create")]
    public static int DeviceCreate(nint p, nint u, byte* name, ushort sourceId, uint abilities, nint* output)
    {
        const string Fn = "engine_device_create";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            IommuHandle? iommu = HandleTable.Get<IommuHandle>(u, HandleKind.Iommu);
            if (iommu is null)
                return Errors.BadHandle(Fn, "u", u);
            if (name == null)
                return Errors.Null(Fn, "name");
            if (output == null)
                return Errors.Null(Fn, "out");
            if (!ReferenceEquals(iommu.Owner, platform))
                return Errors.Fail(Errors.Einval, $"{Fn}: IOMMU {iommu.Iommu.Name} belongs to another platform.");
            if ((abilities & ~Abi.DeviceAbilityMask) != 0)
                return Errors.Fail(Errors.Einval, $"{Fn}: abilities 0x{abilities:x} has unknown bits (ENGINE_DEV_ATS 1, _PRI 2, _PASID 4).");
            lock (platform.Lock)
            {
                Device device = platform.Platform.AddDevice(Utf8(name), sourceId, iommu.Iommu, (DeviceAbilities)abilities);
                var handle = new DeviceHandle(platform, iommu, device);
                *output = platform.Adopt(handle);
                iommu.AddDevice(handle);
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }
}
