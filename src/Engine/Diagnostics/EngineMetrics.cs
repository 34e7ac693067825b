using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Engine.Control;
using Engine.Iommu;

namespace Engine.Diagnostics;

/// <summary>
/// The <c>Engine</c> <see cref="Meter"/>: observable instruments, tagged <c>iommu</c> (the unit's
/// name) or <c>domain</c>, that read counters the engine already keeps, so nothing is added to the
/// translation path and nothing runs unless a listener (dotnet-counters, <c>engine monitor</c>, an
/// OpenTelemetry exporter) collects. Track a <see cref="Platform"/> to publish its units.
/// </summary>
/// <remarks>
/// <para>Instruments (all cumulative counters; a listener turns them into rates):</para>
/// <list type="bullet">
/// <item><c>engine.translations</c>, <c>engine.dma.bytes</c>: from each unit's <see cref="UnitTally"/>,
/// which DMA front ends and batch callers add to once per transfer or batch (<see cref="TallyOf"/>);
/// translations made straight through <see cref="DmarUnit.Translate"/> by other callers are not in it.</item>
/// <item><c>engine.iotlb.hits</c>: tallied translations − IOTLB misses (published only for units with a tally).</item>
/// <item><c>engine.iotlb.misses</c>, <c>engine.page_walks</c> (the same count: every miss walks),
/// <c>engine.context_cache.misses</c>, <c>engine.faults</c>: the unit's own counters.</item>
/// <item><c>engine.fault_records</c>, tag <c>outcome</c> = recorded | collapsed | overflowed | suppressed: the fault recorder's counters.</item>
/// <item><c>engine.faults.by_reason</c>, tag <c>reason</c>: faults by VT-d reason code (counted on the fault path).</item>
/// <item><c>engine.invalidations</c>, tag <c>granularity</c> = global | domain | page | device_tlb: IOTLB and device-TLB invalidations;
/// <c>engine.invalidation_descriptors</c>: queued-invalidation descriptors processed (every kind, device-TLB included).</item>
/// <item><c>engine.page_requests</c>, <c>engine.page_requests.overflowed</c>: page requests the unit queued or dropped;
/// <c>engine.page_requests.served</c>, <c>engine.page_requests.failed</c> and <c>engine.kvm.flush_notifications</c>
/// per tracked KVM domain (tag <c>domain</c>).</item>
/// </list>
/// </remarks>
public static class EngineMetrics
{
    /// <summary>The meter's name: <c>dotnet-counters monitor --counters Engine</c>.</summary>
    public const string MeterName = "Engine";

    private static readonly Lock Gate = new();
    private static readonly List<Registration> Registrations = [];
    private static readonly ConditionalWeakTable<DmarUnit, UnitTally> Tallies = [];

    /// <summary>The meter all instruments belong to.</summary>
    public static Meter Meter { get; } = CreateMeter();

