/* VMs, KVM domains (the seed's refusals), IO page faults, and engine_kvm_check. */
#include "test.h"

#define SID BDF(2, 0, 0)
#define SERVER_CAP  0xf9ed008cee780c66ull
#define SERVER_ECAP 0x3fef9ea6f0efdfull
#define CLIENT_CAP  0x1c0000c40660462ull
#define CLIENT_ECAP 0x29a00f0505eull

TEST(vm_memory_map_read_write_zap)
{
    engine_platform *p;
    engine_vm *vm, *bad;
    CHECK_OK(engine_platform_create(&p));
    CHECK_RC(-EINVAL, engine_vm_create(p, 3, &bad));
    CHECK_OK(engine_vm_create(p, 4, &vm));
    CHECK_RC(-EINVAL, engine_vm_add_memory(vm, 0x1000, 0x800));
    CHECK_RC(-EINVAL, engine_vm_add_memory(vm, 0, 0));
    CHECK_OK(engine_vm_add_memory(vm, 0, 16u << 20));
    CHECK_RC(-EEXIST, engine_vm_add_memory(vm, 8u << 20, 16u << 20));

    /* the C ABI takes bytes: unaligned is -EINVAL, never a page count in disguise */
    CHECK_RC(-EINVAL, engine_vm_map(vm, 0x40000, 100, ENGINE_ACCESS_READ));
    CHECK_RC(-EINVAL, engine_vm_map(vm, 0x40001, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EINVAL, engine_vm_map(vm, 0x40000, 4096, 0));
    CHECK_RC(-EINVAL, engine_vm_map(vm, 0x40000, 4096, ENGINE_ACCESS_WRITE));   /* W without R */
    CHECK_RC(-EINVAL, engine_vm_map(vm, 32u << 20, 4096, ENGINE_ACCESS_READ));   /* no memslot */
    CHECK_ERROR_MENTIONS("memslot");
    CHECK_RC(-EINVAL, engine_vm_zap(vm, 0x1000, 0));
    CHECK_RC(-EINVAL, engine_vm_write_protect(vm, 0x1001, 4096));

    CHECK_OK(engine_vm_map(vm, 0, 8u << 20, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    /* read and write by GPA, crossing pages */
    char text[10000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    CHECK_OK(engine_vm_write(vm, 0x3F00, text, sizeof text));
    char back[10000];
    CHECK_OK(engine_vm_read(vm, 0x3F00, back, sizeof back));
    CHECK(memcmp(text, back, sizeof back) == 0);
    CHECK_OK(engine_vm_read(vm, 0, NULL, 0));
    /* guest RAM is the memslots', as the VMM sees it: a page KVM never mapped reads as zeros... */
    memset(back, 0x55, 16);
    CHECK_OK(engine_vm_read(vm, 9u << 20, back, 16));
    CHECK(back[0] == 0 && back[15] == 0);
    /* ...outside every memslot is -EFAULT, and nothing is copied */
    memset(back, 0x55, 16);
    CHECK_RC(-EFAULT, engine_vm_read(vm, (16u << 20) - 8, back, 16));
    CHECK_ERROR_MENTIONS("memslot");
    CHECK(back[0] == 0x55);
    /* a zap drops KVM's mapping, never the page's contents */
    CHECK_OK(engine_vm_zap(vm, 0x4000, 4096));
    memset(back, 0, sizeof back);
    CHECK_OK(engine_vm_read(vm, 0x3F00, back, sizeof back));
    CHECK(memcmp(text, back, sizeof back) == 0);
    CHECK_OK(engine_vm_write_protect(vm, 0, 4096));
    CHECK_OK(engine_vm_read(vm, 0x100, back, 16));        /* still readable */
    CHECK_OK(engine_vm_write(vm, 0x100, text, 16));       /* and writable by the host */
    CHECK_OK(engine_vm_destroy(vm));
    CHECK_OK(engine_platform_destroy(p));
}

/* A platform with a "server" IOMMU, a VM with 16 MiB mapped at GPA 0, and a device. */
typedef struct {
    engine_platform *p;
    engine_iommu *u;
    engine_vm *vm;
    engine_device *dev;
} kvm_fixture;

static int kvm_open(kvm_fixture *k, const char *preset, uint32_t abilities)
{
    int rc;
    if ((rc = engine_platform_create(&k->p)) || (rc = engine_iommu_create_preset(k->p, "dmar0", preset, &k->u))
        || (rc = engine_vm_create(k->p, 4, &k->vm)) || (rc = engine_vm_add_memory(k->vm, 0, 16u << 20))
        || (rc = engine_vm_map(k->vm, 0, 16u << 20, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE))
        || (rc = engine_device_create(k->p, k->u, "gpu", SID, abilities, &k->dev)))
        fprintf(stderr, "kvm fixture: %s\n", engine_last_error());
    return rc;
}

TEST(kvm_domain_refuses_a_device_that_cannot_take_io_page_faults)
{
    /* As the series does (patch 16): a KVM domain maps on demand, so its devices need PRI (and ATS). */
    kvm_fixture k;
    CHECK_OK(kvm_open(&k, "server", 0));
    engine_domain *d;
    CHECK_OK(engine_domain_alloc_kvm(k.dev, k.vm, &d));
    CHECK_RC(-ENODEV, engine_domain_attach(d, k.dev));
    CHECK_ERROR_MENTIONS("PRI");
    CHECK_OK(engine_domain_free(d));
    CHECK_OK(engine_platform_destroy(k.p));
}

TEST(kvm_domain_shares_the_vm_ept)
{
    kvm_fixture k;
    CHECK_OK(kvm_open(&k, "server", ENGINE_DEV_ATS | ENGINE_DEV_PRI));
    engine_domain *d;
    CHECK_OK(engine_domain_alloc_kvm(k.dev, k.vm, &d));
    CHECK_OK(engine_domain_attach(d, k.dev));

    /* a DMA at IOVA = GPA reaches the guest's memory */
    const char msg[] = "written by the guest, read by the device";
    CHECK_OK(engine_vm_write(k.vm, 0x123456, msg, sizeof msg));
    char got[sizeof msg];
    uint64_t done;
    CHECK_OK(engine_dma_read(k.u, SID, ENGINE_NO_PASID, 0x123456, got, sizeof got, &done));
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    CHECK_OK(engine_dma_write(k.u, SID, ENGINE_NO_PASID, 0x200000, "device", 7, &done));
    CHECK_OK(engine_vm_read(k.vm, 0x200000, got, 7));
    CHECK(strcmp(got, "device") == 0);

    engine_request r = read_request(SID, 0x123456);
    engine_translation t;
    CHECK_OK(engine_translate(k.u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED && (t.flags & ENGINE_TR_SNOOP));   /* snooping forced on */
    CHECK((t.hpa & 0xFFF) == 0x456);

    /* KVM owns the mappings */
    CHECK_RC(-EOPNOTSUPP, engine_domain_map(d, 0, 0x100000000ull, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EOPNOTSUPP, engine_domain_unmap(d, 0, 4096));

    /* KVM zaps: the IOTLB is flushed, a bare translation faults, and the device's DMA (it has PRI)
       recovers through a page request that KVM serves */
    CHECK_OK(engine_vm_zap(k.vm, 0x123000, 4096));
    CHECK_OK(engine_translate(k.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED);
    CHECK_OK(engine_dma_read(k.u, SID, ENGINE_NO_PASID, 0x122FF0, got, 32, &done));
    CHECK_EQ_U64(32, done);

    /* the VM stays while the domain lives */
    CHECK_RC(-EBUSY, engine_vm_destroy(k.vm));
    CHECK_ERROR_MENTIONS("KVM domain");
    CHECK_OK(engine_domain_detach(d, k.dev));
    CHECK_OK(engine_domain_free(d));
    CHECK_OK(engine_vm_destroy(k.vm));
    CHECK_OK(engine_platform_destroy(k.p));
}

TEST(kvm_domains_of_one_vm_share_its_export)
{
    kvm_fixture k;
    CHECK_OK(kvm_open(&k, "server", ENGINE_DEV_ATS | ENGINE_DEV_PRI));
    engine_device *dev2;
    CHECK_OK(engine_device_create(k.p, k.u, "nic", BDF(3, 0, 0), ENGINE_DEV_ATS | ENGINE_DEV_PRI, &dev2));
    engine_domain *a, *b;
    CHECK_OK(engine_domain_alloc_kvm(k.dev, k.vm, &a));
    CHECK_OK(engine_domain_alloc_kvm(dev2, k.vm, &b));
    CHECK_OK(engine_domain_attach(a, k.dev));
    CHECK_OK(engine_domain_attach(b, dev2));
    engine_request r1 = read_request(SID, 0x5000), r2 = read_request(BDF(3, 0, 0), 0x5000);
    engine_translation t1, t2;
    CHECK_OK(engine_translate(k.u, &r1, &t1));
    CHECK_OK(engine_translate(k.u, &r2, &t2));
    CHECK(t1.status == ENGINE_TRANSLATED && t2.status == ENGINE_TRANSLATED && t1.hpa == t2.hpa);
    CHECK_OK(engine_domain_detach(a, k.dev));
    CHECK_OK(engine_domain_free(a));
    CHECK_RC(-EBUSY, engine_vm_destroy(k.vm));   /* b still uses it */
    CHECK_OK(engine_domain_detach(b, dev2));
    CHECK_OK(engine_domain_free(b));
    CHECK_OK(engine_vm_destroy(k.vm));
    CHECK_OK(engine_platform_destroy(k.p));
}

TEST(kvm_domain_refused_lists_every_failing_condition)
{
    kvm_fixture k;
    CHECK_OK(kvm_open(&k, "client", 0));   /* Raptor Lake graphics: legacy, no snoop control */
    engine_domain *d = NULL;
    CHECK_RC(-EOPNOTSUPP, engine_domain_alloc_kvm(k.dev, k.vm, &d));
    CHECK(d == NULL);
    CHECK_ERROR_MENTIONS("snoop control");
    CHECK_ERROR_MENTIONS("scalable mode");
    CHECK_ERROR_MENTIONS("coherent");
    CHECK_ERROR_MENTIONS("cannot carry a KVM domain");

    /* QEMU in scalable mode: no snoop control, no page-walk coherency */
    engine_iommu *u2;
    engine_device *dev2;
    CHECK_OK(engine_iommu_create_preset(k.p, "dmar1", "qemu-sm", &u2));
    CHECK_OK(engine_device_create(k.p, u2, "nic", SID, 0, &dev2));
    CHECK_RC(-EOPNOTSUPP, engine_domain_alloc_kvm(dev2, k.vm, &d));
    CHECK_ERROR_MENTIONS("snoop control");

    /* a device and a VM of different platforms */
    engine_platform *q;
    engine_vm *other;
    CHECK_OK(engine_platform_create(&q));
    CHECK_OK(engine_vm_create(q, 4, &other));
    CHECK_RC(-EINVAL, engine_domain_alloc_kvm(k.dev, other, &d));
    CHECK_OK(engine_platform_destroy(q));
    CHECK_OK(engine_platform_destroy(k.p));
}

static int page_requests_seen;
static void count_page_requests(void *user, engine_iommu *iommu, uint32_t kind)
{
    if (kind == ENGINE_IRQ_PAGE_REQUEST && user == &page_requests_seen && iommu != NULL)
        page_requests_seen++;
}

TEST(pri_device_recovers_from_a_zap_through_a_page_request)
{
    kvm_fixture k;
    CHECK_OK(kvm_open(&k, "server", ENGINE_DEV_PRI | ENGINE_DEV_ATS));
    engine_domain *d;
    CHECK_OK(engine_domain_alloc_kvm(k.dev, k.vm, &d));
    CHECK_OK(engine_domain_attach(d, k.dev));
    page_requests_seen = 0;
    CHECK_OK(engine_iommu_set_interrupt(k.u, count_page_requests, &page_requests_seen));
    CHECK_OK(engine_vm_write(k.vm, 0x300000, "before", 7));
    CHECK_OK(engine_vm_zap(k.vm, 0x300000, 4096));
    char got[7];
    uint64_t done = 0;
    /* the device faults, asks for the page, KVM faults it back in, the device retries */
    CHECK_OK(engine_dma_read(k.u, SID, ENGINE_NO_PASID, 0x300000, got, sizeof got, &done));
    CHECK_EQ_U64(sizeof got, done);
    CHECK(strcmp(got, "before") == 0);
    CHECK(page_requests_seen == 1);
    CHECK_OK(engine_iommu_set_interrupt(k.u, NULL, NULL));
    CHECK_OK(engine_platform_destroy(k.p));
}

TEST(kvm_check_answers_like_the_cli)
{
    CHECK_OK(engine_kvm_check(SERVER_CAP, SERVER_ECAP, 4, 3));
    CHECK_OK(engine_kvm_check(SERVER_CAP, SERVER_ECAP, 5, 3));
    CHECK_RC(-EOPNOTSUPP, engine_kvm_check(CLIENT_CAP, CLIENT_ECAP, 4, 3));
    CHECK_ERROR_MENTIONS("snoop control");
    CHECK_ERROR_MENTIONS("scalable mode");
    CHECK_RC(-EOPNOTSUPP, engine_kvm_check(SERVER_CAP, SERVER_ECAP, 3, 2));
    CHECK_ERROR_MENTIONS("4 or 5");
    CHECK_RC(-EINVAL, engine_kvm_check(SERVER_CAP, SERVER_ECAP, 4, 0));
    CHECK_RC(-EINVAL, engine_kvm_check(SERVER_CAP, SERVER_ECAP, 4, 4));
    /* no usable address width at all (SAGAW 0): still refused, every reason named */
    CHECK_RC(-EOPNOTSUPP, engine_kvm_check(SERVER_CAP & ~(0x1Full << 8), SERVER_ECAP, 4, 3));
    CHECK_ERROR_MENTIONS("SAGAW");
}
