using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Engine.Diagnostics;
using Engine.Dma;
using Engine.Iommu;
using Engine.Trace;

namespace Engine.Cli.Scenarios;

/// <summary>What the DMA scenario is asked to do.</summary>
/// <param name="Record">A trace file to record the run to (one thread only), or null.</param>
/// <param name="CheckpointAt">One thread only: save a checkpoint to <paramref name="CheckpointFile"/> before this round (0-based), then run on.</param>
/// <param name="CheckpointFile">Where <paramref name="CheckpointAt"/> saves.</param>
/// <param name="Restore">One thread only: a checkpoint to continue from (its seed and rounds replace <paramref name="Seed"/> and the rounds <paramref name="Seconds"/> asks for).</param>
internal sealed record DmaScenarioOptions(double Seconds, int Threads, ulong Seed, string? Record = null, long? CheckpointAt = null, string? CheckpointFile = null,
    string? Restore = null);

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
        if ((options.CheckpointAt is not null || options.Restore is not null) && (options.Threads != 1 || options.Record is not null))
            throw new ArgumentException("checkpoints need one thread and no --record: only then is the run one deterministic sequence of rounds.", nameof(options));
        RunState? restored = null;
        using DmaRig rig = options.Restore is null ? DmaRig.Create() : LoadRig(options.Restore, out restored);
        ulong seed = restored?.Seed ?? options.Seed;
        // With checkpoints the DMAs run as a recorded run's do (TraceDma), into no file, so the run has
        // the trace's checksum over every translation result to compare with.
        using TraceRecorder? recorder = options.Record is not null
            ? new TraceRecorder(rig, new TraceWriter(File.Create(options.Record), DmaRig.Describe($"engine run --threads 1 --seed {options.Seed} --seconds {options.Seconds}")), options.Record)
            : options.CheckpointAt is not null || restored is not null
                ? new TraceRecorder(rig, new TraceWriter(Stream.Null, DmaRig.Describe($"engine run --threads 1 --seed {seed}")), "(not recorded: checkpoint run)")
                : null;
        if (restored is not null)
        {
            recorder!.Tally = restored.Tally;
            recorder.RecordsBefore = restored.Records;
            notes.Add($"continued from the checkpoint {options.Restore} at round {restored.NextRound:N0} of {restored.TotalRounds:N0} (seed {seed}).");
        }
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
            var rng = new SplitMix64(seed);
            var traffic = new DmaTraffic(rig, new byte[DmaTraffic.GpuBurstBytes]);
            shares = [traffic];
            long total = restored?.TotalRounds ?? (long)Math.Ceiling(options.Seconds * RoundsPerScenarioSecond);
            long first = 0;
            if (restored is not null)
            {
                rng.State = restored.Rng;
                RunState.Into(restored.Nic, traffic.Nic);
                RunState.Into(restored.Gpu, traffic.Gpu);
                RunState.Into(restored.Nvme, traffic.Nvme);
                traffic.Rounds = restored.TrafficRounds;
                kvmOperations = restored.KvmOperations;
                first = restored.NextRound;
            }
            planned = total;
            bool saved = false;
            void SaveCheckpoint(long round)
            {
                var started = Stopwatch.StartNew();
                var state = new RunState
                {
                    Seed = seed, Seconds = options.Seconds, TotalRounds = total, NextRound = round, Rng = rng.State, KvmOperations = kvmOperations,
                    KvmStarted = rig.KvmStarted, KvmFinished = rig.KvmFinished, Records = recorder!.Records, Tally = recorder.Tally,
                    Nic = RunState.Of(traffic.Nic), Gpu = RunState.Of(traffic.Gpu), Nvme = RunState.Of(traffic.Nvme), TrafficRounds = traffic.Rounds,
                };
                RunCheckpoint.Save(options.CheckpointFile!, state, rig.Platform);
                saved = true;
                notes.Add($"checkpoint saved to {options.CheckpointFile} before round {round:N0} ({new FileInfo(options.CheckpointFile!).Length:N0} bytes in {started.Elapsed.TotalSeconds:F2} s); "
                    + $"`engine run --restore {options.CheckpointFile}` continues from there to the same counts and checksum.");
            }
            for (long r = first; r < total; r++)
            {
                if (r == options.CheckpointAt)
                    SaveCheckpoint(r);
                if (r > first && deadline.HasPassed)
                    break;
                traffic.Round(r, ref rng);
                rig.KvmOperation(ref rng);
                kvmOperations++;
                if ((r & 63) == 0)
                    progress?.Invoke((double)r / total);
            }
            if (options.CheckpointAt == traffic.Rounds && traffic.Rounds == total)
                SaveCheckpoint(total);
            if (options.CheckpointAt is { } at && !saved)
                notes.Add($"no checkpoint was saved: the run ended after {traffic.Rounds:N0} rounds, before round {at:N0}.");
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

    private static DmaRig LoadRig(string file, out RunState? state)
    {
        (RunState s, Engine.Control.Platform platform) = RunCheckpoint.Load(file);
        state = s;
        return DmaRig.FromLoaded(platform, s.KvmStarted, s.KvmFinished);
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
