using Engine.Iommu;

namespace Engine.Tests.Iommu;

// The queue reads descriptors and page-group responses through named accessors only; these pin each
// accessor to the bit positions the spec gives (SPEC.md §2.8, Linux QI_*), on raw words and on the
// builders' output, so a wrong shift fails here rather than as a queue that does the wrong thing.
public class InvalidationDescriptorEncodingTests
{
    [Fact]
    public void IotlbDescriptorCarriesAddressIn63To12AndAddressMaskIn5To0()
    {
        // ADDR 0xAB_CDEF_F000, IH (bit 6), AM 0x3F.
        var raw = new InvalidationDescriptor(0x0000_0000_0042_0032UL, 0x0000_00AB_CDEF_F07FUL);
        Assert.Equal(InvalidationDescriptorType.Iotlb, raw.Type);
        Assert.Equal(3, raw.Granularity);
        Assert.Equal((ushort)0x42, raw.Did);
        Assert.Equal(0xAB_CDEF_F000UL, raw.Address);
        Assert.Equal(0x3F, raw.AddressMask);

        InvalidationDescriptor built = InvalidationDescriptor.Iotlb(3, did: 7, address: 0x1234_5000, am: 9, ih: true);
        Assert.Equal(0x1234_5000UL, built.Address);
        Assert.Equal(9, built.AddressMask);
    }

    [Fact]
    public void PasidIotlbDescriptorCarriesPasidIn51To32()
    {
        InvalidationDescriptor d = InvalidationDescriptor.PasidIotlb(3, did: 7, pasid: 0xF_FFFF, address: 0x9000, am: 2);
        Assert.Equal(0x000F_FFFF_0007_0036UL, d.Qw0);
        Assert.Equal(0xF_FFFFu, d.Pasid);
        Assert.Equal((ushort)7, d.Did);
        Assert.Equal(0x9000UL, d.Address);
        Assert.Equal(2, d.AddressMask);
    }

    [Fact]
    public void WaitDescriptorHasIfIn4SwIn5DataIn63To32AndAddressIn63To2()
    {
        InvalidationDescriptor d = InvalidationDescriptor.Wait(0x1000_0004, 0xDEAD_BEEF, statusWrite: true, interrupt: true);
        Assert.Equal(0xDEAD_BEEF_0000_0075UL, d.Qw0);
        Assert.True(d.WaitInterrupt);
        Assert.True(d.WaitStatusWrite);
        Assert.Equal(0xDEAD_BEEFu, d.WaitStatusData);
        Assert.Equal(0x1000_0004UL, d.WaitStatusAddress);

        var raw = new InvalidationDescriptor(0x0000_0001_0000_0045UL, 0x2000_0007UL);   // FN only; address bits 1:0 set
        Assert.False(raw.WaitInterrupt);
        Assert.False(raw.WaitStatusWrite);
        Assert.Equal(1u, raw.WaitStatusData);
        Assert.Equal(0x2000_0004UL, raw.WaitStatusAddress);
    }

    [Fact]
    public void DeviceTlbDescriptorHasSourceIdIn47To32AndSizeInQw1Bit0()
    {
        InvalidationDescriptor d = InvalidationDescriptor.DeviceTlb(0x3A11, 0x5000, sizeBit: true, queueDepth: 4);
        Assert.Equal(0x0000_3A11_0004_0003UL, d.Qw0);
        Assert.Equal((ushort)0x3A11, d.DeviceTlbSourceId);
        Assert.Equal(0x5000UL, d.Address);
        Assert.True(d.DeviceTlbSizeBit);
        Assert.False(InvalidationDescriptor.DeviceTlb(0x3A11, 0x5000).DeviceTlbSizeBit);
    }

    [Fact]
    public void PasidDeviceTlbDescriptorHasSourceIdIn31To16PasidIn51To32AndSizeInQw1Bit11()
    {
        var d = new InvalidationDescriptor(0x0001_2345_3A11_0008UL, 0x7800UL);
        Assert.Equal(InvalidationDescriptorType.PasidDeviceTlb, d.Type);
        Assert.Equal((ushort)0x3A11, d.PasidDeviceTlbSourceId);
        Assert.Equal(0x1_2345u, d.Pasid);
        Assert.Equal(0x7000UL, d.Address);
        Assert.True(d.PasidDeviceTlbSizeBit);
        Assert.False(d.DeviceTlbSizeBit);   // bit 0 is G here, not S
    }

    [Fact]
    public void PageGroupResponseHasPasidPresentIn4CodeIn15To12RidIn31To16AndGroupInQw1()
    {
        // P (4), code 0xF, RID 0x3A11, PASID 7 | PRG index 0x1AB (11:3), LPIG (2).
        var d = new InvalidationDescriptor(0x0000_0007_3A11_F019UL, 0xD5CUL);
        Assert.Equal(InvalidationDescriptorType.PageGroupResponse, d.Type);
        Assert.True(d.ResponsePasidPresent);
        Assert.Equal(PageResponseCode.Failure, d.ResponseCode);
        Assert.Equal((ushort)0x3A11, d.ResponseRequesterId);
        Assert.Equal(7u, d.Pasid);
        Assert.Equal((ushort)0x1AB, d.ResponseGroupIndex);
        Assert.True(d.ResponseLastInGroup);

        var withoutPasid = new PageGroupResponse(0x0100, 2, PageResponseCode.Success, LastInGroup: false).ToDescriptor();
        Assert.False(withoutPasid.ResponsePasidPresent);
        Assert.False(withoutPasid.ResponseLastInGroup);
        Assert.Equal((ushort)2, withoutPasid.ResponseGroupIndex);
    }

    [Fact]
    public void QueueAddressRegisterGivesBaseIn63To12AndSizeOrderIn2To0()
    {
        // IQA with DW (bit 11) and QS 3: eight frames of 32-byte slots.
        RingGeometry ring = RingGeometry.Of(0x1234_5000UL | 0x800 | 3, slotShift: 5);
        Assert.Equal(0x1234_5000UL, ring.BaseHpa);
        Assert.Equal(1024UL, ring.Slots);
        Assert.Equal(8UL * 4096, ring.Bytes);
        Assert.Equal(32, ring.SlotSize);
        Assert.Equal(2UL, ring.SlotOf(0x40));
        Assert.Equal(0x40UL, ring.OffsetOf(2));
        Assert.True(ring.IsAligned(0x40));
        Assert.False(ring.IsAligned(0x30));
        Assert.Equal(0x1234_5040UL, ring.SlotHpa(2));
        Assert.Equal(256UL, RingGeometry.Of(0x1234_5000UL, slotShift: 4).Slots);
    }
}
