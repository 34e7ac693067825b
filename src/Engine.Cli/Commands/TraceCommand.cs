using System.CommandLine;
using System.Text.Json;
using Engine.Trace;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine trace import-qemu LOG -o FILE [--json] [--strict]</c>: a QEMU <c>-trace 'vtd_*'</c> log
/// to an Engine trace (<see cref="QemuLogImporter"/>). Malformed lines are reported with their
/// numbers and skipped, or stop the import with <c>--strict</c>; exit 2 then, or for a log that
/// cannot be read or an output that cannot be written (no partial trace is left behind).
/// </summary>
internal static class TraceCommand
{
    private const int MalformedPrinted = 20;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var log = new Argument<string>("LOG") { Description = "The QEMU log (-trace 'vtd_*' with the log backend; lines with or without PID@SECONDS.MICROS: prefixes)." };
        var outPath = new Option<string>("--output", "-o") { Description = "The trace to write.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a summary." };
        var strict = new Option<bool>("--strict") { Description = "Stop at the first malformed line (exit 2) instead of skipping it." };
        var import = new Command("import-qemu", "Import a QEMU VT-d trace log: IOTLB hits and updates become translations over rebuilt mappings, invalidations follow in order.")
        {
            log, outPath, json, strict,
        };
        import.SetAction(parse => Import(parse.GetValue(log)!, parse.GetValue(outPath)!, parse.GetValue(json), parse.GetValue(strict), output, error));
        return new Command("trace", "DMA traces: import from other simulators.") { import };
    }

    private static int Import(string log, string destination, bool asJson, bool strict, TextWriter output, TextWriter error)
    {
        const string Me = "engine trace import-qemu";
        if (!File.Exists(log))
        {
            error.WriteLine($"{Me}: {log}: no such file.");
            return Program.ExitBadArguments;
        }
        string partial = destination + ".partial";
        QemuImportReport report;
        int printed = 0;
        try
        {
            using (var stream = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                report = QemuLogImporter.Import(() => new StreamReader(log, new FileStreamOptions { BufferSize = 1 << 16, Options = FileOptions.SequentialScan }),
                    stream, $"QEMU log {Path.GetFileName(log)}", strict, m =>
                    {
                        if (printed++ < MalformedPrinted)
                            error.WriteLine($"{Me}: {log}:{m.Line}: malformed line skipped: {m.Problem}");
                    });
            }
            File.Move(partial, destination, overwrite: true);
        }
        catch (QemuLogException e)
        {
            TryDelete(partial);
            error.WriteLine($"{Me}: {log}: {e.Message}{(strict && e.Line > 0 ? " (--strict: nothing written)" : "")}");
            return Program.ExitBadArguments;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(partial);
            error.WriteLine($"{Me}: {e.Message}");
            return Program.ExitBadArguments;
        }
        if (printed > MalformedPrinted)
            error.WriteLine($"{Me}: {log}: {printed - MalformedPrinted} more malformed line(s) skipped.");
        if (asJson)
        {
            output.WriteLine(JsonSerializer.Serialize(report, ReportJson.Relaxed.QemuImportReport));
            return 0;
        }
        output.WriteLine($"{destination}: {report.Records:N0} records from {report.Lines:N0} lines in {report.Seconds:F2} s ({report.LinesPerSecond:N0} lines/s)");
        output.WriteLine($"  translations {report.Translations:N0} (QEMU: {report.QemuHits:N0} hits, {report.QemuUpdates:N0} updates, hit rate "
            + $"{(report.Translations == 0 ? 0 : (double)report.QemuHits / report.Translations):P2})");
        InvalidationCounts i = report.Invalidations;
        output.WriteLine($"  invalidations: global {i.Global:N0}, domain {i.Domain:N0}, page {i.Page:N0}, PASID page {i.PasidPage:N0}, PASID {i.Pasid:N0}");
        output.WriteLine($"  {report.Devices} device(s), {report.Domains} domain(s), {report.Maps:N0} maps, {report.Unmaps:N0} unmaps");
        output.WriteLine($"  skipped lines {report.SkippedLines:N0} (other vtd_* events {report.OtherVtdLines:N0}), malformed lines {report.MalformedLines:N0}");
        output.WriteLine($"  HPA sum from the log 0x{report.HpaSum:x16} (engine replay prints the same)");
        return 0;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing more to do: the error already went out.
        }
    }
}
