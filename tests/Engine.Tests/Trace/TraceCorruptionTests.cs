using Engine.Trace;

namespace Engine.Tests.Trace;

/// <summary>
/// Truncations and byte flips: every one is a <see cref="TraceFormatException"/> naming an offset
/// inside the file, never a crash, and no record of a damaged block is handed out.
/// </summary>
public class TraceCorruptionTests
{
    private static readonly byte[] Trace = TraceSamples.Mixed(6_000);

    private static readonly List<(long Start, int RecordsBefore)> BlockList = FindBlocks();

    private static List<(long Start, int RecordsBefore)> Blocks() => BlockList;

    // File offsets where each block starts, and how many records come before it.
    private static List<(long Start, int RecordsBefore)> FindBlocks()
    {
        var blocks = new List<(long, int)>();
        using var reader = new TraceReader(new MemoryStream(Trace));
        long at = reader.BytesRead;
        int records = 0;
        while (at < Trace.Length)
        {
            blocks.Add((at, records));
            uint length = BitConverter.ToUInt32(Trace, (int)at);
            records += BitConverter.ToInt32(Trace, (int)at + 4);
            at += TraceFormat.BlockHeaderBytes + length;
        }
        return blocks;
    }

    // Records a reader may hand out when the file is damaged at byte `offset`: those of the blocks
    // that end before it.
    private static int RecordsBefore(long offset) => Blocks().Where(b => b.Start <= offset).Select(b => b.RecordsBefore).DefaultIfEmpty(0).Max();

    [Fact]
    public void TruncationAtEveryRecordBoundaryIsACleanErrorNamingTheOffset()
    {
        List<(long Offset, Engine.Trace.TraceRecord Record)> records = TraceSamples.ReadAll(Trace);
        var cuts = records.Select(r => r.Offset).Concat(Blocks().Select(b => b.Start)).Append(Trace.Length - 1).Distinct().ToList();
        Assert.True(cuts.Count > 6_000);
        foreach (long cut in cuts)
        {
            byte[] truncated = Trace[..(int)cut];
            var seen = new List<(long, Engine.Trace.TraceRecord)>();
            var e = Assert.Throws<TraceFormatException>(() => TraceSamples.ReadAll(truncated, seen));
            Assert.InRange(e.Offset, 0, cut);
            Assert.True(e.Message.Contains("truncated", StringComparison.Ordinal) || e.Message.Contains("ends", StringComparison.Ordinal), $"cut at {cut}: {e.Message}");
            Assert.True(seen.Count <= RecordsBefore(cut), $"cut at {cut}: {seen.Count} records handed out from damaged blocks");
        }
    }

    [Fact]
    public void EverySingleByteFlipIsCaughtBeforeAnyRecordOfItsBlock()
    {
        var rng = new Random(13);
        for (int i = 0; i < 400; i++)
        {
            byte[] flipped = (byte[])Trace.Clone();
            int at = i < 64 ? i : rng.Next(flipped.Length);   // the preamble and header, then anywhere
            flipped[at] ^= (byte)(1 << rng.Next(8));
            var seen = new List<(long, Engine.Trace.TraceRecord)>();
            var e = Assert.Throws<TraceFormatException>(() => TraceSamples.ReadAll(flipped, seen));
            Assert.InRange(e.Offset, 0, flipped.Length);
            Assert.True(seen.Count <= RecordsBefore(at), $"flip at {at}: {seen.Count} records handed out, {RecordsBefore(at)} precede its block ({e.Message})");
        }
    }

    [Fact]
    public void ReplayOfDamagedTracesStopsWithTheReadersErrorAndDisposesItsPlatform()
    {
        var rng = new Random(29);
        for (int i = 0; i < 12; i++)
        {
            byte[] bad = i % 2 == 0 ? Trace[..rng.Next(Trace.Length)] : (byte[])Trace.Clone();
            if (i % 2 == 1)
                bad[rng.Next(bad.Length)] ^= 0x40;
            var e = Assert.Throws<TraceFormatException>(() => TraceSamples.Replay(bad));
            Assert.StartsWith("offset ", e.Message);
        }
    }
}
