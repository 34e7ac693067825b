using System.Runtime.CompilerServices;
using Engine.Iommu;

namespace Engine.Tests.Iommu;

// The table entries are read straight out of guest memory, so their size and bit positions are
// the hardware contract (SPEC.md §2.6); these pin them against the spec rather than against the code.
public class TableEntryEncodingTests
{
    private const ulong Table = 0x0000_0012_3456_7000UL;

    [Fact]
    public void EachEntryHasItsHardwareSize()
    {
        Assert.Equal(16, Unsafe.SizeOf<RootEntry>());
        Assert.Equal(RootEntry.Size, Unsafe.SizeOf<RootEntry>());
        Assert.Equal(16, Unsafe.SizeOf<ContextEntry>());
        Assert.Equal(ContextEntry.Size, Unsafe.SizeOf<ContextEntry>());
        Assert.Equal(32, Unsafe.SizeOf<ScalableContextEntry>());
        Assert.Equal(ScalableContextEntry.Size, Unsafe.SizeOf<ScalableContextEntry>());
        Assert.Equal(8, Unsafe.SizeOf<PasidDirectoryEntry>());
        // 512 bits in the table even though only three qwords are modelled.
        Assert.Equal(64, Unsafe.SizeOf<PasidEntry>());
        Assert.Equal(PasidEntry.Size, Unsafe.SizeOf<PasidEntry>());
    }

    [Fact]
    public void RootEntryHasPresentInBitZeroAndThePointerIn63To12()
    {
        var legacy = RootEntry.Legacy(Table | 0xABC);
        Assert.Equal(Table | 1, legacy.Lo);
        Assert.Equal(0UL, legacy.Hi);

        var scalable = RootEntry.Scalable(Table, 0);
        Assert.Equal(Table | 1, scalable.Lo);
        Assert.Equal(0UL, scalable.Hi);
        Assert.Equal(Table | 1, RootEntry.Scalable(0, Table).Hi);
    }

    [Fact]
    public void LegacyRootEntryReadsPresentAndTheContextTablePointerFromLo()
    {
        var legacy = new RootEntry(Table | 0xABC | 1, 0);
        Assert.True(legacy.Present);
        Assert.Equal(Table, legacy.ContextTablePointer);
        Assert.Equal(Table, RootEntry.Legacy(Table).ContextTablePointer);

        var absent = new RootEntry(Table, 0);
        Assert.False(absent.Present, "bit 0 clear: not present, whatever the pointer");
        Assert.Equal(Table, absent.ContextTablePointer);
    }

    [Fact]
    public void ScalableRootEntryReadsEachHalfsPresentAndPointer()
    {
        const ulong Upper = 0x0000_0045_6789_A000UL;
        var both = RootEntry.Scalable(Table, Upper);
        Assert.True(both.LowerPresent);
        Assert.True(both.UpperPresent);
        Assert.Equal(Table, both.LowerContextTablePointer);
        Assert.Equal(Upper, both.UpperContextTablePointer);

        var upperOnly = RootEntry.Scalable(0, Upper);
        Assert.False(upperOnly.LowerPresent);
        Assert.True(upperOnly.UpperPresent);
        Assert.Equal(Upper, upperOnly.UpperContextTablePointer);

        // The half readers, as the resolution uses them on the one qword it reads.
        Assert.True(RootEntry.IsPresent(Upper | 1));
        Assert.False(RootEntry.IsPresent(Upper));
        Assert.Equal(Upper, RootEntry.ContextTablePointerOf(Upper | 0xFFF));
        Assert.Equal(Upper | 1, RootEntry.PresentHalf(Upper | 0xABC));
    }

    [Theory]
    [InlineData(0x00, false, 0, 0x00)]
    [InlineData(0x7F, false, 0, 0x7F)]
    [InlineData(0x80, true, 8, 0x00)]
    [InlineData(0xA5, true, 8, 0x25)]
    [InlineData(0xFF, true, 8, 0x7F)]
    public void ScalableModeDevFnPicksTheHalfAndTheEntryInItsTable(byte devFn, bool upper, int halfOffset, int index)
    {
        Assert.Equal(upper, RootEntry.IsUpperHalf(devFn));
        Assert.Equal(halfOffset, RootEntry.ScalableHalfOffset(devFn));
        Assert.Equal(index, ScalableContextEntry.IndexOf(devFn));
    }

