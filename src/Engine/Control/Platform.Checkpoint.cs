using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;

namespace Engine.Control;

// Checkpoints (docs/checkpoint-format.md): Save writes the whole platform as length-prefixed,
// CRC-32C-checked sections; Load reads and checks every section before it builds anything, builds
// the objects through the ordinary control path (IOMMUs, VMs, exports, devices, domains, attachments),
// then replaces their state — host memory's frames and allocator, the TDP MMUs, the units' registers,
// caches, IOTLBs and counters, the driver's tables and DIDs — with the checkpoint's.
public sealed partial class Platform
{
    internal static ReadOnlySpan<byte> CheckpointMagicBytes => "ENGCKPT\0"u8;

    /// <summary>The checkpoint format version this build writes and reads.</summary>
    internal const ushort CheckpointVersion = 1;

    private const ushort NoIndex = 0xFFFF;

    /// <summary>Frames per FRMS section (16 MiB of contents): sections stay far below the 2 GiB an array holds, whatever the guest.</summary>
    internal const int FramesPerSection = 4096;

    /// <summary>
    /// Writes the whole state of this platform to <paramref name="stream"/> as a checkpoint
    /// (docs/checkpoint-format.md): host memory (the frames in use, sparsely, and the allocator), every
    /// VM with its memslots and TDP MMU, every IOMMU with its registers, latched root table, TE,
    /// context/PASID cache, IOTLB, fault records and queues, the driver's tables and domain ids,
    /// devices, KVM and paging domains and attachments. <see cref="Load"/> builds the same platform again.
    /// </summary>
    /// <remarks>
    /// Control path. The caller keeps the platform quiet while it runs: no translation, DMA or control
    /// operation in flight on any thread (control operations are held off by the control lock; a
    /// translation is not). The platform is not changed. Not supported (EOPNOTSUPP): embedder RAM
    /// (<see cref="AddRam"/>). A domain no device is attached to is not saved.
    /// </remarks>
    /// <param name="stream">Where to write; written sequentially, never sought.</param>
    /// <exception cref="EngineException">EOPNOTSUPP for what a checkpoint cannot hold (the message says what).</exception>
    /// <exception cref="ObjectDisposedException">The platform is disposed.</exception>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var sections = new List<(string Tag, byte[] Body)>();
        Span<byte> header = stackalloc byte[8];
        Span<byte> crc = stackalloc byte[4];
        // Held to the end: the frames stream out of host memory while nothing may change them.
        lock (ControlLock)
        {
            ThrowIfDisposed();
            List<Vm> vms = [.. _vms.Where(v => !v.IsDisposed)];
            var domains = new List<Domain>();
            foreach (Device d in _devices)
            {
                if (d.Domain is not (null or KvmDomain or PagingDomain))
                    throw new EngineException(Errno.EOPNOTSUPP, $"{d} is attached to a {d.Domain.Kind} domain; checkpoints hold KVM and paging domains only.");
                if (d.Domain is not null && !domains.Contains(d.Domain))
                    domains.Add(d.Domain);
            }
            foreach (KvmDomain kvm in domains.OfType<KvmDomain>())
            {
                if (kvm.Tdp.IsClosed || !vms.Contains(kvm.Tdp.Vm))
                    throw new EngineException(Errno.EOPNOTSUPP, $"a KVM domain's TDP export ({kvm.Tdp.Vm.Name}) is closed or its VM is not this platform's.");
            }
            foreach (IommuInstance i in _iommus)
                ObjectDisposedException.ThrowIf(i.IsDisposed, i);

            var plat = new CheckpointWriter();
            HostMemoryOptions m = Options.Memory;
            plat.U64(m.Size);
            plat.U64(m.BaseHpa);
            plat.U8((byte)m.HostAddressWidth);
            plat.U8((byte)((m.TransparentHugePages ? 1 : 0) | (m.PoisonFreedFrames ? 2 : 0)));
            plat.U8((byte)((Options.KvmDomainSupport ? 1 : 0) | (Options.ScalableModeEnabled ? 2 : 0) | (Options.ServePageRequestsImmediately ? 4 : 0)));
            plat.U8(BatchWalkerByte(Options.BatchWalker));
            plat.I32(m.ReclaimThreshold);
            plat.I64(m.DisposeTimeout.Ticks);
            plat.U16((ushort)_iommus.Count);
            plat.U16((ushort)vms.Count);
            plat.U16((ushort)_devices.Count);
            plat.U16((ushort)domains.Count);
            lock (_groupIndex)
            {
                plat.U32((uint)_groupIndex.Count);
                foreach (var ((iommu, sid), next) in _groupIndex.OrderBy(e => _iommus.IndexOf(e.Key.Item1)).ThenBy(e => e.Key.Item2))
                {
                    plat.U16((ushort)_iommus.IndexOf(iommu));
                    plat.U16(sid);
                    plat.U16(next);
                }
            }
            sections.Add(("PLAT", plat.Written.ToArray()));

            foreach (IommuInstance iommu in _iommus)
            {
                var w = new CheckpointWriter();
                DmarUnitOptions o = iommu.Unit.Options;
                w.String(iommu.Name);
                w.U64(o.Cap.Value);
                w.U64(o.Ecap.Value);
                w.I32(o.IotlbSets);
                w.I32(o.ContextCacheSlots);
                w.Bool(o.UseSimd);
                w.U8((byte)o.FaultCollapsing);
                w.U8((byte)o.ScalablePermissionFaults);
                w.U8(BatchWalkerByte(o.BatchWalker));
                iommu.SaveState(w, domains.IndexOf);
                sections.Add(("IOMU", w.Written.ToArray()));
            }
            foreach (Vm vm in vms)
            {
                var w = new CheckpointWriter();
                w.String(vm.Name);
                w.U8((byte)vm.Tdp.Levels);
                w.U8((byte)vm.Tdp.MaxHugePageLevel);
                w.U8((byte)vm.Tdp.PhysicalAddressWidth);
                w.Bool(vm.HasExport);
                vm.SaveState(w);
                sections.Add(("VM  ", w.Written.ToArray()));
            }
            var devs = new CheckpointWriter();
            foreach (Device d in _devices)
            {
                devs.String(d.Name);
                devs.U16(d.SourceId);
                devs.U16(d.Iommu is null ? NoIndex : (ushort)_iommus.IndexOf(d.Iommu));
                devs.U32((uint)d.Abilities);
                devs.Bool(d.PageRequestsEnabled);
                (long pageRequests, long deviceTlb) = d.CheckpointCounters;
                devs.I64(pageRequests);
                devs.I64(deviceTlb);
            }
            sections.Add(("DEVS", devs.Written.ToArray()));
            var doms = new CheckpointWriter();
            foreach (Domain domain in domains)
            {
                if (domain is KvmDomain kvm)
                {
                    doms.U8(2);
                    doms.U16((ushort)vms.IndexOf(kvm.Tdp.Vm));
                    (long invalidations, long served, long failed) = kvm.CheckpointCounters;
                    doms.I64(invalidations);
                    doms.I64(served);
                    doms.I64(failed);
                }
                else
                {
                    var (pgd, agaw, width, maxMappedEnd, largestLeafLevel, forceSnooping) = ((PagingDomain)domain).CheckpointState;
                    doms.U8(1);
                    doms.U64(pgd);
                    doms.U8((byte)agaw);
                    doms.U8((byte)width);
                    doms.U64(maxMappedEnd);
                    doms.U8((byte)largestLeafLevel);
                    doms.Bool(forceSnooping);
                }
                IReadOnlyList<Device> attached = domain.Devices;
                doms.U16((ushort)attached.Count);
                foreach (Device d in attached)
                    doms.U16((ushort)_devices.IndexOf(d));
            }
            sections.Add(("DOMS", doms.Written.ToArray()));
            var mem = new CheckpointWriter();
            Memory.SaveState(mem);
            sections.Add(("MEMR", mem.Written.ToArray()));
            List<uint> frames = Memory.FramesWithContents();
            int frameSections = (frames.Count + FramesPerSection - 1) / FramesPerSection;

            Span<byte> preamble = stackalloc byte[16];
            CheckpointMagicBytes.CopyTo(preamble);
            BinaryPrimitives.WriteUInt16LittleEndian(preamble[8..], CheckpointVersion);
            BinaryPrimitives.WriteUInt16LittleEndian(preamble[10..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(preamble[12..], (uint)(sections.Count + frameSections + 1));
            stream.Write(preamble);
            foreach ((string tag, byte[] body) in sections)
                WriteSection(stream, tag, body, header, crc);
            // FRMS: u32 count, then (u32 frame, 4096 bytes) each, streamed from host memory.
            Span<byte> word = stackalloc byte[4];
            for (int s = 0; s < frameSections; s++)
            {
                int first = s * FramesPerSection, count = Math.Min(FramesPerSection, frames.Count - first);
                Encoding.ASCII.GetBytes("FRMS", header);
                BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)(4 + count * (4 + HostMemory.FrameSize)));
                stream.Write(header);
                uint sum = Crc(0xFFFFFFFF, header);
                BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)count);
                stream.Write(word);
                sum = Crc(sum, word);
                for (int i = first; i < first + count; i++)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(word, frames[i]);
                    stream.Write(word);
                    ReadOnlySpan<byte> bytes = Memory.FrameBytes(frames[i]);
                    stream.Write(bytes);
                    sum = Crc(Crc(sum, word), bytes);
                }
                BinaryPrimitives.WriteUInt32LittleEndian(crc, ~sum);
                stream.Write(crc);
            }
        }
        WriteSection(stream, "END ", [], header, crc);
        stream.Flush();
    }

    private static void WriteSection(Stream stream, string tag, byte[] body, Span<byte> header, Span<byte> crc)
    {
        Encoding.ASCII.GetBytes(tag, header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)body.Length);
        stream.Write(header);
        stream.Write(body);
        BinaryPrimitives.WriteUInt32LittleEndian(crc, CheckpointCrc(header, body));
        stream.Write(crc);
    }

    /// <summary>
    /// Builds a platform from a checkpoint <see cref="Save"/> wrote: the same IOMMUs, VMs, devices,
    /// domains and attachments, in the same state, so that what it does next is what the saved
    /// platform would have done.
    /// </summary>
    /// <remarks>
    /// Every section's length and CRC-32C are checked before anything is built, and every value as it
    /// is read; a corrupt, truncated or wrong-version checkpoint throws <see cref="InvalidDataException"/>
    /// whose message names the byte offset, the section and what was expected there. All or nothing:
    /// when loading fails, everything built so far is disposed before the exception leaves.
    /// </remarks>
    /// <param name="stream">The checkpoint, read sequentially to its end section.</param>
    /// <returns>A new platform; the caller disposes it.</returns>
    /// <exception cref="InvalidDataException">The checkpoint is corrupt, truncated, of another version, or describes a platform this build cannot make.</exception>
    public static Platform Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        List<(string Tag, byte[] Body, long Offset)> sections = ReadSections(stream);
        int next = 0;
        CheckpointReader Expect(string tag, string what)
        {
            if (next >= sections.Count)
                throw new InvalidDataException($"checkpoint: expected section '{tag}' ({what}), but the sections ended.");
            (string found, byte[] body, long offset) = sections[next++];
            if (found != tag)
                throw new InvalidDataException($"checkpoint offset {offset - 8}: expected section '{tag}' ({what}), found '{found}'.");
            return new CheckpointReader(tag.TrimEnd(), body, offset);
        }

        CheckpointReader plat = Expect("PLAT", "the platform");
        ulong size = plat.U64("the host memory size");
        ulong baseHpa = plat.U64("the host memory base HPA");
        byte haw = plat.U8("the host address width");
        byte memFlags = plat.U8("host memory flags");
        byte flags = plat.U8("platform flags");
        if ((memFlags & ~3) != 0 || (flags & ~7) != 0)
            throw plat.Fail($"flags with only known bits, found host memory 0x{memFlags:x}, platform 0x{flags:x}", 2);
        Paging.BatchWalkerKind? platformWalker = ReadBatchWalker(plat, "the platform's batch walker");
        int reclaim = plat.I32("the reclaim threshold");
        long disposeTicks = plat.I64("the dispose timeout");
        int iommuCount = plat.U16("the IOMMU count"), vmCount = plat.U16("the VM count"),
            deviceCount = plat.U16("the device count"), domainCount = plat.U16("the domain count");
        int groups = plat.Count("page-group index entries", 6);
        var groupIndex = new List<(int Iommu, ushort Sid, ushort Next)>();
        for (int i = 0; i < groups; i++)
        {
            int iommu = plat.U16("a page-group entry's IOMMU");
            ushort sid = plat.U16("its source id");
            ushort value = plat.U16("its last group index");
            if (iommu >= iommuCount || value > 0x1FF)
                throw plat.Fail($"an IOMMU index below {iommuCount} and a group index of 0..511, found {iommu} and {value}", 6);
            groupIndex.Add((iommu, sid, value));
        }
        plat.ExpectEnd();
        var options = new PlatformOptions
        {
            Memory = new HostMemoryOptions
            {
                Size = size, BaseHpa = baseHpa, HostAddressWidth = haw, TransparentHugePages = (memFlags & 1) != 0,
                PoisonFreedFrames = (memFlags & 2) != 0, ReclaimThreshold = reclaim, DisposeTimeout = TimeSpan.FromTicks(disposeTicks),
            },
            KvmDomainSupport = (flags & 1) != 0,
            ScalableModeEnabled = (flags & 2) != 0,
            ServePageRequestsImmediately = (flags & 4) != 0,
            BatchWalker = platformWalker,
        };
        Platform platform;
        try
        {
            platform = new Platform(options);
        }
        catch (Exception e) when (e is ArgumentException or EngineException or HostMemoryExhaustedException)
        {
            throw new InvalidDataException($"checkpoint offset {plat.Offset - plat.Section.Length} (section PLAT): the host memory it describes cannot be made: {e.Message}", e);
        }
        try
        {
            platform.Restore(Expect, () => next < sections.Count ? sections[next].Tag : null, iommuCount, vmCount, deviceCount, domainCount, groupIndex);
            if (next != sections.Count - 1)
                throw new InvalidDataException($"checkpoint offset {sections[next].Offset - 8}: expected the end section, found '{sections[next].Tag}'.");
            return platform;
        }
        catch (Exception e)
        {
            platform.DisposeAfterFailedLoad();
            if (e is InvalidDataException)
                throw;
            throw new InvalidDataException($"checkpoint: the platform it describes could not be built: {e.Message}", e);
        }
    }

    // The batch-walker option in one byte: 0 for "the process default", otherwise the kind + 1. A
    // loaded unit asks for the walker its saved options asked for (the default is the loading process's).
    private static byte BatchWalkerByte(Paging.BatchWalkerKind? kind) => kind is { } k ? (byte)((int)k + 1) : (byte)0;

    private static Paging.BatchWalkerKind? ReadBatchWalker(CheckpointReader r, string what)
    {
        byte value = r.U8(what);
        if (value == 0)
            return null;
        if (value > Paging.BatchWalkerKinds.All.Count)
            throw r.Fail($"{what}: 0 (the default) or a walker 1..{Paging.BatchWalkerKinds.All.Count}, found {value}", 1);
        return (Paging.BatchWalkerKind)(value - 1);
    }

    private void Restore(Func<string, string, CheckpointReader> expect, Func<string?> peek, int iommuCount, int vmCount, int deviceCount, int domainCount,
        List<(int Iommu, ushort Sid, ushort Next)> groupIndex)
    {
        var iommuReaders = new List<CheckpointReader>();
        for (int i = 0; i < iommuCount; i++)
        {
            CheckpointReader r = expect("IOMU", $"IOMMU {i + 1} of {iommuCount}");
            string name = r.String("the IOMMU's name");
            var unitOptions = new DmarUnitOptions
            {
                Cap = new CapabilityRegister(r.U64("CAP")),
                Ecap = new ExtendedCapabilityRegister(r.U64("ECAP")),
                IotlbSets = r.I32("IOTLB sets"),
                ContextCacheSlots = r.I32("context-cache slots"),
                UseSimd = r.Bool("the SIMD option"),
                FaultCollapsing = (FaultCollapsing)r.U8("the fault-collapsing option"),
                ScalablePermissionFaults = (ScalablePermissionFaultStyle)r.U8("the permission-fault style"),
                BatchWalker = ReadBatchWalker(r, "the IOMMU's batch walker"),
            };
            try
            {
                AddIommu(name, unitOptions);
            }
            catch (Exception e) when (e is ArgumentException or EngineException)
            {
                throw r.Fail($"an IOMMU this build can make, but '{name}' is refused: {e.Message}");
            }
            iommuReaders.Add(r);   // its state follows, restored after host memory
        }
        var vms = new List<Vm>();
        var exports = new List<KvmTdpFd?>();
        for (int i = 0; i < vmCount; i++)
        {
            CheckpointReader r = expect("VM  ", $"VM {i + 1} of {vmCount}");
            var vmOptions = new VmOptions
            {
                Name = r.String("the VM's name"),
                TdpLevels = r.U8("TDP levels"),
                MaxHugePageLevel = r.U8("the largest huge-page level"),
                PhysicalAddressWidth = r.U8("the guest's physical address width"),
            };
            bool exported = r.Bool("whether the TDP is exported");
            Vm vm;
            try
            {
                vm = CreateVm(vmOptions);
            }
            catch (Exception e) when (e is ArgumentException or EngineException)
            {
                throw r.Fail($"a VM this build can make, but '{vmOptions.Name}' is refused: {e.Message}");
            }
            vm.RestoreState(r);
            r.ExpectEnd();
            vms.Add(vm);
            exports.Add(exported ? vm.ExportTdp() : null);
        }
        CheckpointReader devs = expect("DEVS", "the devices");
        var restoreDevices = new List<Action>();
        for (int i = 0; i < deviceCount; i++)
        {
            string name = devs.String("a device's name");
            ushort sid = devs.U16("its source id");
            ushort iommu = devs.U16("its IOMMU index");
            uint abilities = devs.U32("its abilities");
            bool pre = devs.Bool("whether its page requests are enabled");
            long pageRequests = devs.I64("its page requests"), deviceTlb = devs.I64("its device-TLB invalidations");
            if (iommu != NoIndex && iommu >= iommuCount)
                throw devs.Fail($"an IOMMU index below {iommuCount} (or 0xffff), found {iommu}");
            Device device;
            try
            {
                device = AddDevice(name, sid, iommu == NoIndex ? null : _iommus[iommu], (DeviceAbilities)abilities);
            }
            catch (Exception e) when (e is ArgumentException or EngineException)
            {
                throw devs.Fail($"a device this build can add, but '{name}' is refused: {e.Message}");
            }
            restoreDevices.Add(() =>
            {
                device.PageRequestsEnabled = pre;
                device.CheckpointCounters = (pageRequests, deviceTlb);
            });
        }
        devs.ExpectEnd();
        CheckpointReader doms = expect("DOMS", "the domains");
        var domains = new List<Domain>();
        var restoreDomains = new List<Action>();
        for (int i = 0; i < domainCount; i++)
        {
            byte kind = doms.U8("a domain's kind");
            Func<Device, Domain> allocate;
            Action<Domain> restoreDomain;
            if (kind == 2)
            {
                ushort vmIndex = doms.U16("its VM index");
                if (vmIndex >= vms.Count || exports[vmIndex] is null)
                    throw doms.Fail($"the index of a VM whose TDP is exported, found {vmIndex}", 2);
                (long, long, long) counters = (doms.I64("its invalidations"), doms.I64("its page requests served"), doms.I64("its page requests failed"));
                allocate = device => AllocateKvmDomain(device, exports[vmIndex]);
                restoreDomain = d => ((KvmDomain)d).CheckpointCounters = counters;
            }
            else if (kind == 1)
            {
                ulong pgd = doms.U64("its page-directory HPA");
                if ((pgd & (HostMemory.FrameSize - 1)) != 0 || !Memory.Contains(pgd, HostMemory.FrameSize))
                    throw doms.Fail($"a 4 KiB-aligned page directory inside host memory, found 0x{pgd:x}", 8);
                int agaw = doms.U8("its AGAW"), width = doms.U8("its width");
                ulong maxMappedEnd = doms.U64("the end of its highest mapping");
                int largest = doms.U8("its largest leaf level");
                bool snoop = doms.Bool("whether it forces snooping");
                if (agaw is < 1 or > 3 || width is < 30 or > 64 || largest is < 1 or > 3)
                    throw doms.Fail($"an AGAW of 1..3, a width of 30..64 and a leaf level of 1..3, found {agaw}, {width}, {largest}");
                allocate = device => AllocatePagingDomain(device);
                restoreDomain = d => ((PagingDomain)d).CheckpointState = (pgd, agaw, width, maxMappedEnd, largest, snoop);
            }
            else
            {
                throw doms.Fail($"a paging (1) or KVM (2) domain, found kind {kind}", 1);
            }
            int attached = doms.U16("its device count");
            if (attached == 0)
                throw doms.Fail("a domain with at least one device", 2);
            Domain? domain = null;
            for (int a = 0; a < attached; a++)
            {
                ushort index = doms.U16("an attached device's index");
                if (index >= _devices.Count)
                    throw doms.Fail($"a device index below {_devices.Count}, found {index}", 2);
                Device device = _devices[index];
                try
                {
                    domain ??= allocate(device);
                    domain.Attach(device, AttachFlags.AllowWithoutPageRequests);
                }
                catch (EngineException e)
                {
                    throw doms.Fail($"an attachment this build accepts, but attaching {device} is refused: {e.Message}", 2);
                }
            }
            domains.Add(domain!);
            restoreDomains.Add(() => restoreDomain(domain!));
        }
        doms.ExpectEnd();

        // Everything is built: now the state. Host memory first (it forgets the frames building took).
        CheckpointReader mem = expect("MEMR", "host memory");
        Memory.RestoreState(mem);
        mem.ExpectEnd();
        long previous = -1;
        while (peek() == "FRMS")
        {
            CheckpointReader frames = expect("FRMS", "frame contents");
            Memory.RestoreFrames(frames, ref previous);
            frames.ExpectEnd();
        }
        for (int i = 0; i < iommuCount; i++)
        {
            _iommus[i].RestoreState(iommuReaders[i], domains);
            iommuReaders[i].ExpectEnd();
        }
        foreach (Action a in restoreDevices)
            a();
        foreach (Action a in restoreDomains)
            a();
        lock (_groupIndex)
        {
            _groupIndex.Clear();
            foreach ((int iommu, ushort sid, ushort value) in groupIndex)
                _groupIndex[(_iommus[iommu], sid)] = value;
        }
    }

    private static List<(string Tag, byte[] Body, long Offset)> ReadSections(Stream stream)
    {
        long offset = 0;
        Span<byte> preamble = stackalloc byte[16];
        ReadExactly(stream, preamble, ref offset, "the 16-byte preamble (\"ENGCKPT\\0\", version, reserved, section count)");
        if (!preamble[..8].SequenceEqual(CheckpointMagicBytes))
            throw new InvalidDataException("checkpoint offset 0: expected the magic \"ENGCKPT\\0\"; this is not an Engine checkpoint.");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..]);
        if (version != CheckpointVersion)
            throw new InvalidDataException($"checkpoint offset 8: expected format version {CheckpointVersion} (the only one this build reads), found {version}.");
        if (BinaryPrimitives.ReadUInt16LittleEndian(preamble[10..]) != 0)
            throw new InvalidDataException("checkpoint offset 10: expected a reserved field of 0.");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(preamble[12..]);
        if (count < 6)
            throw new InvalidDataException($"checkpoint offset 12: expected a section count of at least 6 (PLAT, DEVS, DOMS, MEMR, END and more), found {count}.");
        var sections = new List<(string, byte[], long)>();
        Span<byte> header = stackalloc byte[8];
        Span<byte> crc = stackalloc byte[4];
        for (uint i = 0; i < count; i++)
        {
            long at = offset;
            ReadExactly(stream, header, ref offset, $"the 8-byte header of section {i + 1} of {count} (tag, length)");
            string tag = Encoding.ASCII.GetString(header[..4]);
            if (tag is not ("PLAT" or "IOMU" or "VM  " or "DEVS" or "DOMS" or "MEMR" or "FRMS" or "END "))
                throw new InvalidDataException($"checkpoint offset {at}: expected a section tag (PLAT, IOMU, VM, DEVS, DOMS, MEMR, FRMS, END), found bytes {Convert.ToHexString(header[..4])}.");
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            if (length > Array.MaxLength)
                throw new InvalidDataException($"checkpoint offset {at + 4} (section {tag.TrimEnd()}): expected a length of at most {Array.MaxLength}, found {length}.");
            if (stream.CanSeek && stream.Length - stream.Position < length + 4L)
                throw new InvalidDataException($"checkpoint offset {offset} (section {tag.TrimEnd()}): expected {length} bytes of section and a 4-byte CRC, but the file ends after {stream.Length - stream.Position}.");
            byte[] body = ReadBody(stream, (int)length, ref offset, tag.TrimEnd());
            ReadExactly(stream, crc, ref offset, $"the CRC-32C of section {tag.TrimEnd()}");
            uint expected = CheckpointCrc(header, body), found = BinaryPrimitives.ReadUInt32LittleEndian(crc);
            if (expected != found)
                throw new InvalidDataException($"checkpoint offset {offset - 4} (section {tag.TrimEnd()} at {at}): expected CRC-32C 0x{expected:x8} of its {length + 8} bytes, found 0x{found:x8}: the section is corrupt.");
            if (tag == "END " && (length != 0 || i != count - 1))
                throw new InvalidDataException($"checkpoint offset {at}: expected the end section, empty and last, found one of {length} bytes as section {i + 1} of {count}.");
            sections.Add((tag, body, at + 8));
        }
        if (sections[^1].Item1 != "END ")
            throw new InvalidDataException($"checkpoint offset {offset}: expected the end section as the last of {count} sections.");
        if (stream.ReadByte() >= 0)
            throw new InvalidDataException($"checkpoint offset {offset}: expected nothing after the end section, found more bytes.");
        return sections;
    }

    // A stream that cannot say its length gets no allocation larger than what it has delivered (plus
    // 16 MiB): a corrupt length ends the load at the end of the data, not in a 2 GiB allocation.
    private static byte[] ReadBody(Stream stream, int length, ref long offset, string section)
    {
        const int Step = 16 << 20;
        string what = $"the {length} bytes of section {section}";
        if (stream.CanSeek || length <= Step)
        {
            byte[] body = new byte[length];
            ReadExactly(stream, body, ref offset, what);
            return body;
        }
        var buffer = new MemoryStream(Step);
        byte[] chunk = new byte[Step];
        long start = offset;
        while (buffer.Length < length)
        {
            int n = (int)Math.Min(Step, length - buffer.Length);
            long at = offset;
            try
            {
                ReadExactly(stream, chunk.AsSpan(0, n), ref offset, what);
            }
            catch (InvalidDataException)
            {
                throw new InvalidDataException($"checkpoint offset {at}: expected {what} (from offset {start}), but the file ends after {at - start} of them (truncated).");
            }
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, ref long offset, string what)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0)
                throw new InvalidDataException($"checkpoint offset {offset + total}: expected {what}, but the file ends there (truncated; {buffer.Length - total} more bytes needed).");
            total += n;
        }
        offset += total;
    }

    /// <summary>CRC-32C (Castagnoli, initial and final value inverted) of a section's header and body.</summary>
    private static uint CheckpointCrc(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
    {
        uint crc = Crc(0xFFFFFFFF, header);
        return ~Crc(crc, body);
    }

    // CRC-32C without the final inversion, so a section can be summed in pieces.
    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++)
            crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }

    // A load that failed: every step of Dispose runs whatever the state it finds, and host memory is
    // released last whatever happened before, so no native memory outlives the failed load.
    private void DisposeAfterFailedLoad()
    {
        lock (ControlLock)
            Volatile.Write(ref _disposed, true);
        foreach (IommuInstance iommu in _iommus)
            TryAny(iommu.Dispose);
        foreach (Vm vm in _vms)
            TryAny(vm.Dispose);
        TryAny(Memory.Dispose);

        static void TryAny(Action step)
        {
            try
            {
                step();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Best effort: the load's own error is what the caller needs to see.
            }
        }
    }
}
