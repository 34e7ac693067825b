using CsCheck;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>
/// Random invalidation descriptors of every type, with random fields and random reserved bits,
/// submitted through the queue and checked against an independent reading of SPEC.md §2.8: a
/// well-formed descriptor runs, the first malformed one stops the queue with FSTS.IQE and IQH on it
/// (nothing behind it runs), no exception escapes, and the unit translates correctly afterwards.
/// </summary>
public class DescriptorPropertyTests
{
    // The fields of each type, from the table in SPEC.md §2.8 (qw0, qw1); every other bit is reserved,
    // including the extended type bits 11:9. Written out here rather than taken from the engine, so
    // the two readings check each other.
    private static (ulong Qw0, ulong Qw1)? Fields(int type) => type switch
    {
        1 => (Bits(3, 0) | Bits(5, 4) | Bits(31, 16) | Bits(47, 32) | Bits(49, 48), 0),
        2 => (Bits(3, 0) | Bits(5, 4) | Bits(6, 6) | Bits(7, 7) | Bits(31, 16), Bits(63, 12) | Bits(6, 6) | Bits(5, 0)),
        3 => (Bits(3, 0) | Bits(15, 12) | Bits(63, 52) | Bits(20, 16) | Bits(47, 32), Bits(63, 12) | Bits(0, 0)),
        4 => (Bits(3, 0) | Bits(4, 4) | Bits(31, 27) | Bits(47, 32), 0),
        5 => (Bits(3, 0) | Bits(4, 4) | Bits(5, 5) | Bits(6, 6) | Bits(7, 7) | Bits(63, 32), Bits(63, 2)),
        6 => (Bits(3, 0) | Bits(5, 4) | Bits(31, 16) | Bits(51, 32), Bits(63, 12) | Bits(6, 6) | Bits(5, 0)),
        7 => (Bits(3, 0) | Bits(5, 4) | Bits(31, 16) | Bits(51, 32), 0),
        8 => (Bits(3, 0) | Bits(31, 16) | Bits(8, 4) | Bits(15, 12) | Bits(63, 52) | Bits(51, 32), Bits(63, 12) | Bits(11, 11) | Bits(0, 0)),
        9 => (Bits(3, 0) | Bits(4, 4) | Bits(5, 5) | Bits(15, 12) | Bits(31, 16) | Bits(51, 32), Bits(2, 2) | Bits(11, 3)),
        _ => null,
    };

    private static ulong Bits(int high, int low) => (high == 63 ? ulong.MaxValue : (1UL << (high + 1)) - 1) & ~((1UL << low) - 1);

    /// <summary>What the unit must answer for <paramref name="d"/>, by the spec's rules alone.</summary>
    private static InvalidationQueueError Expected(in InvalidationDescriptor d, bool wide, bool prs, UnitFixture f)
    {
        int type = (int)(d.Qw0 & 0xF);
        if (Fields(type) is not { } fields || (d.Qw0 & ~fields.Qw0) != 0 || (d.Qw1 & ~fields.Qw1) != 0)
            return InvalidationQueueError.InvalidDescriptor;
        if (wide && (d.Qw2 | d.Qw3) != 0)
            return InvalidationQueueError.InvalidDescriptor;
        int g = (int)((d.Qw0 >> 4) & 3);
        bool valid = type switch
        {
            1 => g != 0,          // 1 global, 2 domain, 3 device
            2 => g != 0,          // 1 global, 2 domain, 3 page
            6 => g is 2 or 3,     // 2 all of a PASID, 3 pages within it
            7 => g != 2,          // 0 domain, 1 PASID, 3 global
            9 => prs,             // page-group responses need page-request support
            _ => true,
        };
        if (!valid)
            return InvalidationQueueError.InvalidDescriptor;
        if (type == 5 && (d.Qw0 & (1UL << 5)) != 0)
        {
            ulong address = d.Qw1 & ~3UL;
            if (!f.Memory.Contains(address, 4) || f.Memory.GetFrameState(address) != Engine.Memory.FrameState.Allocated)
                return InvalidationQueueError.StatusWriteFailed;
        }
        return InvalidationQueueError.None;
    }

