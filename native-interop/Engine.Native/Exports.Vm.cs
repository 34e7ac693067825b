using System.Runtime.InteropServices;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Native;

// VMs: KVM's side. The C ABI speaks bytes everywhere; Engine's Vm takes GFNs and page counts for
// map/zap/write-protect, so those are converted here after a 4 KiB alignment check.
internal static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "engine_vm_create")]
    public static int VmCreate(nint p, uint tdpLevels, nint* output)
    {
        const string Fn = "engine_vm_create";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            if (output == null)
                return Errors.Null(Fn, "out");
            if (tdpLevels is not (4 or 5))
                return Errors.Fail(Errors.Einval, $"{Fn}: tdp_levels is {tdpLevels}; KVM's EPT has 4 or 5 levels.");
            Vm vm = platform.Platform.CreateVm(new VmOptions { TdpLevels = (int)tdpLevels });
            *output = platform.Adopt(new VmHandle(platform, vm));
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_destroy")]
    public static int VmDestroy(nint vm)
    {
        const string Fn = "engine_vm_destroy";
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            lock (v.Lock)
            {
                // A KVM domain walks this VM's EPT: the tables must outlive every such domain.
                if (v.KvmDomains > 0)
                    return Errors.Fail(Errors.Ebusy, $"{Fn}: {v.KvmDomains} KVM domain(s) made from this VM are still allocated; free them first (engine_domain_free).");
                v.Destroyed = true;
                v.Owner.Forget(v);
                v.Vm.Dispose();
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_add_memory")]
    public static int VmAddMemory(nint vm, ulong gpa, ulong size)
    {
        const string Fn = "engine_vm_add_memory";
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            if (BadRange(Fn, gpa, size) is int bad)
                return bad;
            lock (v.Lock)
            {
                v.Vm.AddMemslot(v.NextSlot, gpa, size);
                v.NextSlot++;
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_map")]
    public static int VmMap(nint vm, ulong gpa, ulong size, uint access)
    {
        const string Fn = "engine_vm_map";
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            if (BadRange(Fn, gpa, size) is int bad)
                return bad;
            if (access == 0 || (access & ~(uint)Abi.AccessMask) != 0)
                return Errors.Fail(Errors.Einval, $"{Fn}: access 0x{access:x} must be a non-empty combination of ENGINE_ACCESS_READ, _WRITE and _EXEC.");
            v.Vm.Map(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift, (Access)access);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From($"{Fn} [0x{gpa:x}, +0x{size:x})", e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_zap")]
    public static int VmZap(nint vm, ulong gpa, ulong size)
    {
        const string Fn = "engine_vm_zap";
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            if (BadRange(Fn, gpa, size) is int bad)
                return bad;
            v.Vm.Zap(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From($"{Fn} [0x{gpa:x}, +0x{size:x})", e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_write_protect")]
    public static int VmWriteProtect(nint vm, ulong gpa, ulong size)
    {
        const string Fn = "engine_vm_write_protect";
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(Fn, "vm", vm);
            if (BadRange(Fn, gpa, size) is int bad)
                return bad;
            v.Vm.WriteProtect(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From($"{Fn} [0x{gpa:x}, +0x{size:x})", e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_read")]
    public static int VmRead(nint vm, ulong gpa, byte* buffer, ulong length) => GuestCopy("engine_vm_read", vm, gpa, buffer, length, write: false);

    [UnmanagedCallersOnly(EntryPoint = "engine_vm_write")]
    public static int VmWrite(nint vm, ulong gpa, byte* buffer, ulong length) => GuestCopy("engine_vm_write", vm, gpa, buffer, length, write: true);

    /// <summary>
    /// Copies between the caller and guest memory by GPA, as the host (QEMU) sees it: through the
    /// EPT, crossing pages, EPT permissions not checked; the walk and the copy of each page inside the
    /// host memory's epochs, so KVM cannot reuse a frame under the copy.
    /// </summary>
    private static int GuestCopy(string fn, nint vm, ulong gpa, byte* buffer, ulong length, bool write)
    {
        try
        {
            VmHandle? v = HandleTable.Get<VmHandle>(vm, HandleKind.Vm);
            if (v is null)
                return Errors.BadHandle(fn, "vm", vm);
            if (length == 0)
                return 0;
            if (buffer == null)
                return Errors.Null(fn, "buf");
            if (length - 1 > ulong.MaxValue - gpa)
                return Errors.Fail(Errors.Einval, $"{fn}: [0x{gpa:x}, +0x{length:x}) wraps around the address space.");
            HostMemory memory = v.Vm.Memory;
            ulong done = 0;
            using (memory.Epochs.Enter())
            {
                while (done < length)
                {
                    ulong address = gpa + done;
                    WalkResult w = v.Vm.Translate(address, Access.None);
                    if (!w.IsSuccess)
                        return Errors.Fail(Errors.Efault, $"{fn}: GPA 0x{address:x} is not mapped in the VM's EPT ({w.Fault} at level {w.Level}); 0x{done:x} bytes were copied.");
                    ulong pageBytes = w.PageSize.Bytes();
                    int chunk = (int)Math.Min(length - done, pageBytes - (address & (pageBytes - 1)));
                    Span<byte> host;
                    try
                    {
                        host = memory.GetSpan(w.Hpa, chunk);
                    }
                    catch (InvalidHostAddressException e)
                    {
                        return Errors.Fail(Errors.Efault, $"{fn}: GPA 0x{address:x} maps to HPA 0x{w.Hpa:x}, which is not guest RAM ({e.Message}).");
                    }
                    var caller = new Span<byte>(buffer + done, chunk);
                    if (write)
                        caller.CopyTo(host);
                    else
                        host.CopyTo(caller);
                    done += (ulong)chunk;
                }
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(fn, e);
        }
    }

    /// <summary>EINVAL (its code) unless [<paramref name="address"/>, +<paramref name="size"/>) is a non-empty, 4 KiB-aligned, non-wrapping range; null when it is.</summary>
    private static int? BadRange(string fn, ulong address, ulong size)
    {
        if (size == 0 || ((address | size) & (HostMemory.FrameSize - 1)) != 0)
            return Errors.Fail(Errors.Einval, $"{fn}: address 0x{address:x} and size 0x{size:x} must be non-zero multiples of 4 KiB (the C ABI takes bytes).");
        if (address + size < address && address + size != 0)
            return Errors.Fail(Errors.Einval, $"{fn}: [0x{address:x}, +0x{size:x}) wraps around the address space.");
        return null;
    }
}
