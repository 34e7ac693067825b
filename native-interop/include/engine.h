/*
 * engine.h — the C ABI of Engine, a simulator of an Intel VT-d IOMMU whose second-stage tables
 * can be shared with KVM's EPT.  Library: libengine.so (NativeAOT; built by native-interop/CMakeLists.txt).
 *
 * This header is the contract (ABI version 1).  Every name and layout of issue 10 §4 is here
 * unchanged; what this header adds is marked "(addition)".
 *
 * ---------------------------------------------------------------------------------------------
 * Conventions that hold for every function returning int
 * ---------------------------------------------------------------------------------------------
 *  - 0 on success, otherwise a negative Linux errno:
 *      -EBADF       a handle argument is NULL, of another kind, forged, or already destroyed
 *                   (handles are generation-tagged: a destroyed handle stays dead, never a crash);
 *      -EINVAL      any other NULL pointer argument, or a malformed value (alignment, range, bits);
 *      -ENOMEM      Engine's host memory (or the process) ran out;
 *      -ENODEV      no IOMMU in front of a device;
 *      -EOPNOTSUPP  not supported (a KVM domain the IOMMU cannot carry, a map on a KVM domain, ...);
 *      -EBUSY       in use (a device already attached, a domain with devices, a VM with KVM domains);
 *      -EEXIST      already exists or overlaps (a name, a source id, a memslot, a RAM region);
 *      -EFAULT      a DMA or guest-memory access hit an address that does not translate;
 *      -ENOSPC      a unit has no free domain id;  -ENOENT, -EPERM as Engine reports them;
 *      -EIO         an internal error (a bug: engine_last_error names the exception; please report it).
 *  - No exception or signal ever crosses the boundary; every failure records a message for
 *    engine_last_error() on the calling thread.
 *  - Outputs are written only on success (except *done of the DMA calls, always written).
 *  - Sizes and addresses are bytes everywhere (4 KiB-aligned where pages are meant).
 *  - Option structs start with struct_size = sizeof(the struct), so they can grow in a later ABI.
 *
 * Thread safety: every function may be called from any thread.  engine_translate, _batch and
 * engine_dma_* are lock-free and allocation-free on their success path (a fault takes the unit's
 * fault-recording lock, as hardware logs one fault at a time).  Control calls (create, map, attach,
 * MMIO, ...) serialize among themselves where they touch the same objects.  A handle destroyed while
 * another thread still uses it is safe: that thread's call answers -EBADF (or finishes the work it
 * had started, never touching freed memory).
 *
 * Lifetimes: objects live until destroyed, and a platform's destroy destroys everything made from
 * it (IOMMUs, devices, VMs, domains): their handles turn -EBADF.  There is no separate destroy for
 * IOMMUs and devices.  Strings the library returns are owned by the library (never free them).
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENGINE_ABI_VERSION 1

/* The ABI version the library implements; compare with ENGINE_ABI_VERSION before anything else. */
uint32_t engine_abi_version(void);

/* A fixed English description of an errno value (either sign; unknown values give "unknown error").
   The string is static: valid as long as the library is loaded.  Never NULL. */
const char *engine_strerror(int err);

/* This thread's message for its last failing call, never NULL (a fixed text before the first failure).
   Valid until the next failing call on the same thread (which rewrites it) or the thread's exit;
   a successful call leaves it as it was.  Copy it if you need it longer. */
const char *engine_last_error(void);

typedef struct engine_platform engine_platform;  /* opaque handles */
typedef struct engine_iommu    engine_iommu;
typedef struct engine_device   engine_device;
typedef struct engine_vm       engine_vm;
typedef struct engine_domain   engine_domain;

/* ---------------------------------------------------------------------------------------------
 * Translation requests and results
 * --------------------------------------------------------------------------------------------- */

