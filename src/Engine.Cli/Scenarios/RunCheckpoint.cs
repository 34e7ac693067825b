using System.Buffers.Binary;
using Engine.Control;
using Engine.Trace;

namespace Engine.Cli.Scenarios;

/// <summary>
/// Where the one-thread DMA scenario stands between two rounds: what <c>engine run --checkpoint-at</c>
/// saves beside the platform and <c>engine run --restore</c> continues from.
/// </summary>
internal sealed class RunState
{
    public ulong Seed;
    public double Seconds;
    public long TotalRounds;
    public long NextRound;
    public ulong Rng;
    public long KvmOperations;
    public long KvmStarted;
    public long KvmFinished;
    public long Records;
    public ReplayTally Tally;
    public long[] Nic = new long[7], Gpu = new long[7], Nvme = new long[7];
    public long TrafficRounds;

    public static long[] Of(DmaTraffic.Counters c) => [c.Operations, c.Bytes, c.Translations, c.PageRequests, c.Resent, c.ResentDuringKvmChange, c.Faults];

    public static void Into(long[] v, DmaTraffic.Counters c)
    {
        (c.Operations, c.Bytes, c.Translations, c.PageRequests, c.Resent, c.ResentDuringKvmChange, c.Faults) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    }
}

/// <summary>
/// The file of <c>engine run --checkpoint-at N FILE</c>: a run block (docs/checkpoint-format.md: "ENGRUN\0\0",
/// u16 version 1, u16 0, u32 length, the run's state, CRC-32C of it) followed by the platform's checkpoint
/// (<see cref="Platform.Save"/>) to the end of the file.
/// </summary>
internal static class RunCheckpoint
{
    private static ReadOnlySpan<byte> Magic => "ENGRUN\0\0"u8;
    private const ushort Version = 1;
    private const int BodyBytes = 8 * 13 + 3 * 7 * 8 + 8 + 8;

    public static void Save(string file, RunState s, Platform platform)
    {
        byte[] body = new byte[BodyBytes];
        int at = 0;
        void U64(ulong v)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(at), v);
            at += 8;
        }
        U64(s.Seed);
        U64(BitConverter.DoubleToUInt64Bits(s.Seconds));
        U64((ulong)s.TotalRounds);
        U64((ulong)s.NextRound);
        U64(s.Rng);
        U64((ulong)s.KvmOperations);
        U64((ulong)s.KvmStarted);
        U64((ulong)s.KvmFinished);
        U64((ulong)s.Records);
        U64((ulong)s.Tally.Translations);
        U64((ulong)s.Tally.Faults);
        U64((ulong)s.Tally.IotlbHits);
        U64(s.Tally.HpaSum);
        U64(s.Tally.Checksum);
        foreach (long[] c in new[] { s.Nic, s.Gpu, s.Nvme })
        {
            foreach (long v in c)
                U64((ulong)v);
        }
        U64((ulong)s.TrafficRounds);
        // A temporary name, renamed over FILE at the end: a failed save never leaves half a checkpoint.
        string temporary = file + ".partial";
        try
        {
            WriteTo(temporary, body, platform);
        }
        catch
        {
            try
            {
                File.Delete(temporary);
            }
            catch (IOException)
            {
                // Its directory does not exist (the cause of the failure): there is nothing to delete.
            }
            throw;
        }
        File.Move(temporary, file, overwrite: true);
    }

    private static void WriteTo(string temporary, byte[] body, Platform platform)
    {
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            Span<byte> head = stackalloc byte[16];
            Magic.CopyTo(head);
            BinaryPrimitives.WriteUInt16LittleEndian(head[8..], Version);
            BinaryPrimitives.WriteUInt16LittleEndian(head[10..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(head[12..], BodyBytes);
            stream.Write(head);
            stream.Write(body);
            Span<byte> crc = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(crc, TraceFormat.Crc32C(body));
            stream.Write(crc);
            platform.Save(stream);
        }
    }

    /// <summary>Reads the run block and loads the platform; <see cref="InvalidDataException"/> names the offset and what was expected.</summary>
    public static (RunState State, Platform Platform) Load(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> head = stackalloc byte[16];
        if (stream.ReadAtLeast(head, 16, throwOnEndOfStream: false) < 16)
            throw new InvalidDataException("offset 0: expected the 16-byte run header (\"ENGRUN\\0\\0\", version, reserved, length), but the file ends first.");
        if (!head[..8].SequenceEqual(Magic))
            throw new InvalidDataException("offset 0: expected the magic \"ENGRUN\\0\\0\"; this is not a checkpoint of engine run.");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(head[8..]);
        if (version != Version)
            throw new InvalidDataException($"offset 8: expected run-block version {Version} (the only one this build reads), found {version}.");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(head[12..]);
        if (BinaryPrimitives.ReadUInt16LittleEndian(head[10..]) != 0 || length != BodyBytes)
            throw new InvalidDataException($"offset 10: expected a reserved 0 and a run block of {BodyBytes} bytes, found length {length}.");
        byte[] body = new byte[BodyBytes + 4];
        if (stream.ReadAtLeast(body, body.Length, throwOnEndOfStream: false) < body.Length)
            throw new InvalidDataException($"offset 16: expected the {BodyBytes}-byte run block and its CRC, but the file ends first.");
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(BodyBytes)), expected = TraceFormat.Crc32C(body.AsSpan(0, BodyBytes));
        if (crc != expected)
            throw new InvalidDataException($"offset {16 + BodyBytes}: expected the run block's CRC-32C 0x{expected:x8}, found 0x{crc:x8}: the run block is corrupt.");
        int at = 0;
        ulong U64()
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(body.AsSpan(at));
            at += 8;
            return v;
        }
        var s = new RunState
        {
            Seed = U64(),
            Seconds = BitConverter.UInt64BitsToDouble(U64()),
            TotalRounds = (long)U64(),
            NextRound = (long)U64(),
            Rng = U64(),
            KvmOperations = (long)U64(),
            KvmStarted = (long)U64(),
            KvmFinished = (long)U64(),
            Records = (long)U64(),
        };
        s.Tally.Translations = (long)U64();
        s.Tally.Faults = (long)U64();
        s.Tally.IotlbHits = (long)U64();
        s.Tally.HpaSum = U64();
        s.Tally.Checksum = U64();
        foreach (long[] c in new[] { s.Nic, s.Gpu, s.Nvme })
        {
            for (int i = 0; i < c.Length; i++)
                c[i] = (long)U64();
        }
        s.TrafficRounds = (long)U64();
        if (s.NextRound < 0 || s.NextRound > s.TotalRounds || s.TrafficRounds != s.NextRound)
            throw new InvalidDataException($"offset 16: expected the next round within 0..{s.TotalRounds} and equal to the rounds run, found {s.NextRound} and {s.TrafficRounds}.");
        Platform platform;
        try
        {
            platform = Platform.Load(new OffsetStream(stream, 16 + BodyBytes + 4));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{e.Message} (the platform's checkpoint starts at file offset {16 + BodyBytes + 4}; offsets above are within it)", e);
        }
        return (s, platform);
    }

    // Platform.Load counts offsets from its own start; this only passes reads through.
    private sealed class OffsetStream(Stream inner, long start) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length - start;
        public override long Position { get => inner.Position - start; set => inner.Position = value + start; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
