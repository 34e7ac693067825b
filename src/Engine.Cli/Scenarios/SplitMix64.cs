namespace Engine.Cli.Scenarios;

/// <summary>The splitmix64 generator the C anchors use, so a seed means the same stream everywhere.</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The generator's whole state (a checkpoint carries it).</summary>
    public ulong State
    {
        readonly get => _state;
        set => _state = value;
    }

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
