using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Diagnostics;

/// <summary>
/// Translations and DMA bytes counted for one IOMMU by whoever makes them — a DMA front end once per
/// transfer, a batch caller once per batch — never by the translation hit path, which counts nothing
/// (issue 14 is where per-thread hit counting belongs). <see cref="EngineMetrics"/> reads it.
/// </summary>
/// <remarks>
/// Striped by thread: threads that translate through the same unit add to different cache lines,
/// so counting one transfer costs an uncontended atomic add, not a line bouncing between cores.
/// </remarks>
public sealed class UnitTally
{
    private const int Stripes = 16; // a power of two ≥ the cores that usually share a unit

    [StructLayout(LayoutKind.Explicit, Size = 64)]
    private struct Stripe
    {
        [FieldOffset(0)] public long Translations;
        [FieldOffset(8)] public long DmaBytes;
    }

    private readonly Stripe[] _stripes = new Stripe[Stripes];

    /// <summary>Counts <paramref name="translations"/> translations and <paramref name="dmaBytes"/> bytes moved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(long translations, long dmaBytes = 0)
    {
        ref Stripe stripe = ref _stripes[Environment.CurrentManagedThreadId & (Stripes - 1)];
        Interlocked.Add(ref stripe.Translations, translations);
        if (dmaBytes != 0)
            Interlocked.Add(ref stripe.DmaBytes, dmaBytes);
    }

    /// <summary>Translations counted so far.</summary>
    public long Translations
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < Stripes; i++)
                sum += Volatile.Read(ref _stripes[i].Translations);
            return sum;
        }
    }

    /// <summary>DMA bytes counted so far.</summary>
    public long DmaBytes
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < Stripes; i++)
                sum += Volatile.Read(ref _stripes[i].DmaBytes);
            return sum;
        }
    }
}
