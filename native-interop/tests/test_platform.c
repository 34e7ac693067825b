/* Platforms, Engine-allocated RAM, and the (pending) bring-your-own-RAM validation. */
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

TEST(add_ram_validates_then_reports_not_implemented)
{
    engine_platform *p;
    CHECK_OK(engine_platform_create(&p));
    uint64_t base, size;
    CHECK_OK(engine_platform_memory_range(p, &base, &size));
    void *ram = aligned_alloc(4096, 1 << 20);
    CHECK(ram != NULL);
    const uint64_t hpa = 1ull << 40;   /* above Engine's region, within 46 bits */

    /* NULL host, size 0 */
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, NULL, 1 << 20));
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, ram, 0));
    CHECK_ERROR_MENTIONS("size is 0");
    /* 4 KiB alignment of hpa, host and size */
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa + 8, ram, 1 << 20));
    CHECK_ERROR_MENTIONS("4 KiB aligned");
    CHECK_RC(-EINVAL, engine_platform_add_ram(p, hpa, (uint8_t *)ram + 64, 4096));
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
    /* adjacent to it is not an overlap: valid input, which is pending */
    CHECK_RC(-EOPNOTSUPP, engine_platform_add_ram(p, base - (1 << 20), ram, 1 << 20));
    CHECK_RC(-EOPNOTSUPP, engine_platform_add_ram(p, hpa, ram, 1 << 20));
    CHECK_ERROR_MENTIONS("not implemented yet");
    /* nothing was registered: the same region again is still "not implemented", not "overlaps" */
    CHECK_RC(-EOPNOTSUPP, engine_platform_add_ram(p, hpa, ram, 1 << 20));

    free(ram);
    CHECK_OK(engine_platform_destroy(p));
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
