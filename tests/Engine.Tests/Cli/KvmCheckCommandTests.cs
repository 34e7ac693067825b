using System.Text.Json;
using Engine.Cli;

namespace Engine.Tests.Cli;

public class KvmCheckCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("0xf9ed008cee780c66", "0x3fef9ea6f0efdf", "5", "3")]
    [InlineData("0x19ed008c40780c66", "0x3ee9e86f050df", "4", "2")]
    public void AServerIommuIsCompatible(string cap, string ecap, string level, string huge)
    {
        var (code, output, error) = Run("kvm-check", "--cap", cap, "--ecap", ecap, "--level", level, "--max-huge-page-level", huge, "--json");
        Assert.True(code == 0, error);
        Assert.Equal("{\"compatible\":true}", output.Trim());
    }

    [Fact]
    public void AClientIommuIsRefusedWithExit3AndEveryReason()
    {
        var (code, output, _) = Run("kvm-check", "--cap", "0x1c0000c40660462", "--ecap", "0x29a00f0505e", "--level", "5", "--max-huge-page-level", "3", "--json");
        Assert.Equal(3, code);
        using var doc = JsonDocument.Parse(output);
        JsonElement r = doc.RootElement;
        Assert.False(r.GetProperty("compatible").GetBoolean());
        Assert.Equal("EOPNOTSUPP", r.GetProperty("errno").GetString());
        string[] reasons = [.. r.GetProperty("reasons").EnumerateArray().Select(e => e.GetString()!)];
        Assert.Equal(5, reasons.Length);
        Assert.Contains(reasons, s => s.Contains("snoop control"));
        Assert.Contains(reasons, s => s.Contains("MGAW"));
    }

    [Fact]
    public void QemusScalableModeLacksSnoopControlAndCoherency()
    {
        var (code, output, _) = Run("kvm-check", "--cap", "0xd2008c222f0606", "--ecap", "0x480080f00f4a", "--level", "4", "--max-huge-page-level", "2", "--json");
        Assert.Equal(3, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(2, doc.RootElement.GetProperty("reasons").GetArrayLength());
    }

    [Fact]
    public void AnUnusableUnitStillListsTheDomainsReasons()
    {
        var (code, output, _) = Run("kvm-check", "--cap", "0", "--ecap", "0", "--level", "4", "--max-huge-page-level", "1", "--json");
        Assert.Equal(3, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("EOPNOTSUPP", doc.RootElement.GetProperty("errno").GetString());
        Assert.True(doc.RootElement.GetProperty("reasons").GetArrayLength() >= 3);
    }

    // The engine words this refusal with an ArgumentException's message, which ends in "(Parameter 'declarations')".
    [Fact]
    public void ReasonsCarryNoDotNetParameterNames()
    {
        var (code, output, _) = Run("kvm-check", "--cap", "0", "--ecap", "0", "--level", "4", "--max-huge-page-level", "1");
        Assert.Equal(3, code);
        Assert.Contains("overlaps", output);
        Assert.DoesNotContain("(Parameter", output);
        Assert.DoesNotContain("declarations", output);
    }

    [Fact]
    public void TheTextReportSaysCompatibleOrLists()
    {
        var (code, output, _) = Run("kvm-check", "--cap", "0xf9ed008cee780c66", "--ecap", "0x3fef9ea6f0efdf", "--level", "5", "--max-huge-page-level", "3");
        Assert.Equal(0, code);
        Assert.Contains("compatible", output);
    }

    [Theory]
    [InlineData("--level", "3", "--level")]
    [InlineData("--level", "x", "x")]
    [InlineData("--max-huge-page-level", "4", "--max-huge-page-level")]
    [InlineData("--cap", "nothex", "--cap")]
    public void BadArgumentsExitWith2AndNameTheArgument(string option, string value, string named)
    {
        var args = new Dictionary<string, string> { ["--cap"] = "0x1", ["--ecap"] = "0x1", ["--level"] = "4", ["--max-huge-page-level"] = "2" };
        args[option] = value;
        var (code, _, error) = Run(["kvm-check", .. args.SelectMany(kv => new[] { kv.Key, kv.Value })]);
        Assert.Equal(2, code);
        Assert.Contains(named, error);
    }
}
