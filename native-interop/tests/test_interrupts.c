/* Interrupts to the C callback: fault event, invalidation completion, masking and reentrancy. */
#include "test.h"

#define SID BDF(1, 0, 0)

typedef struct {
    int kinds[4];
    engine_iommu *iommu;
    int wrong_args;
    uint64_t fsts_in_callback;
    int destroy_rc;
    engine_platform *platform;
} irq_log;

static void on_interrupt(void *user, engine_iommu *iommu, uint32_t kind)
{
    irq_log *log = user;
    if (iommu != log->iommu || kind < 1 || kind > 3) {
        log->wrong_args++;
        return;
    }
    log->kinds[kind]++;
    if (kind == ENGINE_IRQ_FAULT) {
        /* reentrancy: registers may be read from the callback; destroying the platform may not */
        engine_iommu_mmio_read(iommu, REG_FSTS, 4, &log->fsts_in_callback);
        if (log->platform != NULL)
            log->destroy_rc = engine_platform_destroy(log->platform);
    }
}

TEST(fault_event_reaches_the_callback_when_unmasked)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    irq_log log = { .iommu = f.u };
    CHECK_OK(engine_iommu_set_interrupt(f.u, on_interrupt, &log));
    engine_request r = read_request(SID, 0x7000);   /* not mapped */
    engine_translation t;

    /* FECTL.IM is set at reset: the fault is recorded, the interrupt held pending (IP) */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(t.status == ENGINE_FAULTED);
    CHECK(log.kinds[ENGINE_IRQ_FAULT] == 0);
    uint64_t fectl;
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_FECTL, 4, &fectl));
    CHECK(fectl & (1u << 30));
    /* clearing IM delivers it, on this thread, before the write returns */
    CHECK_OK(engine_iommu_mmio_write(f.u, REG_FECTL, 4, 0));
    CHECK(log.kinds[ENGINE_IRQ_FAULT] == 1);
    CHECK(log.fsts_in_callback & 2);                 /* PPF, read from inside the callback */

    /* clear the record (F is write-1-to-clear) and PPF goes; the next fault interrupts at once */
    uint64_t cap, fsts;
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_CAP, 8, &cap));
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_FSTS, 4, &fsts));
    uint64_t hi = ((cap >> 24) & 0x3FF) * 16 + 16 * ((fsts >> 8) & 0xFF) + 8;
    CHECK_OK(engine_iommu_mmio_write(f.u, hi + 4, 4, 0x80000000u));
    CHECK_OK(engine_iommu_mmio_read(f.u, REG_FSTS, 4, &fsts));
    CHECK((fsts & 2) == 0);
    log.platform = f.p;                              /* the callback now tries to destroy it */
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(log.kinds[ENGINE_IRQ_FAULT] == 2);
    CHECK(log.destroy_rc == -EBUSY);                 /* refused from inside the callback */
    CHECK(log.wrong_args == 0);

    /* removed: no more calls */
    CHECK_OK(engine_iommu_set_interrupt(f.u, NULL, NULL));
    CHECK_OK(engine_iommu_mmio_write(f.u, hi + 4, 4, 0x80000000u));
    CHECK_OK(engine_translate(f.u, &r, &t));
    CHECK(log.kinds[ENGINE_IRQ_FAULT] == 2);
    paging_fixture_close(&f);
}

/* Queued invalidation driven by the embedder: a wait descriptor with IF and SW in a queue in
   Engine RAM; its completion writes the status word there and raises ENGINE_IRQ_INV_COMPLETE. */
TEST(invalidation_completion_reaches_the_callback)
{
    engine_platform *p;
    engine_iommu *u;
    CHECK_OK(engine_platform_create(&p));
    CHECK_OK(engine_iommu_create_preset(p, "dmar0", "qemu", &u));   /* legacy: 128-bit descriptors */
    irq_log log = { .iommu = u };
    CHECK_OK(engine_iommu_set_interrupt(u, on_interrupt, &log));
    uint64_t hpa;
    void *host;
    CHECK_OK(engine_platform_alloc_ram(p, 2 * 4096, 0, &hpa, &host));
    uint64_t *queue = host;                          /* page 0: the queue; page 1: the status word */
    volatile uint32_t *status = (volatile uint32_t *)((uint8_t *)host + 4096);

    /* take the queue over: QIE off, IQA at our page, IQT 0, QIE on */
    uint64_t gsts;
    CHECK_OK(engine_iommu_mmio_read(u, REG_GSTS, 4, &gsts));
    CHECK_OK(engine_iommu_mmio_write(u, REG_GCMD, 4, (gsts & GCMD_PERSISTENT) & ~GCMD_QIE));
    CHECK_OK(engine_iommu_mmio_write(u, REG_IQT, 8, 0));
    CHECK_OK(engine_iommu_mmio_write(u, REG_IQA, 8, hpa));
    CHECK_OK(engine_iommu_mmio_write(u, REG_GCMD, 4, (gsts & GCMD_PERSISTENT) | GCMD_QIE));
    CHECK_OK(engine_iommu_mmio_write(u, REG_IECTL, 4, 0));          /* unmask */

    /* wait descriptor: type 5, IF (bit 4), SW (bit 5), status data in 63:32; address in qw1 */
    queue[0] = 5 | 1u << 4 | 1u << 5 | (uint64_t)0xC0FFEE << 32;
    queue[1] = hpa + 4096;
    CHECK_OK(engine_iommu_mmio_write(u, REG_IQT, 8, 16));
    CHECK(*status == 0xC0FFEE);
    CHECK(log.kinds[ENGINE_IRQ_INV_COMPLETE] == 1);
    uint64_t ics, iqh;
    CHECK_OK(engine_iommu_mmio_read(u, REG_ICS, 4, &ics));
    CHECK(ics & 1);
    CHECK_OK(engine_iommu_mmio_read(u, REG_IQH, 8, &iqh));
    CHECK_EQ_U64(16, iqh);
    CHECK(log.wrong_args == 0);
    CHECK_OK(engine_platform_destroy(p));
}
