using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Control;

/// <summary>
/// A device's immutable view of the IOMMU in front of it: the unit, its source id and its abilities.
/// Translation and DMA (<see cref="Dma.DmaTransfer"/>) go through a port, so the hot path reads
/// only what cannot change after the device was added, never the control objects around it.
/// </summary>
/// <remarks>
/// A port is a small immutable value, safe to copy and to use from any number of threads, and safe
/// after the platform is disposed: every translation then answers <see cref="TranslationStatus.Disposed"/>
/// and every DMA <see cref="Dma.DmaStatus.Disposed"/>. <c>default(DevicePort)</c> belongs to no
/// device: it translates nothing (<see cref="TranslationStatus.Disposed"/>) and DMA refuses it.
/// </remarks>
public readonly struct DevicePort
{
    internal DevicePort(Device device, DmarUnit? unit, HostMemory memory)
    {
        Device = device;
        Unit = unit;
        Memory = memory;
        SourceId = device.SourceId;
        Abilities = device.Abilities;
    }

    /// <summary>The device this port belongs to (its page-request recovery runs there).</summary>
    internal Device Device { get; }

    /// <summary>The unit that translates this device's DMA, or null when no IOMMU is in front of it (DMA passes through).</summary>
    internal DmarUnit? Unit { get; }

    /// <summary>The host memory DMA lands in.</summary>
    internal HostMemory Memory { get; }

    /// <summary>Requester id: bus &lt;&lt; 8 | device &lt;&lt; 3 | function.</summary>
    public ushort SourceId { get; }

    /// <summary>ATS / PRI / PASID, as the device was added with.</summary>
    public DeviceAbilities Abilities { get; }

    /// <summary>Whether an IOMMU translates this device's DMA (false: the DMA address is the host address).</summary>
    public bool IsTranslated => Unit is not null;

    /// <summary>Whether this port was handed out by a device (false for <c>default(DevicePort)</c>).</summary>
    public bool IsValid => Device is not null;

    /// <summary>Translates one DMA of this device (no page-request handling); lock-free and allocation-free.</summary>
    /// <param name="iova">Input address.</param>
    /// <param name="access">What the DMA does: read, write or both (execute where the unit supports it).</param>
    /// <param name="pasid">PASID, or <see cref="TranslationRequest.NoPasid"/>.</param>
    /// <remarks>Without an IOMMU the DMA passes through (output = input, 4 KiB at a time).</remarks>
    public TranslationResult Translate(ulong iova, Access access, uint pasid = TranslationRequest.NoPasid)
    {
        if (Unit is not null)
            return Unit.Translate(new TranslationRequest(SourceId, iova, access, pasid));
        return Memory is null || Memory.IsDisposed
            ? TranslationResult.Disposed
            : new TranslationResult(TranslationStatus.PassThrough, iova, PageSize.Size4K, Access.All, false, FaultReason.None, 0, false);
    }

    /// <summary>Bus:device.function and the device's name.</summary>
    public override string ToString() => Device?.ToString() ?? "(no device)";
}
