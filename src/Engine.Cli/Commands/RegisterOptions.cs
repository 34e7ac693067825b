using System.CommandLine;
using Engine.Iommu;

namespace Engine.Cli.Commands;

/// <summary>
/// Where a command gets an IOMMU's capability registers: <c>--preset NAME</c> (a real platform's
/// values, by preset or type name) or <c>--cap</c> and <c>--ecap</c> given together.
/// </summary>
internal sealed class RegisterOptions
{
    public RegisterOptions()
    {
        Cap = HexOption.Create("--cap", "CAP_REG value (hex); with --ecap, instead of --preset.", required: false);
        Ecap = HexOption.Create("--ecap", "ECAP_REG value (hex); with --cap, instead of --preset.", required: false);
        Preset = new Option<string?>("--preset")
        {
            Description = $"A real platform's registers instead of --cap/--ecap: {string.Join(", ", IommuPresets.Names)}.",
        };
        Preset.Validators.Add(result =>
        {
            string? name = result.Tokens.Count == 1 ? result.Tokens[0].Value : null;
            if (name is not null && !IommuPresets.TryGet(name, out _))
                result.AddError($"--preset: no IOMMU preset is called '{name}'; known: {string.Join(", ", IommuPresets.Names)}.");
        });
    }

    public Option<ulong> Cap { get; }

    public Option<ulong> Ecap { get; }

    public Option<string?> Preset { get; }

    /// <summary>Adds the three options to <paramref name="command"/> and the rule that exactly one source is given.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Preset);
        command.Options.Add(Cap);
        command.Options.Add(Ecap);
        command.Validators.Add(result =>
        {
            bool preset = result.GetResult(Preset) is { Implicit: false };
            bool cap = result.GetResult(Cap) is { Implicit: false }, ecap = result.GetResult(Ecap) is { Implicit: false };
            if (preset && (cap || ecap))
                result.AddError("Give either --preset or --cap and --ecap, not both.");
            else if (!preset && !(cap && ecap))
                result.AddError(cap || ecap ? $"{(cap ? "--ecap" : "--cap")} is missing: --cap and --ecap go together." : "Give --preset NAME, or --cap and --ecap.");
        });
    }

    /// <summary>The registers the parse result names (after validation, so one source is there).</summary>
    public (CapabilityRegister Cap, ExtendedCapabilityRegister Ecap) Resolve(ParseResult parse)
    {
        if (parse.GetValue(Preset) is { } name)
        {
            IommuPreset preset = IommuPresets.Get(name);
            return (preset.Cap, preset.Ecap);
        }
        return (new CapabilityRegister(parse.GetValue(Cap)), new ExtendedCapabilityRegister(parse.GetValue(Ecap)));
    }
}
