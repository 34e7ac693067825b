using Engine.Paging;

namespace Engine.Kvm;

// Zap and write-protect: one recursive descent over [start, end), splitting the large leaves the
// range only partly covers so that exactly the requested pages change.
internal sealed partial class TdpMmu
{
    private enum RangeAction
    {
        Zap,
        WriteProtect,
    }

    /// <summary>Removes every mapping in [<paramref name="gfn"/>, +<paramref name="pages"/>). Caller holds the MMU lock and flushes.</summary>
    internal void Zap(ulong gfn, ulong pages) => Descend(RootHpa, Levels, 0, gfn, gfn + pages, RangeAction.Zap);

    /// <summary>Clears W in every leaf of [<paramref name="gfn"/>, +<paramref name="pages"/>). Caller holds the MMU lock and flushes.</summary>
    internal void WriteProtect(ulong gfn, ulong pages) => Descend(RootHpa, Levels, 0, gfn, gfn + pages, RangeAction.WriteProtect);

    private void Descend(ulong table, int level, ulong tableGfn, ulong start, ulong end, RangeAction action)
    {
        ulong span = PagesAt(level);
        ulong first = (Math.Max(start, tableGfn) - tableGfn) / span;
        ulong last = (Math.Min(end, tableGfn + span * PageSizes.EntriesPerTable) - 1 - tableGfn) / span;
        for (ulong i = first; i <= last; i++)
        {
            ulong entryHpa = table + (i << 3);
            ulong entry = Read(entryHpa);
            if (!IsPresent(entry))
                continue;
            ulong entryGfn = tableGfn + i * span;
            bool covered = start <= entryGfn && entryGfn + span <= end;
            if (IsLeaf(entry, level))
            {
                if (covered)
                {
                    ApplyToLeaf(entryHpa, entry, entryGfn, span, action);
                }
                else
                {
                    // Partly covered large page: split it (the split alone changes no translation),
                    // then act on the part inside the range.
                    ulong child = Split(entry, level);
                    Write(entryHpa, EptEntry.Table(child).Value);
                    Descend(child, level - 1, entryGfn, start, end, action);
                }
            }
            else if (covered && action == RangeAction.Zap)
            {
                Write(entryHpa, 0);
                CollectUnlinked(entry & EptEntry.AddressMask, level - 1, entryGfn);
            }
            else
            {
                Descend(entry & EptEntry.AddressMask, level - 1, entryGfn, start, end, action);
            }
        }
    }

    private void ApplyToLeaf(ulong entryHpa, ulong entry, ulong gfn, ulong pages, RangeAction action)
    {
        ulong updated = action == RangeAction.Zap ? 0 : entry & ~EptEntry.WriteBit;
        if (updated == entry)
            return;
        Write(entryHpa, updated);
        RecordChange(gfn, pages);
    }
}
