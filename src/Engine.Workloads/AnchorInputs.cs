#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
namespace Engine.Workloads;

/// <summary>
/// The inputs of the C anchors (/work/shared/anchors: common.h, anchors.c), reproduced bit for bit
/// so the C# walk benchmarks touch exactly the same pages as the C rows they are compared with.
/// </summary>
public static class AnchorInputs
{
    /// <summary>walk-hot: 1 GiB mapped by 4 KiB leaves.</summary>
    public const ulong HotGiB = 1;

    /// <summary>walk-hot: 2^18 random IOVAs.</summary>
    public const int HotIovaCount = 1 << 18;

    /// <summary>walk-cold: 64 GiB mapped by 4 KiB leaves.</summary>
    public const ulong ColdGiB = 64;

    /// <summary>walk-cold: 2^20 random IOVAs.</summary>
    public const int ColdIovaCount = 1 << 20;

    /// <summary>anchors.c <c>walk_suite</c> seeds its IOVA generator with <c>0x1A11 + gib</c>.</summary>
    public static ulong IovaSeed(ulong gib) => 0x1A11 + gib;

    /// <summary>common.h <c>sm64</c>: splitmix64 with explicit state.</summary>
    public static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9e3779b97f4a7c15UL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        return z ^ (z >> 31);
    }

    /// <summary>anchors.c <c>gen_iovas(gib, n, 0x1A11 + gib)</c>: <c>v[i] = sm64(&amp;seed) % (gib &lt;&lt; 30)</c>.</summary>
    public static ulong[] Iovas(ulong gib, int count)
    {
        ulong seed = IovaSeed(gib);
        ulong span = gib << 30;
        var iovas = new ulong[count];
        for (int i = 0; i < count; i++)
            iovas[i] = SplitMix64(ref seed) % span;
        return iovas;
    }
}
