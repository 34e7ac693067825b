#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
using Engine.Control;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Workloads;

/// <summary>
/// A platform for the IOTLB workloads: one Granite Rapids unit, four devices each in its own paging
/// domain (DIDs differ), the anchors' 2048 keys mapped at <see cref="Size"/>, and the anchors'
/// 65,536-request stream.
/// </summary>
public sealed class HitSetup : IDisposable
{
    public HitSetup(PageSize size, int iotlbSets, BatchWalkerKind? batchWalker = null)
    {
        Size = size;
        // The THP hint, as the walk workloads and the anchors' best rows have it: the misses' table frames (about
        // 6,000 of them) then sit in a few huge pages, and a walk pays no host TLB miss per level.
        Platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 8UL << 30, TransparentHugePages = true }, BatchWalker = batchWalker });
        IommuPreset preset = IommuPresets.GraniteRapidsServer;
        IommuInstance iommu = Platform.AddIommu("dmar0", new DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, IotlbSets = iotlbSets });
        Unit = iommu.Unit;
        var devices = new Device[5];
        var domains = new PagingDomain[5];
        for (int did = 1; did <= 4; did++)
        {
            devices[did] = Platform.AddDevice($"dev{did}", TranslationRequest.Bdf(did, 0, 0), iommu);
            domains[did] = Platform.AllocatePagingDomain(devices[did]);
            domains[did].Attach(devices[did]);
        }
        Domains = domains;
        var keys = HitWorkingSet.GenerateKeys();
        int shift = size.Shift();
        ulong Iova(int k) => (keys[k].Vpn & ((1UL << (48 - shift)) - 1)) << shift;
        var mapped = new HashSet<(ushort, ulong)>();
        for (int k = 0; k < keys.Length; k++)
        {
            if (mapped.Add((keys[k].Did, Iova(k))))
                domains[keys[k].Did].Map(Iova(k), ((ulong)k << shift) & ((1UL << 45) - 1), size.Bytes(), Access.ReadWrite);
        }
        Stream = [.. HitWorkingSet.GenerateStream().Select(s => new TranslationRequest(devices[keys[s.Key].Did].SourceId, Iova(s.Key) | s.Offset, Access.Read))];
        Distinct = [.. Enumerable.Range(0, keys.Length).Select(k => new TranslationRequest(devices[keys[k].Did].SourceId, Iova(k), Access.Read))];
        foreach (TranslationRequest r in Stream)
        {
            if (!Unit.Translate(r).IsSuccess)
                throw new InvalidOperationException($"setup: {r} does not translate.");
        }
    }

    public PageSize Size { get; }

    public Platform Platform { get; }

    public DmarUnit Unit { get; }

    public TranslationRequest[] Stream { get; }

    public TranslationRequest[] Distinct { get; }

    /// <summary>The four paging domains, by DID (index 0 unused).</summary>
    internal PagingDomain[] Domains { get; }

    /// <summary>Throws unless a pass over the stream is all IOTLB hits.</summary>
    public void RequireAllHits()
    {
        long misses = Unit.IotlbMisses;
        foreach (TranslationRequest r in Stream)
            Unit.Translate(r);
        if (Unit.IotlbMisses != misses)
            throw new InvalidOperationException($"setup: {Unit.IotlbMisses - misses} misses in a warm pass; the workload would not be all hits.");
    }

    /// <summary>
    /// How much of the tables the host backs with huge pages (the THP hint is only a hint): a miss-heavy
    /// run over tables in 4 KiB host pages pays a host TLB miss per level and can be twice as slow.
    /// </summary>
    public string HugePageNote()
    {
        long? thp = Platform.Memory.TransparentHugePageBytes();
        ulong tables = Platform.Memory.Statistics.FramesInUse * HostMemory.FrameSize;
        return thp is null ? "THP unknown" : $"THP {thp.Value >> 20} MiB, tables {tables >> 20} MiB";
    }

    public void Dispose() => Platform.Dispose();
}

/// <summary>A workload over a <see cref="HitSetup"/>, which it disposes with itself.</summary>
public abstract class HitSetupWorkload : Workload
{
    /// <summary>The platform and stream, built by <see cref="Workload.Setup"/>.</summary>
    protected HitSetup? Hit { get; set; }

    public override void Dispose()
    {
        Hit?.Dispose();
        base.Dispose();
    }
}

/// <summary>iotlb-hit / -2m / -1g: <see cref="DmarUnit.Translate"/> of the warm stream, all hits.</summary>
public sealed class IotlbHitWorkload(PageSize size, string name) : HitSetupWorkload
{

    public override string Name => name;

    public override string Description => $"Translate, IOTLB hits: 4 domains, 2048 random {size} pages, 65,536 random picks";

