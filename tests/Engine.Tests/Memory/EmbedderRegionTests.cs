using System.Runtime.InteropServices;
using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Memory;

/// <summary>
/// Bring your own RAM: memory the embedder owns, registered as host memory, holding tables the
/// embedder wrote by hand and DMA buffers; walked and written in place, never freed by Engine.
/// </summary>
public sealed unsafe class EmbedderRegionTests : IDisposable
{
    private const ulong RamHpa = 0x1000_0000_0000UL; // 16 TiB, far above Engine's region
    private const ulong RamSize = 64 * 4096;
    private readonly byte* _ram = (byte*)NativeMemory.AlignedAlloc((nuint)RamSize, 4096);

    public EmbedderRegionTests() => new Span<byte>(_ram, (int)RamSize).Clear();

    public void Dispose() => NativeMemory.AlignedFree(_ram);

    private nint Ram(int page = 0) => (nint)(_ram + page * 4096);

    [Fact]
    public void BadRegionsAreRefusedWithWhatWasWrong()
    {
        using HostMemory memory = TestMemory.Create();
        Assert.Throws<ArgumentNullException>(() => memory.AddEmbedderRegion(RamHpa, 0, RamSize));
        Assert.Contains("size is 0", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AddEmbedderRegion(RamHpa, Ram(), 0)).Message);
        Assert.Contains("4 KiB aligned", Assert.Throws<ArgumentException>(() => memory.AddEmbedderRegion(RamHpa + 8, Ram(), RamSize)).Message);
        Assert.Throws<ArgumentException>(() => memory.AddEmbedderRegion(RamHpa, Ram() + 64, 4096));
        Assert.Throws<ArgumentException>(() => memory.AddEmbedderRegion(RamHpa, Ram(), 4096 + 512));
        Assert.Contains("wraps", Assert.Throws<ArgumentOutOfRangeException>(() => memory.AddEmbedderRegion(0xFFFF_FFFF_FFFF_F000UL, Ram(), 8192)).Message);
        Assert.Contains("host address width", Assert.Throws<ArgumentOutOfRangeException>(
            () => memory.AddEmbedderRegion((1UL << memory.HostAddressWidth) - 4096, Ram(), 8192)).Message);

