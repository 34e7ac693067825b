using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Control;

/// <summary>
/// A paging (UNMANAGED) domain: the driver owns its VT-d second-stage tables and maps and unmaps
/// IOVA ranges itself (SPEC.md §3, left column).
/// </summary>
/// <remarks>
/// Created 57-bit / 5-level as <c>md_domain_init(57)</c> does; the first attach to a unit with a
/// narrower agaw strips the unused top levels as Linux does. Stripping is only possible while the
/// domain is attached nowhere (other units would keep the old root) — a later narrower unit is
/// refused with EINVAL instead. Page sizes follow the superpage support of the attached units.
/// </remarks>
public sealed class PagingDomain : Domain
{
    private readonly HostMemory _memory;
    private ulong _pgd;
    private int _agaw = 3;
    private int _width = 57;
    private ulong _maxMappedEnd;
    private int _largestLeafLevel = 1;
    private bool _forceSnooping;

    internal PagingDomain(Platform platform) : base(platform, "paging")
    {
        _memory = platform.Memory;
        _pgd = _memory.AllocateFrame();
    }

    /// <inheritdoc/>
    public override int Width => _width;

    /// <inheritdoc/>
    public override int Agaw => _agaw;

    /// <inheritdoc/>
    public override ulong Pgd => _pgd;

    /// <inheritdoc/>
    public override int SuperpageLevel
    {
        get
        {
            // A loop, not LINQ's Min: every map reads it (issue 14: map and unmap allocate nothing).
            IReadOnlyList<IommuInstance> iommus = Iommus;
            int level = 2;
            for (int i = 0; i < iommus.Count; i++)
                level = i == 0 ? iommus[i].Driver.SuperpageLevel : Math.Min(level, iommus[i].Driver.SuperpageLevel);
            return level;
        }
    }

    /// <inheritdoc/>
    public override bool ForceSnooping => _forceSnooping;

    /// <summary>Page sizes a map may use now: 4K always, 2M/1G as every attached unit supports them.</summary>
    public IReadOnlyList<PageSize> PageSizes => SuperpageLevel switch
    {
        0 => [PageSize.Size4K],
        1 => [PageSize.Size4K, PageSize.Size2M],
        _ => [PageSize.Size4K, PageSize.Size2M, PageSize.Size1G],
    };

    /// <summary>
    /// Makes every later DMA snoop (<c>enforce_cache_coherency</c>): needs snoop control on every
    /// attached unit; then new leaves carry SNP, and scalable-mode PASID entries PGSNP on re-attach.
    /// </summary>
    /// <exception cref="EngineException">EOPNOTSUPP when an attached unit lacks ECAP.SC.</exception>
    public void EnforceCacheCoherency()
    {
        lock (Platform.ControlLock)
        {
            ThrowIfFreed();
            ThrowIfPlatformDisposed();
            IommuInstance? without = Iommus.FirstOrDefault(i => !i.Unit.Ecap.SnoopControl);
            if (without is not null)
                throw new EngineException(Errno.EOPNOTSUPP, $"{without.Name} has no snoop control (ECAP.SC = 0), so DMA cannot be forced to snoop.");
            _forceSnooping = true;
        }
    }

