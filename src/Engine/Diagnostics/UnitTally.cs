using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Diagnostics;

/// <summary>
/// Translations and DMA bytes counted for one IOMMU by whoever makes them — a DMA front end once per
/// transfer, a batch caller once per batch — never by the translation hit path, which counts nothing.
/// <see cref="EngineMetrics"/> reads it.
/// </summary>
/// <remarks>
/// Kept per thread (<c>ThreadCounters</c>): each thread adds to its own cache line with a plain
/// store — no locked instruction, no line bouncing between cores — and a read sums the lines.
/// </remarks>
public sealed class UnitTally
{
    private const int TranslationCounter = 0;
    private const int DmaByteCounter = 1;
    private readonly ThreadCounters _counters = new();

    /// <summary>Counts <paramref name="translations"/> translations and <paramref name="dmaBytes"/> bytes moved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(long translations, long dmaBytes = 0)
    {
        _counters.Add(TranslationCounter, translations);
        if (dmaBytes != 0)
            _counters.Add(DmaByteCounter, dmaBytes);
    }

    /// <summary>Translations counted so far.</summary>
    public long Translations => _counters.Read(TranslationCounter);

    /// <summary>DMA bytes counted so far.</summary>
    public long DmaBytes => _counters.Read(DmaByteCounter);
}
