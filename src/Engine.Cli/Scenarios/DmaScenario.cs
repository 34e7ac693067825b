using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Engine.Diagnostics;
using Engine.Dma;
using Engine.Iommu;
using Engine.Trace;

namespace Engine.Cli.Scenarios;

/// <summary>What the DMA scenario is asked to do.</summary>
/// <param name="Record">A trace file to record the run to (one thread only), or null.</param>
internal sealed record DmaScenarioOptions(double Seconds, int Threads, ulong Seed, string? Record = null);

/// <summary>One device's share of the run.</summary>
/// <param name="PageRequestsResent">
/// Page requests the device sent again because its retry after a served page request faulted again.
/// </param>
/// <param name="ResentDuringKvmChange">Of those, the ones where a KVM operation ran while the DMA was in flight.</param>
/// <param name="Faults">DMAs that still ended faulted (after <see cref="DmaTraffic.MaxPageRequestsPerPage"/> page requests for a page).</param>
internal sealed record DeviceReport(
    string Name, string Pattern, long DmaOperations, long Bytes, long Translations, long PageRequests,
    long PageRequestsResent, long ResentDuringKvmChange, long Faults);

/// <summary>What the DMA scenario measured.</summary>
/// <param name="SetupSeconds">From the command's start to the end of the platform's setup.</param>
/// <param name="Seconds">The DMA phase (the rates are over it).</param>
/// <param name="RoundsPlanned">One thread only: the rounds <c>--seconds</c> asked for (fewer ran when the deadline came first).</param>
/// <param name="Faults">Translation faults the IOMMUs recorded (each one a page the devices then asked for).</param>
/// <param name="Notes">What a reader needs to know to trust the figures (empty when nothing unusual happened).</param>
internal sealed record DmaScenarioReport(
    int Threads,
    double SetupSeconds,
    double Seconds,
    long Rounds,
    long? RoundsPlanned,
    long Translations,
    double TranslationsPerSecond,
    double IotlbHitRate,
    long Walks,
    long Faults,
    long PageRequestsServed,
    long PageRequestsFailed,
    long Invalidations,
    long KvmOperations,
    IReadOnlyList<DeviceReport> Devices,
    IReadOnlyList<string> Notes,
    TraceSummary? Trace = null);

/// <summary>
/// The main job: a VM whose EPT is shared with two server IOMMUs through a KVM domain; a NIC
/// streaming 2 KiB packets through a ring, an NVMe doing random 4 KiB reads (DMA writes into the
/// guest), a GPU reading 2 MiB bursts; DMA on every thread while KVM write-protects (migration),
/// zaps (balloon) and re-maps ranges, with IO page faults served through PRI.
/// </summary>
/// <remarks>
/// Work comes in rounds (each device's burst, then one KVM operation in one-thread mode). With
/// more threads, DMA threads run rounds until the deadline while a KVM thread mutates the tables
/// concurrently. With one thread the run is <c>seconds × 1000</c> rounds in a fixed order, so the
/// same seed gives the same counts; the rate is then wall-clock over those rounds, and a machine
/// too slow to finish them by the deadline stops early and says so.
/// </remarks>
internal static class DmaScenario
{
    private const int RoundsPerScenarioSecond = 1000;