    /// <summary>
    /// Maps [<paramref name="iova"/>, +<paramref name="size"/>) to [<paramref name="hpa"/>, +size) with
    /// R/W <paramref name="permissions"/>, using the largest page sizes alignment and the attached
    /// units allow. The range must be unmapped.
    /// </summary>
    /// <exception cref="EngineException">EINVAL for bad alignment, a range beyond the width or already mapped; ENOMEM when host memory runs out (what was mapped by this call is unmapped again).</exception>
    public void Map(ulong iova, ulong hpa, ulong size, Access permissions)
    {
        lock (Platform.ControlLock)
        {
            ThrowIfFreed();
            ThrowIfPlatformDisposed();
            if (size == 0 || ((iova | hpa | size) & (HostMemory.FrameSize - 1)) != 0)
                throw new EngineException(Errno.EINVAL, $"map: IOVA 0x{iova:x}, HPA 0x{hpa:x} and size 0x{size:x} must be non-zero multiples of 4 KiB.");
            if ((permissions & Access.ReadWrite) == 0 || (permissions & ~Access.All) != 0)
                throw new EngineException(Errno.EINVAL, $"map: permissions {permissions} must include Read or Write.");
            if (iova + size < iova || iova + size - 1 > ApertureEnd)
                throw new EngineException(Errno.EINVAL, $"map: [0x{iova:x}, +0x{size:x}) goes beyond the domain's {Width}-bit aperture.");
            if (hpa + size < hpa || (hpa + size - 1) >> _memory.HostAddressWidth != 0)
                throw new EngineException(Errno.EINVAL, $"map: HPA range [0x{hpa:x}, +0x{size:x}) is beyond the {_memory.HostAddressWidth}-bit host address width.");
            for (ulong a = iova; a < iova + size; a += HostMemory.FrameSize)
            {
                if (LeafAt(a) != 0)
                    throw new EngineException(Errno.EEXIST, $"map: IOVA 0x{a:x} is already mapped.");
                // A huge leaf found by LeafAt covers more than one page: skip what it covers.
            }
            ulong done = 0;
            int largestLeafLevel = _largestLeafLevel;
            List<(ulong Link, ulong Table)> newTables = _newTables;   // reused under the control lock: a map allocates nothing
            newTables.Clear();
            try
            {
                int maxLevel = SuperpageLevel + 1;
                while (done < size)
                {
                    int level = maxLevel;
                    while (level > 1)
                    {
                        ulong bytes = 1UL << Paging.PageSizes.ShiftOfLevel(level);
                        if (((iova + done) & (bytes - 1)) == 0 && ((hpa + done) & (bytes - 1)) == 0 && size - done >= bytes)
                            break;
                        level--;
                    }
                    InstallLeaf(iova + done, level, hpa + done, permissions, newTables);
                    done += 1UL << Paging.PageSizes.ShiftOfLevel(level);
                }
            }
            catch (HostMemoryExhaustedException e)
            {
                RollBackMap(iova, size, done, newTables);
                _largestLeafLevel = largestLeafLevel;
                throw new EngineException(Errno.ENOMEM, $"map: host memory ran out ({e.Message}); nothing of this mapping was kept.");
            }
            _maxMappedEnd = Math.Max(_maxMappedEnd, iova + size);
        }
    }

    /// <summary>
    /// Unmaps [<paramref name="iova"/>, +<paramref name="size"/>): leaves are cleared (a large leaf the
    /// range touches goes whole, as the Intel driver does), every attached unit gets a page-selective
    /// invalidation, then emptied tables are retired.
    /// </summary>
    /// <returns>Bytes unmapped (may exceed <paramref name="size"/> when a large page was cut).</returns>
    public ulong Unmap(ulong iova, ulong size) => Unmap(iova, size, invalidate: true);

    /// <summary>
    /// <see cref="Unmap(ulong, ulong)"/>, or with <paramref name="invalidate"/> false the leaves only,
    /// no IOTLB invalidation: Linux's lazy mode (<c>iommu.strict=0</c>), where the driver queues the
    /// freed IOVAs and flushes the whole domain later. Until the caller invalidates (a domain-selective
    /// invalidation through <see cref="DmarUnit.Submit"/>, say), a unit may still translate the range
    /// from its IOTLB, so the caller must not reuse the IOVAs before then.
    /// </summary>
    /// <returns>Bytes unmapped (may exceed <paramref name="size"/> when a large page was cut).</returns>
    public ulong Unmap(ulong iova, ulong size, bool invalidate)
    {
        lock (Platform.ControlLock)
        {
            ThrowIfFreed();
            ThrowIfPlatformDisposed();
            if (size == 0 || ((iova | size) & (HostMemory.FrameSize - 1)) != 0 || iova + size < iova)
                throw new EngineException(Errno.EINVAL, $"unmap: IOVA 0x{iova:x} and size 0x{size:x} must be non-zero multiples of 4 KiB.");
            return UnmapLocked(iova, size, invalidate);
        }
    }

    /// <summary>Translates through the domain's own tables (no IOMMU), for tests and diagnostics.</summary>
    /// <exception cref="EngineException">EINVAL when the domain has been freed (its tables are gone).</exception>
    /// <exception cref="ObjectDisposedException">The platform has been disposed.</exception>
    public WalkResult Lookup(ulong iova, Access access)
    {
        ThrowIfFreed();
        ThrowIfPlatformDisposed();
        using (_memory.Epochs.Enter())
        {
            // A free on another thread retires the tables through the epochs: re-checked inside the
            // protected region, a walk that passes never reaches a frame already reused.
            ThrowIfFreed();
            return PageWalker.Walk(_memory, WalkerConfig.SecondStage(_memory.HostAddressWidth, 2), _pgd, AgawMath.AgawToLevel(_agaw), iova, access);
        }
    }

