using Engine.Cli.Scenarios;
using Engine.Tests.Cli;
using Engine.Trace;

namespace Engine.Tests.Trace;

public class ReplayTests
{
    [Fact]
    public void ReplayingTwiceGivesTheSameCountsAndChecksum()
    {
        byte[] trace = TraceSamples.Mixed(5_000);
        ReplayReport a = TraceSamples.Replay(trace), b = TraceSamples.Replay(trace);
        Assert.Equal((a.Translations, a.Faults, a.IotlbHits, a.HpaSum, a.Checksum), (b.Translations, b.Faults, b.IotlbHits, b.HpaSum, b.Checksum));
        Assert.Equal(5_000, a.Translations);
        Assert.True(a.Faults > 0 && a.Faults < a.Translations, $"{a.Faults} faults: the sample translates beyond its mapping now and then");
        Assert.True(a.IotlbHits > a.Translations / 2, $"{a.IotlbHits} hits");
    }

    // The checksum is of the answers, not of who cached them: another IOTLB geometry or more threads
    // give other hit counts but the same answers on a trace whose answers do not depend on order.
    [Fact]
    public void AnotherIotlbGeometryOrMoreThreadsChangeHitsButNotTheAnswers()
    {
        byte[] trace = TraceSamples.Mixed(5_000);
        ReplayReport one = TraceSamples.Replay(trace);
        ReplayReport tiny = TraceSamples.Replay(trace, iotlbSets: 1);
        ReplayReport threads = TraceSamples.Replay(trace, threads: 3);
        Assert.Equal((one.Translations, one.Faults, one.HpaSum, one.Checksum), (tiny.Translations, tiny.Faults, tiny.HpaSum, tiny.Checksum));
        Assert.Equal((one.Translations, one.Faults, one.HpaSum, one.Checksum), (threads.Translations, threads.Faults, threads.HpaSum, threads.Checksum));
        Assert.Equal(1, tiny.IotlbSets);
        Assert.True(tiny.IotlbHits < one.IotlbHits, $"3 entries hit less often ({tiny.IotlbHits}) than 3072 ({one.IotlbHits})");
    }
}

[Collection(nameof(CliRunCollection))]
public class RecordReplayTests
{
    private static string Counts(DmaScenarioReport r) =>
        string.Join(",", r.Rounds, r.Translations, r.Walks, r.Faults, r.PageRequestsServed, r.PageRequestsFailed, r.Invalidations, r.KvmOperations)
        + string.Join(";", r.Devices);

    [Fact]
    public void ARecordedRunReplaysWithItsCountsHpaSumAndChecksumAndCountsAsTheUnrecordedRun()
    {
        string file = Path.Combine(Path.GetTempPath(), $"engine-record-{Guid.NewGuid():N}.trace");
        try
        {
            DmaScenarioReport recorded = DmaScenario.Run(new DmaScenarioOptions(0.3, 1, 21, file), RunDeadline.None);
            DmaScenarioReport plain = DmaScenario.Run(new DmaScenarioOptions(0.3, 1, 21), RunDeadline.None);
            Assert.Equal(Counts(plain), Counts(recorded));
            TraceSummary t = recorded.Trace!;
            Assert.Equal(recorded.Translations, t.Translations);
            Assert.Equal(recorded.Faults, t.Faults);
            Assert.True(t.Faults > 0, "the KVM operations make the devices fault: the trace has page requests to reproduce");
            ReplayReport replay;
            using (FileStream stream = File.OpenRead(file))
                replay = TraceReplayer.Replay(stream);
            Assert.Equal((t.Records, t.Translations, t.Faults, t.IotlbHits, t.IotlbMisses, t.HpaSum, t.Checksum),
                (replay.Records, replay.Translations, replay.Faults, replay.IotlbHits, replay.IotlbMisses, replay.HpaSum, replay.Checksum));
            Assert.Equal(recorded.Walks, replay.Walks);
            Assert.Equal(recorded.KvmOperations, replay.ControlOperations);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void RecordingRefusesMoreThanOneThread()
    {
        var e = Assert.Throws<ArgumentException>(() => DmaScenario.Run(new DmaScenarioOptions(0.1, 2, 1, "unused.trace"), RunDeadline.None));
        Assert.Contains("one thread", e.Message);
        Assert.False(File.Exists("unused.trace"));
    }
}

public class BatchedReplayTests
{
    // TranslateBatch gives the answers of one translation after the other: the sums stay, on one
    // thread and on several; only hits may differ where a page repeats inside a batch.
    [Fact]
    public void BatchedReplayGivesTheSameAnswersOnOneThreadAndOnSeveral()
    {
        byte[] trace = TraceSamples.Mixed(5_000);
        ReplayReport one = TraceSamples.Replay(trace);
        foreach (int threads in new[] { 1, 3 })
        {
            ReplayReport batched = TraceReplayer.Replay(new MemoryStream(trace), new ReplayOptions(threads, Batched: true));
            Assert.True(batched.Batched);
            Assert.NotNull(batched.BatchWalker);
            Assert.Equal((one.Translations, one.Faults, one.HpaSum, one.Checksum), (batched.Translations, batched.Faults, batched.HpaSum, batched.Checksum));
        }
    }
}
