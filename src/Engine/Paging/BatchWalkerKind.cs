namespace Engine.Paging;

/// <summary>
/// The batch walkers <see cref="PageWalker.WalkBatch"/> can dispatch to. All give results
/// bit-identical to <see cref="PageWalker.WalkReference"/>; they differ only in how the loads of
/// one level are issued. Which one a unit uses is its <c>DmarUnitOptions.BatchWalker</c> (or the
/// platform's <c>PlatformOptions.BatchWalker</c>); left unset, the process default: the
/// <c>ENGINE_BATCH_WALKER</c> variable, else the fastest here by a short measurement made once.
/// </summary>
public enum BatchWalkerKind
{
    /// <summary>
    /// Interleaved scalar walks (<see cref="PageWalker.InterleavedBatch"/>): a group of 64 addresses
    /// walked level by level with independent scalar loads. Runs everywhere.
    /// </summary>
    Interleaved = 0,

    /// <summary>
    /// AVX2 gathers (<see cref="PageWalker.Gather4Batch"/>): the entries of 4 lanes per
    /// <c>vpgatherqq</c>, checks with 256-bit compares. Needs AVX2.
    /// </summary>
    Avx2Gather = 1,

    /// <summary>
    /// 8-lane walker (<see cref="PageWalker.Gather8Batch"/>): checks with 512-bit compares and
    /// masks; each 8-lane load is two 4-lane AVX2 gathers, since .NET 10 exposes no 512-bit gather.
    /// Needs AVX-512F and AVX2.
    /// </summary>
    Avx512Gather = 2,

    /// <summary>
    /// 8-lane walker with scalar loads (<see cref="PageWalker.Loads8Batch"/>): the 8-lane
    /// walker's 512-bit checks, each lane's entry read by a plain load instead of a gather, so the
    /// 16 loads of a level issue as fast as the load ports take them. Needs AVX-512F.
    /// </summary>
    Avx512Loads = 3,
}

/// <summary>Names of <see cref="BatchWalkerKind"/> as the CLI and <see cref="PageWalker.BatchWalkerVariable"/> spell them.</summary>
internal static class BatchWalkerKinds
{
    /// <summary>Every kind, in the order candidates are listed and measured.</summary>
    public static IReadOnlyList<BatchWalkerKind> All { get; } = [BatchWalkerKind.Interleaved, BatchWalkerKind.Avx2Gather, BatchWalkerKind.Avx512Gather, BatchWalkerKind.Avx512Loads];

    /// <summary>The value that asks for selection by measurement instead of a named walker.</summary>
    public const string Auto = "auto";

    /// <summary>The short name: <c>interleaved</c>, <c>avx2</c>, <c>avx512</c> or <c>avx512-loads</c>.</summary>
    public static string Name(this BatchWalkerKind kind) => kind switch
    {
        BatchWalkerKind.Interleaved => "interleaved",
        BatchWalkerKind.Avx2Gather => "avx2",
        BatchWalkerKind.Avx512Gather => "avx512",
        BatchWalkerKind.Avx512Loads => "avx512-loads",
        _ => $"unknown batch walker {(int)kind}",
    };

    /// <summary>Every accepted name, <see cref="Auto"/> last: for help texts and error messages.</summary>
    public static string Names => string.Join("|", All.Select(k => k.Name())) + "|" + Auto;

    /// <summary>Parses a short name (case-insensitive, surrounding blanks ignored); false for anything else, <see cref="Auto"/> included.</summary>
    public static bool TryParse(string? name, out BatchWalkerKind kind)
    {
        string trimmed = name?.Trim() ?? "";
        foreach (BatchWalkerKind k in All)
        {
            if (string.Equals(trimmed, k.Name(), StringComparison.OrdinalIgnoreCase))
            {
                kind = k;
                return true;
            }
        }
        kind = default;
        return false;
    }
}