    [Fact]
    public void ContextEntryPlacesTtAwAndDidWhereTheSpecSays()
    {
        var e = ContextEntry.Create(Table, aw: 2, did: 0xBEEF, translationType: ContextEntry.TranslationTypePassThrough, fpd: true);
        Assert.Equal(Table | (2UL << 2) | 2 | 1, e.Lo);
        Assert.Equal(2UL | (0xBEEFUL << 8), e.Hi);
        Assert.True(e.Present);
        Assert.True(e.Fpd);
        Assert.Equal(ContextEntry.TranslationTypePassThrough, e.TranslationType);
        Assert.Equal(Table, e.SlptPtr);
        Assert.Equal(2, e.Aw);
        Assert.Equal((ushort)0xBEEF, e.Did);
    }

    [Fact]
    public void ScalableContextEntryPlacesFlagsPdtsAndRidPasid()
    {
        var e = ScalableContextEntry.Create(Table, pdts: 5, ridPasid: 0xF_FFFF, pasidEnable: true, pageRequestEnable: true, deviceTlbEnable: true, fpd: true);
        Assert.Equal(Table | (5UL << 9) | 16 | 8 | 4 | 2 | 1, e.Qw0);
        Assert.Equal(0xF_FFFFUL, e.Qw1);
        Assert.Equal(Table, e.PasidDirectoryPointer);
        Assert.Equal(5, e.Pdts);
        Assert.Equal(0xF_FFFFu, e.RidPasid);
        Assert.True(e.Dte && e.PasidEnable && e.PageRequestEnable && e.Fpd && e.Present);
    }

    [Fact]
    public void PasidDirectoryEntryHasPresentFpdAndPointer()
    {
        var e = PasidDirectoryEntry.Create(Table, fpd: true);
        Assert.Equal(Table | 2 | 1, e.Value);
        Assert.Equal(Table, e.PasidTablePointer);
    }

    [Fact]
    public void PasidEntryPlacesAwPgttDidAndSnoopBitsAtTheirAbsolutePositions()
    {
        var e = PasidEntry.SecondLevel(Table, aw: 3, did: 0x1234, pgsnp: true, pwsnp: true, ssade: true);
        // Absolute bits: AW 4:2, PGTT 8:6, SSADE 9, DID 79:64, PWSNP 87, PGSNP 88.
        Assert.Equal(Table | (1UL << 9) | (2UL << 6) | (3UL << 2) | 1, e.Qw0);
        Assert.Equal(0x1234UL | (1UL << (87 - 64)) | (1UL << (88 - 64)), e.Qw1);
        Assert.Equal(Pgtt.SecondLevel, e.Pgtt);
        Assert.Equal(3, e.Aw);
        Assert.Equal((ushort)0x1234, e.Did);
        Assert.Equal(Table, e.SsptPtr);

        var pt = PasidEntry.PassThrough(aw: 2, did: 7);
        Assert.Equal((4UL << 6) | (2UL << 2) | 1, pt.Qw0);
        Assert.Equal(Pgtt.PassThrough, pt.Pgtt);
    }

    [Theory]
    [InlineData(0u, 0u, 0u)]
    [InlineData(63u, 0u, 63u)]
    [InlineData(64u, 1u, 0u)]
    [InlineData(0xF_FFFFu, 0x3FFFu, 63u)]
    public void APasidSplitsIntoItsDirectoryEntryBits19To6AndItsTableEntryBits5To0(uint pasid, uint directory, uint entry)
    {
        Assert.Equal(directory, PasidDirectoryEntry.IndexOf(pasid));
        Assert.Equal(entry, PasidEntry.IndexOf(pasid));
        Assert.Equal(8, PasidDirectoryEntry.Size);
    }

    [Theory]
    [InlineData(0, 128u)]
    [InlineData(7, 16384u)]
    public void TheScalableContextEntrysPdtsGivesTwoToThePdtsPlus7DirectoryEntries(int pdts, uint entries) =>
        Assert.Equal(entries, ScalableContextEntry.Create(Table, pdts).PasidDirectoryEntries);
}
