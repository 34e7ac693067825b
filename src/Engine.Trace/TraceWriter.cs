using System.Buffers.Binary;

namespace Engine.Trace;

/// <summary>
/// Writes a trace to a stream as it happens: the header at once, then records gathered into
/// blocks of up to <see cref="TraceFormat.BlockPayloadBytes"/> bytes, each written with its CRC as
/// it fills, so a trace of any length takes one block of memory. <see cref="Complete"/> writes the
/// end block; a trace without one reads as truncated.
/// </summary>
public sealed class TraceWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _block = new byte[TraceFormat.BlockHeaderBytes + TraceFormat.BlockPayloadBytes];
    private int _used;
    private int _blockRecords;
    private bool _completed;
    private bool _disposed;

    /// <summary>Writes the preamble and <paramref name="platform"/>'s header to <paramref name="stream"/>.</summary>
    public TraceWriter(Stream stream, TracePlatform platform, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        Platform = platform;
        byte[] body = TraceFormat.EncodeHeader(platform);
        if (body.Length > TraceFormat.MaxHeaderBytes)
            throw new ArgumentException($"the platform description takes {body.Length} bytes; a header holds at most {TraceFormat.MaxHeaderBytes}.", nameof(platform));
        Span<byte> preamble = stackalloc byte[TraceFormat.PreambleBytes];
        TraceFormat.Magic.CopyTo(preamble);
        BinaryPrimitives.WriteUInt16LittleEndian(preamble[8..], TraceFormat.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(preamble[10..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(preamble[12..], (uint)body.Length);
        _stream.Write(preamble);
        _stream.Write(body);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, TraceFormat.Crc32C(body));
        _stream.Write(crc);
    }

    /// <summary>The platform the header describes.</summary>
    public TracePlatform Platform { get; }

    /// <summary>Records written so far.</summary>
    public long Records { get; private set; }

    /// <summary>Appends one record.</summary>
    public void Write(in TraceRecord record)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
            throw new InvalidOperationException("the trace is complete: no record may follow the end block.");
        int size = TraceFormat.RecordBytes(record.Kind);
        if (size == 0)
            throw new ArgumentException($"unknown record kind {(byte)record.Kind}.", nameof(record));
        if (_used + size > TraceFormat.BlockPayloadBytes)
            FlushBlock();
        Encode(record, _block.AsSpan(TraceFormat.BlockHeaderBytes + _used, size));
        _used += size;
        _blockRecords++;
        Records++;
    }

    /// <summary>Writes the pending block and the end block (the record count), and flushes the stream.</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
            return;
        FlushBlock();
        BinaryPrimitives.WriteUInt64LittleEndian(_block.AsSpan(TraceFormat.BlockHeaderBytes), (ulong)Records);
        WriteBlock(8, 0);
        _stream.Flush();
        _completed = true;
    }

    /// <summary>Writes what is pending (but no end block unless <see cref="Complete"/> ran) and closes the stream unless asked to leave it open.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        try
        {
            if (!_completed)
                FlushBlock();
            _stream.Flush();
        }
        finally
        {
            _disposed = true;
            if (!_leaveOpen)
                _stream.Dispose();
        }
    }

    private void FlushBlock()
    {
        if (_blockRecords == 0)
            return;
        WriteBlock(_used, _blockRecords);
        _used = 0;
        _blockRecords = 0;
    }

    private void WriteBlock(int payload, int records)
    {
        Span<byte> header = _block.AsSpan(0, TraceFormat.BlockHeaderBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)payload);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)records);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], TraceFormat.Crc32C(_block.AsSpan(TraceFormat.BlockHeaderBytes, payload)));
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], TraceFormat.Crc32C(header[..12]));
        _stream.Write(_block, 0, TraceFormat.BlockHeaderBytes + payload);
    }

    /// <summary>Encodes <paramref name="r"/> into <paramref name="b"/> (exactly its size; unused bytes zero).</summary>
    internal static void Encode(in TraceRecord r, Span<byte> b)
    {
        b.Clear();
        b[0] = (byte)r.Kind;
        switch (r.Kind)
        {
            case TraceRecordKind.Translate:
                b[1] = r.Code;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt32LittleEndian(b[4..], r.Pasid);
                BinaryPrimitives.WriteUInt64LittleEndian(b[8..], r.Address);
                break;
            case TraceRecordKind.Dma:
                b[1] = r.Code;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt32LittleEndian(b[4..], r.Pasid);
                BinaryPrimitives.WriteUInt64LittleEndian(b[8..], r.Address);
                BinaryPrimitives.WriteUInt32LittleEndian(b[16..], checked((uint)r.Value));
                break;
            case TraceRecordKind.Kvm:
                b[1] = r.Code2;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                b[4] = r.Code;
                BinaryPrimitives.WriteUInt64LittleEndian(b[8..], r.Address);
                BinaryPrimitives.WriteUInt64LittleEndian(b[16..], r.Value);
                break;
            case TraceRecordKind.PagingMap:
                b[1] = r.Code;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt64LittleEndian(b[8..], r.Address);
                BinaryPrimitives.WriteUInt64LittleEndian(b[16..], r.Value);
                BinaryPrimitives.WriteUInt64LittleEndian(b[24..], r.Size);
                break;
            case TraceRecordKind.PagingUnmap:
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt64LittleEndian(b[8..], r.Address);
                BinaryPrimitives.WriteUInt64LittleEndian(b[16..], r.Value);
                break;
            case TraceRecordKind.Invalidate:
                b[1] = r.Code;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt16LittleEndian(b[4..], r.Other);
                b[6] = r.Code2;
                BinaryPrimitives.WriteUInt32LittleEndian(b[8..], r.Pasid);
                BinaryPrimitives.WriteUInt64LittleEndian(b[16..], r.Address);
                break;
            case TraceRecordKind.Attach:
            case TraceRecordKind.Detach:
                b[1] = r.Code;
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], r.Target);
                BinaryPrimitives.WriteUInt16LittleEndian(b[4..], r.Other);
                break;
        }
    }
}
