using System.Globalization;
using System.Text.Json;

namespace Engine.Cli.Results;

/// <summary>A results file that cannot be used; the message names the file and what is wrong with it.</summary>
internal sealed class BenchFileException(string message) : Exception(message);

/// <summary>
/// Reads a results file: this tool's own format (any version it knows, refusing the others by name),
/// or a BenchmarkDotNet full-JSON export (<c>--exporters fulljson</c>), whose per-iteration values
/// become the samples so both kinds are compared by the same test.
/// </summary>
internal static class BenchResultsReader
{
    /// <summary>Reads <paramref name="path"/>; throws <see cref="BenchFileException"/> naming it when it is not usable.</summary>
    public static BenchDocument Read(string path)
    {
        if (!File.Exists(path))
            throw new BenchFileException($"{path}: no such file.");
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BenchFileException($"{path}: cannot be read ({e.Message}).");
        }
        return Parse(text, path);
    }

    /// <summary>Parses the text of a results file; <paramref name="name"/> names it in messages.</summary>
    public static BenchDocument Parse(string text, string name)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new BenchFileException($"{name}: not JSON ({e.Message}).");
        }
        using (json)
        {
            JsonElement root = json.RootElement;
            if (root.ValueKind == JsonValueKind.Array)
            {
                throw new BenchFileException($"{name}: an unversioned `engine bench --json` array from before format version 1 (medians only, no samples); "
                    + $"this engine reads {BenchDocument.FormatName} version {BenchDocument.CurrentVersion}: run `engine bench --json` again with it.");
            }
            if (root.ValueKind != JsonValueKind.Object)
                throw new BenchFileException($"{name}: not a results file (the JSON is a {root.ValueKind}, not an object).");
            BenchDocument document;
            if (root.TryGetProperty("format", out JsonElement format))
                document = ReadEngine(root, format, text, name);
            else if (root.TryGetProperty("Benchmarks", out JsonElement benchmarks) && benchmarks.ValueKind == JsonValueKind.Array)
                document = BenchmarkDotNetImport.Convert(root, benchmarks, name);
            else
                throw new BenchFileException($"{name}: neither an {BenchDocument.FormatName} file (no \"format\" key) nor a BenchmarkDotNet full-JSON export (no \"Benchmarks\" array).");
            if (document.Workloads.Count == 0)
                throw new BenchFileException($"{name}: no workloads in it.");
            return document;
        }
    }

    private static BenchDocument ReadEngine(JsonElement root, JsonElement format, string text, string name)
    {
        if (format.ValueKind != JsonValueKind.String || format.GetString() != BenchDocument.FormatName)
            throw new BenchFileException($"{name}: format {format.GetRawText()} is not {BenchDocument.FormatName}.");
        if (!root.TryGetProperty("version", out JsonElement versionElement) || !versionElement.TryGetInt32(out int version))
            throw new BenchFileException($"{name}: {BenchDocument.FormatName} without an integer \"version\".");
        if (version > BenchDocument.CurrentVersion)
        {
            throw new BenchFileException($"{name}: {BenchDocument.FormatName} version {version.ToString(CultureInfo.InvariantCulture)} was written by a newer engine; "
                + $"this one reads version {BenchDocument.CurrentVersion.ToString(CultureInfo.InvariantCulture)}: update engine.");
        }
        if (version < BenchDocument.CurrentVersion)
        {
            throw new BenchFileException($"{name}: {BenchDocument.FormatName} version {version.ToString(CultureInfo.InvariantCulture)} is older than this engine reads "
                + $"(version {BenchDocument.CurrentVersion.ToString(CultureInfo.InvariantCulture)}): run the bench again.");
        }
        BenchDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(text, ResultsJson.Default.BenchDocument);
        }
        catch (JsonException e)
        {
            throw new BenchFileException($"{name}: {BenchDocument.FormatName} version {version.ToString(CultureInfo.InvariantCulture)} with a malformed field ({e.Message}).");
        }
        if (document?.Environment is null || document.Workloads is null)
            throw new BenchFileException($"{name}: {BenchDocument.FormatName} without \"environment\" or \"workloads\".");
        foreach (BenchWorkloadResult w in document.Workloads)
        {
            if (string.IsNullOrEmpty(w?.Name) || w.SamplesNsPerOp is null || w.SamplesNsPerOp.Count == 0)
                throw new BenchFileException($"{name}: a workload without a name or without samples (\"samplesNsPerOp\").");
            if (w.SamplesNsPerOp.Any(s => !double.IsFinite(s) || s <= 0))
                throw new BenchFileException($"{name}: workload {w.Name} has a sample that is not a positive number.");
        }
        return document;
    }
}
