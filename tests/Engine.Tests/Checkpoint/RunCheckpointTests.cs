using System.Text.Json;
using Engine.Cli;
using Engine.Cli.Scenarios;
using Engine.Tests.Cli;

namespace Engine.Tests.Checkpoint;

[Collection(nameof(CliRunCollection))]
public sealed class RunCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("engine-checkpoint-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static string Counts(DmaScenarioReport r) =>
        string.Join(",", r.Rounds, r.RoundsPlanned, r.Translations, r.Walks, r.Faults, r.PageRequestsServed, r.PageRequestsFailed, r.Invalidations, r.KvmOperations,
            r.Trace!.Records, r.Trace.Translations, r.Trace.Faults, r.Trace.IotlbHits, r.Trace.IotlbMisses, $"{r.Trace.HpaSum:x}", $"{r.Trace.Checksum:x}")
        + " " + string.Join(";", r.Devices);

    [Theory]
    [InlineData(0)]
    [InlineData(137)]
    [InlineData(300)]
    public void ARunInterruptedBySaveAndLoadGivesTheCountsAndChecksumOfTheUninterruptedRun(long at)
    {
        string file = PathOf($"at{at}.ckpt");
        DmaScenarioReport uninterrupted = DmaScenario.Run(new DmaScenarioOptions(0.3, 1, 21, PathOf("run.trace")), RunDeadline.None);
        DmaScenarioReport saving = DmaScenario.Run(new DmaScenarioOptions(0.3, 1, 21, CheckpointAt: at, CheckpointFile: file), RunDeadline.None);
        DmaScenarioReport restored = DmaScenario.Run(new DmaScenarioOptions(0.3, 1, 99, Restore: file), RunDeadline.None);
        Assert.Equal(300, uninterrupted.Rounds);
        Assert.True(uninterrupted.Faults > 0 && uninterrupted.Walks > 0, "the run faults and misses: page requests and IOTLB contents carry over");
        string expected = Counts(uninterrupted).Replace(uninterrupted.Trace!.File, "", StringComparison.Ordinal);
        Assert.Equal(expected, Counts(saving).Replace(saving.Trace!.File, "", StringComparison.Ordinal));
        Assert.Equal(expected, Counts(restored).Replace(restored.Trace!.File, "", StringComparison.Ordinal));
        Assert.Contains(saving.Notes, n => n.Contains($"before round {at}", StringComparison.Ordinal));
        Assert.Contains(restored.Notes, n => n.Contains($"at round {at}", StringComparison.Ordinal));
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void EngineRunCheckpointAtThenRestorePrintTheSameChecksum()
    {
        string file = PathOf("run.ckpt");
        var (code, output, error) = Run("run", "--seconds", "0.2", "--seed", "3", "--checkpoint-at", "50", file, "--json");
        Assert.True(code == 0, error);
        JsonElement saving = JsonDocument.Parse(output).RootElement;
        // --seconds is the whole command's budget, setup included: on a loaded machine the deadline can
        // pass before round 50, and then nothing is saved — the run says so, and there is nothing to restore.
        if (!File.Exists(file))
        {
            Assert.True(saving.GetProperty("rounds").GetInt64() < 50, $"no checkpoint after {saving.GetProperty("rounds")} rounds");
            Assert.Contains(saving.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("no checkpoint was saved"));
            return;
        }
        (code, output, error) = Run("run", "--restore", file, "--seconds", "60", "--json");
        Assert.True(code == 0, error);
        JsonElement restored = JsonDocument.Parse(output).RootElement;
        // The saving run may be cut short by its deadline on a slow machine; the restored one runs every planned round.
        Assert.Equal(200, restored.GetProperty("rounds").GetInt64());
        if (saving.GetProperty("rounds").GetInt64() == 200)
        {
            foreach (string key in new[] { "translations", "faults", "iotlbHits", "hpaSum", "checksum" })
                Assert.Equal(saving.GetProperty("trace").GetProperty(key).GetRawText(), restored.GetProperty("trace").GetProperty(key).GetRawText());
        }
    }

    [Theory]
    [InlineData("--threads", "2")]
    [InlineData("--scenario", "walk")]
    [InlineData("--soak", null)]
    public void CheckpointAtRefusesWhatIsNotOneDeterministicRunWithExit2(string option, string? value)
    {
        string[] args = value is null ? ["run", "--checkpoint-at", "5", PathOf("x.ckpt"), option] : ["run", "--checkpoint-at", "5", PathOf("x.ckpt"), option, value];
        var (code, _, error) = Run(args);
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("--checkpoint-at", error);
        Assert.False(File.Exists(PathOf("x.ckpt")));
    }

    [Fact]
    public void RestoreOfAMissingOrCorruptCheckpointExits2NamingTheOffset()
    {
        var (code, _, error) = Run("run", "--restore", PathOf("missing.ckpt"));
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("missing.ckpt", error);

        string file = PathOf("run.ckpt");
        (code, _, error) = Run("run", "--seconds", "0.01", "--checkpoint-at", "0", file, "--json");
        Assert.True(code == 0, error);
        byte[] bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(file, bytes);
        (code, _, error) = Run("run", "--restore", file);
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("offset", error);
        Assert.Contains("CRC-32C", error);

        File.WriteAllBytes(file, bytes[..100]);
        (code, _, error) = Run("run", "--restore", file, "--seed", "4");
        Assert.Equal(Program.ExitBadArguments, code);
        Assert.Contains("--seed", error);
    }
}
