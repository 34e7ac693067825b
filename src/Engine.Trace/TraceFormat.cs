using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using Engine.Control;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>The layout constants of the trace format (docs/trace-format.md) and its header codec.</summary>
public static class TraceFormat
{
    /// <summary>The file's first 8 bytes: "ENGTRACE".</summary>
    public static ReadOnlySpan<byte> Magic => "ENGTRACE"u8;

    /// <summary>The version this build writes and reads.</summary>
    public const ushort Version = 1;

    /// <summary>Magic, version, reserved, header length.</summary>
    public const int PreambleBytes = 16;

    /// <summary>The largest header body accepted.</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>A block header: payload length, record count, payload CRC, header CRC.</summary>
    public const int BlockHeaderBytes = 16;

    /// <summary>The payload bytes a writer puts in one block (at most).</summary>
    public const int BlockPayloadBytes = 64 << 10;

    /// <summary>The largest block payload a reader accepts.</summary>
    public const int MaxBlockPayloadBytes = 1 << 20;

    /// <summary>The largest record (a paging map).</summary>
    public const int MaxRecordBytes = 32;

    /// <summary>The smallest record (attach, detach).</summary>
    public const int MinRecordBytes = 8;

    /// <summary>Bytes of a record of <paramref name="kind"/>, or 0 for an unknown kind.</summary>
    public static int RecordBytes(TraceRecordKind kind) => kind switch
    {
        TraceRecordKind.Translate => 16,
        TraceRecordKind.Dma => 24,
        TraceRecordKind.Kvm => 24,
        TraceRecordKind.PagingMap => 32,
        TraceRecordKind.PagingUnmap => 24,
        TraceRecordKind.Invalidate => 24,
        TraceRecordKind.Attach => 8,
        TraceRecordKind.Detach => 8,
        _ => 0,
    };

    /// <summary>CRC-32C (Castagnoli; initial and final value inverted) of <paramref name="data"/>.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++)
            crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <summary>Encodes the header body (without the preamble).</summary>
    public static byte[] EncodeHeader(TracePlatform p)
    {
        ArgumentNullException.ThrowIfNull(p);
        var w = new HeaderWriter();
        uint flags = (p.ScalableMode ? 1u : 0) | (p.ServePageRequestsImmediately ? 2u : 0);
        w.U32(flags);
        w.U64(p.MemoryBytes);
        w.U64(p.MemoryBaseHpa);
        w.U8((byte)p.HostAddressWidth);
        w.U8((byte)p.PageRequestsPerPage);
        w.U16(0);
        w.Str(p.Source);
        w.U64(p.QemuHits);
        w.U64(p.QemuUpdates);
        w.U16(checked((ushort)p.Iommus.Count));
        foreach (TraceIommu i in p.Iommus)
        {
            w.Str(i.Name);
            w.U64(i.Cap);
            w.U64(i.Ecap);
            w.U32((uint)i.IotlbSets);
            w.U32((uint)i.ContextCacheSlots);
            w.U8(i.UseSimd ? (byte)1 : (byte)0);
            w.U8(i.FaultCollapsing);
            w.U8(i.PermissionFaultStyle);
        }
        w.U16(checked((ushort)p.Devices.Count));
        foreach (TraceDevice d in p.Devices)
        {
            w.Str(d.Name);
            w.U16(d.SourceId);
            w.U16(d.Iommu < 0 ? TraceRecord.NoIndex : (ushort)d.Iommu);
            w.U32((uint)d.Abilities);
        }
        w.U16(checked((ushort)p.Vms.Count));
        foreach (TraceVm v in p.Vms)
        {
            w.Str(v.Name);
            w.U8((byte)v.TdpLevels);
            w.U8((byte)v.MaxHugePageLevel);
            w.U8((byte)v.PhysicalAddressWidth);
            w.U16(checked((ushort)v.Memslots.Count));
            foreach (TraceMemslot m in v.Memslots)
            {
                w.U32((uint)m.Id);
                w.U64(m.Gpa);
                w.U64(m.Size);
                w.U8((byte)m.Backing);
            }
            w.U32((uint)v.InitialMaps.Count);
            foreach (TraceVmMap m in v.InitialMaps)
            {
                w.U64(m.Gfn);
                w.U64(m.Pages);
                w.U8((byte)m.Access);
            }
        }
        w.U16(checked((ushort)p.Domains.Count));
        foreach (TraceDomain d in p.Domains)
        {
            w.U8((byte)d.Kind);
            w.U16(d.Vm < 0 ? TraceRecord.NoIndex : (ushort)d.Vm);
            w.U16(d.AllocationDevice < 0 ? TraceRecord.NoIndex : (ushort)d.AllocationDevice);
        }
        w.U16(checked((ushort)p.Attachments.Count));
        foreach (TraceAttachment a in p.Attachments)
        {
            w.U16((ushort)a.Domain);
            w.U16((ushort)a.Device);
            w.U8((byte)a.Flags);
        }
        return w.ToArray();
    }

