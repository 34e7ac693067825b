using System.Globalization;

namespace Engine.Memory;

public sealed unsafe partial class HostMemory
{
    /// <summary>
    /// How many bytes of Engine's own region the operating system backs with transparent huge pages
    /// right now, or null where that cannot be known (not Linux, or <c>/proc/self/smaps</c> unreadable).
    /// </summary>
    /// <remarks>
    /// <see cref="HostMemoryOptions.TransparentHugePages"/> is only a hint: whether the kernel grants huge
    /// pages depends on how fragmented the host's memory is when a frame is first touched. Walks over
    /// tables in 4 KiB host pages pay a host TLB miss per level, so a miss-heavy run can be twice as slow
    /// from one process to the next; this says which case a run was in. A control-path call: it reads
    /// and parses the process's whole mapping list.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The memory is disposed.</exception>
    public long? TransparentHugePageBytes()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (!OperatingSystem.IsLinux())
            return null;
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/smaps");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        ulong start = (ulong)_region.Pointer, end = start + _region.Size;
        long bytes = 0;
        bool inside = false;
        foreach (string line in lines)
        {
            // A mapping's header: "start-end perms offset dev inode [path]", addresses in hex.
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash
                && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong from)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong to))
            {
                inside = from < end && to > start;
                continue;
            }
            if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal)
                && long.TryParse(line.AsSpan(14).Trim().TrimEnd("kB").Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long kb))
                bytes += kb * 1024;
        }
        return bytes;
    }
}
