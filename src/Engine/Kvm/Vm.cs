using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

/// <summary>
/// A KVM virtual machine as far as DMA cares: memslots of guest RAM backed by host frames, and the
/// TDP MMU whose EPT translates guest-physical to host-physical addresses and can be exported to
/// IOMMU domains. Control operations serialize on the MMU lock; walkers never take it.
/// </summary>
public sealed partial class Vm : IDisposable
{
    private readonly Lock _mmuLock = new();
    private readonly List<Memslot> _slots = [];
    private readonly HashSet<ulong> _writeTracked = [];
    private readonly Dictionary<ulong, int>[] _trackedPerHugePage = [new(), new()];
    private KvmTdpFd? _export;
    private bool _disposed;

    /// <summary>Creates a VM whose tables and RAM live in <paramref name="memory"/>.</summary>
    /// <exception cref="EngineException">ENOMEM when host memory has no frame left for the TDP root.</exception>
    public Vm(HostMemory memory, VmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        options ??= new VmOptions();
        if (options.TdpLevels is not (4 or 5))
            throw new ArgumentOutOfRangeException(nameof(options), options.TdpLevels, "TdpLevels must be 4 or 5.");
        if (options.MaxHugePageLevel is < 1 or > 3)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxHugePageLevel, "MaxHugePageLevel must be 1 (4K), 2 (2M) or 3 (1G).");
        int width = options.PhysicalAddressWidth ?? memory.HostAddressWidth;
        if (width < memory.HostAddressWidth || width > 52)
            throw new ArgumentOutOfRangeException(nameof(options), width, $"PhysicalAddressWidth must be {memory.HostAddressWidth}..52 so every host frame is addressable.");
        Memory = memory;
        Name = options.Name;
        try
        {
            Tdp = new TdpMmu(this, memory, options.TdpLevels, options.MaxHugePageLevel, width);
        }
        catch (HostMemoryExhaustedException e)
        {
            throw new EngineException(Errno.ENOMEM, $"VM {Name}: no frame is left for the TDP root ({e.Message}).");
        }
    }

    /// <summary>Name for diagnostics.</summary>
    public string Name { get; }

    /// <summary>The host memory the VM lives in.</summary>
    public HostMemory Memory { get; }

    /// <summary>The TDP MMU (KVM's EPT).</summary>
    internal TdpMmu Tdp { get; }

    /// <summary>Guest frame numbers the EPT can translate: 2^(width − 12).</summary>
    public ulong MaxGfn => 1UL << (Tdp.AddressWidth - HostMemory.FrameShift);

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>A snapshot of the memslots, ordered by address.</summary>
    /// <exception cref="ObjectDisposedException">The VM has been disposed.</exception>
    public IReadOnlyList<Memslot> Memslots
    {
        get
        {
            lock (_mmuLock)
            {
                ThrowIfDisposed();
                return [.. _slots];
            }
        }
    }

    /// <summary>
    /// Adds a memslot of guest RAM at [<paramref name="gpa"/>, +<paramref name="size"/>), backed by
    /// host pages of <paramref name="backing"/> size allocated on first touch. Address and size must
    /// be aligned to the backing page size; slots may not overlap.
    /// </summary>
    public Memslot AddMemslot(int id, ulong gpa, ulong size, PageSize backing = PageSize.Size4K, MemslotFlags flags = MemslotFlags.None)
    {
        if (!Enum.IsDefined(backing))
            throw new ArgumentOutOfRangeException(nameof(backing), backing, "The backing must be 4K, 2M or 1G.");
        if ((flags & ~(MemslotFlags.ReadOnly | MemslotFlags.LogDirtyPages)) != 0)
            throw new ArgumentOutOfRangeException(nameof(flags), flags, "Unknown memslot flags.");
        ulong align = backing.Bytes();
        if (size == 0 || size % align != 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"The size must be a non-zero multiple of the {backing} backing page.");
        if (gpa % align != 0)
            throw new ArgumentOutOfRangeException(nameof(gpa), gpa, $"The GPA must be aligned to the {backing} backing page.");
        ulong gfn = gpa >> HostMemory.FrameShift, pages = size >> HostMemory.FrameShift;
        if (gfn + pages < gfn || gfn + pages > MaxGfn)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"The slot ends beyond the {Tdp.AddressWidth}-bit guest-physical width.");
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            if (_slots.Any(s => s.Id == id))
                throw new EngineException(Errno.EEXIST, $"memslot {id} already exists.");
            Memslot? overlap = _slots.FirstOrDefault(s => gfn < s.BaseGfn + s.Pages && s.BaseGfn < gfn + pages);
            if (overlap is not null)
                throw new EngineException(Errno.EEXIST, $"GPA range 0x{gpa:x}+0x{size:x} overlaps {overlap}.");
            var slot = new Memslot(id, gfn, pages, backing, flags & ~MemslotFlags.LogDirtyPages);
            _slots.Add(slot);
            _slots.Sort((a, b) => a.BaseGfn.CompareTo(b.BaseGfn));
            if ((flags & MemslotFlags.LogDirtyPages) != 0)
                slot.Flags |= MemslotFlags.LogDirtyPages;
            return slot;
        }
    }

    /// <summary>
    /// Deletes a memslot: its mappings are zapped (the exported root stays valid, as patch 36
    /// requires), importers flush, and its backing frames are retired.
    /// </summary>
    /// <exception cref="EngineException">ENOENT for an unknown slot; ENOMEM when a large page the slot shares had to be split and host memory ran out (the slot stays).</exception>
    public void RemoveMemslot(int id)
    {
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            Memslot slot = _slots.FirstOrDefault(s => s.Id == id)
                ?? throw new EngineException(Errno.ENOENT, $"memslot {id} does not exist.");
            Transact($"remove memslot {id}", () => Tdp.Zap(slot.BaseGfn, slot.Pages));
            Memory.RetireFrames([.. slot.BackingFrames()]);
            slot.Delete();
            _slots.Remove(slot);
            _writeTracked.RemoveWhere(slot.Contains);
            foreach (var counts in _trackedPerHugePage)
                counts.Clear();
            foreach (ulong gfn in _writeTracked)
                CountTracked(gfn, +1);
        }
    }

    /// <summary>
    /// Maps [<paramref name="gfn"/>, +<paramref name="pages"/>) — a guest frame number and a count of
    /// 4 KiB pages, not bytes (<see cref="MapGpa"/> takes bytes) — with <paramref name="permissions"/>
    /// at the largest page size that alignment, backing and <see cref="VmOptions.MaxHugePageLevel"/>
    /// allow. The range must lie inside memslots. Read-only slots and write-tracked pages get no W;
    /// dirty-logged slots map 4K pages read-only until written.
    /// </summary>
    /// <exception cref="EngineException">ENOMEM when host memory runs out for a table, a split or guest RAM; nothing of this call is kept (every entry as before, every frame it took given back).</exception>
    public void Map(ulong gfn, ulong pages, Access permissions)
    {
        if (permissions == Access.None || (permissions & ~Access.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(permissions), permissions, "Permissions must be a non-empty combination of Read, Write and Execute.");
        if ((permissions & Access.ReadWrite) == Access.Write)
            throw new ArgumentOutOfRangeException(nameof(permissions), permissions, "Write without Read is an EPT misconfiguration.");
        lock (_mmuLock)
        {
            ValidateRange(gfn, pages, requireMemslots: true);
            Transact($"map GFN 0x{gfn:x}+0x{pages:x}", () => Tdp.Map(gfn, pages, permissions));
        }
    }

    /// <summary>Removes every mapping in [<paramref name="gfn"/>, +<paramref name="pages"/>) — a guest frame number and a count of 4 KiB pages (<see cref="ZapGpa"/> takes bytes) — splitting large pages the range cuts.</summary>
    /// <exception cref="EngineException">ENOMEM when a large page the range cuts could not be split; nothing is zapped then.</exception>
    public void Zap(ulong gfn, ulong pages)
    {
        lock (_mmuLock)
        {
            ValidateRange(gfn, pages, requireMemslots: false);
            Transact($"zap GFN 0x{gfn:x}+0x{pages:x}", () => Tdp.Zap(gfn, pages));
        }
    }

    /// <summary>Removes W from every mapping in [<paramref name="gfn"/>, +<paramref name="pages"/>) — a guest frame number and a count of 4 KiB pages (<see cref="WriteProtectGpa"/> takes bytes) — as dirty logging does, splitting large pages the range cuts.</summary>
    /// <exception cref="EngineException">ENOMEM when a large page the range cuts could not be split; nothing is write-protected then.</exception>
    public void WriteProtect(ulong gfn, ulong pages)
    {
        lock (_mmuLock)
        {
            ValidateRange(gfn, pages, requireMemslots: false);
            Transact($"write-protect GFN 0x{gfn:x}+0x{pages:x}", () => Tdp.WriteProtect(gfn, pages));
        }
    }

    /// <summary>Faults in one GFN for a read, write or exec access on demand (the IO-page-fault path).</summary>
    public TdpFaultResult FaultIn(ulong gfn, Access access)
    {
        if (access == Access.None || (access & ~Access.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(access), access, "The access must be a non-empty combination of Read, Write and Execute.");
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            return FaultInLocked(gfn, access);
        }
    }

    /// <summary>The fault op for an importer's page request: a disposed VM answers <see cref="TdpFaultResult.ExportClosed"/>.</summary>
    internal TdpFaultResult FaultInForImporter(ulong gfn, Access access)
    {
        if (access == Access.None || (access & ~Access.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(access), access, "The access must be a non-empty combination of Read, Write and Execute.");
        lock (_mmuLock)
            return _disposed ? TdpFaultResult.ExportClosed : FaultInLocked(gfn, access);
    }

    private TdpFaultResult FaultInLocked(ulong gfn, Access access)
    {
        TdpFaultResult result = TdpFaultResult.OutOfMemory;
        try
        {
            Transact($"fault in GFN 0x{gfn:x}", () => result = Tdp.FaultIn(gfn, access));
        }
        catch (EngineException e) when (e.Errno == Errno.ENOMEM)
        {
            result = TdpFaultResult.OutOfMemory;
        }
        Tdp.CountFault(result == TdpFaultResult.Fixed);
        return result;
    }

    /// <summary>Marks <paramref name="gfn"/> write-tracked (KVM page tracking): it loses W now and a write fault on it fails.</summary>
    /// <exception cref="EngineException">ENOMEM when the large page holding it could not be split; the page is not tracked then.</exception>
    public void AddWriteTracking(ulong gfn)
    {
        lock (_mmuLock)
        {
            ValidateRange(gfn, 1, requireMemslots: true);
            if (!_writeTracked.Add(gfn))
                return;
            CountTracked(gfn, +1);
            Transact($"write-track GFN 0x{gfn:x}", () => Tdp.WriteProtect(gfn, 1), onRollBack: () =>
            {
                _writeTracked.Remove(gfn);
                CountTracked(gfn, -1);
            });
        }
    }

    /// <summary>Ends write tracking of <paramref name="gfn"/>; W comes back on the next write fault or map.</summary>
    public void RemoveWriteTracking(ulong gfn)
    {
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            if (_writeTracked.Remove(gfn))
                CountTracked(gfn, -1);
        }
    }

    /// <summary>Turns on dirty logging for a memslot: the whole slot is write-protected, and write faults log pages.</summary>
    /// <exception cref="EngineException">ENOMEM when a large page had to be split and host memory ran out; logging stays as it was.</exception>
    public void EnableDirtyLogging(int slotId)
    {
        lock (_mmuLock)
        {
            Memslot slot = SlotById(slotId);
            MemslotFlags flags = slot.Flags;
            List<ulong> dirty = slot.TakeDirty();
            slot.Flags |= MemslotFlags.LogDirtyPages;
            Transact($"enable dirty logging of memslot {slotId}", () => Tdp.WriteProtect(slot.BaseGfn, slot.Pages), onRollBack: () =>
            {
                slot.Flags = flags;
                foreach (ulong gfn in dirty)
                    slot.MarkDirty(gfn);
            });
        }
    }

    /// <summary>Turns off dirty logging for a memslot.</summary>
    public void DisableDirtyLogging(int slotId)
    {
        lock (_mmuLock)
            SlotById(slotId).Flags &= ~MemslotFlags.LogDirtyPages;
    }

    /// <summary>
    /// Returns the GFNs written since the last call (KVM_GET_DIRTY_LOG) and write-protects them
    /// again so the next write is logged too.
    /// </summary>
    public IReadOnlyList<ulong> GetDirtyLog(int slotId)
    {
        lock (_mmuLock)
        {
            Memslot slot = SlotById(slotId);
            if ((slot.Flags & MemslotFlags.LogDirtyPages) == 0)
                throw new EngineException(Errno.EINVAL, $"memslot {slotId} does not log dirty pages.");
            List<ulong> dirty = slot.TakeDirty();
            Transact($"get the dirty log of memslot {slotId}", () =>
            {
                foreach (ulong gfn in dirty)
                    Tdp.WriteProtect(gfn, 1);
            }, onRollBack: () =>
            {
                foreach (ulong gfn in dirty)
                    slot.MarkDirty(gfn);
            });
            return dirty;
        }
    }

    /// <summary>
    /// Exports the TDP of <paramref name="addressSpaceId"/> (KVM_CREATE_TDP_FD). Only address space 0
    /// exists here (no SMM); a second export of it while the first is open is refused with EEXIST.
    /// </summary>
    public KvmTdpFd ExportTdp(int addressSpaceId = 0)
    {
        lock (_mmuLock)
        {
            ThrowIfDisposed();
            if (addressSpaceId != 0)
                throw new EngineException(Errno.EINVAL, $"address space {addressSpaceId} does not exist (only 0; SMM is not modelled).");
            if (_export is not null)
                throw new EngineException(Errno.EEXIST, "the TDP of address space 0 is already exported.");
            var metadata = new ExportedTdp(TdpType.Ept, Tdp.Levels, Tdp.RootHpa, Tdp.MaxHugePageLevel, Tdp.RsvdBitsMask);
            _export = new KvmTdpFd(this, addressSpaceId, metadata);
            return _export;
        }
    }

    /// <summary>Walks the EPT (the CPU's view) for <paramref name="gpa"/>, inside an epoch-protected region.</summary>
    /// <exception cref="ObjectDisposedException">The VM has been disposed: its tables are gone.</exception>
    public WalkResult Translate(ulong gpa, Access access)
    {
        ThrowIfDisposed();
        using (Memory.Epochs.Enter())
            return PageWalker.Walk(Memory, Tdp.WalkerConfig, Tdp.RootHpa, Tdp.Levels, gpa, access);
    }

    // KvmTdpFd.Dispose: the importers are revoked under the MMU lock, so no flush slips between
    // their last invalidation and their revocation.
    internal void CloseExport(KvmTdpFd export)
    {
        List<Exception>? failures;
        lock (_mmuLock)
        {
            if (ReferenceEquals(_export, export))
                _export = null;
            failures = export.CloseLocked();
        }
        if (failures is not null)
            throw new InvalidOperationException($"Closing the TDP export of {Name}: {failures.Count} importer(s) could not stop using the tables.", new AggregateException(failures));
    }

    // Called by the TDP MMU's flush, under the MMU lock.
    internal void NotifyImporters(ulong gpa, ulong size) => _export?.Notify(gpa, size);

    /// <summary>
    /// Runs one TDP MMU operation all or nothing. When host memory runs out in the middle of it, every
    /// entry it changed is put back, every frame it took is given back (retired, and reclaimed at once
    /// when no walker is inside), <paramref name="onRollBack"/> undoes what the VM changed around it,
    /// and the caller gets ENOMEM. The importers hear of every range the operation touched either way.
    /// Caller holds the MMU lock.
    /// </summary>
    private void Transact(string what, Action operation, Action? onRollBack = null)
    {
        bool rolledBack = false;
        Tdp.BeginOperation();
        try
        {
            operation();
        }
        catch (HostMemoryExhaustedException e)
        {
            Tdp.RollBack();
            rolledBack = true;
            onRollBack?.Invoke();
            throw new EngineException(Errno.ENOMEM, $"{what}: host memory ran out ({e.Message}); nothing of it was kept.");
        }
        finally
        {
            Tdp.EndOperation();
            Tdp.Flush();
            if (rolledBack)
                Memory.Reclaim();
        }
    }

    internal Memslot? FindSlot(ulong gfn)
    {
        int lo = 0, hi = _slots.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            Memslot slot = _slots[mid];
            if (gfn < slot.BaseGfn)
                hi = mid - 1;
            else if (gfn >= slot.BaseGfn + slot.Pages)
                lo = mid + 1;
            else
                return slot;
        }
        return null;
    }

    internal bool IsWriteTracked(ulong gfn) => _writeTracked.Count != 0 && _writeTracked.Contains(gfn);

    internal bool HugePageDisallowed(ulong gfn, int level) =>
        _writeTracked.Count != 0 && _trackedPerHugePage[level - 2].ContainsKey(gfn >> (PageSizes.LevelStride * (level - 1)));

    private void CountTracked(ulong gfn, int delta)
    {
        for (int level = 2; level <= 3; level++)
        {
            ulong key = gfn >> (PageSizes.LevelStride * (level - 1));
            var counts = _trackedPerHugePage[level - 2];
            int n = counts.GetValueOrDefault(key) + delta;
            if (n == 0)
                counts.Remove(key);
            else
                counts[key] = n;
        }
    }

    private Memslot SlotById(int id)
    {
        ThrowIfDisposed();
        return _slots.FirstOrDefault(s => s.Id == id) ?? throw new EngineException(Errno.ENOENT, $"memslot {id} does not exist.");
    }

    private void ValidateRange(ulong gfn, ulong pages, bool requireMemslots)
    {
        ThrowIfDisposed();
        if (pages == 0)
            throw new ArgumentOutOfRangeException(nameof(pages), pages, "The page count must be at least 1.");
        if (gfn >= MaxGfn || pages > MaxGfn - gfn)
            throw new ArgumentOutOfRangeException(nameof(gfn), gfn, $"GFN range 0x{gfn:x}+0x{pages:x} goes beyond the {Tdp.AddressWidth}-bit guest-physical width.{UnitHint(gfn, pages)}");
        if (!requireMemslots)
            return;
        for (ulong g = gfn; g < gfn + pages;)
        {
            Memslot slot = FindSlot(g) ?? throw new ArgumentException($"GFN 0x{g:x} is not in any memslot.{UnitHint(gfn, pages)}", nameof(gfn));
            g = slot.BaseGfn + slot.Pages;
        }
    }

    // The first embedder passed AddMemslot's byte sizes to Map and read "GFN 0x40000 is not in any
    // memslot". When a refused range reads sensibly as bytes, the message says so.
    private string UnitHint(ulong gfn, ulong pages)
    {
        const ulong PageMask = HostMemory.FrameSize - 1;
        if ((pages & PageMask) != 0)
            return "";
        if ((gfn & PageMask) == 0 && InMemslots(gfn >> HostMemory.FrameShift, pages >> HostMemory.FrameShift))
            return $" Expected a GFN and a page count, got what look like a GPA and a byte size: GPA 0x{gfn:x} + 0x{pages:x} bytes is GFN 0x{gfn >> HostMemory.FrameShift:x} + 0x{pages >> HostMemory.FrameShift:x} pages (the *Gpa methods take bytes).";
        if (InMemslots(gfn, pages >> HostMemory.FrameShift))
            return $" Expected a page count, got what looks like a byte size: 0x{pages:x} bytes is 0x{pages >> HostMemory.FrameShift:x} pages (the *Gpa methods take bytes).";
        return "";
    }

    private bool InMemslots(ulong gfn, ulong pages)
    {
        if (pages == 0 || gfn >= MaxGfn || pages > MaxGfn - gfn)
            return false;
        for (ulong g = gfn; g < gfn + pages;)
        {
            if (FindSlot(g) is not { } slot)
                return false;
            g = slot.BaseGfn + slot.Pages;
        }
        return true;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>
    /// Tears the VM down. First the export is closed and every importer revoked
    /// (<see cref="ITdpImporter.Revoke"/>): a KVM domain on this VM's TDP detaches its devices, so
    /// every later DMA or translation through them faults (scalable mode: PASID entry not present,
    /// fault 0x59) and the domain is freed. Only then are the table frames and backing frames retired,
    /// so no device can reach memory the next VM gets; walkers still inside protected regions stay safe.
    /// </summary>
    /// <remarks>
    /// The series never frees a TDP under an importer: the TDP FD holds the VM and IOMMUFD holds the
    /// TDP FD. A Dispose cannot wait for that, and refusing it (EBUSY) would leave <c>using</c> blocks
    /// and platform teardown unable to finish, so it revokes the importers, in the order the series
    /// destroys a KVM HWPT: the domain stops using the tables, the importer is unregistered, then
    /// the tables go. After Dispose every member that touches the VM's state throws
    /// <see cref="ObjectDisposedException"/>; <see cref="Name"/>, <see cref="Memory"/>,
    /// <see cref="Tdp"/> (its shape) and <see cref="MaxGfn"/> stay readable. Idempotent.
    /// </remarks>
    /// <exception cref="InvalidOperationException">An importer could not stop using the tables; the VM is disposed, but its frames are kept (leaked) so that importer can never reach memory reused by someone else.</exception>
    public void Dispose()
    {
        List<Exception>? failures;
        lock (_mmuLock)
        {
            if (_disposed)
                return;
            Volatile.Write(ref _disposed, true);
            failures = _export?.CloseLocked();
            _export = null;
            if (failures is null && !Memory.IsDisposed)
            {
                var frames = new List<ulong>();
                Tdp.CollectAllTables(frames);
                foreach (Memslot slot in _slots)
                    frames.AddRange(slot.BackingFrames());
                Memory.RetireFrames(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(frames));
                Memory.Reclaim();
                Tdp.OnTablesFreed();
            }
            foreach (Memslot slot in _slots)
                slot.Delete();
            _slots.Clear();
        }
        if (failures is not null)
            throw new InvalidOperationException($"Disposing {Name}: {failures.Count} importer(s) of its TDP could not stop using the tables, so its frames are kept rather than freed under them.", new AggregateException(failures));
    }
}
