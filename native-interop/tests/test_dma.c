/* DMA through translation: data movement, a fault mid-transfer (-EFAULT with done), and faults
   recorded in the fault-recording registers as hardware would. */
#include "test.h"

#define SID BDF(1, 0, 0)

static uint64_t frcd_offset(engine_iommu *u)
{
    uint64_t cap = 0;
    engine_iommu_mmio_read(u, REG_CAP, 8, &cap);
    return ((cap >> 24) & 0x3FF) * 16;
}

TEST(dma_moves_bytes_zero_copy)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 4 * 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    uint8_t out[3 * 4096], in[3 * 4096];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7 + 1);
    uint64_t done = 99;
    /* crosses page boundaries: starts 0x321 into the first page */
    CHECK_OK(engine_dma_write(f.u, SID, ENGINE_NO_PASID, 0x100321, out, sizeof out, &done));
    CHECK_EQ_U64(sizeof out, done);
    /* the bytes are in the RAM the embedder sees through its pointer */
    CHECK(memcmp(f.ram + 0x321, out, sizeof out) == 0);
    memset(in, 0, sizeof in);
    CHECK_OK(engine_dma_read(f.u, SID, ENGINE_NO_PASID, 0x100321, in, sizeof in, &done));
    CHECK_EQ_U64(sizeof in, done);
    CHECK(memcmp(in, out, sizeof in) == 0);
    /* nothing to move */
    CHECK_OK(engine_dma_read(f.u, SID, ENGINE_NO_PASID, 0x100000, NULL, 0, &done));
    CHECK_EQ_U64(0, done);
    paging_fixture_close(&f);
}

TEST(dma_fault_mid_transfer_returns_efault_with_done)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "qemu", SID));
    /* two pages mapped, the third not */
    CHECK_OK(engine_domain_map(f.dom, 0x200000, f.ram_hpa, 2 * 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    uint8_t buf[3 * 4096];
    memset(buf, 0x77, sizeof buf);
    uint64_t done = 0;
    CHECK_RC(-EFAULT, engine_dma_write(f.u, SID, ENGINE_NO_PASID, 0x200800, buf, sizeof buf, &done));
    CHECK_EQ_U64(2 * 4096 - 0x800, done);
    CHECK_ERROR_MENTIONS("0x202000");
    /* the bytes before the fault moved */
    CHECK(f.ram[0x800] == 0x77 && f.ram[2 * 4096 - 1] == 0x77);

    /* recorded as hardware would: FSTS.PPF, and FRCD[FRI] with F, T = 0 (write), reason, SID, page */
    uint64_t fsts, hi, lo;
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_FSTS, 4, &fsts));
    CHECK(fsts & 2);
    uint64_t frcd = frcd_offset(f.u) + 16 * ((fsts >> 8) & 0xFF);
    CHECK_OK(engine_iommu_mmio_read(f.u, frcd, 8, &lo));
    CHECK_OK(engine_iommu_mmio_read(f.u, frcd + 8, 8, &hi));
    CHECK(hi >> 63);                                     /* F */
    CHECK(((hi >> 62) & 1) == 0);                        /* T: a write */
    CHECK_EQ_U64(0x5, (hi >> 32) & 0xFF);                /* a write that found no writable page: reason 5 */
    CHECK_EQ_U64(SID, hi & 0xFFFF);
    CHECK_EQ_U64(0x202000, lo & ~0xFFFull);
    paging_fixture_close(&f);
}

TEST(dma_read_fault_on_read_only_write)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "qemu", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x300000, f.ram_hpa, 4096, ENGINE_ACCESS_READ));
    uint8_t buf[64] = { 1 };
    uint64_t done = 1;
    CHECK_OK(engine_dma_read(f.u, SID, ENGINE_NO_PASID, 0x300000, buf, sizeof buf, &done));
    CHECK_RC(-EFAULT, engine_dma_write(f.u, SID, ENGINE_NO_PASID, 0x300000, buf, sizeof buf, &done));
    CHECK_EQ_U64(0, done);
    CHECK_ERROR_MENTIONS("reason 0x05");
    paging_fixture_close(&f);
}

TEST(dma_from_a_source_id_without_device_is_translated_by_the_unit)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    uint8_t buf[32];
    uint64_t done = 5;
    /* no device and no context at 07:00.0: the unit faults, records it, nothing moves */
    CHECK_RC(-EFAULT, engine_dma_read(f.u, BDF(7, 0, 0), ENGINE_NO_PASID, 0x1000, buf, sizeof buf, &done));
    CHECK_EQ_U64(0, done);
    uint64_t fsts, hi;
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_FSTS, 4, &fsts));
    CHECK(fsts & 2);
    CHECK_OK(engine_iommu_mmio_read(f.u, frcd_offset(f.u) + 16 * ((fsts >> 8) & 0xFF) + 8, 8, &hi));
    CHECK_EQ_U64(BDF(7, 0, 0), hi & 0xFFFF);
    paging_fixture_close(&f);
}

TEST(dma_argument_errors)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    uint8_t buf[64];
    uint64_t done = 3;
    CHECK_RC(-EINVAL, engine_dma_read(f.u, SID, 0x100000, 0x100000, buf, sizeof buf, &done));   /* 21-bit PASID */
    CHECK_EQ_U64(0, done);
    CHECK_RC(-EINVAL, engine_dma_read(f.u, SID, ENGINE_NO_PASID, 0xFFFFFFFFFFFFFFF0ull, buf, sizeof buf, &done));
    CHECK_ERROR_MENTIONS("wraps");
    /* a translation to an address outside host memory: not a VT-d fault, still -EFAULT */
    CHECK_OK(engine_domain_map(f.dom, 0x900000, 0x1000, 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    CHECK_RC(-EFAULT, engine_dma_read(f.u, SID, ENGINE_NO_PASID, 0x900000, buf, sizeof buf, &done));
    CHECK_EQ_U64(0, done);
    CHECK_ERROR_MENTIONS("outside host memory");
    paging_fixture_close(&f);
}