    /// <summary>Decodes and checks a header body that starts at file offset <paramref name="fileOffset"/>.</summary>
    /// <exception cref="TraceFormatException">Truncated, or a value out of range (the offset names the field).</exception>
    public static TracePlatform DecodeHeader(ReadOnlySpan<byte> body, long fileOffset)
    {
        var r = new HeaderReader(body, fileOffset);
        uint flags = r.U32("flags");
        if ((flags & ~3u) != 0)
            throw r.Error($"header flags 0x{flags:x} have unknown bits (known: 0x3)");
        ulong memory = r.U64("memory bytes");
        ulong baseHpa = r.U64("memory base HPA");
        int width = r.U8("host address width");
        if (width is < 32 or > 52)
            throw r.Error($"host address width {width} is outside 32..52", 1);
        int perPage = r.U8("page requests per page");
        if (perPage == 0)
            throw r.Error("page requests per page is 0; expected 1..255", 1);
        r.U16("reserved");
        string source = r.Str("source");
        ulong qemuHits = r.U64("QEMU hits");
        ulong qemuUpdates = r.U64("QEMU updates");
        var iommus = new List<TraceIommu>();
        for (int n = r.U16("IOMMU count"), i = 0; i < n; i++)
        {
            string name = r.Str("IOMMU name");
            ulong cap = r.U64("CAP"), ecap = r.U64("ECAP");
            int sets = (int)r.U32("IOTLB sets");
            if (sets < 1 || sets > (1 << 24) || !BitOperations.IsPow2(sets))
                throw r.Error($"IOMMU {i}: IOTLB sets {sets} is not a power of two in 1..2^24", 4);
            int slots = (int)r.U32("context cache slots");
            if (slots < 1 || slots > (1 << 24) || !BitOperations.IsPow2(slots))
                throw r.Error($"IOMMU {i}: context cache slots {slots} is not a power of two in 1..2^24", 4);
            iommus.Add(new TraceIommu(name, cap, ecap, sets, slots, r.U8("SIMD") != 0, r.U8("fault collapsing"), r.U8("permission fault style")));
        }
        var devices = new List<TraceDevice>();
        for (int n = r.U16("device count"), i = 0; i < n; i++)
        {
            string name = r.Str("device name");
            ushort sid = r.U16("source id");
            int iommu = r.Index("device IOMMU", iommus.Count, allowNone: true);
            devices.Add(new TraceDevice(name, sid, iommu, (DeviceAbilities)r.U32("abilities")));
        }
        var vms = new List<TraceVm>();
        for (int n = r.U16("VM count"), i = 0; i < n; i++)
        {
            string name = r.Str("VM name");
            int levels = r.U8("TDP levels"), huge = r.U8("max huge page level"), paWidth = r.U8("physical address width");
            var slots = new List<TraceMemslot>();
            for (int s = r.U16("memslot count"), j = 0; j < s; j++)
            {
                int id = (int)r.U32("memslot id");
                ulong gpa = r.U64("memslot GPA"), size = r.U64("memslot size");
                byte backing = r.U8("memslot backing");
                if (backing is < 1 or > 3)
                    throw r.Error($"memslot backing page size {backing}; expected 1 (4K), 2 (2M) or 3 (1G)", 1);
                slots.Add(new TraceMemslot(id, gpa, size, (PageSize)backing));
            }
            var maps = new List<TraceVmMap>();
            uint mapCount = r.U32("initial map count");
            if (mapCount > (uint)body.Length / 17)
                throw r.Error($"{mapCount} initial maps cannot fit in the header", 4);
            for (uint j = 0; j < mapCount; j++)
                maps.Add(new TraceVmMap(r.U64("map GFN"), r.U64("map pages"), (Access)r.U8("map access")));
            vms.Add(new TraceVm(name, levels, huge, paWidth, slots, maps));
        }
        var domains = new List<TraceDomain>();
        for (int n = r.U16("domain count"), i = 0; i < n; i++)
        {
            byte kind = r.U8("domain kind");
            if (kind is not (1 or 2))
                throw r.Error($"domain {i} has kind {kind}; expected 1 (paging) or 2 (KVM)", 1);
            int vm = r.Index("domain VM", vms.Count, allowNone: kind == 1);
            int device = r.Index("domain allocation device", devices.Count, allowNone: kind == 1);
            domains.Add(new TraceDomain((TraceDomainKind)kind, vm, device));
        }
        var attachments = new List<TraceAttachment>();
        for (int n = r.U16("attachment count"), i = 0; i < n; i++)
        {
            int domain = r.Index("attachment domain", domains.Count, allowNone: false);
            int device = r.Index("attachment device", devices.Count, allowNone: false);
            attachments.Add(new TraceAttachment(domain, device, (AttachFlags)r.U8("attach flags")));
        }
        if (!r.AtEnd)
            throw r.Error($"{r.Remaining} byte(s) after the attachments; expected the header to end there");
        return new TracePlatform
        {
            ScalableMode = (flags & 1) != 0,
            ServePageRequestsImmediately = (flags & 2) != 0,
            MemoryBytes = memory,
            MemoryBaseHpa = baseHpa,
            HostAddressWidth = width,
            PageRequestsPerPage = perPage,
            Source = source,
            QemuHits = qemuHits,
            QemuUpdates = qemuUpdates,
            Iommus = iommus,
            Devices = devices,
            Vms = vms,
            Domains = domains,
            Attachments = attachments,
        };
    }

