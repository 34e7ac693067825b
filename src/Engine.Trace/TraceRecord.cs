using Engine.Iommu;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>What a trace record does (its first byte). docs/trace-format.md gives each layout.</summary>
public enum TraceRecordKind : byte
{
    /// <summary>One translation by a device (16 bytes).</summary>
    Translate = 1,

    /// <summary>One DMA by a device: translated page by page, recovering from IO page faults as a PRI device does (24 bytes).</summary>
    Dma = 2,

    /// <summary>A KVM operation on a VM's TDP tables: map, zap, write-protect, fault-in (24 bytes).</summary>
    Kvm = 3,

    /// <summary>A driver map into a paging domain (32 bytes).</summary>
    PagingMap = 4,

    /// <summary>A driver unmap from a paging domain (24 bytes).</summary>
    PagingUnmap = 5,

    /// <summary>An IOTLB invalidation on one IOMMU (24 bytes).</summary>
    Invalidate = 6,

    /// <summary>Attach a device to a domain (8 bytes).</summary>
    Attach = 7,

    /// <summary>Detach a device from a domain (8 bytes).</summary>
    Detach = 8,
}

/// <summary>The KVM operation of a <see cref="TraceRecordKind.Kvm"/> record.</summary>
public enum KvmOperation : byte
{
    /// <summary><c>Vm.Map(gfn, pages, access)</c>.</summary>
    Map = 1,

    /// <summary><c>Vm.Zap(gfn, pages)</c>.</summary>
    Zap = 2,

    /// <summary><c>Vm.WriteProtect(gfn, pages)</c>.</summary>
    WriteProtect = 3,

    /// <summary><c>Vm.FaultIn(gfn, access)</c> (pages is 1).</summary>
    FaultIn = 4,
}

/// <summary>The granularity of an <see cref="TraceRecordKind.Invalidate"/> record, as QEMU's trace events name them.</summary>
public enum InvalidationKind : byte
{
    /// <summary>Every IOTLB entry of the unit.</summary>
    Global = 1,

    /// <summary>Every entry of one domain.</summary>
    Domain = 2,

    /// <summary>2^mask pages of one domain from an address.</summary>
    Page = 3,

    /// <summary>PASID-based page invalidation (applied as <see cref="Page"/>: Engine's IOTLB is not tagged by PASID).</summary>
    PasidPage = 4,

    /// <summary>PASID-based invalidation of a whole PASID (applied as <see cref="Domain"/>, a superset).</summary>
    Pasid = 5,
}

/// <summary>
/// One decoded record. The fields mean different things per <see cref="Kind"/>; the factory
/// methods name them (docs/trace-format.md has the table).
/// </summary>
/// <remarks>A plain struct, so the reader decodes into the caller's variable and allocates nothing.</remarks>
public struct TraceRecord
{
    /// <summary>The kind (first byte).</summary>
    public TraceRecordKind Kind;

    /// <summary>Access (translate, KVM, paging map), 1 for a DMA write (DMA), the <see cref="KvmOperation"/> (KVM: in <see cref="Code2"/>), <see cref="InvalidationKind"/> (invalidate), attach flags.</summary>
    public byte Code;

    /// <summary>KVM: the operation. Invalidate: the address mask (AM, pages = 2^AM).</summary>
    public byte Code2;

    /// <summary>Device (translate, DMA), VM (KVM), domain (paging map/unmap, attach, detach), IOMMU (invalidate).</summary>
    public ushort Target;

    /// <summary>Device (attach, detach), domain (invalidate; 0xFFFF for a global one).</summary>
    public ushort Other;

    /// <summary>PASID (translate, DMA, invalidate) or <see cref="TranslationRequest.NoPasid"/>.</summary>
    public uint Pasid;

    /// <summary>IOVA (translate, DMA, paging map/unmap), GFN (KVM), address (invalidate).</summary>
    public ulong Address;

    /// <summary>Length in bytes (DMA), pages (KVM), HPA (paging map), size (paging unmap).</summary>
    public ulong Value;

    /// <summary>Size in bytes (paging map).</summary>
    public ulong Size;

