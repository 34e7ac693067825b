using Engine.Control;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>What one DMA record came to.</summary>
/// <param name="Transferred">Bytes whose pages translated (all of them unless it faulted).</param>
/// <param name="Translations">Translations made (first tries and retries after a page request).</param>
/// <param name="PageRequests">Page requests the device sent.</param>
/// <param name="Resent">Page requests sent again for a page whose retry faulted again.</param>
/// <param name="Faulted">Whether the DMA stopped at a fault.</param>
public readonly record struct DmaOutcome(int Transferred, int Translations, int PageRequests, int Resent, bool Faulted);

/// <summary>
/// A DMA record's meaning: a PRI device's DMA, translated page by page as <c>DmaTransfer</c> does,
/// recovering from an IO page fault with a page request and one retry, and asking again (up to
/// <c>pageRequestsPerPage</c> requests for one page) when the retry faults again — the DMA
/// scenario's devices (<c>DmaTraffic</c>) do exactly this. No bytes move: data never changes what a
/// translation returns, and a trace carries none.
/// </summary>
public static class TraceDma
{
    /// <summary>Runs one DMA of <paramref name="length"/> bytes at <paramref name="iova"/>, counting every result in <paramref name="tally"/>.</summary>
    public static DmaOutcome Run(Device device, ulong iova, int length, bool write, uint pasid, int pageRequestsPerPage, ref ReplayTally tally)
    {
        ArgumentNullException.ThrowIfNull(device);
        Access access = write ? Access.Write : Access.Read;
        DmarUnit? unit = device.Iommu?.Unit;
        int done = 0, translations = 0, pageRequests = 0, resent = 0, requests = 0;
        while (done < length)
        {
            ulong address = iova + (ulong)done;
            TranslationResult t = unit is null ? device.Translate(address, access, pasid) : unit.Translate(new TranslationRequest(device.SourceId, address, access, pasid));
            translations++;
            tally.Add(address, t);
            bool recoverable = !t.IsSuccess && device.PageRequestsEnabled && IsRecoverable(t.Fault);
            if (recoverable && pasid == TranslationRequest.NoPasid)
            {
                t = device.RecoverWithPageRequest(t, address, access, out bool sent, out bool retried);
                if (sent)
                    pageRequests++;
                if (retried)
                {
                    translations++;
                    tally.Add(address, t);
                }
            }
            if (!t.IsSuccess)
            {
                // As DmaTraffic: the device asks again for the same page, up to the limit.
                if (t.Status == TranslationStatus.Faulted && device.PageRequestsEnabled && IsRecoverable(t.Fault) && ++requests < pageRequestsPerPage)
                {
                    resent++;
                    continue;
                }
                return new DmaOutcome(done, translations, pageRequests, resent, Faulted: true);
            }
            requests = 0;
            ulong pageBytes = t.Size.Bytes();
            done += (int)Math.Min((ulong)(length - done), pageBytes - (address & (pageBytes - 1)));
        }
        return new DmaOutcome(done, translations, pageRequests, resent, Faulted: false);
    }

    private static bool IsRecoverable(FaultReason fault) =>
        fault is FaultReason.SmSecondLevelPermission or FaultReason.SmRead or FaultReason.SmWrite;
}
