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
        var cap = HexOption.Create("--cap", "CAP_REG value (hex).");
        var ecap = HexOption.Create("--ecap", "ECAP_REG value (hex).");
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var legacy = new Option<bool>("--sm-off") { Description = "Decode as the driver would with scalable mode switched off (intel_iommu=sm_off)." };
        var decode = new Command("decode", "Decode capability registers as the Linux Intel IOMMU driver does.") { cap, ecap, json, legacy };
        decode.SetAction(parse =>
        {
            var view = new DriverView(new CapabilityRegister(parse.GetValue(cap)), new ExtendedCapabilityRegister(parse.GetValue(ecap)), !parse.GetValue(legacy));
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
        CapabilityRegister c = v.Cap;
        Row("CAP", "ND (2:0)", c.Nd, $"{c.NumberOfDomains} domain ids");
        Row("CAP", "AFL (3)", c.Afl);
        Row("CAP", "RWBF (4)", c.Rwbf, "write-buffer flush required");
        Row("CAP", "PLMR (5)", c.Plmr);
        Row("CAP", "PHMR (6)", c.Phmr);
        Row("CAP", "CM (7)", c.CachingMode, "caching mode");
        Row("CAP", "SAGAW (12:8)", $"0x{c.Sagaw:x}", SagawText(c.Sagaw));
        Row("CAP", "MGAW (21:16)", c.MgawField, $"{c.Mgaw}-bit guest addresses");
        Row("CAP", "ZLR (22)", c.Zlr);
        Row("CAP", "ISOCH (23)", c.Isoch);
        Row("CAP", "FRO (33:24)", c.Fro, $"fault registers at 0x{c.FaultRecordingOffset:x}");
        Row("CAP", "SLLPS (37:34)", $"0x{c.Sllps:x}", (c.Sllps & 1) != 0 ? (c.Sllps & 2) != 0 ? "2M, 1G" : "2M" : (c.Sllps & 2) != 0 ? "1G" : "none");
        Row("CAP", "PSI (39)", c.Psi, "page-selective invalidation");
        Row("CAP", "NFR (47:40)", c.NfrField, $"{c.NumberOfFaultRegisters} fault registers");
        Row("CAP", "MAMV (53:48)", c.Mamv, "max address mask");
        Row("CAP", "DWD (54)", c.Dwd);
        Row("CAP", "DRD (55)", c.Drd);
        Row("CAP", "FL1GP (56)", c.Fl1gp, "first-level 1G pages");
        Row("CAP", "PI (59)", c.Pi, "posted interrupts");
        Row("CAP", "FL5LP (60)", c.Fl5lp, "first-level 5-level paging");
        Row("CAP", "ECMDS (61)", c.Ecmds);
        Row("CAP", "ESIRTPS (62)", c.Esirtps);
        Row("CAP", "ESRTPS (63)", c.Esrtps);
        ExtendedCapabilityRegister e = v.Ecap;
        Row("ECAP", "C (0)", e.Coherent, "page-walk coherency (legacy)");
        Row("ECAP", "QI (1)", e.Qi, "queued invalidation");
        Row("ECAP", "DT (2)", e.DeviceTlb, "device TLBs");
        Row("ECAP", "IR (3)", e.InterruptRemapping);
        Row("ECAP", "EIM (4)", e.Eim);
        Row("ECAP", "PT (6)", e.PassThrough);
        Row("ECAP", "SC (7)", e.SnoopControl, "snoop control");
        Row("ECAP", "IRO (17:8)", e.Iro, $"IOTLB registers at 0x{e.IotlbRegisterOffset:x}");
        Row("ECAP", "MHMV (23:20)", e.Mhmv);
        Row("ECAP", "ECS (24)", e.Ecs);
        Row("ECAP", "MTS (25)", e.Mts);
        Row("ECAP", "NEST (26)", e.Nested);
        Row("ECAP", "DIS (27)", e.Dis);
        Row("ECAP", "PASID (28, pre-3.0)", e.LegacyPasid, "not used");
        Row("ECAP", "PRS (29)", e.Prs, "page requests");
        Row("ECAP", "ERS (30)", e.Ers);
        Row("ECAP", "SRS (31)", e.Srs);
        Row("ECAP", "NWFS (33)", e.Nwfs);
        Row("ECAP", "EAFS (34)", e.Eafs);
        Row("ECAP", "PSS (39:35)", e.Pss, $"{e.PasidBits}-bit PASIDs");
        Row("ECAP", "PASID (40)", e.Pasid);
        Row("ECAP", "DIT (41)", e.Dit);
        Row("ECAP", "PDS (42)", e.Pds);
        Row("ECAP", "SMTS (43)", e.ScalableMode, "scalable mode");
        Row("ECAP", "VCS (44)", e.Vcs);
        Row("ECAP", "SLADS (45)", e.Slads);
        Row("ECAP", "SLTS (46)", e.Slts, "second-level translation");
        Row("ECAP", "FLTS (47)", e.Flts, "first-level translation");
        Row("ECAP", "SMPWC (48)", e.Smpwc, "scalable-mode page-walk coherency");
        Row("ECAP", "RPS (49)", e.Rps);
        Row("ECAP", "PMS (51)", e.Pms);
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
