using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

public class InvalidationTests
{
    private static ulong IotlbReg(UnitFixture f) => (ulong)f.Unit.Ecap.IotlbRegisterOffset + 8;

    [Fact]
    public void RegisterBasedIotlbInvalidationReportsTheGranularityItPerformed()
    {
        using var f = new UnitFixture(scalable: false);
        f.Vm.Map(0, 1024, Access.All);
        Assert.True(f.Translate(0x1000).IsSuccess);
        Assert.True(f.Translate(0x1000).IotlbHit);
        // PSI: IVA = address | AM, IOTLB_REG = IVT | IIRG 3 | DID.
        f.Unit.WriteRegister(f.Unit.Ecap.IotlbRegisterOffset, 8, 0x1000);
        f.Unit.WriteRegister((int)IotlbReg(f), 8, 1UL << 63 | 3UL << 60 | (ulong)UnitFixture.Did << 32);
        ulong done = f.Unit.Registers.Get((int)IotlbReg(f));
        Assert.Equal(0UL, done >> 63);          // IVT cleared: done
        Assert.Equal(3UL, (done >> 57) & 3);    // IAIG: page-selective
        Assert.False(f.Translate(0x1000).IotlbHit);
        // AM above MAMV falls back to domain-selective.
        f.Unit.WriteRegister(f.Unit.Ecap.IotlbRegisterOffset, 8, 0x1000 | 40);
        f.Unit.WriteRegister((int)IotlbReg(f), 8, 1UL << 63 | 3UL << 60 | (ulong)UnitFixture.Did << 32);
        Assert.Equal(2UL, (f.Unit.Registers.Get((int)IotlbReg(f)) >> 57) & 3);
    }

    [Fact]
    public void ContextCommandDropsCachedContexts()
    {
        using var f = new UnitFixture(scalable: false);
        f.Vm.Map(0, 16, Access.All);
        Assert.True(f.Translate(0).IsSuccess);
        f.Tables.ClearContext(UnitFixture.Sid);
        Assert.True(f.Translate(0).IsSuccess, "the cached context still serves until it is invalidated");
        f.Unit.WriteRegister(RegisterOffsets.ContextCommand, 8, 1UL << 63 | 1UL << 61);
        ulong ccmd = f.Unit.Registers.Get(RegisterOffsets.ContextCommand);
        Assert.Equal(0UL, ccmd >> 63);
        Assert.Equal(1UL, (ccmd >> 59) & 3);
        Assert.Equal(FaultReason.ContextEntryNotPresent, f.Translate(0).Fault);
    }

    [Fact]
    public void QueuedInvalidationProcessesEveryTypeAndWritesTheWaitStatus()
    {
        using var f = new UnitFixture(scalable: true);
        f.Vm.Map(0, 1024, Access.All);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        ulong status = f.Memory.AllocateFrame();
        var devTlb = new List<DeviceTlbInvalidation>();
        f.Unit.DeviceTlbInvalidated += devTlb.Add;
        Assert.True(f.Translate(0x2000).IsSuccess);
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(
            InvalidationDescriptor.Iotlb(3, UnitFixture.Did, 0x2000, 0),
            InvalidationDescriptor.DeviceTlb(UnitFixture.Sid, 0x2000),
            InvalidationDescriptor.Wait(status, 0xC0FFEE)));
        Assert.False(f.Translate(0x2000).IotlbHit);
        Assert.Equal(0xC0FFEEUL, f.Memory.ReadEntry(status) & 0xFFFF_FFFF);
        Assert.Equal([new DeviceTlbInvalidation(UnitFixture.Sid, 0x2000, false, TranslationRequest.NoPasid)], devTlb);