    public override long OperationsPerPass => HitWorkingSet.StreamLength;

    public override void Setup()
    {
        Hit = new HitSetup(size, 16384);
        Hit.RequireAllHits();
    }

    public override ulong RunPass()
    {
        DmarUnit unit = Hit!.Unit;
        ulong sum = 0;
        foreach (ref readonly TranslationRequest r in Hit.Stream.AsSpan())
            sum += unit.Translate(r).Hpa;
        return sum;
    }
}

/// <summary>
/// iotlb-lookup: the IOTLB alone (<see cref="Iotlb.TryLookup"/>) over the iotlb-hit stream with each
/// request's DID known — no context, no permission check, no result — the part of iotlb-hit that the
/// anchors' limit-hit rows measure, so the rest of a translation can be told from the probe.
/// </summary>
public sealed class IotlbLookupWorkload : HitSetupWorkload
{
    private ushort[] _dids = [];
    private ulong[] _iovas = [];

    public override string Name => "iotlb-lookup";

    public override string Description => "Iotlb.TryLookup alone over the iotlb-hit stream (DID known): the probe without the translation around it";

    public override long OperationsPerPass => HitWorkingSet.StreamLength;

    public override void Setup()
    {
        Hit = new HitSetup(PageSize.Size4K, 16384);
        Hit.RequireAllHits();
        _dids = [.. Hit.Stream.Select(r => Hit.Unit.Translate(r).Did)];
        _iovas = [.. Hit.Stream.Select(r => r.Iova)];
    }

    public override ulong RunPass()
    {
        Iotlb iotlb = Hit!.Unit.Iotlb;
        ushort[] dids = _dids;
        ulong[] iovas = _iovas;
        ulong sum = 0;
        for (int i = 0; i < iovas.Length && i < dids.Length; i++)
        {
            iotlb.TryLookup(dids[i], iovas[i], 0, out IotlbEntry entry);
            sum += entry.PageHpa;
        }
        return sum;
    }
}

/// <summary>iotlb-hit-batch: the same stream through <see cref="DmarUnit.TranslateBatch"/>.</summary>
public sealed class IotlbHitBatchWorkload : HitSetupWorkload
{
    private TranslationResult[] _results = [];

    public override string Name => "iotlb-hit-batch";

    public override string Description => "TranslateBatch of the warm iotlb-hit stream, all hits";

    public override long OperationsPerPass => HitWorkingSet.StreamLength;

    public override void Setup()
    {
        Hit = new HitSetup(PageSize.Size4K, 16384);
        Hit.RequireAllHits();
        _results = new TranslationResult[Hit.Stream.Length];
    }

    public override ulong RunPass()
    {
        Hit!.Unit.TranslateBatch(Hit.Stream, _results);
        ulong sum = 0;
        foreach (ref readonly TranslationResult r in _results.AsSpan())
            sum += r.Hpa;
        return sum;
    }
}

/// <summary>iotlb-thrash: the 2048-page stream against the default IOTLB (1024 sets × 3 ways).</summary>
public sealed class IotlbThrashWorkload : HitSetupWorkload
{
    private long _translations;
    private long _misses;

    public override string Name => "iotlb-thrash";

    public override string Description => "Translate of the 2048-page stream against the default-size IOTLB (misses walk)";

    public override long OperationsPerPass => HitWorkingSet.StreamLength;

    public override void Setup() => Hit = new HitSetup(PageSize.Size4K, 1024);

    public override ulong RunPass()
    {
        DmarUnit unit = Hit!.Unit;
        long misses = unit.IotlbMisses;
        ulong sum = 0;
        foreach (ref readonly TranslationRequest r in Hit.Stream.AsSpan())
            sum += unit.Translate(r).Hpa;
        _translations += Hit.Stream.Length;
        _misses += unit.IotlbMisses - misses;
        return sum;
    }

    public override string? Note => _translations == 0 ? null : $"hit rate {100.0 * (_translations - _misses) / _translations:F1} %";

    public override double? IotlbHitRate => _translations == 0 ? null : (double)(_translations - _misses) / _translations;
}

/// <summary>translate-miss: the IOTLB invalidated, then every page of the working set once (each walks).</summary>
public sealed class TranslateMissWorkload : HitSetupWorkload
{

    public override string Name => "translate-miss";

    public override string Description => "Translate with the IOTLB invalidated before each pass: 2048 walks";

    public override long OperationsPerPass => HitWorkingSet.Keys;

    public override string? Note => Hit?.HugePageNote();

    public override void Setup() => Hit = new HitSetup(PageSize.Size4K, 16384);

