using Engine.Control;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>
/// KVM's flush reaches the IOMMUs under the MMU lock and sends device-TLB invalidations for ATS
/// devices, while attach and detach hold the platform's control lock: neither may wait for the other.
/// </summary>
public class LockOrderTests
{
    [Fact]
    public void KvmFlushesToAtsDevicesAndAttachesOnTheSameIommuNeverDeadlock()
    {
        // Not disposed on a deadlock: teardown would wait for the stuck locks too.
        var f = new ControlFixture(levels: 4, maxHugePageLevel: 1);
        KvmDomain d = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        d.Attach(f.Nic);
        f.Vm.Map(0, 64, Access.All);
        Device other = f.Platform.AddDevice("other", TranslationRequest.Bdf(0x17, 1, 0), f.Dmar0);
        const int Rounds = 3000;
        var attacher = new Thread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                PagingDomain p = f.Platform.AllocatePagingDomain();
                p.Attach(other);
                p.Detach(other);
                p.Dispose();
            }
        }) { IsBackground = true };
        var kvm = new Thread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                f.Vm.Zap((ulong)(i % 64), 1);   // a flush with a device-TLB invalidation for the NIC
                f.Vm.Map((ulong)(i % 64), 1, Access.All);
            }
        }) { IsBackground = true };
        attacher.Start();
        kvm.Start();
        // A hang guard, not a timing assertion: a healthy run takes well under a second.
        bool finished = attacher.Join(TimeSpan.FromMinutes(2)) && kvm.Join(TimeSpan.FromMinutes(2));
        Assert.True(finished, "KVM's flush and an attach on the same IOMMU deadlocked");
        Assert.True(f.Nic.DeviceTlbInvalidations >= Rounds);
        f.Dispose();
    }
}