        // Overlaps with Engine's own region: inside, across its start, across its end.
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(memory.BaseHpa + 4096, Ram(), 4096)).Errno);
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(memory.BaseHpa - 4096, Ram(), 8192)).Errno);
        Assert.Equal(Errno.EEXIST, Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(memory.EndHpa - 4096, Ram(), 8192)).Errno);
        Assert.Empty(memory.EmbedderRegions);

        // Adjacent is fine; then overlaps with it, by HPA and by host address, are refused.
        memory.AddEmbedderRegion(memory.EndHpa, Ram(0), 8 * 4096);
        memory.AddEmbedderRegion(RamHpa, Ram(8), 8 * 4096);
        var byHpa = Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(RamHpa + 7 * 4096, Ram(16), 2 * 4096));
        Assert.Equal(Errno.EEXIST, byHpa.Errno);
        Assert.Contains("registered before", byHpa.Message);
        var byHost = Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(RamHpa + (1UL << 30), Ram(15), 2 * 4096));
        Assert.Contains("host memory", byHost.Message);
        Assert.Equal([(memory.EndHpa, 8UL * 4096), (RamHpa, 8UL * 4096)], memory.EmbedderRegions);
    }

    [Fact]
    public void RegionsAreCountedUpToTheLimit()
    {
        using HostMemory memory = TestMemory.Create();
        int pages = HostMemory.MaxEmbedderRegions + 1;
        byte* many = (byte*)NativeMemory.AlignedAlloc((nuint)pages * 4096, 4096);
        try
        {
            for (int i = 0; i < HostMemory.MaxEmbedderRegions; i++)
                memory.AddEmbedderRegion(RamHpa + (ulong)i * 0x10_0000, (nint)(many + i * 4096), 4096);
            var full = Assert.Throws<EngineException>(() => memory.AddEmbedderRegion(RamHpa - 4096, (nint)(many + (pages - 1) * 4096), 4096));
            Assert.Equal(Errno.ENOSPC, full.Errno);
            Assert.Equal(HostMemory.MaxEmbedderRegions, memory.EmbedderRegions.Count);
        }
        finally
        {
            memory.Dispose();
            NativeMemory.AlignedFree(many);
        }
    }

    [Fact]
    public void EmbedderFramesAreReadWrittenButNeverAllocatedOrFreed()
    {
        using HostMemory memory = TestMemory.Create();
        memory.AddEmbedderRegion(RamHpa, Ram(), RamSize);
        memory.WriteEntry(RamHpa + 4096 + 16, 0x1234_5678UL);
        Assert.Equal(0x1234_5678UL, *(ulong*)(_ram + 4096 + 16));
        Assert.Equal(0x1234_5678UL, memory.ReadEntry(RamHpa + 4096 + 16));
        Assert.Equal(FrameState.Embedder, memory.GetFrameState(RamHpa + 4096));
        Assert.True(memory.IsEmbedderMemory(RamHpa, RamSize));
        Assert.False(memory.IsEmbedderMemory(RamHpa, RamSize + 1));
        memory.GetSpan(RamHpa + RamSize - 10, 10).Fill(7);
        Assert.Equal(7, _ram[RamSize - 1]);
        Assert.Equal(4096, memory.GetFrame(RamHpa + 8192).Length);
        Assert.Contains("embedder", Assert.Throws<InvalidHostAddressException>(() => memory.FreeFrame(RamHpa)).Message);
        // A range that runs past the region's end is outside memory, never a read past the buffer.
        Assert.Throws<InvalidHostAddressException>(() => memory.GetSpan(RamHpa + RamSize - 8, 16));
        Assert.Throws<InvalidHostAddressException>(() => memory.ReadEntry(RamHpa + RamSize));
        Assert.Equal(0UL, memory.Statistics.FramesInUse);
    }

    // A 4-level second-stage table for [0, 2 MiB) written by hand into the embedder's pages 0..3,
    // leaves pointing at the embedder's pages 8.. (read/write), and one 2 MiB leaf at 1 GiB.
    private static void BuildTables(HostMemory memory, ulong ramHpa)
    {
        const ulong Rw = 3, Ps = 1UL << 7;
        ulong Page(int n) => ramHpa + (ulong)n * 4096;
        memory.WriteEntry(Page(0), Page(1) | Rw);                 // PML4[0] → PDPT
        memory.WriteEntry(Page(1), Page(2) | Rw);                 // PDPT[0] → PD
        memory.WriteEntry(Page(1) + 8, Page(4) | Rw);             // PDPT[1] → PD for 1 GiB
        memory.WriteEntry(Page(2), Page(3) | Rw);                 // PD[0] → PT
        for (int i = 0; i < 32; i++)
            memory.WriteEntry(Page(3) + (ulong)i * 8, Page(8 + i) | Rw);
        memory.WriteEntry(Page(4), 0x2_0000_0000UL | Ps | Rw);    // PD[0] of 1 GiB: a 2 MiB leaf
        memory.WriteEntry(Page(3) + 40 * 8, 0x2EAD_0000_0000UL | Rw);  // a leaf pointing nowhere (fine: leaves are not read)
        memory.WriteEntry(Page(3) + 41 * 8, 0);                   // not present
        memory.WriteEntry(Page(2) + 8, 0x3777_0000_0000UL | Rw);  // PD[1] → a table outside every region
    }

    [Fact]
    public void EveryWalkerWalksEmbedderTablesAsTheReferenceDoes()
    {
        using HostMemory memory = TestMemory.Create();
        memory.AddEmbedderRegion(RamHpa, Ram(), RamSize);
        BuildTables(memory, RamHpa);
        WalkerConfig config = WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2);
        ulong[] addresses = [0, 0x1234, 31 * 4096 + 8, 40 * 4096, 41 * 4096, 0x20_0000, 0x20_1000, 1UL << 30, (1UL << 30) + 0x1F_FFFF, 0x4000_0000_00UL, 2UL << 30];

        using (memory.Epochs.Enter())
        {
            WalkResult first = PageWalker.WalkReference(memory, config, RamHpa, 4, 0x1234, Access.Write);
            Assert.True(first.IsSuccess);
            Assert.Equal(RamHpa + 9 * 4096 + 0x234, first.Hpa);
            Assert.Equal(WalkFault.TablePointerOutsideMemory, PageWalker.WalkReference(memory, config, RamHpa, 4, 0x20_0000, Access.Read).Fault);
            Assert.Equal(0x2_0000_0000UL + 0x1F_FFFF, PageWalker.WalkReference(memory, config, RamHpa, 4, (1UL << 30) + 0x1F_FFFF, Access.Read).Hpa);

            var bound = new BoundWalker(memory, config, RamHpa, 4);
            foreach (Access access in new[] { Access.Read, Access.Write })
            {
                WalkResult[] expected = [.. addresses.Select(a => PageWalker.WalkReference(memory, config, RamHpa, 4, a, access))];
                Assert.Equal(expected, addresses.Select(a => PageWalker.Walk(memory, config, RamHpa, 4, a, access)));
                Assert.Equal(expected, addresses.Select(a => bound.Walk(a, access)));
                foreach (BatchWalkerKind kind in PageWalker.SupportedBatchWalkers)
                {
                    var results = new WalkResult[addresses.Length];
                    PageWalker.WalkBatchWith(kind, memory, config, RamHpa, 4, addresses, access, results);
                    Assert.Equal(expected, results);
                }
            }
        }
    }

    [Fact]
    public void TablesMayHopBetweenEngineMemoryAndTwoEmbedderRegions()
    {
        using HostMemory memory = TestMemory.Create();
        const ulong Second = RamHpa + (1UL << 30);
        memory.AddEmbedderRegion(RamHpa, Ram(0), 32 * 4096);
        memory.AddEmbedderRegion(Second, Ram(32), 32 * 4096);
        ulong root = memory.AllocateFrame(), pt = memory.AllocateFrame();
        memory.WriteEntry(root, RamHpa | 3);                       // PML4 (Engine) → PDPT (first region)
        memory.WriteEntry(RamHpa, Second | 3);                     // PDPT → PD (second region)
        memory.WriteEntry(Second, pt | 3);                         // PD[0] → PT (Engine)
        memory.WriteEntry(Second + 8, 0x4000_0000UL | 1 << 7 | 1); // PD[1]: a 2 MiB read-only leaf
        memory.WriteEntry(Second + 16, (RamHpa + 4096) | 3 | 1UL << 62);  // PD[2]: a reserved bit
        memory.WriteEntry(Second + 24, (Second + 31 * 4096) | 3);  // PD[3] → the second region's last page
        memory.WriteEntry(pt + 8, (RamHpa + 0x10_000) | 3);        // PT[1] → a page of embedder RAM
        memory.WriteEntry(pt + 16, (RamHpa + 0x10_000) | 1);       // PT[2] → read-only
        memory.WriteEntry(Second + 31 * 4096 + 8, 0x9000 | 2);     // PT[1] there: write-only
        WalkerConfig[] configs = [WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2), WalkerConfig.Ept(ReservedBitMasks.ForEpt(memory.HostAddressWidth, 2, bit11Reserved: false))];
        ulong[] addresses = [0x1008, 0x2000, 0x3000, 0x20_0000, 0x3F_FFFF, 0x40_0000, 0x60_1000, 0x60_2000, 1UL << 39];
        using (memory.Epochs.Enter())
        {
            WalkResult hop = PageWalker.Walk(memory, configs[0], root, 4, 0x1008, Access.Read);
            Assert.True(hop.IsSuccess);
            Assert.Equal(RamHpa + 0x10_008, hop.Hpa);
            foreach (WalkerConfig config in configs)
            {
                foreach (Access access in new[] { Access.Read, Access.Write, Access.Read | Access.Write })
                {
                    foreach (ulong a in addresses)
                        Assert.Equal(PageWalker.WalkReference(memory, config, root, 4, a, access), PageWalker.Walk(memory, config, root, 4, a, access));
                }
            }
        }
    }

    [Fact]
    public void WithoutARegionTheSameTablesFaultAndNothingIsRead()
    {
        using HostMemory memory = TestMemory.Create();
        WalkerConfig config = WalkerConfig.SecondStage(memory.HostAddressWidth, superpageLevel: 2);
        using (memory.Epochs.Enter())
            Assert.Equal(WalkFault.TablePointerOutsideMemory, PageWalker.Walk(memory, config, RamHpa, 4, 0x1234, Access.Read).Fault);
    }

    [Fact]
    public void AUnitTranslatesThroughRootContextAndTablesInEmbedderRamAndDmaLandsThere()
    {
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 } });
        platform.AddRam(RamHpa, Ram(), RamSize);
        IommuInstance iommu = platform.AddIommu("dmar0", IommuPresets.Get("server"));
        ushort sid = TranslationRequest.Bdf(3, 0, 0);
        Device device = platform.AddDevice("nic", sid, iommu);
        HostMemory memory = platform.Memory;

        // Pages 0..7 are tables (root at 60, context at 61 to keep them apart), the data at 8...
        BuildTables(memory, RamHpa);
        ulong rootTable = RamHpa + 60 * 4096, contextTable = RamHpa + 61 * 4096;
        RootEntry root = RootEntry.Legacy(contextTable);
        memory.WriteEntry(rootTable + 3 * 16, root.Lo);
        ContextEntry context = ContextEntry.Create(RamHpa, aw: 2, did: 9);
        memory.WriteEntry(contextTable + 8, context.Hi);
        memory.WriteEntry(contextTable, context.Lo);
        // Taken over from Engine's driver, as a guest kernel would: the legacy table, TE on.
        iommu.Unit.SetRootTable(rootTable, scalable: false);
        iommu.Unit.SetTranslationEnabled(true);

        TranslationResult t = iommu.Unit.Translate(new TranslationRequest(sid, 0x2345, Access.Write));
        Assert.True(t.IsSuccess, t.ToString());
        Assert.Equal(RamHpa + 10 * 4096 + 0x345, t.Hpa);

        byte[] packet = [.. Enumerable.Range(1, 100).Select(i => (byte)i)];
        DmaResult write = DmaTransfer.Write(device, 0x1FF0, packet);
        Assert.Equal(DmaStatus.Complete, write.Status);
        Assert.Equal(packet, new Span<byte>(_ram + 9 * 4096 + 0xFF0, 16).ToArray().Concat(new Span<byte>(_ram + 10 * 4096, 84).ToArray()));
        var back = new byte[100];
        Assert.Equal(DmaStatus.Complete, DmaTransfer.Read(device, 0x1FF0, back).Status);
        Assert.Equal(packet, back);

        // A next-table pointer outside every region: the spec's fault (0x7 in legacy mode), no access.
        TranslationResult outside = iommu.Unit.Translate(new TranslationRequest(sid, 0x20_0000, Access.Read));
        Assert.Equal(FaultReason.PagingEntryInvalid, outside.Fault);
        // A root table outside every region: the unit cannot read the root entry.
        iommu.Unit.SetRootTable(0x6666_0000_0000UL, scalable: false);
        Assert.False(iommu.Unit.Translate(new TranslationRequest(sid, 0x2345, Access.Write)).IsSuccess);
    }

    [Fact]
    public void AfterDisposeNothingReadsTheEmbedderRamAgain()
    {
        var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 } });
        platform.AddRam(RamHpa, Ram(), RamSize);
        BuildTables(platform.Memory, RamHpa);
        HostMemory memory = platform.Memory;
        platform.Dispose();
        Assert.Empty(memory.EmbedderRegions);
        // The embedder may now reuse the buffer: poison it; a late walk must fault, not read it.
        new Span<byte>(_ram, (int)RamSize).Fill(0xFF);
        WalkerConfig config = WalkerConfig.SecondStage(48, superpageLevel: 2);
        Assert.Equal(WalkFault.TablePointerOutsideMemory, PageWalker.WalkReference(memory, config, RamHpa, 4, 0x1234, Access.Read).Fault);
        Assert.Equal(WalkFault.TablePointerOutsideMemory, PageWalker.Walk(memory, config, RamHpa, 4, 0x1234, Access.Read).Fault);
        Assert.Throws<ObjectDisposedException>(() => platform.AddRam(RamHpa, Ram(), RamSize));
        Assert.Throws<ObjectDisposedException>(() => memory.AddEmbedderRegion(RamHpa, Ram(), RamSize));
    }
}
