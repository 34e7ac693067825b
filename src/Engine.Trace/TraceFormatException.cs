namespace Engine.Trace;

/// <summary>
/// A trace that cannot be read or applied: truncated, corrupted, of another version, or asking for
/// something the platform refuses. <see cref="Offset"/> is the byte offset in the file where the
/// problem is; the message names it and says what was expected there.
/// </summary>
public sealed class TraceFormatException : Exception
{
    /// <summary>Creates the error for byte <paramref name="offset"/>.</summary>
    public TraceFormatException(long offset, string problem)
        : base($"offset {offset}: {problem}")
    {
        Offset = offset;
        Problem = problem;
    }

    /// <summary>Byte offset of the bad bytes (of the record or block that failed).</summary>
    public long Offset { get; }

    /// <summary>What was wrong, without the offset.</summary>
    public string Problem { get; }
}
