using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using Engine.Cli.Scenarios;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary><c>engine run</c>: the main job, printing a throughput report; <c>--soak</c> repeats whole platforms and watches for growth.</summary>
internal static class RunCommand
{
    private const double MaxSeconds = 3600;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var seconds = NumberOption.Double("--seconds",
            "Seconds the whole command may take, setup included (one thread: seconds × 1000 rounds, cut short at that deadline on a slow machine).", 0, MaxSeconds, 10.0);
        var scenario = new Option<string>("--scenario") { Description = "dma (the default scenario) or walk (scalar walks only).", DefaultValueFactory = _ => "dma" };
        scenario.AcceptOnlyFromAmong("dma", "walk");
        var threads = NumberOption.Int("--threads", "Threads: DMA threads plus one KVM thread, or walker threads (default: every core).", 1, 256,
            () => Environment.ProcessorCount);
        var seed = NumberOption.ULong("--seed", "Seed of the random guest addresses and KVM operations.", 1UL);
        var guest = NumberOption.Int("--guest-gib", "walk scenario only: guest RAM in GiB (half 2M-mapped, half 4K-mapped).", 1, 48, () => 4);
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var soak = new Option<bool>("--soak")
        {
            Description = "Build, use and dispose the DMA scenario's platform over and over until --seconds; sample native bytes, frames and RSS; "
                + "exit 1 when they grow.",
        };
        var soakInterval = NumberOption.Double("--soak-interval", "With --soak: seconds between samples.", 0, MaxSeconds, 60.0);
        var record = new Option<string>("--record")
        {
            Description = "Record the DMA scenario to this trace file (needs one thread; --threads defaults to 1 with it); `engine replay FILE` runs it again.",
        };
        var checkpointAt = new Option<string[]>("--checkpoint-at")
        {
            Description = "N FILE: save a checkpoint of the one-thread DMA scenario (the platform and where the run stands) to FILE before round N, "
                + "then run on; `engine run --restore FILE` continues from it to the same counts and checksum.",
            Arity = new ArgumentArity(2, 2),
            AllowMultipleArgumentsPerToken = true,
        };
        var restore = new Option<string>("--restore")
        {
            Description = "Continue the one-thread DMA scenario from a checkpoint FILE of --checkpoint-at (its seed and rounds are the checkpoint's).",
        };
        var command = new Command("run", "Run the default scenario: devices DMA through a KVM domain on every core while KVM write-protects, zaps and re-maps; IO page faults served.")
        {
            seconds, threads, seed, guest, json, scenario, soak, soakInterval, record, checkpointAt, restore,
        };
        command.Validators.Add(r =>
        {
            try
            {
                bool walk = r.GetValue(scenario) == "walk";
                if (IsGiven(r, guest) && !walk)
                    r.AddError("--guest-gib applies only to --scenario walk (the DMA scenario's guest is fixed: two 512 MiB memslots).");
                if (r.GetValue(soak) && walk)
                    r.AddError("--soak runs the DMA scenario's platform; it cannot be combined with --scenario walk.");
                if (IsGiven(r, soakInterval) && !r.GetValue(soak))
                    r.AddError("--soak-interval applies only with --soak.");
                if (r.GetValue(record) is { } file)
                {
                    if (walk || r.GetValue(soak))
                        r.AddError("--record records the DMA scenario; it cannot be combined with --scenario walk or --soak.");
                    if (IsGiven(r, threads) && r.GetValue(threads) != 1)
                    {
                        r.AddError("--record needs --threads 1: with more threads the order of DMA and KVM operations is up to the scheduler, "
                            + "so no single trace reproduces the run (record with one thread; replay can use several).");
                    }
                    if (string.IsNullOrWhiteSpace(file))
                        r.AddError("--record expects a file name.");
                }
                bool checkpointing = r.GetValue(checkpointAt) is { Length: > 0 } || r.GetValue(restore) is not null;
                if (checkpointing)
                {
                    if (walk || r.GetValue(soak) || r.GetValue(record) is not null)
                        r.AddError("--checkpoint-at and --restore apply to the DMA scenario alone; they cannot be combined with --scenario walk, --soak or --record.");
                    if (IsGiven(r, threads) && r.GetValue(threads) != 1)
                        r.AddError("--checkpoint-at and --restore need --threads 1 (the default with them): only one thread makes the run one deterministic sequence of rounds.");
                    if (r.GetValue(checkpointAt) is { Length: 2 } at && (!long.TryParse(at[0], NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n < 0))
                        r.AddError($"--checkpoint-at expects a round number (0 or more) and a file, got '{at[0]}'.");
                    if (r.GetValue(restore) is not null && IsGiven(r, seed))
                        r.AddError("--seed cannot be combined with --restore: the run continues with the checkpoint's seed.");
                    if (r.GetValue(restore) is { } restoreFile && string.IsNullOrWhiteSpace(restoreFile))
                        r.AddError("--restore expects a file name.");
                }
            }
            catch (InvalidOperationException)
            {
                // An option whose own value did not parse ("--scenario" with nothing after it) already
                // carries that error, which the user is shown; reading its value here throws instead.
            }
        });
        command.SetAction(parse =>
        {
            // The budget starts now: setup, the run and the joins all spend from it.
            var deadline = RunDeadline.StartingNow(parse.GetValue(seconds));
            string? recordFile = parse.GetValue(record);
            string[]? checkpoint = parse.GetValue(checkpointAt) is { Length: 2 } given ? given : null;
            string? restoreFile = parse.GetValue(restore);
            bool oneThread = recordFile is not null || checkpoint is not null || restoreFile is not null;
            int threadCount = oneThread && parse.GetResult(threads) is not OptionResult { Implicit: false } ? 1 : parse.GetValue(threads);
            bool asJson = parse.GetValue(json);
            if (DmaScenario.CoreNote(threadCount) is { } note)
                error.WriteLine($"engine run: note: {note}");
            if (parse.GetValue(soak))
                return RunSoak(new SoakOptions(parse.GetValue(seconds), threadCount, parse.GetValue(seed), parse.GetValue(soakInterval)), deadline, asJson, output, error);
            if (parse.GetValue(scenario) == "dma")
            {
                var dmaOptions = new DmaScenarioOptions(parse.GetValue(seconds), threadCount, parse.GetValue(seed), recordFile,
                    checkpoint is null ? null : long.Parse(checkpoint[0], CultureInfo.InvariantCulture), checkpoint?[1], restoreFile);
                try
                {
                    return RunDma(dmaOptions, deadline, asJson, output, error);
                }
                catch (InvalidDataException e)
                {
                    error.WriteLine($"engine run: {(restoreFile is null ? "" : $"{restoreFile}: ")}{e.Message}");
                    return Program.ExitBadArguments;
                }
                catch (IOException e) when (e is FileNotFoundException or DirectoryNotFoundException)
                {
                    error.WriteLine($"engine run: {e.Message}");
                    return Program.ExitBadArguments;
                }
            }
            var options = new WalkScenarioOptions(parse.GetValue(seconds), threadCount, parse.GetValue(seed), parse.GetValue(guest), Addresses: 1 << 20);
            WalkScenarioReport report = asJson || Console.IsOutputRedirected || output != Console.Out
                ? RunPlain(options, deadline, error, asJson)
                : RunWithProgress(options, deadline);
            if (asJson)
                output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.WalkScenarioReport));
            else
                PrintTable(report, output);
            return report.InconsistentPasses == 0 ? 0 : Program.ExitProblemFound;
        });
        return command;
    }

    private static bool IsGiven(CommandResult r, Option option) => r.GetResult(option) is OptionResult { Implicit: false };

    private static int RunDma(DmaScenarioOptions options, RunDeadline deadline, bool asJson, TextWriter output, TextWriter error)
    {
        DmaScenarioReport report;
        if (asJson || Console.IsOutputRedirected || output != Console.Out)
        {
            double last = 0;
            report = DmaScenario.Run(options, deadline, fraction =>
            {
                if (!asJson && fraction - last >= 0.1)
                {
                    last = fraction;
                    error.WriteLine($"engine run: {fraction * 100:F0} %");
                }
            });
        }
        else
        {
            DmaScenarioReport? result = null;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"DMA on {options.Threads} thread(s)", maxValue: 1.0);
                    result = DmaScenario.Run(options, deadline, new RunProgress(task, $"DMA on {options.Threads} thread(s)").Report);
                    task.Value = 1.0;
                });
            report = result!;
        }
        if (asJson)
        {
            output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.DmaScenarioReport));
            return 0;
        }
        IAnsiConsole console = ConsoleFor(output, 140);   // the device table, unwrapped
        var summary = new Table().Title("engine run — DMA through a KVM domain")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        summary.AddRow("threads (DMA + KVM)", report.Threads.ToString(CultureInfo.InvariantCulture));
        summary.AddRow("setup seconds", report.SetupSeconds.ToString("F2", CultureInfo.InvariantCulture));
        summary.AddRow("seconds", report.Seconds.ToString("F2", CultureInfo.InvariantCulture));
        summary.AddRow("rounds", report.RoundsPlanned is { } planned && planned != report.Rounds
            ? $"{report.Rounds:N0} of {planned:N0}" : report.Rounds.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("translations", report.Translations.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("translations/s", report.TranslationsPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("IOTLB hit rate", report.IotlbHitRate.ToString("P2", CultureInfo.InvariantCulture));
        summary.AddRow("walks (IOTLB misses)", report.Walks.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("faults", report.Faults.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("page requests served / failed", $"{report.PageRequestsServed:N0} / {report.PageRequestsFailed:N0}");
        summary.AddRow("invalidations (KVM flushes)", report.Invalidations.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("KVM operations", report.KvmOperations.ToString("N0", CultureInfo.InvariantCulture));
        if (report.Trace is { } trace)
        {
            summary.AddRow("trace", Markup.Escape(trace.File));
            summary.AddRow("trace records", trace.Records.ToString("N0", CultureInfo.InvariantCulture));
            summary.AddRow("traced translations / faults", $"{trace.Translations:N0} / {trace.Faults:N0}");
            summary.AddRow("traced IOTLB hits / misses", $"{trace.IotlbHits:N0} / {trace.IotlbMisses:N0}");
            summary.AddRow("HPA sum", $"0x{trace.HpaSum:x16}");
            summary.AddRow("checksum", $"0x{trace.Checksum:x16}");
        }
        console.Write(summary);
        var devices = new Table().AddColumn("device").AddColumn("pattern").AddColumn(new TableColumn("DMA ops").RightAligned())
            .AddColumn(new TableColumn("MiB").RightAligned()).AddColumn(new TableColumn("translations").RightAligned())
            .AddColumn(new TableColumn("page requests").RightAligned()).AddColumn(new TableColumn("re-sent").RightAligned())
            .AddColumn(new TableColumn("faulted DMAs").RightAligned());
        foreach (DeviceReport d in report.Devices)
        {
            devices.AddRow(d.Name, d.Pattern, d.DmaOperations.ToString("N0", CultureInfo.InvariantCulture), (d.Bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture),
                d.Translations.ToString("N0", CultureInfo.InvariantCulture), d.PageRequests.ToString("N0", CultureInfo.InvariantCulture),
                d.PageRequestsResent.ToString("N0", CultureInfo.InvariantCulture), d.Faults.ToString("N0", CultureInfo.InvariantCulture));
        }
        console.Write(devices);
        PrintNotes(report.Notes, output);
        return 0;
    }

    private static int RunSoak(SoakOptions options, RunDeadline deadline, bool asJson, TextWriter output, TextWriter error)
    {
        SoakReport report = SoakScenario.Run(options, deadline, s =>
        {
            if (!asJson)
            {
                error.WriteLine($"engine run --soak: {s.Seconds:F1} s, {s.Cycles:N0} platforms, native {s.NativeBytes:N0} B, "
                    + $"frames after teardown {s.FramesInUseAfterTeardown:N0}, RSS {s.RssBytes / 1048576.0:F1} MiB ({s.Kind})");
            }
        });
        if (asJson)
        {
            output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.SoakReport));
        }
        else
        {
            IAnsiConsole console = ConsoleFor(output, 120);
            var table = new Table().Title($"engine run --soak — {report.Cycles:N0} platforms built, used and disposed on {report.Threads} thread(s) in {report.Seconds:F1} s")
                .AddColumn("sample").AddColumn(new TableColumn("seconds").RightAligned()).AddColumn(new TableColumn("platforms").RightAligned())
                .AddColumn(new TableColumn("native bytes").RightAligned()).AddColumn(new TableColumn("native reservations").RightAligned())
                .AddColumn(new TableColumn("frames after teardown").RightAligned()).AddColumn(new TableColumn("peak frames").RightAligned())
                .AddColumn(new TableColumn("RSS MiB").RightAligned());
            foreach (SoakSample s in report.Samples)
            {
                table.AddRow(s.Kind, s.Seconds.ToString("F1", CultureInfo.InvariantCulture), s.Cycles.ToString("N0", CultureInfo.InvariantCulture),
                    s.NativeBytes.ToString("N0", CultureInfo.InvariantCulture), s.NativeAllocations.ToString("N0", CultureInfo.InvariantCulture),
                    s.FramesInUseAfterTeardown.ToString("N0", CultureInfo.InvariantCulture), s.PeakFramesInUse.ToString("N0", CultureInfo.InvariantCulture),
                    (s.RssBytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture));
            }
            console.Write(table);
            output.WriteLine($"translations {report.Translations:N0}, faulted DMAs {report.FaultedDmas:N0}, page requests re-sent {report.PageRequestsResent:N0}; "
                + (report.RssGrowthBytes is { } growth
                    ? $"RSS growth {growth / 1048576.0:F1} MiB (tolerance {report.RssToleranceBytes / 1048576.0:F1} MiB)."
                    : "RSS not judged."));
            output.WriteLine(report.Passed ? "soak passed: nothing grew." : "soak FAILED:");
            foreach (string problem in report.Problems)
                output.WriteLine($"  - {problem}");
            PrintNotes(report.Notes, output);
        }
        return report.Passed ? 0 : Program.ExitProblemFound;
    }

    private static WalkScenarioReport RunPlain(WalkScenarioOptions options, RunDeadline deadline, TextWriter error, bool quiet)
    {
        double lastPrinted = 0;
        return WalkScenario.Run(options, deadline, fraction =>
        {
            double elapsed = fraction * options.Seconds;
            if (!quiet && elapsed - lastPrinted >= 1)
            {
                lastPrinted = elapsed;
                error.WriteLine($"engine run: {elapsed:F0}/{options.Seconds:F0} s");
            }
        });
    }

    private static WalkScenarioReport RunWithProgress(WalkScenarioOptions options, RunDeadline deadline)
    {
        WalkScenarioReport? report = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"walking on {options.Threads} threads", maxValue: 1.0);
                report = WalkScenario.Run(options, deadline, fraction => task.Value = fraction);
                task.Value = 1.0;
            });
        return report!;
    }

    private static void PrintTable(WalkScenarioReport r, TextWriter output)
    {
        IAnsiConsole console = ConsoleFor(output, 100);
        var table = new Table().Title("engine run — scalar walks of KVM's EPT (VT-d second-stage view)")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("threads", r.Threads.ToString(CultureInfo.InvariantCulture));
        table.AddRow("setup seconds", r.SetupSeconds.ToString("F2", CultureInfo.InvariantCulture));
        table.AddRow("seconds", r.Seconds.ToString("F2", CultureInfo.InvariantCulture));
        table.AddRow("walks", r.Walks.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("walks/s", r.WalksPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("ns/walk per thread", r.NsPerWalkPerThread.ToString("F2", CultureInfo.InvariantCulture));
        table.AddRow("faults (per pass)", r.Faults.ToString(CultureInfo.InvariantCulture));
        table.AddRow("checksum (sum of HPAs, one pass)", $"0x{r.Checksum:x16}");
        table.AddRow("complete passes / inconsistent", $"{r.CompletePasses} / {r.InconsistentPasses}");
        table.AddRow("2M leaves / 4K leaves", $"{r.Leaves2M:N0} / {r.Leaves4K:N0}");
        table.AddRow("EPT table pages", r.TablePages.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("host frames in use", r.HostFramesInUse.ToString("N0", CultureInfo.InvariantCulture));
        console.Write(table);
        PrintNotes(r.Notes, output);
    }

    private static IAnsiConsole ConsoleFor(TextWriter output, int width)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, width);
        return console;
    }

    private static void PrintNotes(IReadOnlyList<string> notes, TextWriter output)
    {
        foreach (string note in notes)
            output.WriteLine($"note: {note}");
    }
}
