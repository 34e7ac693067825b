using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Engine.Cli.Commands;

/// <summary>Options that take a 64-bit register value in hex ("0x1f", "1F").</summary>
internal static class HexOption
{
    public static Option<ulong> Create(string name, string description, bool required = true) => new(name)
    {
        Description = description,
        Required = required,
        CustomParser = Parse(name),
    };

    private static Func<ArgumentResult, ulong> Parse(string name) => result =>
    {
        string text = result.Tokens.Count == 1 ? result.Tokens[0].Value.Trim() : "";
        string digits = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        digits = digits.Replace("_", "", StringComparison.Ordinal);
        if (digits.Length is 0 or > 16 || !ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong value))
        {
            result.AddError($"{name} must be a 64-bit hexadecimal value such as 0x1f (got '{text}').");
            return 0;
        }
        return value;
    };
}
