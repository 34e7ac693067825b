using System.Runtime.Intrinsics;

namespace Engine.Tests;

/// <summary>
/// Each ISA leg of .ci/run sets a runtime knob and ENGINE_EXPECTED_ISA; this test fails the leg when
/// the knob did not do what the leg expects, so a leg can never silently test the default path.
/// </summary>
[Trait("Category", "Simd")]
public class IsaStateTests
{
    [Fact]
    public void TheRuntimeIsaStateIsWhatThisLegExpects()
    {
        string? expected = Environment.GetEnvironmentVariable("ENGINE_EXPECTED_ISA");
        if (string.IsNullOrEmpty(expected))
            Assert.Skip("not an ISA leg (ENGINE_EXPECTED_ISA is not set)");
        var (v512, v256, v128) = (Vector512.IsHardwareAccelerated, Vector256.IsHardwareAccelerated, Vector128.IsHardwareAccelerated);
        string actual = (v512, v256, v128) switch
        {
            (true, true, true) => "avx512",
            (false, true, true) => "avx2",
            (false, false, true) => "vector128",
            (false, false, false) => "scalar",
            _ => $"odd: V512 {v512}, V256 {v256}, V128 {v128}",
        };
        Assert.True(expected == actual, $"this leg expects {expected} but the runtime offers {actual} (DOTNET_EnableAVX512={Environment.GetEnvironmentVariable("DOTNET_EnableAVX512")}, DOTNET_EnableAVX512F={Environment.GetEnvironmentVariable("DOTNET_EnableAVX512F")}, DOTNET_EnableAVX2={Environment.GetEnvironmentVariable("DOTNET_EnableAVX2")}, DOTNET_EnableHWIntrinsic={Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic")})");
    }
}