    /// <summary>The tally of <paramref name="unit"/>, created at first use; add to it once per transfer or batch.</summary>
    public static UnitTally TallyOf(DmarUnit unit)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return Tallies.GetValue(unit, _ => new UnitTally());
    }

    /// <summary>Publishes every IOMMU of <paramref name="platform"/>, present and future, until the registration is disposed or the platform is.</summary>
    public static MetricsRegistration Track(Platform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var registration = new Registration(platform);
        lock (Gate)
        {
            // Forget platforms that went away without their registration being disposed, so a
            // long-running embedder that creates many platforms does not grow this list forever.
            Registrations.RemoveAll(r => !r.TryGetPlatform(out _));
            Registrations.Add(registration);
        }
        return new MetricsRegistration(registration);
    }

    /// <summary>
    /// Totals over every tracked, live unit: what <c>engine run</c> shows as it runs. Reads the same
    /// counters as the instruments, so it costs nothing on the translation path either.
    /// </summary>
    public static EngineTotals Totals()
    {
        long translations = 0, misses = 0, faults = 0;
        foreach ((DmarUnit unit, _) in Units())
        {
            if (Tallies.TryGetValue(unit, out UnitTally? tally))
                translations += tally.Translations;
            misses += unit.IotlbMisses;
            faults += unit.Faults;
        }
        return new EngineTotals(translations, misses, faults);
    }

    internal static void Remove(Registration registration)
    {
        lock (Gate)
            Registrations.Remove(registration);
    }

    private static Meter CreateMeter()
    {
        var meter = new Meter(MeterName, typeof(EngineMetrics).Assembly.GetName().Version?.ToString());
        meter.CreateObservableCounter("engine.translations", () => PerUnit(u => Tallies.TryGetValue(u, out UnitTally? t) ? t.Translations : null), "{translation}",
            "Translations, counted per DMA transfer or batch by the front end that made them.");
        meter.CreateObservableCounter("engine.iotlb.hits", () => PerUnit(u => Tallies.TryGetValue(u, out UnitTally? t) ? Math.Max(0, t.Translations - u.IotlbMisses) : null), "{lookup}",
            "IOTLB hits: tallied translations minus IOTLB misses.");
        meter.CreateObservableCounter("engine.iotlb.misses", () => PerUnit(u => u.IotlbMisses), "{lookup}", "IOTLB misses.");
        meter.CreateObservableCounter("engine.page_walks", () => PerUnit(u => u.IotlbMisses), "{walk}", "Second-stage page walks (one per IOTLB miss).");
        meter.CreateObservableCounter("engine.context_cache.misses", () => PerUnit(u => u.ContextMisses), "{lookup}", "Context-cache misses.");
        meter.CreateObservableCounter("engine.faults", () => PerUnit(u => u.Faults), "{fault}", "Translation faults.");
        meter.CreateObservableCounter("engine.faults.by_reason", FaultsByReason, "{fault}", "Translation faults by VT-d fault reason (tag reason: code and name; reasons not seen are left out).");
        meter.CreateObservableCounter("engine.fault_records", FaultRecords, "{fault}", "Faults by what the fault recorder did with them (tag outcome).");
        meter.CreateObservableCounter("engine.invalidations", Invalidations, "{invalidation}", "IOTLB invalidations by granularity (tag granularity).");
        meter.CreateObservableCounter("engine.invalidation_descriptors", () => PerUnit(u => u.DescriptorsProcessed), "{descriptor}", "Queued-invalidation descriptors processed.");
        meter.CreateObservableCounter("engine.page_requests", () => PerUnit(u => u.PageRequests), "{request}", "Page requests queued.");
        meter.CreateObservableCounter("engine.page_requests.overflowed", () => PerUnit(u => u.PageRequestOverflows), "{request}", "Page requests dropped: the queue was full.");
        meter.CreateObservableCounter("engine.dma.bytes", () => PerUnit(u => Tallies.TryGetValue(u, out UnitTally? t) ? t.DmaBytes : null), "By", "DMA bytes moved through the unit.");
        meter.CreateObservableCounter("engine.page_requests.served", () => PerDomain(d => d.PageRequestsServed), "{request}", "Page requests a KVM domain served.");
        meter.CreateObservableCounter("engine.page_requests.failed", () => PerDomain(d => d.PageRequestsFailed), "{request}", "Page requests a KVM domain failed.");
        meter.CreateObservableCounter("engine.kvm.flush_notifications", () => PerDomain(d => d.Invalidations), "{notification}", "Flush notifications KVM sent a domain.");
        return meter;
    }

    /// <summary>Every live unit of every live tracked platform, with its name.</summary>
    private static List<(DmarUnit Unit, string Name)> Units()
    {
        Registration[] registrations;
        lock (Gate)
            registrations = [.. Registrations];
        var units = new List<(DmarUnit, string)>();
        foreach (Registration r in registrations)
        {
            if (!r.TryGetPlatform(out Platform? platform))
                continue;
            foreach (IommuInstance iommu in platform.Iommus)
            {
                if (!iommu.Unit.IsDisposed)
                    units.Add((iommu.Unit, iommu.Name));
            }
        }
        return units;
    }

    private static IEnumerable<Measurement<long>> PerUnit(Func<DmarUnit, long?> read)
    {
        foreach ((DmarUnit unit, string name) in Units())
        {
            if (read(unit) is long value)
                yield return new Measurement<long>(value, new KeyValuePair<string, object?>("iommu", name));
        }
    }

    private static IEnumerable<Measurement<long>> FaultRecords()
    {
        foreach ((DmarUnit unit, string name) in Units())
        {
            FaultCounters c = unit.FaultRecorder.Counters;
            var iommu = new KeyValuePair<string, object?>("iommu", name);
            yield return new Measurement<long>(c.Recorded, iommu, new("outcome", "recorded"));
            yield return new Measurement<long>(c.Collapsed, iommu, new("outcome", "collapsed"));
            yield return new Measurement<long>(c.Overflowed, iommu, new("outcome", "overflowed"));
            yield return new Measurement<long>(c.Suppressed, iommu, new("outcome", "suppressed"));
        }
    }

    private static IEnumerable<Measurement<long>> Invalidations()
    {
        foreach ((DmarUnit unit, string name) in Units())
        {
            var iommu = new KeyValuePair<string, object?>("iommu", name);
            yield return new Measurement<long>(unit.Iotlb.GlobalInvalidations, iommu, new("granularity", "global"));
            yield return new Measurement<long>(unit.Iotlb.DomainInvalidations, iommu, new("granularity", "domain"));
            yield return new Measurement<long>(unit.Iotlb.PageInvalidations, iommu, new("granularity", "page"));
            yield return new Measurement<long>(unit.DeviceTlbInvalidations, iommu, new("granularity", "device_tlb"));
        }
    }

    private static IEnumerable<Measurement<long>> FaultsByReason()
    {
        foreach ((DmarUnit unit, string name) in Units())
        {
            var iommu = new KeyValuePair<string, object?>("iommu", name);
            foreach (FaultReason reason in Enum.GetValues<FaultReason>())
            {
                if (reason != FaultReason.None && unit.FaultsWith(reason) is long n and > 0)
                    yield return new Measurement<long>(n, iommu, new("reason", $"0x{(byte)reason:x2} {reason}"));
            }
        }
    }

    private static IEnumerable<Measurement<long>> PerDomain(Func<KvmDomain, long> read)
    {
        Registration[] registrations;
        lock (Gate)
            registrations = [.. Registrations];
        foreach (Registration r in registrations)
        {
            if (!r.TryGetPlatform(out _))
                continue;
            foreach ((KvmDomain domain, string name) in r.Domains)
                yield return new Measurement<long>(read(domain), new KeyValuePair<string, object?>("domain", name));
        }
    }

    /// <summary>One tracked platform (held weakly: tracking must not keep a platform alive) and its KVM domains.</summary>
    internal sealed class Registration(Platform platform)
    {
        private readonly WeakReference<Platform> _platform = new(platform);
        private readonly Lock _domainsGate = new();
        private readonly List<(WeakReference<KvmDomain> Domain, string Name)> _domains = [];

        public bool TryGetPlatform([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Platform? platform) =>
            _platform.TryGetTarget(out platform) && !platform.IsDisposed;

        public void Add(KvmDomain domain, string name)
        {
            lock (_domainsGate)
                _domains.Add((new WeakReference<KvmDomain>(domain), name));
        }

        public List<(KvmDomain, string)> Domains
        {
            get
            {
                var live = new List<(KvmDomain, string)>();
                lock (_domainsGate)
                {
                    foreach (var (reference, name) in _domains)
                    {
                        if (reference.TryGetTarget(out KvmDomain? d))
                            live.Add((d, name));
                    }
                }
                return live;
            }
        }
    }
}

/// <summary>Totals over the tracked units (<see cref="EngineMetrics.Totals"/>).</summary>
/// <param name="Translations">Tallied translations.</param>
/// <param name="IotlbMisses">IOTLB misses.</param>
/// <param name="Faults">Translation faults.</param>
public readonly record struct EngineTotals(long Translations, long IotlbMisses, long Faults);

/// <summary>A platform published by <see cref="EngineMetrics.Track"/>; dispose it to stop publishing.</summary>
public sealed class MetricsRegistration : IDisposable
{
    private readonly EngineMetrics.Registration _registration;
    private int _kvmDomains;

    internal MetricsRegistration(EngineMetrics.Registration registration) => _registration = registration;

    /// <summary>Also publishes <paramref name="domain"/>'s page-request and flush-notification counters, tagged <c>domain</c> = <paramref name="name"/> (default kvm0, kvm1, …).</summary>
    public void Track(KvmDomain domain, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(domain);
        _registration.Add(domain, name ?? $"kvm{Interlocked.Increment(ref _kvmDomains) - 1}");
    }

    /// <summary>Stops publishing the platform.</summary>
    public void Dispose() => EngineMetrics.Remove(_registration);
}
