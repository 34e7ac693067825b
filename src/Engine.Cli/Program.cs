using System.CommandLine;
using System.Text.RegularExpressions;
using Engine.Cli.Commands;

namespace Engine.Cli;

/// <summary>The <c>engine</c> command.</summary>
public static partial class Program
{
    /// <summary>Exit code for bad arguments.</summary>
    public const int ExitBadArguments = 2;

    /// <summary>Runs the command line; returns the process exit code.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given writers (tests call this in-process).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Engine: a VT-d IOMMU translation engine whose second-stage tables are KVM's EPT.");
        root.Add(RunCommand.Create(output, error));
        root.Add(CapsCommand.Create(output));
        root.Add(KvmCheckCommand.Create(output));
        root.Add(BenchCommand.Create(output, error));
        // No response files: "@name" would read any file named on the command line (even an endless one).
        ParseResult parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Errors.Count > 0)
        {
            foreach (var parseError in parsed.Errors)
                error.WriteLine($"engine: {Humanize(parseError.Message)}");
            error.WriteLine("Run 'engine --help' for usage.");
            return ExitBadArguments;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (CommandLineException e)
        {
            error.WriteLine($"engine: {e.Message}");
            return ExitBadArguments;
        }
    }

    /// <summary>
    /// System.CommandLine's conversion errors name the .NET type ("as expected type 'System.Boolean'");
    /// every numeric option parses itself, and this catches whatever else would still leak.
    /// </summary>
    internal static string Humanize(string message) => ConversionError().Replace(message, m =>
    {
        string kind = m.Groups["type"].Value switch
        {
            "System.Boolean" => "true or false",
            "System.Double" or "System.Single" or "System.Decimal" => "a number",
            _ when m.Groups["type"].Value.StartsWith("System.Int", StringComparison.Ordinal)
                || m.Groups["type"].Value.StartsWith("System.UInt", StringComparison.Ordinal) => "a whole number",
            _ => "another kind of value",
        };
        return $"{m.Groups["option"].Value} expects {kind}, got '{m.Groups["value"].Value}'.";
    });

    [GeneratedRegex(@"Cannot parse argument '(?<value>.*)' for (?:option|command) '(?<option>[^']*)' as expected type '(?<type>[^']*)'\.")]
    private static partial Regex ConversionError();
}

/// <summary>A bad argument found after parsing (a value out of range); exits with code 2.</summary>
public sealed class CommandLineException(string message) : Exception(message);
