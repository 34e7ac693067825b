using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// Queued invalidation never drops or overwrites work: whatever the number of descriptors one
/// <see cref="DmarUnit.Submit"/> carries, every one of them runs; and a guest driver programming
/// IQT itself cannot make the unit read outside its queue.
/// </summary>
public class QueueSubmissionTests
{
    /// <summary>
    /// A scalable-mode unit over a VM whose RAM is backed by 4 KiB frames, so every mapped page is
    /// one 4 KiB IOTLB entry, and an IOTLB large enough that nothing is evicted in these tests: a
    /// page that still translates after it was zapped can only be a stale IOTLB entry.
    /// </summary>
    private sealed class QueueFixture : IDisposable
    {
        public const ushort Did = 9;
        public static readonly ushort Sid = TranslationRequest.Bdf(0x12, 3, 0);

        public QueueFixture(bool wide, int queueOrder = 0)
        {
            Memory = new HostMemory(new HostMemoryOptions { Size = 1UL << 30, DisposeTimeout = TimeSpan.FromSeconds(5) });
            Vm = new Vm(Memory, new VmOptions { TdpLevels = 4, MaxHugePageLevel = 1 });
            Vm.AddMemslot(0, 0, 16UL << 20, PageSize.Size4K);
            Unit = new DmarUnit(Memory, new DmarUnitOptions { Cap = UnitFixture.ServerCap, Ecap = UnitFixture.ServerEcap, IotlbSets = 8192 });
            Tables = new TranslationTables(Memory, scalable: true);
            Tables.SetScalableContext(Sid);
            Tables.SetPasidEntry(Sid, 0, PasidEntry.SecondLevel(Vm.Tdp.RootHpa, 2, Did, pgsnp: true, pwsnp: true));
            Unit.SetRootTable(Tables.RootTable, scalable: true);
            Unit.SetTranslationEnabled(true);
            Queue = Memory.AllocateContiguous(1UL << queueOrder, 1);
            Unit.EnableQueuedInvalidation(Queue, queueOrder, wide);
            Shift = wide ? 5 : 4;
            Slots = (HostMemory.FrameSize << queueOrder) >> Shift;
        }

        public HostMemory Memory { get; }

        public Vm Vm { get; }

        public DmarUnit Unit { get; }

        public TranslationTables Tables { get; }

        public ulong Queue { get; }

        public int Shift { get; }

        public int Slots { get; }

        public TranslationResult Translate(ulong page) => Unit.Translate(new TranslationRequest(Sid, page << 12, Access.Read));

        public ulong Head => Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead) >> Shift;

        /// <summary>Writes a descriptor into ring slot <paramref name="index"/>, as a guest driver does.</summary>
        public void WriteSlot(int index, InvalidationDescriptor d)
        {
            Span<byte> slot = Memory.GetSpan(Queue + ((ulong)index << Shift), 1 << Shift);
            BitConverter.TryWriteBytes(slot, d.Qw0);
            BitConverter.TryWriteBytes(slot[8..], d.Qw1);
            if (Shift == 5)
            {
                BitConverter.TryWriteBytes(slot[16..], d.Qw2);
                BitConverter.TryWriteBytes(slot[24..], d.Qw3);
            }
        }

