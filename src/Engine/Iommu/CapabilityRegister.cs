namespace Engine.Iommu;

/// <summary>
/// CAP_REG (offset 0x08): what a DMA-remapping unit can do (SPEC.md §2.1; Linux <c>iommu.h</c> <c>cap_*</c>).
/// </summary>
/// <remarks>
/// <code>
/// 63 ESRTPS 62 ESIRTPS 61 ECMDS 60 FL5LP 59 PI 56 FL1GP 55 DRD 54 DWD 53:48 MAMV 47:40 NFR
/// 39 PSI 37:34 SLLPS 33:24 FRO 23 ISOCH 22 ZLR 21:16 MGAW 12:8 SAGAW 7 CM 6 PHMR 5 PLMR 4 RWBF 3 AFL 2:0 ND
/// </code>
/// Fields whose encoding is "value + 1" or "× 16" are exposed both raw and as the quantity they mean.
/// </remarks>
public readonly record struct CapabilityRegister(ulong Value)
{
    /// <summary>ND (2:0): number of domains supported, encoded.</summary>
    public int Nd => (int)RegisterField.Get(Value, 2, 0);

    /// <summary>Domain ids the unit supports: 2^(4 + 2·ND) (ND = 6 gives 65 536).</summary>
    public int NumberOfDomains => 1 << (4 + 2 * Nd);

    /// <summary>AFL (3): advanced fault logging.</summary>
    public bool Afl => RegisterField.Bit(Value, 3);

    /// <summary>RWBF (4): required write-buffer flushing.</summary>
    public bool Rwbf => RegisterField.Bit(Value, 4);

    /// <summary>PLMR (5): protected low-memory region.</summary>
    public bool Plmr => RegisterField.Bit(Value, 5);

    /// <summary>PHMR (6): protected high-memory region.</summary>
    public bool Phmr => RegisterField.Bit(Value, 6);

    /// <summary>CM (7): caching mode; not-present and faulting entries may be cached.</summary>
    public bool CachingMode => RegisterField.Bit(Value, 7);

    /// <summary>SAGAW (12:8): supported adjusted guest address widths; bit 1 = 39-bit/3-level, bit 2 = 48-bit/4-level, bit 3 = 57-bit/5-level.</summary>
    public int Sagaw => (int)RegisterField.Get(Value, 12, 8);

    /// <summary>MGAW field (21:16), encoded (width − 1).</summary>
    public int MgawField => (int)RegisterField.Get(Value, 21, 16);

    /// <summary>Maximum guest address width in bits (<c>cap_mgaw</c> = field + 1).</summary>
    public int Mgaw => MgawField + 1;

    /// <summary>ZLR (22): zero-length read.</summary>
    public bool Zlr => RegisterField.Bit(Value, 22);

    /// <summary>ISOCH (23).</summary>
    public bool Isoch => RegisterField.Bit(Value, 23);

    /// <summary>FRO (33:24): fault-recording register offset in 16-byte units.</summary>
    public int Fro => (int)RegisterField.Get(Value, 33, 24);

    /// <summary>Byte offset of the first fault-recording register (<c>cap_fault_reg_offset</c> = FRO × 16).</summary>
    public int FaultRecordingOffset => Fro * 16;

    /// <summary>SLLPS (37:34): second-level large page sizes; bit 0 = 2 MiB, bit 1 = 1 GiB.</summary>
    public int Sllps => (int)RegisterField.Get(Value, 37, 34);

    /// <summary>PSI (39): page-selective invalidation.</summary>
    public bool Psi => RegisterField.Bit(Value, 39);

    /// <summary>NFR field (47:40), encoded (count − 1).</summary>
    public int NfrField => (int)RegisterField.Get(Value, 47, 40);

    /// <summary>Number of fault-recording registers (<c>cap_num_fault_regs</c> = NFR + 1).</summary>
    public int NumberOfFaultRegisters => NfrField + 1;

    /// <summary>MAMV (53:48): largest address-mask value for page-selective invalidation.</summary>
    public int Mamv => (int)RegisterField.Get(Value, 53, 48);

    /// <summary>DWD (54): write draining.</summary>
    public bool Dwd => RegisterField.Bit(Value, 54);

    /// <summary>DRD (55): read draining.</summary>
    public bool Drd => RegisterField.Bit(Value, 55);

    /// <summary>FL1GP (56): first-level 1 GiB pages.</summary>
    public bool Fl1gp => RegisterField.Bit(Value, 56);

    /// <summary>PI (59): posted interrupts.</summary>
    public bool Pi => RegisterField.Bit(Value, 59);

    /// <summary>FL5LP (60): first-level 5-level paging.</summary>
    public bool Fl5lp => RegisterField.Bit(Value, 60);

    /// <summary>ECMDS (61): enhanced command interface.</summary>
    public bool Ecmds => RegisterField.Bit(Value, 61);

    /// <summary>ESIRTPS (62): hardware invalidates interrupt caches on SIRTP.</summary>
    public bool Esirtps => RegisterField.Bit(Value, 62);

    /// <summary>ESRTPS (63): hardware invalidates all caches on SRTP.</summary>
    public bool Esrtps => RegisterField.Bit(Value, 63);

    /// <summary>Encodes a register from its fields; every field is range-checked.</summary>
    public static CapabilityRegister Encode(CapabilityFields f)
    {
        ArgumentNullException.ThrowIfNull(f);
        if (f.Mgaw is < 1 or > 64)
            throw new ArgumentOutOfRangeException(nameof(f), f.Mgaw, "Mgaw must be 1..64 bits.");
        if (f.NumberOfFaultRegisters is < 1 or > 256)
            throw new ArgumentOutOfRangeException(nameof(f), f.NumberOfFaultRegisters, "NumberOfFaultRegisters must be 1..256.");
        if (f.FaultRecordingOffset % 16 != 0)
            throw new ArgumentOutOfRangeException(nameof(f), f.FaultRecordingOffset, "FaultRecordingOffset must be a multiple of 16.");
        ulong v = 0;
        v = RegisterField.Set(v, 2, 0, (ulong)f.Nd, nameof(f.Nd));
        v = RegisterField.SetBit(v, 3, f.Afl);
        v = RegisterField.SetBit(v, 4, f.Rwbf);
        v = RegisterField.SetBit(v, 5, f.Plmr);
        v = RegisterField.SetBit(v, 6, f.Phmr);
        v = RegisterField.SetBit(v, 7, f.CachingMode);
        v = RegisterField.Set(v, 12, 8, (ulong)f.Sagaw, nameof(f.Sagaw));
        v = RegisterField.Set(v, 21, 16, (ulong)(f.Mgaw - 1), nameof(f.Mgaw));
        v = RegisterField.SetBit(v, 22, f.Zlr);
        v = RegisterField.SetBit(v, 23, f.Isoch);
        v = RegisterField.Set(v, 33, 24, (ulong)(f.FaultRecordingOffset / 16), nameof(f.FaultRecordingOffset));
        v = RegisterField.Set(v, 37, 34, (ulong)f.Sllps, nameof(f.Sllps));
        v = RegisterField.SetBit(v, 39, f.Psi);
        v = RegisterField.Set(v, 47, 40, (ulong)(f.NumberOfFaultRegisters - 1), nameof(f.NumberOfFaultRegisters));
        v = RegisterField.Set(v, 53, 48, (ulong)f.Mamv, nameof(f.Mamv));
        v = RegisterField.SetBit(v, 54, f.Dwd);
        v = RegisterField.SetBit(v, 55, f.Drd);
        v = RegisterField.SetBit(v, 56, f.Fl1gp);
        v = RegisterField.SetBit(v, 59, f.Pi);
        v = RegisterField.SetBit(v, 60, f.Fl5lp);
        v = RegisterField.SetBit(v, 61, f.Ecmds);
        v = RegisterField.SetBit(v, 62, f.Esirtps);
        v = RegisterField.SetBit(v, 63, f.Esrtps);
        return new CapabilityRegister(v);
    }

    /// <summary>The fields of this register, for editing and re-encoding.</summary>
    public CapabilityFields Decode() => new()
    {
        Nd = Nd, Afl = Afl, Rwbf = Rwbf, Plmr = Plmr, Phmr = Phmr, CachingMode = CachingMode, Sagaw = Sagaw,
        Mgaw = Mgaw, Zlr = Zlr, Isoch = Isoch, FaultRecordingOffset = FaultRecordingOffset, Sllps = Sllps, Psi = Psi,
        NumberOfFaultRegisters = NumberOfFaultRegisters, Mamv = Mamv, Dwd = Dwd, Drd = Drd, Fl1gp = Fl1gp, Pi = Pi,
        Fl5lp = Fl5lp, Ecmds = Ecmds, Esirtps = Esirtps, Esrtps = Esrtps,
    };

    /// <inheritdoc/>
    public override string ToString() => $"CAP 0x{Value:x}";
}

