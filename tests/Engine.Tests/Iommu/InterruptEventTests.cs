using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

public class InterruptEventTests
{
    [Fact]
    public void EveryInterruptReachesInterruptWithTheUnitAsSenderAndTheOldEventsStillFire()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        f.Unit.EnablePageRequestQueue(f.Memory.AllocateFrame());
        foreach (int control in new[] { RegisterOffsets.FaultEventControl, RegisterOffsets.InvalidationEventControl, RegisterOffsets.PageRequestEventControl })
            f.Unit.WriteRegister(control, 4, 0); // unmask
        var seen = new List<(object? Sender, DmarInterruptKind Kind)>();
        f.Unit.Interrupt += (sender, e) => seen.Add((sender, e.Kind));
        int legacy = 0;
        f.Unit.FaultRecorder.FaultEvent += () => legacy++;
        f.Unit.InvalidationEvent += () => legacy++;
        f.Unit.PageRequestEvent += () => legacy++;

        Assert.False(f.Translate(0x5000, Access.Read).IsSuccess);
        f.Unit.Submit(InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true));
        f.Unit.SubmitPageRequest(new PageRequest(UnitFixture.Sid, 0x5000, Read: true, Write: false, Execute: false, LastInGroup: true, GroupIndex: 1));

        Assert.Equal([(f.Unit, DmarInterruptKind.Fault), (f.Unit, DmarInterruptKind.InvalidationComplete), (f.Unit, DmarInterruptKind.PageRequest)], seen);
        Assert.Equal(3, legacy);
    }

    [Fact]
    public void AHeldInterruptReachesInterruptWhenUnmasked()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        var kinds = new List<DmarInterruptKind>();
        f.Unit.Interrupt += (sender, e) => kinds.Add(e.Kind);
        f.Unit.Submit(InvalidationDescriptor.Wait(0, 0, statusWrite: false, interrupt: true));
        Assert.Empty(kinds); // IECTL.IM is set after reset: held
        f.Unit.WriteRegister(RegisterOffsets.InvalidationEventControl, 4, 0);
        Assert.Equal([DmarInterruptKind.InvalidationComplete], kinds);
        Assert.Equal([1, 2, 3], Enum.GetValues<DmarInterruptKind>().Select(k => (int)k));
    }
}
