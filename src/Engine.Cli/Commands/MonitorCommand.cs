using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Diagnostics.NETCore.Client;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine monitor (--pid N | --name NAME) [--interval 1s]</c>: attaches to a running engine over
/// EventPipe (<see cref="MetricsSession"/>) and shows a live table of rates per IOMMU and KVM domain;
/// ends when the target exits, after <c>--duration</c>, or on Ctrl+C. <c>--json</c> prints the totals
/// seen instead (for scripts and tests). Exit 2 on bad input (no such process, ambiguous name).
/// </summary>
internal static class MonitorCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var pid = new Option<int?>("--pid") { Description = "Process id of the engine to watch." };
        var name = new Option<string>("--name") { Description = "Process name (or the .dll/command it runs, e.g. Engine.Cli) of the engine to watch." };
        var interval = new Option<string>("--interval") { Description = "Refresh interval (1s, 500ms; default 1s).", DefaultValueFactory = _ => "1s" };
        var duration = new Option<string>("--duration") { Description = "Stop after this long (e.g. 10s; default: until the target exits or Ctrl+C)." };
        var json = new Option<bool>("--json") { Description = "Print the totals seen as one JSON object at the end instead of a live table." };
        var command = new Command("monitor", "Watch a running engine's counters (the Engine meter over EventPipe): translations/s, IOTLB hit rate, walks, faults, invalidations, page requests.")
        {
            pid, name, interval, duration, json,
        };
        command.SetAction(parse =>
        {
            TimeSpan every = ParseTime("--interval", parse.GetValue(interval)!);
            if (every < TimeSpan.FromMilliseconds(100) || every > TimeSpan.FromHours(1))
                throw new CommandLineException($"--interval must be 100ms..1h, got {parse.GetValue(interval)}.");
            TimeSpan? limit = parse.GetValue(duration) is string d ? ParseTime("--duration", d) : null;
            int target = ResolveTarget(parse.GetValue(pid), parse.GetValue(name));
            bool asJson = parse.GetValue(json);
            bool live = !asJson && !Console.IsOutputRedirected && output == Console.Out;
            var state = new MonitorState(every);
            var errors = new List<string>();
            MetricsSession session;
            try
            {
                session = MetricsSession.Start(target, every, state.Add, message => { lock (errors) errors.Add(message); });
            }
            catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or IOException or TimeoutException or ServerErrorException)
            {
                error.WriteLine($"engine monitor: cannot attach to process {target}: {e.Message}");
                return Program.ExitBadArguments;
            }
            using (session)
            {
                using var cancel = new CancellationTokenSource();
                ConsoleCancelEventHandler? onCancel = null;
                if (output == Console.Out)
                {
                    onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
                    Console.CancelKeyPress += onCancel;
                }
                try
                {
                    var clock = Stopwatch.StartNew();
                    bool Done() => cancel.IsCancellationRequested || (limit is TimeSpan l && clock.Elapsed >= l) || session.WaitForEnd(TimeSpan.Zero);
                    void Wait() => session.WaitForEnd(limit is TimeSpan l ? Min(every, l - clock.Elapsed) : every);
                    if (live)
                    {
                        AnsiConsole.Live(state.Table(target)).Start(ctx =>
                        {
                            while (!Done())
                            {
                                Wait();
                                ctx.UpdateTarget(state.Table(target));
                            }
                        });
                    }
                    else
                    {
                        int printed = 0;
                        while (!Done())
                        {
                            Wait();
                            if (!asJson && state.Intervals > printed)
                            {
                                printed = state.Intervals;
                                WriteTable(state.Table(target), output);
                            }
                        }
                    }
                }
                finally
                {
                    if (onCancel is not null)
                        Console.CancelKeyPress -= onCancel;
                }
            }
            lock (errors)
            {
                foreach (string e in errors.Distinct())
                    error.WriteLine($"engine monitor: the target reported {e}");
            }
            if (asJson)
                output.WriteLine(JsonSerializer.Serialize(state.Report(target), MonitorJson.Default.MonitorReport));
            return 0;
        });
        return command;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : (b > TimeSpan.Zero ? b : TimeSpan.Zero);

    /// <summary>Parses 1s, 500ms, 2m or a plain number of seconds.</summary>
    internal static TimeSpan ParseTime(string option, string text)
    {
        string t = text.Trim();
        double scale = 1;
        foreach ((string unit, double factor) in (ReadOnlySpan<(string, double)>)[("ms", 1e-3), ("s", 1), ("m", 60)])
        {
            if (t.EndsWith(unit, StringComparison.OrdinalIgnoreCase))
            {
                t = t[..^unit.Length].Trim();
                scale = factor;
                break;
            }
        }
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value <= 0 || value * scale > 86400)
            throw new CommandLineException($"{option}: '{text}' is not a time (e.g. 1s, 500ms).");
        return TimeSpan.FromSeconds(value * scale);
    }

    /// <summary>The process to attach to: --pid as given (it must publish a diagnostics port), or the one process --name matches.</summary>
    private static int ResolveTarget(int? pid, string? name)
    {
        if (pid is null == name is null)
            throw new CommandLineException("give exactly one of --pid and --name.");
        IReadOnlyList<int> published = [.. DiagnosticsClient.GetPublishedProcesses().Where(p => p != Environment.ProcessId)];
        if (pid is int p)
        {
            if (!published.Contains(p))
                throw new CommandLineException($"--pid {p}: no .NET process with that id is accepting diagnostics connections.");
            return p;
        }
        int[] matches = [.. published.Where(candidate => Matches(candidate, name!))];
        return matches.Length switch
        {
            1 => matches[0],
            0 => throw new CommandLineException($"--name {name}: no .NET process of that name is accepting diagnostics connections."),
            _ => throw new CommandLineException($"--name {name}: {matches.Length} processes match ({string.Join(", ", matches)}); use --pid."),
        };
    }

    /// <summary>
    /// Whether <paramref name="pid"/> is called <paramref name="name"/>: its process name, or (an app run
    /// as <c>dotnet Engine.Cli.dll</c> is called "dotnet") the file name of an argument on its command line.
    /// </summary>
    private static bool Matches(int pid, string name)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            if (string.Equals(process.ProcessName, name, StringComparison.OrdinalIgnoreCase))
                return true;
        }
        catch (ArgumentException)
        {
            return false; // exited meanwhile
        }
        catch (InvalidOperationException)
        {
            return false;
        }
        string cmdline = $"/proc/{pid}/cmdline";
        try
        {
            if (!File.Exists(cmdline))
                return false;
            foreach (string argument in File.ReadAllText(cmdline).Split('\0', StringSplitOptions.RemoveEmptyEntries).Take(3))
            {
                string file = Path.GetFileName(argument);
                if (string.Equals(file, name, StringComparison.OrdinalIgnoreCase) || string.Equals(Path.GetFileNameWithoutExtension(file), name, StringComparison.OrdinalIgnoreCase))
                    return true;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return false;
    }

    private static void WriteTable(Table table, TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = Math.Max(console.Profile.Width, 200);
        console.Write(table);
    }
}

