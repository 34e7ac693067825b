using System.Text.Json;
using Engine.Cli;
using Engine.Tests.Cli;

namespace Engine.Tests.Trace;

[Collection(nameof(CliRunCollection))]
public sealed class TraceCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("engine-trace-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public void RunRecordThenReplayPrintTheSameCountsAndChecksumAsJson()
    {
        string trace = PathOf("run.trace");
        var (code, output, error) = Run("run", "--record", trace, "--seconds", "0.5", "--seed", "4", "--json");   // cut short on a slow machine: still what was recorded
        Assert.True(code == 0, error);
        JsonElement recorded = JsonDocument.Parse(output).RootElement.GetProperty("trace");
        (code, output, error) = Run("replay", trace, "--json");
        Assert.True(code == 0, error);
        JsonElement replayed = JsonDocument.Parse(output).RootElement;
        foreach (string key in new[] { "translations", "faults", "iotlbHits", "iotlbMisses", "hpaSum", "checksum" })
            Assert.True(recorded.GetProperty(key).GetRawText() == replayed.GetProperty(key).GetRawText(), $"{key}: recorded {recorded.GetProperty(key)}, replayed {replayed.GetProperty(key)}");
        Assert.True(replayed.GetProperty("translations").GetInt64() > 0);
    }

    [Theory]
    [InlineData("--threads", "2")]
    [InlineData("--scenario", "walk")]
    public void RunRecordRefusesWhatItCannotRecordWithExit2(string option, string value)
    {
        var (code, _, error) = Run("run", "--record", PathOf("x.trace"), option, value);
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("--record", error);
        Assert.False(File.Exists(PathOf("x.trace")));
    }

    [Fact]
    public void ReplayOfAMissingCorruptOrForeignFileExits2NamingTheProblem()
    {
        var (code, _, error) = Run("replay", PathOf("missing.trace"));
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("cannot read it", error);

        File.WriteAllText(PathOf("text.trace"), "not a trace at all");
        (code, _, error) = Run("replay", PathOf("text.trace"));
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("offset 0: expected the magic", error);

        byte[] good = TraceSamples.Mixed(3000);
        File.WriteAllBytes(PathOf("cut.trace"), good[..(good.Length / 2)]);
        (code, _, error) = Run("replay", PathOf("cut.trace"), "--json");
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Matches(@"offset \d+: .*truncated", error);
    }

    [Fact]
    public void ReplayWithABatchWalkerPrintsTheSameSums()
    {
        File.WriteAllBytes(PathOf("b.trace"), TraceSamples.Mixed(2000));
        var (code, output, error) = Run("replay", PathOf("b.trace"), "--json");
        Assert.True(code == 0, error);
        JsonElement plain = JsonDocument.Parse(output).RootElement;
        (code, output, error) = Run("replay", PathOf("b.trace"), "--json", "--batch-walker", "interleaved");
        Assert.True(code == 0, error);
        JsonElement batched = JsonDocument.Parse(output).RootElement;
        Assert.Equal("interleaved", batched.GetProperty("batchWalker").GetString());
        foreach (string key in new[] { "translations", "faults", "hpaSum", "checksum" })
            Assert.Equal(plain.GetProperty(key).GetRawText(), batched.GetProperty(key).GetRawText());
        (code, _, error) = Run("replay", PathOf("b.trace"), "--batch-walker", "fastest-please");
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("is not a batch walker", error);
    }

    [Theory]
    [InlineData("--iotlb-ways", "4", "3 is the only")]
    [InlineData("--iotlb-sets", "3", "power of two")]
    [InlineData("--threads", "0", "--threads must be")]
    public void ReplayRefusesBadFlagsWithExit2(string option, string value, string message)
    {
        File.WriteAllBytes(PathOf("ok.trace"), TraceSamples.Mixed(10));
        var (code, _, error) = Run("replay", PathOf("ok.trace"), option, value);
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains(message, error);
    }

    [Fact]
    public void ImportQemuPrintsTheContractKeysAndReplayShowsBothHitRates()
    {
        File.WriteAllText(PathOf("qemu.log"), """
            77@1.000001:vtd_iotlb_page_update IOTLB page update sid 0x8 iova 0x1000 slpte 0x5000003 domain 0x1
            77@1.000002:vtd_iotlb_page_hit IOTLB page hit sid 0x8 iova 0x1008 slpte 0x5000003 domain 0x1
            77@1.000003:vtd_inv_desc_iotlb_global iotlb invalidate global
            77@1.000004:vtd_iotlb_page_hit IOTLB page hit sid 0x8 iova 0x1 domain 0x1
            """);
        var (code, output, error) = Run("trace", "import-qemu", PathOf("qemu.log"), "-o", PathOf("qemu.trace"), "--json");
        Assert.True(code == 0, error);
        Assert.Contains("qemu.log:4: malformed line skipped", error);
        JsonElement r = JsonDocument.Parse(output).RootElement;
        Assert.Equal(2, r.GetProperty("translations").GetInt64());
        Assert.Equal(1, r.GetProperty("qemuHits").GetInt64());
        Assert.Equal(1, r.GetProperty("qemuUpdates").GetInt64());
        Assert.Equal(1, r.GetProperty("invalidations").GetProperty("global").GetInt64());
        Assert.Equal(0, r.GetProperty("invalidations").GetProperty("domain").GetInt64());
        Assert.Equal(0, r.GetProperty("invalidations").GetProperty("page").GetInt64());
        Assert.Equal(0, r.GetProperty("skippedLines").GetInt64());
        Assert.Equal(1, r.GetProperty("malformedLines").GetInt64());

        (code, output, error) = Run("replay", PathOf("qemu.trace"), "--json");
        Assert.True(code == 0, error);
        JsonElement replay = JsonDocument.Parse(output).RootElement;
        Assert.Equal(0, replay.GetProperty("faults").GetInt64());
        Assert.Equal(0x5000000UL + 0x5000008UL, replay.GetProperty("hpaSum").GetUInt64());
        Assert.Equal(0.5, replay.GetProperty("qemuHitRate").GetDouble());
        Assert.Equal(0.5, replay.GetProperty("iotlbHitRate").GetDouble());

        (code, output, _) = Run("replay", PathOf("qemu.trace"));
        Assert.Equal(0, code);
        Assert.Contains("IOTLB hit rate (QEMU's log)", output);
    }

    [Fact]
    public void ImportQemuStrictOrAMissingLogExits2AndLeavesNoTrace()
    {
        File.WriteAllText(PathOf("bad.log"), "vtd_inv_desc_iotlb_domain iotlb invalidate whole domain 0xzz\n");
        var (code, _, error) = Run("trace", "import-qemu", PathOf("bad.log"), "-o", PathOf("bad.trace"), "--strict");
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("line 1:", error);
        Assert.Empty(Directory.GetFiles(_dir, "bad.trace*"));

        (code, _, error) = Run("trace", "import-qemu", PathOf("none.log"), "-o", PathOf("none.trace"));
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("no such file", error);
    }
}
