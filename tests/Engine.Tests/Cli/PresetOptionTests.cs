using Engine.Cli;
using Engine.Iommu;

namespace Engine.Tests.Cli;

/// <summary><c>--preset</c> on caps decode and kvm-check: a real platform's registers by name.</summary>
public class PresetOptionTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("server")]
    [InlineData("GraniteRapidsServer")]
    [InlineData("qemu-sm")]
    public void CapsDecodeWithAPresetDecodesThatPresetsRegisters(string name)
    {
        IommuPreset preset = IommuPresets.Get(name);
        var byPreset = Run("caps", "decode", "--preset", name, "--json");
        var byValue = Run("caps", "decode", "--cap", $"0x{preset.Cap.Value:x}", "--ecap", $"0x{preset.Ecap.Value:x}", "--json");
        Assert.True(byPreset.Code == 0, byPreset.Err);
        Assert.Equal(byValue.Out, byPreset.Out);
    }

    [Fact]
    public void KvmCheckWithAPresetAnswersAsWithItsRegisters()
    {
        Assert.Equal(0, Run("kvm-check", "--preset", "server", "--level", "5", "--max-huge-page-level", "3", "--json").Code);
        var client = Run("kvm-check", "--preset", "client", "--level", "5", "--max-huge-page-level", "3", "--json");
        Assert.Equal(3, client.Code);
        Assert.Contains("\"compatible\":false", client.Out);
    }

    [Theory]
    [InlineData("no IOMMU preset is called 'nope'", "--preset", "nope")]
    [InlineData("not both", "--preset", "server", "--cap", "0x1", "--ecap", "0x2")]
    [InlineData("--ecap is missing", "--cap", "0x1")]
    [InlineData("Give --preset NAME, or --cap and --ecap")]
    public void ABadRegisterSourceExitsWith2AndSaysWhy(string says, params string[] args)
    {
        var (code, _, error) = Run(["kvm-check", "--level", "4", "--max-huge-page-level", "2", .. args]);
        Assert.Equal(2, code);
        Assert.Contains(says, error);
        var caps = Run(["caps", "decode", .. args]);
        Assert.Equal(2, caps.Code);
        Assert.Contains(says, caps.Err);
    }
}
