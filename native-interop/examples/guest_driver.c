/*
 * guest_driver.c — a simulator embedding Engine and playing the guest's IOMMU driver.
 *
 * What a full-system simulator does with an emulated VT-d unit: the guest driver writes the legacy
 * root table, a context table and second-level page tables into RAM by hand, programs the unit
 * through its MMIO registers (RTADDR + GCMD.SRTP, context-cache and IOTLB invalidation, GCMD.TE),
 * and the simulator's device model then translates and does DMA through it.  A DMA to an unmapped
 * page faults; the driver reads the fault back from FSTS and the FRCD registers, as Linux's
 * dmar_fault() does, after the fault-event interrupt reached the simulator's callback.
 *
 * Memory: the guest's RAM is the simulator's own: an aligned_alloc'd buffer registered with
 * engine_platform_add_ram at a host-physical address the simulator chooses (zero-copy: Engine
 * walks the tables and lands the DMA in this very buffer).  The simulator frees it after
 * engine_platform_destroy, never before.
 *
 * Build and run: cmake --build native-interop/build && native-interop/build/guest_driver
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- the spec's register offsets and bits (VT-d 3.x, chapter 11) ---- */
#define DMAR_VER_REG    0x00
#define DMAR_CAP_REG    0x08
#define DMAR_ECAP_REG   0x10
#define DMAR_GCMD_REG   0x18
#define DMAR_GSTS_REG   0x1C
#define DMAR_RTADDR_REG 0x20
#define DMAR_CCMD_REG   0x28
#define DMAR_FSTS_REG   0x34
#define DMAR_FECTL_REG  0x38
#define DMA_GCMD_TE     (1u << 31)
#define DMA_GCMD_SRTP   (1u << 30)
#define DMA_GCMD_QIE    (1u << 26)
#define DMA_GSTS_TES    (1u << 31)
#define DMA_GSTS_RTPS   (1u << 30)
#define DMA_GSTS_PERSISTENT (DMA_GCMD_TE | DMA_GCMD_QIE | (1u << 25) | (1u << 23))  /* TE, QIE, IRE, CFI */
#define DMA_CCMD_ICC    (1ull << 63)
#define DMA_CCMD_GLOBAL (1ull << 61)
#define DMA_TLB_IVT     (1ull << 63)
#define DMA_TLB_GLOBAL  (1ull << 60)
#define DMA_FSTS_PPF    (1u << 1)
#define DMA_FRCD_F      (1ull << 63)
#define cap_fro(c)      ((((c) >> 24) & 0x3FF) * 16)
#define cap_nfr(c)      ((((c) >> 40) & 0xFF) + 1)
#define cap_sagaw(c)    (((c) >> 8) & 0x1F)
#define ecap_iro(e)     ((((e) >> 8) & 0x3FF) * 16)

/* ---- table entry formats (legacy mode) ---- */
#define ROOT_P          1ull                 /* root entry: present, context-table pointer 63:12 */
#define CTX_P           1ull                 /* context entry lo: present, TT 3:2 = 0, SLPTPTR 63:12 */
#define CTX_AW_48       2ull                 /* context entry hi: AW 2:0 = 2 (48-bit, 4 levels), DID 23:8 */
#define SL_R            1ull                 /* second-level entry: R 0, W 1, address 51:12 */
#define SL_W            2ull

#define SOURCE_ID   ((uint16_t)(0x03 << 8 | 0x00 << 3 | 0))   /* 03:00.0, the simulated NIC */
#define DOMAIN_ID   7
#define IOVA_BASE   0x40000000ull                              /* where the NIC's buffers are mapped */
#define PAGES       4

/* The RAM the "guest" uses, at HPA ram_hpa; page numbers within it: */
enum { PG_ROOT, PG_CONTEXT, PG_PML4, PG_PDPT, PG_PD, PG_PT, PG_DATA, PG_COUNT = PG_DATA + PAGES };