#define ENGINE_NO_PASID      0xFFFFFFFFu
#define ENGINE_ACCESS_READ   1u
#define ENGINE_ACCESS_WRITE  2u
#define ENGINE_ACCESS_EXEC   4u
#define ENGINE_REQ_ATS       1u   /* engine_request.flags: an ATS translation request from a device TLB */

typedef struct engine_request {          /* 16 bytes */
    uint64_t iova;
    uint32_t pasid;                      /* ENGINE_NO_PASID = 0xFFFFFFFF, otherwise 20 bits */
    uint16_t source_id;                  /* bus << 8 | dev << 3 | fn */
    uint8_t  access;                     /* ENGINE_ACCESS_READ 1 | _WRITE 2 | _EXEC 4 */
    uint8_t  flags;                      /* ENGINE_REQ_ATS 1: an ATS translation request */
} engine_request;

#define ENGINE_TRANSLATED    0u
#define ENGINE_FAULTED       1u
#define ENGINE_TR_SNOOP      1u   /* the access snoops the CPU caches (PGSNP, or SNP with snoop control) */
#define ENGINE_TR_IOTLB_HIT  2u   /* the IOTLB answered (no walk) */
#define ENGINE_TR_PASSTHROUGH 4u  /* (addition) translation is off (GCMD.TE = 0) or the context is
                                     pass-through: status ENGINE_TRANSLATED, hpa == iova, page_shift 12 */

typedef struct engine_translation {      /* 16 bytes */
    uint64_t hpa;                        /* with the page offset; valid when status == ENGINE_TRANSLATED */
    uint8_t  status;                     /* ENGINE_TRANSLATED 0, ENGINE_FAULTED 1 */
    uint8_t  fault_reason;               /* the VT-d fault reason code; 0 when translated */
    uint8_t  page_shift;                 /* 12, 21 or 30; 0 when faulted */
    uint8_t  permissions;                /* ENGINE_ACCESS_* granted */
    uint16_t domain_id;                  /* the DID of the context used (0 when none was reached) */
    uint16_t flags;                      /* ENGINE_TR_SNOOP 1, ENGINE_TR_IOTLB_HIT 2, ENGINE_TR_PASSTHROUGH 4 */
} engine_translation;

/* Interrupts: kind is ENGINE_IRQ_FAULT 1 (the fault event: a fault was recorded in FRCD with
   FECTL.IM clear, or IM cleared while IP was pending), ENGINE_IRQ_INV_COMPLETE 2 (a wait descriptor
   with IF completed with IECTL.IM clear), ENGINE_IRQ_PAGE_REQUEST 3 (a page request was queued at
   PQT with PECTL.IM clear).  Like the MSI it models, an interrupt with its IM bit set is not
   delivered; it stays pending (IP) and comes when software clears IM.  Reset values of FECTL and
   IECTL have IM set: unmask them (write 0) to get these interrupts. */
#define ENGINE_IRQ_FAULT         1u
#define ENGINE_IRQ_INV_COMPLETE  2u
#define ENGINE_IRQ_PAGE_REQUEST  3u
typedef void (*engine_interrupt_fn)(void *user, engine_iommu *iommu, uint32_t kind);

/* ---------------------------------------------------------------------------------------------
 * Platform and memory
 * --------------------------------------------------------------------------------------------- */

/* A platform: host memory (Engine's own region: 64 GiB of host-physical address space at HPA 4 GiB,
   committed lazily), and the IOMMUs, devices, VMs and domains made from it.  Several may coexist.
   Errors: -EINVAL (out NULL), -ENOMEM. */
int engine_platform_create(engine_platform **out);

/* (addition) Build options for engine_platform_create_ex. */
#define ENGINE_PLATFORM_NO_KVM_DOMAINS 1u   /* the feature switch (CONFIG_INTEL_IOMMU_KVM) off: KVM domains -EOPNOTSUPP */
#define ENGINE_PLATFORM_SM_OFF         2u   /* the driver's scalable mode off (intel_iommu=sm_off) */
typedef struct engine_platform_options { /* 24 bytes */
    uint32_t struct_size;                /* sizeof(engine_platform_options) */
    uint32_t flags;                      /* ENGINE_PLATFORM_* */
    uint64_t memory_size;                /* Engine's host memory: a multiple of 4 KiB, 0 = 64 GiB (reserved, committed lazily) */
    uint64_t memory_base;                /* its first HPA: 1 GiB aligned, 0 = 4 GiB */
} engine_platform_options;

