using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Paging;
using Engine.Trace;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine replay FILE</c>: builds the platform a trace describes and applies its records; prints
/// the counts, the HPA sum and the checksum (<c>engine run --record</c> printed the same), and for a
/// trace imported from QEMU, Engine's IOTLB hit rate next to QEMU's. Exit 2 for a bad file or flag.
/// </summary>
internal static class ReplayCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var file = new Argument<string>("FILE") { Description = "The trace (engine run --record, engine trace import-qemu)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var threads = NumberOption.Int("--threads", "Translating threads (1, the default, reproduces the recorded order exactly).", 1, 256, () => 1);
        var sets = NumberOption.Int("--iotlb-sets", "IOTLB sets of every IOMMU (a power of two; default: the trace's).", 1, 1 << 24, () => 0, "a power of two, 1..16777216");
        var ways = NumberOption.Int("--iotlb-ways", $"IOTLB ways: Engine's IOTLB has {Engine.Iommu.Iotlb.Ways} per set (one cache line), the only value accepted.", 1, 64, () => Engine.Iommu.Iotlb.Ways);
        sets.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (r.Tokens.Count > 0 && v > 0 && !System.Numerics.BitOperations.IsPow2(v))
                r.AddError($"--iotlb-sets must be a power of two, got {v}.");
        });
        ways.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (r.Tokens.Count > 0 && v != Engine.Iommu.Iotlb.Ways)
                r.AddError($"--iotlb-ways {v}: Engine's IOTLB sets are one 64-byte cache line of {Engine.Iommu.Iotlb.Ways} entries, so {Engine.Iommu.Iotlb.Ways} is the only geometry in ways; change --iotlb-sets instead.");
        });
        var batchWalker = BatchWalkerOption.Create(
            $"Translate runs of translate records in batches of 64 (DmarUnit.TranslateBatch) with this batch walker walking the misses: {BatchWalkerKinds.Names} "
                + "(auto: the process default). Same answers, HPA sum and checksum; hits can differ where a page repeats inside a batch.");
        var command = new Command("replay", "Replay a DMA trace: the same translations on the platform its header describes; counts, HPA sum and checksum.")
        {
            file, json, threads, sets, ways, batchWalker,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(file)!;
            int iotlbSets = parse.GetValue(sets);
            string? walker = parse.GetValue(batchWalker);
            var options = new ReplayOptions(parse.GetValue(threads), iotlbSets == 0 ? null : iotlbSets, Batched: walker is not null,
                BatchWalker: walker is null ? null : PageWalker.ParseBatchWalker(walker)?.Kind);
            ReplayReport report;
            try
            {
                using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
                report = TraceReplayer.Replay(stream, options);
            }
            catch (TraceFormatException e)
            {
                error.WriteLine($"engine replay: {path}: {e.Message}");
                return Program.ExitBadArguments;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"engine replay: {path}: cannot read it ({e.Message}).");
                return Program.ExitBadArguments;
            }
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.ReplayReport));
                return 0;
            }
            Print(report, output);
            return 0;
        });
        return command;
    }

    private static void Print(ReplayReport r, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 100);
        var table = new Table().Title("engine replay").AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("source", Markup.Escape(r.Source));
        table.AddRow("threads / IOTLB sets", $"{r.Threads} / {r.IotlbSets}");
        if (r.BatchWalker is { } walker)
            table.AddRow("batches of 64, batch walker", walker);
        table.AddRow("records", r.Records.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("translations / faults", $"{r.Translations:N0} / {r.Faults:N0}");
        table.AddRow("IOTLB hits / misses", $"{r.IotlbHits:N0} / {r.IotlbMisses:N0}");
        table.AddRow("IOTLB hit rate (Engine)", r.IotlbHitRate.ToString("P2", CultureInfo.InvariantCulture));
        if (r.QemuHitRate is { } qemu)
            table.AddRow("IOTLB hit rate (QEMU's log)", $"{qemu.ToString("P2", CultureInfo.InvariantCulture)} ({r.QemuHits:N0} hits, {r.QemuUpdates:N0} updates)");
        table.AddRow("DMA operations / faulted", $"{r.DmaOperations:N0} / {r.DmaFaults:N0}");
        table.AddRow("control operations", r.ControlOperations.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("walks", r.Walks.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("seconds", r.Seconds.ToString("F3", CultureInfo.InvariantCulture));
        table.AddRow("records/s", r.RecordsPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("HPA sum", $"0x{r.HpaSum:x16}");
        table.AddRow("checksum", $"0x{r.Checksum:x16}");
        console.Write(table);
        if (r.Threads > 1 && r.DmaOperations > 0)
        {
            output.WriteLine($"note: {r.Threads} threads replayed DMA records side by side: where one thread's page request maps a page another thread "
                + "faulted on, the answers depend on the interleaving, so the checksum can differ from one thread's (docs/trace-format.md).");
        }
    }
}
