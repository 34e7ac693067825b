using Engine.Iommu;
using Engine.Paging;
using Engine.Tests.Iommu;

namespace Engine.Tests.Lifecycle;

/// <summary>A disposed unit translates nothing and is never an access violation, alone or racing translators.</summary>
public class UnitDisposeTests
{
    private static TranslationRequest[] Requests(int pages) =>
    [
        .. Enumerable.Range(0, pages).Select(p => new TranslationRequest(UnitFixture.Sid, (ulong)p << 12, Access.Read)),
        new TranslationRequest(UnitFixture.Sid, 0x5000, Access.Write, 0),                       // with PASID
        new TranslationRequest(UnitFixture.Sid, 0x6000, Access.Read, isTranslationRequest: true), // ATS
        new TranslationRequest(TranslationRequest.Bdf(0x7F, 1, 1), 0x7000, Access.Read),          // no context
    ];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EveryTranslationAfterDisposeAnswersDisposedNeverPassThrough(bool simd)
    {
        using var f = new UnitFixture(scalable: true, simd: simd);
        f.Vm.Map(0, 64, Access.All);
        TranslationRequest[] requests = Requests(64);
        foreach (TranslationRequest r in requests)
            f.Unit.Translate(r);   // warm the IOTLB and the context cache: the hit path is what must stop
        Assert.True(f.Unit.Translate(requests[3]).IotlbHit);

        f.Unit.Dispose();

        Assert.True(f.Unit.IsDisposed);
        foreach (TranslationRequest r in requests)
        {
            TranslationResult t = f.Unit.Translate(r);
            Assert.Equal(TranslationStatus.Disposed, t.Status);
            Assert.False(t.IsSuccess, t.ToString());
            Assert.Equal(0UL, t.Hpa);
            Assert.Equal(FaultReason.None, t.Fault);
        }
        var results = new TranslationResult[requests.Length];
        f.Unit.TranslateBatch(requests, results);
        Assert.All(results, t => Assert.Equal(TranslationStatus.Disposed, t.Status));
        f.Unit.Dispose();   // twice is fine
    }

    [Fact]
    public void ADisposedUnitRecordsNoFaultAndIgnoresAGcmdThatWouldTurnTranslationBackOn()
    {
        using var f = new UnitFixture(scalable: false);
        long faults = f.Unit.FaultRecorder.Counters.Total;
        f.Unit.Dispose();
        Assert.Equal(TranslationStatus.Disposed, f.Translate(0x1000).Status);   // unmapped: would fault
        Assert.Equal(faults, f.Unit.FaultRecorder.Counters.Total);
        // The register file is the unit's no longer: a write to it changes no behaviour.
        f.Unit.Registers.Write(RegisterOffsets.GlobalCommand, 4, (uint)GlobalCommand.TranslationEnable);
        Assert.False(f.Unit.TranslationEnabled);
        Assert.Equal(TranslationStatus.Disposed, f.Translate(0x1000).Status);
    }

    [Fact]
    public void EveryControlCallOnADisposedUnitThrowsObjectDisposed()
    {
        using var f = new UnitFixture(scalable: true);
        ulong frame = f.Memory.AllocateFrame();
        f.Unit.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Unit.ReadRegister(RegisterOffsets.GlobalStatus, 4, out _));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.WriteRegister(RegisterOffsets.GlobalCommand, 4, 0));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.SetRootTable(f.Tables.RootTable, true));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.SetTranslationEnabled(true));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.IssueGlobalCommand(GlobalCommand.WriteBufferFlush));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.EnableQueuedInvalidation(f.Queue));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.Submit(InvalidationDescriptor.Iotlb(1)));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.EnablePageRequestQueue(frame));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.SubmitPageRequest(new PageRequest(UnitFixture.Sid, 0x1000, true, false, false, true, 1)));
        Assert.Throws<ObjectDisposedException>(() => f.Unit.DrainPageRequests());
        Assert.False(f.Unit.TranslationEnabled);
    }

    [Fact]
    public void TheIotlbAfterDisposeMissesRefusesFillsAndTakesInvalidationsQuietly()
    {
        var iotlb = new Iotlb(64);
        Iotlb.FillTicket ticket = iotlb.BeginFill(3);
        Assert.True(iotlb.TryFill(3, 0x4000, new IotlbEntry(0x1_0000_0000, PageSize.Size4K, Access.ReadWrite, false), ticket));
        Assert.True(iotlb.TryLookup(3, 0x4000, 2, out _));
        iotlb.Dispose();
        Assert.True(iotlb.IsDisposed);
        Assert.False(iotlb.TryLookup(3, 0x4000, 2, out _));
        Assert.False(iotlb.TryFill(3, 0x4000, new IotlbEntry(0x1_0000_0000, PageSize.Size4K, Access.ReadWrite, false), iotlb.BeginFill(3)));
        Assert.False(iotlb.TryLookup(3, 0x4000, 2, out _));
        Assert.Equal(0, iotlb.CountValid());
        iotlb.InvalidateAll();
        iotlb.InvalidateDomain(3);
        iotlb.InvalidatePages(3, 0x4000, 0);
    }

    /// <summary>
    /// Threads translate one by one and in batches, hits and misses, while the unit is disposed under
    /// them, many times over. Before the fix this killed the test host with an access violation (the
    /// IOTLB was freed under the hit path). A translation that started after Dispose returned must
    /// answer Disposed; one that raced it may answer either, but a success is always the right HPA.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DisposingWhileOtherThreadsTranslateNeverCrashesAndStopsEveryLaterTranslation(bool simd)
    {
        for (int round = 0; round < 12; round++)
        {
            using var f = new UnitFixture(scalable: round % 2 == 0, simd: simd);
            const int Pages = 256;
            f.Vm.Map(0, Pages, Access.All);
            ulong[] expected = [.. Enumerable.Range(0, Pages).Select(p => f.Backing((ulong)p << 12))];
            int disposed = 0, started = 0;
            string? failure = null;
            var threads = Enumerable.Range(0, 3).Select(t => new Thread(() =>
            {
                var rng = new Random(round * 7 + t);
                var requests = new TranslationRequest[16];
                var results = new TranslationResult[16];
                while (true)
                {
                    bool afterDispose = Volatile.Read(ref disposed) != 0;
                    int n = t == 0 ? 16 : 1;
                    for (int k = 0; k < n; k++)
                        requests[k] = new TranslationRequest(UnitFixture.Sid, ((ulong)rng.Next(Pages + 16) << 12) | 0x8, Access.Read);
                    if (n == 1)
                        results[0] = f.Unit.Translate(requests[0]);
                    else
                        f.Unit.TranslateBatch(requests, results);
                    Interlocked.Increment(ref started);
                    for (int k = 0; k < n; k++)
                    {
                        TranslationResult r = results[k];
                        int page = (int)(requests[k].Iova >> 12);
                        if (afterDispose && r.Status != TranslationStatus.Disposed)
                            failure ??= $"after Dispose returned: {r}";
                        if (r.IsSuccess && (page >= Pages || r.Hpa != (expected[page] | 0x8)))
                            failure ??= $"page {page}: {r}";
                    }
                    if (afterDispose)
                        return;
                }
            })).ToList();
            threads.ForEach(x => x.Start());
            // Dispose once every thread is translating; how far they got is not the point.
            SpinWait.SpinUntil(() => Volatile.Read(ref started) >= 300 || threads.Any(x => !x.IsAlive));
            f.Unit.Dispose();
            Volatile.Write(ref disposed, 1);
            threads.ForEach(x => x.Join());
            Assert.True(failure is null, $"round {round}: {failure}");
        }
    }
}
