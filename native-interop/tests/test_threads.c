/* Concurrency: translation from several threads, and a platform destroyed under translating threads. */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define SID BDF(1, 0, 0)

typedef struct {
    engine_iommu *u;
    uint64_t expected_base;
    atomic_int *stop;
    atomic_long translated;
    long bad_handles, wrong, other;
} worker;

static void *translate_loop(void *arg)
{
    worker *w = arg;
    engine_request reqs[64];
    engine_translation out[64];
    for (int i = 0; i < 64; i++)
        reqs[i] = read_request(SID, 0x100000 + (uint64_t)i * 4096 + 8);
    while (!atomic_load(w->stop)) {
        int rc = engine_translate_batch(w->u, reqs, out, 64);
        if (rc == -EBADF) {
            w->bad_handles++;
            break;                                   /* the platform is gone: every later call is -EBADF too */
        }
        if (rc != 0) {
            w->other++;
            break;
        }
        for (int i = 0; i < 64; i++)
            if (out[i].status != ENGINE_TRANSLATED || out[i].hpa != w->expected_base + (uint64_t)i * 4096 + 8)
                w->wrong++;
        engine_translation one;
        rc = engine_translate(w->u, &reqs[5], &one);
        if (rc == -EBADF) {
            w->bad_handles++;
            break;
        }
        atomic_fetch_add(&w->translated, 65);
    }
    return NULL;
}

TEST(concurrent_translation_agrees)
{
    paging_fixture f;
    CHECK_OK(paging_fixture_open(&f, "server", SID));
    CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 64 * 4096, ENGINE_ACCESS_READ));
    atomic_int stop = 0;
    worker w[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (worker){ .u = f.u, .expected_base = f.ram_hpa, .stop = &stop };
        CHECK(pthread_create(&t[i], NULL, translate_loop, &w[i]) == 0);
    }
    struct timespec ts = { 0, 200 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].translated > 0);
        CHECK(w[i].wrong == 0 && w[i].other == 0 && w[i].bad_handles == 0);
    }
    paging_fixture_close(&f);
}

TEST(destroy_under_translating_threads_is_ebadf_not_a_crash)
{
    for (int round = 0; round < 3; round++) {
        paging_fixture f;
        CHECK_OK(paging_fixture_open(&f, "server", SID));
        CHECK_OK(engine_domain_map(f.dom, 0x100000, f.ram_hpa, 64 * 4096, ENGINE_ACCESS_READ));
        atomic_int stop = 0;
        worker w[2];
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            w[i] = (worker){ .u = f.u, .expected_base = f.ram_hpa, .stop = &stop };
            CHECK(pthread_create(&t[i], NULL, translate_loop, &w[i]) == 0);
        }
        /* destroy only once every worker is translating (the machine may be slow to start them) */
        struct timespec ts = { 0, 1000 * 1000 };
        for (int spins = 0; spins < 30000 && (atomic_load(&w[0].translated) == 0 || atomic_load(&w[1].translated) == 0); spins++)
            nanosleep(&ts, NULL);
        CHECK_OK(engine_platform_destroy(f.p));
        /* the workers see -EBADF and stop on their own */
        for (int i = 0; i < 2; i++) {
            pthread_join(t[i], NULL);
            CHECK(w[i].translated > 0);
            CHECK(w[i].wrong == 0 && w[i].other == 0);
            CHECK(w[i].bad_handles == 1);
        }
    }
}
