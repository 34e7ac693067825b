using System.Text.Json.Serialization;
using Engine.Cli.Scenarios;

namespace Engine.Cli.Commands;

/// <summary>Source-generated JSON for the reports (camelCase keys, trimming-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WalkScenarioReport))]
[JsonSerializable(typeof(DmaScenarioReport))]
[JsonSerializable(typeof(SoakReport))]
[JsonSerializable(typeof(CapsReport))]
[JsonSerializable(typeof(KvmCheckCompatible))]
[JsonSerializable(typeof(KvmCheckRefused))]
[JsonSerializable(typeof(List<BenchRow>))]
[JsonSerializable(typeof(Engine.Trace.ReplayReport))]
[JsonSerializable(typeof(Engine.Trace.QemuImportReport))]
internal sealed partial class ReportJson : JsonSerializerContext
{
    /// <summary>The same contracts, with text left readable (no \u0027 for apostrophes in messages).</summary>
    public static ReportJson Relaxed { get; } = new(new System.Text.Json.JsonSerializerOptions
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