/// <summary>The fields of CAP_REG in the units they mean (bits, counts, byte offsets), for <see cref="CapabilityRegister.Encode"/>.</summary>
public sealed record CapabilityFields
{
    /// <summary>ND, encoded (0..6; 6 = 65 536 domains).</summary>
    public int Nd { get; init; }
    /// <summary>Advanced fault logging.</summary>
    public bool Afl { get; init; }
    /// <summary>Required write-buffer flushing.</summary>
    public bool Rwbf { get; init; }
    /// <summary>Protected low-memory region.</summary>
    public bool Plmr { get; init; }
    /// <summary>Protected high-memory region.</summary>
    public bool Phmr { get; init; }
    /// <summary>Caching mode.</summary>
    public bool CachingMode { get; init; }
    /// <summary>SAGAW bit mask.</summary>
    public int Sagaw { get; init; }
    /// <summary>Maximum guest address width in bits.</summary>
    public int Mgaw { get; init; } = 48;
    /// <summary>Zero-length read.</summary>
    public bool Zlr { get; init; }
    /// <summary>Isochrony.</summary>
    public bool Isoch { get; init; }
    /// <summary>Byte offset of the fault-recording registers (multiple of 16).</summary>
    public int FaultRecordingOffset { get; init; }
    /// <summary>Second-level large page sizes (bit 0 = 2M, bit 1 = 1G).</summary>
    public int Sllps { get; init; }
    /// <summary>Page-selective invalidation.</summary>
    public bool Psi { get; init; }
    /// <summary>Fault-recording registers (1..256).</summary>
    public int NumberOfFaultRegisters { get; init; } = 1;
    /// <summary>Maximum address-mask value.</summary>
    public int Mamv { get; init; }
    /// <summary>Write draining.</summary>
    public bool Dwd { get; init; }
    /// <summary>Read draining.</summary>
    public bool Drd { get; init; }
    /// <summary>First-level 1 GiB pages.</summary>
    public bool Fl1gp { get; init; }
    /// <summary>Posted interrupts.</summary>
    public bool Pi { get; init; }
    /// <summary>First-level 5-level paging.</summary>
    public bool Fl5lp { get; init; }
    /// <summary>Enhanced command interface.</summary>
    public bool Ecmds { get; init; }
    /// <summary>Invalidation of interrupt caches on SIRTP.</summary>
    public bool Esirtps { get; init; }
    /// <summary>Invalidation of all caches on SRTP.</summary>
    public bool Esrtps { get; init; }
}
