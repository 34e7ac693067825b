using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

// Mapping: choose the largest leaf that alignment, the memslot's backing, the VM's max huge-page
// level, dirty logging and write tracking allow, then install it with one store.
internal sealed partial class TdpMmu
{
    /// <summary>
    /// Maps [<paramref name="gfn"/>, +<paramref name="pages"/>) with <paramref name="permissions"/>,
    /// which must lie in memslots. Caller holds the MMU lock and flushes.
    /// </summary>
    internal void Map(ulong gfn, ulong pages, Access permissions)
    {
        ulong end = gfn + pages;
        while (gfn < end)
        {
            Memslot slot = _vm.FindSlot(gfn)!;
            ulong remaining = Math.Min(end, slot.BaseGfn + slot.Pages) - gfn;
            int level = ChooseLevel(slot, gfn, remaining);
            Access effective = EffectivePermissions(slot, gfn, permissions, write: false);
            InstallLeaf(gfn, level, Touch(slot, gfn), effective);
            gfn += PagesAt(level);
        }
    }

    /// <summary>
    /// KVM's fault op for an exported TDP (patch 37): makes <paramref name="gfn"/> accessible for
    /// <paramref name="access"/>, or says why it cannot. Caller holds the MMU lock and flushes.
    /// </summary>
    internal TdpFaultResult FaultIn(ulong gfn, Access access)
    {
        if (gfn >> (AddressWidth - HostMemory.FrameShift) != 0)
            return TdpFaultResult.BeyondAddressWidth;
        Memslot? slot = _vm.FindSlot(gfn);
        if (slot is null)
            return TdpFaultResult.NoMemslot;
        bool write = (access & Access.Write) != 0;
        if (write && _vm.IsWriteTracked(gfn))
            return TdpFaultResult.WriteTracked;
        if (write && (slot.Flags & MemslotFlags.ReadOnly) != 0)
            return TdpFaultResult.ReadOnlyMemslot;

        var (existing, _) = Lookup(gfn);
        if (IsPresent(existing) && ((ulong)access & ~existing & EptEntry.PermissionMask) == 0)
        {
            // Spurious: already mapped as asked (another fault got there first).
            if (write && (slot.Flags & MemslotFlags.LogDirtyPages) != 0)
                slot.MarkDirty(gfn);
            return TdpFaultResult.Fixed;
        }

        int level = MaxHugePageLevel;
        ulong aligned;
        while (true)
        {
            aligned = gfn & ~(PagesAt(level) - 1);
            if (level == 1 || (slot.Contains(aligned, PagesAt(level)) && ChooseLevel(slot, aligned, PagesAt(level)) >= level))
                break;
            level--;
        }
        Access effective = EffectivePermissions(slot, gfn, Access.All, write);
        InstallLeaf(aligned, level, Touch(slot, aligned), effective);
        if (write && (slot.Flags & MemslotFlags.LogDirtyPages) != 0)
            slot.MarkDirty(gfn);
        return TdpFaultResult.Fixed;
    }

    private ulong Touch(Memslot slot, ulong gfn)
    {
        ulong hpa = slot.Touch(_memory, gfn, out bool allocated);
        if (allocated)
            NoteNewChunk(slot, gfn);
        return hpa;
    }

    private int ChooseLevel(Memslot slot, ulong gfn, ulong remaining)
    {
        int max = Math.Min(MaxHugePageLevel, (int)slot.BackingPageSize);
        if ((slot.Flags & MemslotFlags.LogDirtyPages) != 0)
            max = 1;
        for (int level = max; level > 1; level--)
        {
            ulong pages = PagesAt(level);
            if ((gfn & (pages - 1)) == 0 && remaining >= pages && !_vm.HugePageDisallowed(gfn, level))
                return level;
        }
        return 1;
    }

    // Read-only slots and write-tracked pages never get W; under dirty logging W is granted only
    // by a write fault, so the first write to each page is seen and logged.
    private Access EffectivePermissions(Memslot slot, ulong gfn, Access asked, bool write)
    {
        Access effective = asked;
        if ((slot.Flags & MemslotFlags.ReadOnly) != 0 || _vm.IsWriteTracked(gfn)
            || ((slot.Flags & MemslotFlags.LogDirtyPages) != 0 && !write))
            effective &= ~Access.Write;
        return effective;
    }

    /// <summary>
    /// Installs a leaf for <paramref name="gfn"/> at <paramref name="level"/>: creates missing tables,
    /// splits large leaves on the way, and replaces whatever was at the target (a subtree that a
    /// large leaf supersedes is unlinked and retired at the flush).
    /// </summary>
    private void InstallLeaf(ulong gfn, int level, ulong hpa, Access permissions)
    {
        ulong table = RootHpa;
        for (int l = Levels; l > level; l--)
        {
            ulong entryHpa = EntryAddress(table, gfn, l);
            ulong entry = Read(entryHpa);
            if (!IsPresent(entry))
            {
                ulong child = AllocateTable();
                Write(entryHpa, EptEntry.Table(child).Value);
                table = child;
            }
            else if (IsLeaf(entry, l))
            {
                ulong child = Split(entry, l);
                Write(entryHpa, EptEntry.Table(child).Value);
                table = child;
            }
            else
            {
                table = entry & EptEntry.AddressMask;
            }
        }

        ulong targetHpa = EntryAddress(table, gfn, level);
        ulong old = Read(targetHpa);
        ulong leaf = EptEntry.Leaf(hpa, permissions, (PageSize)level).Value;
        if (old == leaf)
            return;
        Write(targetHpa, leaf);
        NoteInstalled(gfn, PagesAt(level));
        if (!IsPresent(old))
            return;
        // A present entry changed: importers must drop what they cached of it. A not-present to
        // present change needs no flush (KVM does none; see SPEC.md §1.7 on caching mode).
        if (IsLeaf(old, level))
            RecordChange(gfn, PagesAt(level));
        else
            CollectUnlinked(old & EptEntry.AddressMask, level - 1, gfn);
    }
}
