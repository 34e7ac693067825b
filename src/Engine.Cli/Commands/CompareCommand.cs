using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Cli.Results;
using Perfolizer.Metrology;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine compare BASE DIFF</c>: the CI gate. For every workload in both results files, a
/// Mann–Whitney U test at the threshold over the per-run samples (<see cref="BenchComparison"/>),
/// the verdict, the ratio of medians and the calibrated ratio; a table or <c>--json</c>. Exit 0 when
/// nothing is slower, 1 when something is, 2 on bad input (each bad file or value named).
/// </summary>
internal static class CompareCommand
{
    /// <summary>Exit code when at least one workload is slower.</summary>
    public const int ExitSlower = 1;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var baseline = new Argument<string>("BASE") { Description = "The baseline results (engine bench --json/--out, or a BenchmarkDotNet full-JSON export)." };
        var diff = new Argument<string>("DIFF") { Description = "The results to judge against BASE." };
        var threshold = new Option<string>("--threshold") { Description = "Smallest change that counts, relative (5%) or absolute (0.5ns).", DefaultValueFactory = _ => "5%" };
        var noise = new Option<string>("--noise") { Description = "Differences of medians below this are Same (ns; e.g. 0.3ns).", DefaultValueFactory = _ => "0.3ns" };
        var calibrated = new Option<bool>("--calibrated") { Description = "Test each side's samples divided by its own calibration figure (runs from different machines or hours)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("compare", "Compare two bench results: Faster / Slower / Same per workload (Mann–Whitney U at a threshold); exit 1 when something is slower.")
        {
            baseline, diff, threshold, noise, calibrated, json,
        };
        command.SetAction(parse =>
        {
            string thresholdText = parse.GetValue(threshold)!;
            if (!Threshold.TryParse(thresholdText.Trim(), out Threshold parsedThreshold) || thresholdText.Trim().StartsWith('-'))
                throw new CommandLineException($"--threshold: '{thresholdText}' is not a threshold; give a percentage (5%) or a time (0.5ns).");
            double noiseNs = ParseNoise(parse.GetValue(noise)!);
            string basePath = parse.GetValue(baseline)!;
            string diffPath = parse.GetValue(diff)!;
            BenchDocument baseDocument, diffDocument;
            try
            {
                baseDocument = BenchResultsReader.Read(basePath);
                diffDocument = BenchResultsReader.Read(diffPath);
            }
            catch (BenchFileException e)
            {
                error.WriteLine($"engine compare: {e.Message}");
                return Program.ExitBadArguments;
            }
            bool asCalibrated = parse.GetValue(calibrated);
            if (asCalibrated)
            {
                foreach ((string path, BenchDocument d) in (ReadOnlySpan<(string, BenchDocument)>)[(basePath, baseDocument), (diffPath, diffDocument)])
                {
                    if (d.Environment.CalibrationNsPerStep is not > 0)
                    {
                        error.WriteLine($"engine compare: --calibrated: {path} has no calibration figure (a BenchmarkDotNet export?).");
                        return Program.ExitBadArguments;
                    }
                }
            }
            IReadOnlyList<WorkloadComparison> rows = BenchComparison.Compare(baseDocument, diffDocument, parsedThreshold, noiseNs, asCalibrated);
            if (rows.Count == 0)
            {
                error.WriteLine($"engine compare: {basePath} and {diffPath} have no workload in common "
                    + $"({basePath}: {string.Join(", ", baseDocument.Workloads.Select(w => w.Name))}; {diffPath}: {string.Join(", ", diffDocument.Workloads.Select(w => w.Name))}).");
                return Program.ExitBadArguments;
            }
            var diffNames = diffDocument.Workloads.Select(w => w.Name).ToHashSet();
            var baseNames = baseDocument.Workloads.Select(w => w.Name).ToHashSet();
            var report = new CompareReport(
                basePath, diffPath, thresholdText, noiseNs, asCalibrated, BenchComparison.Alpha,
                baseDocument.Environment.Commit, diffDocument.Environment.Commit,
                BenchComparison.GeometricMean(rows.Select(r => r.Ratio)),
                rows.All(r => r.CalibratedRatio is not null) ? BenchComparison.GeometricMean(rows.Select(r => r.CalibratedRatio!.Value)) : null,
                rows.Count(r => r.Verdict == Verdict.Faster), rows.Count(r => r.Verdict == Verdict.Slower), rows.Count(r => r.Verdict == Verdict.Same),
                [.. rows.Select(r => new CompareRow(r.Name, r.BaseNsPerOp, r.DiffNsPerOp, r.Ratio, r.CalibratedRatio, r.Verdict.ToString(), r.BaseSamples, r.DiffSamples))],
                [.. baseDocument.Workloads.Select(w => w.Name).Where(n => !diffNames.Contains(n))],
                [.. diffDocument.Workloads.Select(w => w.Name).Where(n => !baseNames.Contains(n))]);
            if (parse.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(report, CompareJson.Default.CompareReport));
            else
                PrintTable(report, output);
            return report.Slower > 0 ? ExitSlower : 0;
        });
        return command;
    }

