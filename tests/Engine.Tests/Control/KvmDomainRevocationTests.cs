using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>
/// A KVM domain translates through tables its VM owns: when the VM (or its TDP export) goes, the
/// domain is revoked before a frame is freed, so no device reaches memory the next VM gets.
/// </summary>
public class KvmDomainRevocationTests
{
    private const ulong Slot1Gfn = (1UL << 30) >> 12; // ControlFixture's 4K-backed slot

    [Fact]
    public void ADisposedVmsDomainIsRevokedAndTheNextVmsMemoryIsUntouched()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        d.Attach(f.Gpu);
        const int Pages = 64;
        f.Vm.Map(Slot1Gfn, Pages, Access.All);
        Assert.True(DmaTransfer.Write(f.Nic, Slot1Gfn << 12, new byte[Pages * 4096]).IsComplete);

        f.Vm.Dispose();

        // The next VM takes the frames the first one freed (last freed, first reused): its root, its
        // tables and its guest memory are what the first VM's last guest pages were.
        Vm second = f.Platform.CreateVm(new VmOptions { TdpLevels = 4, Name = "second" });
        second.AddMemslot(0, 0, 1UL << 20);
        second.Map(0, 8, Access.All);
        ulong[] secondFrames = [.. Enumerable.Range(0, 8).Select(g => second.Memslots[0].PeekHpa((ulong)g))];

        // DMA through the stale devices, over every page the first VM had mapped.
        byte[] pattern = [.. Enumerable.Repeat((byte)0xA5, Pages * 4096)];
        var writes = new List<DmaResult>();
        foreach (Device device in new[] { f.Nic, f.Gpu })
        {
            writes.Add(DmaTransfer.Write(device, Slot1Gfn << 12, pattern));
            writes.Add(DmaTransfer.Write(device, Slot1Gfn << 12, pattern, pageFaults: true));
        }
        foreach (ulong frame in secondFrames)
            Assert.True(f.Platform.Memory.GetFrame(frame).IndexOfAnyExcept((byte)0) < 0, $"the second VM's frame 0x{frame:x} was written through the first VM's domain");
        for (ulong g = 0; g < 8; g++)
            Assert.Equal(secondFrames[g], second.Translate(g << 12, Access.Read).Hpa);

