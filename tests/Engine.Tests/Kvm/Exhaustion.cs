using Engine.Memory;

namespace Engine.Tests.Kvm;

/// <summary>Drives host memory to exhaustion with a given number of frames left, and gives them back.</summary>
internal sealed class Exhaustion : IDisposable
{
    private readonly HostMemory _memory;
    private readonly List<ulong> _taken = [];

    /// <summary>Takes every free frame but <paramref name="leave"/> (retired frames are reclaimed first).</summary>
    public Exhaustion(HostMemory memory, int leave = 0)
    {
        _memory = memory;
        memory.Reclaim();
        while (memory.TryAllocateFrame(out ulong frame))
            _taken.Add(frame);
        for (int i = 0; i < leave && _taken.Count > 0; i++)
        {
            memory.FreeFrame(_taken[^1]);
            _taken.RemoveAt(_taken.Count - 1);
        }
    }

    /// <summary>Frames in use now, after reclaiming what retirement holds back (no walker is inside in these tests).</summary>
    public static ulong FramesInUse(HostMemory memory)
    {
        memory.Reclaim();
        return memory.Statistics.FramesInUse;
    }

    public void Dispose()
    {
        foreach (ulong frame in _taken)
            _memory.FreeFrame(frame);
        _taken.Clear();
    }
}
