using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Iommu;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary><c>engine caps decode</c>: every CAP/ECAP field and what the Linux driver derives from them.</summary>
internal static class CapsCommand
{
    public static Command Create(TextWriter output)
    {
        var registers = new RegisterOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var legacy = new Option<bool>("--sm-off") { Description = "Decode as the driver would with scalable mode switched off (intel_iommu=sm_off)." };
        var decode = new Command("decode", "Decode capability registers as the Linux Intel IOMMU driver does.") { json, legacy };
        registers.AddTo(decode);
        decode.SetAction(parse =>
        {
            (CapabilityRegister cap, ExtendedCapabilityRegister ecap) = registers.Resolve(parse);
            var view = new DriverView(cap, ecap, !parse.GetValue(legacy));
            if (parse.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(CapsReport.From(view), ReportJson.Default.CapsReport));
            else
                PrintTable(view, output);
            return 0;
        });
        return new Command("caps", "IOMMU capability registers.") { decode };
    }

    private static void PrintTable(DriverView v, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 120);
        var table = new Table().Title($"CAP 0x{v.Cap.Value:x16}  ECAP 0x{v.Ecap.Value:x16}")
            .AddColumn("register").AddColumn("field").AddColumn(new TableColumn("value").RightAligned()).AddColumn("meaning");
        void Row(string reg, string field, object value, string meaning = "") =>
            table.AddRow(reg, field, Markup.Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""), Markup.Escape(meaning));
        // A one-bit field's meaning is what its value says: "no snoop control" when SC is 0.
        void Flag(string reg, string field, bool value, string whenSet, string? whenClear = null) =>
            Row(reg, field, value, value ? whenSet : whenClear ?? $"no {whenSet}");
        CapabilityRegister c = v.Cap;
        Row("CAP", "ND (2:0)", c.Nd, $"{c.NumberOfDomains} domain ids");
        Flag("CAP", "AFL (3)", c.Afl, "advanced fault logging");
        Flag("CAP", "RWBF (4)", c.Rwbf, "write-buffer flush required");
        Flag("CAP", "PLMR (5)", c.Plmr, "protected low-memory region");
        Flag("CAP", "PHMR (6)", c.Phmr, "protected high-memory region");
        Flag("CAP", "CM (7)", c.CachingMode, "caching mode");
        Row("CAP", "SAGAW (12:8)", $"0x{c.Sagaw:x}", SagawText(c.Sagaw));
        Row("CAP", "MGAW (21:16)", c.MgawField, $"{c.Mgaw}-bit guest addresses");
        Flag("CAP", "ZLR (22)", c.Zlr, "zero-length read");
        Flag("CAP", "ISOCH (23)", c.Isoch, "isochrony");
        Row("CAP", "FRO (33:24)", c.Fro, $"fault registers at 0x{c.FaultRecordingOffset:x}");
        Row("CAP", "SLLPS (37:34)", $"0x{c.Sllps:x}", (c.Sllps & 1) != 0 ? (c.Sllps & 2) != 0 ? "2M, 1G" : "2M" : (c.Sllps & 2) != 0 ? "1G" : "none");
        Flag("CAP", "PSI (39)", c.Psi, "page-selective invalidation");
        Row("CAP", "NFR (47:40)", c.NfrField, $"{c.NumberOfFaultRegisters} fault registers");
        Row("CAP", "MAMV (53:48)", c.Mamv, "max address mask");
        Flag("CAP", "DWD (54)", c.Dwd, "write draining");
        Flag("CAP", "DRD (55)", c.Drd, "read draining");
        Flag("CAP", "FL1GP (56)", c.Fl1gp, "first-level 1G pages");
        Flag("CAP", "PI (59)", c.Pi, "posted interrupts");
        Flag("CAP", "FL5LP (60)", c.Fl5lp, "first-level 5-level paging");
        Flag("CAP", "ECMDS (61)", c.Ecmds, "enhanced command interface");
        Flag("CAP", "ESIRTPS (62)", c.Esirtps, "caches invalidated by hardware on SIRTP");
        Flag("CAP", "ESRTPS (63)", c.Esrtps, "caches invalidated by hardware on SRTP");
        ExtendedCapabilityRegister e = v.Ecap;
        Flag("ECAP", "C (0)", e.Coherent, "page-walk coherency (legacy)");
        Flag("ECAP", "QI (1)", e.Qi, "queued invalidation");
        Flag("ECAP", "DT (2)", e.DeviceTlb, "device TLBs");
        Flag("ECAP", "IR (3)", e.InterruptRemapping, "interrupt remapping");
        Flag("ECAP", "EIM (4)", e.Eim, "extended interrupt mode (x2APIC)");
        Flag("ECAP", "PT (6)", e.PassThrough, "pass-through");
        Flag("ECAP", "SC (7)", e.SnoopControl, "snoop control");
        Row("ECAP", "IRO (17:8)", e.Iro, $"IOTLB registers at 0x{e.IotlbRegisterOffset:x}");
        Row("ECAP", "MHMV (23:20)", e.Mhmv);
        Flag("ECAP", "ECS (24)", e.Ecs, "extended context (pre-3.0)");
        Flag("ECAP", "MTS (25)", e.Mts, "memory type support");
        Flag("ECAP", "NEST (26)", e.Nested, "nested translation");
        Flag("ECAP", "DIS (27)", e.Dis, "deferred invalidate (pre-3.0)");
        Row("ECAP", "PASID (28, pre-3.0)", e.LegacyPasid, "not used by the driver, whatever its value");
        Flag("ECAP", "PRS (29)", e.Prs, "page requests");
        Flag("ECAP", "ERS (30)", e.Ers, "execute requests");
        Flag("ECAP", "SRS (31)", e.Srs, "supervisor requests");
        Flag("ECAP", "NWFS (33)", e.Nwfs, "no-write flag");
        Flag("ECAP", "EAFS (34)", e.Eafs, "extended accessed flag");
        Row("ECAP", "PSS (39:35)", e.Pss, $"{e.PasidBits}-bit PASIDs");
        Flag("ECAP", "PASID (40)", e.Pasid, "PASIDs");
        Flag("ECAP", "DIT (41)", e.Dit, "device-TLB invalidation throttling");
        Flag("ECAP", "PDS (42)", e.Pds, "page drain");
        Flag("ECAP", "SMTS (43)", e.ScalableMode, "scalable mode");
        Flag("ECAP", "VCS (44)", e.Vcs, "virtual command");
        Flag("ECAP", "SLADS (45)", e.Slads, "second-level accessed/dirty");
        Flag("ECAP", "SLTS (46)", e.Slts, "second-level translation");
        Flag("ECAP", "FLTS (47)", e.Flts, "first-level translation");
        Flag("ECAP", "SMPWC (48)", e.Smpwc, "scalable-mode page-walk coherency");
        Flag("ECAP", "RPS (49)", e.Rps, "RID_PASID");
        Flag("ECAP", "PMS (51)", e.Pms, "performance monitoring");
        Row("driver", "scalable mode in use", v.ScalableMode);
        Row("driver", "effective SAGAW", $"0x{v.EffectiveSagaw:x}", SagawText(v.EffectiveSagaw));
        Row("driver", "agaw", v.Agaw, v.Agaw < 0 ? "none: the unit would be ignored" : $"{v.AgawWidth}-bit, {AgawMath.AgawToLevel(v.Agaw)}-level");
        Row("driver", "superpage level", v.SuperpageLevel, v.SuperpageLevel switch { 0 => "4K only", 1 => "up to 2M", _ => "up to 1G" });
        Row("driver", "paging-structure coherency", v.PagingStructureCoherency, v.ScalableMode ? "from SMPWC" : "from C");
        console.Write(table);
    }

    private static string SagawText(int sagaw)
    {
        var parts = new List<string>();
        for (int agaw = 0; agaw < 5; agaw++)
        {
            if ((sagaw & (1 << agaw)) != 0)
                parts.Add($"{AgawMath.AgawToWidth(agaw)}-bit/{AgawMath.AgawToLevel(agaw)}-level");
        }
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }
}

