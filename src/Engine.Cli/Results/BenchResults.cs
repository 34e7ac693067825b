using System.Text.Json.Serialization;

namespace Engine.Cli.Results;

/// <summary>
/// One <c>engine bench</c> run as written by <c>--json</c> and <c>--out</c>: the format name and
/// version first (so a reader can refuse a file it does not understand before reading anything
/// else), then where it ran, then every workload with every timed sample. docs/bench-format.md is
/// the contract; bump <see cref="CurrentVersion"/> for any change a version-1 reader would misread.
/// </summary>
/// <param name="Format">Always <see cref="FormatName"/>.</param>
/// <param name="Version">The format version, <see cref="CurrentVersion"/> when written by this build.</param>
/// <param name="Environment">The machine, runtime and calibration figure.</param>
/// <param name="Workloads">One entry per workload, in the order they ran.</param>
internal sealed record BenchDocument(string Format, int Version, BenchEnvironment Environment, IReadOnlyList<BenchWorkloadResult> Workloads)
{
    /// <summary>The value of <c>format</c> in every file this tool writes.</summary>
    public const string FormatName = "engine-bench";

    /// <summary>The format version this build writes and reads.</summary>
    public const int CurrentVersion = 1;
}

/// <summary>Where a bench ran. Every field is what this process saw; unknown values are null.</summary>
/// <param name="CpuModel">The CPU's model name (/proc/cpuinfo on Linux), else the architecture.</param>
/// <param name="LogicalCores">Logical processors visible to the process.</param>
/// <param name="Isa">Widest vector ISA the runtime accelerates: avx512, avx2 or none (DOTNET_Enable* knobs included).</param>
/// <param name="BatchWalker">The batch walker the *-batch workloads used (null when none ran).</param>
/// <param name="Runtime">The .NET runtime description.</param>
/// <param name="Os">The operating system description.</param>
/// <param name="Commit">The commit measured: $ENGINE_COMMIT, $GITHUB_SHA, else <c>git rev-parse HEAD</c> in the working directory, else null.</param>
/// <param name="UtcTime">When the run started, UTC (ISO 8601).</param>
/// <param name="CalibrationNsPerStep">(null only for imported BenchmarkDotNet files) ns per step of a fixed L2 pointer chase measured in the same process; divide by it to compare across machines and hours.</param>
internal sealed record BenchEnvironment(
    string CpuModel, int LogicalCores, string Isa, [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? BatchWalker, string Runtime, string Os,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Commit, DateTimeOffset UtcTime, double? CalibrationNsPerStep);

/// <summary>One workload's result.</summary>
/// <param name="Name">The workload's name, an immutable history key.</param>
/// <param name="NsPerOp">Median of <paramref name="SamplesNsPerOp"/>.</param>
/// <param name="MopsPerSec">1000 / <paramref name="NsPerOp"/>.</param>
/// <param name="AllocatedBytesPerOp">Bytes allocated per operation over all timed runs.</param>
/// <param name="Threads">Threads a pass runs on.</param>
/// <param name="Note">The workload's note (hit rate, batch walker), if any.</param>
/// <param name="SamplesNsPerOp">ns/op of every timed run, in the order they ran.</param>
/// <param name="IotlbHitRate">IOTLB hits / translations over the timed runs (0..1), for workloads that count them; omitted otherwise.</param>
internal sealed record BenchWorkloadResult(
    string Name, double NsPerOp, double MopsPerSec, double AllocatedBytesPerOp, int Threads, string? Note, IReadOnlyList<double> SamplesNsPerOp, double? IotlbHitRate = null);

/// <summary>Source-generated JSON for the results format (camelCase keys, indented, readable text).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
[JsonSerializable(typeof(BenchDocument))]
internal sealed partial class ResultsJson : JsonSerializerContext;
