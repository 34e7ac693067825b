using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Iommu;

namespace Engine.Trace;

/// <summary>
/// Reads a trace from a stream, one block in memory at a time. The constructor reads and checks the
/// preamble and header; <see cref="TryRead"/> hands out records until the end block. A block's
/// records are handed out only after its CRC matched, and each record is checked (kind, reserved
/// bytes, indices against the header) before it is handed out, so nothing past a bad record
/// reaches the caller. Every error is a <see cref="TraceFormatException"/> naming the byte offset.
/// </summary>
public sealed class TraceReader : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly int _iommus, _devices, _vms, _domains;
    private readonly bool[] _pagingDomain;
    private byte[] _payload = new byte[TraceFormat.BlockPayloadBytes];
    private readonly byte[] _blockHeader = new byte[TraceFormat.BlockHeaderBytes];
    private long _fileOffset;          // next byte of the stream
    private long _payloadOffset;       // file offset of _payload[0]
    private int _length;               // payload bytes of the current block
    private int _at;                   // next record in _payload
    private int _left;                 // records of the current block not yet handed out
    private bool _ended;
    private bool _disposed;
    private readonly long _firstBlock;        // file offset of the first block, after the header
    private readonly long _streamOrigin = -1; // the stream's position at the preamble, when it can seek

    /// <summary>Reads and checks the preamble and the header.</summary>
    /// <exception cref="TraceFormatException">Not a trace, another version, a truncated or corrupt header.</exception>
    public TraceReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        if (stream.CanSeek)
            _streamOrigin = stream.Position;
        Span<byte> preamble = stackalloc byte[TraceFormat.PreambleBytes];
        int got = Fill(preamble);
        if (got < 8 || !preamble[..8].SequenceEqual(TraceFormat.Magic))
        {
            throw new TraceFormatException(0, got < 8 && preamble[..got].SequenceEqual(TraceFormat.Magic[..got])
                ? $"the file ends after {got} byte(s); expected the 8-byte magic \"ENGTRACE\""
                : "expected the magic \"ENGTRACE\": this is not an Engine trace");
        }
        if (got < TraceFormat.PreambleBytes)
            throw new TraceFormatException(got, $"the file ends inside the preamble; expected {TraceFormat.PreambleBytes} bytes (magic, version, header length)");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..]);
        if (version != TraceFormat.Version)
            throw new TraceFormatException(8, $"trace format version {version}; this build reads version {TraceFormat.Version}");
        if (BinaryPrimitives.ReadUInt16LittleEndian(preamble[10..]) != 0)
            throw new TraceFormatException(10, "the reserved preamble bytes are not zero");
        uint headerBytes = BinaryPrimitives.ReadUInt32LittleEndian(preamble[12..]);
        if (headerBytes > TraceFormat.MaxHeaderBytes)
            throw new TraceFormatException(12, $"header length {headerBytes} exceeds the maximum {TraceFormat.MaxHeaderBytes}");
        byte[] body = new byte[headerBytes + 4];
        got = Fill(body);
        if (got < body.Length)
            throw new TraceFormatException(TraceFormat.PreambleBytes + got, $"the file ends inside the header; expected {headerBytes} header bytes and a 4-byte CRC, found {got} byte(s)");
        uint expected = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan((int)headerBytes));
        uint actual = TraceFormat.Crc32C(body.AsSpan(0, (int)headerBytes));
        if (expected != actual)
            throw new TraceFormatException(TraceFormat.PreambleBytes + headerBytes, $"header CRC mismatch: the file says 0x{expected:x8}, the header's bytes give 0x{actual:x8} (corrupt header)");
        Platform = TraceFormat.DecodeHeader(body.AsSpan(0, (int)headerBytes), TraceFormat.PreambleBytes);
        _iommus = Platform.Iommus.Count;
        _devices = Platform.Devices.Count;
        _vms = Platform.Vms.Count;
        _domains = Platform.Domains.Count;
        _pagingDomain = [.. Platform.Domains.Select(d => d.Kind == TraceDomainKind.Paging)];
        _fileOffset = TraceFormat.PreambleBytes + body.Length;
        _payloadOffset = _fileOffset;
        _firstBlock = _fileOffset;
    }

    /// <summary>
    /// Starts again at the first record, as if the reader had just read the header: for replaying one
    /// trace many times (a benchmark's passes) without reading and checking the header again, or
    /// allocating a reader and its buffers per pass. Every block is read and checked again.
    /// </summary>
    /// <exception cref="NotSupportedException">The stream cannot seek (the reader was made over a stream that cannot).</exception>
    /// <exception cref="ObjectDisposedException">The reader is disposed.</exception>
    public void Rewind()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_streamOrigin < 0)
            throw new NotSupportedException("Rewind needs a stream that can seek; this trace's stream cannot.");
        _stream.Position = _streamOrigin + _firstBlock;
        _fileOffset = _firstBlock;
        _payloadOffset = _firstBlock;
        _length = 0;
        _at = 0;
        _left = 0;
        _ended = false;
        RecordsRead = 0;
        RecordOffset = 0;
    }

    /// <summary>The platform the header describes.</summary>
    public TracePlatform Platform { get; }

    /// <summary>Records handed out so far.</summary>
    public long RecordsRead { get; private set; }

    /// <summary>File offset of the record last handed out.</summary>
    public long RecordOffset { get; private set; }

    /// <summary>Bytes consumed from the stream so far.</summary>
    public long BytesRead => _fileOffset;

    /// <summary>The next record; false after the end block (and a check that nothing follows it).</summary>
    /// <exception cref="TraceFormatException">Truncation, a CRC mismatch, a bad record.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryRead(out TraceRecord record)
    {
        if (_left == 0 && !NextBlock())
        {
            record = default;
            return false;
        }
        int at = _at;
        ReadOnlySpan<byte> b = _payload.AsSpan(at, Math.Min(TraceFormat.MaxRecordBytes, _length - at));
        RecordOffset = _payloadOffset + at;
        _at = at + Decode(b, out record);
        _left--;
        RecordsRead++;
        return true;
    }

    /// <summary>
    /// Hands every translate record from here up to the next record of another kind (or the end)
    /// to <paramref name="sink"/>, block after block, each checked as <see cref="TryRead"/> checks it.
    /// Stops before a record it cannot take as it is (another kind, a bad one), so the next
    /// <see cref="TryRead"/> returns or reports it. The replay's hot loop: no record struct, no copy.
    /// </summary>
    /// <returns>Records handed to the sink.</returns>
    public long ReadTranslates<TSink>(ref TSink sink) where TSink : struct, ITranslateSink
    {
        long count = 0;
        while (true)
        {
            if (_left == 0 && !NextBlock())
                return count;
            int at = _at, left = _left;
            int first = at;
            at = CheckTranslates(ref MemoryMarshal.GetArrayDataReference(_payload), at, ref left, _length - TranslateRecords.Size, (uint)_devices);
            if (at > first)
                sink.Translate(_payload.AsSpan(first, at - first));
            int taken = _left - left;
            count += taken;
            RecordsRead += taken;
            if (taken > 0)
                RecordOffset = _payloadOffset + at - 16;
            _at = at;
            _left = left;
            if (left > 0)
                return count;
        }
    }

    // Checks the run of translate records from `at`: the sink then translates them in a loop of its
    // own, small enough for the JIT to inline the translation into it. Two 8-byte loads a record, no
    // bounds checks: at <= end (= length - 16) holds for every record read.
    private static int CheckTranslates(ref byte payload, int at, ref int left, int end, uint devices)
    {
        int n = left;
        while (n > 0 && at <= end)
        {
            ulong head = Le(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref payload, at)));
            uint access = (uint)(head >> 8) & 0xFF;
            uint device = (uint)(head >> 16) & 0xFFFF;
            uint pasid = (uint)(head >> 32);
            if ((byte)head != (byte)TraceRecordKind.Translate || access - 1u > 6u || device >= devices
                || (pasid > FaultRecord.MaxPasid && pasid != TranslationRequest.NoPasid))
                break;   // another kind, or a bad record: TryRead returns or reports it, with its offset
            at += TranslateRecords.Size;
            n--;
        }
        left = n;
        return at;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Le(ulong v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    private int Decode(ReadOnlySpan<byte> b, out TraceRecord r)
    {
        r = default;
        if (b.IsEmpty)
            throw Bad($"the block ends after fewer records than its header counts ({_left} more expected)");
        var kind = (TraceRecordKind)b[0];
        int size = TraceFormat.RecordBytes(kind);
        if (size == 0)
            throw Bad($"unknown record kind {b[0]}; expected 1..8");
        if (b.Length < size)
            throw Bad($"a {kind} record needs {size} bytes; the block has {b.Length} left");
        r.Kind = kind;
        switch (kind)
        {
            case TraceRecordKind.Translate:
                r.Code = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Pasid = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
                if (r.Code is 0 or > 7 || r.Target >= _devices || (r.Pasid > FaultRecord.MaxPasid && r.Pasid != TranslationRequest.NoPasid))
                    throw Bad(Expected(r, "access 1..7, a device below " + _devices + ", a 20-bit PASID or 0xffffffff"));
                break;
            case TraceRecordKind.Dma:
                r.Code = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Pasid = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
                r.Value = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]);
                if (r.Code > 1 || r.Target >= _devices || r.Value is 0 or > int.MaxValue || BinaryPrimitives.ReadUInt32LittleEndian(b[20..]) != 0
                    || (r.Pasid > FaultRecord.MaxPasid && r.Pasid != TranslationRequest.NoPasid))
                    throw Bad(Expected(r, "direction 0 or 1, a device below " + _devices + ", length 1..2^31-1, a 20-bit PASID or 0xffffffff, zero reserved bytes"));
                break;
            case TraceRecordKind.Kvm:
                r.Code2 = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Code = b[4];
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
                r.Value = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]);
                if (r.Code2 is 0 or > 4 || r.Target >= _vms || r.Code > 7 || b[5] != 0 || b[6] != 0 || b[7] != 0 || r.Value == 0
                    || (r.Code2 == (byte)KvmOperation.FaultIn && r.Value != 1))
                    throw Bad(Expected(r, "operation 1..4, a VM below " + _vms + ", access 0..7, pages > 0 (1 for fault-in), zero reserved bytes"));
                break;
            case TraceRecordKind.PagingMap:
                r.Code = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
                r.Value = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]);
                r.Size = BinaryPrimitives.ReadUInt64LittleEndian(b[24..]);
                if (r.Code is 0 or > 7 || !IsPagingDomain(r.Target) || BinaryPrimitives.ReadUInt32LittleEndian(b[4..]) != 0 || r.Size == 0)
                    throw Bad(Expected(r, "permissions 1..7, a paging domain, size > 0, zero reserved bytes"));
                break;
            case TraceRecordKind.PagingUnmap:
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
                r.Value = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]);
                if (b[1] != 0 || !IsPagingDomain(r.Target) || BinaryPrimitives.ReadUInt32LittleEndian(b[4..]) != 0 || r.Value == 0)
                    throw Bad(Expected(r, "a paging domain, size > 0, zero reserved bytes"));
                break;
            case TraceRecordKind.Invalidate:
                r.Code = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Other = BinaryPrimitives.ReadUInt16LittleEndian(b[4..]);
                r.Code2 = b[6];
                r.Pasid = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]);
                r.Address = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]);
                bool global = r.Code == (byte)InvalidationKind.Global;
                if (r.Code is 0 or > 5 || r.Target >= _iommus || (global ? r.Other != TraceRecord.NoIndex : r.Other >= _domains) || r.Code2 > 52
                    || b[7] != 0 || BinaryPrimitives.ReadUInt32LittleEndian(b[12..]) != 0)
                    throw Bad(Expected(r, "granularity 1..5, an IOMMU below " + _iommus + ", a domain below " + _domains + " (0xffff for global), mask 0..52, zero reserved bytes"));
                break;
            default:   // attach, detach
                r.Code = b[1];
                r.Target = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                r.Other = BinaryPrimitives.ReadUInt16LittleEndian(b[4..]);
                if (r.Code > (kind == TraceRecordKind.Attach ? 1 : 0) || r.Target >= _domains || r.Other >= _devices || b[6] != 0 || b[7] != 0)
                    throw Bad(Expected(r, "flags 0" + (kind == TraceRecordKind.Attach ? " or 1" : "") + ", a domain below " + _domains + ", a device below " + _devices + ", zero reserved bytes"));
                break;
        }
        return size;
    }

    private bool IsPagingDomain(ushort domain) => domain < _domains && _pagingDomain[domain];

    private static string Expected(in TraceRecord r, string what) => $"bad {r.Kind} record ({r}); expected {what}";

    private TraceFormatException Bad(string problem) => new(_payloadOffset + _at, problem);

    // Reads the next block; false at the end block. Rare path, out of the record loop.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool NextBlock()
    {
        if (_ended)
            return false;
        if (_at != _length)
            throw new TraceFormatException(_payloadOffset + _at, $"{_length - _at} byte(s) left in the block after its last record; expected the block to end there");
        long blockOffset = _fileOffset;
        int got = Fill(_blockHeader);
        if (got == 0)
            throw new TraceFormatException(blockOffset, "the file ends without the end block; expected a block header (the trace is truncated)");
        if (got < TraceFormat.BlockHeaderBytes)
            throw new TraceFormatException(blockOffset, $"the file ends inside a block header: {got} of {TraceFormat.BlockHeaderBytes} bytes (the trace is truncated)");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader);
        uint records = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(4));
        uint payloadCrc = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(8));
        uint headerCrc = BinaryPrimitives.ReadUInt32LittleEndian(_blockHeader.AsSpan(12));
        uint actualHeaderCrc = TraceFormat.Crc32C(_blockHeader.AsSpan(0, 12));
        if (headerCrc != actualHeaderCrc)
            throw new TraceFormatException(blockOffset, $"block header CRC mismatch: the block says 0x{headerCrc:x8}, its bytes give 0x{actualHeaderCrc:x8} (corrupt block header)");
        if (length > TraceFormat.MaxBlockPayloadBytes)
            throw new TraceFormatException(blockOffset, $"block length {length} exceeds the maximum {TraceFormat.MaxBlockPayloadBytes}");
        bool end = records == 0;
        if (end ? length != 8 : length < records * (long)TraceFormat.MinRecordBytes || length > records * (long)TraceFormat.MaxRecordBytes)
        {
            throw new TraceFormatException(blockOffset, end
                ? $"an end block (0 records) must carry 8 payload bytes, not {length}"
                : $"a block of {records} record(s) cannot take {length} bytes (each record takes {TraceFormat.MinRecordBytes}..{TraceFormat.MaxRecordBytes})");
        }
        if (_payload.Length < length)
            _payload = new byte[length];
        _payloadOffset = _fileOffset;
        got = Fill(_payload.AsSpan(0, (int)length));
        if (got < length)
            throw new TraceFormatException(_payloadOffset + got, $"the file ends inside a block: {got} of its {length} payload bytes (the trace is truncated)");
        uint actual = TraceFormat.Crc32C(_payload.AsSpan(0, (int)length));
        if (actual != payloadCrc)
            throw new TraceFormatException(blockOffset, $"block CRC mismatch: the block says 0x{payloadCrc:x8}, its {length} payload bytes give 0x{actual:x8} (corrupt block at {_payloadOffset}..{_payloadOffset + length - 1}); none of its records was applied");
        _length = (int)length;
        _at = 0;
        if (end)
        {
            ulong total = BinaryPrimitives.ReadUInt64LittleEndian(_payload);
            if (total != (ulong)RecordsRead)
                throw new TraceFormatException(_payloadOffset, $"the end block counts {total} record(s); {RecordsRead} were read");
            _at = 8;
            _ended = true;
            Span<byte> one = stackalloc byte[1];
            if (Fill(one) != 0)
                throw new TraceFormatException(_fileOffset - 1, "bytes follow the end block; expected the end of the file");
            return false;
        }
        _left = (int)records;
        return true;
    }

    private int Fill(Span<byte> buffer)
    {
        int got = _stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        _fileOffset += got;
        return got;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _disposed = true;
        if (!_leaveOpen)
            _stream.Dispose();
    }
}
