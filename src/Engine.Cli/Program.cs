using System.CommandLine;
using System.Text.RegularExpressions;
using Engine.Cli.Commands;

namespace Engine.Cli;

/// <summary>The <c>engine</c> command.</summary>
/// <remarks>
/// Exit codes: 0 success; 1 the run found a problem (walk: inconsistent passes; soak: growth);
/// 2 bad arguments; 3 <c>kvm-check</c> refused; 4 the output could not be written; 70 an internal
/// error (a bug). README.md lists the same.
/// </remarks>
public static partial class Program
{
    /// <summary>Exit code when the run itself found a problem (a walk pass that disagreed, a soak that grew).</summary>
    public const int ExitProblemFound = 1;

    /// <summary>Exit code for bad arguments.</summary>
    public const int ExitBadArguments = 2;

    /// <summary>Exit code when the report could not be written (a closed pipe, a full disk).</summary>
    public const int ExitOutputFailed = 4;

    /// <summary>Exit code for an internal error: a bug in the engine or the command, reported in one line.</summary>
    public const int ExitInternalError = 70;

    /// <summary>Runs the command line; returns the process exit code.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given writers (tests call this in-process).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        try
        {
            var root = new RootCommand("Engine: a VT-d IOMMU translation engine whose second-stage tables are KVM's EPT.");
            root.Add(RunCommand.Create(output, error));
            root.Add(CapsCommand.Create(output));
            root.Add(KvmCheckCommand.Create(output));
            root.Add(BenchCommand.Create(output, error));
            root.Add(CompareCommand.Create(output, error));
            root.Add(PlotCommand.Create(output, error));
            root.Add(MonitorCommand.Create(output, error));
            root.Add(ReplayCommand.Create(output, error));
            root.Add(TraceCommand.Create(output, error));
            // No response files: "@name" would read any file named on the command line (even an endless one).
            ParseResult parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
            if (parsed.Errors.Count > 0)
            {
                foreach (var parseError in parsed.Errors)
                    error.WriteLine($"engine: {Humanize(parseError.Message)}");
                error.WriteLine("Run 'engine --help' for usage.");
                return ExitBadArguments;
            }
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (CommandLineException e)
        {
            return Report(error, e.Message, ExitBadArguments);
        }
        catch (IOException e)
        {
            // The command does no file I/O of its own: this is stdout or stderr refusing the report.
            return Report(error, $"could not write the output: {e.Message}", ExitOutputFailed);
        }
        catch (Exception e)
        {
            return Report(error, $"internal error (a bug; please report it with the command line): {e.Message} ({e.GetType().Name})", ExitInternalError);
        }
    }

    private static int Report(TextWriter error, string message, int code)
    {
        try
        {
            error.WriteLine($"engine: {message}");
        }
        catch (IOException)
        {
            // stderr is gone too: the exit code is all that is left to say it.
        }
        return code;
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
