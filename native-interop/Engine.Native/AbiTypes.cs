using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace Engine.Native;

/// <summary>The constants of engine.h that the library itself needs (same names, PascalCase).</summary>
internal static class Abi
{
    /// <summary>ENGINE_ABI_VERSION.</summary>
    public const uint Version = 1;

    /// <summary>ENGINE_NO_PASID.</summary>
    public const uint NoPasid = 0xFFFF_FFFF;

    /// <summary>ENGINE_ACCESS_READ | _WRITE | _EXEC: the bits an access may have.</summary>
    public const byte AccessMask = 7;

    /// <summary>ENGINE_REQ_ATS: the request is an ATS translation request.</summary>
    public const byte RequestAts = 1;

    /// <summary>ENGINE_TRANSLATED.</summary>
    public const byte Translated = 0;

    /// <summary>ENGINE_FAULTED.</summary>
    public const byte Faulted = 1;

    /// <summary>ENGINE_TR_SNOOP.</summary>
    public const ushort TrSnoop = 1;

    /// <summary>ENGINE_TR_IOTLB_HIT.</summary>
    public const ushort TrIotlbHit = 2;

    /// <summary>ENGINE_TR_PASSTHROUGH: translation is off or the context is pass-through; hpa == iova.</summary>
    public const ushort TrPassThrough = 4;

    /// <summary>ENGINE_IRQ_FAULT.</summary>
    public const uint IrqFault = (uint)Engine.Iommu.DmarInterruptKind.Fault;

    /// <summary>ENGINE_IRQ_INV_COMPLETE.</summary>
    public const uint IrqInvalidationComplete = (uint)Engine.Iommu.DmarInterruptKind.InvalidationComplete;

    /// <summary>ENGINE_IRQ_PAGE_REQUEST.</summary>
    public const uint IrqPageRequest = (uint)Engine.Iommu.DmarInterruptKind.PageRequest;

    /// <summary>ENGINE_DEV_ATS | _PRI | _PASID: the bits a device's abilities may have (Engine's <c>DeviceAbilities</c> values).</summary>
    public const uint DeviceAbilityMask = 7;

    /// <summary>ENGINE_IOMMU_NO_SIMD in <c>engine_iommu_options.flags</c>.</summary>
    public const uint IommuNoSimd = 1;

    /// <summary>ENGINE_PLATFORM_NO_KVM_DOMAINS: the feature switch (CONFIG_INTEL_IOMMU_KVM) off.</summary>
    public const uint PlatformNoKvmDomains = 1;

    /// <summary>ENGINE_PLATFORM_SM_OFF: the driver's scalable mode off (intel_iommu=sm_off).</summary>
    public const uint PlatformScalableModeOff = 2;
}

/// <summary><c>engine_request</c> (16 bytes): one DMA translation request as C lays it out.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct EngineRequest
{
    [FieldOffset(0)] public ulong Iova;
    [FieldOffset(8)] public uint Pasid;
    [FieldOffset(12)] public ushort SourceId;
    [FieldOffset(14)] public byte Access;
    [FieldOffset(15)] public byte Flags;
}

/// <summary><c>engine_translation</c> (16 bytes): the answer to one request as C lays it out.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct EngineTranslation
{
    [FieldOffset(0)] public ulong Hpa;
    [FieldOffset(8)] public byte Status;
    [FieldOffset(9)] public byte FaultReason;
    [FieldOffset(10)] public byte PageShift;
    [FieldOffset(11)] public byte Permissions;
    [FieldOffset(12)] public ushort DomainId;
    [FieldOffset(14)] public ushort Flags;
}

/// <summary><c>engine_iommu_options</c> (16 bytes): how <c>engine_iommu_create_ex</c> builds a unit.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct EngineIommuOptions
{
    /// <summary>sizeof(engine_iommu_options) as the caller compiled it: lets the struct grow later.</summary>
    [FieldOffset(0)] public uint StructSize;
    [FieldOffset(4)] public uint IotlbSets;
    [FieldOffset(8)] public uint ContextCacheSlots;
    [FieldOffset(12)] public uint Flags;
}

/// <summary><c>engine_platform_options</c> (24 bytes): how <c>engine_platform_create_ex</c> builds a platform.</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct EnginePlatformOptions
{
    /// <summary>sizeof(engine_platform_options) as the caller compiled it.</summary>
    [FieldOffset(0)] public uint StructSize;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong MemorySize;
    [FieldOffset(16)] public ulong MemoryBase;
}

/// <summary>The items <c>engine_layout</c> answers: sizes and offsets of every struct of the ABI (enum engine_layout_item).</summary>
internal enum LayoutItem : uint
{
    RequestSize = 0,
    RequestIova,
    RequestPasid,
    RequestSourceId,
    RequestAccess,
    RequestFlags,
    TranslationSize,
    TranslationHpa,
    TranslationStatus,
    TranslationFaultReason,
    TranslationPageShift,
    TranslationPermissions,
    TranslationDomainId,
    TranslationFlags,
    IommuOptionsSize,
    IommuOptionsStructSize,
    IommuOptionsIotlbSets,
    IommuOptionsContextCacheSlots,
    IommuOptionsFlags,
    PlatformOptionsSize,
    PlatformOptionsStructSize,
    PlatformOptionsFlags,
    PlatformOptionsMemorySize,
    PlatformOptionsMemoryBase,
    Count,
}

