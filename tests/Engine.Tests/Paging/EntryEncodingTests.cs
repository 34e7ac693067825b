using System.Runtime.CompilerServices;
using Engine.Paging;

namespace Engine.Tests.Paging;

public class EntryEncodingTests
{
    [Fact]
    public void EntriesAreEightBytes()
    {
        Assert.Equal(8, Unsafe.SizeOf<EptEntry>());
        Assert.Equal(8, Unsafe.SizeOf<SlPte>());
        Assert.Equal(80, Unsafe.SizeOf<ReservedBitMasks>());
    }

    [Fact]
    public void EptBitsSitWhereTheSdmAndKvmPutThem()
    {
        Assert.Equal(0x1UL, EptEntry.ReadBit);
        Assert.Equal(0x2UL, EptEntry.WriteBit);
        Assert.Equal(0x4UL, EptEntry.ExecuteBit);
        Assert.Equal(0x38UL, EptEntry.MemoryTypeMask);
        Assert.Equal(0x40UL, EptEntry.IgnorePatBit);
        Assert.Equal(0x80UL, EptEntry.PageSizeBit);
        Assert.Equal(0x100UL, EptEntry.AccessedBit);
        Assert.Equal(0x200UL, EptEntry.DirtyBit);
        Assert.Equal(0x800UL, EptEntry.Bit11);
        Assert.Equal(0x000F_FFFF_FFFF_F000UL, EptEntry.AddressMask);
        Assert.Equal(1UL << 59, EptEntry.MmuPresentBit);
        Assert.Equal(1UL << 63, EptEntry.SuppressVeBit);
    }

    [Fact]
    public void KvmRamLeavesCarryWriteBackIpatAndPresentAtBit59AndNeverBit11()
    {
        // 4K RWX leaf for HPA 0x1_2345_6000: R|W|X, MT=6 (WB) << 3, IPAT, bit 57 host-writable, 58 MMU-writable, 59 present.
        var leaf = EptEntry.Leaf(0x1_2345_6000, Access.All, PageSize.Size4K);
        Assert.Equal(0x0E00_0001_2345_6077UL, leaf.Value);
        Assert.Equal(6UL, leaf.MemoryType);
        Assert.Equal(0UL, leaf.Value & EptEntry.Bit11);
        // 2M read-only leaf: no W, no MMU-writable, PS set.
        var huge = EptEntry.Leaf(0x4020_0000, Access.Read | Access.Execute, PageSize.Size2M);
        Assert.Equal(0x0A00_0000_4020_00F5UL, huge.Value);
        Assert.True(huge.IsLargePage);
        Assert.Equal(Access.Read | Access.Execute, huge.Permissions);
        // Non-leaf: R|W|X and the present marker only.
        Assert.Equal(0x0800_0000_0000_5007UL, EptEntry.Table(0x5000).Value);
    }

    [Fact]
    public void SecondStageBitsSitWhereVtdPutsThem()
    {
        Assert.Equal(0x800UL, SlPte.SnoopBit);
        Assert.Equal(1UL << 62, SlPte.TransientMappingBit);
        Assert.Equal(0x80UL, SlPte.PageSizeBit);
        Assert.Equal(0x3UL, SlPte.Table(0x7000).Value & 0xfff);
        Assert.Equal(0x7000UL, SlPte.Table(0x7000).Address);
        Assert.Equal(0x4000_0883UL, SlPte.Leaf(0x4000_0000, Access.ReadWrite, PageSize.Size1G, snoop: true).Value);
        // Present iff R or W: an execute-only EPT entry is not present to VT-d.
        Assert.False(new SlPte(EptEntry.ExecuteBit | 0x1000).IsPresent);
        Assert.True(new EptEntry(EptEntry.ExecuteBit | 0x1000).IsPresent);
    }

    [Fact]
    public void RsvdBitsHelperMatchesKvm()
    {
        Assert.Equal(0xF8UL, ReservedBitMasks.Bits(3, 7));
        Assert.Equal(0x000F_C000_0000_0000UL, ReservedBitMasks.Bits(46, 51));
        Assert.Equal(0UL, ReservedBitMasks.Bits(52, 51));
        Assert.Equal(ulong.MaxValue, ReservedBitMasks.Bits(0, 63));
    }

