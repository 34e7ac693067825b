using System.Text.Json;
using Engine.Cli;
using Engine.Cli.Results;
using Perfolizer.Metrology;

namespace Engine.Tests.Perf;

public class CompareTests
{
    private static readonly Threshold FivePercent = Threshold.Parse("5%");

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    private static Verdict Judge(double[] baseline, double[] diff, double noiseNs = 0) =>
        BenchComparison.Compare(SyntheticResults.Document(("w", baseline)), SyntheticResults.Document(("w", diff)), FivePercent, noiseNs, calibrated: false)[0].Verdict;

    /// <summary>
    /// Two sets of 10 samples (what engine bench writes) from the same distribution with 5 % noise,
    /// for 1000 seeds: the false-positive rate (anything but Same) must stay at or under 1 %. With
    /// Perfolizer 0.6.1 it is 0 of 1000; at 5 samples a side it is 2 of 1000.
    /// </summary>
    [Fact]
    public void SamplesFromTheSameNoisyDistributionAreSameForAThousandSeeds()
    {
        int falsePositives = 0;
        for (int seed = 0; seed < 1000; seed++)
        {
            Verdict v = Judge(SyntheticResults.Samples(2 * seed, 10, 100, 0.05), SyntheticResults.Samples(2 * seed + 1, 10, 100, 0.05));
            if (v != Verdict.Same)
                falsePositives++;
        }
        Assert.True(falsePositives <= 10, $"{falsePositives} of 1000 same-distribution pairs were not Same (bound: 1 %).");
    }

    /// <summary>
    /// A 10 % slowdown in 5 % noise with 30 samples a side is found Slower for at least 90 % of 200
    /// seeds (96 % with Perfolizer 0.6.1), and a 10 % speed-up Faster as often. With engine bench's 10
    /// samples the power is lower (about 58 %); docs/perf-ci.md says so.
    /// </summary>
    [Fact]
    public void ATenPercentSlowdownHiddenInFivePercentNoiseIsSlower()
    {
        int slower = 0, faster = 0;
        for (int seed = 0; seed < 200; seed++)
        {
            double[] baseline = SyntheticResults.Samples(3 * seed, 30, 100, 0.05);
            if (Judge(baseline, SyntheticResults.Samples(3 * seed + 1, 30, 110, 0.05)) == Verdict.Slower)
                slower++;
            if (Judge(baseline, SyntheticResults.Samples(3 * seed + 2, 30, 90, 0.05)) == Verdict.Faster)
                faster++;
        }
        Assert.True(slower >= 180, $"a 10 % slowdown was found Slower for only {slower} of 200 seeds.");
        Assert.True(faster >= 180, $"a 10 % speed-up was found Faster for only {faster} of 200 seeds.");
    }

    [Fact]
    public void ADifferenceBelowTheNoiseFloorIsSame()
    {
        double[] baseline = SyntheticResults.Samples(1, 10, 2.0, 0.001);
        double[] diff = SyntheticResults.Samples(2, 10, 2.2, 0.001); // 10 % slower but only 0.2 ns
        Assert.Equal(Verdict.Slower, Judge(baseline, diff));
        Assert.Equal(Verdict.Same, Judge(baseline, diff, noiseNs: 0.3));
    }

