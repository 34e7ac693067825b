using System.Runtime;
using Engine.Memory;

namespace Engine.Cli.Scenarios;

/// <summary>What the soak is asked to do.</summary>
internal sealed record SoakOptions(double Seconds, int Threads, ulong Seed, double IntervalSeconds);

/// <summary>One look at the process between two cycles (no platform alive).</summary>
/// <param name="Kind"><c>warm-up</c> (after the first cycle), <c>interval</c> or <c>end</c>.</param>
/// <param name="Seconds">Since the command started.</param>
/// <param name="Cycles">Platforms built, used and disposed so far.</param>
/// <param name="NativeBytes">Native bytes the engine holds beyond what it held before the soak: 0 when every dispose returned everything.</param>
/// <param name="NativeAllocations">Native reservations beyond those before the soak.</param>
/// <param name="FramesInUseAfterTeardown">
/// The most host frames still in use, over the cycles since the last sample, in a platform whose
/// VM, export and domain were just disposed (its IOMMUs' own tables): the same every cycle unless
/// a VM's life leaks frames.
/// </param>
/// <param name="PeakFramesInUse">The most frames in use at the end of a burst, over the same cycles.</param>
/// <param name="RssBytes">The process's resident set after a full, compacting garbage collection.</param>
internal sealed record SoakSample(
    string Kind, double Seconds, long Cycles, long NativeBytes, long NativeAllocations, long FramesInUseAfterTeardown, long PeakFramesInUse, long RssBytes);

/// <summary>What the soak saw.</summary>
/// <param name="RssGrowthBytes">Median RSS of the last three samples minus that of the first three after the warm-up; null when there are too few samples to judge.</param>
/// <param name="RssToleranceBytes">Growth that still passes: garbage-collected heap and allocator noise, not a leak.</param>
/// <param name="Passed">No growth found (exit code 0; otherwise 1).</param>
/// <param name="Problems">Each growth found, in words.</param>
internal sealed record SoakReport(
    int Threads,
    double Seconds,
    double IntervalSeconds,
    long Cycles,
    long Translations,
    long FaultedDmas,
    long PageRequestsResent,
    IReadOnlyList<SoakSample> Samples,
    long? RssGrowthBytes,
    long RssToleranceBytes,
    bool Passed,
    IReadOnlyList<string> Problems,
    IReadOnlyList<string> Notes);

/// <summary>
/// <c>engine run --soak</c>: builds the DMA scenario's platform, runs a short fixed burst of DMA
/// and KVM operations on it, tears the VM down, disposes the platform — again and again until the
/// deadline — and samples native bytes, frames and RSS at the start, every interval and at the end.
/// </summary>
/// <remarks>
/// Growth is judged so that noise cannot fail it and a leak cannot pass it: native bytes are
/// sampled with no platform alive, so anything above the pre-soak figure is a leak (no tolerance);
/// frames left after a VM's teardown must never exceed the warm-up cycle's; RSS, which the GC heap
/// and the C allocator move on their own by tens of MiB, is judged only from seven samples on,
/// comparing medians of three at each end (see <see cref="Judge"/>).
/// </remarks>
internal static class SoakScenario
{
    private const int BurstRounds = 64;
    private const int BurstKvmOperations = 16;
    private const long RssToleranceFloor = 64L << 20;
    private const int RssJudgedSamples = 3;

    public static SoakReport Run(SoakOptions options, RunDeadline deadline, Action<SoakSample>? sampled = null)
    {
        var notes = new List<string>();
        if (DmaScenario.CoreNote(options.Threads) is { } cores)
            notes.Add(cores);
        // Objects of earlier work (a test host's other tests) finalized now, not in the middle of the soak.
        Settle();
        long nativeBefore = NativeMemoryTracker.ReservedBytes;
        long allocationsBefore = NativeMemoryTracker.LiveAllocations;
        var samples = new List<SoakSample>();
        long cycles = 0, translations = 0, faulted = 0, resent = 0;
        long framesLeft = -1, peakFrames = -1;
        double nextSample = options.IntervalSeconds;

        void Take(string kind)
        {
            Settle();
            // No cycle since the last sample: its frame figures still stand (0 before any cycle).
            SoakSample? previous = samples.Count > 0 ? samples[^1] : null;
            var sample = new SoakSample(kind, deadline.ElapsedSeconds, cycles,
                NativeMemoryTracker.ReservedBytes - nativeBefore, NativeMemoryTracker.LiveAllocations - allocationsBefore,
                framesLeft >= 0 ? framesLeft : previous?.FramesInUseAfterTeardown ?? 0, peakFrames >= 0 ? peakFrames : previous?.PeakFramesInUse ?? 0,
                Environment.WorkingSet);
            samples.Add(sample);
            framesLeft = peakFrames = -1;
            sampled?.Invoke(sample);
        }

        string? failure = null;
        do
        {
            Cycle cycle;
            try
            {
                cycle = RunCycle(options, cycles);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // What a soak is for (a resource that ran out after an hour): keep the samples so far.
                failure = $"platform {cycles + 1} failed: {e.Message}";
                break;
            }
            cycles++;
            translations += cycle.Translations;
            faulted += cycle.FaultedDmas;
            resent += cycle.Resent;
            framesLeft = Math.Max(framesLeft, cycle.FramesLeft);
            peakFrames = Math.Max(peakFrames, cycle.PeakFrames);
            if (samples.Count == 0)
            {
                Take("warm-up");
            }
            else if (!deadline.HasPassed && deadline.ElapsedSeconds >= nextSample)
            {
                Take("interval");
                while (nextSample <= deadline.ElapsedSeconds)
                    nextSample += options.IntervalSeconds;
            }
        }
        while (!deadline.HasPassed);
        Take("end");

        SoakVerdict verdict = Judge(samples);
        if (failure is not null)
            verdict = verdict with { Problems = [failure, .. verdict.Problems] };
        if (verdict.RssGrowthBytes is null)
            notes.Add($"RSS not judged: {samples.Count} samples, and it takes {2 * RssJudgedSamples + 1} (run longer than {2 * RssJudgedSamples} × --soak-interval).");
        return new SoakReport(options.Threads, deadline.ElapsedSeconds, options.IntervalSeconds, cycles, translations, faulted, resent, samples,
            verdict.RssGrowthBytes, verdict.RssToleranceBytes, verdict.Problems.Count == 0, verdict.Problems, notes);
    }