/* (addition) As engine_platform_create, with options (NULL = defaults).  A smaller memory_size
   suits tools that cannot reserve 64 GiB of address space (valgrind, for one).
   Errors: -EINVAL (NULL out, wrong struct_size, unknown flags, a size or base the layout refuses:
   not 4 KiB / 1 GiB aligned, beyond the 46-bit host address width), -ENOMEM. */
int engine_platform_create_ex(const engine_platform_options *options, engine_platform **out);

/* Destroys the platform and every handle made from it (they answer -EBADF afterwards).  Threads
   still translating through it finish safely (their calls answer -EBADF).
   Errors: -EBADF, -EBUSY when called from inside an interrupt callback (a callback can run inside an
   epoch-protected region that destruction would wait for). */
int engine_platform_destroy(engine_platform *p);

/* Bring your own RAM: registers [host, host + size) of the embedder's memory as host memory at
   host-physical address hpa, zero-copy.  Tables (root, context, PASID, second-level), invalidation
   and page-request queues and DMA buffers placed there are read and written in place, and walked
   without any callback; Engine never allocates from it, frees it or moves it.  Keep it mapped until
   engine_platform_destroy has returned.  Up to 64 regions; an HPA outside Engine's region and every
   registered one is the spec's fault (0x8 for the root table, 0x7 for a paging-entry
   pointer in legacy mode, the 0x7x family in scalable mode), never a crash.
   Errors: -EBADF p;  -EINVAL host NULL, size 0, hpa/host/size not 4 KiB aligned, [hpa, +size)
   wrapping or beyond the 46-bit host address width;  -EEXIST overlap, by HPA or by host address,
   with Engine's own region (engine_platform_memory_range) or a region added before;  -ENOSPC when
   64 regions are registered. */
int engine_platform_add_ram(engine_platform *p, uint64_t hpa, void *host, uint64_t size);

/* (addition) Allocates size bytes (a non-zero multiple of 4 KiB) of contiguous, zeroed host memory
   from Engine's own region, aligned to alignment (0 = 4 KiB; a power of two up to 1 GiB), and gives
   its HPA and a pointer through which the embedder reads and writes it directly (zero-copy): root,
   context and page tables, invalidation and page-request queues, DMA buffers.  The memory stays
   until the platform is destroyed; the pointer is invalid after that.
   Errors: -EBADF, -EINVAL (NULL hpa/host, bad size or alignment), -ENOMEM. */
int engine_platform_alloc_ram(engine_platform *p, uint64_t size, uint64_t alignment, uint64_t *hpa, void **host);

/* (addition) Engine's own host-memory region: [*base, *base + *size). Errors: -EBADF, -EINVAL. */
int engine_platform_memory_range(engine_platform *p, uint64_t *base, uint64_t *size);

/* ---------------------------------------------------------------------------------------------
 * IOMMUs: registers, MMIO, interrupts
 * --------------------------------------------------------------------------------------------- */

/* Adds a DMA-remapping unit with these CAP_REG/ECAP_REG values, named name (unique per platform).
   Engine's own driver takes the unit over at creation, as Linux would: it programs a root table
   (scalable mode when ECAP.SMTS allows), turns on queued invalidation (ECAP.QI) and the page-request
   queue (ECAP.PRS), and sets GCMD.TE.  An embedder that plays the guest driver instead simply
   reprograms the unit through engine_iommu_mmio_write (RTADDR + SRTP, TE, QIE, ...); it should then
   not use engine_domain_* on that unit, whose flushes go through Engine's queue.
   Errors: -EBADF, -EINVAL (NULL name/out, blank name, impossible registers), -EEXIST (name taken),
   -ENODEV (SAGAW offers no usable width), -ENOMEM. */
