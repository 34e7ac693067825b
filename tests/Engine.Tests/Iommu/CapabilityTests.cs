using CsCheck;
using Engine.Iommu;

namespace Engine.Tests.Iommu;

public class CapabilityTests
{
    // QEMU's intel-iommu with intremap=on, device-iotlb=on, aw-bits=39: the value guests print as
    // "cap d2008c22260206 ecap f00f5e" (composed in hw/i386/intel_iommu.c vtd_cap_init).
    private static readonly CapabilityRegister QemuCap = new(0x00d2008c22260206);
    private static readonly ExtendedCapabilityRegister QemuEcap = new(0xf00f5e);

    [Fact]
    public void QemusDefaultCapabilityDecodesFieldByField()
    {
        CapabilityRegister c = QemuCap;
        Assert.Equal(6, c.Nd);
        Assert.Equal(65536, c.NumberOfDomains);
        Assert.Equal(0b10, c.Sagaw);                 // 39-bit / 3-level
        Assert.Equal(39, c.Mgaw);
        Assert.Equal(0x220, c.FaultRecordingOffset);
        Assert.Equal(1, c.NumberOfFaultRegisters);
        Assert.Equal(0b11, c.Sllps);                 // 2M and 1G
        Assert.True(c.Psi);
        Assert.Equal(18, c.Mamv);
        Assert.True(c.Drd && c.Dwd);
        Assert.False(c.CachingMode || c.Rwbf || c.Fl1gp || c.Fl5lp || c.Pi);
    }

    [Fact]
    public void QemusExtendedCapabilityDecodesFieldByField()
    {
        ExtendedCapabilityRegister e = QemuEcap;
        Assert.True(e.Qi && e.DeviceTlb && e.InterruptRemapping && e.Eim && e.PassThrough);
        Assert.False(e.Coherent || e.SnoopControl || e.ScalableMode || e.Pasid || e.Prs || e.Nested);
        Assert.Equal(0xF0, e.IotlbRegisterOffset);
        Assert.Equal(0xF, e.Mhmv);
    }

    [Fact]
    public void TheDriverPicksTheWidestAgawAtMost57Bits()
    {
        Assert.Equal(1, new DriverView(QemuCap, QemuEcap).Agaw);
        Assert.Equal(39, new DriverView(QemuCap, QemuEcap).AgawWidth);
        var server = CapabilityRegister.Encode(new CapabilityFields { Sagaw = 0b1110, Mgaw = 57, Sllps = 3 });
        var ecap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { ScalableMode = true, Slts = true, Flts = true, Smpwc = true });
        var view = new DriverView(server, ecap);
        // Scalable mode with both first and second level: SAGAW narrows to what first level offers (4-level, 5-level only with FL5LP).
        Assert.Equal(0b0100, view.EffectiveSagaw);
        Assert.Equal(2, view.Agaw);
        var fl5 = CapabilityRegister.Encode(new CapabilityFields { Sagaw = 0b1110, Mgaw = 57, Fl5lp = true });
        Assert.Equal(3, new DriverView(fl5, ecap).Agaw);
        // Legacy mode (or sm_off) uses CAP.SAGAW as it is.
        Assert.Equal(3, new DriverView(server, ecap, ScalableModeEnabled: false).Agaw);
        Assert.Equal(0b1110, new DriverView(server, ecap, ScalableModeEnabled: false).EffectiveSagaw);
        // No usable SAGAW: agaw −1.
        Assert.Equal(-1, new DriverView(CapabilityRegister.Encode(new CapabilityFields { Sagaw = 0b10000 }), default).Agaw);
    }

    [Fact]
    public void DerivedValuesFollowTheLinuxHelpers()
    {
        var view = new DriverView(QemuCap, QemuEcap);
        Assert.Equal(2, view.SuperpageLevel);
        Assert.False(view.PagingStructureCoherency);
        Assert.Equal(1, new DriverView(CapabilityRegister.Encode(new CapabilityFields { Sllps = 1 }), default).SuperpageLevel);
        Assert.Equal(0, new DriverView(CapabilityRegister.Encode(new CapabilityFields { Sllps = 0 }), default).SuperpageLevel);
        // Coherency: SMPWC in scalable mode, C otherwise.
        var smpwcOnly = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { ScalableMode = true, Smpwc = true });
        Assert.True(new DriverView(QemuCap, smpwcOnly).PagingStructureCoherency);
        Assert.False(new DriverView(QemuCap, smpwcOnly, ScalableModeEnabled: false).PagingStructureCoherency);
        Assert.Equal(48, AgawMath.GuestWidthToAdjustWidth(40));
        Assert.Equal(57, AgawMath.GuestWidthToAdjustWidth(57));
        Assert.Equal(3, AgawMath.WidthToAgaw(57));
        Assert.Equal(5, AgawMath.AgawToLevel(3));
    }

    [Fact]
    public void EncodingAndDecodingRoundTripForEveryValue()
    {
        Gen.ULong.Sample(v =>
        {
            // Bits 58, 57 and 38, 15:13 are reserved in CAP; 5, 19:18, 32, 50, 52+ in ECAP.
            ulong capValue = v & ~(3UL << 57 | 1UL << 38 | 7UL << 13);
            var cap = new CapabilityRegister(capValue);
            Assert.Equal(cap, CapabilityRegister.Encode(cap.Decode()));
            ulong ecapValue = v & ~(1UL << 5 | 3UL << 18 | 1UL << 32 | 1UL << 50 | ~0UL << 52);
            var ecap = new ExtendedCapabilityRegister(ecapValue);
            Assert.Equal(ecap, ExtendedCapabilityRegister.Encode(ecap.Decode()));
        }, iter: 2000);
    }

    [Fact]
    public void EncodingRefusesFieldsThatDoNotFit()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CapabilityRegister.Encode(new CapabilityFields { Mgaw = 65 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => CapabilityRegister.Encode(new CapabilityFields { Sagaw = 32 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => CapabilityRegister.Encode(new CapabilityFields { FaultRecordingOffset = 0x221 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => CapabilityRegister.Encode(new CapabilityFields { NumberOfFaultRegisters = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { IotlbRegisterOffset = 0x4008 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { PasidBits = 33 }));
    }
}
