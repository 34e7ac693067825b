using Perfolizer.Mathematics.Common;
using Perfolizer.Mathematics.SignificanceTesting;
using Perfolizer.Mathematics.SignificanceTesting.MannWhitney;
using Perfolizer.Metrology;
using Pragmastat;

namespace Engine.Cli.Results;

/// <summary>What the comparison concluded about one workload.</summary>
internal enum Verdict
{
    /// <summary>No difference beyond the threshold (or below the noise floor).</summary>
    Same,

    /// <summary>DIFF is faster than BASE by more than the threshold.</summary>
    Faster,

    /// <summary>DIFF is slower than BASE by more than the threshold.</summary>
    Slower,
}

/// <summary>One workload present in both files.</summary>
/// <param name="Name">The workload.</param>
/// <param name="BaseNsPerOp">Median of BASE's samples (raw ns/op).</param>
/// <param name="DiffNsPerOp">Median of DIFF's samples (raw ns/op).</param>
/// <param name="Ratio">DiffNsPerOp / BaseNsPerOp: above 1 is slower.</param>
/// <param name="CalibratedRatio">The ratio after dividing each side by its calibration figure; null when a file has none.</param>
/// <param name="Verdict">The test's conclusion.</param>
/// <param name="BaseSamples">Samples in BASE.</param>
/// <param name="DiffSamples">Samples in DIFF.</param>
internal sealed record WorkloadComparison(
    string Name, double BaseNsPerOp, double DiffNsPerOp, double Ratio, double? CalibratedRatio, Verdict Verdict, int BaseSamples, int DiffSamples);

/// <summary>
/// Compares two results files as dotnet/performance's ResultsComparer does: for each workload in
/// both, Perfolizer's <see cref="SimpleEquivalenceTest"/> over <see cref="MannWhitneyTest"/> (a
/// two one-sided Mann–Whitney U test against the threshold) over the raw per-run samples, so a
/// difference is reported only when the samples say it exceeds the threshold, not when one
/// median moved; then a noise floor in absolute ns, below which any difference is Same (a 0.1 ns
/// shift on a 2 ns operation is 5 % and still nothing).
/// </summary>
internal static class BenchComparison
{
    /// <summary>The significance level of each one-sided test (ResultsComparer's default).</summary>
    public const double Alpha = 0.05;

    /// <summary>Compares the workloads <paramref name="baseline"/> and <paramref name="diff"/> share, in BASE's order.</summary>
    /// <param name="baseline">BASE.</param>
    /// <param name="diff">DIFF.</param>
    /// <param name="threshold">The smallest change that counts, e.g. <c>Threshold.Parse("5%")</c>.</param>
    /// <param name="noiseNs">Differences of medians below this many ns are Same.</param>
    /// <param name="calibrated">Test the samples divided by each file's calibration figure (both must have one).</param>
    public static IReadOnlyList<WorkloadComparison> Compare(BenchDocument baseline, BenchDocument diff, Threshold threshold, double noiseNs, bool calibrated)
    {
        double? baseCalibration = baseline.Environment.CalibrationNsPerStep;
        double? diffCalibration = diff.Environment.CalibrationNsPerStep;
        bool haveCalibration = baseCalibration is > 0 && diffCalibration is > 0;
        if (calibrated && !haveCalibration)
            throw new InvalidOperationException("--calibrated needs a calibration figure in both files.");
        var test = new SimpleEquivalenceTest(MannWhitneyTest.Instance);
        var byName = diff.Workloads.GroupBy(w => w.Name).ToDictionary(g => g.Key, g => g.First());
        var results = new List<WorkloadComparison>();
        foreach (BenchWorkloadResult b in baseline.Workloads)
        {
            if (!byName.TryGetValue(b.Name, out BenchWorkloadResult? d))
                continue;
            double baseMedian = Median(b.SamplesNsPerOp);
            double diffMedian = Median(d.SamplesNsPerOp);
            double ratio = diffMedian / baseMedian;
            double? calibratedRatio = haveCalibration ? diffMedian / diffCalibration!.Value / (baseMedian / baseCalibration!.Value) : null;
            double baseScale = calibrated ? baseCalibration!.Value : 1;
            double diffScale = calibrated ? diffCalibration!.Value : 1;
            var x = new Sample([.. d.SamplesNsPerOp.Select(s => s / diffScale)]);
            var y = new Sample([.. b.SamplesNsPerOp.Select(s => s / baseScale)]);
            Verdict verdict = Math.Abs(diffMedian - baseMedian) < noiseNs
                ? Verdict.Same
                : test.Perform(x, y, threshold, Alpha) switch
                {
                    ComparisonResult.Greater => Verdict.Slower,
                    ComparisonResult.Lesser => Verdict.Faster,
                    _ => Verdict.Same,
                };
            results.Add(new WorkloadComparison(b.Name, baseMedian, diffMedian, ratio, calibratedRatio, verdict, b.SamplesNsPerOp.Count, d.SamplesNsPerOp.Count));
        }
        return results;
    }

    /// <summary>The geometric mean of the ratios (how dotnet/performance summarises a comparison); 1 for none.</summary>
    public static double GeometricMean(IEnumerable<double> ratios)
    {
        double sum = 0;
        int n = 0;
        foreach (double r in ratios)
        {
            sum += Math.Log(r);
            n++;
        }
        return n == 0 ? 1 : Math.Exp(sum / n);
    }

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        double[] sorted = [.. values.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
