using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

/// <summary>
/// A walker bound to one table: the region, the bounds, the root and the level masks resolved once,
/// so a loop that walks many addresses of the same table pays for them once (the per-walk checks of
/// <see cref="PageWalker.Walk"/> — level count, root alignment — are made here). Identical results to
/// <see cref="PageWalker.Walk"/> for every address and access.
/// </summary>
/// <remarks>
/// A value to keep in a local: copying it is cheap, and it holds no native resource. It must not
/// outlive the <see cref="HostMemory"/> it was bound to, and walks must run inside an epoch-protected
/// region like every walk. It runs the same straight line as <see cref="PageWalker.Walk"/>
/// (<c>PageWalker.Line</c>) over the bound region; frames allocated after binding are still reached:
/// a pointer beyond the bound snapshot of the allocator's high-water mark leaves the line for the walk
/// across regions, which reads the live one.
/// </remarks>
internal readonly unsafe struct BoundWalker
{
    private readonly HostMemory? _memory;
    private readonly byte* _region;
    private readonly ulong _rebase;
    private readonly ulong _limit;
    private readonly ulong _rootHpa;
    private readonly ulong _rootOffset;
    private readonly int _levels;
    private readonly ulong _end;   // 2^width of the levels where the straight line applies, else 0: one compare sends the rest to the unbound walk
    private readonly WalkerConfig _config;

    /// <summary>Binds <paramref name="config"/>'s rules to the table at <paramref name="rootHpa"/> of <paramref name="levels"/> levels.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> is null.</exception>
    public BoundWalker(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        _config = config;
        // Bound to the region that holds the root: Engine's own, or the embedder RAM a guest's tables
        // live in. Tables elsewhere take the unbound walk.
        if (!memory.TryFindRegion(rootHpa, out ulong baseHpa, out _limit, out _region))
        {
            _region = memory.RegionPointer;
            baseHpa = memory.BaseHpa;
            _limit = memory.Limit;
        }
        _rebase = PageWalker.Rebase(config, baseHpa);
        _rootHpa = rootHpa;
        _rootOffset = rootHpa - baseHpa;
        _levels = levels;
        // The straight line takes second-stage rules, 4 or 5 levels, a root inside a region under the
        // line's ceiling. Anything else (EPT's write-only rule, 2 or 3 levels, a bad root, a region above
        // the ceiling) goes to the unbound walk, which judges it.
        bool simple = !config.RejectWriteOnly && levels is 4 or 5 && (rootHpa & (HostMemory.FrameSize - 1)) == 0 && _rootOffset < _limit
            && baseHpa + _limit <= config.LineCeiling;
        _end = simple ? 1UL << PageSizes.WidthOfLevels(levels) : 0;
    }

    /// <summary>Walks <paramref name="address"/> and checks <paramref name="access"/>, as <see cref="PageWalker.Walk"/> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public WalkResult Walk(ulong address, Access access)
    {
        if (address >= _end)
            return Unbound(address, access);
        return PageWalker.Line<PageWalker.SecondStageRules>(_memory!, _config, _region, _rebase, _limit, _rootOffset, _levels, address,
            PageWalker.RequiredPermissions(_config, access));
    }

    // Everything the bound line does not take — unusual shapes, addresses beyond the width — is
    // judged by the unbound walk, from the top: the result is its result by construction.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private WalkResult Unbound(ulong address, Access access) =>
        _memory is null
            ? WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 0)
            : PageWalker.Walk(_memory, _config, _rootHpa, _levels, address, access);
}