/// <summary>What <c>engine monitor</c> has seen: per source (iommu=… or domain=…) and instrument, the last interval's change and the total.</summary>
internal sealed class MonitorState(TimeSpan interval)
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, Dictionary<string, (double Last, double Total)>> _sources = new(StringComparer.Ordinal);
    private int _intervals;

    public int Intervals
    {
        get
        {
            lock (_gate)
                return _intervals;
        }
    }

    /// <summary>One interval's changes (called on the session's reader thread).</summary>
    public void Add(IReadOnlyList<MetricDelta> deltas)
    {
        lock (_gate)
        {
            _intervals++;
            var thisInterval = new Dictionary<(string, string), double>();
            foreach (MetricDelta d in deltas)
            {
                // The source is the iommu or domain tag; other tags (granularity, outcome) are summed.
                string source = d.Tags.Split(',').FirstOrDefault(t => t.StartsWith("iommu=", StringComparison.Ordinal) || t.StartsWith("domain=", StringComparison.Ordinal)) ?? "engine";
                thisInterval[(source, d.Instrument)] = thisInterval.GetValueOrDefault((source, d.Instrument)) + d.Delta;
            }
            foreach (((string source, string instrument), double delta) in thisInterval)
            {
                if (!_sources.TryGetValue(source, out var instruments))
                    _sources[source] = instruments = [];
                (double _, double total) = instruments.GetValueOrDefault(instrument);
                instruments[instrument] = (delta, total + delta);
            }
        }
    }

    private static readonly (string Header, string Instrument, double Scale, string Format)[] Columns =
    [
        ("translations/s", "engine.translations", 1, "N0"),
        ("IOTLB misses/s", "engine.iotlb.misses", 1, "N0"),
        ("walks/s", "engine.page_walks", 1, "N0"),
        ("ctx misses/s", "engine.context_cache.misses", 1, "N0"),
        ("faults/s", "engine.faults", 1, "N0"),
        ("invalidations/s", "engine.invalidations", 1, "N0"),
        ("page req/s", "engine.page_requests", 1, "N0"),
        ("served/s", "engine.page_requests.served", 1, "N0"),
        ("failed/s", "engine.page_requests.failed", 1, "N0"),
        ("KVM flushes/s", "engine.kvm.flush_notifications", 1, "N0"),
        ("DMA MiB/s", "engine.dma.bytes", 1.0 / (1 << 20), "N1"),
    ];

    public Table Table(int pid)
    {
        var table = new Table().Title($"engine monitor — process {pid}, every {interval.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s ({Intervals} intervals)");
        table.AddColumn("iommu / domain");
        table.AddColumn(new TableColumn("IOTLB hit rate").RightAligned());
        foreach (var c in Columns)
            table.AddColumn(new TableColumn(c.Header).RightAligned());
        lock (_gate)
        {
            foreach ((string source, var instruments) in _sources)
            {
                var cells = new List<string> { Markup.Escape(source[(source.IndexOf('=', StringComparison.Ordinal) + 1)..]) };
                double? hitRate = HitRate(instruments, last: true);
                cells.Add(hitRate is double h ? h.ToString("P1", CultureInfo.InvariantCulture) : "");
                foreach (var c in Columns)
                {
                    cells.Add(instruments.TryGetValue(c.Instrument, out var v)
                        ? (v.Last * c.Scale / interval.TotalSeconds).ToString(c.Format, CultureInfo.InvariantCulture)
                        : "");
                }
                table.AddRow([.. cells]);
            }
        }
        if (_sources.Count == 0)
            table.Caption("waiting for the first two observations (or the target tracks no platform)…");
        return table;
    }

    /// <summary>hits ÷ (hits + misses) of the last interval or of everything seen; null when there were no lookups.</summary>
    private static double? HitRate(Dictionary<string, (double Last, double Total)> instruments, bool last)
    {
        if (!instruments.TryGetValue("engine.iotlb.hits", out var hits) || !instruments.TryGetValue("engine.iotlb.misses", out var misses))
            return null;
        double h = last ? hits.Last : hits.Total, m = last ? misses.Last : misses.Total;
        return h + m > 0 ? h / (h + m) : null;
    }

    public MonitorReport Report(int pid)
    {
        lock (_gate)
        {
            var sources = _sources.Select(s => new MonitorSource(s.Key, s.Value.ToDictionary(i => i.Key, i => i.Value.Total), HitRate(s.Value, last: false))).ToList();
            double translations = sources.Sum(s => s.Totals.GetValueOrDefault("engine.translations"));
            double hits = sources.Sum(s => s.Totals.GetValueOrDefault("engine.iotlb.hits"));
            double misses = sources.Sum(s => s.Totals.GetValueOrDefault("engine.iotlb.misses"));
            return new MonitorReport(pid, interval.TotalSeconds, _intervals, translations, hits + misses > 0 ? hits / (hits + misses) : null, sources);
        }
    }
}

/// <summary>
/// <c>engine monitor --json</c>: pid, intervalSeconds, intervals, translations (total seen), iotlbHitRate
/// (0..1, null without lookups), and per source its instrument totals and hit rate.
/// </summary>
internal sealed record MonitorReport(int Pid, double IntervalSeconds, int Intervals, double Translations,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? IotlbHitRate, IReadOnlyList<MonitorSource> Sources);

/// <summary>One source (iommu=… or domain=…) of <see cref="MonitorReport"/>.</summary>
internal sealed record MonitorSource(string Source, Dictionary<string, double> Totals,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? IotlbHitRate);

/// <summary>Source-generated JSON for <see cref="MonitorReport"/>.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(MonitorReport))]
internal sealed partial class MonitorJson : JsonSerializerContext;
