using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Cli.Results;

/// <summary>Reads what <see cref="BenchEnvironment"/> records about this process and machine.</summary>
internal static class EnvironmentProbe
{
    /// <summary>Everything but the calibration and the batch walker, which the caller measures or knows.</summary>
    public static BenchEnvironment Capture(DateTimeOffset startedUtc, string? batchWalker, double calibrationNsPerStep) => new(
        CpuModel(), Environment.ProcessorCount, Isa(), batchWalker, RuntimeInformation.FrameworkDescription,
        RuntimeInformation.OSDescription, Commit(), startedUtc, calibrationNsPerStep);

    /// <summary>avx512, avx2 or none: the widest the runtime accelerates (the DOTNET_Enable* knobs are honoured).</summary>
    public static string Isa() =>
        Vector512.IsHardwareAccelerated ? "avx512" : Avx2.IsSupported ? "avx2" : "none";

    private static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                foreach (string line in File.ReadLines("/proc/cpuinfo"))
                {
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':', StringComparison.Ordinal) is int colon and > 0)
                        return line[(colon + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
            // Unreadable cpuinfo (a sandbox): fall back to the architecture below.
        }
        catch (UnauthorizedAccessException)
        {
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>The commit measured: CI variables first (a CI checkout may have no .git), then git itself.</summary>
    private static string? Commit()
    {
        foreach (string variable in (string[])["ENGINE_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION"])
        {
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value)
                return value.Trim();
        }
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (git is null)
                return null;
            string text = git.StandardOutput.ReadToEnd().Trim();
            if (!git.WaitForExit(5000))
            {
                git.Kill();
                return null;
            }
            return git.ExitCode == 0 && text.Length >= 7 ? text : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no git on PATH
        }
    }
}
