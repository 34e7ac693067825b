using Engine.Iommu;
using Engine.Paging;
using Engine.Tests.Isolation;

namespace Engine.Tests.Iommu;

/// <summary>
/// The miss paths walk the table named by the source's root word (issue 14), not the context-cache
/// slot: after the driver moves a device (new DID and table, or a new table under the same DID) and
/// invalidates the context cache, an IOTLB miss must walk the table the tables now name, one
/// request at a time or in a batch. Each table maps the same IOVAs to its own frames, so every HPA
/// names the table it came from (<see cref="IsolationRig"/>).
/// </summary>
public class MissPathRootWordTests
{
    private static readonly ushort Sid = TranslationRequest.Bdf(0x3A, 2, 1);
    private static readonly ushort OtherSid = TranslationRequest.Bdf(0x3A, 2, 2);

    public static TheoryData<bool, bool> Modes() => new()
    {
        { false, false }, { false, true }, { true, false }, { true, true },
    };

    /// <summary>Translates pages <paramref name="first"/>..<paramref name="last"/> of <paramref name="sid"/>, one by one or in one batch.</summary>
    private static TranslationResult[] Translate(IsolationRig rig, ushort sid, int first, int last, bool batch)
    {
        var requests = Enumerable.Range(first, last - first + 1)
            .Select(p => new TranslationRequest(sid, ((ulong)p << 12) | 0x40, Access.Read)).ToArray();
        var results = new TranslationResult[requests.Length];
        if (batch)
            rig.Unit.TranslateBatch(requests, results);
        else
        {
            for (int i = 0; i < requests.Length; i++)
                results[i] = rig.Unit.Translate(requests[i]);
        }
        return results;
    }

    /// <summary>Every result translated through <paramref name="table"/> under <paramref name="did"/>, each a walk (no IOTLB hit).</summary>
    private static void AssertWalkedThrough(IsolationRig rig, TranslationResult[] results, int table, ushort did)
    {
        foreach (TranslationResult r in results)
        {
            Assert.True(r.IsSuccess, r.ToString());
            Assert.False(r.IotlbHit, r.ToString());
            Assert.Equal(table, rig.TableOf(r.Hpa));
            Assert.Equal(0x40UL, r.Hpa & 0xFFF);
            Assert.Equal(did, r.Did);
        }
    }

    /// <summary>
    /// Fills the context cache (and the fast and root words) for <paramref name="sid"/> with a first
    /// request, empties the IOTLB of <paramref name="did"/>, then checks that the misses that follow —
    /// which find the context cached — walk <paramref name="table"/> and count one miss each.
    /// </summary>
    private static void AssertMissesWalk(IsolationRig rig, ushort sid, int table, ushort did, bool batch)
    {
        TranslationResult fill = rig.Translate(sid, 0);
        Assert.True(fill.IsSuccess, fill.ToString());
        Assert.Equal(table, rig.TableOf(fill.Hpa));
        rig.InvalidateDomain(did);
        long misses = rig.Unit.IotlbMisses, contextMisses = rig.Unit.ContextMisses;
        TranslationResult[] results = Translate(rig, sid, 1, 16, batch);
        AssertWalkedThrough(rig, results, table, did);
        Assert.Equal(16, rig.Unit.IotlbMisses - misses);
        Assert.Equal(contextMisses, rig.Unit.ContextMisses);   // the context was cached: only the IOTLB missed
        rig.InvalidateDomain(did);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void AfterADomainMoveAMissWalksTheNewDomainsTable(bool scalable, bool batch)
    {
        using var rig = new IsolationRig(scalable, tables: 3);
        rig.Attach(Sid, 0, did: 1);
        AssertMissesWalk(rig, Sid, 0, 1, batch);

        // The driver moves the device: new DID and table, context cache and the old domain's IOTLB flushed.
        rig.Attach(Sid, 1, did: 2);
        rig.InvalidateContexts();
        rig.InvalidateDomain(1);
        AssertMissesWalk(rig, Sid, 1, 2, batch);

        // And back under the first DID, to a third table: no root word of an earlier put is walked.
        rig.Attach(Sid, 2, did: 1);
        rig.InvalidateContexts();
        rig.InvalidateDomain(2);
        AssertMissesWalk(rig, Sid, 2, 1, batch);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void AfterTheTableOfADomainIsReplacedAMissUnderTheSameDidWalksTheNewTable(bool scalable, bool batch)
    {
        using var rig = new IsolationRig(scalable, tables: 2);
        rig.Attach(Sid, 0, did: 4);
        AssertMissesWalk(rig, Sid, 0, 4, batch);

        rig.Attach(Sid, 1, did: 4);
        rig.InvalidateContexts();
        rig.InvalidateDomain(4);
        AssertMissesWalk(rig, Sid, 1, 4, batch);

        rig.Attach(Sid, 0, did: 4);
        rig.InvalidateContexts();
        rig.InvalidateDomain(4);
        AssertMissesWalk(rig, Sid, 0, 4, batch);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void EachSourcesMissesWalkItsOwnTable(bool scalable, bool batch)
    {
        // Root words are per source: two devices in two domains, their misses interleaved.
        using var rig = new IsolationRig(scalable, tables: 2);
        rig.Attach(Sid, 0, did: 1);
        rig.Attach(OtherSid, 1, did: 2);
        Assert.Equal(0, rig.TableOf(rig.Translate(Sid, 0).Hpa));
        Assert.Equal(1, rig.TableOf(rig.Translate(OtherSid, 0).Hpa));
        rig.InvalidateDomain(1);
        rig.InvalidateDomain(2);
        for (int round = 0; round < 3; round++)
        {
            int first = 1 + round * 8;
            AssertWalkedThrough(rig, Translate(rig, Sid, first, first + 7, batch), 0, 1);
            AssertWalkedThrough(rig, Translate(rig, OtherSid, first, first + 7, batch), 1, 2);
        }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void AfterAMoveToPassThroughAndBackAMissWalksTheTableOfTheLatestContext(bool scalable, bool batch)
    {
        // A pass-through put writes no fast or root word; the translating put after it writes both.
        using var rig = new IsolationRig(scalable, tables: 2);
        rig.Attach(Sid, 0, did: 1);
        AssertMissesWalk(rig, Sid, 0, 1, batch);

        if (scalable)
        {
            rig.Tables.SetScalableContext(Sid, ridPasid: 0, pasidEnable: true);
            rig.Tables.SetPasidEntry(Sid, 0, PasidEntry.PassThrough(2, 3));
        }
        else
        {
            rig.Tables.SetContext(Sid, ContextEntry.Create(0, 2, 3, ContextEntry.TranslationTypePassThrough));
        }
        rig.InvalidateContexts();
        rig.InvalidateDomain(1);
        Assert.Equal(TranslationStatus.PassThrough, rig.Translate(Sid, 5).Status);

        rig.Attach(Sid, 1, did: 1);
        rig.InvalidateContexts();
        AssertMissesWalk(rig, Sid, 1, 1, batch);
    }
}