    private sealed class HeaderWriter
    {
        private readonly MemoryStream _stream = new();
        private readonly byte[] _scratch = new byte[8];

        public void U8(byte v) => _stream.WriteByte(v);

        public void U16(ushort v)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_scratch, v);
            _stream.Write(_scratch, 0, 2);
        }

        public void U32(uint v)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_scratch, v);
            _stream.Write(_scratch, 0, 4);
        }

        public void U64(ulong v)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_scratch, v);
            _stream.Write(_scratch, 0, 8);
        }

        public void Str(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            U16(checked((ushort)bytes.Length));
            _stream.Write(bytes);
        }

        public byte[] ToArray() => _stream.ToArray();
    }

    private ref struct HeaderReader(ReadOnlySpan<byte> body, long fileOffset)
    {
        private readonly ReadOnlySpan<byte> _body = body;
        private int _at;

        public readonly bool AtEnd => _at == _body.Length;

        public readonly int Remaining => _body.Length - _at;

        public readonly TraceFormatException Error(string problem, int back = 0) => new(fileOffset + _at - back, problem);

        private ReadOnlySpan<byte> Take(int n, string what)
        {
            if (_body.Length - _at < n)
                throw new TraceFormatException(fileOffset + _at, $"the header ends inside its {what} ({n} byte(s) expected, {_body.Length - _at} left)");
            ReadOnlySpan<byte> s = _body.Slice(_at, n);
            _at += n;
            return s;
        }

        public byte U8(string what) => Take(1, what)[0];

        public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));

        public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

        public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

        public string Str(string what)
        {
            int n = U16(what + " length");
            try
            {
                return new UTF8Encoding(false, true).GetString(Take(n, what));
            }
            catch (DecoderFallbackException)
            {
                throw new TraceFormatException(fileOffset + _at - n, $"the {what} is not UTF-8");
            }
        }

        public int Index(string what, int count, bool allowNone)
        {
            ushort v = U16(what);
            if (v == TraceRecord.NoIndex && allowNone)
                return -1;
            if (v >= count)
                throw new TraceFormatException(fileOffset + _at - 2, $"{what} {v} does not exist (the header declares {count}){(allowNone ? "; 0xffff means none" : "")}");
            return v;
        }
    }
}
