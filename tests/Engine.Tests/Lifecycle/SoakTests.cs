using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Memory;

namespace Engine.Tests.Lifecycle;

/// <summary>
/// The test-sized soak: thousands of platforms built, used (a KVM domain, DMA, KVM zaps, a page
/// request) and disposed. Native bytes must come back to exactly where they were, and the process's
/// resident memory must stay flat once the first platforms have warmed everything up. The long soak
/// is <c>engine run --soak</c>.
/// </summary>
[Collection(nameof(NativeTrackerCollection))]
public class SoakTests
{
    private const int Platforms = 2000;

    [Fact]
    public void ThousandsOfPlatformsComeAndGoWithoutLeakingNativeOrResidentMemory()
    {
        long nativeBefore = NativeMemoryTracker.ReservedBytes;
        long allocationsBefore = NativeMemoryTracker.LiveAllocations;
        long residentAfterWarmUp = 0;
        var buffer = new byte[3 * 4096];
        for (int i = 0; i < Platforms; i++)
        {
            using (var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 1UL << 30 } }))
            {
                IommuInstance dmar = platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
                Device nic = platform.AddDevice("nic", TranslationRequest.Bdf(0x17, 0, 0), dmar, DeviceAbilities.Ats | DeviceAbilities.Pri);
                Vm vm = platform.CreateVm(new VmOptions { TdpLevels = 4, MaxHugePageLevel = 2 });
                vm.AddMemslot(0, 0, 16UL << 20, PageSize.Size4K);
                KvmDomain domain = platform.AllocateKvmDomain(nic, vm.ExportTdp());
                domain.Attach(nic);
                vm.Map(0, 256, Access.All);
                Assert.True(DmaTransfer.Write(nic, 0x1800, buffer).IsComplete);
                vm.Zap(1, 2);
                Assert.True(DmaTransfer.Read(nic, 0x1800, buffer, pageFaults: true).IsComplete, "the zapped pages come back through a page request");
                if (i % 3 == 0)
                {
                    domain.Detach(nic);
                    domain.Dispose();
                }
                // Otherwise the platform tears the attached domain down itself.
            }
            if (i == Platforms / 10)
                residentAfterWarmUp = SettledResidentBytes();
        }
        long residentAtEnd = SettledResidentBytes();

        Assert.Equal(nativeBefore, NativeMemoryTracker.ReservedBytes);
        Assert.Equal(allocationsBefore, NativeMemoryTracker.LiveAllocations);
        // One platform's worth of frames and caches is a few MiB; a leak per platform would be GiBs.
        const long Tolerance = 64L << 20;
        Assert.True(residentAtEnd <= residentAfterWarmUp + Tolerance,
            $"resident memory grew from {residentAfterWarmUp >> 20} MiB after {Platforms / 10} platforms to {residentAtEnd >> 20} MiB after {Platforms}");
    }

    private static long SettledResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        self.Refresh();
        return self.WorkingSet64;
    }
}
