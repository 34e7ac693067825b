using Engine.Iommu;
using Engine.Memory;

namespace Engine.Tests.Iommu;

public class TranslationTablesTests
{
    [Fact]
    public void MisuseIsRefusedWithTheReasonAndChangesNothing()
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 16UL << 20 });
        var legacy = new TranslationTables(memory, scalable: false);
        var scalable = new TranslationTables(memory, scalable: true);
        ulong before = memory.Statistics.FramesInUse;
        Assert.Contains("legacy", Assert.Throws<InvalidOperationException>(() => legacy.SetScalableContext(0x100)).Message);
        Assert.Contains("scalable", Assert.Throws<InvalidOperationException>(() => scalable.SetContext(0x100, ContextEntry.Create(0, 2, 1))).Message);
        Assert.Equal("pasid", Assert.Throws<ArgumentOutOfRangeException>(() => scalable.SetPasidEntry(0x100, 1u << 20, PasidEntry.PassThrough(2, 1))).ParamName);
        Assert.Equal("pasid", Assert.Throws<ArgumentOutOfRangeException>(() => scalable.SetPasidEntry(0x100, 1u << 14, PasidEntry.PassThrough(2, 1))).ParamName);
        Assert.Equal(before, memory.Statistics.FramesInUse);
        Assert.Throws<ArgumentNullException>(() => new TranslationTables(null!, scalable: true));
    }
}
