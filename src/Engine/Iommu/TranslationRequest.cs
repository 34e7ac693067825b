using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>One DMA translation request as it reaches a remapping unit.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct TranslationRequest
{
    /// <summary>The <see cref="Pasid"/> value of a request without PASID.</summary>
    public const uint NoPasid = uint.MaxValue;

    /// <summary>Creates a request.</summary>
    /// <param name="sourceId">Requester id: bus &lt;&lt; 8 | device &lt;&lt; 3 | function.</param>
    /// <param name="iova">Input address.</param>
    /// <param name="access">Read, write, or execute (combinations for atomics).</param>
    /// <param name="pasid">PASID (20 bits) or <see cref="NoPasid"/>.</param>
    /// <param name="isTranslationRequest">An ATS translation request from a device TLB rather than an untranslated DMA.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="access"/> has bits other than R, W and X, or <paramref name="pasid"/> is neither 20 bits nor <see cref="NoPasid"/>.</exception>
    public TranslationRequest(ushort sourceId, ulong iova, Access access, uint pasid = NoPasid, bool isTranslationRequest = false)
    {
        if ((byte)access > (byte)Access.All)
            throw new ArgumentOutOfRangeException(nameof(access), access, "The access must combine Read, Write and Execute only.");
        if (pasid > FaultRecord.MaxPasid && pasid != NoPasid)
            throw new ArgumentOutOfRangeException(nameof(pasid), pasid, $"A PASID has 20 bits (0 to 0x{FaultRecord.MaxPasid:x}); use TranslationRequest.NoPasid for none.");
        SourceId = sourceId;
        Iova = iova;
        Access = access;
        Pasid = pasid;
        IsTranslationRequest = isTranslationRequest;
    }

    // For a caller that has checked access and PASID itself (trace replay's decoder): no checks, so
    // it inlines into a hot loop where the public constructor, with its throws, does not.
    private TranslationRequest(ushort sourceId, ulong iova, Access access, uint pasid, bool isTranslationRequest, bool _)
    {
        SourceId = sourceId;
        Iova = iova;
        Access = access;
        Pasid = pasid;
        IsTranslationRequest = isTranslationRequest;
    }

    /// <summary>A request from values the caller has already checked (access R/W/X bits only, a 20-bit PASID or <see cref="NoPasid"/>).</summary>
    internal static TranslationRequest FromChecked(ushort sourceId, ulong iova, Access access, uint pasid) => new(sourceId, iova, access, pasid, false, false);

    /// <summary>Input address.</summary>
    public ulong Iova { get; }

    /// <summary>PASID, or <see cref="NoPasid"/>.</summary>
    public uint Pasid { get; }

    /// <summary>Requester id (bus/device/function).</summary>
    public ushort SourceId { get; }

    /// <summary>The access asked for.</summary>
    public Access Access { get; }

    /// <summary>Whether this is an ATS translation request (needs TT = 1 in legacy mode, DTE in scalable mode).</summary>
    public bool IsTranslationRequest { get; }

    /// <summary>Whether the request carries a PASID.</summary>
    public bool HasPasid => Pasid != NoPasid;

    /// <summary>Bus number.</summary>
    public byte Bus => (byte)(SourceId >> 8);

    /// <summary>Device/function number.</summary>
    public byte DevFn => (byte)SourceId;

    /// <summary>Composes a source id from bus, device (0..31) and function (0..7).</summary>
    public static ushort Bdf(int bus, int device, int function)
    {
        if ((uint)bus > 255 || (uint)device > 31 || (uint)function > 7)
            throw new ArgumentOutOfRangeException(nameof(bus), $"{bus:x2}:{device:x2}.{function} is not a valid bus/device/function.");
        return (ushort)(bus << 8 | device << 3 | function);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Bus:x2}:{DevFn >> 3:x2}.{DevFn & 7} {Access} 0x{Iova:x}" + (HasPasid ? $" PASID {Pasid}" : "");
}

/// <summary>How a translation ended.</summary>
public enum TranslationStatus : byte
{
    /// <summary>Translated through the IOTLB or a walk.</summary>
    Translated = 0,

    /// <summary>Translation is disabled (GCMD.TE = 0) or the entry is pass-through: output = input.</summary>
    PassThrough = 1,

    /// <summary>The request faulted; <see cref="TranslationResult.Fault"/> says why.</summary>
    Faulted = 2,

