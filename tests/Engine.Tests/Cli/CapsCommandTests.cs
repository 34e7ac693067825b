using System.Text.Json;
using Engine.Cli;

namespace Engine.Tests.Cli;

public class CapsCommandTests
{
    private static readonly string[] Keys =
    [
        "sagaw", "mgaw", "agaw", "superpageLevel", "domains", "cachingMode", "rwbf", "psi", "maxAddressMask", "faultRegisters",
        "faultRegisterOffset", "fl1gp", "fl5lp", "coherent", "qi", "deviceTlb", "interruptRemapping", "eim", "passThrough",
        "snoopControl", "iotlbRegisterOffset", "nested", "prs", "pasid", "scalableMode", "slts", "flts", "smpwc", "slads", "pagingCoherency",
    ];

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    [Fact]
    public void JsonHasExactlyTheContractKeysWithTypedValues()
    {
        var (code, output, error) = Run("caps", "decode", "--cap", "0xd2008c22260206", "--ecap", "0xf00f5e", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(Keys.Order(), doc.RootElement.EnumerateObject().Select(p => p.Name).Order());
        JsonElement r = doc.RootElement;
        Assert.Equal(2, r.GetProperty("sagaw").GetInt32());
        Assert.Equal(39, r.GetProperty("mgaw").GetInt32());
        Assert.Equal(1, r.GetProperty("agaw").GetInt32());
        Assert.Equal(2, r.GetProperty("superpageLevel").GetInt32());
        Assert.Equal(65536, r.GetProperty("domains").GetInt32());
        Assert.Equal(18, r.GetProperty("maxAddressMask").GetInt32());
        Assert.Equal(1, r.GetProperty("faultRegisters").GetInt32());
        Assert.Equal(0x220, r.GetProperty("faultRegisterOffset").GetInt32());
        Assert.Equal(0xF0, r.GetProperty("iotlbRegisterOffset").GetInt32());
        Assert.Equal(JsonValueKind.True, r.GetProperty("psi").ValueKind);
        Assert.Equal(JsonValueKind.False, r.GetProperty("cachingMode").ValueKind);
        Assert.Equal(JsonValueKind.True, r.GetProperty("deviceTlb").ValueKind);
        Assert.Equal(JsonValueKind.False, r.GetProperty("scalableMode").ValueKind);
    }

    [Fact]
    public void AnAgawOfNoneIsMinusOne()
    {
        var (code, output, _) = Run("caps", "decode", "--cap", "0", "--ecap", "0", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(-1, doc.RootElement.GetProperty("agaw").GetInt32());
    }

    [Fact]
    public void TheTableShowsEveryField()
    {
        var (code, output, _) = Run("caps", "decode", "--cap", "D2008C22260206", "--ecap", "f00f5e");
        Assert.Equal(0, code);
        foreach (string field in new[] { "SAGAW", "MGAW", "SLLPS", "MAMV", "NFR", "FRO", "IRO", "SMTS", "SMPWC", "agaw" })
            Assert.Contains(field, output);
    }

    [Theory]
    [InlineData("--cap", "zz", "--cap")]
    [InlineData("--cap", "0x", "--cap")]
    [InlineData("--cap", "0x1ffffffffffffffff", "--cap")]
    [InlineData("--ecap", "-1", "--ecap")]
    public void BadRegisterValuesExitWith2AndNameTheOption(string option, string value, string named)
    {
        string[] args = option == "--cap" ? ["caps", "decode", "--cap", value, "--ecap", "0"] : ["caps", "decode", "--cap", "0", "--ecap", value];
        var (code, _, error) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(named, error);
    }

    // Each one-bit field's meaning follows its value: RWBF = 0 is no write-buffer flush, SC = 0 no snoop control.
    [Theory]
    [InlineData("0x0", "0x0", "RWBF (4)", "False", "no write-buffer flush required")]
    [InlineData("0x10", "0x0", "RWBF (4)", "True", "write-buffer flush required")]
    [InlineData("0x0", "0x0", "SC (7)", "False", "no snoop control")]
    [InlineData("0x0", "0x80", "SC (7)", "True", "snoop control")]
    [InlineData("0x0", "0x0", "PSI (39)", "False", "no page-selective invalidation")]
    [InlineData("0x0", "0x20000000", "PRS (29)", "True", "page requests")]
    public void AFlagsMeaningMatchesItsValue(string cap, string ecap, string field, string value, string meaning)
    {
        var (code, output, _) = Run("caps", "decode", "--cap", cap, "--ecap", ecap);
        Assert.Equal(0, code);
        string row = output.Split('\n').Single(line => line.Contains(field, StringComparison.Ordinal));
        string[] cells = [.. row.Split('│').Select(c => c.Trim())];
        Assert.Equal(value, cells[3]);
        Assert.Equal(meaning, cells[4]);
    }

    [Fact]
    public void AMissingRegisterExitsWith2()
    {
        var (code, _, error) = Run("caps", "decode", "--cap", "0x1");
        Assert.Equal(2, code);
        Assert.Contains("--ecap", error);
    }
}