    [Fact]
    public void CompareExitsWith1WhenSlowerAnd0WhenNotAndTheJsonHasTheContractKeys()
    {
        using var dir = new TempDirectory();
        string a = SyntheticResults.Write(dir.Path, "a.json", SyntheticResults.Document(
            ("iotlb-hit", SyntheticResults.Samples(1, 10, 5, 0.01)), ("walk", SyntheticResults.Samples(2, 10, 50, 0.01)), ("gone", [1.0])));
        string b = SyntheticResults.Write(dir.Path, "b.json", SyntheticResults.Document(
            ("iotlb-hit", SyntheticResults.Samples(3, 10, 5, 0.01)), ("walk", SyntheticResults.Samples(4, 10, 60, 0.01)), ("new", [1.0])));
        var (code, output, error) = Run("compare", a, b, "--json");
        Assert.True(code == 1, $"exit {code}: {error}");
        using var doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.Equal(1, root.GetProperty("slower").GetInt32());
        Assert.Equal(["gone"], root.GetProperty("onlyInBase").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["new"], root.GetProperty("onlyInDiff").EnumerateArray().Select(e => e.GetString()));
        JsonElement[] rows = [.. root.GetProperty("workloads").EnumerateArray()];
        Assert.Equal(["Same", "Slower"], rows.Select(r => r.GetProperty("verdict").GetString()));
        Assert.Equal(["baseNsPerOp", "baseSamples", "calibratedRatio", "diffNsPerOp", "diffSamples", "name", "ratio", "verdict"],
            rows[0].EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(1.2, rows[1].GetProperty("ratio").GetDouble(), 1);

        var (same, table, _) = Run("compare", a, a);
        Assert.Equal(0, same);
        Assert.Contains("iotlb-hit", table);
        Assert.Contains("Same", table);
    }

    [Fact]
    public void CalibratedRatiosDivideEachSideByItsOwnCalibration()
    {
        // DIFF ran on a machine twice as slow: raw 2x slower, calibrated the same.
        BenchDocument baseline = SyntheticResults.Document(5.0, DateTimeOffset.UnixEpoch, ("w", SyntheticResults.Samples(1, 10, 10, 0.01)));
        BenchDocument diff = SyntheticResults.Document(10.0, DateTimeOffset.UnixEpoch, ("w", SyntheticResults.Samples(2, 10, 20, 0.01)));
        WorkloadComparison raw = BenchComparison.Compare(baseline, diff, FivePercent, 0.3, calibrated: false)[0];
        WorkloadComparison calibrated = BenchComparison.Compare(baseline, diff, FivePercent, 0.3, calibrated: true)[0];
        Assert.Equal(Verdict.Slower, raw.Verdict);
        Assert.Equal(Verdict.Same, calibrated.Verdict);
        Assert.Equal(1.0, calibrated.CalibratedRatio!.Value, 1);
    }

    [Fact]
    public void BadFilesExitWith2AndAreNamed()
    {
        using var dir = new TempDirectory();
        string good = SyntheticResults.Write(dir.Path, "good.json", SyntheticResults.Document(("w", [1.0, 1.1])));
        string other = SyntheticResults.Write(dir.Path, "other.json", SyntheticResults.Document(("x", [1.0, 1.1])));
        string missing = dir.File("missing.json");
        string notJson = dir.File("not-json.json");
        File.WriteAllText(notJson, "ns/op 5.2");
        string newer = dir.File("newer.json");
        File.WriteAllText(newer, """{"format":"engine-bench","version":2,"workloads":[]}""");
        string older = dir.File("older.json");
        File.WriteAllText(older, """{"format":"engine-bench","version":0}""");
        string unversioned = dir.File("unversioned.json");
        File.WriteAllText(unversioned, """[{"name":"w","nsPerOp":1}]""");
        string unknown = dir.File("unknown.json");
        File.WriteAllText(unknown, """{"hello":1}""");
        string empty = dir.File("empty.json");
        File.WriteAllText(empty, """{"format":"engine-bench","version":1,"environment":{"cpuModel":"c","logicalCores":1,"isa":"none","runtime":"r","os":"o","utcTime":"2026-01-01T00:00:00Z"},"workloads":[]}""");

        foreach ((string file, string says) in new[]
        {
            (missing, "no such file"), (notJson, "not JSON"), (newer, "engine-bench version 2 was written by a newer engine"), (older, "engine-bench version 0 is older"),
            (unversioned, "before format version 1"), (unknown, "neither"), (empty, "no workloads"),
        })
        {
            var (code, output, error) = Run("compare", good, file);
            Assert.True(code == 2, $"{file}: exit {code}");
            Assert.Contains($"engine compare: {file}: ", error);
            Assert.Contains(says, error);
            Assert.Equal("", output);
            (code, _, error) = Run("compare", file, good);
            Assert.Equal(2, code);
            Assert.Contains(file, error);
        }
        var (common, _, commonError) = Run("compare", good, other);
        Assert.Equal(2, common);
        Assert.Contains("no workload in common", commonError);
        Assert.Contains(good, commonError);
        Assert.Contains(other, commonError);
    }

    [Theory]
    [InlineData("--threshold", "fast")]
    [InlineData("--noise", "-1ns")]
    [InlineData("--noise", "lots")]
    public void BadOptionsExitWith2AndNameTheOption(string option, string value)
    {
        using var dir = new TempDirectory();
        string good = SyntheticResults.Write(dir.Path, "good.json", SyntheticResults.Document(("w", [1.0, 1.1])));
        var (code, _, error) = Run("compare", good, good, option, value);
        Assert.Equal(2, code);
        Assert.Contains(option, error);
    }

    [Fact]
    public void CalibratedRefusesAFileWithoutCalibration()
    {
        using var dir = new TempDirectory();
        string good = SyntheticResults.Write(dir.Path, "good.json", SyntheticResults.Document(("w", [1.0, 1.1])));
        string bdn = dir.File("bdn.json");
        File.WriteAllText(bdn, BenchmarkDotNetExport("w"));
        var (code, _, error) = Run("compare", good, bdn, "--calibrated");
        Assert.Equal(2, code);
        Assert.Contains($"{bdn} has no calibration", error);
    }

    [Fact]
    public void BenchmarkDotNetFullJsonExportsAreReadWithTheirPerIterationValues()
    {
        using var dir = new TempDirectory();
        string a = dir.File("a-report-full.json");
        string b = dir.File("b-report-full.json");
        File.WriteAllText(a, BenchmarkDotNetExport("Engine.Benchmarks.TranslateBenchmarks.IotlbHit(Size: Size4K)", 1.0));
        File.WriteAllText(b, BenchmarkDotNetExport("Engine.Benchmarks.TranslateBenchmarks.IotlbHit(Size: Size4K)", 1.5));
        BenchDocument document = BenchResultsReader.Read(a);
        BenchWorkloadResult w = Assert.Single(document.Workloads);
        Assert.Equal(10, w.SamplesNsPerOp.Count);
        Assert.Equal("Test CPU", document.Environment.CpuModel);
        Assert.Null(document.Environment.CalibrationNsPerStep);
        var (code, output, error) = Run("compare", a, b, "--json");
        Assert.True(code == 1, $"exit {code}: {error}");
        Assert.Contains("\"Slower\"", output);
    }

    /// <summary>The shape of BenchmarkDotNet 0.15's full JSON export, trimmed to what the reader uses.</summary>
    private static string BenchmarkDotNetExport(string fullName, double scale = 1.0)
    {
        double[] values = [.. SyntheticResults.Samples(7, 10, 5 * scale, 0.01)];
        return $$"""
        {
          "Title": "Engine.Benchmarks.TranslateBenchmarks-20260101-000000",
          "HostEnvironmentInfo": { "ProcessorName": "Test CPU", "LogicalCoreCount": 2, "RuntimeVersion": ".NET 10.0.0", "OsVersion": "Linux" },
          "Benchmarks": [
            {
              "DisplayInfo": "TranslateBenchmarks.IotlbHit: DefaultJob [Size=Size4K]",
              "FullName": "{{fullName}}",
              "Statistics": { "N": 10, "Median": {{values.Order().ElementAt(5).ToString(System.Globalization.CultureInfo.InvariantCulture)}},
                "OriginalValues": [{{string.Join(", ", values.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)))}}] },
              "Memory": { "Gen0Collections": 0, "BytesAllocatedPerOperation": 0 }
            }
          ]
        }
        """;
    }
}
