using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Cli.Scenarios;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary><c>engine run</c>: the main job, printing a throughput report.</summary>
internal static class RunCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var seconds = new Option<double>("--seconds") { Description = "How long to run, in seconds (with one thread: scenario seconds, 1000 rounds each).", DefaultValueFactory = _ => 10.0 };
        var scenario = new Option<string>("--scenario") { Description = "dma (the default scenario) or walk (scalar walks only).", DefaultValueFactory = _ => "dma" };
        scenario.AcceptOnlyFromAmong("dma", "walk");
        var threads = new Option<int>("--threads") { Description = "Walker threads (default: every core).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random guest addresses.", DefaultValueFactory = _ => 1UL };
        var guest = new Option<int>("--guest-gib") { Description = "walk scenario: guest RAM in GiB (half 2M-mapped, half 4K-mapped).", DefaultValueFactory = _ => 4 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("run", "Run the default scenario: devices DMA through a KVM domain on every core while KVM write-protects, zaps and re-maps; IO page faults served.")
        {
            seconds, threads, seed, guest, json, scenario,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(scenario) == "dma")
                return RunDma(parse, seconds, threads, seed, json, output, error);
            var options = new WalkScenarioOptions(
                parse.GetValue(seconds), parse.GetValue(threads), parse.GetValue(seed), parse.GetValue(guest), Addresses: 1 << 20);
            Validate(options);
            bool asJson = parse.GetValue(json);
            WalkScenarioReport report = asJson || Console.IsOutputRedirected || output != Console.Out
                ? RunPlain(options, error, asJson)
                : RunWithProgress(options);
            if (asJson)
                output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Default.WalkScenarioReport));
            else
                PrintTable(report, output);
            return report.InconsistentPasses == 0 ? 0 : 1;
        });
        return command;
    }

    private static int RunDma(ParseResult parse, Option<double> seconds, Option<int> threads, Option<ulong> seed, Option<bool> json, TextWriter output, TextWriter error)
    {
        var options = new DmaScenarioOptions(parse.GetValue(seconds), parse.GetValue(threads), parse.GetValue(seed));
        ValidateCommon(options.Seconds, options.Threads);
        bool asJson = parse.GetValue(json);
        DmaScenarioReport report;
        if (asJson || Console.IsOutputRedirected || output != Console.Out)
        {
            double last = 0;
            report = DmaScenario.Run(options, fraction =>
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
                    result = DmaScenario.Run(options, new RunProgress(task, $"DMA on {options.Threads} thread(s)").Report);
                    task.Value = 1.0;
                });
            report = result!;
        }
        if (asJson)
        {
            output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.DmaScenarioReport));
            return 0;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 120);
        var summary = new Table().Title("engine run — DMA through a KVM domain")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        summary.AddRow("threads (DMA + KVM)", report.Threads.ToString(CultureInfo.InvariantCulture));
        summary.AddRow("seconds", report.Seconds.ToString("F2", CultureInfo.InvariantCulture));
        summary.AddRow("rounds", report.Rounds.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("translations", report.Translations.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("translations/s", report.TranslationsPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("IOTLB hit rate", report.IotlbHitRate.ToString("P2", CultureInfo.InvariantCulture));
        summary.AddRow("walks (IOTLB misses)", report.Walks.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("faults", report.Faults.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("page requests served / failed", $"{report.PageRequestsServed:N0} / {report.PageRequestsFailed:N0}");
        summary.AddRow("invalidations (KVM flushes)", report.Invalidations.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("KVM operations", report.KvmOperations.ToString("N0", CultureInfo.InvariantCulture));
        console.Write(summary);
        var devices = new Table().AddColumn("device").AddColumn("pattern").AddColumn(new TableColumn("DMA ops").RightAligned())
            .AddColumn(new TableColumn("MiB").RightAligned()).AddColumn(new TableColumn("translations").RightAligned())
            .AddColumn(new TableColumn("page requests").RightAligned()).AddColumn(new TableColumn("faulted DMAs").RightAligned());
        foreach (DeviceReport d in report.Devices)
        {
            devices.AddRow(d.Name, d.Pattern, d.DmaOperations.ToString("N0", CultureInfo.InvariantCulture), (d.Bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture),
                d.Translations.ToString("N0", CultureInfo.InvariantCulture), d.PageRequests.ToString("N0", CultureInfo.InvariantCulture), d.Faults.ToString("N0", CultureInfo.InvariantCulture));
        }
        console.Write(devices);
        return 0;
    }

    private static void Validate(WalkScenarioOptions o)
    {
        ValidateCommon(o.Seconds, o.Threads);
        if (o.GuestGiB is < 1 or > 48)
            throw new CommandLineException($"--guest-gib must be 1..48, got {o.GuestGiB}.");
    }

    private static void ValidateCommon(double seconds, int threads)
    {
        if (!(seconds > 0 && seconds <= 3600))
            throw new CommandLineException($"--seconds must be in (0, 3600], got {seconds.ToString(CultureInfo.InvariantCulture)}.");
        if (threads is < 1 or > 256)
            throw new CommandLineException($"--threads must be 1..256, got {threads}.");
    }

    private static WalkScenarioReport RunPlain(WalkScenarioOptions options, TextWriter error, bool quiet)
    {
        double lastPrinted = 0;
        return WalkScenario.Run(options, fraction =>
        {
            double elapsed = fraction * options.Seconds;
            if (!quiet && elapsed - lastPrinted >= 1)
            {
                lastPrinted = elapsed;
                error.WriteLine($"engine run: {elapsed:F0}/{options.Seconds:F0} s");
            }
        });
    }

    private static WalkScenarioReport RunWithProgress(WalkScenarioOptions options)
    {
        WalkScenarioReport? report = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"walking on {options.Threads} threads", maxValue: 1.0);
                report = WalkScenario.Run(options, fraction => task.Value = fraction);
                task.Value = 1.0;
            });
        return report!;
    }

    private static void PrintTable(WalkScenarioReport r, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 100);
        var table = new Table().Title("engine run — scalar walks of KVM's EPT (VT-d second-stage view)")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("threads", r.Threads.ToString(CultureInfo.InvariantCulture));
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
    }
}
