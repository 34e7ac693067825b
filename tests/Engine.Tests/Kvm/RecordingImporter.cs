using Engine.Kvm;

namespace Engine.Tests.Kvm;

/// <summary>An importer that records every invalidation, and optionally runs a check inside the callback.</summary>
internal sealed class RecordingImporter(Action<ulong, ulong>? onInvalidate = null) : ITdpImporter
{
    public List<(ulong Gpa, ulong Size)> Calls { get; } = [];

    public void Invalidate(ulong gpa, ulong size)
    {
        lock (Calls)
            Calls.Add((gpa, size));
        onInvalidate?.Invoke(gpa, size);
    }

    public List<(ulong Gpa, ulong Size)> Take()
    {
        lock (Calls)
        {
            var copy = Calls.ToList();
            Calls.Clear();
            return copy;
        }
    }
}
