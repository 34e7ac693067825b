/*
 * abi_bench.c — what the C ABI costs on the hot path.
 *
 * The working set and method of the anchors (shared/anchors: common.h gen_ws / gen_stream) and of
 * the managed `engine bench --workload iotlb-hit iotlb-hit-batch` (src/Engine.Workloads, HitSetup):
 * one Granite Rapids unit ("server" preset) with a 16384-set IOTLB, four devices 01..04:00.0 each in
 * its own paging domain (DIDs 1..4 as the anchors' 4 domains), the anchors' 2048 distinct (domain,
 * 36-bit VPN) keys mapped as 4 KiB pages, and their 65,536-request stream (random picks, random page
 * offsets), all IOTLB hits after warm-up (checked).  Each row: one warm-up run, then 5 timed runs of
 * `passes` passes over the stream; the median ns per request, and min .. max.
 *
 *   abi_bench            full run (~10 s)
 *   abi_bench --quick    one short run of each row (a smoke test for CTest)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

#define KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")
#define NREPS 5
#define WS_N 2048
#define STREAM_LEN (1u << 16)
#define TLB_SETS 4096
#define TLB_WAYS 4
#define BATCH 64

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* common.h gen_ws: 2048 distinct (did 1..4, 36-bit vpn) keys, none overflowing a 4096 x 4 set. */
typedef struct { uint16_t did; uint64_t vpn; } key_t_;
static void gen_ws(key_t_ *ws, int n, uint64_t seed)
{
    uint8_t *occ = calloc(TLB_SETS, 1);
    uint64_t (*seen)[TLB_WAYS] = calloc(TLB_SETS, sizeof *seen);
    int k = 0;
    while (k < n) {
        uint64_t r = sm64(&seed);
        unsigned did = 1 + (unsigned)(r & 3);
        uint64_t vpn = (r >> 8) & ((1ULL << 36) - 1);
        uint32_t s = (uint32_t)(vpn ^ (vpn >> 12) ^ ((uint64_t)did << 7)) & (TLB_SETS - 1);
        uint64_t key = ((uint64_t)did << 40) | vpn;
        int dup = 0;
        for (int w = 0; w < occ[s]; w++)
            dup |= seen[s][w] == key;
        if (dup || occ[s] == TLB_WAYS)
            continue;
        seen[s][occ[s]++] = key;
        ws[k].did = (uint16_t)did;
        ws[k].vpn = vpn;
        k++;
    }
    free(occ);
    free(seen);
}

