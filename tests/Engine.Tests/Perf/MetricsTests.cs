using System.Diagnostics.Metrics;
using Engine.Control;
using Engine.Diagnostics;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Perf;

public class MetricsTests
{
    /// <summary>Every Engine instrument's latest observation, keyed by instrument and the iommu or domain tag.</summary>
    private static Dictionary<(string Instrument, string Source), long> Observe()
    {
        var seen = new Dictionary<(string, string), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EngineMetrics.MeterName)
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string source = "";
            string extra = "";
            foreach (var tag in tags)
            {
                if (tag.Key is "iommu" or "domain")
                    source = (string)tag.Value!;
                else
                    extra = $"/{tag.Value}";
            }
            seen[(instrument.Name + extra, source)] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return seen;
    }

    [Fact]
    public void ATrackedUnitPublishesItsCountersAndTheTallyAndStopsWhenTheRegistrationIsDisposed()
    {
        const string Name = "metrics-test-dmar";
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 1UL << 30 } });
        IommuInstance iommu = platform.AddIommu(Name, IommuPresets.GraniteRapidsServer);
        Device device = platform.AddDevice("dev", TranslationRequest.Bdf(3, 0, 0), iommu);
        PagingDomain domain = platform.AllocatePagingDomain(device);
        domain.Attach(device);
        domain.Map(0x10_0000, 0x20_0000, 16 * 4096, Access.ReadWrite);

        using (MetricsRegistration registration = EngineMetrics.Track(platform))
        {
            UnitTally tally = EngineMetrics.TallyOf(iommu.Unit);
            Assert.Same(tally, EngineMetrics.TallyOf(iommu.Unit));
            int translations = 0;
            for (int pass = 0; pass < 3; pass++)
            {
                for (ulong page = 0; page < 16; page++, translations++)
                    Assert.True(iommu.Unit.Translate(new TranslationRequest(device.SourceId, 0x10_0000 + page * 4096, Access.Read)).IsSuccess);
            }
            Assert.False(iommu.Unit.Translate(new TranslationRequest(device.SourceId, 0x9000_0000, Access.Read)).IsSuccess);
            translations++;
            tally.Add(translations, 4096);

            var seen = Observe();
            Assert.Equal(translations, seen[("engine.translations", Name)]);
            Assert.Equal(iommu.Unit.IotlbMisses, seen[("engine.iotlb.misses", Name)]);
            Assert.Equal(iommu.Unit.IotlbMisses, seen[("engine.page_walks", Name)]);
            Assert.Equal(translations - iommu.Unit.IotlbMisses, seen[("engine.iotlb.hits", Name)]);
            Assert.True(seen[("engine.iotlb.hits", Name)] >= 32, "two warm passes over 16 pages are hits");
            Assert.Equal(1, seen[("engine.faults", Name)]);
            Assert.Equal(4096, seen[("engine.dma.bytes", Name)]);
            Assert.True(seen.ContainsKey(("engine.invalidations/global", Name)));
            Assert.True(seen.ContainsKey(("engine.invalidations/device_tlb", Name)));
            // The one fault, under its reason; reasons not seen are left out.
            FaultReason reason = iommu.Unit.Translate(new TranslationRequest(device.SourceId, 0x9000_0000, Access.Read)).Fault;
            Assert.Equal(2, iommu.Unit.FaultsWith(reason));
            Assert.Single(Observe(), k => k.Key.Instrument.StartsWith("engine.faults.by_reason/", StringComparison.Ordinal) && k.Key.Source == Name);
            Assert.Equal(2, Observe()[($"engine.faults.by_reason/0x{(byte)reason:x2} {reason}", Name)]);
            Assert.True(seen.ContainsKey(("engine.fault_records/recorded", Name)));
            Assert.True(EngineMetrics.Totals().Translations >= translations, "Totals sums every tracked unit, this one included");
        }
        Assert.DoesNotContain(Observe().Keys, k => k.Source == Name);
    }
}
