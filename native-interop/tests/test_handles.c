/* Bad handles (-EBADF) and NULL pointer arguments (-EINVAL) on every export. */
#include "test.h"

/* Calls every export that takes a handle with these (bad) handles and otherwise valid arguments;
   each must answer -EBADF and never crash. */
static void expect_ebadf_everywhere(engine_platform *p, engine_iommu *u, engine_device *dev, engine_vm *vm, engine_domain *d)
{
    uint64_t v = 0, hpa = 0, base = 0, size = 0, done = 7;
    void *host = NULL;
    engine_iommu *nu = NULL;
    engine_device *ndev = NULL;
    engine_vm *nvm = NULL;
    engine_domain *nd = NULL;
    engine_iommu_options opts = { sizeof opts, 0, 0, 0 };
    engine_request req = read_request(BDF(1, 0, 0), 0x1000);
    engine_translation out;
    uint8_t buf[64] = { 0 };
    static uint8_t aligned[8192] __attribute__((aligned(4096)));

    CHECK_RC(-EBADF, engine_platform_destroy(p));
    CHECK_RC(-EBADF, engine_platform_add_ram(p, 0x1000, aligned, 4096));
    CHECK_RC(-EBADF, engine_platform_alloc_ram(p, 4096, 0, &hpa, &host));
    CHECK_RC(-EBADF, engine_platform_memory_range(p, &base, &size));
    CHECK_RC(-EBADF, engine_iommu_create(p, "x", 0, 0, &nu));
    CHECK_RC(-EBADF, engine_iommu_create_ex(p, "x", 0, 0, &opts, &nu));
    CHECK_RC(-EBADF, engine_iommu_create_preset(p, "x", "server", &nu));
    CHECK_RC(-EBADF, engine_iommu_mmio_read(u, REG_VER, 4, &v));
    CHECK_RC(-EBADF, engine_iommu_mmio_write(u, REG_FECTL, 4, 0));
    CHECK_RC(-EBADF, engine_iommu_set_interrupt(u, NULL, NULL));
    CHECK_RC(-EBADF, engine_translate(u, &req, &out));
    CHECK_RC(-EBADF, engine_translate_batch(u, &req, &out, 1));
    CHECK_RC(-EBADF, engine_dma_read(u, BDF(1, 0, 0), ENGINE_NO_PASID, 0x1000, buf, sizeof buf, &done));
    CHECK_RC(-EBADF, engine_dma_write(u, BDF(1, 0, 0), ENGINE_NO_PASID, 0x1000, buf, sizeof buf, &done));
    CHECK_RC(-EBADF, engine_vm_create(p, 4, &nvm));
    CHECK_RC(-EBADF, engine_vm_add_memory(vm, 0, 1 << 20));
    CHECK_RC(-EBADF, engine_vm_map(vm, 0, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EBADF, engine_vm_zap(vm, 0, 4096));
    CHECK_RC(-EBADF, engine_vm_write_protect(vm, 0, 4096));
    CHECK_RC(-EBADF, engine_vm_read(vm, 0, buf, sizeof buf));
    CHECK_RC(-EBADF, engine_vm_write(vm, 0, buf, sizeof buf));
    CHECK_RC(-EBADF, engine_vm_destroy(vm));
    CHECK_RC(-EBADF, engine_device_create(p, u, "x", BDF(2, 0, 0), 0, &ndev));
    CHECK_RC(-EBADF, engine_domain_alloc_kvm(dev, vm, &nd));
    CHECK_RC(-EBADF, engine_domain_alloc_paging(dev, &nd));
    CHECK_RC(-EBADF, engine_domain_map(d, 0, 0x100000000ull, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EBADF, engine_domain_unmap(d, 0, 4096));
    CHECK_RC(-EBADF, engine_domain_attach(d, dev));
    CHECK_RC(-EBADF, engine_domain_detach(d, dev));
    CHECK_RC(-EBADF, engine_domain_free(d));
    /* Nothing was written through an output. */
    CHECK(nu == NULL && ndev == NULL && nvm == NULL && nd == NULL && host == NULL && hpa == 0 && v == 0);
}

TEST(null_handles_are_ebadf)
{
    expect_ebadf_everywhere(NULL, NULL, NULL, NULL, NULL);
    CHECK_ERROR_MENTIONS("is NULL");
}

TEST(forged_handles_are_ebadf)
{
    int local;
    /* A real pointer, a value that looks like a handle, and small integers. */
    expect_ebadf_everywhere((engine_platform *)&local, (engine_iommu *)&local, (engine_device *)&local,
                            (engine_vm *)&local, (engine_domain *)&local);
    expect_ebadf_everywhere((engine_platform *)0xE000000010000011ull, (engine_iommu *)0xE000000010000012ull,
                            (engine_device *)0xE000000010000013ull, (engine_vm *)0xE000000010000014ull,
                            (engine_domain *)0xE000000010000015ull);
    expect_ebadf_everywhere((engine_platform *)1, (engine_iommu *)2, (engine_device *)3, (engine_vm *)4, (engine_domain *)5);
    CHECK_ERROR_MENTIONS("not a live handle");
}

TEST(handles_of_another_kind_are_ebadf)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", BDF(1, 0, 0)));
    engine_vm *vm;
    CHECK_OK(engine_vm_create(f.p, 4, &vm));
    /* Every handle passed where another kind is expected: platform <-> iommu <-> device <-> vm <-> domain. */
    expect_ebadf_everywhere((engine_platform *)f.u, (engine_iommu *)f.dev, (engine_device *)vm,
                            (engine_vm *)f.dom, (engine_domain *)f.p);
    /* ...and nothing was destroyed by those calls: the real handles still work. */
    uint64_t v;
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_VER, 4, &v));
    CHECK_OK(engine_vm_destroy(vm));
    paging_fixture_close(&f);
}

