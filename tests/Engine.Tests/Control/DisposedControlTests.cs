using Engine.Control;
using Engine.Dma;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Control;

/// <summary>Domains and IOMMUs after they, or their platform, went: every call answers an errno or ObjectDisposedException, never a walk of freed tables.</summary>
public class DisposedControlTests
{
    [Fact]
    public void AFreedPagingDomainAnswersEinvalAndNeverWalksItsFreedTables()
    {
        using var f = new ControlFixture();
        PagingDomain d = f.Platform.AllocatePagingDomain();
        ulong frame = f.Platform.Memory.AllocateFrame();
        d.Map(0, frame, 0x1000, Access.ReadWrite);
        Assert.True(d.Lookup(0, Access.Read).IsSuccess);
        d.Dispose();
        Assert.True(d.IsFreed);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Lookup(0, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Map(0x1000, frame, 0x1000, Access.Read)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Unmap(0, 0x1000)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.EnforceCacheCoherency()).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Attach(f.Nvme)).Errno);
        Assert.Equal(Errno.EINVAL, Assert.Throws<EngineException>(() => d.Detach(f.Nvme)).Errno);
        d.Dispose();
    }

    [Fact]
    public void AfterThePlatformIsDisposedDomainsAnswerObjectDisposedAndTeardownStillWorks()
    {
        var f = new ControlFixture();
        PagingDomain paging = f.Platform.AllocatePagingDomain();
        paging.Attach(f.Nvme);
        ulong frame = f.Platform.Memory.AllocateFrame();
        paging.Map(0, frame, 0x1000, Access.ReadWrite);
        KvmDomain kvm = f.Platform.AllocateKvmDomain(f.Nic, f.Tdp);
        kvm.Attach(f.Nic);
        f.Platform.Dispose();

        Assert.True(kvm.IsRevoked, "the platform disposes its VMs, which revoke their domains");
        Assert.Null(f.Nic.Domain);
        Assert.Throws<ObjectDisposedException>(() => paging.Lookup(0, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => paging.Map(0x1000, frame, 0x1000, Access.Read));
        Assert.Throws<ObjectDisposedException>(() => paging.Unmap(0, 0x1000));
        Assert.Throws<ObjectDisposedException>(() => paging.EnforceCacheCoherency());
        Assert.Throws<ObjectDisposedException>(() => f.Platform.AllocatePagingDomain());
        PagingDomain other = paging;
        Assert.Throws<ObjectDisposedException>(() => other.Attach(f.Gpu));
        Assert.Throws<ObjectDisposedException>(() => f.Dmar1.DidOf(paging));
        Assert.True(f.Dmar1.IsDisposed);

        // Teardown in any order still completes: nothing can translate any more.
        paging.Detach(f.Nvme);
        Assert.Null(f.Nvme.Domain);
        paging.Dispose();
        kvm.Dispose();
        f.Dmar1.Dispose();

        // DMA ends with a result, never an exception.
        DmaResult r = DmaTransfer.Write(f.Nvme, 0, new byte[8]);
        Assert.Equal(DmaStatus.Disposed, r.Status);
        Assert.Equal(0, r.Transferred);
        Assert.Equal(DmaStatus.Disposed, DmaTransfer.Read(f.Nic, 0, new byte[8], pageFaults: true).Status);
        f.Dispose();
    }

    [Fact]
    public void ADisposedIommuRefusesAttachAndLetsDetachFinish()
    {
        using var f = new ControlFixture();
        PagingDomain d = f.Platform.AllocatePagingDomain();
        d.Attach(f.Nvme);
        f.Dmar1.Dispose();
        f.Dmar1.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Dmar1.DidOf(d));
        Assert.Throws<ObjectDisposedException>(() => d.Attach(f.Gpu));
        Assert.Null(f.Gpu.Domain);
        d.Detach(f.Nvme);
        Assert.Null(f.Nvme.Domain);
        Assert.Equal("dmar1", f.Dmar1.Name);
        // The other unit goes on.
        d.Attach(f.Nic);
        Assert.NotNull(f.Dmar0.DidOf(d));
    }
}
