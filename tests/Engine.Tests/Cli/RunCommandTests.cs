using System.Text.Json;
using Engine.Cli;

namespace Engine.Tests.Cli;

public class RunCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void RunPrintsAJsonReportWithWalksAndNoFaults()
    {
        var (code, output, error) = Run("run", "--seconds", "0.3", "--threads", "2", "--guest-gib", "1", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.True(root.GetProperty("walks").GetInt64() > 0);
        Assert.Equal(0, root.GetProperty("faults").GetInt64());
        Assert.Equal(0, root.GetProperty("inconsistentPasses").GetInt64());
        Assert.Equal(2, root.GetProperty("threads").GetInt32());
        Assert.Equal(256, root.GetProperty("leaves2M").GetInt64());
        Assert.Equal(131072, root.GetProperty("leaves4K").GetInt64());
    }

    [Fact]
    public void TheSameSeedGivesTheSameChecksumAndAnotherSeedAnother()
    {
        static ulong Checksum(string seed)
        {
            var (code, output, error) = Run("run", "--seconds", "0.1", "--threads", "1", "--guest-gib", "1", "--seed", seed, "--json");
            Assert.True(code == 0, error);
            using var doc = JsonDocument.Parse(output);
            return doc.RootElement.GetProperty("checksum").GetUInt64();
        }
        Assert.Equal(Checksum("7"), Checksum("7"));
        Assert.NotEqual(Checksum("7"), Checksum("8"));
    }

    [Fact]
    public void TheTableReportNamesTheFigures()
    {
        var (code, output, _) = Run("run", "--seconds", "0.1", "--threads", "1", "--guest-gib", "1");
        Assert.Equal(0, code);
        Assert.Contains("walks/s", output);
        Assert.Contains("checksum", output);
    }

    [Theory]
    [InlineData("--threads", "0", "--threads")]
    [InlineData("--threads", "many", "many")]
    [InlineData("--seconds", "-1", "--seconds")]
    [InlineData("--seconds", "NaN", "--seconds")]
    [InlineData("--guest-gib", "0", "--guest-gib")]
    [InlineData("--bogus", "1", "--bogus")]
    public void BadArgumentsExitWith2AndNameTheArgument(string option, string value, string named)
    {
        var (code, _, error) = Run("run", option, value);
        Assert.Equal(2, code);
        Assert.Contains(named, error);
    }

    [Fact]
    public void AnUnknownCommandExitsWith2()
    {
        var (code, _, error) = Run("launch");
        Assert.Equal(2, code);
        Assert.Contains("launch", error);
    }
}
