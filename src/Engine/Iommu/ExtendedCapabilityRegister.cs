namespace Engine.Iommu;

/// <summary>
/// ECAP_REG (offset 0x10): extended capabilities (SPEC.md §2.2; Linux <c>iommu.h</c> <c>ecap_*</c>).
/// </summary>
/// <remarks>
/// <code>
/// 51 PMS 49 RPS 48 SMPWC 47 FLTS 46 SLTS 45 SLADS 44 VCS 43 SMTS 42 PDS 41 DIT 40 PASID 39:35 PSS
/// 34 EAFS 33 NWFS 31 SRS 30 ERS 29 PRS 28 (old PASID) 27 DIS 26 NEST 25 MTS 24 ECS 23:20 MHMV
/// 17:8 IRO 7 SC 6 PT 4 EIM 3 IR 2 DT 1 QI 0 C
/// </code>
/// </remarks>
public readonly record struct ExtendedCapabilityRegister(ulong Value)
{
    /// <summary>C (0): page-walk coherency (legacy mode).</summary>
    public bool Coherent => RegisterField.Bit(Value, 0);

    /// <summary>QI (1): queued invalidation.</summary>
    public bool Qi => RegisterField.Bit(Value, 1);

    /// <summary>DT (2): device TLBs (ATS).</summary>
    public bool DeviceTlb => RegisterField.Bit(Value, 2);

    /// <summary>IR (3): interrupt remapping.</summary>
    public bool InterruptRemapping => RegisterField.Bit(Value, 3);

    /// <summary>EIM (4): extended interrupt mode (x2APIC).</summary>
    public bool Eim => RegisterField.Bit(Value, 4);

    /// <summary>PT (6): pass-through.</summary>
    public bool PassThrough => RegisterField.Bit(Value, 6);

    /// <summary>SC (7): snoop control (SNP / PGSNP may be set).</summary>
    public bool SnoopControl => RegisterField.Bit(Value, 7);

    /// <summary>IRO (17:8): IOTLB register offset in 16-byte units.</summary>
    public int Iro => (int)RegisterField.Get(Value, 17, 8);

    /// <summary>Byte offset of IVA_REG; IOTLB_REG follows at +8 (<c>ecap_iotlb_offset</c> = IRO × 16).</summary>
    public int IotlbRegisterOffset => Iro * 16;

    /// <summary>MHMV (23:20): maximum interrupt-entry-cache handle mask.</summary>
    public int Mhmv => (int)RegisterField.Get(Value, 23, 20);

    /// <summary>ECS (24): extended context (pre-3.0 specifications).</summary>
    public bool Ecs => RegisterField.Bit(Value, 24);

    /// <summary>MTS (25): memory-type support.</summary>
    public bool Mts => RegisterField.Bit(Value, 25);

    /// <summary>NEST (26): nested translation.</summary>
    public bool Nested => RegisterField.Bit(Value, 26);

    /// <summary>DIS (27): deferred invalidate.</summary>
    public bool Dis => RegisterField.Bit(Value, 27);

    /// <summary>Bit 28: the pre-3.0 PASID bit (Linux <c>ecap_broken_pasid</c>), not used.</summary>
    public bool LegacyPasid => RegisterField.Bit(Value, 28);

    /// <summary>PRS (29): page requests.</summary>
    public bool Prs => RegisterField.Bit(Value, 29);

    /// <summary>ERS (30): execute requests.</summary>
    public bool Ers => RegisterField.Bit(Value, 30);

    /// <summary>SRS (31): supervisor requests.</summary>
    public bool Srs => RegisterField.Bit(Value, 31);

    /// <summary>NWFS (33): no-write flag.</summary>
    public bool Nwfs => RegisterField.Bit(Value, 33);

    /// <summary>EAFS (34): extended accessed flag.</summary>
    public bool Eafs => RegisterField.Bit(Value, 34);

    /// <summary>PSS (39:35): PASID size supported, encoded (bits − 1).</summary>
    public int Pss => (int)RegisterField.Get(Value, 39, 35);

    /// <summary>PASID width in bits (PSS + 1).</summary>
    public int PasidBits => Pss + 1;

    /// <summary>PASID (40): process address space ids.</summary>
    public bool Pasid => RegisterField.Bit(Value, 40);

    /// <summary>DIT (41): device-TLB invalidation throttling.</summary>
    public bool Dit => RegisterField.Bit(Value, 41);

    /// <summary>PDS (42): page drain.</summary>
    public bool Pds => RegisterField.Bit(Value, 42);

    /// <summary>SMTS (43): scalable-mode translation.</summary>
    public bool ScalableMode => RegisterField.Bit(Value, 43);

    /// <summary>VCS (44): virtual command.</summary>
    public bool Vcs => RegisterField.Bit(Value, 44);

    /// <summary>SLADS (45): second-level accessed/dirty.</summary>
    public bool Slads => RegisterField.Bit(Value, 45);

    /// <summary>SLTS (46): second-level translation.</summary>
    public bool Slts => RegisterField.Bit(Value, 46);

    /// <summary>FLTS (47): first-level translation.</summary>
    public bool Flts => RegisterField.Bit(Value, 47);

    /// <summary>SMPWC (48): scalable-mode page-walk coherency.</summary>
    public bool Smpwc => RegisterField.Bit(Value, 48);

    /// <summary>RPS (49): RID_PASID support.</summary>
    public bool Rps => RegisterField.Bit(Value, 49);

    /// <summary>PMS (51): performance monitoring.</summary>
    public bool Pms => RegisterField.Bit(Value, 51);

    /// <summary>Encodes a register from its fields; every field is range-checked.</summary>
    public static ExtendedCapabilityRegister Encode(ExtendedCapabilityFields f)
    {
        ArgumentNullException.ThrowIfNull(f);
        if (f.IotlbRegisterOffset % 16 != 0)
            throw new ArgumentOutOfRangeException(nameof(f), f.IotlbRegisterOffset, "IotlbRegisterOffset must be a multiple of 16.");
        if (f.PasidBits is < 1 or > 32)
            throw new ArgumentOutOfRangeException(nameof(f), f.PasidBits, "PasidBits must be 1..32.");
        ulong v = 0;
        v = RegisterField.SetBit(v, 0, f.Coherent);
        v = RegisterField.SetBit(v, 1, f.Qi);
        v = RegisterField.SetBit(v, 2, f.DeviceTlb);
        v = RegisterField.SetBit(v, 3, f.InterruptRemapping);
        v = RegisterField.SetBit(v, 4, f.Eim);
        v = RegisterField.SetBit(v, 6, f.PassThrough);
        v = RegisterField.SetBit(v, 7, f.SnoopControl);
        v = RegisterField.Set(v, 17, 8, (ulong)(f.IotlbRegisterOffset / 16), nameof(f.IotlbRegisterOffset));
        v = RegisterField.Set(v, 23, 20, (ulong)f.Mhmv, nameof(f.Mhmv));
        v = RegisterField.SetBit(v, 24, f.Ecs);
        v = RegisterField.SetBit(v, 25, f.Mts);
        v = RegisterField.SetBit(v, 26, f.Nested);
        v = RegisterField.SetBit(v, 27, f.Dis);
        v = RegisterField.SetBit(v, 28, f.LegacyPasid);
        v = RegisterField.SetBit(v, 29, f.Prs);
        v = RegisterField.SetBit(v, 30, f.Ers);
        v = RegisterField.SetBit(v, 31, f.Srs);
        v = RegisterField.SetBit(v, 33, f.Nwfs);
        v = RegisterField.SetBit(v, 34, f.Eafs);
        v = RegisterField.Set(v, 39, 35, (ulong)(f.PasidBits - 1), nameof(f.PasidBits));
        v = RegisterField.SetBit(v, 40, f.Pasid);
        v = RegisterField.SetBit(v, 41, f.Dit);
        v = RegisterField.SetBit(v, 42, f.Pds);
        v = RegisterField.SetBit(v, 43, f.ScalableMode);
        v = RegisterField.SetBit(v, 44, f.Vcs);
        v = RegisterField.SetBit(v, 45, f.Slads);
        v = RegisterField.SetBit(v, 46, f.Slts);
        v = RegisterField.SetBit(v, 47, f.Flts);
        v = RegisterField.SetBit(v, 48, f.Smpwc);
        v = RegisterField.SetBit(v, 49, f.Rps);
        v = RegisterField.SetBit(v, 51, f.Pms);
        return new ExtendedCapabilityRegister(v);
    }

    /// <summary>The fields of this register, for editing and re-encoding.</summary>
    public ExtendedCapabilityFields Decode() => new()
    {
        Coherent = Coherent, Qi = Qi, DeviceTlb = DeviceTlb, InterruptRemapping = InterruptRemapping, Eim = Eim,
        PassThrough = PassThrough, SnoopControl = SnoopControl, IotlbRegisterOffset = IotlbRegisterOffset, Mhmv = Mhmv,
        Ecs = Ecs, Mts = Mts, Nested = Nested, Dis = Dis, LegacyPasid = LegacyPasid, Prs = Prs, Ers = Ers, Srs = Srs,
        Nwfs = Nwfs, Eafs = Eafs, PasidBits = PasidBits, Pasid = Pasid, Dit = Dit, Pds = Pds, ScalableMode = ScalableMode,
        Vcs = Vcs, Slads = Slads, Slts = Slts, Flts = Flts, Smpwc = Smpwc, Rps = Rps, Pms = Pms,
    };

    /// <inheritdoc/>
    public override string ToString() => $"ECAP 0x{Value:x}";
}

