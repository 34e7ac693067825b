using System.Buffers.Binary;
using System.Text;

namespace Engine.Memory;

/// <summary>
/// The body of one checkpoint section being written: little-endian integers, strings (u16 length +
/// UTF-8) and raw bytes (docs/checkpoint-format.md). Each layer's type writes its own state into one.
/// </summary>
internal sealed class CheckpointWriter
{
    private readonly MemoryStream _stream = new();
    private readonly BinaryWriter _writer;

    public CheckpointWriter() => _writer = new BinaryWriter(_stream, Encoding.UTF8, leaveOpen: true);

    public void U8(byte v) => _writer.Write(v);
    public void Bool(bool v) => _writer.Write(v ? (byte)1 : (byte)0);
    public void U16(ushort v) => _writer.Write(v);
    public void I32(int v) => _writer.Write(v);
    public void U32(uint v) => _writer.Write(v);
    public void I64(long v) => _writer.Write(v);
    public void U64(ulong v) => _writer.Write(v);
    public void Bytes(ReadOnlySpan<byte> bytes) => _writer.Write(bytes);

    public void String(string? s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s ?? "");
        if (bytes.Length > ushort.MaxValue)
            throw new ArgumentException("A checkpoint string holds at most 65535 UTF-8 bytes.", nameof(s));
        U16((ushort)bytes.Length);
        Bytes(bytes);
    }

    public ReadOnlySpan<byte> Written
    {
        get
        {
            _writer.Flush();
            return _stream.GetBuffer().AsSpan(0, (int)_stream.Length);
        }
    }
}

/// <summary>
/// Reads one checkpoint section's body, whose CRC has been checked already. Every read past the end,
/// and every value a caller finds out of range (<see cref="Fail"/>), is an <see cref="InvalidDataException"/>
/// naming the byte offset in the file, the section and what was expected there.
/// </summary>
internal sealed class CheckpointReader(string section, byte[] body, long fileOffset)
{
    private int _at;

    public string Section { get; } = section;

    public bool AtEnd => _at == body.Length;

    /// <summary>The file offset of the next byte.</summary>
    public long Offset => fileOffset + _at;

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count < 0 || body.Length - _at < count)
            throw Fail($"{what} ({count} bytes), but the section ends after {body.Length - _at}");
        ReadOnlySpan<byte> span = body.AsSpan(_at, count);
        _at += count;
        return span;
    }

    public byte U8(string what) => Take(1, what)[0];

    public bool Bool(string what)
    {
        long at = Offset;
        byte b = U8(what);
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw new InvalidDataException($"checkpoint offset {at} (section {Section}): expected {what} as 0 or 1, found {b}."),
        };
    }

    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public int I32(string what) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, what));
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
    public ReadOnlySpan<byte> Bytes(int count, string what) => Take(count, what);

    public string String(string what)
    {
        int length = U16(what + " length");
        return Encoding.UTF8.GetString(Take(length, what));
    }

    /// <summary>A count of items that each take at least <paramref name="minBytes"/>, checked against what is left.</summary>
    public int Count(string what, int minBytes, int max = int.MaxValue)
    {
        long at = Offset;
        uint n = U32(what);
        if (n > (uint)max || (minBytes > 0 && (ulong)n * (ulong)minBytes > (ulong)(body.Length - _at)))
            throw new InvalidDataException($"checkpoint offset {at} (section {Section}): expected {what} of at most {Math.Min(max, (body.Length - _at) / Math.Max(1, minBytes))}, found {n}.");
        return (int)n;
    }

    /// <summary>An error at the bytes just read (<paramref name="back"/> bytes before the current offset).</summary>
    public InvalidDataException Fail(string expected, int back = 0) =>
        new($"checkpoint offset {Offset - back} (section {Section}): expected {expected}.");

    public void ExpectEnd()
    {
        if (!AtEnd)
            throw Fail($"the end of the section, but {body.Length - _at} more bytes follow");
    }
}
