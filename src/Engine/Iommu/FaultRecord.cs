using System.Runtime.InteropServices;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// One non-recoverable DMA-remapping fault as the unit's fault logic receives it: who faulted, where,
/// why, and whether the context/PASID entry used had FPD (fault processing disabled) set (SPEC.md §2.7).
/// </summary>
/// <remarks>
/// The request type follows the FRCD_REG T bit as Linux prints it (<c>dmar_fault_do_one</c>):
/// T = 1 for a read request, T = 0 for a write. A request that both reads and writes (an AtomicOp)
/// is a read here, as the Intel datasheets describe T ("1: Read request or AtomicOp request").
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct FaultRecord
{
    /// <summary>The largest PASID (20 bits).</summary>
    public const uint MaxPasid = 0xF_FFFF;

    /// <summary>Creates a fault.</summary>
    /// <param name="sourceId">Requester id (bus &lt;&lt; 8 | devfn).</param>
    /// <param name="address">The faulting input address; only the page (bits 63:12) is recorded.</param>
    /// <param name="reason">The VT-d fault reason.</param>
    /// <param name="isWrite">A write request (T = 0); false for a read (T = 1).</param>
    /// <param name="pasid">The request's PASID (20 bits) or <see cref="TranslationRequest.NoPasid"/>.</param>
    /// <param name="faultProcessingDisabled">FPD of the context/PASID entry that processed the request.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pasid"/> is neither 20 bits nor <see cref="TranslationRequest.NoPasid"/>.</exception>
    public FaultRecord(ushort sourceId, ulong address, FaultReason reason, bool isWrite,
        uint pasid = TranslationRequest.NoPasid, bool faultProcessingDisabled = false)
    {
        if (pasid > MaxPasid && pasid != TranslationRequest.NoPasid)
            throw new ArgumentOutOfRangeException(nameof(pasid), pasid, "A PASID is 20 bits.");
        SourceId = sourceId;
        Address = address;
        Reason = reason;
        IsWrite = isWrite;
        Pasid = pasid;
        FaultProcessingDisabled = faultProcessingDisabled;
    }

    /// <summary>Requester id (bus/device/function).</summary>
    public ushort SourceId { get; }

    /// <summary>The faulting input address (the record keeps bits 63:12).</summary>
    public ulong Address { get; }

    /// <summary>Why the request faulted.</summary>
    public FaultReason Reason { get; }

    /// <summary>Whether the request was a write (T = 0); a read otherwise (T = 1).</summary>
    public bool IsWrite { get; }

    /// <summary>The PASID, or <see cref="TranslationRequest.NoPasid"/>.</summary>
    public uint Pasid { get; }

    /// <summary>FPD of the entry that processed the request: qualified faults are then not recorded.</summary>
    public bool FaultProcessingDisabled { get; }

    /// <summary>Whether the request carried a PASID (the record's PP bit).</summary>
    public bool HasPasid => Pasid != TranslationRequest.NoPasid;

    /// <summary>The fault a translation request produced; a request without <see cref="Access.Read"/> that writes is a write.</summary>
    public static FaultRecord FromRequest(in TranslationRequest request, FaultReason reason, bool faultProcessingDisabled) =>
        new(request.SourceId, request.Iova, reason,
            isWrite: (request.Access & Access.Write) != 0 && (request.Access & Access.Read) == 0,
            // A request made without its constructor (reinterpreted memory) may carry a wider PASID;
            // the fault path must not throw, and the unit looked it up by its low 20 bits too.
            request.Pasid == TranslationRequest.NoPasid ? TranslationRequest.NoPasid : request.Pasid & MaxPasid, faultProcessingDisabled);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{SourceId >> 8:x2}:{(SourceId >> 3) & 0x1F:x2}.{SourceId & 7} {(IsWrite ? "write" : "read")} 0x{Address:x} "
        + $"reason 0x{(byte)Reason:x2} ({Reason})" + (HasPasid ? $" PASID 0x{Pasid:x}" : "") + (FaultProcessingDisabled ? " FPD" : "");
}
