using System.Text.Json;

namespace Engine.Cli.Results;

/// <summary>
/// Turns a BenchmarkDotNet full-JSON export (<c>--exporters fulljson</c>, or
/// <c>[JsonExporterAttribute.Full]</c>) into a <see cref="BenchDocument"/>: each benchmark case is a
/// workload named by its <c>FullName</c> (type, method and parameters — stable across runs), its
/// samples are the per-iteration ns/op of the result iterations (<c>Statistics.OriginalValues</c>,
/// as dotnet/performance's ResultsComparer reads them). The export has no calibration figure, so
/// <c>--calibrated</c> refuses it.
/// </summary>
internal static class BenchmarkDotNetImport
{
    public static BenchDocument Convert(JsonElement root, JsonElement benchmarks, string name)
    {
        var workloads = new List<BenchWorkloadResult>();
        foreach (JsonElement b in benchmarks.EnumerateArray())
        {
            string? caseName = String(b, "FullName") ?? String(b, "DisplayInfo");
            if (caseName is null)
                throw new BenchFileException($"{name}: a BenchmarkDotNet benchmark without \"FullName\".");
            double[] samples = Samples(b);
            if (samples.Length == 0)
                continue; // a case that failed to run has no statistics; nothing to compare
            double[] sorted = [.. samples.Order()];
            double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
            double allocated = b.TryGetProperty("Memory", out JsonElement memory) && memory.ValueKind == JsonValueKind.Object
                && memory.TryGetProperty("BytesAllocatedPerOperation", out JsonElement bytes) && bytes.TryGetDouble(out double a) ? a : 0;
            workloads.Add(new BenchWorkloadResult(caseName, median, 1000.0 / median, allocated, 1, "BenchmarkDotNet", samples));
        }
        JsonElement host = root.TryGetProperty("HostEnvironmentInfo", out JsonElement h) && h.ValueKind == JsonValueKind.Object ? h : default;
        string cpu = host.ValueKind == JsonValueKind.Object ? String(host, "ProcessorName") ?? "unknown" : "unknown";
        int cores = host.ValueKind == JsonValueKind.Object && host.TryGetProperty("LogicalCoreCount", out JsonElement c) && c.TryGetInt32(out int n) ? n : 0;
        string runtime = host.ValueKind == JsonValueKind.Object ? String(host, "RuntimeVersion") ?? "unknown" : "unknown";
        string os = host.ValueKind == JsonValueKind.Object ? String(host, "OsVersion") ?? "unknown" : "unknown";
        DateTimeOffset time = File.Exists(name) ? File.GetLastWriteTimeUtc(name) : DateTimeOffset.UnixEpoch;
        return new BenchDocument(BenchDocument.FormatName, BenchDocument.CurrentVersion,
            new BenchEnvironment(cpu, cores, "unknown", null, runtime, os, null, time, null), workloads);
    }

    private static double[] Samples(JsonElement b)
    {
        if (b.TryGetProperty("Statistics", out JsonElement statistics) && statistics.ValueKind == JsonValueKind.Object
            && statistics.TryGetProperty("OriginalValues", out JsonElement values) && values.ValueKind == JsonValueKind.Array)
            return [.. values.EnumerateArray().Where(v => v.ValueKind == JsonValueKind.Number).Select(v => v.GetDouble()).Where(v => double.IsFinite(v) && v > 0)];
        return [];
    }

    private static string? String(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