/// <summary>The JSON shape of <c>engine caps decode --json</c>; the keys are a contract.</summary>
internal sealed record CapsReport(
    int Sagaw, int Mgaw, int Agaw, int SuperpageLevel, int Domains, bool CachingMode, bool Rwbf, bool Psi,
    int MaxAddressMask, int FaultRegisters, int FaultRegisterOffset, bool Fl1gp, bool Fl5lp, bool Coherent, bool Qi,
    bool DeviceTlb, bool InterruptRemapping, bool Eim, bool PassThrough, bool SnoopControl, int IotlbRegisterOffset,
    bool Nested, bool Prs, bool Pasid, bool ScalableMode, bool Slts, bool Flts, bool Smpwc, bool Slads, bool PagingCoherency)
{
    public static CapsReport From(DriverView v) => new(
        v.Cap.Sagaw, v.Cap.Mgaw, v.Agaw, v.SuperpageLevel, v.NumberOfDomains, v.Cap.CachingMode, v.Cap.Rwbf, v.Cap.Psi,
        v.Cap.Mamv, v.FaultRegisters, v.FaultRegisterOffset, v.Cap.Fl1gp, v.Cap.Fl5lp, v.Ecap.Coherent, v.Ecap.Qi,
        v.Ecap.DeviceTlb, v.Ecap.InterruptRemapping, v.Ecap.Eim, v.Ecap.PassThrough, v.Ecap.SnoopControl,
        v.IotlbRegisterOffset, v.Ecap.Nested, v.Ecap.Prs, v.Ecap.Pasid, v.Ecap.ScalableMode, v.Ecap.Slts, v.Ecap.Flts,
        v.Ecap.Smpwc, v.Ecap.Slads, v.PagingStructureCoherency);
}
