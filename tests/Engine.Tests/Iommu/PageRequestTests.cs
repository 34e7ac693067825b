using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

public class PageRequestTests
{
    [Fact]
    public void DescriptorsRoundTripThroughTheirBitLayout()
    {
        var request = new PageRequest(0x3A11, 0x1234_5000, Read: true, Write: true, Execute: false, LastInGroup: true, GroupIndex: 0x1AB, Pasid: 0x12345);
        Assert.Equal(0x0001_2345_3A11_0101UL, request.Qw0);
        Assert.Equal(0x1234_5000UL | 0x1AB << 3 | 4 | 2 | 1, request.Qw1);
        Assert.Equal(request, PageRequest.Decode(request.Qw0, request.Qw1));
        var response = new PageGroupResponse(0x3A11, 0x1AB, PageResponseCode.Failure, Pasid: 7);
        InvalidationDescriptor d = response.ToDescriptor();
        Assert.Equal(0x0000_0007_3A11_F019UL, d.Qw0);
        Assert.Equal(response, PageGroupResponse.Decode(d));
    }

    [Fact]
    public void AFaultingDmaBecomesAPageRequestAndTheResponseComesBack()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnableQueuedInvalidation(f.Queue);
        f.Unit.EnablePageRequestQueue(f.Memory.AllocateFrame());
        f.Unit.WriteRegister(RegisterOffsets.PageRequestEventControl, 4, 0); // unmask
        int events = 0;
        var responses = new List<PageGroupResponse>();
        f.Unit.PageRequestEvent += () => events++;
        f.Unit.PageResponse += responses.Add;

        TranslationResult miss = f.Translate(0x5000, Access.Write);
        Assert.Equal(FaultReason.SmSecondLevelPermission, miss.Fault);
        var request = new PageRequest(UnitFixture.Sid, 0x5000, Read: false, Write: true, Execute: false, LastInGroup: true, GroupIndex: 3);
        Assert.Equal(PageRequestStatus.Queued, f.Unit.SubmitPageRequest(request));
        Assert.Equal(1, events);
        Assert.Equal(1UL, f.Unit.Registers.Get(RegisterOffsets.PageRequestStatus) & 1);

        // The driver's side: drain, fault the page in through KVM, respond.
        IReadOnlyList<PageRequest> pending = f.Unit.DrainPageRequests();
        Assert.Equal([request], pending);
        Assert.Equal(0UL, f.Unit.Registers.Get(RegisterOffsets.PageRequestStatus) & 1);
        Assert.Equal(Engine.Kvm.TdpFaultResult.Fixed, f.Vm.FaultIn(5, Access.Write));
        f.Unit.Submit(new PageGroupResponse(UnitFixture.Sid, 3, PageResponseCode.Success).ToDescriptor());
        Assert.Equal([new PageGroupResponse(UnitFixture.Sid, 3, PageResponseCode.Success)], responses);
        Assert.True(f.Translate(0x5000, Access.Write).IsSuccess);
    }

    [Fact]
    public void AFullQueueOverflowsAndSetsPro()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnablePageRequestQueue(f.Memory.AllocateFrame());
        var request = new PageRequest(UnitFixture.Sid, 0x5000, true, false, false, true, 1);
        for (int i = 0; i < 127; i++)
            Assert.Equal(PageRequestStatus.Queued, f.Unit.SubmitPageRequest(request));
        Assert.Equal(PageRequestStatus.Overflow, f.Unit.SubmitPageRequest(request));
        Assert.Equal(2UL, f.Unit.Registers.Get(RegisterOffsets.PageRequestStatus) & 2);
        Assert.Equal(1, f.Unit.PageRequestOverflows);
        Assert.Equal(1UL << 30 | 1UL << 31, f.Unit.Registers.Get(RegisterOffsets.PageRequestEventControl)); // masked: pending
        Assert.Equal(127, f.Unit.DrainPageRequests().Count);
        Assert.Equal(PageRequestStatus.Queued, f.Unit.SubmitPageRequest(request));
    }

    [Fact]
    public void RequestersWithoutPageRequestsEnabledAreRefusedWithTheirFault()
    {
        using var f = new UnitFixture(scalable: true);
        f.Unit.EnablePageRequestQueue(f.Memory.AllocateFrame());
        ushort other = TranslationRequest.Bdf(0x3A, 9, 0);
        f.Tables.SetScalableContext(other, pageRequestEnable: false);
        f.Tables.SetPasidEntry(other, 0, PasidEntry.SecondLevel(f.Vm.Tdp.RootHpa, 2, 8, true, true));
        long faults = f.Unit.Faults;
        Assert.Equal(PageRequestStatus.Refused, f.Unit.SubmitPageRequest(new PageRequest(other, 0, true, false, false, true, 0)));
        Assert.Equal(faults + 1, f.Unit.Faults);
        using var legacy = new UnitFixture(scalable: false);
        legacy.Unit.EnablePageRequestQueue(legacy.Memory.AllocateFrame());
        Assert.Equal(PageRequestStatus.Refused, legacy.Unit.SubmitPageRequest(new PageRequest(UnitFixture.Sid, 0, true, false, false, true, 0)));
    }

    [Fact]
    public void WithoutAQueueNothingIsQueued()
    {
        using var f = new UnitFixture(scalable: true);
        Assert.Equal(PageRequestStatus.NotEnabled, f.Unit.SubmitPageRequest(new PageRequest(UnitFixture.Sid, 0, true, false, false, true, 0)));
    }
}
