using Engine.Kvm;
using Engine.Paging;

namespace Engine.Tests.Kvm;

public class VmByteRangeTests
{
    [Fact]
    public void TheGpaMethodsTakeBytesAsAddMemslotDoes()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0x4000_0000, 16UL << 20);
        vm.MapGpa(0x4000_0000, 2UL << 20, Access.ReadWrite);
        Assert.True(vm.Translate(0x4000_0000 + (2UL << 20) - 1, Access.Write).IsSuccess);
        Assert.False(vm.Translate(0x4000_0000 + (2UL << 20), Access.Read).IsSuccess);
        vm.WriteProtectGpa(0x4000_0000, 0x1000);
        Assert.False(vm.Translate(0x4000_0000, Access.Write).IsSuccess);
        Assert.True(vm.Translate(0x4000_1000, Access.Write).IsSuccess);
        vm.ZapGpa(0x4000_1000, 0x1000);
        Assert.False(vm.Translate(0x4000_1000, Access.Read).IsSuccess);
        Assert.True(vm.Translate(0x4000_2000, Access.Read).IsSuccess);
    }

    [Fact]
    public void UnalignedByteRangesAreRefusedNotWidened()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0, 16UL << 20);
        Assert.Equal("gpa", Assert.Throws<ArgumentOutOfRangeException>(() => vm.MapGpa(0x40001, 0x1000, Access.Read)).ParamName);
        Assert.Equal("size", Assert.Throws<ArgumentOutOfRangeException>(() => vm.MapGpa(0x40000, 100, Access.Read)).ParamName);
        Assert.Equal("size", Assert.Throws<ArgumentOutOfRangeException>(() => vm.ZapGpa(0x40000, 0)).ParamName);
        Assert.Equal("gpa", Assert.Throws<ArgumentOutOfRangeException>(() => vm.WriteProtectGpa(0x40800, 0x1000)).ParamName);
        Assert.False(vm.Translate(0x40000, Access.Read).IsSuccess);
    }

    [Fact]
    public void BytesPassedToMapAreNamedAsSuchInTheRefusal()
    {
        using var memory = TestMemory.Create(64);
        using var vm = new Vm(memory);
        vm.AddMemslot(0, 0x4000_0000, 16UL << 20);
        // Both in bytes: GPA 1 GiB, 2 MiB — what AddMemslot took.
        string both = Assert.Throws<ArgumentException>(() => vm.Map(0x4000_0000, 2UL << 20, Access.Read)).Message;
        Assert.Contains("got what look like a GPA and a byte size", both);
        Assert.Contains("GFN 0x40000 + 0x200 pages", both);
        // The GFN right, the size in bytes.
        vm.AddMemslot(1, 0, 512UL << 20);
        string size = Assert.Throws<ArgumentException>(() => vm.Map(0x10, 0x20_0000, Access.Read)).Message;
        Assert.Contains("expected a page count, got what looks like a byte size", size, StringComparison.OrdinalIgnoreCase);
        // An honest page count that misses the slots gets no such hint.
        Assert.DoesNotContain("byte size", Assert.Throws<ArgumentException>(() => vm.Map(0x4_1000, 7, Access.Read)).Message);
    }
}
