using Engine.Iommu;

namespace Engine.Tests.Iommu;

public class PresetTests
{
    [Fact]
    public void TheGraniteRapidsServerCanCarryAKvmDomain()
    {
        IommuPreset p = IommuPresets.GraniteRapidsServer;
        DriverView v = p.Driver;
        Assert.Equal(0xC, p.Cap.Sagaw);
        Assert.Equal(57, p.Cap.Mgaw);
        Assert.Equal(0xEE0, p.Cap.FaultRecordingOffset);
        Assert.Equal(0xEF0, p.Ecap.IotlbRegisterOffset);
        Assert.Equal(3, p.Cap.Sllps);
        Assert.Equal(45, p.Cap.Mamv);
        Assert.True(p.Cap.Fl5lp && p.Cap.Fl1gp && p.Cap.Esrtps && p.Cap.Psi);
        Assert.True(p.Ecap.SnoopControl && p.Ecap.ScalableMode && p.Ecap.Smpwc && p.Ecap.Slts && p.Ecap.Flts && p.Ecap.Pasid && p.Ecap.Prs);
        Assert.Equal(3, v.Agaw);
        Assert.Equal(2, v.SuperpageLevel);
        Assert.True(v.PagingStructureCoherency);
    }

    [Fact]
    public void TheSapphireRapidsServerDecodesAsItsSourceReports()
    {
        IommuPreset p = IommuPresets.SapphireRapidsServer;
        Assert.Equal(0x400, p.Cap.FaultRecordingOffset);
        Assert.Equal(0x500, p.Ecap.IotlbRegisterOffset);
        Assert.Equal(1, p.Cap.NumberOfFaultRegisters);
        Assert.True(p.Ecap.Nested && p.Ecap.Slads && p.Ecap.Rps && p.Ecap.Srs);
        Assert.False(p.Ecap.Pasid || p.Ecap.Prs);
        Assert.Equal(20, p.Ecap.PasidBits);
        Assert.Equal(3, p.Driver.Agaw);
    }

    [Fact]
    public void TheRaptorLakeGraphicsUnitLacksWhatAKvmDomainNeeds()
    {
        IommuPreset p = IommuPresets.RaptorLakeGraphics;
        Assert.Equal(2, p.Cap.Nd);
        Assert.Equal(0x4, p.Cap.Sagaw);
        Assert.Equal(39, p.Cap.Mgaw);
        Assert.False(p.Cap.Psi);
        Assert.Equal(0, p.Cap.Mamv);
        Assert.Equal(3, p.Cap.Sllps);
        Assert.False(p.Ecap.SnoopControl || p.Ecap.ScalableMode || p.Ecap.Coherent);
        Assert.Equal(2, p.Driver.Agaw);   // SAGAW says 48-bit tables although MGAW is 39
        Assert.False(p.Driver.PagingStructureCoherency);
    }

    [Fact]
    public void TheSkylakeServerIsLegacyOnlyWithEightFaultRegisters()
    {
        IommuPreset p = IommuPresets.SkylakeServer;
        Assert.Equal(8, p.Cap.NumberOfFaultRegisters);
        Assert.Equal(0x100, p.Cap.FaultRecordingOffset);
        Assert.Equal(0x200, p.Ecap.IotlbRegisterOffset);
        Assert.Equal(48, p.Cap.Mgaw);
        Assert.False(p.Ecap.ScalableMode);
        Assert.True(p.Ecap.SnoopControl && p.Ecap.Coherent);
        Assert.Equal(2, p.Driver.Agaw);
    }

    [Fact]
    public void QemuPresetsMatchVtdCapInit()
    {
        var qemu = IommuPresets.QemuDefault;
        Assert.Equal(48, qemu.Cap.Mgaw);
        Assert.Equal(0b110, qemu.Cap.Sagaw);
        Assert.Equal(0x220, qemu.Cap.FaultRecordingOffset);
        Assert.Equal(0xF0, qemu.Ecap.IotlbRegisterOffset);
        Assert.True(qemu.Ecap.Qi && qemu.Ecap.InterruptRemapping && qemu.Ecap.PassThrough);
        Assert.False(qemu.Ecap.SnoopControl || qemu.Ecap.DeviceTlb);
        Assert.Equal(2, qemu.Driver.Agaw);
        var sm = IommuPresets.QemuScalable;
        Assert.True(sm.Ecap.ScalableMode && sm.Ecap.Slts && sm.Ecap.Srs);
        Assert.False(sm.Ecap.Smpwc || sm.Ecap.SnoopControl);
    }

    [Fact]
    public void EveryPresetBuildsAUnitAndIsFoundByName()
    {
        using var memory = new Engine.Memory.HostMemory(new Engine.Memory.HostMemoryOptions { Size = 64UL << 20 });
        foreach (IommuPreset p in IommuPresets.All)
        {
            using var unit = new DmarUnit(memory, new DmarUnitOptions { Cap = p.Cap, Ecap = p.Ecap, Name = p.Name });
            Assert.Equal(p.Cap.Value, unit.Registers.Get(RegisterOffsets.Capability));
            Assert.Same(p, IommuPresets.Get(p.Name.ToUpperInvariant()));
        }
        Assert.Contains("known:", Assert.Throws<ArgumentException>(() => IommuPresets.Get("nope")).Message);
    }
}

public class PresetNameTests
{
    [Theory]
    [InlineData("server", "GraniteRapidsServer")]
    [InlineData("SPR", "sapphirerapidsserver")]
    [InlineData("client", "RaptorLakeGraphics")]
    [InlineData("skylake", "SKYLAKESERVER")]
    [InlineData("qemu", "QemuDefault")]
    [InlineData("qemu-sm", "QemuScalable")]
    public void ThePresetsShortNameAndItsFieldNameFindTheSamePreset(string shortName, string typeName)
    {
        Assert.Same(IommuPresets.Get(shortName), IommuPresets.Get(typeName));
        Assert.True(IommuPresets.TryGet(typeName, out IommuPreset? found));
        Assert.Same(IommuPresets.Get(shortName), found);
    }

    [Fact]
    public void AnUnknownNameListsEveryNameAccepted()
    {
        string message = Assert.Throws<ArgumentException>(() => IommuPresets.Get("granite")).Message;
        foreach (string name in IommuPresets.Names)
            Assert.Contains(name, message);
        Assert.False(IommuPresets.TryGet("granite", out _));
        Assert.Equal(12, IommuPresets.Names.Count);
        Assert.Throws<ArgumentNullException>(() => IommuPresets.Get(null!));
    }
}
