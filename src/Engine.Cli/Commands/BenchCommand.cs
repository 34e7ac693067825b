using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using Engine.Cli.Results;
using Engine.Iommu;
using Engine.Paging;
using Engine.Workloads;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine bench</c>: runs named workloads through the real engine and reports ns/op, Mops/s and
/// allocated bytes/op: one warm-up, then the median of 10 timed runs, each long enough (≥ 50 ms; 10 ms
/// with --quick) to time well. --json and --out write every run's ns/op (docs/bench-format.md), for
/// <c>engine compare</c>. Quick numbers; the BenchmarkDotNet project runs the same workloads in detail.
/// <c>--batch-walker</c> forces the batch walker of the *-batch walk workloads; their note names it.
/// </summary>
internal static class BenchCommand
{
    private const int TimedRuns = 10;
    private static readonly TimeSpan MinimumRun = TimeSpan.FromMilliseconds(50);
    private const int WarmupPasses = 40;
    private static readonly TimeSpan Warmup = TimeSpan.FromMilliseconds(300);

    /// <summary>The warm-up lasts until no method has been compiled for this long (tiering done)...</summary>
    private static readonly TimeSpan JitSettle = TimeSpan.FromMilliseconds(300);

    /// <summary>...or this long in all, whichever comes first.</summary>
    private static readonly TimeSpan WarmupLimit = TimeSpan.FromSeconds(5);

    /// <summary>--quick: runs and warm-up short enough for a CI smoke test; the numbers are noisier.</summary>
    private static readonly (TimeSpan MinimumRun, int WarmupPasses, TimeSpan Warmup) Quick = (TimeSpan.FromMilliseconds(10), 10, TimeSpan.FromMilliseconds(100));