    public static DmaScenarioReport Run(DmaScenarioOptions options, RunDeadline deadline, Action<double>? progress = null)
    {
        var notes = new List<string>();
        if (CoreNote(options.Threads) is { } cores)
            notes.Add(cores);
        if (options.Record is not null && options.Threads != 1)
            throw new ArgumentException("recording needs one thread: with more, the order of DMA and KVM operations is the scheduler's, and no single stream reproduces it.", nameof(options));
        using DmaRig rig = DmaRig.Create();
        using TraceRecorder? recorder = options.Record is null ? null
            : new TraceRecorder(rig, new TraceWriter(File.Create(options.Record), DmaRig.Describe($"engine run --threads 1 --seed {options.Seed} --seconds {options.Seconds}")), options.Record);
        rig.Recorder = recorder;
        using MetricsRegistration metrics = EngineMetrics.Track(rig.Platform);
        metrics.Track(rig.Domain);
        double setupSeconds = deadline.ElapsedSeconds;
        if (deadline.HasPassed)
            notes.Add($"setup took {setupSeconds:F2} s, more than the {deadline.BudgetSeconds:G4} s asked: the DMA phase was cut to one round per thread.");

        var phase = Stopwatch.StartNew();
        DmaTraffic[] shares;
        long kvmOperations = 0;
        long? planned = null;
        if (options.Threads == 1)
        {
            var rng = new SplitMix64(options.Seed);
            var traffic = new DmaTraffic(rig, new byte[DmaTraffic.GpuBurstBytes]);
            shares = [traffic];
            long total = (long)Math.Ceiling(options.Seconds * RoundsPerScenarioSecond);
            planned = total;
            for (long r = 0; r < total; r++)
            {
                if (r > 0 && deadline.HasPassed)
                    break;
                traffic.Round(r, ref rng);
                rig.KvmOperation(ref rng);
                kvmOperations++;
                if ((r & 63) == 0)
                    progress?.Invoke((double)r / total);
            }
            if (traffic.Rounds < total)
            {
                notes.Add($"stopped at the --seconds deadline after {traffic.Rounds:N0} of {total:N0} rounds (this machine ran fewer than "
                    + $"{RoundsPerScenarioSecond} rounds a second): the same seed gives the same counts only when every round ran.");
            }
        }
        else
        {
            shares = RunThreads(rig, options.Threads - 1, options.Seed, deadline, () =>
            {
                // This thread is KVM: migration-like write-protects, balloon-like zaps, re-maps. It always
                // does one operation, so a run cut short by its setup still has KVM in its figures.
                var kvmRng = new SplitMix64(options.Seed);
                phase.Restart();
                do
                {
                    rig.KvmOperation(ref kvmRng);
                    kvmOperations++;
                    progress?.Invoke(Math.Min(1, deadline.ElapsedSeconds / deadline.BudgetSeconds));
                    if (deadline.HasPassed)
                        break;
                    Thread.Sleep(1);
                }
                while (!deadline.HasPassed);
            });
            // It sleeps 1 ms between operations, so about a thousand a second when it gets a CPU.
            double phaseSeconds = phase.Elapsed.TotalSeconds;
            if (kvmOperations < phaseSeconds * RoundsPerScenarioSecond / 10)
            {
                notes.Add($"the KVM thread did only {kvmOperations:N0} operation(s) in {phaseSeconds:F2} s (about {RoundsPerScenarioSecond:N0} a second "
                    + "when it gets a CPU): the DMA threads left it little time, so the tables changed less than the scenario intends.");
            }
        }
        double seconds = phase.Elapsed.TotalSeconds;
        TraceSummary? trace = recorder?.Complete();

        long translations = shares.Sum(s => s.Nic.Translations + s.Gpu.Translations + s.Nvme.Translations);
        long walks = rig.Dmar0.Unit.IotlbMisses + rig.Dmar1.Unit.IotlbMisses;
        DeviceReport[] devices =
        [
            DeviceReportOf("nic", "2 KiB packets through a 256-entry ring", shares.Select(s => s.Nic)),
            DeviceReportOf("gpu", "2 MiB read bursts", shares.Select(s => s.Gpu)),
            DeviceReportOf("nvme", "random 4 KiB reads into guest memory", shares.Select(s => s.Nvme)),
        ];
        notes.AddRange(RecoveryNotes(devices));
        return new DmaScenarioReport(
            options.Threads, setupSeconds, seconds, shares.Sum(s => s.Rounds), planned, translations, translations / seconds,
            translations == 0 ? 0 : Math.Max(0, 1.0 - (double)walks / translations), walks,
            rig.Dmar0.Unit.Faults + rig.Dmar1.Unit.Faults, rig.Domain.PageRequestsServed, rig.Domain.PageRequestsFailed, rig.Domain.Invalidations,
            kvmOperations, devices, notes, trace);
    }

