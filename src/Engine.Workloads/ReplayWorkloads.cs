#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
using Engine.Control;
using Engine.Iommu;
using Engine.Paging;
using Engine.Trace;

namespace Engine.Workloads;

/// <summary>
/// replay-hit: <c>engine replay</c>'s loop over a hit-dominated trace — the iotlb-hit stream (4
/// devices in 4 paging domains, 2048 random 4K pages, 65,536 picks) written as translate records —
/// reading the trace from memory, checking each block's CRC, decoding and translating every
/// record and counting its result. Compare with iotlb-hit, the same translations from an array.
/// </summary>
public sealed class ReplayHitWorkload : Workload
{
    private ReplayRig? _rig;
    private byte[] _trace = [];
    private TraceReader? _reader;   // over _trace, rewound for each pass: a reader a pass allocated 1 B/op

    public override string Name => "replay-hit";

    public override string Description => "Trace replay, IOTLB hits: the iotlb-hit stream as 65,536 translate records, read from memory (CRC, decode, translate, tally)";

    public override long OperationsPerPass => HitWorkingSet.StreamLength;

    /// <summary>The platform the passes replay on (after <see cref="Setup"/>).</summary>
    public ReplayRig Rig => _rig ?? throw new InvalidOperationException("Setup has not run.");

    /// <summary>The trace one pass replays (translate records only).</summary>
    public ReadOnlySpan<byte> Trace => _trace;

    /// <summary>The platform: one Granite Rapids unit with the iotlb-hit IOTLB (16384 sets), four devices each in its own paging domain.</summary>
    public static TracePlatform Platform()
    {
        IommuPreset preset = IommuPresets.GraniteRapidsServer;
        return new TracePlatform
        {
            Source = "replay-hit workload",
            MemoryBytes = 8UL << 30,
            Iommus = [new TraceIommu("dmar0", preset.Cap.Value, preset.Ecap.Value, IotlbSets: 16384)],
            Devices = [.. Enumerable.Range(1, 4).Select(did => new TraceDevice($"dev{did}", TranslationRequest.Bdf(did, 0, 0), 0, DeviceAbilities.None))],
            Domains = [.. Enumerable.Range(0, 4).Select(d => new TraceDomain(TraceDomainKind.Paging, -1, d))],
            Attachments = [.. Enumerable.Range(0, 4).Select(d => new TraceAttachment(d, d, AttachFlags.None))],
        };
    }

    /// <summary>Writes the maps (<paramref name="maps"/>) or the translations of the iotlb-hit working set.</summary>
    public static byte[] Build(bool maps)
    {
        var keys = HitWorkingSet.GenerateKeys();
        static ulong Iova(ulong vpn) => (vpn & ((1UL << 36) - 1)) << 12;
        var stream = new MemoryStream();
        using (var writer = new TraceWriter(stream, Platform(), leaveOpen: true))
        {
            if (maps)
            {
                var mapped = new HashSet<(ushort, ulong)>();
                for (int k = 0; k < keys.Length; k++)
                {
                    if (mapped.Add((keys[k].Did, Iova(keys[k].Vpn))))
                        writer.Write(TraceRecord.PagingMap(keys[k].Did - 1, Iova(keys[k].Vpn), ((ulong)k << 12) & ((1UL << 45) - 1), 4096, Access.ReadWrite));
                }
            }
            else
            {
                foreach ((int key, uint offset) in HitWorkingSet.GenerateStream())
                    writer.Write(TraceRecord.Translate(keys[key].Did - 1, Iova(keys[key].Vpn) | offset, Access.Read));
            }
            writer.Complete();
        }
        return stream.ToArray();
    }

    public override void Setup()
    {
        _rig = ReplayRig.Build(Platform());
        var tally = new ReplayTally();
        TraceReplayer.Run(new TraceReader(new MemoryStream(Build(maps: true))), _rig, ref tally);
        _trace = Build(maps: false);
        _reader = new TraceReader(new MemoryStream(_trace, writable: false));
        RunPass();
        long misses = _rig.Iommus[0].Unit.IotlbMisses;
        if (RunTally().Faults != 0 || _rig.Iommus[0].Unit.IotlbMisses != misses)
            throw new InvalidOperationException("setup: a warm replay pass faulted or missed; the workload would not be all hits.");
    }

    public override ulong RunPass() => RunTally().HpaSum;

    private ReplayTally RunTally()
    {
        var tally = new ReplayTally();
        _reader!.Rewind();
        TraceReplayer.Run(_reader, _rig!, ref tally);
        return tally;
    }

    public override void Dispose()
    {
        _reader?.Dispose();
        _rig?.Dispose();
        base.Dispose();
    }
}
