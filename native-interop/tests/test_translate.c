/* Translation through a paging domain: single and batch, results, faults, malformed requests. */
#include "test.h"

#define SID BDF(1, 0, 0)

TEST(translate_maps_and_reports_the_page)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x10000, f.ram_hpa, 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    CHECK_OK(engine_domain_map(f.dom, 0x40000000, f.ram_hpa + (2u << 20), 2u << 20, ENGINE_ACCESS_READ));

    engine_request r = read_request(SID, 0x10123);
    engine_translation t;
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED);
    CHECK_EQ_U64(f.ram_hpa + 0x123, t.hpa);
    CHECK(t.page_shift == 12 && t.fault_reason == 0);
    CHECK(t.permissions == (ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    CHECK(t.domain_id != 0);
    CHECK((t.flags & ENGINE_TR_IOTLB_HIT) == 0);
    /* Scalable mode with snoop forced off by default: the flag follows Engine's answer. */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.flags & ENGINE_TR_IOTLB_HIT);

    r = read_request(SID, 0x40000000 + 0x12345);
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED && t.page_shift == 21);
    CHECK_EQ_U64(f.ram_hpa + (2u << 20) + 0x12345, t.hpa);
    paging_fixture_close(&f);
}

TEST(translate_faults_are_results_with_the_vtd_reason)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "qemu", SID));   /* legacy mode: reasons 1..0xD */
    CHECK_OK(engine_domain_map(f.dom, 0x10000, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    engine_translation t;

    engine_request r = read_request(SID, 0x20000);          /* not mapped: read fault 6 */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED && t.fault_reason == 0x6 && t.page_shift == 0);

    r = read_request(SID, 0x10000);
    r.access = ENGINE_ACCESS_WRITE;                          /* read-only page: write fault 5 */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED && t.fault_reason == 0x5);

    r = read_request(BDF(9, 0, 0), 0x10000);                 /* no context entry for bus 9: reason 1 or 2 */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED && (t.fault_reason == 0x1 || t.fault_reason == 0x2));

    r = read_request(SID, 0x10000);
    r.flags = ENGINE_REQ_ATS;                                /* ATS without a device TLB in the context */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED && t.fault_reason == 0xD);
    paging_fixture_close(&f);
}

TEST(translate_rejects_malformed_requests)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    engine_translation t;
    memset(&t, 0x5A, sizeof t);
    engine_request r = read_request(SID, 0x1000);
    r.access = 8;
    CHECK_RC(-EINVAL, engine_translate(f.u, &r, &t));
    CHECK_ERROR_MENTIONS("malformed");
    r = read_request(SID, 0x1000);
    r.flags = 2;
    CHECK_RC(-EINVAL, engine_translate(f.u, &r, &t));
    r = read_request(SID, 0x1000);
    r.pasid = 0x100000;                                      /* 21 bits */
    CHECK_RC(-EINVAL, engine_translate(f.u, &r, &t));
    r.pasid = 0xFFFFF;                                       /* 20 bits: a request with PASID, fine */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED);
    paging_fixture_close(&f);
}

TEST(translate_batch_matches_single_translations)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    /* 64 mapped pages, requests over them with every third one unmapped, 200 requests (not a
       multiple of the 64-request chunk). */
    CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 64 * 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    enum { N = 200 };
    engine_request reqs[N];
    engine_translation batch[N], single[N];
    for (int i = 0; i < N; i++) {
        uint64_t page = (uint64_t)(i * 7 % 96);               /* pages 64..95 are unmapped */
        reqs[i] = read_request(SID, 0x100000 + page * 4096 + (uint64_t)(i * 13 % 4096));
        if (i % 5 == 0)
            reqs[i].access = ENGINE_ACCESS_WRITE;
    }
    CHECK_OK(engine_translate_batch(f.u, reqs, batch, N));
    for (int i = 0; i < N; i++)
        CHECK_OK(engine_translate(f.u, &reqs[i], &single[i]));
    int faults = 0;
    for (int i = 0; i < N; i++) {
        CHECK(batch[i].status == single[i].status);
        CHECK(batch[i].hpa == single[i].hpa);
        CHECK(batch[i].fault_reason == single[i].fault_reason);
        CHECK(batch[i].page_shift == single[i].page_shift);
        CHECK(batch[i].permissions == single[i].permissions);
        CHECK(batch[i].domain_id == single[i].domain_id);
        CHECK((batch[i].flags & ~ENGINE_TR_IOTLB_HIT) == (single[i].flags & ~ENGINE_TR_IOTLB_HIT));
        faults += batch[i].status == ENGINE_FAULTED;
    }
    CHECK(faults > 0 && faults < N);
    /* The second pass is all IOTLB hits where it translated. */
    CHECK_OK(engine_translate_batch(f.u, reqs, batch, N));
    for (int i = 0; i < N; i++)
        CHECK(batch[i].status == ENGINE_FAULTED || (batch[i].flags & ENGINE_TR_IOTLB_HIT));
    paging_fixture_close(&f);
}

