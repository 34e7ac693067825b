/* Platforms, Engine-allocated RAM, and bring-your-own RAM. */
#include <stdlib.h>

#include "test.h"

TEST(platform_create_and_destroy)
{
    engine_platform *a, *b;
    CHECK_OK(engine_platform_create(&a));
    CHECK_OK(engine_platform_create(&b));
    CHECK(a != NULL && b != NULL && a != b);
    uint64_t base, size;
    CHECK_OK(engine_platform_memory_range(a, &base, &size));
    CHECK_EQ_U64(4ull << 30, base);
    CHECK_EQ_U64(64ull << 30, size);
    CHECK_OK(engine_platform_destroy(a));
    CHECK_RC(-EBADF, engine_platform_destroy(a));
    CHECK_OK(engine_platform_destroy(b));
}

TEST(alloc_ram_gives_zeroed_writable_aligned_memory)
{
    engine_platform *p;
    CHECK_OK(engine_platform_create(&p));
    uint64_t hpa, base, size, hpa2;
    void *host, *host2;
    CHECK_OK(engine_platform_memory_range(p, &base, &size));
    CHECK_OK(engine_platform_alloc_ram(p, 3 * 4096, 0, &hpa, &host));
    CHECK(hpa >= base && hpa + 3 * 4096 <= base + size);
    CHECK((hpa & 0xFFF) == 0 && ((uintptr_t)host & 0xFFF) == 0);
    uint8_t *bytes = host;
    for (int i = 0; i < 3 * 4096; i++)
        CHECK(bytes[i] == 0);
    memset(bytes, 0xA5, 3 * 4096);
    CHECK_OK(engine_platform_alloc_ram(p, 2u << 20, 2u << 20, &hpa2, &host2));
    CHECK((hpa2 & ((2u << 20) - 1)) == 0);
    CHECK(hpa2 >= hpa + 3 * 4096 || hpa2 + (2u << 20) <= hpa);

    CHECK_RC(-EINVAL, engine_platform_alloc_ram(p, 0, 0, &hpa, &host));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(p, 100, 0, &hpa, &host));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(p, 4096, 3000, &hpa, &host));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(p, 4096, 2048, &hpa, &host));
    CHECK_RC(-EINVAL, engine_platform_alloc_ram(p, 128ull << 30, 0, &hpa, &host));   /* more than the region holds */
    CHECK_ERROR_MENTIONS("frames");
    CHECK(strstr(engine_last_error(), "(Parameter") == NULL);                            /* no .NET wording */
    CHECK_OK(engine_platform_destroy(p));
}

TEST(add_ram_refuses_bad_regions_with_the_documented_codes)
{
    engine_platform *p;
    CHECK_OK(engine_platform_create(&p));
    uint64_t base, size;
    CHECK_OK(engine_platform_memory_range(p, &base, &size));
    uint8_t *ram = aligned_alloc(4096, 1 << 20);
    CHECK(ram != NULL);
    const uint64_t hpa = 1ull << 40;   /* above Engine's region, within 46 bits */

    CHECK_RC(-EBADF, engine_platform_add_ram(NULL, hpa, ram, 1 << 20));
    /* NULL host, size 0 */
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, NULL, 1 << 20));
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, ram, 0));
    CHECK_ERROR_MENTIONS("size is 0");
    /* 4 KiB alignment of hpa, host and size */
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa + 8, ram, 1 << 20));
    CHECK_ERROR_MENTIONS("4 KiB aligned");
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, ram + 64, 4096));
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, ram, 4096 + 512));
    /* wrapping, and beyond the 46-bit host address width */
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, 0xFFFFFFFFFFFFF000ull, ram, 1 << 20));
    CHECK_ERROR_MENTIONS("wraps");
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, (1ull << 46) - 4096, ram, 8192));
    CHECK_ERROR_MENTIONS("46-bit");
    /* overlap with Engine's own region: inside, straddling its start, straddling its end */
    CHECK_RC(-EEXIST, engine_platform_add_ram(p, base + (1 << 20), ram, 1 << 20));
    CHECK_ERROR_MENTIONS("overlaps Engine's own host memory");
    CHECK_RC(-EEXIST, engine_platform_add_ram(p, base - 4096, ram, 8192));
    CHECK_RC(-EEXIST, engine_platform_add_ram(p, base + size - 4096, ram, 8192));
    /* adjacent to it is fine; then overlaps with that region, by HPA and by host address */
    CHECK_OK(engine_platform_add_ram(p, base - (512 << 10), ram, 512 << 10));
    CHECK_OK(engine_platform_add_ram(p, hpa, ram + (512 << 10), 512 << 10));
    CHECK_RC(-EEXIST, engine_platform_add_ram(p, hpa, ram + (512 << 10), 512 << 10));
    CHECK_ERROR_MENTIONS("registered before");
    CHECK_RC(-EEXIST, engine_platform_add_ram(p, hpa + (1ull << 30), ram, 4096));
    CHECK_ERROR_MENTIONS("host memory");

    CHECK_OK(engine_platform_destroy(p));
    CHECK_RC(-EBADF, engine_platform_add_ram(p, hpa, ram, 4096));
    free(ram);   /* only after destroy */
}

