using Engine.Control;
using Engine.Iommu;
using Engine.Memory;

namespace Engine.Tests.Control;

public class PlatformTests
{
    [Fact]
    public void RunningOutOfHostMemoryIsEnomemNotABareException()
    {
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 64UL << 12 } });
        var errors = new List<Errno>();
        try
        {
            for (int i = 0; i < 100; i++)
            {
                IommuInstance iommu = platform.AddIommu($"dmar{i}", IommuPresets.GraniteRapidsServer);
                Device d = platform.AddDevice($"d{i}", 0x0100, iommu);
                platform.AllocatePagingDomain().Attach(d);
            }
        }
        catch (EngineException e)
        {
            errors.Add(e.Errno);
        }
        Assert.Equal([Errno.ENOMEM], errors);
    }

    [Fact]
    public void HwInfoReportsTheDevicesIommu()
    {
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 64UL << 20 } });
        IommuInstance iommu = platform.AddIommu("dmar0", IommuPresets.SapphireRapidsServer);
        Device d = platform.AddDevice("d", 0x0100, iommu);
        DriverView info = platform.HwInfo(d);
        Assert.Equal(IommuPresets.SapphireRapidsServer.Cap, info.Cap);
        Assert.True(info.ScalableMode);
        Assert.Equal(57, iommu.Width);
        using var other = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 64UL << 20 } });
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => other.AddDevice("x", 1, iommu)).Errno);
    }
}