    public override ulong RunPass()
    {
        DmarUnit unit = Hit!.Unit;
        unit.Iotlb.InvalidateAll();
        ulong sum = 0;
        foreach (ref readonly TranslationRequest r in Hit.Distinct.AsSpan())
            sum += unit.Translate(r).Hpa;
        return sum;
    }
}

/// <summary>
/// translate-miss-batch: the misses of translate-miss through <see cref="DmarUnit.TranslateBatch"/> —
/// the IOTLB invalidated, then every page of the working set once, each chunk's misses walked together
/// by the batch walker (each in its own domain's table) and then filled.
/// </summary>
public sealed class TranslateMissBatchWorkload : HitSetupWorkload
{
    private TranslationResult[] _results = [];

    public override string Name => "translate-miss-batch";

    public override string Description => "TranslateBatch with the IOTLB invalidated before each pass: 2048 walks, each chunk's walked together across domains, then filled";

    public override long OperationsPerPass => HitWorkingSet.Keys;

    public override bool UsesBatchWalker => true;

    public override string? Note => Hit is null ? null : $"batch walker {Hit.Unit.BatchWalker}; {Hit.HugePageNote()}";

    public override void Setup()
    {
        Hit = new HitSetup(PageSize.Size4K, 16384, BatchWalker);
        _results = new TranslationResult[Hit.Distinct.Length];
        // Every request must walk, and translate: check one pass before any is timed.
        long misses = Hit.Unit.IotlbMisses;
        RunPass();
        if (Hit.Unit.IotlbMisses - misses != Hit.Distinct.Length || _results.Any(r => !r.IsSuccess || r.IotlbHit))
            throw new InvalidOperationException($"setup: {Hit.Unit.IotlbMisses - misses} walks for {Hit.Distinct.Length} requests; every one must miss and translate.");
    }

    public override ulong RunPass()
    {
        DmarUnit unit = Hit!.Unit;
        unit.Iotlb.InvalidateAll();
        unit.TranslateBatch(Hit.Distinct, _results);
        ulong sum = 0;
        foreach (ref readonly TranslationResult r in _results.AsSpan())
            sum += r.Hpa;
        return sum;
    }
}

/// <summary>
/// iotlb-hit-mt: iotlb-hit on every thread at once (each its own rotation of the stream), combined
/// rate. The worker threads are made once and started per pass by a spinning phase counter (a
/// <see cref="Barrier"/> may allocate its wait handle the first time a thread blocks), so a pass
/// allocates nothing.
/// </summary>
public sealed class IotlbHitMultiThreadWorkload(int threads) : HitSetupWorkload
{
    private Thread[] _workers = [];
    private ulong[] _slots = [];
    private TranslationRequest[][] _streams = [];
    private bool _pinned;
    private long _phase;
    private long _finished;
    private volatile bool _stop;

    public override string Name => "iotlb-hit-mt";

    public override string Description => $"iotlb-hit on {threads} threads, combined rate";

    public override int Threads => threads;

    // Several rounds of the stream per pass, so the threads meet (and wait for the slower one) rarely.
    private const int RoundsPerPass = 8;

    public override long OperationsPerPass => RoundsPerPass * HitWorkingSet.StreamLength;

    public override void Setup()
    {
        Hit = new HitSetup(PageSize.Size4K, 16384);
        Hit.RequireAllHits();
        _slots = new ulong[threads * 8]; // per worker: [sum, allocated bytes], one cache line apart
        // Each worker its own rotation of the stream, as a copy: its loop is then iotlb-hit's loop.
        TranslationRequest[] stream = Hit.Stream;
        _streams = [.. Enumerable.Range(0, threads).Select(t => (TranslationRequest[])[.. stream.Skip(t * stream.Length / threads), .. stream.Take(t * stream.Length / threads)])];
        // The calling thread is worker 0, so no core idles in a wait while the others translate.
        _workers = [.. Enumerable.Range(1, threads - 1).Select(t => new Thread(() => Work(t)) { IsBackground = true, Name = $"iotlb-hit-mt-{t}" })];
        foreach (Thread w in _workers)
            w.Start();
    }

    private void Work(int t)
    {
        DmarUnit unit = Hit!.Unit;
        ThreadPinning.TryPin(t);
        long seen = 0;
        while (true)
        {
            var spinner = new SpinWait();
            while (Volatile.Read(ref _phase) == seen && !_stop)
                spinner.SpinOnce(sleep1Threshold: -1);
            if (_stop)
                return;
            seen++;
            Share(t, unit);
            Interlocked.Increment(ref _finished);
        }
    }