    /// <summary>Descriptors: well-formed ones of every type, the same with reserved bits or a bad granularity, and raw noise.</summary>
    private static Gen<InvalidationDescriptor> Descriptors(bool wide, ulong statusFrame)
    {
        Gen<int> types = Gen.Frequency((9, Gen.Int[1, 9]), (1, Gen.Int[0, 15]));
        // A wait's status address: mostly inside the allocated status frame, sometimes anywhere.
        Gen<ulong> statusAddress = Gen.Frequency(
            (4, Gen.ULong[0, 0xFFF].Select(o => statusFrame + (o & ~3UL))),
            (1, Gen.ULong));
        Gen<InvalidationDescriptor> wellFormed =
            from type in types
            from qw0 in Gen.ULong
            from qw1 in Gen.ULong
            from address in statusAddress
            let fields = Fields(type) ?? (ulong.MaxValue, ulong.MaxValue)
            let q0 = (qw0 & fields.Qw0 & ~0xFUL) | (uint)type
            let q1 = type == 5 && (q0 & (1UL << 5)) != 0 ? address & ~3UL : qw1 & fields.Qw1
            select new InvalidationDescriptor(q0, q1);
        Gen<InvalidationDescriptor> withReservedBit =
            from d in wellFormed
            from bit in Gen.Int[0, 127]
            select bit < 64 ? d with { Qw0 = d.Qw0 | 1UL << bit } : d with { Qw1 = d.Qw1 | 1UL << (bit - 64) };
        Gen<InvalidationDescriptor> noise = Gen.Select(Gen.ULong, Gen.ULong, (a, b) => new InvalidationDescriptor(a, b));
        Gen<InvalidationDescriptor> narrow = Gen.Frequency((6, wellFormed), (3, withReservedBit), (1, noise));
        if (!wide)
            return narrow;
        // 256-bit descriptors: these types leave qw2 and qw3 reserved; each may be zero, one bit or noise.
        Gen<ulong> upper = Gen.Frequency((2, Gen.Const(0UL)), (1, Gen.Int[0, 63].Select(b => 1UL << b)), (1, Gen.ULong));
        return Gen.Frequency(
            (4, narrow),
            (1, Gen.Select(narrow, upper, upper, (d, q2, q3) => d with { Qw2 = q2, Qw3 = q3 })));
    }

    private sealed class Harness : IDisposable
    {
        public const ulong Page = 7;

        public Harness(bool wide, bool prs)
        {
            ExtendedCapabilityRegister ecap = prs ? UnitFixture.ServerEcap : ExtendedCapabilityRegister.Encode(UnitFixture.ServerEcap.Decode() with { Prs = false });
            F = new UnitFixture(scalable: true, ecap: ecap);
            Wide = wide;
            Prs = prs;
            Status = F.Memory.AllocateFrame();
            F.Vm.Map(0, 64, Access.All);
            F.Unit.DeviceTlbInvalidated += _ => DeviceTlbEvents++;
            F.Unit.PageResponse += _ => PageResponses++;
            F.Unit.EnableQueuedInvalidation(F.Queue, 0, wide);
        }

        public UnitFixture F { get; }

        public bool Wide { get; }

        public bool Prs { get; }

        public ulong Status { get; }

        public int DeviceTlbEvents { get; set; }

        public int PageResponses { get; set; }

        public int Slots => 4096 >> (Wide ? 5 : 4);

        /// <summary>What a driver does after an IQE: turn QI off, clear IQE, start the queue afresh.</summary>
        public void RestartQueue()
        {
            F.Unit.WriteRegister(RegisterOffsets.GlobalCommand, 4, (uint)GlobalCommand.TranslationEnable);
            F.Unit.WriteRegister(RegisterOffsets.FaultStatus, 4, FaultRecorder.FaultStatusIqe);
            F.Unit.EnableQueuedInvalidation(F.Queue, 0, Wide);
        }

        /// <summary>The page translates to its backing; once zapped and invalidated it faults; mapped again it translates.</summary>
        public void CheckStillTranslates()
        {
            // The queue and the IOTLB work: the zap is seen only through the invalidation.
            Assert.Equal(InvalidationQueueError.None, F.Unit.Submit(InvalidationDescriptor.Iotlb(1)));
            TranslationResult r = F.Translate(Page << 12);
            Assert.True(r.IsSuccess, $"page {Page} does not translate: {r}");
            Assert.Equal(F.Backing(Page << 12), r.Hpa);
            Assert.True(F.Translate(Page << 12).IotlbHit);
            F.Vm.Zap(Page, 1);
            Assert.Equal(InvalidationQueueError.None, F.Unit.Submit(InvalidationDescriptor.Iotlb(3, UnitFixture.Did, Page << 12)));
            Assert.False(F.Translate(Page << 12).IsSuccess, "a zapped and invalidated page still translates");
            F.Vm.Map(Page, 1, Access.All);
            r = F.Translate(Page << 12);
            Assert.True(r.IsSuccess && r.Hpa == F.Backing(Page << 12), $"page {Page} does not translate after remapping: {r}");
        }

        public void Dispose() => F.Dispose();
    }

    /// <summary>Submits <paramref name="descriptors"/> and checks everything the spec says about the outcome.</summary>
    private static void SubmitAndCheck(Harness h, InvalidationDescriptor[] descriptors)
    {
        UnitFixture f = h.F;
        // Each sample starts from a running queue and a mapped page, whatever a failed one left (shrinking reruns samples).
        h.RestartQueue();
        f.Vm.Map(Harness.Page, 1, Access.All);
        int shift = h.Wide ? 5 : 4;
        long processedBefore = f.Unit.DescriptorsProcessed;
        ulong headBefore = f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead) >> shift;
        int devTlbBefore = h.DeviceTlbEvents, responsesBefore = h.PageResponses;
        f.Memory.GetSpan(h.Status, 4096).Clear();

