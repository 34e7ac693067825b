using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Control;

namespace Engine.Tests.Lifecycle;

/// <summary>What a device, its DMA and the platform's control calls answer once the platform is gone.</summary>
public class PlatformDisposeTests
{
    [Fact]
    public void DevicesTranslateNothingAfterThePlatformIsDisposed()
    {
        var f = new ControlFixture();
        Device bare = f.Platform.AddDevice("legacy", TranslationRequest.Bdf(0x01, 0, 0), null);
        KvmDomain domain = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        domain.Attach(f.Nic);
        domain.Attach(f.Nvme, AttachFlags.AllowWithoutPageRequests);
        f.Vm.Map(0, 64, Access.All);
        Assert.True(f.Nvme.Translate(0x3000, Access.Read).IsSuccess);
        Assert.True(f.Nvme.Translate(0x3000, Access.Read).IotlbHit);
        Assert.Equal(TranslationStatus.PassThrough, bare.Translate(0x3000, Access.Read).Status);

        f.Platform.Dispose();

        Assert.True(f.Platform.IsDisposed);
        Assert.Equal(TranslationStatus.Disposed, f.Nvme.Translate(0x3000, Access.Read).Status);            // was a hit
        Assert.Equal(TranslationStatus.Disposed, f.Nvme.Translate(0x40_0000, Access.Read).Status);         // never mapped
        Assert.Equal(TranslationStatus.Disposed, f.Nic.TranslateWithPageRequests(0x3000, Access.Write).Status);
        Assert.Equal(TranslationStatus.Disposed, f.Nic.TranslateWithPageRequests(0x40_0000, Access.Write).Status);
        Assert.Equal(TranslationStatus.Disposed, bare.Translate(0x3000, Access.Read).Status);              // no IOMMU: no pass-through into freed memory
        Assert.Equal(0L, f.Nic.PageRequests);

        var buffer = new byte[8192];
        foreach (Device d in new[] { f.Nvme, f.Nic, bare })
        {
            DmaResult w = DmaTransfer.Write(d, 0x3000, buffer, pageFaults: true);
            Assert.Equal(DmaStatus.Disposed, w.Status);
            Assert.Equal(0, w.Transferred);
            Assert.Equal(DmaStatus.Disposed, DmaTransfer.Read(d, 0x3000, buffer).Status);
        }
        f.Platform.Dispose();   // twice is fine
    }

    [Fact]
    public void ControlCallsOnADisposedPlatformThrowObjectDisposed()
    {
        var f = new ControlFixture();
        f.Platform.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Platform.AddIommu("dmar9", IommuPresets.GraniteRapidsServer));
        Assert.Throws<ObjectDisposedException>(() => f.Platform.AddDevice("x", 0x100, f.Dmar0));
        Assert.Throws<ObjectDisposedException>(() => f.Platform.CreateVm());
        Assert.Throws<ObjectDisposedException>(() => f.Platform.AllocatePagingDomain());
        Assert.Throws<ObjectDisposedException>(() => f.Platform.AllocateKvmDomain(f.Nic, f.Tdp));
        Assert.Throws<ObjectDisposedException>(() => f.Platform.HwInfo(f.Nic));
        Assert.Throws<ObjectDisposedException>(() => f.Platform.ServePageRequests(f.Dmar0));
    }

    /// <summary>
    /// Devices move data through a KVM domain on three threads while the platform is disposed under
    /// them, many times over: nothing crashes, no byte lands outside the guest's frames, and every
    /// DMA or translation that starts after Dispose returned moves nothing.
    /// </summary>
    [Fact]
    public void DisposingThePlatformWhileDevicesMoveDataNeverCrashes()
    {
        for (int round = 0; round < 10; round++)
        {
            var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 1UL << 30 } });
            IommuInstance dmar = platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
            Device[] devices =
            [
                platform.AddDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), dmar, DeviceAbilities.Ats | DeviceAbilities.Pri),
                platform.AddDevice("nvme", TranslationRequest.Bdf(0x98, 0, 0), dmar),
                platform.AddDevice("bare", TranslationRequest.Bdf(0x01, 0, 0), null),
            ];
            var vm = platform.CreateVm(new Engine.Kvm.VmOptions { TdpLevels = 4, MaxHugePageLevel = 2 });
            vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size4K);
            KvmDomain domain = platform.AllocateKvmDomain(devices[0], vm.ExportTdp());
            domain.Attach(devices[0]);
            domain.Attach(devices[1], AttachFlags.AllowWithoutPageRequests);
            vm.Map(0, 1024, Access.All);
            int disposed = 0, started = 0;
            string? failure = null;
            var threads = devices.Select((device, t) => new Thread(() =>
            {
                var rng = new Random(round * 3 + t);
                var buffer = new byte[6000];
                while (true)
                {
                    bool afterDispose = Volatile.Read(ref disposed) != 0;
                    ulong iova = (ulong)rng.Next(1100) << 12;
                    // The bare device (no IOMMU) writes at HPA = IOVA: outside host memory, never moved.
                    DmaResult r = rng.Next(2) == 0
                        ? DmaTransfer.Write(device, iova, buffer, pageFaults: true)
                        : DmaTransfer.Read(device, iova, buffer);
                    TranslationResult x = device.Translate(iova, Access.Read);
                    Interlocked.Increment(ref started);
                    if (afterDispose && (r.Transferred != 0 || x.Status != TranslationStatus.Disposed))
                        failure ??= $"{device.Name} after Dispose returned: {r}, {x}";
                    if (afterDispose)
                        return;
                }
            })).ToList();
            threads.ForEach(x => x.Start());
            SpinWait.SpinUntil(() => Volatile.Read(ref started) >= 200 || threads.Any(x => !x.IsAlive));
            platform.Dispose();
            Volatile.Write(ref disposed, 1);
            threads.ForEach(x => x.Join());
            Assert.True(failure is null, $"round {round}: {failure}");
        }
    }
}