static engine_iommu *unit;
static int fault_interrupts;

#define TRY(call)                                                                               \
    do {                                                                                        \
        int rc_ = (call);                                                                       \
        if (rc_ != 0) {                                                                         \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call, engine_strerror(rc_), \
                    engine_last_error());                                                       \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

#define EXPECT(cond)                                                                            \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                 \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static uint64_t rd(uint64_t off, uint32_t size)
{
    uint64_t v;
    TRY(engine_iommu_mmio_read(unit, off, size, &v));
    return v;
}

static void wr(uint64_t off, uint32_t size, uint64_t v) { TRY(engine_iommu_mmio_write(unit, off, size, v)); }

/* The fault-event interrupt (the MSI programmed in FEADDR/FEDATA): the simulator would inject it
   into the guest; here the "guest" just counts it and handles it later, as a threaded IRQ would. */
static void on_interrupt(void *user, engine_iommu *iommu, uint32_t kind)
{
    (void)user;
    if (iommu == unit && kind == ENGINE_IRQ_FAULT)
        fault_interrupts++;
}

/* GCMD is a command register: software writes the persistent bits it wants plus one command. */
static void gcmd(uint32_t set, uint32_t clear, uint32_t wait_status)
{
    uint32_t status = (uint32_t)rd(DMAR_GSTS_REG, 4) & DMA_GSTS_PERSISTENT;
    wr(DMAR_GCMD_REG, 4, (status | set) & ~clear);
    EXPECT(((uint32_t)rd(DMAR_GSTS_REG, 4) & wait_status) == wait_status);   /* hardware completes at once */
}

int main(void)
{
    if (engine_abi_version() != ENGINE_ABI_VERSION || engine_layout_matches() != 0) {
        fprintf(stderr, "libengine does not match engine.h\n");
        return 1;
    }
    engine_platform *p;
    engine_device *nic;
    TRY(engine_platform_create(&p));
    TRY(engine_iommu_create_preset(p, "dmar0", "server", &unit));
    TRY(engine_device_create(p, unit, "nic", SOURCE_ID, 0, &nic));
    TRY(engine_iommu_set_interrupt(unit, on_interrupt, NULL));

    uint64_t cap = rd(DMAR_CAP_REG, 8), ecap = rd(DMAR_ECAP_REG, 8);
    printf("VT-d %" PRIu64 ".%" PRIu64 " cap %016" PRIx64 " ecap %016" PRIx64 ": FRO 0x%" PRIx64 ", %" PRIu64
           " fault records, IOTLB registers at 0x%" PRIx64 "\n",
           rd(DMAR_VER_REG, 4) >> 4, rd(DMAR_VER_REG, 4) & 0xF, cap, ecap, cap_fro(cap), cap_nfr(cap), ecap_iro(ecap));
    EXPECT(cap_sagaw(cap) & (1u << 2));   /* 48-bit, 4-level tables */

    /* ---- 1. the tables, written by hand into RAM ---- */
    const uint64_t ram_hpa = 0x100000000000ull;               /* 16 TiB: above Engine's own region */
    uint8_t *ram = aligned_alloc(4096, PG_COUNT * 4096);
    EXPECT(ram != NULL);
    memset(ram, 0, PG_COUNT * 4096);
    TRY(engine_platform_add_ram(p, ram_hpa, ram, PG_COUNT * 4096));
#define PAGE_HPA(n) (ram_hpa + (uint64_t)(n) * 4096)
#define ENTRY(n, i) (((volatile uint64_t *)(ram + (size_t)(n) * 4096))[i])
    uint8_t bus = SOURCE_ID >> 8, devfn = SOURCE_ID & 0xFF;
    ENTRY(PG_ROOT, 2 * bus) = PAGE_HPA(PG_CONTEXT) | ROOT_P;                        /* root[bus].lo */
    ENTRY(PG_CONTEXT, 2 * devfn + 1) = CTX_AW_48 | (uint64_t)DOMAIN_ID << 8;       /* context[devfn].hi */
    ENTRY(PG_CONTEXT, 2 * devfn) = PAGE_HPA(PG_PML4) | CTX_P;                      /* context[devfn].lo, P last */
    uint64_t iova = IOVA_BASE;
    ENTRY(PG_PML4, (iova >> 39) & 511) = PAGE_HPA(PG_PDPT) | SL_R | SL_W;
    ENTRY(PG_PDPT, (iova >> 30) & 511) = PAGE_HPA(PG_PD) | SL_R | SL_W;
    ENTRY(PG_PD, (iova >> 21) & 511) = PAGE_HPA(PG_PT) | SL_R | SL_W;
    for (int i = 0; i < PAGES - 1; i++)   /* the last page stays unmapped: the DMA will fault there */
        ENTRY(PG_PT, ((iova >> 12) & 511) + i) = PAGE_HPA(PG_DATA + i) | SL_R | (i == 0 ? 0 : SL_W);
    printf("tables at HPA 0x%" PRIx64 ": root, context (%02x:%02x.%x -> DID %d), 4-level second stage; "
           "IOVA 0x%" PRIx64 " read-only, +0x1000..+0x2fff read-write, +0x3000 unmapped\n",
           ram_hpa, bus, devfn >> 3, devfn & 7, DOMAIN_ID, iova);

    /* ---- 2. program the unit: take it from Engine's own driver, as a guest kernel would boot ---- */
    gcmd(0, DMA_GCMD_TE | DMA_GCMD_QIE, 0);                     /* translation and queued invalidation off */
    EXPECT((rd(DMAR_GSTS_REG, 4) & DMA_GSTS_TES) == 0);
    wr(DMAR_RTADDR_REG, 8, PAGE_HPA(PG_ROOT));                  /* TTM 00: legacy root table */
    gcmd(DMA_GCMD_SRTP, 0, DMA_GSTS_RTPS);
    wr(DMAR_CCMD_REG, 8, DMA_CCMD_ICC | DMA_CCMD_GLOBAL);       /* global context-cache invalidation */
    EXPECT((rd(DMAR_CCMD_REG, 8) & DMA_CCMD_ICC) == 0);
    wr(ecap_iro(ecap) + 8, 8, DMA_TLB_IVT | DMA_TLB_GLOBAL);    /* global IOTLB invalidation */
    EXPECT((rd(ecap_iro(ecap) + 8, 8) & DMA_TLB_IVT) == 0);
    wr(DMAR_FECTL_REG, 4, 0);                                   /* unmask the fault event */
    gcmd(DMA_GCMD_TE, 0, DMA_GSTS_TES);
    printf("RTADDR 0x%" PRIx64 ", GSTS 0x%08" PRIx64 ": translation enabled\n", rd(DMAR_RTADDR_REG, 8), rd(DMAR_GSTS_REG, 4));

    /* ---- 3. translate ---- */
    engine_request req = { .iova = iova + 0x1234, .pasid = ENGINE_NO_PASID, .source_id = SOURCE_ID, .access = ENGINE_ACCESS_WRITE };
    engine_translation t;
    TRY(engine_translate(unit, &req, &t));
    EXPECT(t.status == ENGINE_TRANSLATED && t.hpa == PAGE_HPA(PG_DATA + 1) + 0x234 && t.domain_id == DOMAIN_ID && t.page_shift == 12);
    TRY(engine_translate(unit, &req, &t));
    EXPECT(t.flags & ENGINE_TR_IOTLB_HIT);
    printf("translate %02x:%02x.%x write 0x%" PRIx64 " -> HPA 0x%" PRIx64 " (DID %u, 4 KiB, perms %u, IOTLB hit on the second)\n",
           bus, devfn >> 3, devfn & 7, req.iova, t.hpa, t.domain_id, t.permissions);

    /* ---- 4. DMA: the NIC writes a packet, the bytes land in RAM (zero-copy) and read back ---- */
    const char packet[] = "a packet the NIC received, written by DMA across a page boundary";
    uint64_t done;
    TRY(engine_dma_write(unit, SOURCE_ID, ENGINE_NO_PASID, iova + 0x1FF0, packet, sizeof packet, &done));
    EXPECT(done == sizeof packet && memcmp(ram + PG_DATA * 4096 + 0x1FF0, packet, sizeof packet) == 0);
    char back[sizeof packet];
    TRY(engine_dma_read(unit, SOURCE_ID, ENGINE_NO_PASID, iova + 0x1FF0, back, sizeof back, &done));
    EXPECT(memcmp(back, packet, sizeof back) == 0);
    printf("DMA write + read of %zu bytes at IOVA 0x%" PRIx64 ": ok, visible in RAM without a copy\n", sizeof packet, iova + 0x1FF0);

    /* ---- 5. a fault: the NIC writes past its last mapped page ---- */
    char burst[0x2000];
    memset(burst, 0xAB, sizeof burst);
    int rc = engine_dma_write(unit, SOURCE_ID, ENGINE_NO_PASID, iova + 0x2000, burst, sizeof burst, &done);
    EXPECT(rc == -EFAULT && done == 0x1000);
    printf("DMA write of 0x%zx bytes at IOVA 0x%" PRIx64 ": %s after 0x%" PRIx64 " bytes (%s)\n",
           sizeof burst, iova + 0x2000, engine_strerror(rc), done, engine_last_error());
    EXPECT(fault_interrupts == 1);

    /* ---- 6. the driver's fault handler: FSTS, then each FRCD with F set, cleared by writing F ---- */
    uint64_t fsts = rd(DMAR_FSTS_REG, 4);
    EXPECT(fsts & DMA_FSTS_PPF);
    int handled = 0;
    for (uint64_t i = (fsts >> 8) & 0xFF, n = 0; n < cap_nfr(cap); n++, i = (i + 1) % cap_nfr(cap)) {
        uint64_t frcd = cap_fro(cap) + 16 * i;
        uint64_t hi = rd(frcd + 8, 8), lo = rd(frcd, 8);
        if (!(hi & DMA_FRCD_F))
            break;
        unsigned reason = (unsigned)(hi >> 32) & 0xFF;
        uint16_t sid = (uint16_t)hi;
        printf("FRCD[%" PRIu64 "]: %s request from %02x:%02x.%x, fault addr 0x%" PRIx64 ", reason 0x%02x\n", i,
               (hi >> 62) & 1 ? "read" : "write", sid >> 8, (sid >> 3) & 31, sid & 7, lo & ~(uint64_t)0xFFF, reason);
        EXPECT(sid == SOURCE_ID && (lo & ~0xFFFull) == iova + 0x3000 && reason == 0x05 && !((hi >> 62) & 1));
        wr(frcd + 12, 4, 0x80000000u);                          /* clear F (write 1), as Linux does */
        handled++;
    }
    EXPECT(handled == 1 && (rd(DMAR_FSTS_REG, 4) & DMA_FSTS_PPF) == 0);

    /* a read-only page: a write faults with reason 5, a read goes through */
    req.iova = iova;
    TRY(engine_translate(unit, &req, &t));
    EXPECT(t.status == ENGINE_FAULTED && t.fault_reason == 0x05);
    req.access = ENGINE_ACCESS_READ;
    TRY(engine_translate(unit, &req, &t));
    EXPECT(t.status == ENGINE_TRANSLATED && t.permissions == ENGINE_ACCESS_READ);
    printf("write to the read-only page: fault reason 0x05; %d fault interrupts in all\n", fault_interrupts);

    TRY(engine_platform_destroy(p));
    free(ram);                                              /* only now: Engine no longer reads it */
    printf("guest driver example: ok\n");
    return 0;
}