int engine_iommu_create(engine_platform *p, const char *name, uint64_t cap, uint64_t ecap, engine_iommu **out);

/* As engine_iommu_create with the registers of a named preset:
     "server"  Granite Rapids (scalable, 5-level, 1G, SC, SMPWC, PRS): can carry a KVM domain
     "spr"     Sapphire/Emerald Rapids (scalable, 5-level, 1G, SC, SMPWC)
     "client"  Raptor Lake-P graphics (legacy only, no snoop control): cannot carry a KVM domain
     "skylake" Skylake-SP (legacy only, SC, 48-bit)
     "qemu"    QEMU intel-iommu defaults (legacy, 48-bit)
     "qemu-sm" QEMU intel-iommu x-scalable-mode=on (no SC, no SMPWC)
   (case-insensitive).  Errors: as engine_iommu_create; -EINVAL for NULL or unknown preset (the
   message lists the names). */
int engine_iommu_create_preset(engine_platform *p, const char *name, const char *preset, engine_iommu **out);

/* (addition) Build options for engine_iommu_create_ex. */
#define ENGINE_IOMMU_NO_SIMD 1u          /* force the scalar paths (bit-identical results) */
typedef struct engine_iommu_options {    /* 16 bytes */
    uint32_t struct_size;                /* sizeof(engine_iommu_options) */
    uint32_t iotlb_sets;                 /* power of two, 0 = 1024; entries = sets x 3 */
    uint32_t context_cache_slots;        /* power of two, 0 = 1024 */
    uint32_t flags;                      /* ENGINE_IOMMU_NO_SIMD */
} engine_iommu_options;

/* (addition) As engine_iommu_create, with options (NULL = defaults).
   Errors: as engine_iommu_create; -EINVAL for a wrong struct_size, unknown flags, sizes that are not
   powers of two or too large. */
int engine_iommu_create_ex(engine_platform *p, const char *name, uint64_t cap, uint64_t ecap,
                           const engine_iommu_options *options, engine_iommu **out);

/* A software read of the register file: size 4 or 8 bytes at offset (the spec's DMAR_*_REG offsets,
   IVA/IOTLB at ECAP.IRO x 16, FRCD at CAP.FRO x 16; a 4-byte access may read either half of a 64-bit
   register).  Errors: -EBADF, -EINVAL (NULL value; no register at offset; size not 4/8 or wider than
   the register; offset not aligned to size). */
int engine_iommu_mmio_read(engine_iommu *u, uint64_t offset, uint32_t size, uint64_t *value);

/* A software write with the spec's behaviour: read-only bits kept, write-1-to-clear bits cleared,
   and the hardware's side effects done before the call returns (GCMD: SRTP latches RTADDR, TE, QIE,
   ...; CCMD and IOTLB_REG invalidations; IQT processes the invalidation queue, whose descriptors
   are read from host memory and whose wait descriptors write their status there; clearing F in
   FRCD, PFO in FSTS, IM in FECTL/IECTL/PECTL).  An interrupt this raises is delivered on this thread
   before the call returns.  Errors: as engine_iommu_mmio_read; -EINVAL for a 4-byte value above
   0xFFFFFFFF. */
int engine_iommu_mmio_write(engine_iommu *u, uint64_t offset, uint32_t size, uint64_t value);

/* Installs fn (replacing any previous one) to be called with user for every interrupt of this unit;
   fn NULL removes it.  The callback runs synchronously on the thread whose call raised it: a
   translating or DMA thread for ENGINE_IRQ_FAULT, an engine_iommu_mmio_write caller (or a control
   call flushing through the queue) for ENGINE_IRQ_INV_COMPLETE, a DMA thread for
   ENGINE_IRQ_PAGE_REQUEST — possibly on several threads at once.
   Reentrancy: the callback may call engine_iommu_mmio_read/_write (read FSTS/FRCD, clear F, ack
   ICS), engine_translate*, engine_dma_* and engine_last_error; it must not call
   engine_platform_destroy (-EBUSY) and should not block on another thread that is itself inside a
   call on the same unit.  By default Engine's driver serves page requests itself before the callback
   is told (the callback is a notification).  Errors: -EBADF. */
