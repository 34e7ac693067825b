using Engine.Control;
using Engine.Dma;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Control;

namespace Engine.Tests.Kvm;

public class GuestMemoryTests
{
    private static byte[] Pattern(int length, int seed) => [.. Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed))];

    [Fact]
    public void AWriteReadsBackAcrossPagesBackingChunksAndMemslots()
    {
        using var f = new ControlFixture();
        // Slot 0 is 2M-backed up to 1 GiB, slot 1 4K-backed after it: this range crosses 4K pages,
        // a 2M chunk boundary (at 1 GiB − 2 MiB) and the boundary between the slots.
        ulong gpa = (1UL << 30) - (2UL << 20) - 5000;
        byte[] data = Pattern((2 << 20) + 20000, 3);
        f.Vm.WriteGuest(gpa, data);
        var back = new byte[data.Length];
        f.Vm.ReadGuest(gpa, back);
        Assert.Equal(data, back);
        // The bytes are where KVM maps the guest's pages: a device DMA through the shared EPT sees them.
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nvme, f.Tdp);
        d.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(gpa >> 12, (ulong)(data.Length >> 12) + 2, Access.ReadWrite);
        var viaDma = new byte[data.Length];
        Assert.True(DmaTransfer.Read(f.Nvme, gpa, viaDma).IsComplete);
        Assert.Equal(data, viaDma);
    }

    [Fact]
    public void GuestMemoryIsTheMemslotsNotWhatTheEptMapsNow()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 16UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 16, Access.ReadWrite);
        f.Vm.WriteGuest(0x3000, "kept"u8);
        f.Vm.Zap(0, 16);
        var back = new byte[4];
        f.Vm.ReadGuest(0x3000, back);
        Assert.Equal("kept"u8.ToArray(), back);
    }

    [Fact]
    public void PagesNeverTouchedReadAsZerosWithoutAllocatingBacking()
    {
        using var f = new KvmFixture();
        Memslot slot = f.Vm.AddMemslot(0, 0, 4UL << 20, PageSize.Size2M);
        byte[] back = [.. Enumerable.Repeat((byte)0xAA, 8192)];
        f.Vm.ReadGuest(0x1800, back);
        Assert.All(back, b => Assert.Equal(0, b));
        Assert.Equal(0, slot.TouchedChunks);
        f.Vm.WriteGuest(0x1FFFFF, new byte[] { 1, 2 }); // the last byte of chunk 0, the first of chunk 1
        Assert.Equal(2, slot.TouchedChunks);
    }

    [Fact]
    public void ARangeOutsideEveryMemslotIsEfaultNamingTheGpaAndChangesNothing()
    {
        using var f = new KvmFixture();
        f.Vm.AddMemslot(0, 0, 1UL << 20);
        f.Vm.WriteGuest(0xFF000, Pattern(4096, 1));
        // The range starts inside the slot and runs 16 bytes past its end.
        var e = Assert.Throws<EngineException>(() => f.Vm.WriteGuest(0xFFFF0, new byte[32]));
        Assert.Equal(Errno.EFAULT, e.Errno);
        Assert.Contains("GPA 0x100000 is not in any memslot", e.Message);
        var back = new byte[4096];
        f.Vm.ReadGuest(0xFF000, back);
        Assert.Equal(Pattern(4096, 1), back);
        Assert.Equal(Errno.EFAULT, Assert.Throws<EngineException>(() => f.Vm.ReadGuest(0x200123, back)).Errno);
        Assert.Contains("GPA 0x200123", Assert.Throws<EngineException>(() => f.Vm.ReadGuest(0x200123, back)).Message);
    }

    [Fact]
    public void RangesBeyondTheWidthAndDisposedVmsAreRefused()
    {
        using var memory = TestMemory.Create(16);
        var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 1UL << 20);
        Assert.Equal("gpa", Assert.Throws<ArgumentOutOfRangeException>(() => vm.ReadGuest((1UL << 48) - 8, new byte[16])).ParamName);
        Assert.Equal("gpa", Assert.Throws<ArgumentOutOfRangeException>(() => vm.WriteGuest(ulong.MaxValue, new byte[2])).ParamName);
        vm.ReadGuest(0, Span<byte>.Empty);
        vm.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vm.ReadGuest(0, new byte[1]));
        Assert.Throws<ObjectDisposedException>(() => vm.WriteGuest(0, new byte[1]));
    }

    [Fact]
    public void WritingGuestMemoryWhenHostMemoryIsExhaustedIsEnomem()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 4UL << 20 });
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 1UL << 30, PageSize.Size2M);
        var e = Assert.Throws<EngineException>(() => vm.WriteGuest(0, new byte[8UL << 20]));
        Assert.Equal(Errno.ENOMEM, e.Errno);
    }
}
