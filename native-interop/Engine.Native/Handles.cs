using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;

namespace Engine.Native;

/// <summary>
/// engine_platform: a <see cref="Control.Platform"/> and every handle made from it. Destroying it kills
/// all of those handles first (so a racing call answers -EBADF), then disposes the platform.
/// </summary>
internal sealed class PlatformHandle(Platform platform) : HandleObject(HandleKind.Platform)
{
    private readonly List<HandleObject> _children = [];

    public Platform Platform { get; } = platform;

    /// <summary>Serializes this platform's handle bookkeeping (children, device lookup, VM exports).</summary>
    public Lock Lock { get; } = new();

    public bool Destroyed { get; private set; }

    /// <summary>Registers <paramref name="child"/> as this platform's, unless the platform is being destroyed.</summary>
    /// <exception cref="ObjectDisposedException">The platform was destroyed meanwhile.</exception>
    public nint Adopt(HandleObject child)
    {
        lock (Lock)
        {
            ObjectDisposedException.ThrowIf(Destroyed, Platform);
            nint handle = HandleTable.Register(child);
            _children.Add(child);
            return handle;
        }
    }

    /// <summary>Forgets a child destroyed on its own (a VM, a domain).</summary>
    public void Forget(HandleObject child)
    {
        lock (Lock)
            _children.Remove(child);
        HandleTable.Release(child);
    }

    /// <summary>Kills this handle and every child handle; returns false if that was done already.</summary>
    public bool Retire()
    {
        HandleObject[] children;
        lock (Lock)
        {
            if (Destroyed)
                return false;
            Destroyed = true;
            children = [.. _children];
            _children.Clear();
        }
        HandleTable.Release(this);
        foreach (HandleObject child in children)
            HandleTable.Release(child);
        return true;
    }
}

/// <summary>
/// engine_iommu: an <see cref="IommuInstance"/>, its unit for the hot path, the devices behind it by
/// source id (for DMA, read lock-free), and the C interrupt callback.
/// </summary>
internal sealed unsafe class IommuHandle : HandleObject
{
    // Devices by source id: 256 buses of 256 device/functions, a bus's array made with its first device.
    private readonly DeviceHandle?[]?[] _devices = new DeviceHandle?[256][];
    private InterruptTarget? _interrupt;

    public IommuHandle(PlatformHandle platform, IommuInstance iommu) : base(HandleKind.Iommu)
    {
        Owner = platform;
        Iommu = iommu;
        Unit = iommu.Unit;
        // Subscribed once, for the unit's lifetime; raises the C callback installed at that moment.
        // DmarInterruptKind's values are the ENGINE_IRQ_* codes (Abi.Irq* are defined from them).
        Unit.Interrupt += (_, e) => Raise((uint)e.Kind);
    }

    public PlatformHandle Owner { get; }

    public IommuInstance Iommu { get; }

    /// <summary>The unit, read directly by engine_translate.</summary>
    public DmarUnit Unit { get; }

    /// <summary>The device created at <paramref name="sourceId"/> behind this IOMMU, or null. Lock-free.</summary>
    public DeviceHandle? DeviceAt(ushort sourceId)
    {
        DeviceHandle?[]? bus = Volatile.Read(ref _devices[sourceId >> 8]);
        return bus is null ? null : Volatile.Read(ref bus[sourceId & 0xFF]);
    }

    /// <summary>Publishes <paramref name="device"/> for DMA lookups; the caller holds the platform's lock.</summary>
    public void AddDevice(DeviceHandle device)
    {
        ushort sid = device.Device.SourceId;
        DeviceHandle?[] bus = _devices[sid >> 8] ??= new DeviceHandle?[256];
        Volatile.Write(ref bus[sid & 0xFF], device);
    }

    /// <summary>Installs (or, with <paramref name="function"/> 0, removes) the C callback.</summary>
    public void SetInterrupt(nint function, nint user) =>
        Volatile.Write(ref _interrupt, function == 0 ? null : new InterruptTarget(function, user));

    private void Raise(uint kind)
    {
        InterruptTarget? target = Volatile.Read(ref _interrupt);
        if (target is null)
            return;
        Callbacks.Depth++;
        try
        {
            ((delegate* unmanaged<nint, nint, uint, void>)target.Function)(target.User, Handle, kind);
        }
        finally
        {
            Callbacks.Depth--;
        }
    }

    private sealed record InterruptTarget(nint Function, nint User);
}

/// <summary>Which threads are inside an interrupt callback right now (they may not destroy the platform).</summary>
internal static class Callbacks
{
    [ThreadStatic]
    private static int _depth;

    public static ref int Depth => ref _depth;
}

/// <summary>engine_device: a <see cref="Control.Device"/> behind one IOMMU.</summary>
internal sealed class DeviceHandle(PlatformHandle owner, IommuHandle iommu, Device device) : HandleObject(HandleKind.Device)
{
    public PlatformHandle Owner { get; } = owner;

    public IommuHandle Iommu { get; } = iommu;

    public Device Device { get; } = device;
}

/// <summary>engine_vm: a <see cref="Kvm.Vm"/>, its one TDP export (shared by all KVM domains made from it) and memslot ids.</summary>
internal sealed class VmHandle(PlatformHandle owner, Vm vm) : HandleObject(HandleKind.Vm)
{
    public PlatformHandle Owner { get; } = owner;

    public Vm Vm { get; } = vm;

    /// <summary>The export, made by the first KVM domain (KVM allows one per address space).</summary>
    public KvmTdpFd? Export { get; set; }

    /// <summary>KVM domains made from this VM and not freed yet: while any lives, the VM stays.</summary>
    public int KvmDomains { get; set; }

    /// <summary>The next memslot id (engine_vm_add_memory numbers them itself).</summary>
    public int NextSlot { get; set; }

    /// <summary>Set by engine_vm_destroy (under <see cref="Lock"/>): no KVM domain may be made from it any more.</summary>
    public bool Destroyed { get; set; }

    /// <summary>Serializes the export, the domain count and destruction.</summary>
    public Lock Lock { get; } = new();
}

/// <summary>engine_domain: a paging or KVM <see cref="Control.Domain"/>; a KVM one keeps its VM alive.</summary>
internal sealed class DomainHandle(PlatformHandle owner, Domain domain, VmHandle? vm) : HandleObject(HandleKind.Domain)
{
    public PlatformHandle Owner { get; } = owner;

    public Domain Domain { get; } = domain;

    public VmHandle? Vm { get; } = vm;

    private int _freed;

    /// <summary>True for the one caller that frees it (two threads freeing one domain: the second gets -EBADF).</summary>
    public bool TryMarkFreed() => Interlocked.Exchange(ref _freed, 1) == 0;
}