    [Fact]
    public void EptMasksMatchKvmsShadowZeroCheckWithBit11Reserved()
    {
        var m = ReservedBitMasks.ForEpt(46, maxHugePageLevel: 3, bit11Reserved: true);
        ulong high = 0x000F_C000_0000_0000UL;
        Assert.Equal(high | 0x800, m.Get(0, 1));
        Assert.Equal(high | 0x878, m.Get(0, 2));
        Assert.Equal(high | 0x878, m.Get(0, 3));
        Assert.Equal(high | 0x8F8, m.Get(0, 4));
        Assert.Equal(high | 0x8F8, m.Get(1, 5));
        Assert.Equal(high | 0x1F_F800, m.Get(1, 2));
        Assert.Equal(high | 0x3FFF_F800, m.Get(1, 3));
        Assert.True(m.AllContain(EptEntry.Bit11));
        // A VM limited to 2M pages reserves PS in PDPTEs.
        var noGig = ReservedBitMasks.ForEpt(46, maxHugePageLevel: 2, bit11Reserved: false);
        Assert.Equal(high | 0x3FFF_F080, noGig.Get(1, 3));
        Assert.False(noGig.AllContain(EptEntry.Bit11));
    }

    [Fact]
    public void SecondStageMasksFollowQemusPerLevelMasks()
    {
        var m = ReservedBitMasks.ForSecondStage(46, superpageLevel: 1, snoopControl: false, deviceTlb: false);
        ulong high = 0x000F_C000_0000_0000UL;
        ulong tm = 1UL << 62;
        Assert.Equal(high | tm | 0x800, m.Get(0, 1));                 // leaf: SNP reserved without SC
        Assert.Equal(high | tm | 0x800, m.Get(0, 4));                 // non-leaf: SNP and TM reserved
        Assert.Equal(high | tm | 0x880, m.Get(1, 4));                 // PS in a PML4E
        Assert.Equal(high | tm | 0x1F_F800, m.Get(1, 2));             // 2M leaf: bits 20:12
        Assert.Equal(high | tm | 0x3FFF_F880, m.Get(1, 3));           // 1G not supported at superpage level 1
        var sc = ReservedBitMasks.ForSecondStage(46, superpageLevel: 2, snoopControl: true, deviceTlb: true);
        Assert.Equal(high, sc.Get(0, 1));
        Assert.Equal(high | 0x3FFF_F000, sc.Get(1, 3));
    }

    [Fact]
    public void MaskFactoriesRefuseNonsense()
    {
        Assert.Equal("physicalAddressWidth", Assert.Throws<ArgumentOutOfRangeException>(() => ReservedBitMasks.ForEpt(53, 1, true)).ParamName);
        Assert.Equal("maxHugePageLevel", Assert.Throws<ArgumentOutOfRangeException>(() => ReservedBitMasks.ForEpt(46, 4, true)).ParamName);
        Assert.Equal("superpageLevel", Assert.Throws<ArgumentOutOfRangeException>(() => ReservedBitMasks.ForSecondStage(46, 3, true, true)).ParamName);
        var m = new ReservedBitMasks();
        Assert.Equal("level", Assert.Throws<ArgumentOutOfRangeException>(() => m.Get(0, 6)).ParamName);
        Assert.Equal("ps", Assert.Throws<ArgumentOutOfRangeException>(() => m.Set(2, 1, 0)).ParamName);
    }

    [Fact]
    public void PageSizesMapToLevelsAndBytes()
    {
        Assert.Equal(4096UL, PageSize.Size4K.Bytes());
        Assert.Equal(2UL << 20, PageSize.Size2M.Bytes());
        Assert.Equal(1UL << 30, PageSize.Size1G.Bytes());
        Assert.Equal(512UL, PageSize.Size2M.Pages());
        Assert.Equal(48, PageSizes.WidthOfLevels(4));
        Assert.Equal(57, PageSizes.WidthOfLevels(5));
    }
}
