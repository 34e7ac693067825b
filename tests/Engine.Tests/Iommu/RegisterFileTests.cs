using Engine.Iommu;

namespace Engine.Tests.Iommu;

public class RegisterFileTests
{
    // CAP: ND=6, SAGAW 48/57, MGAW 57, FRO 0x220/16, NFR 8, PSI, SLLPS 2M|1G, MAMV 18. ECAP: QI, DT, SC, IRO 0x500/16, SMTS.
    private static readonly CapabilityRegister Cap = CapabilityRegister.Encode(new CapabilityFields
    {
        Nd = 6, Sagaw = 0b1100, Mgaw = 57, FaultRecordingOffset = 0x220, NumberOfFaultRegisters = 8, Psi = true, Sllps = 3, Mamv = 18,
    });

    private static readonly ExtendedCapabilityRegister Ecap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields
    {
        Qi = true, DeviceTlb = true, SnoopControl = true, IotlbRegisterOffset = 0x500, ScalableMode = true, Smpwc = true,
    });

    [Fact]
    public void CapabilitiesReadBackAsWholeWordsAndAsHalves()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        Assert.Equal(RegisterAccessStatus.Ok, file.Read(RegisterOffsets.Capability, 8, out ulong cap));
        Assert.Equal(Cap.Value, cap);
        Assert.Equal(RegisterAccessStatus.Ok, file.Read(RegisterOffsets.Capability + 4, 4, out ulong high));
        Assert.Equal(Cap.Value >> 32, high);
        Assert.Equal(RegisterAccessStatus.Ok, file.Read(RegisterOffsets.Version, 4, out ulong version));
        Assert.Equal(DmarRegisters.Version, version);
    }

    [Fact]
    public void ReadOnlyRegistersIgnoreWrites()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.Capability, 8, 0));
        Assert.Equal(Cap.Value, file.Get(RegisterOffsets.Capability));
        Assert.Equal(RegisterAccessStatus.Ok, file.Write(RegisterOffsets.InvalidationQueueHead, 8, 0x1230));
        Assert.Equal(0UL, file.Get(RegisterOffsets.InvalidationQueueHead));
    }

    [Fact]
    public void WritableMasksKeepReservedBitsZero()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        file.Write(RegisterOffsets.RootTableAddress, 8, 0x1234_5FFF);
        Assert.Equal(0x1234_5C00UL, file.Get(RegisterOffsets.RootTableAddress));
        file.Write(RegisterOffsets.InvalidationQueueTail, 8, 0xFFFF_FFFF);
        Assert.Equal(0x7_FFF0UL, file.Get(RegisterOffsets.InvalidationQueueTail));
        // A 32-bit write to the upper half of a 64-bit register touches only that half.
        file.Write(RegisterOffsets.RootTableAddress + 4, 4, 0xAB);
        Assert.Equal(0xAB_1234_5C00UL, file.Get(RegisterOffsets.RootTableAddress));
    }

    [Fact]
    public void WriteOneToClearBitsClearOnlyWhereOneIsWritten()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        // Hardware sets PFO, PPF, IQE and FRI = 3.
        file.SetByHardware(RegisterOffsets.FaultStatus, 0b1_0011 | (3 << 8));
        file.Write(RegisterOffsets.FaultStatus, 4, 0b1_0000); // clear IQE only
        Assert.Equal(0b0_0011UL | (3 << 8), file.Get(RegisterOffsets.FaultStatus));
        file.Write(RegisterOffsets.FaultStatus, 4, 0b10); // PPF is read-only
        Assert.Equal(0b0_0011UL | (3 << 8), file.Get(RegisterOffsets.FaultStatus));
        file.Write(RegisterOffsets.FaultStatus, 4, 0xFFFF_FFFF);
        Assert.Equal(0b10UL | (3 << 8), file.Get(RegisterOffsets.FaultStatus));
    }

    [Fact]
    public void FaultRecordingAndIotlbRegistersSitWhereCapAndEcapSay()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        Assert.Equal("IVA_REG", file.Declarations[0x500].Name);
        Assert.Equal("IOTLB_REG", file.Declarations[0x508].Name);
        Assert.Equal("FRCD_REG[0].lo", file.Declarations[0x220].Name);
        Assert.Equal("FRCD_REG[7].hi", file.Declarations[0x220 + 7 * 16 + 8].Name);
        Assert.False(file.Declarations.ContainsKey(0x220 + 8 * 16));
        file.SetByHardware(0x228, DmarRegisters.FaultRecordF | 0x5);
        file.Write(0x22C, 4, 0x8000_0000);
        Assert.Equal(0x5UL, file.Get(0x228));
    }

    [Theory]
    [InlineData(0x18, 2, RegisterAccessStatus.BadSize)]
    [InlineData(0x18, 8, RegisterAccessStatus.BadSize)]
    [InlineData(0x22, 4, RegisterAccessStatus.Misaligned)]
    [InlineData(0x24, 8, RegisterAccessStatus.Misaligned)]
    [InlineData(0x48, 4, RegisterAccessStatus.UnknownOffset)]
    [InlineData(0x4000, 8, RegisterAccessStatus.UnknownOffset)]
    [InlineData(-8, 8, RegisterAccessStatus.Misaligned)]
    public void BadAccessesAreAnsweredNotThrown(int offset, int size, RegisterAccessStatus expected)
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        Assert.Equal(expected, file.Read(offset, size, out ulong value));
        Assert.Equal(0UL, value);
        Assert.Equal(expected, file.Write(offset, size, ulong.MaxValue));
    }

    [Fact]
    public void OverlappingDeclarationsAreRefused()
    {
        // IRO pointing into the fixed page collides with RTADDR.
        var badEcap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { IotlbRegisterOffset = 0x20 });
        var e = Assert.Throws<ArgumentException>(() => DmarRegisters.CreateFile(Cap, badEcap));
        Assert.Contains("overlaps", e.Message);
    }

    [Fact]
    public void WritesAreReportedToTheOwnerAndResetRestoresEverything()
    {
        RegisterFile file = DmarRegisters.CreateFile(Cap, Ecap);
        var seen = new List<(string, ulong, ulong)>();
        file.Written += (d, before, after) => seen.Add((d.Name, before, after));
        file.Write(RegisterOffsets.GlobalCommand, 4, 1UL << 31);
        Assert.Equal([("GCMD_REG", 0UL, 1UL << 31)], seen);
        file.Reset();
        Assert.Equal(0UL, file.Get(RegisterOffsets.GlobalCommand));
        Assert.Equal(1UL << 31, file.Get(RegisterOffsets.FaultEventControl));
    }
}