int engine_iommu_set_interrupt(engine_iommu *u, engine_interrupt_fn fn, void *user);

/* ---------------------------------------------------------------------------------------------
 * Translation and DMA (the hot path: thread-safe, lock-free, no allocation)
 * --------------------------------------------------------------------------------------------- */

/* Translates one request as the unit does (context cache, IOTLB, second-stage walk, fault
   recording).  A fault is a result, not an error: 0 with out->status == ENGINE_FAULTED and the VT-d
   reason; it is recorded in FRCD as hardware would (unless FPD or an overflow says otherwise).
   Errors: -EBADF (also when the platform was destroyed during the call), -EINVAL (NULL req/out;
   access bits beyond R|W|X, flags beyond ENGINE_REQ_ATS, pasid neither 20 bits nor ENGINE_NO_PASID). */
int engine_translate(engine_iommu *u, const engine_request *req, engine_translation *out);

/* Translates count requests into out[0..count) (same order, same answers and faults as calling
   engine_translate for each in order; only ENGINE_TR_IOTLB_HIT may differ when a page repeats inside
   one batch).  Every request is validated before any is translated: a malformed one fails the call
   with -EINVAL (its index in the message) and translates nothing.  count 0 returns 0 (reqs and out may
   then be NULL).  reqs and out must not overlap (results are written while later requests are still
   being read): -EINVAL if they do.  Errors: as engine_translate. */
int engine_translate_batch(engine_iommu *u, const engine_request *reqs, engine_translation *out, size_t count);

/* DMA of len bytes at iova between buf and host memory, through translation, as the device at
   source_id does it (pasid ENGINE_NO_PASID or 20 bits).  A device made with engine_device_create at
   that source id behind u does the DMA (a PRI device attached to a KVM domain recovers from an IO
   page fault with a page request, served by Engine, and retries once).  Without such a device the
   unit translates for the source id anyway (a source id without a context entry faults).
   *done is always written: the bytes moved.  Success: 0 and *done == len.
   A fault mid-transfer: -EFAULT, *done = bytes moved before it; the fault is recorded as hardware
   would.  A translation to an address outside host memory also stops with -EFAULT (not a VT-d fault:
   nothing recorded).  Errors: -EBADF, -EINVAL (NULL done; NULL buf with len > 0; bad pasid; the
   range wraps). */
int engine_dma_read(engine_iommu *u, uint16_t source_id, uint32_t pasid, uint64_t iova, void *buf, uint64_t len, uint64_t *done);
int engine_dma_write(engine_iommu *u, uint16_t source_id, uint32_t pasid, uint64_t iova, const void *buf, uint64_t len, uint64_t *done);
/* a fault mid-transfer: -EFAULT, *done = bytes moved before it; the fault is recorded as hardware would */

/* ---------------------------------------------------------------------------------------------
 * VMs (KVM's side: memslots and the EPT that KVM domains share)
 * --------------------------------------------------------------------------------------------- */

/* A VM whose EPT has tdp_levels (4: 48-bit guest-physical, 5: 57-bit) levels; KVM may use 4K, 2M and
   1G leaves.  Errors: -EBADF, -EINVAL (NULL out, levels not 4 or 5), -ENOMEM. */
int engine_vm_create(engine_platform *p, uint32_t tdp_levels, engine_vm **out);

/* A memslot of guest RAM at [gpa, gpa + size), backed by host frames allocated when first mapped.
   Errors: -EBADF, -EINVAL (not 4 KiB aligned, size 0, beyond the guest width), -EEXIST (overlap). */