        uint contextGeneration = f.Unit.ContextCacheGeneration;
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(
            InvalidationDescriptor.ContextCache(1),
            InvalidationDescriptor.PasidCache(1, UnitFixture.Did, 0),
            InvalidationDescriptor.PasidIotlb(2, UnitFixture.Did, 0),
            InvalidationDescriptor.Iotlb(2, UnitFixture.Did),
            InvalidationDescriptor.Iotlb(1)));
        Assert.Equal(contextGeneration + 2, f.Unit.ContextCacheGeneration);
        Assert.Equal(8, f.Unit.DescriptorsProcessed);
        Assert.Equal(8UL << 4, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead));
    }

    [Fact]
    public void AWaitWithInterruptSetsIwcAndRaisesTheEventUnlessMasked()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        int events = 0;
        f.Unit.InvalidationEvent += () => events++;
        f.Unit.Submit(InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true));
        Assert.Equal(1UL, f.Unit.Registers.Get(RegisterOffsets.InvalidationCompletionStatus));
        Assert.Equal(0, events); // IECTL.IM is set after reset: pending, no event
        Assert.Equal(1UL << 30 | 1UL << 31, f.Unit.Registers.Get(RegisterOffsets.InvalidationEventControl));
        f.Unit.WriteRegister(RegisterOffsets.InvalidationCompletionStatus, 4, 1);
        f.Unit.WriteRegister(RegisterOffsets.InvalidationEventControl, 4, 0);
        f.Unit.Submit(InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true));
        Assert.Equal(1, events);
    }

    public static TheoryData<string, ulong, ulong> Malformed() => new()
    {
        { "unknown type 0xF", 0xF, 0 },
        { "type 0", 0, 0 },
        { "IOTLB with a reserved bit in qw0", InvalidationDescriptor.Iotlb(1).Qw0 | 1UL << 40, 0 },
        { "IOTLB with a reserved bit in qw1", InvalidationDescriptor.Iotlb(3, 1).Qw0, 1UL << 8 },
        { "IOTLB with granularity 0", 2, 0 },
        { "context cache with granularity 0", 1, 0 },
        { "wait with a misaligned status address", InvalidationDescriptor.Wait(0x1000, 1).Qw0, 0x1002 },
        { "extended type bits set", 2 | 1 << 4 | 1 << 9, 0 },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void AMalformedDescriptorRaisesIqeAndLosesNothingBehindIt(string name, ulong qw0, ulong qw1)
    {
        var bad = new InvalidationDescriptor(qw0, qw1);
        using var f = new UnitFixture(scalable: true);
        f.Vm.Map(0, 16, Access.All);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        ulong status = f.Memory.AllocateFrame();
        Assert.True(f.Translate(0x1000).IsSuccess);
        InvalidationQueueError error = f.Unit.Submit(
            InvalidationDescriptor.Iotlb(1), bad, InvalidationDescriptor.Wait(status, 7));
        Assert.True(error == InvalidationQueueError.InvalidDescriptor, $"{name}: {error}");
        Assert.Equal(1UL << 4, f.Unit.Registers.Get(RegisterOffsets.FaultStatus) & (1UL << 4));
        Assert.Equal(1UL << 4, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead)); // stopped on the bad one
        Assert.Equal(0UL, f.Memory.ReadEntry(status));                                       // the wait behind it has not run

        // Software replaces the bad descriptor with a no-op wait and clears IQE: the rest runs.
        var fix = InvalidationDescriptor.Wait(0, 0, statusWrite: false);
        Span<byte> slot = f.Memory.GetSpan(f.Queue + 16, 16);
        BitConverter.TryWriteBytes(slot, fix.Qw0);
        BitConverter.TryWriteBytes(slot[8..], fix.Qw1);
        f.Unit.WriteRegister(RegisterOffsets.FaultStatus, 4, 1UL << 4);
        Assert.Equal(InvalidationQueueError.None, f.Unit.QueueError);
        Assert.Equal(7UL, f.Memory.ReadEntry(status));
        Assert.Equal(3UL << 4, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead));
    }

    [Fact]
    public void WideDescriptorsNeedScalableModeAndTheirUpperHalvesMustBeZero()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue, wideDescriptors: true);
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(InvalidationDescriptor.Iotlb(1)));
        Assert.Equal(1UL << 5, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead));
        Assert.Equal(InvalidationQueueError.InvalidDescriptor, f.Unit.Submit(InvalidationDescriptor.Iotlb(1) with { Qw3 = 1 }));
    }

    [Fact]
    public void AMisalignedTailStopsTheQueue()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue, wideDescriptors: true);
        f.Unit.WriteRegister(RegisterOffsets.InvalidationQueueTail, 8, 0x10);
        Assert.Equal(InvalidationQueueError.TailMisaligned, f.Unit.QueueError);
    }

    [Fact]
    public void AWaitStatusWriteOutsideAllocatedMemoryIsAnErrorNotACrash()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        Assert.Equal(InvalidationQueueError.StatusWriteFailed, f.Unit.Submit(InvalidationDescriptor.Wait(f.Memory.EndHpa + 0x1000, 1)));
    }

    [Fact]
    public void SubmittingWithoutAQueueIsAClearError()
    {
        using var f = new UnitFixture(scalable: true);
        Assert.Contains("IQA_REG", Assert.Throws<InvalidOperationException>(() => f.Unit.Submit(InvalidationDescriptor.Iotlb(1))).Message);
    }
}