    private void Share(int t, DmarUnit unit)
    {
        ulong sum = 0;
        for (int round = 0; round < RoundsPerPass; round++)
        {
            foreach (ref readonly TranslationRequest r in _streams[t].AsSpan())
                sum += unit.Translate(r).Hpa;
        }
        _slots[t * 8] = sum;
        Volatile.Write(ref _slots[t * 8 + 1], (ulong)GC.GetAllocatedBytesForCurrentThread());
    }

    public override long AllocatedBytes
    {
        get
        {
            long total = GC.GetAllocatedBytesForCurrentThread();
            for (int t = 1; t < threads; t++)
                total += (long)Volatile.Read(ref _slots[t * 8 + 1]);
            return total;
        }
    }

    public override ulong RunPass()
    {
        long phase = Interlocked.Increment(ref _phase);
        if (!_pinned)
            _pinned = ThreadPinning.TryPin(0);
        Share(0, Hit!.Unit);
        var spinner = new SpinWait();
        while (Volatile.Read(ref _finished) < phase * (threads - 1))
            spinner.SpinOnce(sleep1Threshold: -1);
        ulong total = 0;
        for (int t = 0; t < threads; t++)
            total += _slots[t * 8];
        return total;
    }

    public override void Dispose()
    {
        _stop = true;
        foreach (Thread w in _workers)
            w.Join();
        if (_pinned)
            ThreadPinning.Unpin();   // the calling thread goes on to other work
        base.Dispose();
    }
}

/// <summary>inval-page / inval-domain: the cost of one page-selective / domain-selective IOTLB invalidation.</summary>
public sealed class InvalidationWorkload(bool pageSelective) : HitSetupWorkload
{
    private const int PerPass = 4096;

    public override string Name => pageSelective ? "inval-page" : "inval-domain";

    public override string Description => pageSelective ? "one page-selective IOTLB invalidation (AM 0)" : "one domain-selective IOTLB invalidation (a generation step)";

    public override long OperationsPerPass => PerPass;

    public override void Setup() => Hit = new HitSetup(PageSize.Size4K, 1024);

    public override ulong RunPass()
    {
        Iotlb iotlb = Hit!.Unit.Iotlb;
        for (int i = 0; i < PerPass; i++)
        {
            if (pageSelective)
                iotlb.InvalidatePages(1, Hit.Distinct[i & 2047].Iova, 0);
            else
                iotlb.InvalidateDomain((ushort)(1 + (i & 3)));
        }
        return PerPass;
    }
}

/// <summary>
/// walk-missset: the walks of translate-miss alone — the unit's walker over the same four domains'
/// tables, the same 2048 pages in the same order, with no context lookup, IOTLB probe or fill. The
/// floor under translate-miss on its own tables (whose loads hit other caches than the anchors'
/// walk-cold): what a miss costs beyond it is the translator's.
/// </summary>
public sealed class WalkMissSetWorkload : HitSetupWorkload
{
    private ulong[] _roots = [];
    private int[] _levels = [];
    private ulong[] _iovas = [];
    private int[] _domains = [];
    private ulong _expected;

    public override string Name => "walk-missset";

    public override string Description => "The unit's walker alone over translate-miss's tables: 2048 walks in its order, no context, IOTLB or fill";

    public override long OperationsPerPass => HitWorkingSet.Keys;

    public override string? Note => Hit?.HugePageNote();

    public override void Setup()
    {
        Hit = new HitSetup(PageSize.Size4K, 16384);
        _roots = [.. Hit.Domains.Select(d => d?.Pgd ?? 0)];
        _levels = [.. Hit.Domains.Select(d => d is null ? 0 : AgawMath.AgawToLevel(d.Agaw))];
        var domainOf = new Dictionary<ushort, int>();
        for (int d = 1; d < Hit.Domains.Length; d++)
        {
            foreach (Device device in Hit.Domains[d].Devices)
                domainOf[device.SourceId] = d;
        }
        _iovas = [.. Hit.Distinct.Select(r => r.Iova)];
        _domains = [.. Hit.Distinct.Select(r => domainOf[r.SourceId])];
        // The same pages as translate-miss translates: the walks must give the unit's answers.
        _expected = 0;
        foreach (TranslationRequest r in Hit.Distinct)
            _expected += Hit.Unit.Translate(r).Hpa;
        if (RunPass() != _expected)
            throw new InvalidOperationException("setup: the walks do not give the unit's translations.");
    }

    public override ulong RunPass()
    {
        HostMemory memory = Hit!.Platform.Memory;
        WalkerConfig config = Hit.Unit.WalkerConfig;
        ulong sum = 0;
        using (memory.Epochs.Enter())
        {
            for (int i = 0; i < _iovas.Length; i++)
            {
                int d = _domains[i];
                sum += PageWalker.Walk(memory, config, _roots[d], _levels[d], _iovas[i], Access.None).Hpa;
            }
        }
        return sum;
    }
}
