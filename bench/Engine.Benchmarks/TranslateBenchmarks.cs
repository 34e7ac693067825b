using Engine.Workloads;
using BenchmarkDotNet.Attributes;
using Engine.Control;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Benchmarks;

/// <summary>
/// <see cref="DmarUnit.Translate"/> on the anchors' IOTLB working set: four devices, each in its own
/// paging domain (its own DID), 2048 random pages of the given size mapped, and the 65,536-request
/// stream; all hits once warm. The anchors chose their keys so no set of their 4-way table
/// overflows; the engine's sets are 3-way with another index function, so the bench IOTLB has
/// 16384 sets (the 2048 keys still touch 2048 cache lines, 128 KiB, as in C), where the same keys
/// all fit — setup verifies a warm pass has no miss. Results read per translation.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class TranslateBenchmarks
{
    private HitSetup? _hit;
    private DmarUnit? _unit;
    private TranslationRequest[] _stream = [];
    private TranslationRequest[] _distinct = [];
    private ulong _sink;

    /// <summary>Page size of the mappings (4K, 2M, 1G).</summary>
    [Params(PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)]
    public PageSize Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        // The engine bench workloads build the same rig; sharing HitSetup keeps the two from drifting.
        _hit = new HitSetup(Size, 16384);
        _unit = _hit.Unit;
        _stream = _hit.Stream;
        _distinct = _hit.Distinct;
        _dids = [.. _stream.Select(r => _unit.Translate(r).Did)];
        long misses = _unit.IotlbMisses;
        HitPass();
        if (_unit.IotlbMisses != misses)
            throw new InvalidOperationException($"setup: {_unit.IotlbMisses - misses} misses in a warm pass; the hit benchmark would not be all hits");
    }

    [GlobalCleanup]
    public void Cleanup() => _hit?.Dispose();

    /// <summary>iotlb-hit: one translation of the warm stream.</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.StreamLength)]
    public ulong IotlbHit() => HitPass();

    /// <summary>iotlb-hit-batch: the warm stream through <see cref="DmarUnit.TranslateBatch"/>.</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.StreamLength)]
    public ulong IotlbHitBatch()
    {
        if (_results.Length != _stream.Length)
            _results = new TranslationResult[_stream.Length];
        _unit!.TranslateBatch(_stream, _results);
        ulong sum = 0;
        foreach (ref readonly TranslationResult r in _results.AsSpan())
            sum += r.Hpa;
        return _sink = sum;
    }

    private TranslationResult[] _results = [];

    /// <summary>translate-miss: the IOTLB is invalidated, then every page of the working set once (each walks).</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.Keys)]
    public ulong TranslateMiss()
    {
        DmarUnit unit = _unit!;
        unit.Iotlb.InvalidateAll();
        ulong sum = 0;
        foreach (ref readonly TranslationRequest r in _distinct.AsSpan())
            sum += unit.Translate(r).Hpa;
        return _sink = sum;
    }

    /// <summary>translate-miss-batch: the misses of <see cref="TranslateMiss"/> through <see cref="DmarUnit.TranslateBatch"/> (walked together per domain, then filled).</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.Keys)]
    public ulong TranslateMissBatch()
    {
        DmarUnit unit = _unit!;
        if (_missResults.Length != _distinct.Length)
            _missResults = new TranslationResult[_distinct.Length];
        unit.Iotlb.InvalidateAll();
        unit.TranslateBatch(_distinct, _missResults);
        ulong sum = 0;
        foreach (ref readonly TranslationResult r in _missResults.AsSpan())
            sum += r.Hpa;
        return _sink = sum;
    }

    private TranslationResult[] _missResults = [];

    /// <summary>inval-page: one page-selective invalidation (4K, AM 0) of the IOTLB.</summary>
    [Benchmark]
    public void InvalidatePage() => _unit!.Iotlb.InvalidatePages(1, _distinct[7].Iova, 0);

    /// <summary>iotlb-lookup: the IOTLB alone over the same stream, each request's DID known (the probe without the translation around it).</summary>
    [Benchmark(OperationsPerInvoke = HitWorkingSet.StreamLength)]
    public ulong IotlbLookup()
    {
        Iotlb iotlb = _unit!.Iotlb;
        ushort[] dids = _dids;
        ulong sum = 0;
        for (int i = 0; i < _stream.Length && i < dids.Length; i++)
        {
            iotlb.TryLookup(dids[i], _stream[i].Iova, 2, out IotlbEntry entry);
            sum += entry.PageHpa;
        }
        return _sink = sum;
    }

    private ushort[] _dids = [];

    /// <summary>inval-domain: one domain-selective invalidation (a generation step; a sweep every 256).</summary>
    [Benchmark]
    public void InvalidateDomain() => _unit!.Iotlb.InvalidateDomain(2);

    private ulong HitPass()
    {
        DmarUnit unit = _unit!;
        ulong sum = 0;
        foreach (ref readonly TranslationRequest r in _stream.AsSpan())
            sum += unit.Translate(r).Hpa;
        return _sink = sum;
    }
}
