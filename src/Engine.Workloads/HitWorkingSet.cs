#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
namespace Engine.Workloads;

/// <summary>
/// The anchors' IOTLB working set and request stream (common.h <c>gen_ws</c> / <c>gen_stream</c>):
/// 2048 distinct (DID 1..4, 36-bit VPN) keys, none overflowing the C limit table's 4096×4 sets, and
/// 65,536 random picks with random page offsets.
/// </summary>
public static class HitWorkingSet
{
    public const int Keys = 2048;
    public const int StreamLength = 1 << 16;
    private const ulong WsSeed = 0x5EED0001UL;
    private const ulong StreamSeed = 0x5EED0002UL;

    public static (ushort Did, ulong Vpn)[] GenerateKeys()
    {
        const int Sets = 4096, Ways = 4;
        var occupancy = new int[Sets];
        var seen = new HashSet<ulong>();
        var keys = new (ushort, ulong)[Keys];
        ulong seed = WsSeed;
        int k = 0;
        while (k < Keys)
        {
            ulong r = AnchorInputs.SplitMix64(ref seed);
            ushort did = (ushort)(1 + (r & 3));
            ulong vpn = (r >> 8) & ((1UL << 36) - 1);
            int set = (int)((vpn ^ (vpn >> 12) ^ ((ulong)did << 7)) & (Sets - 1));
            ulong key = ((ulong)did << 40) | vpn;
            if (seen.Contains(key) || occupancy[set] == Ways)
                continue;
            seen.Add(key);
            occupancy[set]++;
            keys[k++] = (did, vpn);
        }
        return keys;
    }

    /// <summary>The stream: indexes into the keys plus page offsets.</summary>
    public static (int Key, uint Offset)[] GenerateStream()
    {
        ulong seed = StreamSeed;
        var stream = new (int, uint)[StreamLength];
        for (int i = 0; i < stream.Length; i++)
        {
            ulong r = AnchorInputs.SplitMix64(ref seed);
            stream[i] = ((int)((r >> 16) % Keys), (uint)(r & 0xFFF));
        }
        return stream;
    }
}
