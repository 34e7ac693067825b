using System.Text.Json;
using Engine.Cli.Commands;

namespace Engine.Cli.Results;

/// <summary>Builds and writes the <see cref="BenchDocument"/> of an <c>engine bench</c> run.</summary>
internal static class BenchResultsWriter
{
    /// <summary>
    /// The document for <paramref name="rows"/>; measures the calibration figure now, after the
    /// workloads, so it sees the same clock and neighbours as the runs it calibrates.
    /// </summary>
    public static BenchDocument Create(IReadOnlyList<BenchRow> rows, DateTimeOffset startedUtc, string? batchWalker)
    {
        double calibration = Calibration.MeasureNsPerStep();
        BenchWorkloadResult[] workloads = [.. rows.Select(r => new BenchWorkloadResult(
            r.Name, r.NsPerOp, r.MopsPerSec, r.AllocatedBytesPerOp, r.Threads, r.Note, r.SamplesNsPerOp, r.IotlbHitRate))];
        return new BenchDocument(BenchDocument.FormatName, BenchDocument.CurrentVersion,
            EnvironmentProbe.Capture(startedUtc, batchWalker, calibration), workloads);
    }

    /// <summary>The document as indented JSON.</summary>
    public static string Serialize(BenchDocument document) => JsonSerializer.Serialize(document, ResultsJson.Default.BenchDocument);

    /// <summary>Writes the document to <paramref name="path"/>; an unwritable path is a command-line error naming it.</summary>
    public static void WriteFile(BenchDocument document, string path)
    {
        try
        {
            File.WriteAllText(path, Serialize(document) + Environment.NewLine);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CommandLineException($"--out {path}: cannot write it ({e.Message}).");
        }
    }
}
