using System.Text.Json;
using Engine.Cli;
using Engine.Cli.Scenarios;

namespace Engine.Tests.Cli;

[Collection(nameof(CliRunCollection))]
public class RunCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    // Only what the scenario guarantees, however loaded the machine: every DMA thread runs one round
    // and the KVM thread one operation (seed 1's first is a zap of mapped NIC pages, so KVM flushes);
    // a page request for a GFN inside a memslot is always served. Hit rate, fault and resend counts
    // depend on how the threads interleave, so only their consistency is checked.
    [Fact]
    public void TheDmaScenarioReportsTranslationsFaultsPageRequestsAndDevices()
    {
        var (code, output, error) = Run("run", "--seconds", "0.5", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        JsonElement r = doc.RootElement;
        Assert.True(r.GetProperty("translations").GetInt64() >= DmaTraffic.PacketsPerRound + DmaTraffic.ReadsPerRound + 1, "one round at least");
        Assert.True(r.GetProperty("translationsPerSecond").GetDouble() > 0);
        Assert.InRange(r.GetProperty("iotlbHitRate").GetDouble(), 0.0, 1.0);
        Assert.True(r.GetProperty("kvmOperations").GetInt64() >= 1, "the KVM thread always does one operation");
        Assert.True(r.GetProperty("invalidations").GetInt64() > 0, "KVM's flushes reach the domain");
        Assert.Equal(0, r.GetProperty("pageRequestsFailed").GetInt64());
        Assert.True(r.GetProperty("setupSeconds").GetDouble() >= 0);
        Assert.Equal(JsonValueKind.Array, r.GetProperty("notes").ValueKind);
        Assert.Equal(["nic", "gpu", "nvme"], r.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("name").GetString()));
        foreach (JsonElement d in r.GetProperty("devices").EnumerateArray())
        {
            long operations = d.GetProperty("dmaOperations").GetInt64();
            Assert.True(operations > 0);
            Assert.InRange(d.GetProperty("faults").GetInt64(), 0, operations);
            Assert.InRange(d.GetProperty("resentDuringKvmChange").GetInt64(), 0, d.GetProperty("pageRequestsResent").GetInt64());
            Assert.True(d.GetProperty("translations").GetInt64() >= operations, "a DMA translates at least once");
        }
    }

    private static string Counts(DmaScenarioReport r) =>
        string.Join(",", r.Rounds, r.RoundsPlanned, r.Translations, r.Walks, r.Faults, r.PageRequestsServed, r.PageRequestsFailed, r.Invalidations, r.KvmOperations)
        + string.Join(";", r.Devices);

    // With no deadline the run is exactly seconds × 1000 rounds, so no machine can make it differ.
    [Fact]
    public void OneThreadAndTheSameSeedGiveTheSameCounts()
    {
        static DmaScenarioReport Once(ulong seed) => DmaScenario.Run(new DmaScenarioOptions(0.4, 1, seed), RunDeadline.None);
        DmaScenarioReport a = Once(9);
        Assert.Equal(400, a.Rounds);
        Assert.Equal(Counts(a), Counts(Once(9)));
        Assert.NotEqual(Counts(a), Counts(Once(10)));
    }

    // One thread does DMA and KVM in turn, so nothing can change a page between its page request and
    // the retry: every fault is recovered by the first page request.
    [Fact]
    public void OneThreadNeverNeedsASecondPageRequest()
    {
        DmaScenarioReport r = DmaScenario.Run(new DmaScenarioOptions(1, 1, 3), RunDeadline.None);
        Assert.True(r.Faults > 0, "the KVM operations make the devices fault");
        Assert.Equal(r.Faults, r.PageRequestsServed);
        Assert.All(r.Devices, d => Assert.Equal((0L, 0L), (d.PageRequestsResent, d.Faults)));
        Assert.Empty(r.Notes);
    }

    // A deadline already past stands for a setup that used the whole budget: every DMA thread stops
    // after its one round and KVM after its one operation, however many threads there are — the
    // mechanism that makes --threads 128 --seconds 1 end in about a second, without timing anything.
    [Theory]
    [InlineData(2)]
    [InlineData(64)]
    public void APassedDeadlineLeavesOneRoundPerThreadAndOneKvmOperation(int threads)
    {
        DmaScenarioReport r = DmaScenario.Run(new DmaScenarioOptions(1e-9, threads, 1), RunDeadline.StartingNow(1e-9));
        Assert.Equal(threads - 1, r.Rounds);
        Assert.Equal(1, r.KvmOperations);
        Assert.Contains(r.Notes, n => n.StartsWith("setup took", StringComparison.Ordinal));
    }

    [Fact]
    public void OneThreadStoppedByTheDeadlineSaysHowManyRoundsRan()
    {
        DmaScenarioReport r = DmaScenario.Run(new DmaScenarioOptions(5, 1, 1), RunDeadline.StartingNow(1e-9));
        Assert.Equal(1, r.Rounds);
        Assert.Equal(5000, r.RoundsPlanned);
        Assert.Contains(r.Notes, n => n.Contains("after 1 of 5,000 rounds", StringComparison.Ordinal));
    }

    [Fact]
    public void WalkersStopAtAPassedDeadlineAfterOneChunkEach()
    {
        WalkScenarioReport r = WalkScenario.Run(new WalkScenarioOptions(1e-9, 8, 1, 1, 1 << 16), RunDeadline.StartingNow(1e-9));
        Assert.Equal(8 * 4096, r.Walks);
        Assert.Contains(r.Notes, n => n.StartsWith("setup took", StringComparison.Ordinal));
    }

    [Fact]
    public void MoreThreadsThanCoresAreReportedAsSuch()
    {
        int threads = Environment.ProcessorCount + 1;
        var (code, output, error) = Run("run", "--seconds", "0.1", "--threads", threads.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, error);
        Assert.Contains($"{threads} threads on {Environment.ProcessorCount} cores", error);
        using var doc = JsonDocument.Parse(output);
        Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("cores", StringComparison.Ordinal));
    }

    [Fact]
    public void TheWalkScenarioStillRunsWithAChecksum()
    {
        var (code, output, error) = Run("run", "--scenario", "walk", "--seconds", "0.2", "--threads", "1", "--guest-gib", "1", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("walks").GetInt64() > 0);
        Assert.Equal(0, doc.RootElement.GetProperty("inconsistentPasses").GetInt64());
        Assert.Equal(256, doc.RootElement.GetProperty("leaves2M").GetInt64());
    }

    [Fact]
    public void TheTableReportNamesTheFigures()
    {
        var (code, output, _) = Run("run", "--seconds", "0.2", "--threads", "2");
        Assert.Equal(0, code);
        Assert.Contains("translations/s", output);
        Assert.Contains("IOTLB hit rate", output);
        Assert.Contains("re-sent", output);
        Assert.Contains("nvme", output);
    }

    [Theory]
    [InlineData("--threads", "0", "--threads")]
    [InlineData("--threads", "many", "many")]
    [InlineData("--seconds", "-1", "--seconds")]
    [InlineData("--seconds", "NaN", "--seconds")]
    [InlineData("--scenario", "fast", "fast")]
    [InlineData("--bogus", "1", "--bogus")]
    [InlineData("--soak-interval", "1", "--soak-interval")]
    public void BadArgumentsExitWith2AndNameTheArgument(string option, string value, string named)
    {
        var (code, _, error) = Run("run", option, value);
        Assert.Equal(2, code);
        Assert.Contains(named, error);
    }

    // The DMA scenario's guest is fixed; a --guest-gib it would ignore is refused, not silently dropped.
    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("100000")]
    [InlineData("4")]
    public void GuestGibIsRefusedByTheDmaScenario(string value)
    {
        var (code, output, error) = Run("run", "--seconds", "0.1", "--guest-gib", value);
        Assert.Equal(2, code);
        Assert.Contains("--guest-gib", error);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("100000")]
    [InlineData("lots")]
    public void OutOfRangeGuestGibExitsWith2InTheWalkScenario(string value)
    {
        var (code, _, error) = Run("run", "--scenario", "walk", "--seconds", "0.1", "--guest-gib", value);
        Assert.Equal(2, code);
        Assert.Contains("--guest-gib", error);
        Assert.Contains("1..48", error);
    }

    [Fact]
    public void TheSoakRunsOnlyTheDmaScenario()
    {
        var (code, _, error) = Run("run", "--soak", "--scenario", "walk", "--seconds", "0.1");
        Assert.Equal(2, code);
        Assert.Contains("--soak", error);
    }

    // System.CommandLine's own message reads "as expected type 'System.Double'".
    [Theory]
    [InlineData("run --seconds abc", "--seconds expects a number, got 'abc'.")]
    [InlineData("run --seconds 1e400", "--seconds must be more than 0 and at most 3600, got 1e400.")]
    [InlineData("run --threads 1.5", "--threads expects a whole number (1..256), got '1.5'.")]
    [InlineData("run --threads 99999999999", "--threads must be 1..256, got 99999999999.")]
    [InlineData("run --seed -1", "--seed expects a whole number from 0 to 18446744073709551615, got '-1'.")]
    [InlineData("run --soak --soak-interval x", "--soak-interval expects a number, got 'x'.")]
    [InlineData("kvm-check --cap 0 --ecap 0 --level x --max-huge-page-level 1", "--level expects a whole number (4 or 5), got 'x'.")]
    [InlineData("kvm-check --cap 0 --ecap 0 --level 4 --max-huge-page-level 99999999999", "--max-huge-page-level must be 1, 2 or 3, got 99999999999.")]
    [InlineData("bench --threads x", "--threads expects a whole number (1..256), got 'x'.")]
    public void ParseErrorsAreWordedForPeopleNotInDotNetTypes(string commandLine, string message)
    {
        var (code, output, error) = Run(commandLine.Split(' '));
        Assert.Equal(2, code);
        Assert.Contains($"engine: {message}", error);
        Assert.DoesNotContain("System.", error);
        Assert.Equal("", output);
    }

    [Fact]
    public void AnUnknownCommandExitsWith2()
    {
        var (code, _, error) = Run("launch");
        Assert.Equal(2, code);
        Assert.Contains("launch", error);
    }
}
