using System.Diagnostics;

namespace Engine.Cli.Results;

/// <summary>
/// The calibration figure of a results file: ns per step of a dependent pointer chase through a
/// 128 KiB ring (in L2 on every x86 server of the last decade, out of L1). Each load's address is
/// the previous load's value, so the time is load-to-use latency plus the loop — a fixed scalar
/// kernel that moves with clock speed, turbo and noisy neighbours much as the IOTLB hit path does,
/// and does not move with the engine's code. Ratios of (ns/op ÷ ns/step) compare runs made on
/// different hours or machines better than raw ns/op.
/// </summary>
internal static class Calibration
{
    private const int RingEntries = 128 * 1024 / sizeof(int);
    private const int StepsPerRun = 1 << 21;
    private const int Runs = 7;

    /// <summary>Measures the chase now (about 30 ms): the median of <see cref="Runs"/> timed runs after one warm-up.</summary>
    public static double MeasureNsPerStep()
    {
        int[] ring = BuildRing();
        Chase(ring, StepsPerRun); // warm the ring into L2 and let the JIT tier the loop up
        var times = new double[Runs];
        var stopwatch = new Stopwatch();
        int sink = 0;
        for (int r = 0; r < Runs; r++)
        {
            stopwatch.Restart();
            sink += Chase(ring, StepsPerRun);
            times[r] = stopwatch.Elapsed.TotalNanoseconds / StepsPerRun;
        }
        GC.KeepAlive(sink);
        Array.Sort(times);
        return times[Runs / 2];
    }

    /// <summary>One cycle through every entry in a fixed random order (Sattolo's shuffle, fixed seed), so the prefetcher cannot guess the next line.</summary>
    private static int[] BuildRing()
    {
        int[] order = new int[RingEntries];
        for (int i = 0; i < order.Length; i++)
            order[i] = i;
        var random = new Random(20_241_202);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = random.Next(i);
            (order[i], order[j]) = (order[j], order[i]);
        }
        int[] ring = new int[RingEntries];
        for (int i = 0; i < order.Length; i++)
            ring[order[i]] = order[(i + 1) % order.Length];
        return ring;
    }

    private static int Chase(int[] ring, int steps)
    {
        int at = 0;
        for (int s = 0; s < steps; s++)
            at = ring[at];
        return at;
    }
}
