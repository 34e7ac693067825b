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
/// region like every walk. Frames allocated after binding are still reached: a pointer beyond the
/// bound snapshot of the allocator's high-water mark takes the unbound walk, which reads the live one.
/// </remarks>
internal readonly unsafe struct BoundWalker
{
    private readonly HostMemory? _memory;
    private readonly byte* _region;
    private readonly ulong _baseHpa;
    private readonly ulong _limit;
    private readonly ulong _rootHpa;
    private readonly ulong _rootOffset;
    private readonly int _levels;
    private readonly int _width;
    private readonly ulong _present;
    private readonly ulong _permissions;
    private readonly ulong _divert5, _divert4, _divert3, _divert2, _divert1;
    private readonly WalkerConfig _config;
    private readonly bool _simple;   // second-stage rules, 4 or 5 levels, root inside memory: the straight line applies

    /// <summary>Binds <paramref name="config"/>'s rules to the table at <paramref name="rootHpa"/> of <paramref name="levels"/> levels.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> is null.</exception>
    public BoundWalker(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        _config = config;
        // Bound to the region that holds the root: Engine's own, or the embedder RAM a guest's tables
        // live in. Tables elsewhere take the unbound walk.
        if (!memory.TryFindRegion(rootHpa, out _baseHpa, out _limit, out _region))
        {
            _region = memory.RegionPointer;
            _baseHpa = memory.BaseHpa;
            _limit = memory.Limit;
        }
        _rootHpa = rootHpa;
        _rootOffset = rootHpa - _baseHpa;
        _levels = levels;
        _width = (uint)(levels - 2) <= 3 ? PageSizes.WidthOfLevels(levels) : 0;
        _present = config.PresentMask;
        _permissions = config.PermissionMask;
        _divert5 = config.DivertMask(5);
        _divert4 = config.DivertMask(4);
        _divert3 = config.DivertMask(3);
        _divert2 = config.DivertMask(2);
        _divert1 = config.DivertMask(1);
        // Anything else (EPT's write-only rule, 2 or 3 levels, a bad root) goes to the unbound walk, which judges it.
        _simple = !config.RejectWriteOnly && levels is 4 or 5 && (rootHpa & (HostMemory.FrameSize - 1)) == 0 && _rootOffset < _limit;
    }

    /// <summary>Walks <paramref name="address"/> and checks <paramref name="access"/>, as <see cref="PageWalker.Walk"/> does.</summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public WalkResult Walk(ulong address, Access access)
    {
        if (!_simple || (address >> _width) != 0)
            return Unbound(address, access);
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!_config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        byte* region = _region;
        ulong permissions = _permissions;
        ulong offset = _rootOffset;
        ulong e;
        if (_levels == 5)
        {
            e = *(ulong*)(region + offset + (((address >> 48) & PageSizes.LevelMask) << 3));
            if ((e & _present) == 0 || (e & _divert5) != 0)
                return Unbound(address, access);
            permissions &= e;
            offset = (e & EptEntry.AddressMask) - _baseHpa;
            if (offset >= _limit)
                return Unbound(address, access);
        }
        e = *(ulong*)(region + offset + (((address >> 39) & PageSizes.LevelMask) << 3));
        if ((e & _present) == 0 || (e & _divert4) != 0)
            return Unbound(address, access);
        permissions &= e;
        offset = (e & EptEntry.AddressMask) - _baseHpa;
        if (offset >= _limit)
            return Unbound(address, access);
        e = *(ulong*)(region + offset + (((address >> 30) & PageSizes.LevelMask) << 3));
        if ((e & _present) == 0 || (e & _divert3) != 0)
            return Unbound(address, access);
        permissions &= e;
        offset = (e & EptEntry.AddressMask) - _baseHpa;
        if (offset >= _limit)
            return Unbound(address, access);
        e = *(ulong*)(region + offset + (((address >> 21) & PageSizes.LevelMask) << 3));
        if ((e & _present) == 0 || (e & _divert2) != 0)
            return Unbound(address, access);
        permissions &= e;
        offset = (e & EptEntry.AddressMask) - _baseHpa;
        if (offset >= _limit)
            return Unbound(address, access);
        e = *(ulong*)(region + offset + (((address >> 12) & PageSizes.LevelMask) << 3));
        if ((e & _present) == 0 || (e & _divert1) != 0)
            return Unbound(address, access);
        permissions &= e;
        if ((required & ~permissions) != 0)
            return WalkResult.Faulted(WalkFault.Permission, 1, e);
        return new WalkResult((e & EptEntry.AddressMask) | (address & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)permissions);
    }

    // Everything off the straight line — faults, large leaves, new frames, unusual shapes — is
    // judged by the unbound walk, from the top: the result is its result by construction.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private WalkResult Unbound(ulong address, Access access) =>
        _memory is null
            ? WalkResult.Faulted(WalkFault.TablePointerOutsideMemory, 0)
            : PageWalker.Walk(_memory, _config, _rootHpa, _levels, address, access);
}
