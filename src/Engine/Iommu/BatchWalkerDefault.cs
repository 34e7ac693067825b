using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// The process's default batch walker, for units whose options name none: the
/// <see cref="PageWalker.BatchWalkerVariable"/> environment variable when set, otherwise the fastest
/// candidate here by one short measurement (<see cref="PageWalker.MeasureBatchWalkers"/>), made on
/// first use and cached for the life of the process (the CPU does not change under it).
/// </summary>
/// <remarks>
/// Write-once: nothing can change the default after it is made, so two platforms in one process
/// choose differently only through their options, and a test that forces a walker does so for its
/// own unit, never for others. A variable that names no walker, or one this CPU cannot run, makes
/// every unit that relies on the default fail to build with that message.
/// </remarks>
internal static class BatchWalkerDefault
{
    private static readonly Lazy<BatchWalkerSelection> Default = new(
        () => PageWalker.FromVariable(Environment.GetEnvironmentVariable(PageWalker.BatchWalkerVariable)) ?? PageWalker.MeasureBatchWalkers(),
        LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The default (made now if this is the first ask).</summary>
    /// <exception cref="InvalidOperationException">The variable names no walker.</exception>
    /// <exception cref="NotSupportedException">The variable names a walker this CPU does not support.</exception>
    public static BatchWalkerSelection Selection => Default.Value;

    /// <summary><paramref name="requested"/> checked and forced, or the default when it is null.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="requested"/> is not a walker.</exception>
    /// <exception cref="NotSupportedException"><paramref name="requested"/> (or the variable's walker) does not run here.</exception>
    /// <exception cref="InvalidOperationException">The default is needed and the variable names no walker.</exception>
    public static BatchWalkerSelection Resolve(BatchWalkerKind? requested) =>
        requested is { } kind ? PageWalker.ForcedBatchWalker(kind) : Selection;
}
