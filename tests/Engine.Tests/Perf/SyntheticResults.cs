using Engine.Cli.Results;

namespace Engine.Tests.Perf;

/// <summary>Results documents from fixed seeds, so the statistics are tested without timing anything.</summary>
internal static class SyntheticResults
{
    /// <summary><paramref name="count"/> samples around <paramref name="median"/> with normal noise of relative size <paramref name="noise"/>.</summary>
    public static double[] Samples(int seed, int count, double median, double noise)
    {
        var random = new Random(seed);
        var samples = new double[count];
        for (int i = 0; i < count; i++)
        {
            // Box–Muller: one standard normal from two uniforms.
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            double normal = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            samples[i] = Math.Max(median * (1 + noise * normal), median * 0.01);
        }
        return samples;
    }

    public static BenchDocument Document(double? calibration, DateTimeOffset time, params (string Name, double[] Samples)[] workloads) => new(
        BenchDocument.FormatName, BenchDocument.CurrentVersion,
        new BenchEnvironment("test cpu", 2, "none", null, ".NET test", "test os", null, time, calibration),
        [.. workloads.Select(w =>
        {
            double median = BenchComparison.Median(w.Samples);
            return new BenchWorkloadResult(w.Name, median, 1000 / median, 0, 1, null, w.Samples);
        })]);

    public static BenchDocument Document(params (string Name, double[] Samples)[] workloads) =>
        Document(5.0, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), workloads);

    public static string Write(string directory, string name, BenchDocument document)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, BenchResultsWriter.Serialize(document));
        return path;
    }
}

/// <summary>A temporary directory removed with the test.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("engine-perf-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