int engine_vm_add_memory(engine_vm *vm, uint64_t gpa, uint64_t size);

/* Maps [gpa, gpa + size) in the EPT with access (ENGINE_ACCESS_*; W needs R) at the largest pages
   alignment allows; the range must lie in memslots.  IOMMU domains importing the EPT are flushed.
   Errors: -EBADF, -EINVAL (not 4 KiB aligned, size 0, bad access, outside every memslot), -ENOMEM. */
int engine_vm_map(engine_vm *vm, uint64_t gpa, uint64_t size, uint32_t access);

/* Removes every EPT mapping in [gpa, gpa + size) (splitting large pages it cuts) and flushes the KVM
   domains' IOTLB entries for it: a DMA there afterwards faults (or, from a PRI device, is faulted
   back in through a page request).  Errors: -EBADF, -EINVAL (alignment, size 0, beyond the width). */
int engine_vm_zap(engine_vm *vm, uint64_t gpa, uint64_t size);

/* Removes W from every mapping in [gpa, gpa + size), as dirty logging does, and flushes.
   Errors: as engine_vm_zap. */
int engine_vm_write_protect(engine_vm *vm, uint64_t gpa, uint64_t size);

/* Copies len bytes of guest memory at gpa into buf, as the VMM sees it: through the memslots (what
   KVM maps or has zapped does not matter; a page never touched reads as zeros), crossing pages and
   memslots, as Vm.ReadGuest does in .NET.  Errors: -EBADF, -EINVAL (NULL buf with len > 0, the
   range wraps or goes beyond the guest-physical width), -EFAULT (part of the range is in no memslot;
   nothing is copied then). */
int engine_vm_read(engine_vm *vm, uint64_t gpa, void *buf, uint64_t len);

/* (addition) Copies len bytes from buf into guest memory at gpa, through the memslots (backing is
   allocated on first touch; -ENOMEM when host memory runs out), as Vm.WriteGuest does. */
int engine_vm_write(engine_vm *vm, uint64_t gpa, const void *buf, uint64_t len);

/* Destroys the VM: its EPT and guest RAM are freed.  Errors: -EBADF, -EBUSY while a KVM domain made
   from it is still allocated (free the domain first). */
int engine_vm_destroy(engine_vm *vm);

/* ---------------------------------------------------------------------------------------------
 * Devices and domains (the driver / IOMMUFD layer)
 * --------------------------------------------------------------------------------------------- */

#define ENGINE_DEV_ATS    1u   /* Address Translation Services (a device TLB) */
#define ENGINE_DEV_PRI    2u   /* Page Request Interface (recovers from IO page faults) */
#define ENGINE_DEV_PASID  4u   /* PASID prefixes */

/* A PCI function at source_id behind IOMMU u (both of platform p).  Devices live until the platform
   is destroyed.  Errors: -EBADF (p, u), -EINVAL (NULL name/out, u of another platform, unknown
   ability bits), -EEXIST (u already has a device at source_id). */
int engine_device_create(engine_platform *p, engine_iommu *u, const char *name, uint16_t source_id, uint32_t abilities, engine_device **out);

/* A KVM domain (IOMMU_DOMAIN_KVM, the seed): its second stage is vm's EPT (one export per VM, shared
   by all its KVM domains), checked against dev's IOMMU in the seed's order.  Refusals: -ENODEV (no
   IOMMU), -EINVAL (not EPT / missing metadata; dev and vm of different platforms), -EOPNOTSUPP (the
   feature off, levels not 4/5, or an IOMMU that cannot carry it: engine_last_error then lists every
   failing condition — snoop control, scalable mode, page-walk coherency, superpages, agaw, MGAW).
   The domain is not attached yet (engine_domain_attach).  Errors also: -EBADF, -ENOMEM. */
int engine_domain_alloc_kvm(engine_device *dev, engine_vm *vm, engine_domain **out);   /* the seed's refusals; engine_last_error lists every failing condition */

