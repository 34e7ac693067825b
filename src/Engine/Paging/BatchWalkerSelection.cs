using System.Globalization;

namespace Engine.Paging;

/// <summary>How the batch walker in use was chosen.</summary>
internal enum BatchWalkerSelectionReason
{
    /// <summary>Every supported candidate was timed on a synthetic table and the fastest won.</summary>
    Measured = 0,

    /// <summary>Only one candidate is supported here (no AVX2, or the runtime's ISA knobs turned it off), so nothing was timed.</summary>
    OnlyCandidate = 1,

    /// <summary>Forced by the <see cref="PageWalker.BatchWalkerVariable"/> environment variable.</summary>
    Environment = 2,

    /// <summary>Asked for by configuration (unit or platform options, <c>engine bench --batch-walker</c>).</summary>
    Forced = 3,

    /// <summary>The measurement could not run (e.g. its small host memory could not be reserved); the interleaved walker is used.</summary>
    MeasurementFailed = 4,
}

/// <summary>One candidate's time in the start-up measurement: nanoseconds per walk, the best of its rounds.</summary>
internal readonly record struct BatchWalkerTiming(BatchWalkerKind Kind, double NsPerWalk);

/// <summary>
/// A batch walker, why it was chosen, and the measured time of every candidate when it was chosen by
/// measurement (for reports).
/// </summary>
/// <param name="Kind">The walker in use.</param>
/// <param name="Reason">How it was chosen.</param>
/// <param name="Timings">The candidates' times when <paramref name="Reason"/> is <see cref="BatchWalkerSelectionReason.Measured"/>; otherwise empty.</param>
internal sealed record BatchWalkerSelection(BatchWalkerKind Kind, BatchWalkerSelectionReason Reason, IReadOnlyList<BatchWalkerTiming> Timings)
{
    /// <summary>Why the measurement failed, when <see cref="Reason"/> is <see cref="BatchWalkerSelectionReason.MeasurementFailed"/>.</summary>
    public string? Detail { get; init; }

    /// <summary>One line for reports, e.g. <c>avx2 (measured ns/walk: interleaved 9.8, avx2 7.9, avx512 8.4)</c>.</summary>
    public override string ToString() => Reason switch
    {
        BatchWalkerSelectionReason.Measured => $"{Kind.Name()} (measured ns/walk: {string.Join(", ", Timings.Select(t => $"{t.Kind.Name()} {t.NsPerWalk.ToString("F1", CultureInfo.InvariantCulture)}"))})",
        BatchWalkerSelectionReason.OnlyCandidate => $"{Kind.Name()} (the only one supported here)",
        BatchWalkerSelectionReason.Environment => $"{Kind.Name()} (forced by {PageWalker.BatchWalkerVariable})",
        BatchWalkerSelectionReason.Forced => $"{Kind.Name()} (forced)",
        _ => $"{Kind.Name()} (measurement failed: {Detail})",
    };
}
