using System.Text.Json;
using Engine.Cli;
using Engine.Cli.Scenarios;
using Engine.Memory;

namespace Engine.Tests.Cli;


[Collection(nameof(CliRunCollection))]
public class SoakTests
{
    private static readonly string[] SampleKeys =
        ["cycles", "framesInUseAfterTeardown", "kind", "nativeAllocations", "nativeBytes", "peakFramesInUse", "rssBytes", "seconds"];

    // Not a timing test: however few platforms fit in the second, each sample is taken with none
    // alive, so its native bytes are 0, and every teardown leaves the same IOMMU-only frames.
    [Fact]
    public void AShortSoakReportsItsSamplesAndGivesBackEveryNativeByte()
    {
        long before = NativeMemoryTracker.ReservedBytes;
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["run", "--soak", "--seconds", "1", "--soak-interval", "0.2", "--threads", "2", "--json"], output, error);
        Assert.True(code is 0 or Program.ExitProblemFound, error.ToString());
        using var doc = JsonDocument.Parse(output.ToString());
        JsonElement r = doc.RootElement;
        Assert.Equal(
            ["cycles", "faultedDmas", "intervalSeconds", "notes", "pageRequestsResent", "passed", "problems", "rssToleranceBytes", "samples", "seconds", "threads", "translations"],
            r.EnumerateObject().Select(p => p.Name).Where(n => n != "rssGrowthBytes").Order());
        Assert.Equal(code == 0, r.GetProperty("passed").GetBoolean());
        Assert.True(r.GetProperty("cycles").GetInt64() >= 1);
        Assert.True(r.GetProperty("translations").GetInt64() > 0);
        JsonElement[] samples = [.. r.GetProperty("samples").EnumerateArray()];
        Assert.True(samples.Length >= 2, "a warm-up sample and an end sample");
        Assert.Equal("warm-up", samples[0].GetProperty("kind").GetString());
        Assert.Equal("end", samples[^1].GetProperty("kind").GetString());
        long frames = samples[0].GetProperty("framesInUseAfterTeardown").GetInt64();
        Assert.True(frames > 0, "the IOMMUs' own tables stay until the platform goes");
        foreach (JsonElement s in samples)
        {
            Assert.Equal(SampleKeys, s.EnumerateObject().Select(p => p.Name).Order());
            Assert.Equal(0, s.GetProperty("nativeBytes").GetInt64());
            Assert.Equal(0, s.GetProperty("nativeAllocations").GetInt64());
            Assert.Equal(frames, s.GetProperty("framesInUseAfterTeardown").GetInt64());
            Assert.True(s.GetProperty("rssBytes").GetInt64() > 0);
        }
        // Native and frame growth are judged with no tolerance; only RSS may fail a run this short.
        Assert.All(r.GetProperty("problems").EnumerateArray(), p => Assert.StartsWith("RSS grew", p.GetString(), StringComparison.Ordinal));
        Assert.Equal(before, NativeMemoryTracker.ReservedBytes);
    }

    [Fact]
    public void TheTextReportShowsTheSamplesAsATable()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["run", "--soak", "--seconds", "0.3", "--soak-interval", "0.1", "--threads", "1"], output, error);
        Assert.True(code is 0 or Program.ExitProblemFound, error.ToString());
        Assert.Contains("native bytes", output.ToString());
        Assert.Contains("frames after teardown", output.ToString());
        Assert.Contains("warm-up", output.ToString());
        Assert.Contains("engine run --soak:", error.ToString());
    }

    private static SoakSample Sample(long native = 0, long frames = 17, long rssMiB = 100, string kind = "interval") =>
        new(kind, 0, 1, native, native == 0 ? 0 : 1, frames, 1000, rssMiB << 20);

    [Fact]
    public void NativeBytesHeldWithNoPlatformAliveFailWithoutTolerance()
    {
        SoakScenario.SoakVerdict v = SoakScenario.Judge([Sample(kind: "warm-up"), Sample(native: 4096), Sample(kind: "end")]);
        Assert.Contains(v.Problems, p => p.StartsWith("native memory grew: 4,096 bytes", StringComparison.Ordinal));
    }

    [Fact]
    public void FramesLeftAfterATeardownFailWhenAboveTheFirstCycles()
    {
        SoakScenario.SoakVerdict v = SoakScenario.Judge([Sample(kind: "warm-up"), Sample(), Sample(frames: 18, kind: "end")]);
        Assert.Contains(v.Problems, p => p.StartsWith("frames in use after a VM's teardown grew from 17", StringComparison.Ordinal));
    }

    [Fact]
    public void RssIsJudgedOnMediansFromSevenSamplesWithATolerance()
    {
        // One high sample at each end is noise, not growth; the medians move by 10 MiB.
        SoakSample[] noisy = [Sample(rssMiB: 40, kind: "warm-up"), Sample(rssMiB: 100), Sample(rssMiB: 190), Sample(rssMiB: 95),
            Sample(rssMiB: 120), Sample(rssMiB: 105), Sample(rssMiB: 250), Sample(rssMiB: 110, kind: "end")];
        SoakScenario.SoakVerdict v = SoakScenario.Judge(noisy);
        Assert.Empty(v.Problems);
        Assert.Equal(10L << 20, v.RssGrowthBytes);

        SoakSample[] growing = [Sample(rssMiB: 40, kind: "warm-up"), Sample(rssMiB: 100), Sample(rssMiB: 100), Sample(rssMiB: 100),
            Sample(rssMiB: 150), Sample(rssMiB: 170), Sample(rssMiB: 180), Sample(rssMiB: 190, kind: "end")];
        Assert.Contains(SoakScenario.Judge(growing).Problems, p => p.StartsWith("RSS grew by 80.0 MiB", StringComparison.Ordinal));

        Assert.Null(SoakScenario.Judge([.. growing.Take(6)]).RssGrowthBytes);
    }
}