#define TRY(call)                                                                                   \
    do {                                                                                            \
        int rc_ = (call);                                                                           \
        if (rc_ != 0) {                                                                             \
            fprintf(stderr, "%s: %s (%s)\n", #call, engine_strerror(rc_), engine_last_error());     \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

static engine_iommu *unit;
static engine_request *stream;
static engine_translation *results;
static size_t passes;

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef double (*bench_fn)(void);

static void row(const char *name, bench_fn fn, int reps)
{
    double v[NREPS];
    fn();   /* warm-up */
    for (int r = 0; r < reps; r++)
        v[r] = fn();
    qsort(v, (size_t)reps, sizeof v[0], cmp_dbl);
    printf("| %-48s | %8.2f | %8.1f | %6.2f .. %-6.2f |\n", name, v[reps / 2], 1000.0 / v[reps / 2], v[0], v[reps - 1]);
    fflush(stdout);
}

__attribute__((noinline)) static double run_single(void)
{
    uint64_t acc = 0;
    engine_translation t;
    double t0 = now_ns();
    for (size_t p = 0; p < passes; p++)
        for (size_t i = 0; i < STREAM_LEN; i++) {
            engine_translate(unit, &stream[i], &t);
            acc += t.hpa;
        }
    double dt = now_ns() - t0;
    KEEP(acc);
    return dt / (double)(passes * STREAM_LEN);
}

__attribute__((noinline)) static double run_batch(void)
{
    uint64_t acc = 0;
    double t0 = now_ns();
    for (size_t p = 0; p < passes; p++)
        for (size_t i = 0; i < STREAM_LEN; i += BATCH) {
            engine_translate_batch(unit, &stream[i], &results[i], BATCH);
            for (int j = 0; j < BATCH; j++)
                acc += results[i + j].hpa;
        }
    double dt = now_ns() - t0;
    KEEP(acc);
    return dt / (double)(passes * STREAM_LEN);
}

/* The floor of any export: a call that does nothing but cross into the library and back. */
__attribute__((noinline)) static double run_empty(void)
{
    uint64_t acc = 0;
    double t0 = now_ns();
    for (size_t p = 0; p < passes; p++)
        for (size_t i = 0; i < STREAM_LEN; i++)
            acc += engine_abi_version();
    double dt = now_ns() - t0;
    KEEP(acc);
    return dt / (double)(passes * STREAM_LEN);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    passes = quick ? 2 : 64;
    int reps = quick ? 1 : NREPS;
    if (engine_abi_version() != ENGINE_ABI_VERSION || engine_layout_matches() != 0) {
        fprintf(stderr, "libengine does not match engine.h\n");
        return 1;
    }

    engine_platform *p;
    TRY(engine_platform_create(&p));
    engine_iommu_options o = { sizeof o, 16384, 0, 0 };
    TRY(engine_iommu_create_ex(p, "dmar0", 0xf9ed008cee780c66ull, 0x3fef9ea6f0efdfull, &o, &unit));
    engine_device *dev[5];
    engine_domain *dom[5];
    for (int did = 1; did <= 4; did++) {
        char name[8];
        snprintf(name, sizeof name, "dev%d", did);
        TRY(engine_device_create(p, unit, name, (uint16_t)(did << 8), 0, &dev[did]));
        TRY(engine_domain_alloc_paging(dev[did], &dom[did]));
        TRY(engine_domain_attach(dom[did], dev[did]));
    }
    static key_t_ ws[WS_N];
    gen_ws(ws, WS_N, 0x5EED0001ULL);
    for (int k = 0; k < WS_N; k++)   /* HPA: k << 12, as the managed workload maps them */
        TRY(engine_domain_map(dom[ws[k].did], ws[k].vpn << 12, ((uint64_t)k << 12) & ((1ull << 45) - 1), 4096, ENGINE_ACCESS_READ | ENGINE_ACCESS_WRITE));
    stream = aligned_alloc(64, STREAM_LEN * sizeof *stream);
    results = aligned_alloc(64, STREAM_LEN * sizeof *results);
    uint64_t seed = 0x5EED0002ULL;
    for (size_t i = 0; i < STREAM_LEN; i++) {
        uint64_t r = sm64(&seed);
        const key_t_ *k = &ws[(r >> 16) % WS_N];
        stream[i] = (engine_request){ .iova = (k->vpn << 12) | (r & 0xFFF), .pasid = ENGINE_NO_PASID,
                                      .source_id = (uint16_t)(k->did << 8), .access = ENGINE_ACCESS_READ };
    }
    /* warm the IOTLB, then require a pass of all hits, each to the right page */
    TRY(engine_translate_batch(unit, stream, results, STREAM_LEN));
    TRY(engine_translate_batch(unit, stream, results, STREAM_LEN));
    for (size_t i = 0; i < STREAM_LEN; i++) {
        if (results[i].status != ENGINE_TRANSLATED || !(results[i].flags & ENGINE_TR_IOTLB_HIT)) {
            fprintf(stderr, "setup: request %zu is not an IOTLB hit (status %u, flags %u)\n", i, results[i].status, results[i].flags);
            return 1;
        }
    }

    printf("# engine C ABI, %s; %zu passes of %u requests per run, median of %d runs after a warm-up\n",
           quick ? "quick smoke run" : "full run", passes, STREAM_LEN, reps);
    printf("| benchmark | ns/op (median) | Mops/s | range ns/op |\n|---|---:|---:|---|\n");
    row("abi-empty-call (engine_abi_version)", run_empty, reps);
    row("abi-iotlb-hit (engine_translate)", run_single, reps);
    row("abi-iotlb-hit-batch (engine_translate_batch x64)", run_batch, reps);
    TRY(engine_platform_destroy(p));
    free(stream);
    free(results);
    return 0;
}
