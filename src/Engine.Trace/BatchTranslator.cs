using Engine.Iommu;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>
/// Replay with <c>--batch-walker</c>: consecutive translate records of one IOMMU go through
/// <see cref="DmarUnit.TranslateBatch"/> 64 at a time, so the IOTLB is probed for the whole batch and
/// the misses are walked together by the batch walker. The answers are those of one translation
/// after the other (so <see cref="ReplayTally.HpaSum"/> and <see cref="ReplayTally.Checksum"/> are
/// too); only whether the IOTLB answered may differ when a page repeats inside a batch.
/// </summary>
public sealed class BatchTranslator(ReplayRig rig)
{
    /// <summary>Requests per <see cref="DmarUnit.TranslateBatch"/> call (the unit's own chunk).</summary>
    public const int BatchSize = 64;

    private readonly TranslationRequest[] _requests = new TranslationRequest[BatchSize];
    private readonly TranslationResult[] _results = new TranslationResult[BatchSize];
    private DmarUnit? _unit;
    private int _count;

    /// <summary>Queues one translation (translating the queue first when it is full or for another unit).</summary>
    public void Add(int device, ulong iova, Access access, uint pasid, ref ReplayTally tally)
    {
        DmarUnit? unit = rig.UnitOf(device);
        if (unit is null)
        {
            Flush(ref tally);
            rig.Translate(device, iova, access, pasid, ref tally);
            return;
        }
        if (_count == BatchSize || (_count > 0 && !ReferenceEquals(unit, _unit)))
            Flush(ref tally);
        _unit = unit;
        _requests[_count++] = TranslationRequest.FromChecked(rig.SourceIdOf(device), iova, access, pasid);
    }

    /// <summary>Translates what is queued.</summary>
    public void Flush(ref ReplayTally tally)
    {
        if (_count == 0)
            return;
        _unit!.TranslateBatch(_requests.AsSpan(0, _count), _results.AsSpan(0, _count));
        for (int i = 0; i < _count; i++)
            tally.Add(_requests[i].Iova, _results[i]);
        _count = 0;
    }

    /// <summary>The sink that hands <see cref="TraceReader.ReadTranslates"/>'s runs to a batch translator.</summary>
    public struct Sink(BatchTranslator translator) : ITranslateSink, ITallySink
    {
        private readonly BatchTranslator _translator = translator;

        /// <summary>What the translations came to.</summary>
        public ReplayTally Tally;

        /// <inheritdoc/>
        public readonly ReplayTally Result => Tally;

        /// <inheritdoc/>
        public void Translate(ReadOnlySpan<byte> records)
        {
            ref byte run = ref TranslateRecords.Start(records);
            for (int at = 0; at < records.Length; at += TranslateRecords.Size)
            {
                (int device, ulong iova, Access access, uint pasid) = TranslateRecords.At(ref run, at);
                _translator.Add(device, iova, access, pasid, ref Tally);
            }
            _translator.Flush(ref Tally);
        }
    }
}
