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
    /// Copies between the caller and guest memory by GPA, as the VMM sees it: through the memslots,
    /// as Vm.ReadGuest / Vm.WriteGuest do (a zapped page keeps its contents and reads as written).
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
            // In pieces a span can hold; each piece is all-or-nothing, as the managed calls are.
            const ulong Piece = 1UL << 30;
            for (ulong done = 0; done < length; done += Piece)
            {
                var caller = new Span<byte>(buffer + done, (int)Math.Min(Piece, length - done));
                if (write)
                    v.Vm.WriteGuest(gpa + done, caller);
                else
                    v.Vm.ReadGuest(gpa + done, caller);
            }
            return 0;
        }
        catch (ArgumentOutOfRangeException e)
        {
            return Errors.Fail(Errors.Einval, $"{fn}: {e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal)}");
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