    /// <summary>What the samples say: each growth found, and the RSS figures behind the RSS verdict.</summary>
    internal sealed record SoakVerdict(IReadOnlyList<string> Problems, long? RssGrowthBytes, long RssToleranceBytes);

    /// <summary>
    /// Judges growth: any native bytes or reservations held with no platform alive (no tolerance);
    /// frames after a teardown above the warm-up cycle's (no tolerance); RSS, the median of the last
    /// three samples against the median of the first three after the warm-up, beyond
    /// max(64 MiB, 25 %) — judged only from seven samples, so the two groups never overlap.
    /// </summary>
    internal static SoakVerdict Judge(IReadOnlyList<SoakSample> samples)
    {
        var problems = new List<string>();
        SoakSample mostNative = samples.MaxBy(s => s.NativeBytes)!;
        if (mostNative.NativeBytes > 0 || samples.Any(s => s.NativeAllocations > 0))
        {
            problems.Add($"native memory grew: {mostNative.NativeBytes:N0} bytes ({samples.Max(s => s.NativeAllocations)} reservations) still held with no platform "
                + $"alive ({mostNative.Kind} sample at {mostNative.Seconds:F1} s); every dispose should return them all.");
        }
        long framesReference = samples[0].FramesInUseAfterTeardown;
        SoakSample mostFrames = samples.MaxBy(s => s.FramesInUseAfterTeardown)!;
        if (mostFrames.FramesInUseAfterTeardown > framesReference)
        {
            problems.Add($"frames in use after a VM's teardown grew from {framesReference:N0} (first cycle) to {mostFrames.FramesInUseAfterTeardown:N0} "
                + $"(by the {mostFrames.Kind} sample at {mostFrames.Seconds:F1} s): a VM's life left frames behind.");
        }
        if (samples.Count < 2 * RssJudgedSamples + 1)
            return new SoakVerdict(problems, null, RssToleranceFloor);
        long reference = Median(samples.Skip(1).Take(RssJudgedSamples));
        long recent = Median(samples.TakeLast(RssJudgedSamples));
        long tolerance = Math.Max(RssToleranceFloor, reference / 4);
        long growth = recent - reference;
        if (growth > tolerance)
        {
            problems.Add($"RSS grew by {growth / 1048576.0:F1} MiB (median of the last {RssJudgedSamples} samples against the first {RssJudgedSamples} after the warm-up), "
                + $"more than the {tolerance / 1048576.0:F1} MiB tolerance.");
        }
        return new SoakVerdict(problems, growth, tolerance);
    }

    private static long Median(IEnumerable<SoakSample> samples)
    {
        long[] rss = [.. samples.Select(s => s.RssBytes).Order()];
        return rss[rss.Length / 2];
    }

    private readonly record struct Cycle(long Translations, long FaultedDmas, long Resent, long FramesLeft, long PeakFrames);

    /// <summary>One platform's life: setup, a fixed burst (work, not time, so every cycle is alike), teardown.</summary>
    private static Cycle RunCycle(SoakOptions options, long index)
    {
        ulong seed = options.Seed + (ulong)index * 1024;
        using DmaRig rig = DmaRig.Create();
        DmaTraffic[] shares;
        if (options.Threads == 1)
        {
            var rng = new SplitMix64(seed);
            var traffic = new DmaTraffic(rig, new byte[DmaTraffic.GpuBurstBytes]);
            for (long r = 0; r < BurstRounds; r++)
            {
                traffic.Round(r, ref rng);
                rig.KvmOperation(ref rng);
            }
            shares = [traffic];
        }
        else
        {
            shares = DmaScenario.RunThreads(rig, options.Threads - 1, seed, RunDeadline.None, () =>
            {
                var rng = new SplitMix64(seed);
                for (int k = 0; k < BurstKvmOperations; k++)
                {
                    rig.KvmOperation(ref rng);
                    Thread.Yield();
                }
            }, roundsEach: BurstRounds);
        }
        long peak = (long)rig.Platform.Memory.Statistics.PeakFramesInUse;
        rig.TearDownVm();
        rig.Platform.Memory.Reclaim();
        long left = (long)rig.Platform.Memory.Statistics.FramesInUse;
        DmaTraffic.Counters[] all = [.. shares.SelectMany(s => new[] { s.Nic, s.Gpu, s.Nvme })];
        return new Cycle(all.Sum(c => c.Translations), all.Sum(c => c.Faults), all.Sum(c => c.Resent), left, peak);
    }

    /// <summary>A full, compacting collection (large objects too) with finalizers run, so RSS and the native counts are read at rest.</summary>
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    }
}