/* A paging (UNMANAGED) domain whose tables the driver owns (map/unmap), for dev's IOMMU.
   Errors: -EBADF, -EINVAL (NULL out), -ENODEV, -ENOMEM. */
int engine_domain_alloc_paging(engine_device *dev, engine_domain **out);

/* Maps [iova, iova + size) to [hpa, hpa + size) with access (R and/or W) in a paging domain, at the
   largest pages alignment and the attached units allow.  Errors: -EBADF, -EINVAL (alignment, size 0,
   no R/W, beyond the width), -EEXIST (already mapped), -ENOMEM, -EOPNOTSUPP on a KVM domain (KVM owns
   its mappings: use engine_vm_map). */
int engine_domain_map(engine_domain *d, uint64_t iova, uint64_t hpa, uint64_t size, uint32_t access);

/* Unmaps [iova, iova + size) (a large page it touches goes whole) and flushes every attached unit.
   Errors: -EBADF, -EINVAL, -EOPNOTSUPP on a KVM domain. */
int engine_domain_unmap(engine_domain *d, uint64_t iova, uint64_t size);

/* Attaches dev to d: checks it can, takes a DID on dev's IOMMU, writes its context/PASID entry and
   flushes.  Errors: -EBADF, -EBUSY (already attached), -EINVAL (incompatible, other platform,
   domain freed), -ENODEV (no IOMMU; or, for a KVM domain, a device that cannot take IO page faults:
   no ENGINE_DEV_PRI / ENGINE_DEV_ATS, or a unit without page requests, as the series refuses it),
   -ENOSPC, -ENOMEM. */
int engine_domain_attach(engine_domain *d, engine_device *dev);

/* Detaches dev from d (entry cleared and flushed).  Errors: -EBADF, -EINVAL (not attached to d). */
int engine_domain_detach(engine_domain *d, engine_device *dev);

/* Frees d (a KVM domain leaves KVM's tables alone).  Errors: -EBADF, -EBUSY while devices are
   attached (the handle then stays valid). */
int engine_domain_free(engine_domain *d);

/* What `engine kvm-check` answers: whether an IOMMU with these registers can carry a KVM domain for a
   TDP of level levels whose largest page is max_huge_page_level (1 = 4K, 2 = 2M, 3 = 1G).
   0 or -EOPNOTSUPP (engine_last_error lists every failing condition; also for level not 4 or 5 and
   for registers no unit can be built from); -EINVAL for max_huge_page_level outside 1..3. */
int engine_kvm_check(uint64_t cap, uint64_t ecap, uint32_t level, uint32_t max_huge_page_level);  /* 0 or -EOPNOTSUPP */

/* ---------------------------------------------------------------------------------------------
 * (addition) Layout check: the library reports the sizes and offsets it was built with
 * --------------------------------------------------------------------------------------------- */

enum engine_layout_item {
    ENGINE_LAYOUT_REQUEST_SIZE = 0,
    ENGINE_LAYOUT_REQUEST_IOVA,
    ENGINE_LAYOUT_REQUEST_PASID,
    ENGINE_LAYOUT_REQUEST_SOURCE_ID,
    ENGINE_LAYOUT_REQUEST_ACCESS,
    ENGINE_LAYOUT_REQUEST_FLAGS,
    ENGINE_LAYOUT_TRANSLATION_SIZE,
    ENGINE_LAYOUT_TRANSLATION_HPA,
    ENGINE_LAYOUT_TRANSLATION_STATUS,
    ENGINE_LAYOUT_TRANSLATION_FAULT_REASON,
    ENGINE_LAYOUT_TRANSLATION_PAGE_SHIFT,
    ENGINE_LAYOUT_TRANSLATION_PERMISSIONS,
    ENGINE_LAYOUT_TRANSLATION_DOMAIN_ID,
    ENGINE_LAYOUT_TRANSLATION_FLAGS,
    ENGINE_LAYOUT_IOMMU_OPTIONS_SIZE,
    ENGINE_LAYOUT_IOMMU_OPTIONS_STRUCT_SIZE,
    ENGINE_LAYOUT_IOMMU_OPTIONS_IOTLB_SETS,
    ENGINE_LAYOUT_IOMMU_OPTIONS_CONTEXT_CACHE_SLOTS,
    ENGINE_LAYOUT_IOMMU_OPTIONS_FLAGS,
    ENGINE_LAYOUT_PLATFORM_OPTIONS_SIZE,
    ENGINE_LAYOUT_PLATFORM_OPTIONS_STRUCT_SIZE,
    ENGINE_LAYOUT_PLATFORM_OPTIONS_FLAGS,
    ENGINE_LAYOUT_PLATFORM_OPTIONS_MEMORY_SIZE,
    ENGINE_LAYOUT_PLATFORM_OPTIONS_MEMORY_BASE,
    ENGINE_LAYOUT_COUNT
};