    /// <summary>
    /// Runs <paramref name="dmaThreads"/> DMA threads, each one round at least and then rounds until
    /// <paramref name="deadline"/> (or while <paramref name="roundsEach"/> lasts), while
    /// <paramref name="kvm"/> runs on the calling thread; returns each thread's traffic.
    /// </summary>
    /// <remarks>
    /// The threads wait at a gate until all are made: started one by one while the earlier ones
    /// already spin, 127 threads on 2 cores took most of a minute to start. A worker's exception is
    /// rethrown here after every thread has stopped, rather than killing the process.
    /// </remarks>
    internal static DmaTraffic[] RunThreads(DmaRig rig, int dmaThreads, ulong seed, RunDeadline deadline, Action kvm, long roundsEach = long.MaxValue)
    {
        bool stop = false;
        ExceptionDispatchInfo? failure = null;
        // One sink for every thread's GPU reads: nothing reads it, and 2 MiB per thread adds up at 255 threads.
        byte[] burst = new byte[DmaTraffic.GpuBurstBytes];
        var shares = new DmaTraffic[dmaThreads];
        var workers = new Thread[dmaThreads];
        using var gate = new ManualResetEventSlim(false);
        for (int t = 0; t < dmaThreads; t++)
        {
            var share = shares[t] = new DmaTraffic(rig, burst);
            ulong threadSeed = seed + (ulong)t + 1;
            workers[t] = new Thread(() =>
            {
                try
                {
                    gate.Wait();
                    var rng = new SplitMix64(threadSeed);
                    do
                        share.Round(share.Rounds, ref rng);
                    while (share.Rounds < roundsEach && !Volatile.Read(ref stop) && !deadline.HasPassed);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
                    Volatile.Write(ref stop, true);
                }
            }) { IsBackground = true, Name = $"dma-{t}" };
            workers[t].Start();
        }
        gate.Set();
        try
        {
            kvm();
        }
        finally
        {
            Volatile.Write(ref stop, true);
            foreach (Thread w in workers)
                w.Join();
        }
        failure?.Throw();
        return shares;
    }

    /// <summary>A note when the threads outnumber the cores, or null.</summary>
    internal static string? CoreNote(int threads) => threads <= Environment.ProcessorCount ? null
        : $"{threads} threads on {Environment.ProcessorCount} cores: the threads take turns on the CPUs, so the rates measure the scheduler as much as the engine.";

    private static DeviceReport DeviceReportOf(string name, string pattern, IEnumerable<DmaTraffic.Counters> parts)
    {
        var sum = new DmaTraffic.Counters();
        foreach (DmaTraffic.Counters c in parts)
            sum.Add(c);
        return new DeviceReport(name, pattern, sum.Operations, sum.Bytes, sum.Translations, sum.PageRequests, sum.Resent, sum.ResentDuringKvmChange, sum.Faults);
    }

    private static IEnumerable<string> RecoveryNotes(IReadOnlyList<DeviceReport> devices)
    {
        long resent = devices.Sum(d => d.PageRequestsResent);
        long duringKvm = devices.Sum(d => d.ResentDuringKvmChange);
        long faulted = devices.Sum(d => d.Faults);
        if (resent > 0)
        {
            var parts = new List<string>();
            if (duringKvm > 0)
                parts.Add($"{duringKvm:N0} while KVM was changing the tables (it zapped or write-protected the page again between the page request and the retry)");
            if (resent > duringKvm)
            {
                parts.Add($"{resent - duringKvm:N0} with no KVM operation in flight (the page request was served, but its response reached the device "
                    + "only after the device had stopped waiting: with several DMA threads on one IOMMU, another thread can drain and serve it)");
            }
            yield return $"{resent:N0} page request(s) sent again because the retry after a page request faulted again: {string.Join("; ", parts)}.";
        }
        if (faulted > 0)
            yield return $"{faulted:N0} DMA(s) still faulted after {DmaTraffic.MaxPageRequestsPerPage} page requests for the same page.";
    }
}