    /// <summary>
    /// Undoes a map that ran out of host memory after <paramref name="done"/> bytes: its leaves are
    /// cleared and the tables it created unlinked (deepest first), every attached unit invalidates the
    /// whole range (IH = 0 drops paging-structure caches too), and only then are the tables retired,
    /// so the domain holds exactly the frames it held before the call.
    /// </summary>
    private void RollBackMap(ulong iova, ulong size, ulong done, List<(ulong Link, ulong Table)> newTables)
    {
        for (ulong a = iova; a < iova + done;)
        {
            (ulong entryHpa, int level) = FindLeaf(a);
            if (entryHpa != 0)
                _memory.WriteEntry(entryHpa, 0);
            a = (a & ~((1UL << Paging.PageSizes.ShiftOfLevel(level)) - 1)) + (1UL << Paging.PageSizes.ShiftOfLevel(level));
        }
        for (int i = newTables.Count - 1; i >= 0; i--)
            _memory.WriteEntry(newTables[i].Link, 0);
        if (newTables.Count == 0 && done == 0)
            return;
        foreach (IommuInstance iommu in Iommus)
        {
            if (iommu.IsDisposed)
                continue;
            iommu.FlushRange(iommu.FindDid(this)!.Value, iova, size, AtsDevicesOf(iommu));
        }
        ulong[] frames = [.. newTables.Select(t => t.Table)];
        _memory.RetireFrames(frames);
        _memory.Reclaim();
    }

    // Scratch of Map and Unmap, which run under the platform's control lock.
    private readonly List<(ulong Link, ulong Table)> _newTables = [];
    private readonly List<(ulong Start, ulong Bytes)> _cleared = [];

    private ulong UnmapLocked(ulong iova, ulong size, bool invalidate = true)
    {
        ulong start = iova, end = iova + size, unmapped = 0;
        List<(ulong Start, ulong Bytes)> cleared = _cleared;   // reused under the control lock: an unmap allocates nothing
        cleared.Clear();
        for (ulong a = start; a < end;)
        {
            (ulong entryHpa, int level) = FindLeaf(a);
            ulong bytes = 1UL << Paging.PageSizes.ShiftOfLevel(level);
            ulong pageStart = a & ~(bytes - 1);
            if (entryHpa != 0)
            {
                _memory.WriteEntry(entryHpa, 0);
                cleared.Add((pageStart, bytes));
                unmapped += bytes;
            }
            a = pageStart + bytes;
        }
        if (!invalidate)
            return unmapped;
        IReadOnlyList<IommuInstance> iommus = Iommus;
        for (int i = 0; i < iommus.Count; i++)   // indexed: a foreach over the interface allocates its enumerator
        {
            IommuInstance iommu = iommus[i];
            if (iommu.IsDisposed)
                continue;
            ushort did = iommu.FindDid(this)!.Value;
            IReadOnlyList<Device> ats = AtsDevicesOf(iommu);
            foreach (var (s, b) in cleared)   // List<T>'s struct enumerator: no allocation
                iommu.FlushRange(did, s, b, ats);
        }
        return unmapped;
    }

    private protected override void PrepareAttach(IommuInstance iommu)
    {
        int width = iommu.Width;
        if (_maxMappedEnd > 0 && _maxMappedEnd - 1 >> width != 0)
            throw new EngineException(Errno.EINVAL, $"{iommu.Name} translates {width}-bit addresses, but the domain maps up to 0x{_maxMappedEnd - 1:x}.");
        if (_largestLeafLevel - 1 > iommu.Driver.SuperpageLevel)
            throw new EngineException(Errno.EINVAL, $"{iommu.Name} cannot walk the domain's {(PageSize)_largestLeafLevel} pages (SLLPS 0x{iommu.Unit.Cap.Sllps:x}).");
        if (_forceSnooping && !iommu.Unit.Ecap.SnoopControl)
            throw new EngineException(Errno.EINVAL, $"{iommu.Name} has no snoop control, but the domain enforces cache coherency.");
        if (iommu.Driver.Agaw < _agaw)
        {
            if (Iommus.Count > 0)
                throw new EngineException(Errno.EINVAL, $"{iommu.Name} walks {AgawMath.AgawToLevel(iommu.Driver.Agaw)}-level tables but the domain is already in use with {AgawMath.AgawToLevel(_agaw)} levels.");
            // Strip the top levels (only slot 0 can be in use below the narrower width).
            while (_agaw > iommu.Driver.Agaw)
            {
                ulong top = _pgd;
                ulong first = _memory.ReadEntry(top);
                ulong child = (first & SlPte.AddressMask) != 0 ? first & SlPte.AddressMask : _memory.AllocateFrame();
                _pgd = child;
                _agaw--;
                _memory.RetireFrame(top);
            }
        }
        _width = Math.Min(_width, width);
    }

