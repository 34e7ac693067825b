using System.Runtime.InteropServices;

namespace Engine.Iommu;

/// <summary>
/// FRCD_REG: one 128-bit fault-recording register, as the lo/hi qword pair at CAP.FRO × 16 + 16·i
/// (SPEC.md §2.7; Linux <c>dma_frcd_*</c> decoders, QEMU <c>VTD_FRCD_*</c>).
/// </summary>
/// <remarks>
/// <code>
/// hi: 63 F | 62 T | 61:60 AT | 59:40 PV | 39:32 FR | 31 PP | 15:0 SID     lo: 63:12 FI | 11:0 0
/// (record bits: F 127, T 126, PV 123:104, FR 103:96, PP 95, SID 79:64, FI 63:12)
/// </code>
/// T is 1 for a read request and 0 for a write, as Linux prints it. F is write-1-to-clear by software.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal readonly record struct FaultRecordingRegister
{
    /// <summary>Size of one register in bytes.</summary>
    public const int Size = 16;

    /// <summary>FI: the faulting page address in the lo qword (bits 63:12).</summary>
    public const ulong AddressMask = ~0xFFFUL;

    /// <summary>SID: hi bits 15:0.</summary>
    public const ulong SourceIdMask = 0xFFFF;

    /// <summary>PP (PASID present): hi bit 31.</summary>
    public const ulong PasidPresentBit = 1UL << 31;

    /// <summary>FR (fault reason): hi bits 39:32.</summary>
    public const int ReasonShift = 32;

    /// <summary>FR, in place.</summary>
    public const ulong ReasonMask = 0xFFUL << ReasonShift;

    /// <summary>PV (PASID value): hi bits 59:40.</summary>
    public const int PasidShift = 40;

    /// <summary>PV, in place.</summary>
    public const ulong PasidMask = (ulong)FaultRecord.MaxPasid << PasidShift;

    /// <summary>T (type): hi bit 62; 1 = read, 0 = write.</summary>
    public const ulong TypeBit = 1UL << 62;

    /// <summary>F (fault): hi bit 63; set by hardware after the other fields, write-1-to-clear.</summary>
    public const ulong FaultBit = DmarRegisters.FaultRecordF;

    [FieldOffset(0)]
    private readonly ulong _lo;

    [FieldOffset(8)]
    private readonly ulong _hi;

    /// <summary>Creates the register from its two qwords.</summary>
    public FaultRecordingRegister(ulong lo, ulong hi)
    {
        _lo = lo;
        _hi = hi;
    }

    /// <summary>The lo qword (FRCD_REG[i].lo).</summary>
    public ulong Lo => _lo;

    /// <summary>The hi qword (FRCD_REG[i].hi).</summary>
    public ulong Hi => _hi;

    /// <summary>FI: the faulting page address.</summary>
    public ulong Address => _lo & AddressMask;

    /// <summary>SID: the faulting requester.</summary>
    public ushort SourceId => (ushort)(_hi & SourceIdMask);

    /// <summary>PP: the request carried a PASID.</summary>
    public bool PasidPresent => (_hi & PasidPresentBit) != 0;

    /// <summary>FR: the fault reason.</summary>
    public FaultReason Reason => (FaultReason)((_hi & ReasonMask) >> ReasonShift);

    /// <summary>PV: the PASID (meaningful when <see cref="PasidPresent"/>).</summary>
    public uint Pasid => (uint)((_hi & PasidMask) >> PasidShift);

    /// <summary>T: a read request (1) rather than a write (0).</summary>
    public bool IsRead => (_hi & TypeBit) != 0;

    /// <summary>F: a fault is recorded here and not yet cleared by software.</summary>
    public bool Fault => (_hi & FaultBit) != 0;

    /// <summary>Encodes <paramref name="fault"/> with F set, as hardware records it.</summary>
    public static FaultRecordingRegister Encode(in FaultRecord fault)
    {
        ulong hi = fault.SourceId | (ulong)(byte)fault.Reason << ReasonShift | FaultBit;
        if (fault.HasPasid)
            hi |= PasidPresentBit | (ulong)fault.Pasid << PasidShift;
        if (!fault.IsWrite)
            hi |= TypeBit;
        return new FaultRecordingRegister(fault.Address & AddressMask, hi);
    }

    /// <summary>The fault this register holds (the address page-aligned; FPD is not recorded and reads false).</summary>
    public FaultRecord Decode() =>
        new(SourceId, Address, Reason, !IsRead, PasidPresent ? Pasid : TranslationRequest.NoPasid);

    /// <inheritdoc/>
    public override string ToString() => $"FRCD hi 0x{_hi:x16} lo 0x{_lo:x16}";
}
