using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Control;
using Engine.Memory;

namespace Engine.Native;

/// <summary>
/// The exports of engine.h, one partial file per group. Every body catches every exception and
/// answers with a code: nothing managed ever unwinds into C.
/// </summary>
/// <remarks>
/// Conventions shared by all exports: a handle argument that is NULL, of another kind, forged or
/// destroyed answers -EBADF; any other NULL pointer argument answers -EINVAL; an error records a
/// message for engine_last_error on the calling thread; an output is written only on success.
/// </remarks>
internal static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "engine_abi_version")]
    public static uint AbiVersion() => Abi.Version;

    [UnmanagedCallersOnly(EntryPoint = "engine_strerror")]
    public static byte* StrError(int err) => Errors.Describe(err);

    [UnmanagedCallersOnly(EntryPoint = "engine_last_error")]
    public static byte* LastErrorText() => LastError.Get();

    [UnmanagedCallersOnly(EntryPoint = "engine_layout")]
    public static int LayoutOf(uint item, uint* value)
    {
        try
        {
            if (value == null)
                return Errors.Null("engine_layout", "value");
            int v = Layout.Of((LayoutItem)item);
            if (v < 0)
                return Errors.Fail(Errors.Einval, $"engine_layout: item {item} is unknown; this library knows items 0..{(uint)LayoutItem.Count - 1}.");
            *value = (uint)v;
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From("engine_layout", e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_platform_create")]
    public static int PlatformCreate(nint* output) => CreatePlatform("engine_platform_create", null, output);

    [UnmanagedCallersOnly(EntryPoint = "engine_platform_create_ex")]
    public static int PlatformCreateEx(EnginePlatformOptions* options, nint* output) => CreatePlatform("engine_platform_create_ex", options, output);

    private static int CreatePlatform(string fn, EnginePlatformOptions* options, nint* output)
    {
        try
        {
            if (output == null)
                return Errors.Null(fn, "out");
            var platformOptions = new PlatformOptions();
            if (options != null)
            {
                EnginePlatformOptions o = *options;
                if (o.StructSize != sizeof(EnginePlatformOptions))
                    return Errors.Fail(Errors.Einval, $"{fn}: options->struct_size is {o.StructSize}; this library (ABI {Abi.Version}) expects sizeof(engine_platform_options) = {sizeof(EnginePlatformOptions)}.");
                if ((o.Flags & ~(Abi.PlatformNoKvmDomains | Abi.PlatformScalableModeOff)) != 0)
                    return Errors.Fail(Errors.Einval, $"{fn}: options->flags 0x{o.Flags:x} has unknown bits.");
                HostMemoryOptions memory = platformOptions.Memory;
                // HostMemoryOptions validates size and base (ArgumentOutOfRangeException: EINVAL with its message).
                platformOptions = platformOptions with
                {
                    Memory = memory with
                    {
                        Size = o.MemorySize == 0 ? memory.Size : o.MemorySize,
                        BaseHpa = o.MemoryBase == 0 ? memory.BaseHpa : o.MemoryBase,
                    },
                    KvmDomainSupport = (o.Flags & Abi.PlatformNoKvmDomains) == 0,
                    ScalableModeEnabled = (o.Flags & Abi.PlatformScalableModeOff) == 0,
                };
            }
            var platform = new Platform(platformOptions);
            try
            {
                *output = HandleTable.Register(new PlatformHandle(platform));
            }
            catch
            {
                platform.Dispose();
                throw;
            }
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_platform_destroy")]
    public static int PlatformDestroy(nint p)
    {
        const string Fn = "engine_platform_destroy";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            // A callback may run inside an epoch-protected region (a DMA that faulted): disposing host
            // memory there would wait for this very thread to leave it.
            if (Callbacks.Depth > 0)
                return Errors.Fail(Errors.Ebusy, $"{Fn}: called from an interrupt callback; destroy the platform after the callback has returned.");
            if (!platform.Retire())
                return Errors.BadHandle(Fn, "p", p);
            platform.Platform.Dispose();
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    /// <summary>
    /// engine_platform_add_ram: bring-your-own RAM. The embedder's memory becomes host memory at
    /// [hpa, hpa + size) in place (Platform.AddRam); it must stay mapped until the platform is destroyed.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "engine_platform_add_ram")]
    public static int PlatformAddRam(nint p, ulong hpa, void* host, ulong size)
    {
        const string Fn = "engine_platform_add_ram";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            if (host == null)
                return Errors.Null(Fn, "host");
            platform.Platform.AddRam(hpa, (nint)host, size);
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    /// <summary>
    /// engine_platform_alloc_ram: contiguous zeroed frames of Engine's own host memory, with their HPA
    /// and a pointer the embedder may read and write (tables, queues, DMA buffers) until the platform
    /// is destroyed.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "engine_platform_alloc_ram")]
    public static int PlatformAllocRam(nint p, ulong size, ulong alignment, ulong* hpa, void** host)
    {
        const string Fn = "engine_platform_alloc_ram";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            if (hpa == null)
                return Errors.Null(Fn, "hpa");
            if (host == null)
                return Errors.Null(Fn, "host");
            if (size == 0 || (size & (HostMemory.FrameSize - 1)) != 0)
                return Errors.Fail(Errors.Einval, $"{Fn}: size 0x{size:x} must be a non-zero multiple of 4 KiB.");
            alignment = alignment == 0 ? HostMemory.FrameSize : alignment;
            if (alignment < HostMemory.FrameSize || (alignment & (alignment - 1)) != 0 || alignment > 1UL << 30)
                return Errors.Fail(Errors.Einval, $"{Fn}: alignment 0x{alignment:x} must be 0 or a power of two from 4 KiB to 1 GiB.");
            HostMemory memory = platform.Platform.Memory;
            ulong first = memory.AllocateContiguous(size >> HostMemory.FrameShift, alignment >> HostMemory.FrameShift);
            // The region is one contiguous mapping: the first frame's address is the run's.
            Span<byte> frame = memory.GetSpan(first, HostMemory.FrameSize);
            *hpa = first;
            *host = Unsafe.AsPointer(ref MemoryMarshal.GetReference(frame));
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "engine_platform_memory_range")]
    public static int PlatformMemoryRange(nint p, ulong* baseHpa, ulong* size)
    {
        const string Fn = "engine_platform_memory_range";
        try
        {
            PlatformHandle? platform = HandleTable.Get<PlatformHandle>(p, HandleKind.Platform);
            if (platform is null)
                return Errors.BadHandle(Fn, "p", p);
            if (baseHpa == null)
                return Errors.Null(Fn, "base");
            if (size == null)
                return Errors.Null(Fn, "size");
            *baseHpa = platform.Platform.Memory.BaseHpa;
            *size = platform.Platform.Memory.Size;
            return 0;
        }
        catch (Exception e)
        {
            return Errors.From(Fn, e);
        }
    }

    /// <summary>A NUL-terminated UTF-8 argument as a string (the caller checked it is not NULL).</summary>
    private static string Utf8(byte* s) => Marshal.PtrToStringUTF8((nint)s) ?? "";
}
