using Engine.Memory;
using Xunit;

namespace Engine.Tests.Memory;

public sealed class TransparentHugePageTests
{
    [Fact]
    public void Reports_a_size_within_the_region_on_linux_and_null_elsewhere()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 64UL << 20, TransparentHugePages = true });
        memory.AllocateFrame();
        long? bytes = memory.TransparentHugePageBytes();
        if (OperatingSystem.IsLinux())
        {
            Assert.NotNull(bytes);
            Assert.InRange(bytes!.Value, 0, 64L << 20);   // whether the kernel grants any is up to it
        }
        else
        {
            Assert.Null(bytes);
        }
    }

    [Fact]
    public void Throws_after_dispose()
    {
        var memory = new HostMemory(new HostMemoryOptions { Size = 64UL << 20 });
        memory.Dispose();
        Assert.Throws<ObjectDisposedException>(() => memory.TransparentHugePageBytes());
    }
}
