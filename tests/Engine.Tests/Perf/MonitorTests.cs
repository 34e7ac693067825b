using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Cli;
using Microsoft.Diagnostics.NETCore.Client;

namespace Engine.Tests.Perf;

public class MonitorTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    /// <summary>
    /// Starts <c>engine run --seconds 5</c> (the built Engine.Cli.dll under <c>dotnet</c>), attaches
    /// <c>engine monitor</c> to it until it exits, and checks what the monitor saw: translations and an
    /// IOTLB hit rate in [0, 1]. Counts, not rates: nothing here depends on how fast the machine is.
    /// </summary>
    [Fact]
    public void MonitorAttachedToARunningEngineSeesTranslationsAndAHitRate()
    {
        string cli = Path.Combine(AppContext.BaseDirectory, "Engine.Cli.dll");
        Assert.True(File.Exists(cli), $"{cli} is missing: the test project should copy the CLI it references.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[cli, "run", "--seconds", "5", "--threads", "2", "--json"])
            start.ArgumentList.Add(a);
        using Process child = Process.Start(start)!;
        child.OutputDataReceived += (_, _) => { };
        child.ErrorDataReceived += (_, _) => { };
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        try
        {
            // The runtime opens its diagnostics port early in startup; wait for it (bounded) before attaching.
            var waited = Stopwatch.StartNew();
            while (!child.HasExited && !DiagnosticsClient.GetPublishedProcesses().Contains(child.Id) && waited.Elapsed < TimeSpan.FromSeconds(60))
                Thread.Sleep(50);
            Assert.False(child.HasExited, "engine run exited before the monitor could attach");
            var (code, output, error) = Run("monitor", "--pid", child.Id.ToString(CultureInfo.InvariantCulture), "--interval", "500ms", "--json");
            Assert.True(code == 0, $"engine monitor exited {code}: {error}");
            using var report = JsonDocument.Parse(output);
            JsonElement root = report.RootElement;
            Assert.True(root.GetProperty("translations").GetDouble() > 0, $"the monitor saw no translations: {output}");
            double hitRate = root.GetProperty("iotlbHitRate").GetDouble();
            Assert.InRange(hitRate, 0.0, 1.0);
            string[] sources = [.. root.GetProperty("sources").EnumerateArray().Select(s => s.GetProperty("source").GetString()!)];
            Assert.Contains("iommu=dmar0", sources);
            Assert.Contains("domain=kvm0", sources);
            Assert.True(child.WaitForExit(60_000), "engine run did not finish");
            Assert.Equal(0, child.ExitCode);
        }
        finally
        {
            if (!child.HasExited)
                child.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData(new[] { "monitor" }, "exactly one of --pid and --name")]
    [InlineData(new[] { "monitor", "--pid", "1", "--name", "x" }, "exactly one of --pid and --name")]
    [InlineData(new[] { "monitor", "--name", "no-such-engine-process" }, "--name no-such-engine-process")]
    [InlineData(new[] { "monitor", "--pid", "1", "--interval", "soon" }, "--interval")]
    public void BadArgumentsExitWith2AndSayWhy(string[] args, string says)
    {
        var (code, _, error) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(says, error);
    }
}