        public void Dispose()
        {
            Unit.Dispose();
            Vm.Dispose();
            Memory.Dispose();
        }
    }

    private static InvalidationDescriptor PageSelective(ulong page) => InvalidationDescriptor.Iotlb(3, QueueFixture.Did, page << 12);

    /// <summary>
    /// Maps pages [0, n), caches each in the IOTLB, zaps them in the EPT without telling the unit,
    /// then submits one page-selective invalidation per page in a single call: afterwards no page may
    /// still translate. Returns the failures, empty when every invalidation took effect.
    /// </summary>
    private static List<string> InvalidateAfterZap(QueueFixture f, int n)
    {
        var failures = new List<string>();
        f.Vm.Map(0, (ulong)n, Access.Read);
        for (int page = 0; page < n; page++)
        {
            if (!f.Translate((ulong)page).IsSuccess || !f.Translate((ulong)page).IotlbHit)
                failures.Add($"n={n}: page {page} was not cached before the zap");
        }
        f.Vm.Zap(0, (ulong)n);
        long processed = f.Unit.DescriptorsProcessed;
        var descriptors = new InvalidationDescriptor[n];
        for (int page = 0; page < n; page++)
            descriptors[page] = PageSelective((ulong)page);
        InvalidationQueueError error = f.Unit.Submit(descriptors);
        if (error != InvalidationQueueError.None)
            failures.Add($"n={n}: Submit answered {error}");
        if (f.Unit.DescriptorsProcessed - processed != n)
            failures.Add($"n={n}: {f.Unit.DescriptorsProcessed - processed} descriptors processed");
        int stale = 0;
        for (int page = 0; page < n; page++)
        {
            if (f.Translate((ulong)page).IsSuccess)
                stale++;
        }
        if (stale != 0)
            failures.Add($"n={n}: {stale} of {n} pages still translate after their invalidation (stale IOTLB entries)");
        return failures;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EverySubmissionSizeUpToFourQueuesInvalidatesEveryPage(bool wide)
    {
        using var f = new QueueFixture(wide);
        var failures = new List<string>();
        // Every size from 1 to 4 × slots: 1..1024 with 128-bit descriptors, 1..512 with 256-bit ones.
        for (int n = 1; n <= 4 * f.Slots; n++)
            failures.AddRange(InvalidateAfterZap(f, n));
        Assert.True(failures.Count == 0, $"{failures.Count} failures, first: {string.Join("; ", failures.Take(5))}");
        Assert.Equal(InvalidationQueueError.None, f.Unit.QueueError);
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    public void TheQueueBoundarySizesInvalidateEveryPage(bool wide, int order)
    {
        using var f = new QueueFixture(wide, order);
        int slots = f.Slots;
        var failures = new List<string>();
        foreach (int n in new[] { slots - 1, slots, slots + 1, 2 * slots - 1, 2 * slots, 2 * slots + 1, 3 * slots + 7 })
            failures.AddRange(InvalidateAfterZap(f, n));
        Assert.True(failures.Count == 0, string.Join("; ", failures.Take(5)));
    }

    [Fact]
    public void ALongSubmissionEndingInAWaitWritesTheStatusOnlyAfterEverythingBeforeIt()
    {
        using var f = new QueueFixture(wide: false);
        ulong status = f.Memory.AllocateFrame();
        int n = 3 * f.Slots + 5;
        var descriptors = new InvalidationDescriptor[n + 1];
        for (int page = 0; page < n; page++)
            descriptors[page] = PageSelective((ulong)page);
        descriptors[n] = InvalidationDescriptor.Wait(status, 0xAB);
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(descriptors));
        Assert.Equal(0xABUL, f.Memory.ReadEntry(status));
        Assert.Equal(n + 1, f.Unit.DescriptorsProcessed);
        Assert.Equal((ulong)((n + 1) % f.Slots), f.Head);
    }

    [Fact]
    public void ALongSubmissionStopsAtABadDescriptorAndRunsNothingBehindIt()
    {
        using var f = new QueueFixture(wide: false);
        ulong status = f.Memory.AllocateFrame();
        int bad = f.Slots + 10;
        var descriptors = new InvalidationDescriptor[2 * f.Slots];
        for (int i = 0; i < descriptors.Length; i++)
            descriptors[i] = PageSelective((ulong)i);
        descriptors[bad] = new InvalidationDescriptor(0xF, 0);
        descriptors[^1] = InvalidationDescriptor.Wait(status, 1);
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, f.Unit.Submit(descriptors));
        Assert.Equal(bad, f.Unit.DescriptorsProcessed);
        Assert.Equal((ulong)(bad % f.Slots), f.Head);
        Assert.Equal(0UL, f.Memory.ReadEntry(status));
        // While the queue is stopped a further submission queues nothing and says why.
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, f.Unit.Submit(InvalidationDescriptor.Wait(status, 2)));
        Assert.Equal(0UL, f.Memory.ReadEntry(status));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AGuestThatFillsEverySlotHasWrittenAnEmptyQueue(bool wide)
    {
        // Tail == head means empty (the spec's rule), so a driver can use at most slots − 1 entries:
        // writing all of them and moving IQT back onto IQH submits nothing, and corrupts nothing.
        using var f = new QueueFixture(wide);
        ulong status = f.Memory.AllocateFrame();
        for (int i = 0; i < f.Slots; i++)
            f.WriteSlot(i, InvalidationDescriptor.Wait(status, (uint)i + 1));
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0);
        Assert.Equal(0, f.Unit.DescriptorsProcessed);
        Assert.Equal(0UL, f.Memory.ReadEntry(status));
        Assert.Equal(InvalidationQueueError.None, f.Unit.QueueError);

        // slots − 1 entries is a full queue, and all of them run.
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, (ulong)(f.Slots - 1) << f.Shift);
        Assert.Equal(f.Slots - 1, f.Unit.DescriptorsProcessed);
        Assert.Equal((ulong)(f.Slots - 1), f.Memory.ReadEntry(status));
        Assert.Equal((ulong)(f.Slots - 1), f.Head);

        // Wrapping: the next write of IQT runs the slot left over and continues from slot 0.
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 2UL << f.Shift);
        Assert.Equal(f.Slots + 2, f.Unit.DescriptorsProcessed);
        Assert.Equal(2UL, f.Memory.ReadEntry(status));
        Assert.Equal(InvalidationQueueError.None, f.Unit.QueueError);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATailBeyondTheQueueStopsItInsteadOfWrapping(bool wide)
    {
        using var f = new QueueFixture(wide);
        ulong status = f.Memory.AllocateFrame();
        for (int i = 0; i < f.Slots; i++)
            f.WriteSlot(i, InvalidationDescriptor.Wait(status, (uint)i + 1));
        // IQT can hold indexes of the largest queue; this one has only Slots entries.
        ulong beyond = (ulong)(f.Slots + 44) << f.Shift;
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, beyond);
        Assert.Equal(beyond, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueTail));
        Assert.Equal(InvalidationQueueError.TailBeyondQueue, f.Unit.QueueError);
        Assert.Equal(0, f.Unit.DescriptorsProcessed);
        Assert.Equal(0UL, f.Memory.ReadEntry(status));

        // Software puts a valid tail back and clears IQE: the queue resumes at IQH.
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 3UL << f.Shift);
        Assert.Equal(0, f.Unit.DescriptorsProcessed);
        f.Unit.WriteRegister(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusIqe);
        Assert.Equal(InvalidationQueueError.None, f.Unit.QueueError);
        Assert.Equal(3, f.Unit.DescriptorsProcessed);
        Assert.Equal(3UL, f.Memory.ReadEntry(status));
    }

    [Fact]
    public void SubmitRefusesAQueueThatIsNotEnabled()
    {
        using var f = new QueueFixture(wide: false);
        f.Unit.WriteRegister(RegisterOffsets.GlobalCommand, 4, (uint)GlobalCommand.TranslationEnable);
        Assert.Equal(0UL, f.Unit.Registers.Get(RegisterOffsets.GlobalStatus) & (ulong)GlobalCommand.QueuedInvalidationEnable);
        var e = Assert.Throws<InvalidOperationException>(() => f.Unit.Submit(PageSelective(0)));
        Assert.Contains("QIE", e.Message);
    }

    [Fact]
    public void SubmitRefusesAQueueOutsideAllocatedHostMemory()
    {
        using var f = new QueueFixture(wide: false);
        // A guest may program IQA anywhere; Submit must not write descriptors there.
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueAddress, 8, f.Memory.EndHpa);
        var e = Assert.Throws<InvalidOperationException>(() => f.Unit.Submit(PageSelective(0)));
        Assert.Contains("IQA_REG", e.Message);
        ulong freeFrame = f.Memory.EndHpa - HostMemory.FrameSize;
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueAddress, 8, freeFrame);
        Assert.Throws<InvalidOperationException>(() => f.Unit.Submit(PageSelective(0)));
        Assert.Equal(FrameState.Fresh, f.Memory.GetFrameState(freeFrame));
    }

    [Fact]
    public void AHandlerThatSubmitsFromInsideTheQueueDoesNotRerunTheDescriptorItWasCalledFor()
    {
        using var f = new QueueFixture(wide: false);
        ulong status = f.Memory.AllocateFrame();
        int calls = 0;
        f.Unit.DeviceTlbInvalidated += _ =>
        {
            // Bounded so a unit that re-processes the current descriptor fails instead of recursing forever.
            if (++calls <= 3)
                Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(InvalidationDescriptor.Wait(status, (uint)calls)));
        };
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(
            InvalidationDescriptor.DeviceTlb(QueueFixture.Sid, 0x1000),
            InvalidationDescriptor.Wait(status, 100)));
        Assert.Equal(1, calls);
        // Queue order: the outer wait (100) ran before the one the handler appended (1).
        Assert.Equal(1UL, f.Memory.ReadEntry(status));
        Assert.Equal(3, f.Unit.DescriptorsProcessed);
        Assert.Equal(3UL, f.Head);
    }
}
