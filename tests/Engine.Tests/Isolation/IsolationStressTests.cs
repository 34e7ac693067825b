using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Isolation;

/// <summary>
/// Isolation, the IOMMU's job, under churn: several threads translate while one thread changes what
/// the devices may reach, as the driver does. Each test has a control that leaves out the mechanism
/// (the invalidation) and must then find violations, so the test can fail.
/// </summary>
public class IsolationStressTests
{
    private const int Translators = 3;
    private static readonly ushort Sid = TranslationRequest.Bdf(0x3A, 2, 1);
    private static readonly ushort OtherSid = TranslationRequest.Bdf(0x3A, 2, 2);

    /// <summary>
    /// The device moves through eight domains (each its own table and DID) and a blocked state, in a
    /// cycle. A translation that starts after move m returned may come from the state after m, or the
    /// next ones if moves return while it runs; from an earlier one, never. Blocked never translates.
    /// </summary>
    [Theory]
    [InlineData(false, true, true)]
    [InlineData(true, true, true)]
    [InlineData(true, false, true)]
    [InlineData(false, true, false)]
    [InlineData(true, true, false)]
    public void AMovedDeviceNeverTranslatesThroughItsOldDomain(bool scalable, bool simd, bool invalidate)
    {
        const int States = 9, Blocked = 8, Moves = 100;   // 100 % 9 = 1: the last state is not the first
        using var rig = new IsolationRig(scalable, tables: 8, simd);
        static ushort DidOf(int state) => (ushort)(10 + state);
        rig.Attach(Sid, 0, DidOf(0));
        int completed = 0;
        var violations = new List<string>();

        void Check(int page, TranslationResult r, int before, int after)
        {
            if (!r.IsSuccess)
                return;   // a fault never breaks isolation
            int table = rig.TableOf(r.Hpa);
            bool allowed = false;
            for (int m = before; m <= after + 1 && !allowed; m++)
                allowed = m % States == table && table != Blocked;
            if (!allowed || (r.Hpa & 0xFFF) != 0x40)
            {
                lock (violations)
                    violations.Add($"page {page} after {before} moves (to {after}): {r} is table {table}");
            }
        }

        void TranslateRound(Random rng, TranslationRequest[] requests, TranslationResult[] results, bool batch)
        {
            int before = Volatile.Read(ref completed);
            int n = batch ? requests.Length : 1;
            for (int k = 0; k < n; k++)
                requests[k] = new TranslationRequest(Sid, ((ulong)rng.Next(IsolationRig.Pages) << 12) | 0x40, Access.Read);
            if (batch)
                rig.Unit.TranslateBatch(requests, results);
            else
                results[0] = rig.Unit.Translate(requests[0]);
            int after = Volatile.Read(ref completed);
            for (int k = 0; k < n; k++)
                Check((int)(requests[k].Iova >> 12), results[k], before, after);
        }

        // Warm the caches in state 0 so the control has something stale to find.
        for (int p = 0; p < IsolationRig.Pages; p++)
            Assert.Equal(0, rig.TableOf(rig.Translate(Sid, p).Hpa));

        bool stop = false;
        var threads = Enumerable.Range(0, Translators).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            var requests = new TranslationRequest[16];
            var results = new TranslationResult[16];
            while (!Volatile.Read(ref stop))
                TranslateRound(rng, requests, results, batch: t == 0);
            // One more round that surely starts after the last move returned.
            TranslateRound(rng, requests, results, batch: t == 0);
        })).ToList();
        threads.ForEach(x => x.Start());
        for (int m = 0; m < Moves; m++)
        {
            int from = m % States, to = (m + 1) % States;
            if (to == Blocked)
                rig.Block(Sid);
            else
                rig.Attach(Sid, to, DidOf(to));
            if (invalidate)
            {
                rig.InvalidateContexts();
                if (from != Blocked)
                    rig.InvalidateDomain(DidOf(from));
            }
            Volatile.Write(ref completed, m + 1);
            Thread.Yield();
        }
        Volatile.Write(ref stop, true);
        threads.ForEach(x => x.Join());
        // And every page once more from this thread, after everything.
        var single = new Random(99);
        TranslateRound(single, new TranslationRequest[1], new TranslationResult[1], batch: false);
        for (int p = 0; p < IsolationRig.Pages; p++)
            Check(p, rig.Translate(Sid, p), Moves, Moves);

        if (invalidate)
            Assert.True(violations.Count == 0, $"{violations.Count} violations, first: {string.Join("; ", violations.Take(3))}");
        else
            Assert.True(violations.Count > 0, "without the invalidations the device must still reach its old domain: the test would not see a broken flush");
    }

    /// <summary>
    /// DID 20 changes owner back and forth: device A's table, then device B's. The driver flushes the
    /// DID's IOTLB entries when it frees it; B must never reach A's frames through entries A left under
    /// the same DID, and A never B's. In the control the flush is left out.
    /// </summary>
    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(true, false)]
    public void AReusedDomainIdNeverHitsThePreviousOwnersEntries(bool scalable, bool flush)
    {
        const ushort Did = 20;
        const int Rounds = 200;
        using var rig = new IsolationRig(scalable, tables: 2);
        ushort[] sids = [Sid, OtherSid];   // device i only ever owns table i
        int owner = 0;
        rig.Attach(sids[0], 0, Did);
        rig.Block(sids[1]);
        var violations = new List<string>();

        void Check(int device, int page, TranslationResult r)
        {
            if (r.IsSuccess && rig.TableOf(r.Hpa) != device)
            {
                lock (violations)
                    violations.Add($"device {device} page {page}: {r} is table {rig.TableOf(r.Hpa)}");
            }
        }

        void Handover()
        {
            int from = owner, to = 1 - owner;
            rig.Block(sids[from]);
            rig.InvalidateContexts();
            if (flush)
                rig.InvalidateDomain(Did);   // the DID is freed: nothing of the old owner may stay under it
            rig.Attach(sids[to], to, Did);
            rig.InvalidateContexts();
            Volatile.Write(ref owner, to);
        }

        bool stop = false;
        var threads = Enumerable.Range(0, Translators).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            while (!Volatile.Read(ref stop))
            {
                int device = rng.Next(2), page = rng.Next(IsolationRig.Pages);
                Check(device, page, rig.Translate(sids[device], page));
            }
        })).ToList();
        threads.ForEach(x => x.Start());
        for (int r = 0; r < Rounds; r++)
        {
            // The owner fills the IOTLB under the DID, then hands it over.
            for (int p = 0; p < IsolationRig.Pages; p += 3)
                Check(owner, p, rig.Translate(sids[owner], p));
            Handover();
            for (int p = 0; p < IsolationRig.Pages; p++)
                Check(owner, p, rig.Translate(sids[owner], p));
        }
        Volatile.Write(ref stop, true);
        threads.ForEach(x => x.Join());

        if (flush)
            Assert.True(violations.Count == 0, $"{violations.Count} violations, first: {string.Join("; ", violations.Take(3))}");
        else
            Assert.True(violations.Count > 0, "without the flush the new owner must hit the old owner's entries: the test would not see a missing flush");
    }

    /// <summary>
    /// Device X (table 0) sends requests with every kind of disguise — a PASID it has no entry for, an
    /// ATS translation request, the source ids next to its own (other function, other device, other bus,
    /// one bit flipped) — while another thread keeps re-programming device Y (table 1) and flushing.
    /// Nothing ever reaches Y's table but Y itself, and a source id without a context never translates.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NoRequestReachesAnotherDevicesDomainThroughPasidAtsOrAnAliasedSourceId(bool scalable)
    {
        using var rig = new IsolationRig(scalable, tables: 2);
        ushort x = TranslationRequest.Bdf(0x20, 4, 0), y = TranslationRequest.Bdf(0x21, 4, 0);
        rig.Attach(x, 0, 30);
        rig.Attach(y, 1, 31);
        ushort[] disguises =
        [
            x, (ushort)(x ^ 1), (ushort)(x ^ 8), (ushort)(x ^ 0x200), (ushort)(x ^ 0x8000), (ushort)(x - 1),
            (ushort)(x & 0xFF), (ushort)(x | 0xFF), (ushort)(y ^ 1), (ushort)(y ^ 0x8000), 0, 0xFFFF,
        ];
        Assert.DoesNotContain(y, disguises);
        var violations = new List<string>();
        var threads = Enumerable.Range(0, Translators).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            for (int i = 0; i < 20_000; i++)
            {
                ushort sid = disguises[rng.Next(disguises.Length)];
                uint pasid = rng.Next(3) switch { 0 => TranslationRequest.NoPasid, 1 => 0, _ => (uint)rng.Next(1 << 20) };
                bool ats = rng.Next(4) == 0;
                var request = new TranslationRequest(sid, ((ulong)rng.Next(IsolationRig.Pages) << 12) | 0x40, (Access)rng.Next(1, 8), pasid, ats);
                TranslationResult r = rig.Unit.Translate(request);
                if (!r.IsSuccess || r.Status == TranslationStatus.PassThrough)
                    continue;
                int table = rig.TableOf(r.Hpa);
                if (sid != x || table != 0)
                {
                    lock (violations)
                        violations.Add($"{request}: {r} (table {table})");
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        var changer = new Thread(() =>
        {
            int n = 0;
            while (threads.Any(t => t.IsAlive))
            {
                if (n++ % 2 == 0)
                    rig.Block(y);
                else
                    rig.Attach(y, 1, 31);
                rig.InvalidateContexts();
                rig.InvalidateDomain(31);
                Thread.Yield();
            }
        });
        changer.Start();
        threads.ForEach(t => t.Join());
        changer.Join();
        Assert.True(violations.Count == 0, $"{violations.Count} violations, first: {string.Join("; ", violations.Take(3))}");
    }
}
