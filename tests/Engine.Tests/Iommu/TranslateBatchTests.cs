using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

[Trait("Category", "Simd")]
public class TranslateBatchTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TwoDomainsSharingATableAreEachFilledByTheBatch(bool simd)
    {
        // Two devices in two domains (DIDs 5 and 9) whose contexts point at the same table, DID 9's
        // IOTLB state one domain invalidation ahead of DID 5's. A batch of misses from both walks the
        // table once per DID and fills each DID's entries under its own ticket: a repeat of the batch
        // is all hits. (Walked as one group under the first DID's ticket, DID 9's fills were refused.)
        using var f = new UnitFixture(scalable: false, simd: simd);
        f.Vm.Map(0, 4096, Access.All);
        ushort other = TranslationRequest.Bdf(0x3A, 6, 0);
        f.Tables.SetContext(other, ContextEntry.Create(f.Vm.Tdp.RootHpa, 2, 9));
        f.Unit.Iotlb.InvalidateDomain(9);
        var requests = new TranslationRequest[64];
        for (int i = 0; i < requests.Length; i++)
            requests[i] = new TranslationRequest(i % 2 == 0 ? UnitFixture.Sid : other, (ulong)(i * 37 % 4096) << 12, Access.Read);
        var first = new TranslationResult[64];
        var second = new TranslationResult[64];
        f.Unit.TranslateBatch(requests, first);
        long misses = f.Unit.IotlbMisses;
        f.Unit.TranslateBatch(requests, second);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.True(first[i].IsSuccess, $"request {i}: {first[i]}");
            Assert.Equal(i % 2 == 0 ? UnitFixture.Did : (ushort)9, first[i].Did);
            Assert.Equal(first[i].Hpa, second[i].Hpa);
            Assert.True(second[i].IotlbHit, $"request {i} ({requests[i]}) missed again: its fill was refused");
        }
        Assert.Equal(misses, f.Unit.IotlbMisses);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ChunksOfHitsAndMissesInEveryPatternTranslateAsOneByOne(bool simd)
    {
        // Some pages warmed before each batch, at random: the chunk's misses are any subset of its 64
        // positions (none, all, runs, lone ones, whole empty sixteens), listed by position before they
        // walk. Every answer is the one-by-one answer, a hit exactly where the page was warm, and each
        // miss counted once.
        // A VM of 4 KiB mappings only: a warm page warms no neighbour.
        using var f = new UnitFixture(scalable: false, simd: simd);
        using var small = new Engine.Kvm.Vm(f.Memory, new Engine.Kvm.VmOptions { TdpLevels = 4 });
        small.AddMemslot(0, 0, 64UL << 20, PageSize.Size4K);
        small.Map(0, 8192, Access.All);
        ushort sid = TranslationRequest.Bdf(0x3A, 7, 0);
        f.Tables.SetContext(sid, ContextEntry.Create(small.Tdp.RootHpa, 2, 9));
        var rng = new Random(23);
        var requests = new TranslationRequest[200];
        var batch = new TranslationResult[requests.Length];
        for (int round = 0; round < 40; round++)
        {
            f.Unit.Iotlb.InvalidateAll();
            var warm = new HashSet<ulong>();
            double share = rng.NextDouble();   // from almost every page warm to almost none
            for (int i = 0; i < requests.Length; i++)
            {
                ulong page = (ulong)(round * 200 + i) % 8192;
                requests[i] = new TranslationRequest(sid, (page << 12) | (uint)rng.Next(4096), Access.Read);
                if ((round % 5 == 0 && i % 64 < 16) || rng.NextDouble() < share)
                {
                    f.Unit.Translate(requests[i]);
                    warm.Add(page);
                }
            }
            long misses = f.Unit.IotlbMisses;
            f.Unit.TranslateBatch(requests, batch);
            Assert.Equal(requests.Length - warm.Count, f.Unit.IotlbMisses - misses);
            for (int i = 0; i < requests.Length; i++)
            {
                TranslationResult one = f.Unit.Translate(requests[i]);
                Assert.True(Same(one, batch[i]), $"round {round}, request {i}: batch {batch[i]}, one by one {one}");
                Assert.Equal(warm.Contains(requests[i].Iova >> 12), batch[i].IotlbHit);
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DomainsWhoseTablesDifferInLevelCountTranslateAsOneByOneInOneBatch(bool simd)
    {
        // Three devices: DID 5 in a 4-level table, DID 7 sharing that table, DID 9 in a 5-level table
        // of another VM mapping the same pages elsewhere. The batch walks each miss in its own table,
        // grouped by level count (a chunk's misses of one count walk together whatever their tables);
        // every answer is the one-by-one answer, and every fill is under its own DID (a repeat hits).
        using var f = new UnitFixture(scalable: false, levels: 4, simd: simd);
        using var wide = new Engine.Kvm.Vm(f.Memory, new Engine.Kvm.VmOptions { TdpLevels = 5, MaxHugePageLevel = 3 });
        wide.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        f.Vm.Map(0, 4096, Access.All);
        wide.Map(0, 4096, Access.Read);
        wide.Zap(2000, 100);
        ushort shared = TranslationRequest.Bdf(0x3A, 5, 0), fiveLevel = TranslationRequest.Bdf(0x3A, 6, 0);
        f.Tables.SetContext(shared, ContextEntry.Create(f.Vm.Tdp.RootHpa, 2, 7));
        f.Tables.SetContext(fiveLevel, ContextEntry.Create(wide.Tdp.RootHpa, 3, 9));
        ushort[] sources = [UnitFixture.Sid, shared, fiveLevel];
        var rng = new Random(11);
        var requests = new TranslationRequest[300];
        for (int i = 0; i < requests.Length; i++)
            requests[i] = new TranslationRequest(sources[rng.Next(3)], ((ulong)rng.Next(4096) << 12) | (uint)rng.Next(4096), rng.Next(6) == 0 ? Access.Write : Access.Read);
        var first = new TranslationResult[requests.Length];
        var second = new TranslationResult[requests.Length];
        f.Unit.TranslateBatch(requests, first);
        f.Unit.TranslateBatch(requests, second);
        int faults = 0;
        for (int i = 0; i < requests.Length; i++)
        {
            TranslationResult one = f.Unit.Translate(requests[i]);
            Assert.True(Same(one, first[i]), $"request {i} {requests[i]}: batch {first[i]}, one by one {one}");
            Assert.True(Same(one, second[i]), $"request {i} {requests[i]}, again: batch {second[i]}, one by one {one}");
            if (one.IsSuccess)
            {
                Assert.Equal(requests[i].SourceId == fiveLevel ? (ushort)9 : requests[i].SourceId == shared ? (ushort)7 : UnitFixture.Did, one.Did);
                Assert.True(second[i].IotlbHit, $"request {i} ({requests[i]}) missed again: its fill was refused or never made");
            }
            else
            {
                faults++;
            }
        }
        Assert.True(faults > 0, "no request faulted: the write-to-read-only and zapped cases are untested");
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void EveryBatchLengthFrom0To256TranslatesAsOneByOne(bool scalable, bool simd)
    {
        using var f = new UnitFixture(scalable, simd: simd);
        f.Vm.Map(0, 8192, Access.All);
        f.Vm.WriteProtect(100, 50);
        f.Vm.Zap(3000, 40);
        ushort other = TranslationRequest.Bdf(0x3A, 6, 0);
        if (scalable)
        {
            f.Tables.SetScalableContext(other);
            f.Tables.SetPasidEntry(other, 0, PasidEntry.PassThrough(2, 11));
        }
        else
        {
            f.Tables.SetContext(other, ContextEntry.Create(0, 2, 11, ContextEntry.TranslationTypePassThrough));
        }
        ushort missing = TranslationRequest.Bdf(0x3A, 7, 0);
        var rng = new Random(scalable ? 1 : 2);
        var requests = new TranslationRequest[256];
        var batch = new TranslationResult[256];
        for (int length = 0; length <= 256; length++)
        {
            for (int i = 0; i < length; i++)
            {
                ushort sid = rng.Next(10) switch { 0 => other, 1 => missing, _ => UnitFixture.Sid };
                ulong iova = rng.Next(20) == 0 ? 1UL << 50 : (ulong)rng.Next(9000) << 12 | (uint)rng.Next(4096);
                // Some requests leave the straight line: with a PASID, or an ATS translation request.
                int kind = rng.Next(16);
                requests[i] = new TranslationRequest(sid, iova, (Access)rng.Next(0, 8),
                    pasid: kind == 0 ? (uint)rng.Next(2) : TranslationRequest.NoPasid, isTranslationRequest: kind == 1);
            }
            if (rng.Next(3) == 0)
                f.Unit.Iotlb.InvalidateAll();
            long faultsBefore = f.Unit.Faults;
            f.Unit.TranslateBatch(requests.AsSpan(0, length), batch);
            long batchFaults = f.Unit.Faults - faultsBefore;
            faultsBefore = f.Unit.Faults;
            for (int i = 0; i < length; i++)
            {
                TranslationResult one = f.Unit.Translate(requests[i]);
                Assert.True(Same(one, batch[i]), $"length {length}, request {i} {requests[i]}: batch {batch[i]}, one by one {one}");
            }
            Assert.Equal(f.Unit.Faults - faultsBefore, batchFaults);
        }
    }

    [Fact]
    public void BatchTranslationAllocatesNothingAndRefusesAShortResultSpan()
    {
        using var f = new UnitFixture(scalable: true);
        f.Vm.Map(0, 4096, Access.All);
        var requests = Enumerable.Range(0, 256).Select(i => new TranslationRequest(UnitFixture.Sid, (ulong)(i * 13 % 4096) << 12, Access.Read)).ToArray();
        var results = new TranslationResult[256];
        void Pass()
        {
            for (int i = 0; i < 4000; i++)
            {
                if ((i & 63) == 0)
                    f.Unit.Iotlb.InvalidateAll();
                f.Unit.TranslateBatch(requests, results);
            }
        }
        Pass();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Pass();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal("results", Assert.Throws<ArgumentException>(() => f.Unit.TranslateBatch(requests, new TranslationResult[3])).ParamName);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DomainsOfEveryPageSizeMixTranslateAsOneByOne(bool simd)
    {
        // Four domains: 4K only, 2M only, 1G only, and 4K + 2M; the vector pass probes each lane at
        // its domain's smallest cached size, and a batch mixes all four in every group of eight.
        using var platform = new Engine.Control.Platform(new Engine.Control.PlatformOptions { Memory = new Engine.Memory.HostMemoryOptions { Size = 4UL << 30 } });
        (DmarUnit unit, TranslationRequest[] requests) = DomainsOfEveryPageSize(platform, simd);
        var batch = new TranslationResult[requests.Length];
        for (int round = 0; round < 3; round++)   // cold (walks), then warm twice
        {
            unit.TranslateBatch(requests, batch);
            for (int i = 0; i < requests.Length; i++)
            {
                TranslationResult one = unit.Translate(requests[i]);
                Assert.True(one.IsSuccess, one.ToString());
                Assert.True(Same(one, batch[i]), $"round {round}, request {i} {requests[i]}: batch {batch[i]}, one by one {one}");
                if (round > 0)
                    Assert.True(batch[i].IotlbHit, $"round {round}, request {i}: a warm batch answers from the IOTLB");
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ABatchsFillsOfEveryPageSizeAreTheNextBatchsHits(bool simd)
    {
        // Fresh domains have cached no page size, and a lookup probes only the sizes its domain has
        // cached: each fill must note its size before it can be seen. A cold batch, then the same
        // batch again with nothing in between: the second is all hits, and walks nothing.
        using var platform = new Engine.Control.Platform(new Engine.Control.PlatformOptions { Memory = new Engine.Memory.HostMemoryOptions { Size = 4UL << 30 } });
        (DmarUnit unit, TranslationRequest[] requests) = DomainsOfEveryPageSize(platform, simd);
        var cold = new TranslationResult[requests.Length];
        var warm = new TranslationResult[requests.Length];
        unit.TranslateBatch(requests, cold);
        long misses = unit.IotlbMisses;
        unit.TranslateBatch(requests, warm);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.True(cold[i].IsSuccess, cold[i].ToString());
            Assert.True(Same(cold[i], warm[i]), $"request {i} {requests[i]}: cold {cold[i]}, warm {warm[i]}");
            Assert.True(warm[i].IotlbHit, $"request {i} ({requests[i]}, a {cold[i].Size} page) missed again: its fill cannot be found");
        }
        Assert.Equal(misses, unit.IotlbMisses);
    }

    /// <summary>Four domains (4K only, 2M only, 1G only, 4K + 2M) and 200 requests mixing them at random, reads and writes.</summary>
    private static (DmarUnit Unit, TranslationRequest[] Requests) DomainsOfEveryPageSize(Engine.Control.Platform platform, bool simd)
    {
        IommuPreset preset = IommuPresets.GraniteRapidsServer;
        var iommu = platform.AddIommu("dmar0", new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, UseSimd = simd });
        var sids = new ushort[4];
        PageSize[][] sizes = [[PageSize.Size4K], [PageSize.Size2M], [PageSize.Size1G], [PageSize.Size4K, PageSize.Size2M]];
        for (int d = 0; d < 4; d++)
        {
            sids[d] = TranslationRequest.Bdf(d + 1, 0, 0);
            var device = platform.AddDevice($"dev{d}", sids[d], iommu);
            var domain = platform.AllocatePagingDomain(device);
            domain.Attach(device);
            foreach (PageSize size in sizes[d])
            {
                // 4K pages in the first GiB, 2M pages in the second, a 1G page at 2 GiB.
                ulong at = size switch { PageSize.Size4K => 0UL, PageSize.Size2M => 1UL << 30, _ => 2UL << 30 };
                domain.Map(at, (ulong)(d + 1) << 32 | at, size == PageSize.Size1G ? 1UL << 30 : 64 * size.Bytes(), Access.ReadWrite);
            }
        }
        var rng = new Random(7);
        var requests = new TranslationRequest[200];
        for (int i = 0; i < requests.Length; i++)
        {
            int d = rng.Next(4);
            PageSize size = sizes[d][rng.Next(sizes[d].Length)];
            ulong at = size switch { PageSize.Size4K => 0UL, PageSize.Size2M => 1UL << 30, _ => 2UL << 30 };
            ulong span = size == PageSize.Size1G ? 1UL << 30 : 64 * size.Bytes();
            requests[i] = new TranslationRequest(sids[d], at + (ulong)rng.NextInt64((long)span), rng.Next(5) == 0 ? Access.Write : Access.Read);
        }
        return (iommu.Unit, requests);
    }

    [Fact]
    public void TheLayoutsTheVectorHitPathReadsAndWritesHold()
    {
        // The batch's AVX-512 hit pass reads requests and writes results as pairs of 64-bit words.
        var request = new TranslationRequest(0x1234, 0x5566_7788, Access.Write, pasid: 7, isTranslationRequest: true);
        Assert.Equal(16, Unsafe.SizeOf<TranslationRequest>());
        Assert.Equal([0x5566_7788UL, 0x0102_1234_0000_0007UL], MemoryMarshal.Cast<TranslationRequest, ulong>(new[] { request }).ToArray());
        var result = new TranslationResult(TranslationStatus.Translated, 0x1122_3344_5566_7788, PageSize.Size2M, Access.ReadWrite, true, FaultReason.None, 0xABCD, true);
        Assert.Equal(16, Unsafe.SizeOf<TranslationResult>());
        // Word 1, low byte first: DID, status, size, permissions, snoop, fault, IOTLB hit.
        Assert.Equal([0x1122_3344_5566_7788UL, 0x0100_0103_0200_ABCDUL], MemoryMarshal.Cast<TranslationResult, ulong>(new[] { result }).ToArray());
    }

    private static bool Same(TranslationResult a, TranslationResult b) =>
        a.Status == b.Status && a.Hpa == b.Hpa && a.Size == b.Size && a.Permissions == b.Permissions
        && a.Snoop == b.Snoop && a.Fault == b.Fault && a.Did == b.Did;
}
