using System.Runtime.CompilerServices;
using Engine.Iommu;

namespace Engine.Trace;

/// <summary>
/// What the translations of a recorded run or a replay came to: counts, the wrapping sum of the
/// HPAs of the successful ones, and a checksum over every result.
/// </summary>
/// <remarks>
/// The checksum is a wrapping sum of one 64-bit hash per result — of the IOVA asked for and the
/// answer (status, fault reason, HPA with the page offset, page size, permissions, snoop), not of
/// whether the IOTLB answered it — so it does not depend on the order the results came in (several
/// replay threads give the same sum) nor on the IOTLB's geometry, while the hit counts do.
/// </remarks>
public struct ReplayTally
{
    /// <summary>Translation results seen.</summary>
    public long Translations;

    /// <summary>Of those, faults.</summary>
    public long Faults;

    /// <summary>Of those, answered by the IOTLB.</summary>
    public long IotlbHits;

    /// <summary>Wrapping sum of the HPAs (page offset included) of the successful translations.</summary>
    public ulong HpaSum;

    /// <summary>Wrapping sum of a hash of every result.</summary>
    public ulong Checksum;

    /// <summary>Translations the IOTLB did not answer (walks and faults).</summary>
    public readonly long IotlbMisses => Translations - IotlbHits;

    /// <summary>Counts one result of translating <paramref name="iova"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(ulong iova, in TranslationResult t)
    {
        Translations++;
        if (t.IotlbHit)
            IotlbHits++;
        if (t.IsSuccess)
            HpaSum += t.Hpa;
        else
            Faults++;
        Checksum += Hash(iova, t);
    }

    /// <summary>The hash of one result that <see cref="Checksum"/> sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(ulong iova, in TranslationResult t)
    {
        ulong key = (ulong)t.Status | (ulong)t.Fault << 8 | (ulong)t.Size << 16 | (ulong)t.Permissions << 24 | (t.Snoop ? 1UL << 32 : 0);
        // Two independent multiplies and a fold: enough to tell results apart, cheap on the hot path.
        ulong h = (iova ^ key << 40) * 0x9E3779B97F4A7C15UL + (t.Hpa ^ key) * 0xC2B2AE3D27D4EB4FUL;
        return h ^ (h >> 29);
    }

    /// <summary>Adds another thread's tally.</summary>
    public void Add(in ReplayTally other)
    {
        Translations += other.Translations;
        Faults += other.Faults;
        IotlbHits += other.IotlbHits;
        HpaSum += other.HpaSum;
        Checksum += other.Checksum;
    }
}