    /// <summary>
    /// The unit (or the platform it belongs to) was disposed before the translation started: nothing
    /// was translated, no fault was recorded, and the address must not be used. Not a VT-d fault, so
    /// <see cref="TranslationResult.Fault"/> is <see cref="FaultReason.None"/>.
    /// </summary>
    Disposed = 3,
}

/// <summary>The outcome of <see cref="DmarUnit.Translate"/>: an HPA with its page, or a VT-d fault reason. A value, never an exception.</summary>
/// <remarks>16 bytes (the fields are ordered for it), so it comes back in two registers.</remarks>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct TranslationResult
{
    /// <summary>Creates a result.</summary>
    public TranslationResult(TranslationStatus status, ulong hpa, PageSize size, Access permissions, bool snoop, FaultReason fault, ushort did, bool iotlbHit)
    {
        Status = status;
        Hpa = hpa;
        Size = size;
        Permissions = permissions;
        Snoop = snoop;
        Fault = fault;
        Did = did;
        IotlbHit = iotlbHit;
    }

    /// <summary>
    /// A result from its two 8-byte words as they lie in memory: <paramref name="hpa"/>, then
    /// <paramref name="tail"/> = DID | status &lt;&lt; 16 | size &lt;&lt; 24 | permissions &lt;&lt; 32 |
    /// snoop &lt;&lt; 40 | fault &lt;&lt; 48 | IOTLB hit &lt;&lt; 56 (see <see cref="Tail"/>).
    /// </summary>
    /// <remarks>
    /// For the miss path (issue 14): built field by field, a result that is returned went through the
    /// stack as six narrow stores and one 8-byte load of them, which cannot be forwarded from the
    /// stores and waits for them to reach the cache. Two words are two stores the load is forwarded from,
    /// or none. <c>TranslationResultLayoutTests</c> pins the layout.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TranslationResult FromWords(ulong hpa, ulong tail) => TwoWords.Make<TranslationResult>(hpa, tail);

    /// <summary>The second word of a result (see <see cref="FromWords"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Tail(TranslationStatus status, PageSize size, Access permissions, bool snoop, FaultReason fault, ushort did, bool iotlbHit) =>
        did | (ulong)status << 16 | (ulong)size << 24 | (ulong)permissions << 32 | (snoop ? 1UL << 40 : 0) | (ulong)fault << 48 | (iotlbHit ? 1UL << 56 : 0);

    /// <summary>Translated host-physical address (page + offset); 0 on a fault.</summary>
    public ulong Hpa { get; }

    /// <summary>Domain id the request was translated in (0 if none was reached).</summary>
    public ushort Did { get; }

    /// <summary>How it ended.</summary>
    public TranslationStatus Status { get; }

    /// <summary>Page size of the translation.</summary>
    public PageSize Size { get; }

    /// <summary>Effective permissions of the translation.</summary>
    public Access Permissions { get; }

    /// <summary>Whether the access snoops the CPU caches (PGSNP, or the leaf's SNP with snoop control).</summary>
    public bool Snoop { get; }

    /// <summary>The fault reason, or <see cref="FaultReason.None"/>.</summary>
    public FaultReason Fault { get; }

    /// <summary>Whether the IOTLB answered.</summary>
    public bool IotlbHit { get; }

    /// <summary>Whether the request may proceed (translated or passed through).</summary>
    public bool IsSuccess => Status <= TranslationStatus.PassThrough;

    /// <summary>A fault.</summary>
    public static TranslationResult Faulted(FaultReason reason, ushort did = 0) =>
        new(TranslationStatus.Faulted, 0, PageSize.Size4K, Access.None, false, reason, did, false);

    /// <summary>The answer of a disposed unit (see <see cref="TranslationStatus.Disposed"/>).</summary>
    public static TranslationResult Disposed =>
        new(TranslationStatus.Disposed, 0, PageSize.Size4K, Access.None, false, FaultReason.None, 0, false);

    /// <inheritdoc/>
    public override string ToString() => Status == TranslationStatus.Disposed ? "disposed: nothing translated" : IsSuccess
        ? $"{Status} 0x{Hpa:x} ({Size}, {Permissions}{(Snoop ? ", snoop" : "")}, DID {Did}{(IotlbHit ? ", IOTLB hit" : "")})"
        : $"fault 0x{(byte)Fault:x2} {Fault} (DID {Did})";
}