        int firstBad = Array.FindIndex(descriptors, d => Expected(d, h.Wide, h.Prs, f) != InvalidationQueueError.None);
        int runs = firstBad < 0 ? descriptors.Length : firstBad;
        InvalidationQueueError error = f.Unit.Submit(descriptors);

        InvalidationQueueError expected = firstBad < 0 ? InvalidationQueueError.None : Expected(descriptors[firstBad], h.Wide, h.Prs, f);
        Assert.Equal(expected, error);
        Assert.Equal(runs, f.Unit.DescriptorsProcessed - processedBefore);
        Assert.Equal((headBefore + (ulong)runs) % (ulong)h.Slots, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueHead) >> shift);
        Assert.Equal(firstBad >= 0, (f.Unit.Registers.Get(RegisterOffsets.FaultStatus) & FaultRecorder.FaultStatusIqe) != 0);
        if (firstBad >= 0)
        {
            Assert.Equal((ulong)expected, f.Unit.Registers.Get(RegisterOffsets.InvalidationQueueErrorRecord) & 0xF);
            // IQE is an interrupt condition: with FECTL.IM set (as after reset) the fault event is held in IP.
            Assert.Equal(FaultRecorder.FaultEventIm | FaultRecorder.FaultEventIp, f.Unit.Registers.Get(RegisterOffsets.FaultEventControl));
        }

        // Only what ran had effects: device-TLB events, page responses, status writes (the last one to each address).
        var ran = descriptors.Take(runs).ToArray();
        Assert.Equal(ran.Count(d => (d.Qw0 & 0xF) is 3 or 8), h.DeviceTlbEvents - devTlbBefore);
        Assert.Equal(ran.Count(d => (d.Qw0 & 0xF) == 9), h.PageResponses - responsesBefore);
        var statusWrites = new Dictionary<ulong, uint>();
        foreach (InvalidationDescriptor d in ran.Where(d => (d.Qw0 & 0xF) == 5 && (d.Qw0 & (1UL << 5)) != 0))
            statusWrites[d.Qw1 & ~3UL] = (uint)(d.Qw0 >> 32);
        Span<byte> status = f.Memory.GetSpan(h.Status, 4096);
        for (int offset = 0; offset < 4096; offset += 4)
        {
            uint want = statusWrites.TryGetValue(h.Status + (ulong)offset, out uint data) ? data : 0;
            Assert.Equal(want, BitConverter.ToUInt32(status[offset..]));
        }

        if (firstBad >= 0)
        {
            // Stopped: a further submission runs nothing until software restarts the queue.
            Assert.Equal(expected, f.Unit.Submit(InvalidationDescriptor.Iotlb(1)));
            Assert.Equal(runs, f.Unit.DescriptorsProcessed - processedBefore);
            h.RestartQueue();
        }
        h.CheckStillTranslates();
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void RandomDescriptorsRunOrStopTheQueueAsTheSpecSays(bool wide, bool prs)
    {
        using var h = new Harness(wide, prs);
        Descriptors(wide, h.Status).Array[1, 12].Sample(descriptors => SubmitAndCheck(h, descriptors), iter: 300, threads: 1);
    }

    [Fact]
    public void EveryWellFormedTypeRunsAndEverySingleReservedBitStopsTheQueue()
    {
        // Exhaustive over the single-bit cases the random test samples: for each type, a well-formed
        // descriptor with each one bit of qw0 and qw1 set in turn.
        using var h = new Harness(wide: false, prs: true);
        var failures = new List<string>();
        for (int type = 0; type < 16; type++)
        {
            for (int bit = -1; bit < 128; bit++)
            {
                ulong qw0 = (uint)type | (type is 1 or 2 or 7 ? 1UL << 4 : type == 6 ? 2UL << 4 : 0);
                ulong qw1 = 0;
                if (bit is >= 0 and < 64)
                    qw0 |= 1UL << bit;
                else if (bit >= 64)
                    qw1 |= 1UL << (bit - 64);
                var d = new InvalidationDescriptor(qw0, qw1);
                InvalidationQueueError expected = Expected(d, wide: false, prs: true, h.F);
                long before = h.F.Unit.DescriptorsProcessed;
                InvalidationQueueError error = h.F.Unit.Submit(d);
                if (error != expected || h.F.Unit.DescriptorsProcessed - before != (expected == InvalidationQueueError.None ? 1 : 0))
                    failures.Add($"type {type} bit {bit} (0x{qw0:x16} 0x{qw1:x16}): {error}, expected {expected}");
                if (error != InvalidationQueueError.None)
                    h.RestartQueue();
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
        h.CheckStillTranslates();
    }
}