/// <summary>The fields of ECAP_REG in the units they mean, for <see cref="ExtendedCapabilityRegister.Encode"/>.</summary>
public sealed record ExtendedCapabilityFields
{
    /// <summary>Page-walk coherency (legacy).</summary>
    public bool Coherent { get; init; }
    /// <summary>Queued invalidation.</summary>
    public bool Qi { get; init; }
    /// <summary>Device TLBs.</summary>
    public bool DeviceTlb { get; init; }
    /// <summary>Interrupt remapping.</summary>
    public bool InterruptRemapping { get; init; }
    /// <summary>Extended interrupt mode.</summary>
    public bool Eim { get; init; }
    /// <summary>Pass-through.</summary>
    public bool PassThrough { get; init; }
    /// <summary>Snoop control.</summary>
    public bool SnoopControl { get; init; }
    /// <summary>Byte offset of IVA_REG (multiple of 16).</summary>
    public int IotlbRegisterOffset { get; init; }
    /// <summary>Maximum handle mask value.</summary>
    public int Mhmv { get; init; }
    /// <summary>Extended context.</summary>
    public bool Ecs { get; init; }
    /// <summary>Memory-type support.</summary>
    public bool Mts { get; init; }
    /// <summary>Nested translation.</summary>
    public bool Nested { get; init; }
    /// <summary>Deferred invalidate.</summary>
    public bool Dis { get; init; }
    /// <summary>Pre-3.0 PASID bit.</summary>
    public bool LegacyPasid { get; init; }
    /// <summary>Page requests.</summary>
    public bool Prs { get; init; }
    /// <summary>Execute requests.</summary>
    public bool Ers { get; init; }
    /// <summary>Supervisor requests.</summary>
    public bool Srs { get; init; }
    /// <summary>No-write flag.</summary>
    public bool Nwfs { get; init; }
    /// <summary>Extended accessed flag.</summary>
    public bool Eafs { get; init; }
    /// <summary>PASID width in bits (1..32).</summary>
    public int PasidBits { get; init; } = 1;
    /// <summary>PASID support.</summary>
    public bool Pasid { get; init; }
    /// <summary>Device-TLB invalidation throttling.</summary>
    public bool Dit { get; init; }
    /// <summary>Page drain.</summary>
    public bool Pds { get; init; }
    /// <summary>Scalable-mode translation (SMTS).</summary>
    public bool ScalableMode { get; init; }
    /// <summary>Virtual command.</summary>
    public bool Vcs { get; init; }
    /// <summary>Second-level A/D.</summary>
    public bool Slads { get; init; }
    /// <summary>Second-level translation.</summary>
    public bool Slts { get; init; }
    /// <summary>First-level translation.</summary>
    public bool Flts { get; init; }
    /// <summary>Scalable-mode page-walk coherency.</summary>
    public bool Smpwc { get; init; }
    /// <summary>RID_PASID support.</summary>
    public bool Rps { get; init; }
    /// <summary>Performance monitoring.</summary>
    public bool Pms { get; init; }
}
