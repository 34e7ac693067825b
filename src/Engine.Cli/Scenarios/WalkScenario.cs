using System.Diagnostics;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Cli.Scenarios;

/// <summary>What the walk scenario is asked to do.</summary>
internal sealed record WalkScenarioOptions(double Seconds, int Threads, ulong Seed, int GuestGiB, int Addresses);

/// <summary>What the walk scenario measured.</summary>
/// <param name="SetupSeconds">From the command's start to the end of the guest's setup.</param>
/// <param name="Seconds">The walking phase (the rates are over it).</param>
/// <param name="Notes">What a reader needs to know to trust the figures (empty when nothing unusual happened).</param>
internal sealed record WalkScenarioReport(
    int Threads,
    double SetupSeconds,
    double Seconds,
    long Walks,
    double WalksPerSecond,
    double NsPerWalkPerThread,
    long Faults,
    ulong Checksum,
    long CompletePasses,
    long InconsistentPasses,
    long Leaves2M,
    long Leaves4K,
    long TablePages,
    ulong HostFramesInUse,
    IReadOnlyList<string> Notes);

/// <summary>
/// The first version of the main job: a VM with a 4 GiB guest (the lower half backed and mapped
/// with 2 MiB pages, the upper half with 4 KiB pages), its EPT exported, and every core walking
/// random guest addresses through the IOMMU's second-stage view of it with the scalar walker.
/// </summary>
internal static class WalkScenario
{
    private const int ChunkWalks = 4096;

    public static WalkScenarioReport Run(WalkScenarioOptions options, RunDeadline deadline, Action<double>? progress = null)
    {
        var notes = new List<string>();
        if (DmaScenario.CoreNote(options.Threads) is { } cores)
            notes.Add(cores);
        ulong guestBytes = (ulong)options.GuestGiB << 30;
        using var memory = new HostMemory(new HostMemoryOptions { Size = guestBytes + (1UL << 30) });
        using var vm = new Vm(memory, new VmOptions { TdpLevels = 4, MaxHugePageLevel = 3, Name = "run" });
        ulong half = guestBytes / 2;
        vm.AddMemslot(0, 0, half, PageSize.Size2M);
        vm.AddMemslot(1, half, guestBytes - half, PageSize.Size4K);
        vm.Map(0, guestBytes >> HostMemory.FrameShift, Access.All);
        using KvmTdpFd export = vm.ExportTdp();
        ExportedTdp tdp = export.Metadata;

        // The IOMMU's view of KVM's tables: VT-d second stage, 1 GiB superpages, snoop control.
        WalkerConfig config = WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2);
        var rng = new SplitMix64(options.Seed);
        var addresses = new ulong[options.Addresses];
        for (int i = 0; i < addresses.Length; i++)
            addresses[i] = rng.Next() % guestBytes;

        ulong reference = 0;
        long faults = 0;
        using (memory.Epochs.Enter())
        {
            foreach (ulong gpa in addresses)
            {
                WalkResult r = PageWalker.Walk(memory, config, tdp.RootHpa, tdp.Level, gpa, Access.Read);
                reference += r.Hpa;
                faults += r.IsSuccess ? 0 : 1;
            }
        }

        double setupSeconds = deadline.ElapsedSeconds;
        if (deadline.HasPassed)
            notes.Add($"setup took {setupSeconds:F2} s, more than the {deadline.BudgetSeconds:G4} s asked: each thread walked one chunk of {ChunkWalks} addresses.");

        long walks = 0, passes = 0, inconsistent = 0;
        var stop = false;
        var threads = new Thread[options.Threads];
        // The threads wait at a gate until all are made (see DmaScenario.RunThreads for why).
        using var gate = new ManualResetEventSlim(false);
        for (int t = 0; t < threads.Length; t++)
        {
            int start = (int)((long)addresses.Length * t / threads.Length);
            threads[t] = new Thread(() =>
            {
                gate.Wait();
                long myWalks = 0, myPasses = 0, myBad = 0;
                ulong sum = 0;
                int index = start, done = 0;
                do
                {
                    // Leave the protected region between chunks so reclamation is never held up long.
                    using (memory.Epochs.Enter())
                    {
                        for (int k = 0; k < ChunkWalks; k++)
                        {
                            sum += PageWalker.Walk(memory, config, tdp.RootHpa, tdp.Level, addresses[index], Access.Read).Hpa;
                            if (++index == addresses.Length)
                                index = 0;
                            if (++done == addresses.Length)
                            {
                                myPasses++;
                                myBad += sum == reference ? 0 : 1;
                                sum = 0;
                                done = 0;
                            }
                        }
                    }
                    myWalks += ChunkWalks;
                }
                while (!Volatile.Read(ref stop) && !deadline.HasPassed);
                Interlocked.Add(ref walks, myWalks);
                Interlocked.Add(ref passes, myPasses);
                Interlocked.Add(ref inconsistent, myBad);
            }) { IsBackground = true, Name = $"walker-{t}" };
            threads[t].Start();
        }

        var stopwatch = Stopwatch.StartNew();
        gate.Set();
        while (!deadline.HasPassed)
        {
            Thread.Sleep(Math.Max(1, (int)Math.Min(100, deadline.RemainingSeconds * 1000)));
            progress?.Invoke(Math.Min(1, deadline.ElapsedSeconds / deadline.BudgetSeconds));
        }
        Volatile.Write(ref stop, true);
        foreach (Thread thread in threads)
            thread.Join();
        double seconds = stopwatch.Elapsed.TotalSeconds;

        var (leaves2M, leaves4K) = CountLeaves(memory, tdp);
        return new WalkScenarioReport(
            options.Threads, setupSeconds, seconds, walks, walks / seconds, seconds * 1e9 * options.Threads / Math.Max(1, walks),
            faults, reference, passes, inconsistent, leaves2M, leaves4K, vm.Tdp.Statistics.TablePages,
            memory.Statistics.FramesInUse, notes);
    }

    private static (long Leaves2M, long Leaves4K) CountLeaves(HostMemory memory, ExportedTdp tdp)
    {
        long l2 = 0, l1 = 0;
        void Visit(ulong table, int level)
        {
            for (int i = 0; i < PageSizes.EntriesPerTable; i++)
            {
                var entry = new EptEntry(memory.ReadEntry(table + (ulong)i * 8));
                if (!entry.IsPresent)
                    continue;
                if (level == 1)
                    l1++;
                else if (entry.IsLargePage)
                    l2 += level == 2 ? 1 : 0;
                else
                    Visit(entry.Address, level - 1);
            }
        }
        Visit(tdp.RootHpa, tdp.Level);
        return (l2, l1);
    }
}
