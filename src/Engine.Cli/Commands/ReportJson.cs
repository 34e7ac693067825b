using System.Text.Json.Serialization;
using Engine.Cli.Scenarios;

namespace Engine.Cli.Commands;

/// <summary>Source-generated JSON for the reports (camelCase keys, trimming-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(WalkScenarioReport))]
[JsonSerializable(typeof(CapsReport))]
internal sealed partial class ReportJson : JsonSerializerContext;
