/* The register file through MMIO: values, sizes, offsets, read-only and write-1-to-clear bits. */
#include "test.h"

/* CAP/ECAP of the "server" preset (Granite Rapids). */
#define SERVER_CAP  0xf9ed008cee780c66ull
#define SERVER_ECAP 0x3fef9ea6f0efdfull

TEST(mmio_reads_the_capability_registers)
{
    engine_platform *p;
    engine_iommu *u;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "server", &u));
    uint64_t v;
    CHECK_OK(engine_iommu_mmio_read(u, REG_VER, 4, &v));
    CHECK_EQ_U64(0x10, v);
    CHECK_OK(engine_iommu_mmio_read(u, REG_CAP, 8, &v));
    CHECK_EQ_U64(SERVER_CAP, v);
    CHECK_OK(engine_iommu_mmio_read(u, REG_ECAP, 8, &v));
    CHECK_EQ_U64(SERVER_ECAP, v);
    /* 4-byte reads of either half of a 64-bit register */
    CHECK_OK(engine_iommu_mmio_read(u, REG_CAP, 4, &v));
    CHECK_EQ_U64(SERVER_CAP & 0xFFFFFFFF, v);
    CHECK_OK(engine_iommu_mmio_read(u, REG_CAP + 4, 4, &v));
    CHECK_EQ_U64(SERVER_CAP >> 32, v);
    /* Engine's driver took the unit over: translation on, root table latched, QI on. */
    CHECK_OK(engine_iommu_mmio_read(u, REG_GSTS, 4, &v));
    CHECK((v & GCMD_TE) && (v & GCMD_SRTP) && (v & GCMD_QIE));
    CHECK_OK(engine_platform_destroy(p));
}

TEST(mmio_unknown_offsets_and_bad_sizes_are_einval)
{
    engine_platform *p;
    engine_iommu *u;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "qemu", &u));
    uint64_t v = 0x1234;
    /* unknown offsets: a hole in the page, far beyond it, and beyond 32 bits */
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, 0x48, 4, &v));
    CHECK_ERROR_MENTIONS("no register at offset 0x48");
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, 0x10000, 8, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, 1ull << 40, 8, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_write(u, 0x48, 4, 0));
    CHECK_RC(-EINVAL, engine_iommu_mmio_write(u, 1ull << 40, 4, 0));
    /* sizes other than 4 and 8, and 8 bytes of a 32-bit register */
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_VER, 2, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_VER, 1, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_CAP, 16, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_CAP, 0, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_GSTS, 8, &v));
    CHECK_RC(-EINVAL, engine_iommu_mmio_write(u, REG_FECTL, 2, 0));
    CHECK_RC(-EINVAL, engine_iommu_mmio_write(u, REG_FECTL, 0xFFFFFFFFu, 0));
    /* misaligned, and a 4-byte value too wide */
    CHECK_RC(-EINVAL, engine_iommu_mmio_read(u, REG_CAP + 2, 4, &v));
    CHECK_ERROR_MENTIONS("aligned");
    CHECK_RC(-EINVAL, engine_iommu_mmio_write(u, REG_FECTL, 4, 1ull << 32));
    /* the output was never written by a failing read */
    CHECK_EQ_U64(0x1234, v);
    CHECK_OK(engine_platform_destroy(p));
}

TEST(mmio_read_only_and_write_one_to_clear_bits)
{
    engine_platform *p;
    engine_iommu *u;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "server", &u));
    uint64_t v;
    /* CAP is read-only: a write is accepted and changes nothing. */
    CHECK_OK(engine_iommu_mmio_write(u, REG_CAP, 8, 0));
    CHECK_OK(engine_iommu_mmio_read(u, REG_CAP, 8, &v));
    CHECK_EQ_U64(SERVER_CAP, v);
    /* FECTL: IM (bit 31) is writable and resets to 1. */
    CHECK_OK(engine_iommu_mmio_read(u, REG_FECTL, 4, &v));
    CHECK_EQ_U64(0x80000000u, v);
    CHECK_OK(engine_iommu_mmio_write(u, REG_FECTL, 4, 0));
    CHECK_OK(engine_iommu_mmio_read(u, REG_FECTL, 4, &v));
    CHECK_EQ_U64(0, v);
    /* FSTS is write-1-to-clear: writing ones where nothing is set leaves 0. */
    CHECK_OK(engine_iommu_mmio_write(u, REG_FSTS, 4, 0xFFFFFFFFu));
    CHECK_OK(engine_iommu_mmio_read(u, REG_FSTS, 4, &v));
    CHECK_EQ_U64(0, v);
    /* GCMD reads as 0; clearing TE through it turns translation off (GSTS follows). */
    CHECK_OK(engine_iommu_mmio_read(u, REG_GSTS, 4, &v));
    uint64_t persistent = v & GCMD_PERSISTENT;
    CHECK_OK(engine_iommu_mmio_write(u, REG_GCMD, 4, persistent & ~GCMD_TE));
    CHECK_OK(engine_iommu_mmio_read(u, REG_GSTS, 4, &v));
    CHECK((v & GCMD_TE) == 0);
    CHECK_OK(engine_iommu_mmio_read(u, REG_GCMD, 4, &v));
    CHECK_EQ_U64(0, v);
    /* With TE off a request passes through: translated, hpa == iova, flagged. */
    engine_request r = read_request(BDF(3, 0, 0), 0x12345678);
    engine_translation t;
    CHECK_OK(engine_translate(u, &r, &t));
    CHECK(t.status == ENGINE_TRANSLATED && t.hpa == 0x12345678 && (t.flags & ENGINE_TR_PASSTHROUGH) && t.page_shift == 12);
    CHECK_OK(engine_platform_destroy(p));
}
