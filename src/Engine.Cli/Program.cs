using System.CommandLine;
using Engine.Cli.Commands;

namespace Engine.Cli;

/// <summary>The <c>engine</c> command.</summary>
public static class Program
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
        root.Add(CompareCommand.Create(output, error));
        root.Add(PlotCommand.Create(output, error));
        root.Add(MonitorCommand.Create(output, error));
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var parseError in parsed.Errors)
                error.WriteLine($"engine: {parseError.Message}");
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
}

/// <summary>A bad argument found after parsing (a value out of range); exits with code 2.</summary>
public sealed class CommandLineException(string message) : Exception(message);
