#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Workloads;

/// <summary>walk-hot / walk-cold (and their -batch forms): the walker alone over the anchors' working sets.</summary>
public sealed class WalkWorkload(bool cold, bool batch) : Workload
{
    private MappedGuest? _guest;
    private ulong[] _iovas = [];
    private WalkResult[] _results = [];
    private ulong _expected;

    public override string Name => (cold ? "walk-cold" : "walk-hot") + (batch ? "-batch" : "");

    public override string Description => cold
        ? $"64 GiB mapped with 4K pages, 1 M random IOVAs, {(batch ? BatchDescription : "scalar walker bound to the table")}"
        : $"1 GiB mapped with 4K pages, 262,144 random IOVAs, {(batch ? BatchDescription : "scalar walker bound to the table")}";

    private const string BatchDescription = "batch walker (32 per group, level by level; interleaved loads or gathers, as selected)";

    public override bool UsesBatchWalker => batch;

    /// <summary>For the batch forms: the batch walker that ran and why (e.g. <c>batch walker avx2 (forced)</c>).</summary>
    public override string? Note => batch ? $"batch walker {_walker}" : null;

    private BatchWalkerSelection? _walker;

    public override long OperationsPerPass => _iovas.Length;

    public override void Setup()
    {
        ulong gib = cold ? AnchorInputs.ColdGiB : AnchorInputs.HotGiB;
        _guest = new MappedGuest(gib, transparentHugePages: true);
        _iovas = AnchorInputs.Iovas(gib, cold ? AnchorInputs.ColdIovaCount : AnchorInputs.HotIovaCount);
        _results = batch ? new WalkResult[_iovas.Length] : [];
        _walker = batch ? BatchWalkerDefault.Resolve(BatchWalker) : null;
        _expected = _guest.Verify(_iovas);
    }

    public override ulong RunPass()
    {
        MappedGuest g = _guest!;
        WalkerConfig config = g.Config;
        ulong sum = 0;
        using (g.Memory.Epochs.Enter())
        {
            if (batch)
            {
                PageWalker.WalkBatch(_walker!.Kind, g.Memory, config, g.RootHpa, g.Levels, _iovas, Access.Read, _results);
                foreach (ref readonly WalkResult r in _results.AsSpan())
                    sum += r.Hpa;
            }
            else
            {
                var walker = new BoundWalker(g.Memory, config, g.RootHpa, g.Levels);
                foreach (ulong iova in _iovas)
                    sum += walker.Walk(iova, Access.Read).Hpa;
            }
        }
        if (sum != _expected)
            throw new InvalidOperationException($"{Name}: checksum 0x{sum:x}, verified 0x{_expected:x}.");
        return sum;
    }

    public override void Dispose()
    {
        _guest?.Dispose();
        base.Dispose();
    }
}

/// <summary>The catalogue of named workloads.</summary>
public static class WorkloadCatalog
{
    /// <summary>Every workload name, in report order.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "iotlb-hit", "iotlb-hit-batch", "iotlb-lookup", "iotlb-hit-2m", "iotlb-hit-1g", "iotlb-thrash", "walk-hot", "walk-hot-embedder", "walk-hot-batch",
        "walk-cold", "walk-cold-batch", "translate-miss", "walk-missset", "translate-miss-batch", "dma-strict", "dma-lazy", "iotlb-hit-mt", "inval-page", "inval-domain",
        "replay-hit",
    ];

    /// <summary>Creates the workload called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No workload has that name; the message lists them.</exception>
    public static Workload Create(string name, int threads) => name switch
    {
        "iotlb-hit" => new IotlbHitWorkload(PageSize.Size4K, name),
        "iotlb-hit-batch" => new IotlbHitBatchWorkload(),
        "iotlb-lookup" => new IotlbLookupWorkload(),
        "iotlb-hit-2m" => new IotlbHitWorkload(PageSize.Size2M, name),
        "iotlb-hit-1g" => new IotlbHitWorkload(PageSize.Size1G, name),
        "iotlb-thrash" => new IotlbThrashWorkload(),
        "walk-hot" => new WalkWorkload(cold: false, batch: false),
        "walk-hot-embedder" => new EmbedderWalkWorkload(),
        "walk-hot-batch" => new WalkWorkload(cold: false, batch: true),
        "walk-cold" => new WalkWorkload(cold: true, batch: false),
        "walk-cold-batch" => new WalkWorkload(cold: true, batch: true),
        "translate-miss" => new TranslateMissWorkload(),
        "walk-missset" => new WalkMissSetWorkload(),
        "translate-miss-batch" => new TranslateMissBatchWorkload(),
        "dma-strict" => new DmaApiWorkload(lazy: false),
        "dma-lazy" => new DmaApiWorkload(lazy: true),
        "iotlb-hit-mt" => new IotlbHitMultiThreadWorkload(threads),
        "inval-page" => new InvalidationWorkload(pageSelective: true),
        "inval-domain" => new InvalidationWorkload(pageSelective: false),
        "replay-hit" => new ReplayHitWorkload(),
        _ => throw new ArgumentException($"No workload is called '{name}'; known: {string.Join(", ", Names)}.", nameof(name)),
    };
}
