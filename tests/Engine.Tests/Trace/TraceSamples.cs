using Engine.Control;
using Engine.Iommu;
using Engine.Paging;
using Engine.Trace;

namespace Engine.Tests.Trace;

/// <summary>Small traces built for the tests.</summary>
internal static class TraceSamples
{
    /// <summary>One QEMU-default IOMMU, two devices, one paging domain both are attached to.</summary>
    public static TracePlatform PagingPlatform() => new()
    {
        Source = "test",
        MemoryBytes = 256UL << 20,
        Iommus = [new TraceIommu("dmar0", IommuPresets.QemuDefault.Cap.Value, IommuPresets.QemuDefault.Ecap.Value)],
        Devices = [new TraceDevice("a", 0x10, 0, DeviceAbilities.None), new TraceDevice("b", 0x18, 0, DeviceAbilities.None)],
        Domains = [new TraceDomain(TraceDomainKind.Paging, -1, -1)],
        Attachments = [new TraceAttachment(0, 0, AttachFlags.None), new TraceAttachment(0, 1, AttachFlags.None)],
    };

    /// <summary>
    /// A trace of every record kind a paging platform takes, <paramref name="translations"/> translations
    /// in all (hits mostly, some faults beyond the mapping), spanning several blocks when large.
    /// </summary>
    public static byte[] Mixed(int translations, int seed = 1)
    {
        var stream = new MemoryStream();
        using (var writer = new TraceWriter(stream, PagingPlatform(), leaveOpen: true))
        {
            writer.Write(TraceRecord.PagingMap(0, 0, 0x1_0000_0000, 4UL << 20, Access.ReadWrite));      // two 2M leaves
            writer.Write(TraceRecord.PagingMap(0, 4UL << 20, 0x2_0000_0000, 64UL << 10, Access.Read));   // sixteen 4K leaves
            var rng = new Random(seed);
            for (int i = 0; i < translations; i++)
            {
                ulong iova = (ulong)rng.NextInt64(0, (4L << 20) + (80L << 10));   // a little beyond the 4K leaves: faults
                writer.Write(TraceRecord.Translate(i & 1, iova, rng.Next(4) == 0 ? Access.Write : Access.Read));
                switch (i % 997)
                {
                    case 10:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Page, 0, iova & ~0xFFFUL, 0));
                        break;
                    case 20:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Domain, 0));
                        break;
                    case 30:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Global, -1));
                        break;
                    case 40:
                        writer.Write(TraceRecord.Detach(0, 1));
                        writer.Write(TraceRecord.Attach(0, 1));
                        break;
                    case 50:
                        writer.Write(TraceRecord.PagingUnmap(0, 4UL << 20, 4096));
                        writer.Write(TraceRecord.PagingMap(0, 4UL << 20, 0x3_0000_0000, 4096, Access.Write));
                        break;
                    case 60:
                        writer.Write(TraceRecord.PagingUnmap(0, 4UL << 20, 4096));
                        writer.Write(TraceRecord.PagingMap(0, 4UL << 20, 0x2_0000_0000, 4096, Access.Read));
                        break;
                }
            }
            writer.Complete();
        }
        return stream.ToArray();
    }

    /// <summary>Replays <paramref name="trace"/>.</summary>
    public static ReplayReport Replay(byte[] trace, int threads = 1, int? iotlbSets = null) =>
        TraceReplayer.Replay(new MemoryStream(trace), new ReplayOptions(threads, iotlbSets));

    /// <summary>Reads every record; returns them with their offsets (throws what the reader throws).</summary>
    public static List<(long Offset, TraceRecord Record)> ReadAll(byte[] trace, List<(long, TraceRecord)>? sink = null)
    {
        sink ??= [];
        using var reader = new TraceReader(new MemoryStream(trace));
        while (reader.TryRead(out TraceRecord r))
            sink.Add((reader.RecordOffset, r));
        return sink;
    }
}
