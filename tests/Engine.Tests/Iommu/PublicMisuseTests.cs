using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// Misuse of the public calls of the translation tables, the register page, the fault recorder and
/// the queues is answered with the ArgumentException family (naming the parameter), never with a
/// KeyNotFoundException, NullReferenceException or an exception from deep inside a side effect.
/// </summary>
public class PublicMisuseTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheContextEntryAddressOfASourceWithoutATableNamesTheSource(bool scalable)
    {
        using var memory = TestMemory.Create(16);
        var tables = new TranslationTables(memory, scalable);
        var e = Assert.Throws<ArgumentException>(() => tables.ContextEntryAddress(0x1234));
        Assert.Equal("sourceId", e.ParamName);
        Assert.Contains("0x1234", e.Message);
        if (scalable)
        {
            // The lower half of bus 0x12 has a table now; the upper half still does not.
            tables.SetScalableContext(0x1208);
            Assert.Equal(tables.ContextEntryAddress(0x1200) + 8 * 32, tables.ContextEntryAddress(0x1208));
            Assert.Equal("sourceId", Assert.Throws<ArgumentException>(() => tables.ContextEntryAddress(0x1280)).ParamName);
        }
        else
        {
            tables.SetContext(0x1208, ContextEntry.Create(0x1000, 2, 1));
            Assert.Equal(tables.ContextEntryAddress(0x1200) + 8 * 16, tables.ContextEntryAddress(0x1208));
            Assert.Equal("sourceId", Assert.Throws<ArgumentException>(() => tables.ContextEntryAddress(0x1300)).ParamName);
        }
    }

    [Fact]
    public void ThePasidEntryAddressOfAPasidWithoutATableNamesThePasid()
    {
        using var memory = TestMemory.Create(16);
        var tables = new TranslationTables(memory, scalable: true);
        Assert.Equal("pasid", Assert.Throws<ArgumentException>(() => tables.PasidEntryAddress(0x10, 0)).ParamName);
        tables.SetPasidEntry(0x10, 5, PasidEntry.SecondLevel(0x1000, 2, 1, pgsnp: true, pwsnp: true));
        Assert.Equal(tables.PasidEntryAddress(0x10, 0) + 5 * 64, tables.PasidEntryAddress(0x10, 5));
        Assert.Equal("pasid", Assert.Throws<ArgumentException>(() => tables.PasidEntryAddress(0x10, 64)).ParamName);
        Assert.Equal("pasid", Assert.Throws<ArgumentOutOfRangeException>(() => tables.PasidEntryAddress(0x10, 1u << 20)).ParamName);
        Assert.Equal("pasid", Assert.Throws<ArgumentOutOfRangeException>(() => tables.ClearPasidEntry(0x10, uint.MaxValue)).ParamName);
        Assert.Equal("ridPasid", Assert.Throws<ArgumentOutOfRangeException>(() => tables.SetScalableContext(0x10, ridPasid: 1u << 20)).ParamName);
        // Clearing what was never created is nothing to do, not an error.
        tables.ClearPasidEntry(0x11, 3);
        tables.ClearContext(0x2000);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(8)]
    [InlineData(int.MaxValue)]
    public void APdtsOutsideTheThreeBitFieldIsRefusedByName(int pdts)
    {
        using var memory = TestMemory.Create(16);
        Assert.Equal("Pdts", Assert.Throws<ArgumentOutOfRangeException>(() => new TranslationTables(memory, scalable: true) { Pdts = pdts }).ParamName);
    }

    [Fact]
    public void TheLargestPdtsCoversEveryPasid()
    {
        using var memory = TestMemory.Create(16);
        var tables = new TranslationTables(memory, scalable: true) { Pdts = 7 };
        tables.SetPasidEntry(0x10, FaultRecord.MaxPasid, PasidEntry.SecondLevel(0x1000, 2, 1, pgsnp: true, pwsnp: true));
        Assert.True(memory.Contains(tables.PasidEntryAddress(0x10, FaultRecord.MaxPasid), 64));
    }

    [Fact]
    public void ARegisterPageWithANullDeclarationIsAnArgumentError()
    {
        var declarations = new RegisterDeclaration[] { new("A", 0, 4, 0, 0, 0), null! };
        Assert.Equal("declarations", Assert.Throws<ArgumentException>(() => new RegisterFile(declarations)).ParamName);
    }

    [Fact]
    public void RegistersAtTheTopOfTheOffsetRangeStillCannotOverlap()
    {
        // 0x7FFF_FFF8 + 8 wraps an int: the overlap with the register at 0x7FFF_FFFC must still be seen.
        var declarations = new RegisterDeclaration[] { new("A", 0x7FFF_FFF8, 8, 0, 0, 0), new("B", 0x7FFF_FFFC, 4, 0, 0, 0) };
        Assert.Contains("overlaps", Assert.Throws<ArgumentException>(() => new RegisterFile(declarations)).Message);
        var top = new RegisterFile([new("A", 0x7FFF_FFF8, 8, 0, ulong.MaxValue, 0)]);
        Assert.Equal(RegisterAccessStatus.Ok, top.Write(0x7FFF_FFFC, 4, 0xAB));
        Assert.Equal(0xABUL << 32, top.Get(0x7FFF_FFF8));
    }

    [Fact]
    public void FaultRecordOffsetsOutsideTheRecordsAreRefused()
    {
        var file = DmarRegisters.CreateFile(UnitFixture.ServerCap, UnitFixture.ServerEcap);
        using var recorder = new FaultRecorder(file, UnitFixture.ServerCap);
        Assert.Equal(0x400, recorder.LoOffset(0));
        Assert.Equal(0x400 + 16 * (recorder.RecordCount - 1) + 8, recorder.HiOffset(recorder.RecordCount - 1));
        Assert.Equal("index", Assert.Throws<ArgumentOutOfRangeException>(() => recorder.LoOffset(-1)).ParamName);
        Assert.Equal("index", Assert.Throws<ArgumentOutOfRangeException>(() => recorder.HiOffset(recorder.RecordCount)).ParamName);
        Assert.Equal("index", Assert.Throws<ArgumentOutOfRangeException>(() => recorder.LoOffset(int.MaxValue)).ParamName);
    }

    [Fact]
    public void AnAddressMaskAboveFiftyTwoIsADomainInvalidationNotAnException()
    {
        // MAMV is 6 bits, so a unit may advertise 63; AM 60 covers more than the address space.
        CapabilityRegister cap = CapabilityRegister.Encode(new CapabilityFields
        {
            Nd = 6, Sagaw = 0b1100, Mgaw = 57, FaultRecordingOffset = 0x400, NumberOfFaultRegisters = 8, Psi = true, Sllps = 3, Mamv = 63,
        });
        using var f = new UnitFixture(scalable: true, cap: cap);
        f.Vm.Map(0, 16, Access.All);
        Assert.True(f.Translate(0x1000).IsSuccess);
        Assert.True(f.Translate(0x1000).IotlbHit);
        int iro = f.Unit.Ecap.IotlbRegisterOffset;
        Assert.Equal(RegisterAccessStatus.Ok, f.Unit.WriteRegister(iro, 8, 60));
        Assert.Equal(RegisterAccessStatus.Ok, f.Unit.WriteRegister(iro + 8, 8, 1UL << 63 | 3UL << 60 | (ulong)UnitFixture.Did << 32));
        Assert.Equal(2UL, (f.Unit.Registers.Get(iro + 8) >> 57) & 3);
        Assert.False(f.Translate(0x1000).IotlbHit);

        f.Unit.EnableQueuedInvalidation(f.Queue);
        Assert.True(f.Translate(0x1000).IotlbHit);
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(InvalidationDescriptor.Iotlb(3, UnitFixture.Did, 0, am: 63)));
        Assert.False(f.Translate(0x1000).IotlbHit);
    }

    [Fact]
    public void APageRequestQueueInAFreeFrameIsNeverWritten()
    {
        using var f = new UnitFixture(scalable: true);
        f.Vm.Map(0, 16, Access.All);
        ulong ring = f.Memory.AllocateFrame();
        ulong free = f.Memory.AllocateFrame();
        f.Memory.FreeFrame(free);
        // A guest may program PQA anywhere; the unit must not write page requests into a free frame.
        f.Unit.WriteRegister(RegisterOffsets.PageRequestQueueAddress, 8, free);
        var request = new PageRequest(UnitFixture.Sid, 0x40_0000, Read: true, Write: false, Execute: false, LastInGroup: true, GroupIndex: 1);
        Assert.Equal(PageRequestStatus.Overflow, f.Unit.SubmitPageRequest(request));
        Assert.Equal(2UL, f.Unit.Registers.Get(RegisterOffsets.PageRequestStatus) & 2);
        Assert.Equal(FrameState.Free, f.Memory.GetFrameState(free));
        Assert.Empty(f.Unit.DrainPageRequests());

        // Pending requests whose ring PQA moves into a free frame: a clear error, not an address exception.
        f.Unit.WriteRegister(RegisterOffsets.PageRequestQueueAddress, 8, ring);
        Assert.Equal(PageRequestStatus.Queued, f.Unit.SubmitPageRequest(request));
        f.Unit.WriteRegister(RegisterOffsets.PageRequestQueueAddress, 8, free);
        Assert.Contains("PQA_REG", Assert.Throws<InvalidOperationException>(() => f.Unit.DrainPageRequests()).Message);
    }

    [Fact]
    public void QueuesOutsideAllocatedHostMemoryAreRefusedWhenEnabled()
    {
        using var f = new UnitFixture(scalable: true);
        ulong free = f.Memory.EndHpa - HostMemory.FrameSize;
        Assert.Equal("queueHpa", Assert.Throws<ArgumentException>(() => f.Unit.EnableQueuedInvalidation(f.Memory.EndHpa)).ParamName);
        Assert.Equal("queueHpa", Assert.Throws<ArgumentException>(() => f.Unit.EnableQueuedInvalidation(free)).ParamName);
        // The queue's own frame is allocated, the next 2^7 − 1 are not all.
        Assert.Equal("queueHpa", Assert.Throws<ArgumentException>(() => f.Unit.EnableQueuedInvalidation(f.Queue, 7)).ParamName);
        Assert.Equal("queueHpa", Assert.Throws<ArgumentException>(() => f.Unit.EnablePageRequestQueue(free)).ParamName);
        Assert.Equal("queueHpa", Assert.Throws<ArgumentException>(() => f.Unit.EnablePageRequestQueue(ulong.MaxValue & ~0xFFFUL)).ParamName);
        Assert.Equal(0UL, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueAddress));
        Assert.Equal(0UL, f.Unit.Registers.Get(RegisterOffsets.PageRequestQueueAddress));
        f.Unit.EnableQueuedInvalidation(f.Queue);
        Assert.Equal(InvalidationQueueError.None, f.Unit.Submit(InvalidationDescriptor.Iotlb(1)));
    }
}
