using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>Builds page tables by hand, entry by entry, so tests can plant any bit pattern.</summary>
internal sealed class TableBuilder(HostMemory memory, int levels)
{
    public HostMemory Memory { get; } = memory;

    public int Levels { get; } = levels;

    public ulong Root { get; } = memory.AllocateFrame();

    /// <summary>Creates (or follows) tables down to <paramref name="level"/> and writes <paramref name="entry"/> there for <paramref name="address"/>.</summary>
    public ulong Set(ulong address, int level, ulong entry, ulong tableEntryBits = EptEntry.PermissionMask)
    {
        ulong table = Root;
        for (int l = Levels; l > level; l--)
        {
            ulong at = EntryAt(table, address, l);
            ulong e = Memory.ReadEntry(at);
            ulong next = e & EptEntry.AddressMask;
            // Follow only a pointer to a live frame; anything else (empty, a planted leaf) gets a new table.
            if (next == 0 || !Memory.Contains(next, HostMemory.FrameSize) || Memory.GetFrameState(next) != FrameState.Allocated)
            {
                ulong child = Memory.AllocateFrame();
                e = child | tableEntryBits;
                Memory.WriteEntry(at, e);
            }
            table = e & EptEntry.AddressMask;
        }
        ulong target = EntryAt(table, address, level);
        Memory.WriteEntry(target, entry);
        return target;
    }

    /// <summary>The HPA of the entry for <paramref name="address"/> at <paramref name="level"/> (tables must exist).</summary>
    public ulong EntryHpa(ulong address, int level)
    {
        ulong table = Root;
        for (int l = Levels; l > level; l--)
            table = Memory.ReadEntry(EntryAt(table, address, l)) & EptEntry.AddressMask;
        return EntryAt(table, address, level);
    }

    public WalkResult Walk(in WalkerConfig config, ulong address, Access access)
    {
        using (Memory.Epochs.Enter())
            return PageWalker.Walk(Memory, config, Root, Levels, address, access);
    }

    private static ulong EntryAt(ulong table, ulong address, int level) =>
        table + (((address >> PageSizes.ShiftOfLevel(level)) & PageSizes.LevelMask) << 3);
}