    public static Command Create(TextWriter output, TextWriter error)
    {
        var workloads = new Option<string[]>("--workload") { Description = $"Workloads to run (default: all): {string.Join(", ", WorkloadCatalog.Names)}.", AllowMultipleArgumentsPerToken = true };
        workloads.Validators.Add(r =>
        {
            foreach (var token in r.Tokens)
            {
                if (!WorkloadCatalog.Names.Contains(token.Value))
                    r.AddError($"--workload: no workload is called '{token.Value}'; known: {string.Join(", ", WorkloadCatalog.Names)}.");
            }
        });
        var threads = NumberOption.Int("--threads", "Threads for the multi-threaded workloads (default: every core).", 1, 256, () => Environment.ProcessorCount);
        var batchWalker = BatchWalkerOption.Create(
            $"Batch walker for the workloads that walk in batches: {BatchWalkerKinds.Names} "
                + $"(auto, the default: the process's — ${PageWalker.BatchWalkerVariable}, else the fastest here, measured once).");
        var json = new Option<bool>("--json") { Description = "Print the results (every timed run; docs/bench-format.md) as JSON instead of a table." };
        var outFile = new Option<string>("--out") { Description = "Also write the results JSON to this file (for engine compare / engine plot)." };
        var quick = new Option<bool>("--quick") { Description = "Short runs and warm-up (10 ms / 100 ms): a smoke test, noisier numbers." };
        var command = new Command("bench", "Run the named workloads and report ns/op, Mops/s and allocated bytes/op.") { workloads, threads, batchWalker, json, outFile, quick };
        command.SetAction(parse =>
        {
            DateTimeOffset started = DateTimeOffset.UtcNow;
            string[] names = parse.GetValue(workloads) is { Length: > 0 } chosen ? chosen : [.. WorkloadCatalog.Names];
            Workload[] chosenWorkloads = [.. names.Select(name => WorkloadCatalog.Create(name, parse.GetValue(threads)))];
            BatchWalkerSelection? walker = SelectBatchWalker(parse.GetValue(batchWalker), chosenWorkloads.Any(w => w.UsesBatchWalker));
            foreach (Workload w in chosenWorkloads)
                w.BatchWalker = walker?.Kind;
            foreach (Workload w in chosenWorkloads.Where(w => w.Threads > Environment.ProcessorCount))
            {
                // Its threads meet at the end of every pass, so each pass waits for the scheduler to
                // run them all in turn: 256 threads on 2 cores took over a minute.
                error.WriteLine($"engine bench: warning: {w.Name} on {w.Threads} threads, more than the {Environment.ProcessorCount} cores here: "
                    + "its threads take turns, so the run is long and ns/op measures the scheduler, not the engine.");
            }
            var rows = new List<BenchRow>();
            foreach (Workload workload in chosenWorkloads)
            {
                if (!parse.GetValue(json))
                    error.WriteLine($"engine bench: {workload.Name} …");
                rows.Add(parse.GetValue(quick) ? Measure(workload, Quick.MinimumRun, Quick.WarmupPasses, Quick.Warmup) : Measure(workload));
            }
            if (parse.GetValue(json) || parse.GetValue(outFile) is not null)
            {
                BenchDocument document = BenchResultsWriter.Create(rows, started, walker?.Kind.Name());
                if (parse.GetValue(outFile) is string path)
                    BenchResultsWriter.WriteFile(document, path);
                if (parse.GetValue(json))
                    output.WriteLine(BenchResultsWriter.Serialize(document));
            }
            if (!parse.GetValue(json))
                PrintTable(rows, output);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The walker <paramref name="name"/> asks for (validated by the option; <c>auto</c>: the process
    /// default), resolved now when a batch workload is to run, so a bad <c>ENGINE_BATCH_WALKER</c> is a
    /// clear error before anything runs; null when no workload walks in batches.
    /// </summary>
    private static BatchWalkerSelection? SelectBatchWalker(string? name, bool needed)
    {
        try
        {
            if (!needed && name is null)
                return null;
            BatchWalkerSelection? forced = name is null ? null : PageWalker.ParseBatchWalker(name);
            return forced ?? BatchWalkerDefault.Selection;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
        {
            throw new CommandLineException(e.Message);
        }
    }

    internal static BenchRow Measure(Workload workload) => Measure(workload, MinimumRun, WarmupPasses, Warmup);

    internal static BenchRow Measure(Workload workload, TimeSpan minimumRun, int warmupPasses, TimeSpan warmup)
    {
        using (workload)
        {
            workload.Setup();
            var stopwatch = Stopwatch.StartNew();
            ulong sink = workload.RunPass();
            long passes = Math.Max(1, (long)Math.Ceiling(minimumRun.TotalMilliseconds / Math.Max(stopwatch.Elapsed.TotalMilliseconds, 0.001)));
            // Warm up until tiered compilation has replaced the passes' code with its final (tier-1)
            // form, so the timed runs measure what a long-running embedder gets. A fixed time was not
            // enough: a method called once per 16 misses reached tier 1 after 0.3 s in some processes
            // and not in others, and the same build timed 100 or 500 ns/op by the luck of the process.
            // Done = no method compiled for a settle time (the background tier-1 compiles included).
            stopwatch.Restart();
            long compiled = JitInfo.GetCompiledMethodCount();
            TimeSpan quietSince = TimeSpan.Zero;
            bool settle = warmup >= Warmup;   // not for --quick: a smoke test
            for (int p = 0; p < warmupPasses || stopwatch.Elapsed < warmup || (settle && stopwatch.Elapsed - quietSince < JitSettle && stopwatch.Elapsed < WarmupLimit); p++)
            {
                sink += workload.RunPass();
                long now = JitInfo.GetCompiledMethodCount();
                if (now != compiled)
                {
                    compiled = now;
                    quietSince = stopwatch.Elapsed;
                }
            }
            var runs = new double[TimedRuns];
            long allocatedBefore = workload.AllocatedBytes;
            for (int r = 0; r < TimedRuns; r++)
            {
                stopwatch.Restart();
                for (long p = 0; p < passes; p++)
                    sink += workload.RunPass();
                runs[r] = stopwatch.Elapsed.TotalNanoseconds;
            }
            long allocated = workload.AllocatedBytes - allocatedBefore;
            GC.KeepAlive(sink);
            double ops = (double)workload.OperationsPerPass * workload.Threads * passes;
            double[] samples = [.. runs.Select(t => t / ops)];
            Array.Sort(runs);
            double nsPerOp = (runs[TimedRuns / 2 - 1] + runs[TimedRuns / 2]) / 2 / ops; // the median of an even count
            return new BenchRow(workload.Name, nsPerOp, 1000.0 / nsPerOp, allocated / (ops * TimedRuns), workload.Threads, workload.Note, samples, workload.IotlbHitRate);
        }
    }

    private static void PrintTable(List<BenchRow> rows, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 120);
        var table = new Table().Title("engine bench — median of 10 timed runs after a warm-up")
            .AddColumn("workload").AddColumn(new TableColumn("ns/op").RightAligned()).AddColumn(new TableColumn("Mops/s").RightAligned())
            .AddColumn(new TableColumn("allocated B/op").RightAligned()).AddColumn(new TableColumn("threads").RightAligned()).AddColumn("note");
        foreach (BenchRow r in rows)
        {
            table.AddRow(r.Name, r.NsPerOp.ToString("F2", CultureInfo.InvariantCulture), r.MopsPerSec.ToString("F1", CultureInfo.InvariantCulture),
                r.AllocatedBytesPerOp.ToString("F3", CultureInfo.InvariantCulture), r.Threads.ToString(CultureInfo.InvariantCulture), Markup.Escape(r.Note ?? ""));
        }
        console.Write(table);
    }
}

/// <summary>One row of <c>engine bench</c>, with the ns/op of every timed run (<see cref="BenchResultsWriter"/> writes it as JSON).</summary>
internal sealed record BenchRow(string Name, double NsPerOp, double MopsPerSec, double AllocatedBytesPerOp, int Threads, string? Note, IReadOnlyList<double> SamplesNsPerOp, double? IotlbHitRate = null);