        // Every one of them faulted with the documented reason, moved nothing and asked for no page.
        foreach (DmaResult w in writes)
        {
            Assert.Equal(DmaStatus.Faulted, w.Status);
            Assert.Equal(0, w.Transferred);
            Assert.Equal(FaultReason.SmPasidEntryNotPresent, w.Fault);
            Assert.Equal(0, w.PageRequests);
        }
        Assert.True(d.IsFreed && d.IsRevoked, "the domain must not outlive the tables it walks");
        Assert.True(f.Tdp.IsClosed);
        Assert.Null(f.Nic.Domain);
        Assert.Null(f.Gpu.Domain);
        Assert.False(f.Nic.PageRequestsEnabled);
        Assert.Empty(d.Devices);
        Assert.Null(f.Dmar0.DidOf(d));
        foreach (Device device in new[] { f.Nic, f.Gpu })
        {
            Assert.Equal(DmaStatus.Faulted, DmaTransfer.Read(device, Slot1Gfn << 12, new byte[64], pageFaults: true).Status);
            for (ulong g = 0; g < Pages; g += 9)
            {
                Assert.Equal(FaultReason.SmPasidEntryNotPresent, device.Translate((Slot1Gfn + g) << 12, Access.Write).Fault);
                Assert.Equal(FaultReason.SmPasidEntryNotPresent, device.TranslateWithPageRequests((Slot1Gfn + g) << 12, Access.Write).Fault);
            }
        }
        Assert.Equal(0, f.Nic.PageRequests + f.Gpu.PageRequests);
    }

    [Fact]
    public void ARevokedDomainAnswersEveryLaterCallWithoutTouchingTheTables()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.Dispose();

        var attach = Assert.Throws<EngineException>(() => d.Attach(f.Gpu));
        Assert.Equal(Errno.EINVAL, attach.Errno);
        Assert.Contains("revoked", attach.Message);
        var detach = Assert.Throws<EngineException>(() => d.Detach(f.Nic));
        Assert.Equal(Errno.EINVAL, detach.Errno);
        Assert.Contains("revoked", detach.Message);
        long invalidations = d.Invalidations;
        d.Invalidate(0, ExportedTdp.InvalidateAll);
        Assert.Equal(invalidations, d.Invalidations);
        Assert.Equal(PageResponseCode.Invalid, d.ServePageGroup([new PageRequest(f.Nic.SourceId, 0x1000, true, false, false, true, 1)]));
        d.Dispose();
        d.Dispose();
        Assert.Equal(Errno.ENODEV, Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp)).Errno);

        // The device is free to go to another domain.
        PagingDomain p = f.Platform.AllocatePagingDomain();
        p.Attach(f.Nic);
        Assert.Same(p, f.Nic.Domain);
    }

    [Fact]
    public void ClosingTheTdpExportRevokesTheDomainAndANewExportServesANewOne()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.Map(0, 512, Access.All);
        Assert.True(f.Nic.Translate(0x1000, Access.Read).IsSuccess);
        f.Tdp.Dispose();
        Assert.True(d.IsRevoked);
        Assert.Equal(FaultReason.SmPasidEntryNotPresent, f.Nic.Translate(0x1000, Access.Read).Fault);

        // KVM goes on; a zap must not reach the revoked domain, and a new export works.
        f.Vm.Zap(0, 512);
        using KvmTdpFd again = f.Vm.ExportTdp();
        KvmDomain d2 = f.Platform.AllocateKvmDomain(f.Nic, again);
        d2.Attach(f.Nic);
        TranslationResult r = f.Nic.TranslateWithPageRequests(0x1000, Access.Read);
        Assert.True(r.IsSuccess, r.ToString());
        Assert.Equal(f.Backing(0x1000), r.Hpa);
    }

    [Fact]
    public void AnExportFromAnotherHostMemoryIsRefused()
    {
        using var f = new ControlFixture(levels: 4);
        using var memory = TestMemory.Create(64);
        using var foreign = new Vm(memory);
        using KvmTdpFd tdp = foreign.ExportTdp();
        var e = Assert.Throws<EngineException>(() => f.Platform.AllocateKvmDomain(f.Nic, tdp));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Equal(0, tdp.ImporterCount);
    }

    [Fact]
    public void NoTranslationThatStartsAfterTheVmsDisposeReturnedSucceeds()
    {
        using var f = new ControlFixture(levels: 4);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        d.Attach(f.Gpu);
        const int Pages = 256;
        f.Vm.Map(Slot1Gfn, Pages, Access.All);
        int disposed = 0;
        long afterDispose = 0, lateSuccesses = 0, earlySuccesses = 0, early = 0;
        Device[] devices = [f.Nic, f.Gpu];
        var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            var buffer = new byte[128];
            long after = 0;
            while (after < 20_000)
            {
                bool late = Volatile.Read(ref disposed) != 0;
                Device device = devices[rng.Next(2)];
                ulong gpa = (Slot1Gfn + (ulong)rng.Next(Pages)) << 12;
                bool ok = (rng.Next(2) == 0)
                    ? device.Translate(gpa, Access.Write).IsSuccess
                    : DmaTransfer.Write(device, gpa, buffer, pageFaults: true).IsComplete;
                if (late)
                {
                    after++;
                    if (ok)
                        Interlocked.Increment(ref lateSuccesses);
                }
                else
                {
                    Interlocked.Increment(ref early);
                    if (ok)
                        Interlocked.Increment(ref earlySuccesses);
                }
            }
            Interlocked.Add(ref afterDispose, after);
        })).ToList();
        threads.ForEach(t => t.Start());
        // Let the translators run for a while (no timing is asserted: only what starts after Dispose).
        while (Interlocked.Read(ref early) < 2000)
            Thread.Yield();
        f.Vm.Dispose();
        Volatile.Write(ref disposed, 1);
        threads.ForEach(t => t.Join());
        Assert.True(earlySuccesses > 0, "nothing translated before the VM was disposed");
        Assert.Equal(0, Interlocked.Read(ref lateSuccesses));
        Assert.Equal(40_000, afterDispose);
    }
}
