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
    /* one buffer for both is refused, not misread */
    CHECK_RC(-EINVAL, engine_translate_batch(f.u, reqs, (engine_translation *)(void *)reqs, 70));
    CHECK_RC(-EINVAL, engine_translate_batch(f.u, reqs + 1, (engine_translation *)(void *)reqs, 3));
    CHECK_ERROR_MENTIONS("overlap");
    CHECK_OK(engine_translate_batch(f.u, reqs + 1, (engine_translation *)(void *)reqs, 1));
    reqs[0] = read_request(SID, 0x100000);
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

/* The batch's request check and result conversion run four at a time with AVX-512 and one at a
   time otherwise (units made with ENGINE_IOMMU_NO_SIMD): both must give the same answers, for
   every batch length 0..67 (vector body and scalar tail), and catch a bad request anywhere. */
TEST(translate_batch_simd_and_scalar_agree)
{
    engine_platform *p;
    engine_iommu *u[2];
    engine_device *dev[2];
    engine_domain *dom[2];
    uint64_t hpa;
    void *host;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_platform_alloc_ram(p, 4u << 20, 2u << 20, &hpa, &host));
    engine_iommu_options o = { sizeof o, 0, 0, 0 };
    for (int k = 0; k < 2; k++) {
        o.flags = k == 0 ? 0 : ENGINE_IOMMU_NO_SIMD;
        CHECK_OK(engine_iommu_create_ex(p, k == 0 ? "simd" : "scalar", 0xf9ed008cee780c66ull, 0x3fef9ea6f0efdfull, &o, &u[k]));
        CHECK_OK(engine_device_create(p, u[k], "nic", SID, 0, &dev[k]));
        CHECK_OK(engine_domain_alloc_paging(dev[k], &dom[k]));
        CHECK_OK(engine_domain_attach(dom[k], dev[k]));
        CHECK_OK(engine_domain_map(dom[k], 0x100000, hpa, 32 * 4096, ENGINE_ACCESS_READ));
        CHECK_OK(engine_domain_map(dom[k], 0x40000000, hpa + (2u << 20), 2u << 20, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    }
    enum { N = 67 };
    engine_request reqs[N];
    for (int i = 0; i < N; i++) {
        reqs[i] = read_request(SID, i % 3 == 0 ? 0x40000000 + (uint64_t)i * 0x1234 : 0x100000 + (uint64_t)(i % 40) * 4096 + (uint64_t)i);
        reqs[i].access = (uint8_t)(i % 4 == 1 ? ENGINE_ACCESS_WRITE : ENGINE_ACCESS_READ);
        if (i % 11 == 5)
            reqs[i].pasid = (uint32_t)i;                 /* with PASID: faults (no PASID table) */
    }
    /* warm both IOTLBs identically */
    engine_translation a[N], b[N];
    CHECK_OK(engine_translate_batch(u[0], reqs, a, N));
    CHECK_OK(engine_translate_batch(u[1], reqs, b, N));
    for (int len = 0; len <= N; len++) {
        memset(a, 0xEE, sizeof a);
        memset(b, 0xEE, sizeof b);
        CHECK_OK(engine_translate_batch(u[0], reqs, a, (size_t)len));
        CHECK_OK(engine_translate_batch(u[1], reqs, b, (size_t)len));
        for (int i = 0; i < len; i++) {
            if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
                FAIL_("length %d, request %d: SIMD and scalar results differ (hpa %" PRIx64 "/%" PRIx64 ", status %u/%u, flags %u/%u)",
                      len, i, a[i].hpa, b[i].hpa, a[i].status, b[i].status, a[i].flags, b[i].flags);
        }
        /* past the batch nothing was written */
        if (len < N)
            CHECK(a[len].status == 0xEE && b[len].status == 0xEE);
    }
    int translated = 0, faulted = 0, big = 0;
    for (int i = 0; i < N; i++) {
        translated += a[i].status == ENGINE_TRANSLATED;
        faulted += a[i].status == ENGINE_FAULTED;
        big += a[i].page_shift == 21;
    }
    CHECK(translated > 0 && faulted > 0 && big > 0);

    /* a malformed request in any position, vector body or tail, in both */
    for (int bad = 0; bad < N; bad += 3) {
        for (int kind = 0; kind < 3; kind++) {
            engine_request saved = reqs[bad];
            if (kind == 0)
                reqs[bad].access = 0x08;
            else if (kind == 1)
                reqs[bad].flags = 0x80;
            else
                reqs[bad].pasid = 0xFFFFFFFEu;
            char expect[32];
            snprintf(expect, sizeof expect, "request %d ", bad);
            for (int k = 0; k < 2; k++) {
                CHECK_RC(-EINVAL, engine_translate_batch(u[k], reqs, a, N));
                CHECK_ERROR_MENTIONS(expect);
            }
            reqs[bad] = saved;
        }
    }
    CHECK_OK(engine_platform_destroy(p));
}