TEST(translate_batch_validates_every_request_first)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    engine_request reqs[70];
    engine_translation out[70];
    for (int i = 0; i < 70; i++)
        reqs[i] = read_request(SID, 0x100000);
    reqs[69].access = 0x10;
    memset(out, 0, sizeof out);
    CHECK_RC(-EINVAL, engine_translate_batch(f.u, reqs, out, 70));
    CHECK_ERROR_MENTIONS("request 69");
    /* nothing translated: the outputs are untouched */
    for (int i = 0; i < 70; i++)
        CHECK(out[i].hpa == 0 && out[i].status == 0 && out[i].page_shift == 0);
    paging_fixture_close(&f);
}

TEST(domain_map_unmap_and_refusals)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_RC(-EINVAL, engine_domain_map(f.dom, 0x1001, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EINVAL, engine_domain_map(f.dom, 0x1000, f.ram_hpa, 0, ENGINE_ACCESS_READ));
    CHECK_RC(-EINVAL, engine_domain_map(f.dom, 0x1000, f.ram_hpa, 4096, 0));
    CHECK_RC(-EINVAL, engine_domain_map(f.dom, 0x1000, f.ram_hpa, 4096, 0x80));
    CHECK_OK(engine_domain_map(f.dom, 0x1000, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    CHECK_RC(-EEXIST, engine_domain_map(f.dom, 0x1000, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    engine_request r = read_request(SID, 0x1000);
    engine_translation t;
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED);
    CHECK_OK(engine_domain_unmap(f.dom, 0x1000, 4096));
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED);
    CHECK_RC(-EINVAL, engine_domain_unmap(f.dom, 0x1000, 0));
    /* attach twice, free while attached, detach, free */
    CHECK_RC(-EBUSY, engine_domain_attach(f.dom, f.dev));
    CHECK_RC(-EBUSY, engine_domain_free(f.dom));
    CHECK_OK(engine_domain_detach(f.dom, f.dev));
    CHECK_RC(-EINVAL, engine_domain_detach(f.dom, f.dev));
    CHECK_OK(engine_domain_free(f.dom));
    paging_fixture_close(&f);
}

TEST(iommu_create_variants_and_refusals)
{
    engine_platform *p, *q;
    engine_iommu *u, *v;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_platform_create(&q));
    CHECK_OK(engine_iommu_create(p, "dmar0", 0x00d2008c222f0606ull, 0xf00f4aull, &u));
    CHECK_RC(-EEXIST, engine_iommu_create_preset(p, "dmar0", "server", &v));
    CHECK_RC(-EINVAL, engine_iommu_create_preset(p, "dmar1", "no-such-preset", &v));
    CHECK_ERROR_MENTIONS("server");
    CHECK_OK(engine_iommu_create_preset(p, "dmar1", "SERVER", &v));   /* case-insensitive */
    CHECK_RC(-EINVAL, engine_iommu_create(p, " ", 0x00d2008c222f0606ull, 0xf00f4aull, &v));
    /* SAGAW 0: no usable width, the driver ignores such a unit */
    CHECK_RC(-ENODEV, engine_iommu_create(p, "dmar2", 0x00d2008c222f0006ull & ~(0x1Full << 8), 0xf00f4aull, &v));

    engine_iommu_options o = { sizeof o, 4096, 64, ENGINE_IOMMU_NO_SIMD };
    CHECK_OK(engine_iommu_create_ex(p, "dmar3", 0x00d2008c222f0606ull, 0xf00f4aull, &o, &v));
    CHECK_OK(engine_iommu_create_ex(p, "dmar4", 0x00d2008c222f0606ull, 0xf00f4aull, NULL, &v));
    o.struct_size = 12;
    CHECK_RC(-EINVAL, engine_iommu_create_ex(p, "dmar5", 0x00d2008c222f0606ull, 0xf00f4aull, &o, &v));
    o.struct_size = sizeof o;
    o.flags = 0x100;
    CHECK_RC(-EINVAL, engine_iommu_create_ex(p, "dmar5", 0x00d2008c222f0606ull, 0xf00f4aull, &o, &v));
    o.flags = 0;
    o.iotlb_sets = 1000;                                     /* not a power of two */
    CHECK_RC(-EINVAL, engine_iommu_create_ex(p, "dmar5", 0x00d2008c222f0606ull, 0xf00f4aull, &o, &v));

    /* devices: duplicates, unknown abilities, an IOMMU of another platform */
    engine_device *d;
    CHECK_OK(engine_device_create(p, u, "a", BDF(1, 2, 3), ENGINE_DEV_ATS | ENGINE_DEV_PRI | ENGINE_DEV_PASID, &d));
    CHECK_RC(-EEXIST, engine_device_create(p, u, "b", BDF(1, 2, 3), 0, &d));
    CHECK_RC(-EINVAL, engine_device_create(p, u, "c", BDF(1, 2, 4), 8, &d));
    CHECK_RC(-EINVAL, engine_device_create(q, u, "d", BDF(1, 2, 5), 0, &d));
    CHECK_ERROR_MENTIONS("another platform");
    CHECK_OK(engine_platform_destroy(q));
    CHECK_OK(engine_platform_destroy(p));
}