    /// <summary>Parses a noise floor: a number with an optional unit (ns, us/μs, ms); the default unit is ns.</summary>
    internal static double ParseNoise(string text)
    {
        string t = text.Trim();
        double scale = 1;
        foreach ((string unit, double factor) in (ReadOnlySpan<(string, double)>)[("ns", 1), ("us", 1e3), ("μs", 1e3), ("ms", 1e6)])
        {
            if (t.EndsWith(unit, StringComparison.OrdinalIgnoreCase))
            {
                t = t[..^unit.Length].Trim();
                scale = factor;
                break;
            }
        }
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value < 0)
            throw new CommandLineException($"--noise: '{text}' is not a time ≥ 0 (e.g. 0.3ns).");
        return value * scale;
    }

    private static void PrintTable(CompareReport report, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 120);
        var table = new Table()
            .Title($"engine compare — Mann–Whitney U at {Markup.Escape(report.Threshold)} (α = {report.Alpha.ToString(CultureInfo.InvariantCulture)}), noise {report.NoiseNs.ToString(CultureInfo.InvariantCulture)} ns{(report.Calibrated ? ", calibrated" : "")}")
            .AddColumn("workload").AddColumn(new TableColumn("base ns/op").RightAligned()).AddColumn(new TableColumn("diff ns/op").RightAligned())
            .AddColumn(new TableColumn("ratio").RightAligned()).AddColumn(new TableColumn("calibrated ratio").RightAligned()).AddColumn("verdict")
            .AddColumn(new TableColumn("samples").RightAligned());
        foreach (CompareRow r in report.Workloads)
        {
            string verdict = r.Verdict switch
            {
                nameof(Verdict.Slower) => "[red]Slower[/]",
                nameof(Verdict.Faster) => "[green]Faster[/]",
                _ => "Same",
            };
            table.AddRow(Markup.Escape(r.Name), F(r.BaseNsPerOp, "F2"), F(r.DiffNsPerOp, "F2"), F(r.Ratio, "F3"),
                r.CalibratedRatio is double c ? F(c, "F3") : "—", verdict, $"{r.BaseSamples}/{r.DiffSamples}");
        }
        console.Write(table);
        console.WriteLine($"{report.Slower} slower, {report.Faster} faster, {report.Same} same; geometric mean ratio {F(report.GeometricMeanRatio, "F3")}"
            + (report.GeometricMeanCalibratedRatio is double g ? $" (calibrated {F(g, "F3")})" : ""));
        if (report.OnlyInBase.Count > 0)
            console.WriteLine($"only in {report.Base}: {string.Join(", ", report.OnlyInBase)}");
        if (report.OnlyInDiff.Count > 0)
            console.WriteLine($"only in {report.Diff}: {string.Join(", ", report.OnlyInDiff)}");
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}

/// <summary>
/// <c>engine compare --json</c>. Keys: base, diff, threshold, noiseNs, calibrated, alpha, baseCommit,
/// diffCommit, geometricMeanRatio, geometricMeanCalibratedRatio, faster, slower, same, workloads[],
/// onlyInBase[], onlyInDiff[].
/// </summary>
internal sealed record CompareReport(
    string Base, string Diff, string Threshold, double NoiseNs, bool Calibrated, double Alpha,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? BaseCommit,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? DiffCommit,
    double GeometricMeanRatio,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? GeometricMeanCalibratedRatio,
    int Faster, int Slower, int Same, IReadOnlyList<CompareRow> Workloads, IReadOnlyList<string> OnlyInBase, IReadOnlyList<string> OnlyInDiff);

/// <summary>One workload of <c>engine compare --json</c>: name, baseNsPerOp, diffNsPerOp, ratio, calibratedRatio (null without calibration), verdict (Faster|Slower|Same), baseSamples, diffSamples.</summary>
internal sealed record CompareRow(
    string Name, double BaseNsPerOp, double DiffNsPerOp, double Ratio,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? CalibratedRatio,
    string Verdict, int BaseSamples, int DiffSamples);

/// <summary>Source-generated JSON for <see cref="CompareReport"/>.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(CompareReport))]
internal sealed partial class CompareJson : JsonSerializerContext;
