using Engine.Kvm;

namespace Engine.Tests.Kvm;

/// <summary>An importer that records every invalidation and revocation, and optionally runs a check inside the callbacks.</summary>
internal sealed class RecordingImporter(Action<ulong, ulong>? onInvalidate = null, Action? onRevoke = null) : ITdpImporter
{
    public List<(ulong Gpa, ulong Size)> Calls { get; } = [];

    public int Revocations { get; private set; }

    public void Invalidate(ulong gpa, ulong size)
    {
        lock (Calls)
            Calls.Add((gpa, size));
        onInvalidate?.Invoke(gpa, size);
    }

    public void Revoke()
    {
        Revocations++;
        onRevoke?.Invoke();
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
