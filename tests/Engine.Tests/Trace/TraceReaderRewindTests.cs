using Engine.Trace;

namespace Engine.Tests.Trace;

/// <summary><see cref="TraceReader.Rewind"/>: a second pass over one reader reads what the first read.</summary>
public class TraceReaderRewindTests
{
    private static List<(long Offset, TraceRecord Record)> ReadRest(TraceReader reader)
    {
        var records = new List<(long, TraceRecord)>();
        while (reader.TryRead(out TraceRecord r))
            records.Add((reader.RecordOffset, r));
        return records;
    }

    [Fact]
    public void ARewoundReaderReadsEveryRecordAgainWithItsOffset()
    {
        byte[] trace = TraceSamples.Mixed(5000);
        var expected = TraceSamples.ReadAll(trace);
        using var reader = new TraceReader(new MemoryStream(trace));
        Assert.Equal(expected, ReadRest(reader));
        long bytes = reader.BytesRead;
        for (int pass = 0; pass < 2; pass++)
        {
            reader.Rewind();
            Assert.Equal(0, reader.RecordsRead);
            Assert.Equal(expected, ReadRest(reader));
            Assert.Equal(expected.Count, reader.RecordsRead);
            Assert.Equal(bytes, reader.BytesRead);
        }
    }

    [Fact]
    public void AReaderRewoundHalfwayStartsAtTheFirstRecord()
    {
        byte[] trace = TraceSamples.Mixed(3000);
        var expected = TraceSamples.ReadAll(trace);
        using var reader = new TraceReader(new MemoryStream(trace));
        for (int i = 0; i < 1234; i++)
            Assert.True(reader.TryRead(out _));
        reader.Rewind();
        Assert.Equal(expected, ReadRest(reader));
    }

    [Fact]
    public void ATraceThatStartsInsideItsStreamIsRewoundToItsOwnFirstRecord()
    {
        // The trace after 100 bytes of something else, the stream positioned at the trace.
        byte[] trace = TraceSamples.Mixed(1000);
        byte[] prefixed = [.. new byte[100], .. trace];
        var stream = new MemoryStream(prefixed) { Position = 100 };
        using var reader = new TraceReader(stream);
        var first = ReadRest(reader);
        reader.Rewind();
        Assert.Equal(first, ReadRest(reader));
        Assert.Equal(TraceSamples.ReadAll(trace), first);
    }

    [Fact]
    public void AReaderOverAStreamThatCannotSeekRefusesToRewind()
    {
        using var reader = new TraceReader(new ForwardOnlyStream(TraceSamples.Mixed(10)));
        var error = Assert.Throws<NotSupportedException>(reader.Rewind);
        Assert.Contains("seek", error.Message);
        Assert.Equal(TraceSamples.ReadAll(TraceSamples.Mixed(10)).Count, ReadRest(reader).Count);   // still readable
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ADisposedReaderRefusesToRewind(bool leaveOpen)
    {
        // With the stream left open it could still seek: the reader refuses all the same.
        var stream = new MemoryStream(TraceSamples.Mixed(10));
        var reader = new TraceReader(stream, leaveOpen);
        reader.Dispose();
        Assert.Throws<ObjectDisposedException>(reader.Rewind);
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
