using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Paging;
using Engine.Tests.Control;

namespace Engine.Tests.Dma;

/// <summary>The device's immutable port: what translation and DMA use without the control objects.</summary>
public class DevicePortTests
{
    [Fact]
    public void APortTranslatesAndMovesBytesAsItsDeviceDoes()
    {
        using var f = new ControlFixture(levels: 4);
        f.Platform.AttachKvmDomain(f.Gpu, f.Tdp);
        f.Vm.MapGpa(0x10_0000, 0x4000, Access.ReadWrite);
        DevicePort port = f.Gpu.Port;
        Assert.True(port.IsValid && port.IsTranslated);
        Assert.Equal(f.Gpu.SourceId, port.SourceId);
        Assert.Equal(f.Gpu.Abilities, port.Abilities);

        TranslationResult viaPort = port.Translate(0x10_1234, Access.Write);
        Assert.True(viaPort.IsSuccess);
        Assert.Equal(f.Backing(0x10_1234), viaPort.Hpa);
        Assert.Equal(f.Gpu.Translate(0x10_1234, Access.Write).Hpa, viaPort.Hpa);

        byte[] data = [.. Enumerable.Range(0, 5000).Select(i => (byte)(i * 3))];
        Assert.True(DmaTransfer.Write(port, 0x10_0F00, data).IsComplete);
        var back = new byte[data.Length];
        Assert.True(DmaTransfer.Read(port, 0x10_0F00, back).IsComplete);
        Assert.Equal(data, back);
        var guest = new byte[data.Length];
        f.Vm.ReadGuest(0x10_0F00, guest);
        Assert.Equal(data, guest);
    }

    [Fact]
    public void APortIsTheSameValueEveryTimeAndSurvivesItsPlatform()
    {
        var f = new ControlFixture(levels: 4);
        f.Platform.AttachKvmDomain(f.Gpu, f.Tdp);
        f.Vm.MapGpa(0, 0x1000, Access.ReadWrite);
        DevicePort port = f.Gpu.Port;
        Assert.Equal(port, f.Gpu.Port);
        f.Dispose();
        Assert.Equal(TranslationStatus.Disposed, port.Translate(0, Access.Read).Status);
        Assert.Equal(DmaStatus.Disposed, DmaTransfer.Read(port, 0, new byte[16]).Status);
        Device? bare = null;
        using (var g = new ControlFixture(levels: 4))
        {
            bare = g.Platform.AddDevice("bare", 0, 2, 0, null);
            Assert.False(bare.Port.IsTranslated);
            Assert.Equal(TranslationStatus.PassThrough, bare.Port.Translate(0x1234, Access.Read).Status);
        }
        Assert.Equal(TranslationStatus.Disposed, bare.Port.Translate(0x1234, Access.Read).Status);
    }

    [Fact]
    public void ADefaultPortTranslatesNothingAndDmaRefusesIt()
    {
        DevicePort none = default;
        Assert.False(none.IsValid);
        Assert.Equal(TranslationStatus.Disposed, none.Translate(0, Access.Read).Status);
        Assert.Contains("Device.Port", Assert.Throws<ArgumentException>(() => DmaTransfer.Read(none, 0, new byte[1])).Message);
        Assert.Equal("(no device)", none.ToString());
    }

    [Fact]
    public void DevicesCanBeAddedByBusDeviceFunction()
    {
        using var f = new ControlFixture(levels: 4);
        Device d = f.Platform.AddDevice("disk", 0x3A, 2, 1, f.Dmar0);
        Assert.Equal(TranslationRequest.Bdf(0x3A, 2, 1), d.SourceId);
        Assert.Equal(0x3A11, d.SourceId);
        Assert.Throws<ArgumentOutOfRangeException>(() => f.Platform.AddDevice("bad", 0x3A, 32, 0, f.Dmar0));
        Assert.Throws<ArgumentOutOfRangeException>(() => f.Platform.AddDevice("bad", 256, 0, 0, f.Dmar0));
    }
}