TEST(destroyed_handles_are_ebadf)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", BDF(1, 0, 0)));
    engine_vm *vm;
    CHECK_OK(engine_vm_create(f.p, 4, &vm));
    engine_platform *p = f.p;
    CHECK_OK(engine_platform_destroy(p));
    /* The platform's destroy killed every handle made from it. */
    expect_ebadf_everywhere(p, f.u, f.dev, vm, f.dom);

    /* A VM and a domain destroyed on their own stay dead too, while their platform lives. */
    paging_fixture g;
    CHECK_OK(paging_fixture_open(&g, "server", BDF(1, 0, 0)));
    engine_vm *vm2;
    CHECK_OK(engine_vm_create(g.p, 4, &vm2));
    CHECK_OK(engine_vm_destroy(vm2));
    CHECK_RC(-EBADF, engine_vm_destroy(vm2));
    CHECK_RC(-EBADF, engine_vm_add_memory(vm2, 0, 1 << 20));
    CHECK_OK(engine_domain_detach(g.dom, g.dev));
    CHECK_OK(engine_domain_free(g.dom));
    CHECK_RC(-EBADF, engine_domain_free(g.dom));
    CHECK_RC(-EBADF, engine_domain_attach(g.dom, g.dev));
    /* A new object does not revive an old handle (generation-tagged slots). */
    engine_vm *vm3;
    CHECK_OK(engine_vm_create(g.p, 4, &vm3));
    CHECK(vm3 != vm2);
    CHECK_RC(-EBADF, engine_vm_add_memory(vm2, 0, 1 << 20));
    CHECK_OK(engine_vm_add_memory(vm3, 0, 1 << 20));
    paging_fixture_close(&g);
}