/// <summary>The library's side of the layout check: what C# actually laid out, measured, not declared.</summary>
internal static unsafe class Layout
{
    /// <summary>The size or offset of <paramref name="item"/> in bytes, or -1 for an unknown item.</summary>
    public static int Of(LayoutItem item)
    {
        EngineRequest r = default;
        EngineTranslation t = default;
        EngineIommuOptions o = default;
        EnginePlatformOptions po = default;
        byte* rb = (byte*)&r, tb = (byte*)&t, ob = (byte*)&o, pb = (byte*)&po;
        return item switch
        {
            LayoutItem.RequestSize => sizeof(EngineRequest),
            LayoutItem.RequestIova => (int)((byte*)&r.Iova - rb),
            LayoutItem.RequestPasid => (int)((byte*)&r.Pasid - rb),
            LayoutItem.RequestSourceId => (int)((byte*)&r.SourceId - rb),
            LayoutItem.RequestAccess => (int)(&r.Access - rb),
            LayoutItem.RequestFlags => (int)(&r.Flags - rb),
            LayoutItem.TranslationSize => sizeof(EngineTranslation),
            LayoutItem.TranslationHpa => (int)((byte*)&t.Hpa - tb),
            LayoutItem.TranslationStatus => (int)(&t.Status - tb),
            LayoutItem.TranslationFaultReason => (int)(&t.FaultReason - tb),
            LayoutItem.TranslationPageShift => (int)(&t.PageShift - tb),
            LayoutItem.TranslationPermissions => (int)(&t.Permissions - tb),
            LayoutItem.TranslationDomainId => (int)((byte*)&t.DomainId - tb),
            LayoutItem.TranslationFlags => (int)((byte*)&t.Flags - tb),
            LayoutItem.IommuOptionsSize => sizeof(EngineIommuOptions),
            LayoutItem.IommuOptionsStructSize => (int)((byte*)&o.StructSize - ob),
            LayoutItem.IommuOptionsIotlbSets => (int)((byte*)&o.IotlbSets - ob),
            LayoutItem.IommuOptionsContextCacheSlots => (int)((byte*)&o.ContextCacheSlots - ob),
            LayoutItem.IommuOptionsFlags => (int)((byte*)&o.Flags - ob),
            LayoutItem.PlatformOptionsSize => sizeof(EnginePlatformOptions),
            LayoutItem.PlatformOptionsStructSize => (int)((byte*)&po.StructSize - pb),
            LayoutItem.PlatformOptionsFlags => (int)((byte*)&po.Flags - pb),
            LayoutItem.PlatformOptionsMemorySize => (int)((byte*)&po.MemorySize - pb),
            LayoutItem.PlatformOptionsMemoryBase => (int)((byte*)&po.MemoryBase - pb),
            _ => -1,
        };
    }

    /// <summary>
    /// Whether Engine's <c>TranslationRequest</c> has exactly <c>engine_request</c>'s layout (iova,
    /// pasid, source id, access, ATS as 0/1), so validated C requests can be handed to the batch call
    /// in place, without a copy. Measured once on first use; a change in Engine makes it false, and the
    /// batch then copies instead of misreading.
    /// </summary>
    public static bool RequestIsTranslationRequest
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            int known = _requestLayout;
            return known != 0 ? known > 0 : Measure();
        }
    }

    /// <summary>Whether Engine's <c>TranslationResult</c> is 16 bytes, so results can be produced in the caller's buffer and converted in place.</summary>
    public static bool ResultFitsTranslation => Unsafe.SizeOf<Iommu.TranslationResult>() == sizeof(EngineTranslation);

    /// <summary>
    /// Whether Engine's <c>TranslationResult</c> is laid out as <see cref="BatchLayout"/>'s word-wise
    /// conversion reads it (hpa; then did, status, size, permissions, snoop, fault, IOTLB hit, a byte
    /// each after the 2-byte did), measured once like <see cref="RequestIsTranslationRequest"/>.
    /// </summary>
    public static bool ResultIsPacked
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            int known = _resultLayout;
            return known != 0 ? known > 0 : MeasureResult();
        }
    }

    // 0 = not measured yet, 1 = same layout, -1 = different. Plain ints (no static constructor) so
    // the check on the hot path is one load.
    private static int _requestLayout;
    private static int _resultLayout;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool MeasureResult()
    {
        bool same = ResultFitsTranslation;
        if (same)
        {
            var r = new Iommu.TranslationResult(Iommu.TranslationStatus.Faulted, 0x1122_3344_5566_7788, Paging.PageSize.Size1G,
                Paging.Access.Write | Paging.Access.Execute, snoop: true, Iommu.FaultReason.SmAddressBeyondMax, did: 0xABCD, iotlbHit: true);
            ulong* q = (ulong*)Unsafe.AsPointer(ref r);
            same = q[0] == 0x1122_3344_5566_7788 && q[1] == 0x0183_0106_0302_ABCDUL;
        }
        Volatile.Write(ref _resultLayout, same ? 1 : -1);
        return same;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool Measure()
    {
        bool same = Unsafe.SizeOf<Iommu.TranslationRequest>() == sizeof(EngineRequest);
        if (same)
        {
            var managed = new Iommu.TranslationRequest(0xBEEF, 0x0123_4567_89AB_C000, Paging.Access.Write | Paging.Access.Execute, 0xF_1234, isTranslationRequest: true);
            var c = new EngineRequest { Iova = 0x0123_4567_89AB_C000, Pasid = 0xF_1234, SourceId = 0xBEEF, Access = 6, Flags = 1 };
            same = Unsafe.As<Iommu.TranslationRequest, EngineRequest>(ref managed).Equals16(c);
        }
        Volatile.Write(ref _requestLayout, same ? 1 : -1);
        return same;
    }

    private static bool Equals16(this EngineRequest a, EngineRequest b) =>
        Unsafe.As<EngineRequest, UInt128>(ref a) == Unsafe.As<EngineRequest, UInt128>(ref b);
}
