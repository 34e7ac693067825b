using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Engine.Cli.Commands;

/// <summary>
/// Numeric options that parse and range-check their value themselves, so a bad value is reported
/// in words ("--seconds expects a number, got 'abc'") at parse time, with every other bad argument,
/// instead of System.CommandLine's message naming a .NET type.
/// </summary>
internal static class NumberOption
{
    /// <summary>A finite number in (<paramref name="above"/>, <paramref name="atMost"/>].</summary>
    public static Option<double> Double(string name, string description, double above, double atMost, double defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            if (Token(result) is not { } text)
                return defaultValue;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || double.IsNaN(value))
            {
                result.AddError($"{name} expects a number, got '{text}'.");
                return defaultValue;
            }
            if (!(value > above && value <= atMost))
            {
                result.AddError($"{name} must be more than {above.ToString(CultureInfo.InvariantCulture)} and at most "
                    + $"{atMost.ToString(CultureInfo.InvariantCulture)}, got {text}.");
                return defaultValue;
            }
            return value;
        },
    };

    /// <summary>A whole number in [<paramref name="min"/>, <paramref name="max"/>]; <paramref name="range"/> words the range for messages.</summary>
    public static Option<int> Int(string name, string description, int min, int max, Func<int>? defaultValue = null, string? range = null)
    {
        range ??= $"{min}..{max}";
        var option = new Option<int>(name)
        {
            Description = description,
            Required = defaultValue is null,
            CustomParser = result =>
            {
                int fallback = defaultValue?.Invoke() ?? 0;
                if (Token(result) is not { } text)
                    return fallback;
                if (!IsWholeNumber(text))
                {
                    result.AddError($"{name} expects a whole number ({range}), got '{text}'.");
                    return fallback;
                }
                if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
                {
                    result.AddError($"{name} must be {range}, got {text}.");
                    return fallback;
                }
                return value;
            },
        };
        if (defaultValue is not null)
            option.DefaultValueFactory = _ => defaultValue();
        return option;
    }

    /// <summary>A whole number from 0 to 2^64 − 1.</summary>
    public static Option<ulong> ULong(string name, string description, ulong defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            if (Token(result) is not { } text)
                return defaultValue;
            if (!IsWholeNumber(text) || !ulong.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ulong value))
            {
                result.AddError($"{name} expects a whole number from 0 to {ulong.MaxValue}, got '{text}'.");
                return defaultValue;
            }
            return value;
        },
    };

    private static string? Token(ArgumentResult result) => result.Tokens.Count == 1 ? result.Tokens[0].Value.Trim() : null;

    private static bool IsWholeNumber(string text)
    {
        ReadOnlySpan<char> digits = text.StartsWith('+') || text.StartsWith('-') ? text.AsSpan(1) : text.AsSpan();
        return digits.Length > 0 && !digits.ContainsAnyExceptInRange('0', '9');
    }
}