TEST(null_pointer_arguments_are_einval)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", BDF(1, 0, 0)));
    engine_vm *vm;
    CHECK_OK(engine_vm_create(f.p, 4, &vm));
    CHECK_OK(engine_vm_add_memory(vm, 0, 1 << 20));
    engine_request req = read_request(BDF(1, 0, 0), 0x1000);
    engine_translation out;
    uint64_t v, done;
    void *host;
    engine_iommu *u;
    engine_device *dev;
    engine_domain *d;
    engine_vm *vm2;
    uint8_t buf[16];

    CHECK_RC(-EINVAL, engine_platform_create(NULL));
    CHECK_RC(-EINVAL, engine_platform_add_ram(f.p, 1ull << 40, NULL, 4096));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(f.p, 4096, 0, NULL, &host));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(f.p, 4096, 0, &v, NULL));
    CHECK_RC(-EINVAL, engine_platform_memory_range(f.p, NULL, &v));
    CHECK_RC(-EINVAL, engine_platform_memory_range(f.p, &v, NULL));
    CHECK_RC(-EINVAL, engine_iommu_create(f.p, NULL, 0, 0, &u));
    CHECK_RC(-EINVAL, engine_iommu_create(f.p, "dmar1", 0, 0, NULL));
    CHECK_RC(-EINVAL, engine_iommu_create_preset(f.p, NULL, "server", &u));
    CHECK_RC(-EINVAL, engine_iommu_create_preset(f.p, "dmar1", NULL, &u));
    CHECK_RC(-EINVAL, engine_iommu_create_preset(f.p, "dmar1", "server", NULL));
    CHECK_RC(-EINVAL, engine_iommu_create_ex(f.p, "dmar1", 0, 0, NULL, NULL));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(f.u, REG_VER, 4, NULL));
    CHECK_RC(-EINVAL, engine_translate(f.u, NULL, &out));
    CHECK_RC(-EINVAL, engine_translate(f.u, &req, NULL));
    CHECK_RC(-EINVAL, engine_translate_batch(f.u, NULL, &out, 1));
    CHECK_RC(-EINVAL, engine_translate_batch(f.u, &req, NULL, 1));
    CHECK_OK(engine_translate_batch(f.u, NULL, NULL, 0));   /* nothing to do */
    CHECK_RC(-EINVAL, engine_dma_read(f.u, BDF(1, 0, 0), ENGINE_NO_PASID, 0, NULL, 16, &done));
    CHECK_RC(-EINVAL, engine_dma_read(f.u, BDF(1, 0, 0), ENGINE_NO_PASID, 0, buf, 16, NULL));
    CHECK_RC(-EINVAL, engine_dma_write(f.u, BDF(1, 0, 0), ENGINE_NO_PASID, 0, NULL, 16, &done));
    CHECK_RC(-EINVAL, engine_dma_write(f.u, BDF(1, 0, 0), ENGINE_NO_PASID, 0, buf, 16, NULL));
    CHECK_RC(-EINVAL, engine_vm_create(f.p, 4, NULL));
    CHECK_RC(-EINVAL, engine_vm_read(vm, 0, NULL, 16));
    CHECK_RC(-EINVAL, engine_vm_write(vm, 0, NULL, 16));
    CHECK_RC(-EINVAL, engine_device_create(f.p, f.u, NULL, BDF(2, 0, 0), 0, &dev));
    CHECK_RC(-EINVAL, engine_device_create(f.p, f.u, "x", BDF(2, 0, 0), 0, NULL));
    CHECK_RC(-EINVAL, engine_domain_alloc_kvm(f.dev, vm, NULL));
    CHECK_RC(-EINVAL, engine_domain_alloc_paging(f.dev, NULL));
    (void)d;
    (void)vm2;
    CHECK_ERROR_MENTIONS("is NULL");
    paging_fixture_close(&f);
}

/* One good handle and one bad one in the same call: the bad one is reported, nothing happens. */
TEST(a_bad_second_handle_is_ebadf)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", BDF(1, 0, 0)));
    engine_vm *vm;
    CHECK_OK(engine_vm_create(f.p, 4, &vm));
    engine_device *dev = NULL;
    engine_domain *d = NULL;
    CHECK_RC(-EBADF, engine_device_create(f.p, NULL, "x", BDF(2, 0, 0), 0, &dev));
    CHECK_ERROR_MENTIONS("u is NULL");
    CHECK_RC(-EBADF, engine_device_create(f.p, (engine_iommu *)f.dev, "x", BDF(2, 0, 0), 0, &dev));
    CHECK_RC(-EBADF, engine_domain_alloc_kvm(f.dev, NULL, &d));
    CHECK_ERROR_MENTIONS("vm is NULL");
    CHECK_RC(-EBADF, engine_domain_alloc_kvm(f.dev, (engine_vm *)f.u, &d));
    CHECK_RC(-EBADF, engine_domain_attach(f.dom, NULL));
    CHECK_RC(-EBADF, engine_domain_detach(f.dom, (engine_device *)vm));
    CHECK(dev == NULL && d == NULL);
    /* still attached: the failed detach did nothing */
    CHECK_RC(-EBUSY, engine_domain_free(f.dom));
    paging_fixture_close(&f);
}
