using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Memory;

/// <summary>
/// Reuse-under-reader is the bug lock-free reclamation ships (Garnet's LightEpoch, three times).
/// Freed frames are poisoned, so a walker that reaches a reclaimed table reads 0xDB… entries:
/// present with reserved bits set, or a translation to a wrong frame. Neither may ever be seen.
/// </summary>
public class EpochReclamationStressTests
{
    [Fact]
    public unsafe void TheDetectorSeesPoisonWhenAReaderIsNotProtected()
    {
        // Negative control: without protection, a reclaimed table frame really is poisoned under
        // a reader that still holds its address, so the stress test below can fail.
        using var memory = TestMemory.Create(64, poison: true, reclaimThreshold: 1_000_000);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 1 });
        vm.AddMemslot(0, 0, 2UL << 20);
        vm.Map(0, 512, Access.All);
        ulong pdEntry = WalkTo(memory, vm, 0, level: 2);
        ulong pt = pdEntry & EptEntry.AddressMask;

        vm.Zap(0, 512);
        Assert.Equal(FrameState.Retired, memory.GetFrameState(pt));
        Assert.Equal(1, memory.Reclaim());
        Assert.Equal(HostMemory.PoisonWord, Volatile.Read(ref memory.EntryRef(pt)));
    }

    [Fact]
    public unsafe void AProtectedReaderKeepsTheUnlinkedTableIntact()
    {
        using var memory = TestMemory.Create(64, poison: true, reclaimThreshold: 1_000_000);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 1 });
        vm.AddMemslot(0, 0, 2UL << 20);
        vm.Map(0, 512, Access.All);
        ulong pt = WalkTo(memory, vm, 0, level: 2) & EptEntry.AddressMask;
        ulong before = Volatile.Read(ref memory.EntryRef(pt));

        using var inside = new ManualResetEventSlim();
        using var leave = new ManualResetEventSlim();
        var reader = new Thread(() =>
        {
            using (memory.Epochs.Enter())
            {
                inside.Set();
                leave.Wait(TestContext.Current.CancellationToken);
            }
        });
        reader.Start();
        inside.Wait(TestContext.Current.CancellationToken);
        vm.Zap(0, 512);
        Assert.Equal(0, memory.Reclaim());
        Assert.Equal(before, Volatile.Read(ref memory.EntryRef(pt)));
        leave.Set();
        reader.Join();
        Assert.Equal(1, memory.Reclaim());
    }

    [Fact]
    public void WalkersNeverSeePoisonWhileTablesAreUnlinkedReclaimedAndReused()
    {
        using var memory = TestMemory.Create(2048, poison: true, reclaimThreshold: 4);
        using var vm = new Vm(memory, new VmOptions { MaxHugePageLevel = 2 });
        const ulong SmallPages = 8 * 512;               // 16 MiB mapped at 4K: one PT per 2 MiB
        const ulong HugeBase = 1UL << 18, HugePages = 1UL << 18; // 1 GiB at 1 GiB mapped at 2M: one PD
        vm.AddMemslot(0, 0, SmallPages << 12, PageSize.Size4K);
        vm.AddMemslot(1, HugeBase << 12, HugePages << 12, PageSize.Size2M);
        vm.Map(0, SmallPages, Access.All);
        vm.Map(HugeBase, HugePages, Access.All);
        Func<ulong, ulong> expected = gfn => vm.FindSlot(gfn)!.PeekHpa(gfn);
        var expectedSmall = Enumerable.Range(0, (int)SmallPages).Select(i => expected((ulong)i)).ToArray();
        ulong hugeBacking = expected(HugeBase);

        var failures = new List<string>();
        long walks = 0, hits = 0;
        bool stop = false;
        WalkerConfig config = vm.Tdp.WalkerConfig;
        var readers = Enumerable.Range(0, 3).Select(seed => new Thread(() =>
        {
            var rng = new Random(seed);
            long myHits = 0;
            while (!Volatile.Read(ref stop))
            {
                using (memory.Epochs.Enter())
                {
                    for (int k = 0; k < 256; k++)
                    {
                        bool small = (k & 1) == 0;
                        ulong gfn = small ? (ulong)rng.NextInt64((long)SmallPages) : HugeBase + (ulong)rng.NextInt64((long)HugePages);
                        ulong gpa = (gfn << 12) | (uint)rng.Next(4096);
                        WalkResult r = PageWalker.Walk(memory, config, vm.Tdp.RootHpa, 4, gpa, Access.Read);
                        ulong want = (small ? expectedSmall[gfn] : hugeBacking + ((gfn - HugeBase) << 12)) | (gpa & 0xfff);
                        if (r.IsSuccess ? r.Hpa != want : r.Fault != WalkFault.NotPresent)
                        {
                            lock (failures)
                                failures.Add($"GPA 0x{gpa:x}: {r} (expected 0x{want:x} or not present)");
                        }
                        myHits += r.IsSuccess ? 1 : 0;
                    }
                }
                // Published per round of 256: the writer stops on them.
                Interlocked.Add(ref walks, 256);
                Interlocked.Add(ref hits, myHits);
                myHits = 0;
            }
        })).ToList();
        readers.ForEach(r => r.Start());

        // The writer runs for 2 s and until the readers and the reclaimer have done enough (not for a
        // fixed time alone: CI is loaded), with a generous cap so a starved thread fails the test
        // instead of hanging it.
        var writerRng = new Random(42);
        var deadline = DateTime.UtcNow.AddSeconds(2);
        var cap = DateTime.UtcNow.AddSeconds(60);
        int cycles = 0;
        while ((DateTime.UtcNow < deadline || Volatile.Read(ref walks) <= 10_000 || Volatile.Read(ref hits) == 0 || memory.Statistics.ReclaimedFrames <= 100)
            && DateTime.UtcNow < cap)
        {
            ulong region = (ulong)writerRng.Next(8) * 512;
            vm.Zap(region, 512);                 // unlinks that 2 MiB's page table
            vm.Map(region, 512, Access.All);      // a new (possibly reclaimed) one replaces it
            if (cycles++ % 8 == 0)
            {
                vm.Zap(HugeBase, HugePages);       // unlinks the whole page directory
                vm.Map(HugeBase, HugePages, Access.All);
            }
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(r => r.Join());

        Assert.True(failures.Count == 0, $"{failures.Count} bad walks, first: {failures.FirstOrDefault()}");
        Assert.True(memory.Statistics.ReclaimedFrames > 100, $"only {memory.Statistics.ReclaimedFrames} frames were reclaimed: the test did not exercise reuse");
        Assert.True(hits > 0 && walks > 10_000, $"readers did too little: {walks} walks, {hits} hits");
    }

    private static ulong WalkTo(HostMemory memory, Vm vm, ulong gfn, int level)
    {
        ulong table = vm.Tdp.RootHpa;
        for (int l = vm.Tdp.Levels; ; l--)
        {
            ulong entry = memory.ReadEntry(table + (((gfn >> (9 * (l - 1))) & 511) << 3));
            if (l == level)
                return entry;
            table = entry & EptEntry.AddressMask;
        }
    }
}