/* The library's size or offset (bytes) of item, measured on its own structs.  Errors: -EINVAL (NULL
   value, unknown item). */
int engine_layout(uint32_t item, uint32_t *value);

/* Compares this header's layout, as the including compiler lays it out, with the library's:
   0 when every item matches, otherwise -(1 + the first mismatching item).  Call it once at start-up. */
static inline int engine_layout_matches(void)
{
#define ENGINE_LAYOUT_ROW_(item, v) { (uint32_t)(item), (uint32_t)(v) }
    static const struct { uint32_t item, value; } expected[] = {
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_SIZE, sizeof(engine_request)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_IOVA, offsetof(engine_request, iova)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_PASID, offsetof(engine_request, pasid)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_SOURCE_ID, offsetof(engine_request, source_id)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_ACCESS, offsetof(engine_request, access)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_REQUEST_FLAGS, offsetof(engine_request, flags)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_SIZE, sizeof(engine_translation)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_HPA, offsetof(engine_translation, hpa)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_STATUS, offsetof(engine_translation, status)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_FAULT_REASON, offsetof(engine_translation, fault_reason)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_PAGE_SHIFT, offsetof(engine_translation, page_shift)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_PERMISSIONS, offsetof(engine_translation, permissions)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_DOMAIN_ID, offsetof(engine_translation, domain_id)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_TRANSLATION_FLAGS, offsetof(engine_translation, flags)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_IOMMU_OPTIONS_SIZE, sizeof(engine_iommu_options)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_IOMMU_OPTIONS_STRUCT_SIZE, offsetof(engine_iommu_options, struct_size)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_IOMMU_OPTIONS_IOTLB_SETS, offsetof(engine_iommu_options, iotlb_sets)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_IOMMU_OPTIONS_CONTEXT_CACHE_SLOTS, offsetof(engine_iommu_options, context_cache_slots)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_IOMMU_OPTIONS_FLAGS, offsetof(engine_iommu_options, flags)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_PLATFORM_OPTIONS_SIZE, sizeof(engine_platform_options)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_PLATFORM_OPTIONS_STRUCT_SIZE, offsetof(engine_platform_options, struct_size)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_PLATFORM_OPTIONS_FLAGS, offsetof(engine_platform_options, flags)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_PLATFORM_OPTIONS_MEMORY_SIZE, offsetof(engine_platform_options, memory_size)),
        ENGINE_LAYOUT_ROW_(ENGINE_LAYOUT_PLATFORM_OPTIONS_MEMORY_BASE, offsetof(engine_platform_options, memory_base)),
    };
#undef ENGINE_LAYOUT_ROW_
    uint32_t v;
    if (sizeof expected / sizeof expected[0] != ENGINE_LAYOUT_COUNT)
        return -(1 + (int)ENGINE_LAYOUT_COUNT);
    for (uint32_t i = 0; i < ENGINE_LAYOUT_COUNT; i++)
        if (engine_layout(expected[i].item, &v) != 0 || v != expected[i].value)
            return -(1 + (int)expected[i].item);
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_H */