    private ulong LeafAt(ulong iova)
    {
        (ulong entryHpa, _) = FindLeaf(iova);
        return entryHpa;
    }

    /// <summary>The HPA of the present leaf covering <paramref name="iova"/> (0 if none) and its level (or the level where the walk stopped).</summary>
    private (ulong EntryHpa, int Level) FindLeaf(ulong iova)
    {
        ulong table = _pgd;
        for (int level = AgawMath.AgawToLevel(_agaw); ; level--)
        {
            ulong at = table + (((iova >> Paging.PageSizes.ShiftOfLevel(level)) & Paging.PageSizes.LevelMask) << 3);
            ulong e = _memory.ReadEntry(at);
            if ((e & (SlPte.ReadBit | SlPte.WriteBit)) == 0)
                return (0, level);
            if (level == 1 || (e & SlPte.PageSizeBit) != 0)
                return (at, level);
            table = e & SlPte.AddressMask;
        }
    }

    private void InstallLeaf(ulong iova, int level, ulong hpa, Access permissions, List<(ulong Link, ulong Table)> newTables)
    {
        ulong table = _pgd;
        for (int l = AgawMath.AgawToLevel(_agaw); l > level; l--)
        {
            ulong at = table + (((iova >> Paging.PageSizes.ShiftOfLevel(l)) & Paging.PageSizes.LevelMask) << 3);
            ulong e = _memory.ReadEntry(at);
            if ((e & (SlPte.ReadBit | SlPte.WriteBit)) == 0)
            {
                ulong child = _memory.AllocateFrame();
                _memory.WriteEntry(at, SlPte.Table(child).Value);
                newTables.Add((at, child));
                table = child;
            }
            else
            {
                table = e & SlPte.AddressMask;
            }
        }
        ulong leafAt = table + (((iova >> Paging.PageSizes.ShiftOfLevel(level)) & Paging.PageSizes.LevelMask) << 3);
        _memory.WriteEntry(leafAt, SlPte.Leaf(hpa, permissions, (PageSize)level, snoop: _forceSnooping).Value);
        _largestLeafLevel = Math.Max(_largestLeafLevel, level);
    }

    private protected override void Free()
    {
        if (_memory.IsDisposed)
            return;
        // The domain owns its tables: unmap everything and free every table frame, pgd included.
        var frames = new List<ulong>();
        void Visit(ulong table, int level)
        {
            frames.Add(table);
            if (level == 1)
                return;
            for (ulong i = 0; i < 512; i++)
            {
                ulong e = _memory.ReadEntry(table + i * 8);
                if ((e & (SlPte.ReadBit | SlPte.WriteBit)) != 0 && (e & SlPte.PageSizeBit) == 0)
                    Visit(e & SlPte.AddressMask, level - 1);
            }
        }
        Visit(_pgd, AgawMath.AgawToLevel(_agaw));
        _memory.RetireFrames(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(frames));
    }

    /// <summary>Checkpoint: the driver's view of its tables (the tables themselves are host memory).</summary>
    internal (ulong Pgd, int Agaw, int Width, ulong MaxMappedEnd, int LargestLeafLevel, bool ForceSnooping) CheckpointState
    {
        get
        {
            lock (Platform.ControlLock)
                return (_pgd, _agaw, _width, _maxMappedEnd, _largestLeafLevel, _forceSnooping);
        }
        set
        {
            lock (Platform.ControlLock)
                (_pgd, _agaw, _width, _maxMappedEnd, _largestLeafLevel, _forceSnooping) = value;
        }
    }
}
