using System.Diagnostics;
using System.Globalization;
using Engine.Diagnostics;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// The live line of <c>engine run</c> on a terminal: elapsed time, translations/s over the last
/// quarter second and faults so far, read from <see cref="EngineMetrics.Totals"/> (the counters the
/// metrics publish), refreshed at most four times a second so the progress callback stays cheap.
/// Only the terminal path uses it: with --json or redirected output nothing extra is printed.
/// </summary>
internal sealed class RunProgress(ProgressTask task, string what)
{
    private static readonly TimeSpan Refresh = TimeSpan.FromMilliseconds(250);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _last;
    private long _lastTranslations;

    /// <summary>The progress callback: moves the bar, and every <see cref="Refresh"/> rewrites the description.</summary>
    public void Report(double fraction)
    {
        task.Value = fraction;
        TimeSpan now = _clock.Elapsed;
        if (now - _last < Refresh)
            return;
        EngineTotals totals = EngineMetrics.Totals();
        double rate = (totals.Translations - _lastTranslations) / (now - _last).TotalSeconds;
        _last = now;
        _lastTranslations = totals.Translations;
        task.Description = string.Create(CultureInfo.InvariantCulture,
            $"{what} · {now.TotalSeconds:F0} s · {rate:N0} translations/s · {totals.Faults:N0} faults");
    }
}
