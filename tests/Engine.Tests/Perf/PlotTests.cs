using System.Buffers.Binary;
using System.Xml.Linq;
using Engine.Cli;
using Engine.Cli.Results;

namespace Engine.Tests.Perf;

public class PlotTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    /// <summary>Three results files written out of time order, with workloads a, b and c.</summary>
    private static string[] History(TempDirectory dir)
    {
        var start = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        return
        [
            SyntheticResults.Write(dir.Path, "late.json", SyntheticResults.Document(5.2, start.AddDays(2),
                ("iotlb-hit", SyntheticResults.Samples(5, 10, 5.5, 0.02)), ("walk-cold", SyntheticResults.Samples(6, 10, 80, 0.02)), ("inval-page", SyntheticResults.Samples(7, 10, 30, 0.02)))),
            SyntheticResults.Write(dir.Path, "early.json", SyntheticResults.Document(5.0, start,
                ("iotlb-hit", SyntheticResults.Samples(1, 10, 5, 0.02)), ("walk-cold", SyntheticResults.Samples(2, 10, 80, 0.02)))),
            SyntheticResults.Write(dir.Path, "middle.json", SyntheticResults.Document(5.1, start.AddDays(1),
                ("iotlb-hit", SyntheticResults.Samples(3, 10, 5.1, 0.02)), ("walk-cold", SyntheticResults.Samples(4, 10, 82, 0.02)), ("inval-page", SyntheticResults.Samples(8, 10, 31, 0.02)))),
        ];
    }

    [Fact]
    public void APngIsWrittenWithOnePanelPerWorkloadAskedFor()
    {
        using var dir = new TempDirectory();
        string png = dir.File("trend.png");
        var (code, output, error) = Run(["plot", .. History(dir), "-o", png, "--workload", "iotlb-hit", "walk-cold"]);
        Assert.True(code == 0, error);
        Assert.Contains("2 panel(s) over 3 file(s)", output);
        byte[] bytes = File.ReadAllBytes(png);
        Assert.True(bytes.AsSpan().StartsWith((byte[])[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]), "not a PNG: the magic bytes are wrong");
        // IHDR: width and height, big-endian, at bytes 16 and 20; one panel row per workload.
        Assert.Equal(TrendChart.Width, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
        Assert.Equal(2 * TrendChart.PanelHeight, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    [Fact]
    public void AnSvgParsesAsXmlAndTitlesEveryPanel()
    {
        using var dir = new TempDirectory();
        string svg = dir.File("trend.svg");
        var (code, _, error) = Run(["plot", .. History(dir), "--output", svg]);
        Assert.True(code == 0, error);
        XDocument document = XDocument.Load(svg);
        Assert.Equal("svg", document.Root!.Name.LocalName);
        string[] texts = [.. document.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value.Trim())];
        foreach (string panel in (string[])["iotlb-hit", "walk-cold", "inval-page"])
            Assert.Contains(panel, texts);
    }

    [Fact]
    public void FilesAreOrderedByTheTimeTheBenchRanAndAMissingWorkloadIsAGap()
    {
        using var dir = new TempDirectory();
        var files = TrendChart.OrderByTime(History(dir).Select(p => (p, BenchResultsReader.Read(p))));
        Assert.Equal(["early.json", "middle.json", "late.json"], files.Select(f => Path.GetFileName(f.Path)));
        Assert.Equal(["iotlb-hit", "walk-cold", "inval-page"], TrendChart.Workloads(files, null));
        ScottPlot.Multiplot chart = TrendChart.Build(files, ["inval-page"]);
        Assert.Equal(1, ScottPlot.IMultiplotExtensions.Count(chart));
    }

    [Fact]
    public void BadInputExitsWith2AndIsNamed()
    {
        using var dir = new TempDirectory();
        string[] files = History(dir);
        string broken = dir.File("broken.json");
        File.WriteAllText(broken, "{");
        var (code, _, error) = Run("plot", files[0], broken, "-o", dir.File("x.svg"));
        Assert.Equal(2, code);
        Assert.Contains($"{broken}: not JSON", error);
        (code, _, error) = Run("plot", files[0], "-o", dir.File("x.svg"), "--workload", "nope");
        Assert.Equal(2, code);
        Assert.Contains("--workload nope", error);
        (code, _, error) = Run("plot", files[0], "-o", dir.File("x.gif"));
        Assert.Equal(2, code);
        Assert.Contains("--output", error);
        Assert.False(File.Exists(dir.File("x.svg")));
    }
}
