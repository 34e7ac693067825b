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
    public void TheDmaScenarioReportsTranslationsFaultsPageRequestsAndDevices()
    {
        var (code, output, error) = Run("run", "--seconds", "0.5", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        JsonElement r = doc.RootElement;
        Assert.True(r.GetProperty("translations").GetInt64() > 1000);
        Assert.True(r.GetProperty("translationsPerSecond").GetDouble() > 0);
        Assert.InRange(r.GetProperty("iotlbHitRate").GetDouble(), 0.5, 1.0);
        Assert.True(r.GetProperty("invalidations").GetInt64() > 0, "KVM's flushes reach the domain");
        Assert.True(r.GetProperty("kvmOperations").GetInt64() > 0);
        Assert.Equal(0, r.GetProperty("pageRequestsFailed").GetInt64());
        Assert.Equal(["nic", "gpu", "nvme"], r.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("name").GetString()));
        foreach (JsonElement d in r.GetProperty("devices").EnumerateArray())
        {
            Assert.True(d.GetProperty("dmaOperations").GetInt64() > 0);
            Assert.Equal(0, d.GetProperty("faults").GetInt64());
        }
    }

    [Fact]
    public void OneThreadAndTheSameSeedGiveTheSameCounts()
    {
        static string Counts(string seed)
        {
            var (code, output, error) = Run("run", "--seconds", "0.4", "--threads", "1", "--seed", seed, "--json");
            Assert.True(code == 0, error);
            using var doc = JsonDocument.Parse(output);
            var r = doc.RootElement;
            return string.Join(",", new[] { "rounds", "translations", "walks", "faults", "pageRequestsServed", "invalidations" }.Select(k => r.GetProperty(k).GetInt64()))
                + r.GetProperty("devices").ToString();
        }
        string a = Counts("9");
        Assert.Equal(a, Counts("9"));
        Assert.NotEqual(a, Counts("10"));
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
        Assert.Contains("nvme", output);
    }

    [Theory]
    [InlineData("--threads", "0", "--threads")]
    [InlineData("--threads", "many", "many")]
    [InlineData("--seconds", "-1", "--seconds")]
    [InlineData("--seconds", "NaN", "--seconds")]
    [InlineData("--scenario", "fast", "fast")]
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
