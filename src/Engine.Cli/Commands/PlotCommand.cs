using System.CommandLine;
using Engine.Cli.Results;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine plot FILES... -o trend.svg|png</c>: the history of each workload across a series of
/// results files, ordered by the time each bench ran (<see cref="TrendChart"/>). Exit 2 on bad input,
/// each bad file named.
/// </summary>
internal static class PlotCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var files = new Argument<string[]>("FILES") { Description = "Results files (engine bench --out, or BenchmarkDotNet full-JSON exports), in any order.", Arity = ArgumentArity.OneOrMore };
        var outPath = new Option<string>("--output", "-o") { Description = "The chart to write: a .svg or .png file.", Required = true };
        outPath.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && !(r.Tokens[0].Value.EndsWith(".svg", StringComparison.OrdinalIgnoreCase) || r.Tokens[0].Value.EndsWith(".png", StringComparison.OrdinalIgnoreCase)))
                r.AddError($"--output: '{r.Tokens[0].Value}' must end in .svg or .png.");
        });
        var workloads = new Option<string[]>("--workload") { Description = "Panels to draw (default: every workload in the files).", AllowMultipleArgumentsPerToken = true };
        var command = new Command("plot", "Chart each workload's median ns/op (min–max band) and calibrated ratio across results files, one panel per workload.")
        {
            files, outPath, workloads,
        };
        command.SetAction(parse =>
        {
            var read = new List<(string, BenchDocument)>();
            try
            {
                foreach (string path in parse.GetValue(files)!)
                    read.Add((path, BenchResultsReader.Read(path)));
            }
            catch (BenchFileException e)
            {
                error.WriteLine($"engine plot: {e.Message}");
                return Program.ExitBadArguments;
            }
            var ordered = TrendChart.OrderByTime(read);
            string[] asked = parse.GetValue(workloads) ?? [];
            IReadOnlyList<string> names = TrendChart.Workloads(ordered, asked);
            string[] missing = [.. asked.Where(a => !names.Contains(a))];
            if (missing.Length > 0 || names.Count == 0)
            {
                error.WriteLine(missing.Length > 0
                    ? $"engine plot: --workload {string.Join(", ", missing)}: in none of the files."
                    : "engine plot: the files have no workloads.");
                return Program.ExitBadArguments;
            }
            string destination = parse.GetValue(outPath)!;
            try
            {
                TrendChart.Save(TrendChart.Build(ordered, names), destination, names.Count);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"engine plot: --output {destination}: cannot write it ({e.Message}).");
                return Program.ExitBadArguments;
            }
            output.WriteLine($"engine plot: {destination}: {names.Count} panel(s) over {ordered.Count} file(s).");
            return 0;
        });
        return command;
    }
}