TEST(add_ram_tables_and_dma_in_embedder_memory)
{
    enum { SID = 0x0300 };  /* bus 3, device 0, function 0 */
    engine_platform *p;
    engine_iommu *u;
    engine_device *dev;
    engine_domain *dom;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "server", &u));
    CHECK_OK(engine_device_create(p, u, "nic", SID, 0, &dev));
    uint8_t *ram = aligned_alloc(4096, 16 * 4096);
    CHECK(ram != NULL);
    memset(ram, 0, 16 * 4096);
    const uint64_t hpa = 0x100000000000ull;
    CHECK_OK(engine_platform_add_ram(p, hpa, ram, 16 * 4096));

    /* A paging domain (tables in Engine's memory) whose pages are the embedder's RAM. */
    CHECK_OK(engine_domain_alloc_paging(dev, &dom));
    CHECK_OK(engine_domain_map(dom, 0x100000, hpa, 16 * 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    CHECK_OK(engine_domain_attach(dom, dev));
    engine_request r = { .iova = 0x103123, .pasid = ENGINE_NO_PASID, .source_id = SID, .access = ENGINE_ACCESS_WRITE };
    engine_translation t;
    CHECK_OK(engine_translate(u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED);
    CHECK_EQ_U64(hpa + 0x3123, t.hpa);
    const char msg[] = "bytes into the embedder's own buffer";
    uint64_t done = 0;
    CHECK_OK(engine_dma_write(u, SID, ENGINE_NO_PASID, 0x100FF0, msg, sizeof msg, &done));
    CHECK_EQ_U64(sizeof msg, done);
    CHECK(memcmp(ram + 0xFF0, msg, sizeof msg) == 0);

    /* A page mapped to an HPA outside every region: the translation succeeds (leaves are not
       read), the DMA stops there with -EFAULT and moves nothing; no access violation. */
    CHECK_OK(engine_domain_map(dom, 0x200000, 0x200000000000ull, 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    CHECK_RC(-EFAULT, engine_dma_write(u, SID, ENGINE_NO_PASID, 0x200000, msg, sizeof msg, &done));
    CHECK_EQ_U64(0, done);

    CHECK_OK(engine_platform_destroy(p));
    free(ram);
}

TEST(platform_create_ex_options)
{
    engine_platform_options o = { sizeof o, 0, 256u << 20, 8ull << 30 };
    engine_platform *p;
    CHECK_OK(engine_platform_create_ex(&o, &p));
    uint64_t base, size;
    CHECK_OK(engine_platform_memory_range(p, &base, &size));
    CHECK_EQ_U64(8ull << 30, base);
    CHECK_EQ_U64(256u << 20, size);
    CHECK_OK(engine_platform_destroy(p));
    CHECK_OK(engine_platform_create_ex(NULL, &p));
    CHECK_OK(engine_platform_destroy(p));

    engine_platform *bad = NULL;
    o.struct_size = 16;
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, &bad));
    CHECK_ERROR_MENTIONS("struct_size");
    o.struct_size = sizeof o;
    o.flags = 0x80;
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, &bad));
    o.flags = 0;
    o.memory_size = 12345;                         /* not a multiple of 4 KiB */
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, &bad));
    o.memory_size = 1u << 20;
    o.memory_base = (1ull << 30) + 4096;           /* not 1 GiB aligned */
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, &bad));
    o.memory_base = 1ull << 46;                    /* beyond the host address width */
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, &bad));
    CHECK_RC(-EINVAL, engine_platform_create_ex(&o, NULL));
    CHECK(bad == NULL);
}

TEST(platform_flags_switch_kvm_domains_and_scalable_mode_off)
{
    engine_platform_options o = { sizeof o, ENGINE_PLATFORM_NO_KVM_DOMAINS, 256u << 20, 0 };
    engine_platform *p;
    engine_iommu *u;
    engine_device *dev;
    engine_vm *vm;
    engine_domain *d;
    CHECK_OK(engine_platform_create_ex(&o, &p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "server", &u));
    CHECK_OK(engine_device_create(p, u, "gpu", BDF(1, 0, 0), 0, &dev));
    CHECK_OK(engine_vm_create(p, 4, &vm));
    CHECK_RC(-EOPNOTSUPP, engine_domain_alloc_kvm(dev, vm, &d));
    CHECK_ERROR_MENTIONS("switched off");
    CHECK_OK(engine_platform_destroy(p));

    o.flags = ENGINE_PLATFORM_SM_OFF;
    CHECK_OK(engine_platform_create_ex(&o, &p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "server", &u));
    CHECK_OK(engine_device_create(p, u, "gpu", BDF(1, 0, 0), 0, &dev));
    CHECK_OK(engine_vm_create(p, 4, &vm));
    CHECK_RC(-EOPNOTSUPP, engine_domain_alloc_kvm(dev, vm, &d));
    CHECK_ERROR_MENTIONS("scalable mode is switched off");
    uint64_t rtaddr;
    CHECK_OK(engine_iommu_mmio_read(u, REG_RTADDR, 8, &rtaddr));
    CHECK((rtaddr & (3u << 10)) == 0);             /* the driver set a legacy root table */
    CHECK_OK(engine_platform_destroy(p));
}
