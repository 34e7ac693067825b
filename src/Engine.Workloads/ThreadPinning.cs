using System.Runtime.InteropServices;

namespace Engine.Workloads;

/// <summary>
/// Pins the calling thread to one CPU (Linux), as the anchors pin their two threads: a scaling
/// figure then measures the code, not the scheduler moving threads between CPUs.
/// </summary>
internal static partial class ThreadPinning
{
    /// <summary>Pins the calling thread to CPU <paramref name="cpu"/> modulo the CPU count; false where that is not possible.</summary>
    public static bool TryPin(int cpu)
    {
        if (!OperatingSystem.IsLinux() || Environment.ProcessorCount > 64)
            return false;
        ulong[] mask = [1UL << (cpu % Environment.ProcessorCount)];
        return SchedSetAffinity(0, sizeof(ulong), mask) == 0;
    }

    /// <summary>Lets the calling thread run on every CPU again.</summary>
    public static void Unpin()
    {
        if (!OperatingSystem.IsLinux() || Environment.ProcessorCount > 64)
            return;
        ulong[] mask = [Environment.ProcessorCount == 64 ? ulong.MaxValue : (1UL << Environment.ProcessorCount) - 1];
        _ = SchedSetAffinity(0, sizeof(ulong), mask);
    }

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nint size, ulong[] mask);
}