    /// <summary>A translation of <paramref name="iova"/> by device <paramref name="device"/>.</summary>
    public static TraceRecord Translate(int device, ulong iova, Access access, uint pasid = TranslationRequest.NoPasid) =>
        new() { Kind = TraceRecordKind.Translate, Code = (byte)access, Target = (ushort)device, Pasid = pasid, Address = iova };

    /// <summary>A DMA of <paramref name="length"/> bytes at <paramref name="iova"/>.</summary>
    public static TraceRecord Dma(int device, ulong iova, int length, bool write, uint pasid = TranslationRequest.NoPasid) =>
        new() { Kind = TraceRecordKind.Dma, Code = write ? (byte)1 : (byte)0, Target = (ushort)device, Pasid = pasid, Address = iova, Value = (ulong)length };

    /// <summary>A KVM operation on VM <paramref name="vm"/>.</summary>
    public static TraceRecord Kvm(int vm, KvmOperation operation, ulong gfn, ulong pages, Access access = Access.None) =>
        new() { Kind = TraceRecordKind.Kvm, Code = (byte)access, Code2 = (byte)operation, Target = (ushort)vm, Address = gfn, Value = pages };

    /// <summary>A map into paging domain <paramref name="domain"/>.</summary>
    public static TraceRecord PagingMap(int domain, ulong iova, ulong hpa, ulong size, Access permissions) =>
        new() { Kind = TraceRecordKind.PagingMap, Code = (byte)permissions, Target = (ushort)domain, Address = iova, Value = hpa, Size = size };

    /// <summary>An unmap from paging domain <paramref name="domain"/>.</summary>
    public static TraceRecord PagingUnmap(int domain, ulong iova, ulong size) =>
        new() { Kind = TraceRecordKind.PagingUnmap, Target = (ushort)domain, Address = iova, Value = size };

    /// <summary>An IOTLB invalidation on IOMMU <paramref name="iommu"/> for <paramref name="domain"/> (-1: none, global).</summary>
    public static TraceRecord Invalidate(int iommu, InvalidationKind kind, int domain, ulong address = 0, int mask = 0, uint pasid = TranslationRequest.NoPasid) =>
        new() { Kind = TraceRecordKind.Invalidate, Code = (byte)kind, Code2 = (byte)mask, Target = (ushort)iommu, Other = domain < 0 ? NoIndex : (ushort)domain, Pasid = pasid, Address = address };

    /// <summary>Attach device <paramref name="device"/> to domain <paramref name="domain"/>.</summary>
    public static TraceRecord Attach(int domain, int device, Control.AttachFlags flags = Control.AttachFlags.None) =>
        new() { Kind = TraceRecordKind.Attach, Code = (byte)flags, Target = (ushort)domain, Other = (ushort)device };

    /// <summary>Detach device <paramref name="device"/> from domain <paramref name="domain"/>.</summary>
    public static TraceRecord Detach(int domain, int device) =>
        new() { Kind = TraceRecordKind.Detach, Target = (ushort)domain, Other = (ushort)device };

    /// <summary>"No index" in a 16-bit index field (a global invalidation's domain, a device without IOMMU).</summary>
    public const ushort NoIndex = 0xFFFF;

    /// <inheritdoc/>
    public override readonly string ToString() => Kind switch
    {
        TraceRecordKind.Translate => $"translate device {Target} iova 0x{Address:x} {(Access)Code}",
        TraceRecordKind.Dma => $"DMA {(Code == 1 ? "write" : "read")} device {Target} iova 0x{Address:x} length {Value}",
        TraceRecordKind.Kvm => $"KVM {(KvmOperation)Code2} vm {Target} gfn 0x{Address:x} pages {Value}",
        TraceRecordKind.PagingMap => $"paging map domain {Target} iova 0x{Address:x} hpa 0x{Value:x} size 0x{Size:x} {(Access)Code}",
        TraceRecordKind.PagingUnmap => $"paging unmap domain {Target} iova 0x{Address:x} size 0x{Value:x}",
        TraceRecordKind.Invalidate => $"invalidate {(InvalidationKind)Code} iommu {Target} domain {Other} address 0x{Address:x} mask {Code2}",
        TraceRecordKind.Attach => $"attach device {Other} to domain {Target}",
        TraceRecordKind.Detach => $"detach device {Other} from domain {Target}",
        _ => $"record of kind {(byte)Kind}",
    };
}
