using System.Globalization;
using ScottPlot;
using SkiaSharp;

namespace Engine.Cli.Results;

/// <summary>
/// The history chart of <c>engine plot</c>: one panel per workload, the results files along the
/// x axis in time order (labelled by commit and date), the median ns/op as a line inside the band
/// of its min–max samples (left axis), and on the right axis the calibrated ratio — each file's
/// median ÷ its calibration figure, relative to the oldest file — so a machine that got slower
/// overall (ns/op rises, the ratio stays flat) reads differently from a regression (both rise).
/// </summary>
internal static class TrendChart
{
    /// <summary>Pixels per panel row, and the image width.</summary>
    public const int PanelHeight = 260, Width = 1000;

    /// <summary>The files in time order, each with the name it was read from.</summary>
    public static IReadOnlyList<(string Path, BenchDocument Document)> OrderByTime(IEnumerable<(string Path, BenchDocument Document)> files) =>
        [.. files.OrderBy(f => f.Document.Environment.UtcTime).ThenBy(f => f.Path, StringComparer.Ordinal)];

    /// <summary>Workloads in the order they first appear, limited to <paramref name="only"/> when given.</summary>
    public static IReadOnlyList<string> Workloads(IReadOnlyList<(string Path, BenchDocument Document)> files, IReadOnlyCollection<string>? only)
    {
        var names = new List<string>();
        foreach (var (_, document) in files)
        {
            foreach (BenchWorkloadResult w in document.Workloads)
            {
                if (!names.Contains(w.Name) && (only is null || only.Count == 0 || only.Contains(w.Name)))
                    names.Add(w.Name);
            }
        }
        return names;
    }

    /// <summary>Builds the chart: one subplot per name in <paramref name="workloads"/>, over <paramref name="files"/> (already in time order).</summary>
    public static Multiplot Build(IReadOnlyList<(string Path, BenchDocument Document)> files, IReadOnlyList<string> workloads)
    {
        var chart = new Multiplot();
        chart.Layout = new ScottPlot.MultiplotLayouts.Rows();
        double[] positions = [.. Enumerable.Range(0, files.Count).Select(i => (double)i)];
        string[] labels = [.. files.Select(f => Label(f.Document.Environment))];
        for (int panel = 0; panel < workloads.Count; panel++)
        {
            string name = workloads[panel];
            // A new Multiplot already holds one empty plot: it becomes the first panel.
            Plot plot = panel == 0 && chart.Count() == 1 ? chart.GetPlot(0) : chart.AddPlot();
            plot.Title(name);
            plot.YLabel("ns/op");
            var xs = new List<double>();
            var medians = new List<double>();
            var mins = new List<double>();
            var maxes = new List<double>();
            var ratioXs = new List<double>();
            var ratios = new List<double>();
            double? firstCalibrated = null;
            for (int i = 0; i < files.Count; i++)
            {
                BenchDocument d = files[i].Document;
                BenchWorkloadResult? w = d.Workloads.FirstOrDefault(x => x.Name == name);
                if (w is null)
                    continue; // the workload did not exist yet (or was not run): a gap, not a zero
                double median = BenchComparison.Median(w.SamplesNsPerOp);
                xs.Add(i);
                medians.Add(median);
                mins.Add(w.SamplesNsPerOp.Min());
                maxes.Add(w.SamplesNsPerOp.Max());
                if (d.Environment.CalibrationNsPerStep is > 0 and double calibration)
                {
                    double calibrated = median / calibration;
                    firstCalibrated ??= calibrated;
                    ratioXs.Add(i);
                    ratios.Add(calibrated / firstCalibrated.Value);
                }
            }
            var band = plot.Add.FillY(xs.ToArray(), mins.ToArray(), maxes.ToArray());
            band.FillColor = Colors.SteelBlue.WithAlpha(0.25);
            band.LineColor = Colors.SteelBlue.WithAlpha(0.5);
            band.LegendText = "min–max of runs";
            var line = plot.Add.Scatter(xs.ToArray(), medians.ToArray(), Colors.SteelBlue);
            line.LineWidth = 2;
            line.LegendText = "median ns/op";
            if (ratios.Count > 0)
            {
                var right = plot.Axes.AddRightAxis();
                right.LabelText = "ratio";
                var ratio = plot.Add.Scatter(ratioXs.ToArray(), ratios.ToArray(), Colors.OrangeRed);
                ratio.Axes.YAxis = right;
                ratio.MarkerShape = MarkerShape.OpenSquare; // solid, not dashed: Skia's SVG canvas cannot write dash path effects
                ratio.LegendText = "calibrated ratio (vs first file)";
            }
            plot.Axes.Bottom.SetTicks(positions, labels);
            plot.Axes.SetLimitsX(-0.3, Math.Max(files.Count - 1, 1) + 0.3);
            if (panel == 0)
                plot.ShowLegend(Alignment.UpperLeft); // the same three series in every panel: one legend is enough
        }
        return chart;
    }

    /// <summary>Writes the chart as PNG or SVG by <paramref name="path"/>'s extension.</summary>
    public static void Save(Multiplot chart, string path, int panels)
    {
        int height = Math.Max(1, panels) * PanelHeight;
        if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            chart.SavePng(path, Width, height);
            return;
        }
        // ScottPlot saves a single Plot as SVG, not a Multiplot: draw it onto Skia's SVG canvas,
        // as Plot.GetSvgXml does, which needs no native font or GPU code beyond SkiaSharp itself.
        using var stream = File.Create(path);
        using (SKCanvas canvas = SKSvgCanvas.Create(new SKRect(0, 0, Width, height), stream))
        {
            canvas.Clear(SKColors.White);
            chart.Render(canvas, new PixelRect(0, Width, height, 0));
        }
    }

    /// <summary>A short x label: the commit's first 7 characters (when known) and the UTC date and time.</summary>
    private static string Label(BenchEnvironment e)
    {
        string when = e.UtcTime.UtcDateTime.ToString("MM-dd HH:mm", CultureInfo.InvariantCulture);
        return e.Commit is { Length: >= 7 } commit ? $"{commit[..7]}\n{when}" : when;
    }
}
