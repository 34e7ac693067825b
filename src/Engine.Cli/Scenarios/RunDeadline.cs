using System.Diagnostics;

namespace Engine.Cli.Scenarios;

/// <summary>
/// The moment a run must end, counted from when the command started: setup, the measured phase and
/// the joins all spend from the same budget, so <c>--seconds 1</c> means about one second of wall
/// clock whatever the thread count (a setup that overruns it leaves the measured phase one round).
/// </summary>
internal sealed class RunDeadline
{
    private readonly long _start;
    private readonly long _end;

    private RunDeadline(long start, long end)
    {
        _start = start;
        _end = end;
    }

    /// <summary>A deadline <paramref name="seconds"/> from now.</summary>
    public static RunDeadline StartingNow(double seconds)
    {
        long now = Stopwatch.GetTimestamp();
        return new RunDeadline(now, now + (long)(seconds * Stopwatch.Frequency));
    }

    /// <summary>
    /// No deadline: the run does exactly the work it was asked for (tests that compare counts of
    /// one-thread runs use it, so a slow machine cannot cut a run short).
    /// </summary>
    public static RunDeadline None => new(Stopwatch.GetTimestamp(), long.MaxValue);

    /// <summary>Whether the deadline has passed.</summary>
    public bool HasPassed => Stopwatch.GetTimestamp() >= _end;

    /// <summary>Seconds since the command started.</summary>
    public double ElapsedSeconds => Stopwatch.GetElapsedTime(_start).TotalSeconds;

    /// <summary>The budget in seconds (infinite for <see cref="None"/>).</summary>
    public double BudgetSeconds => _end == long.MaxValue ? double.PositiveInfinity : (double)(_end - _start) / Stopwatch.Frequency;

    /// <summary>Seconds left, never negative.</summary>
    public double RemainingSeconds => _end == long.MaxValue ? double.PositiveInfinity : Math.Max(0, (double)(_end - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);
}
