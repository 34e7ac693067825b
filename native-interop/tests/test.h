/* A minimal test harness: TEST(name) defines a case and registers it; `engine_tests NAME` runs one
   case (CTest runs each as its own test), `engine_tests` with no argument runs them all.
   CHECK* report file:line, the expression, and the library's last error, then fail the case. */
#ifndef ENGINE_TEST_H
#define ENGINE_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
extern int test_failures;

#define TEST(name)                                                                 \
    static void test_##name(void);                                                 \
    __attribute__((constructor)) static void register_##name(void)                 \
    {                                                                              \
        test_register(#name, test_##name);                                         \
    }                                                                              \
    static void test_##name(void)

#define FAIL_(...)                                                                 \
    do {                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                            \
        fprintf(stderr, __VA_ARGS__);                                              \
        fprintf(stderr, "\n    last error: %s\n", engine_last_error());            \
        test_failures++;                                                           \
        return;                                                                    \
    } while (0)

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond))                                                               \
            FAIL_("CHECK(%s) failed", #cond);                                      \
    } while (0)

/* An int call that must return exactly `expected` (0, -EINVAL, ...). */
#define CHECK_RC(expected, call)                                                   \
    do {                                                                           \
        int rc_ = (call);                                                          \
        if (rc_ != (expected))                                                     \
            FAIL_("%s returned %d (%s), expected %d (%s)", #call, rc_,             \
                  engine_strerror(rc_), (int)(expected), engine_strerror(expected)); \
    } while (0)

#define CHECK_OK(call) CHECK_RC(0, call)

#define CHECK_EQ_U64(expected, actual)                                             \
    do {                                                                           \
        uint64_t e_ = (uint64_t)(expected), a_ = (uint64_t)(actual);               \
        if (e_ != a_)                                                              \
            FAIL_("%s is 0x%" PRIx64 ", expected %s = 0x%" PRIx64, #actual, a_,    \
                  #expected, e_);                                                  \
    } while (0)

/* The last error must mention `text`. */
#define CHECK_ERROR_MENTIONS(text)                                                 \
    do {                                                                           \
        if (strstr(engine_last_error(), (text)) == NULL)                           \
            FAIL_("the last error does not mention \"%s\"", (text));               \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Shared fixtures (fixtures.c)                                                                */
/* ------------------------------------------------------------------------------------------ */

#define BDF(bus, dev, fn) ((uint16_t)((bus) << 8 | (dev) << 3 | (fn)))

/* VT-d register offsets used by the tests (the spec's DMAR_*_REG). */
enum {
    REG_VER = 0x00, REG_CAP = 0x08, REG_ECAP = 0x10, REG_GCMD = 0x18, REG_GSTS = 0x1C,
    REG_RTADDR = 0x20, REG_CCMD = 0x28, REG_FSTS = 0x34, REG_FECTL = 0x38, REG_IQH = 0x80,
    REG_IQT = 0x88, REG_IQA = 0x90, REG_ICS = 0x9C, REG_IECTL = 0xA0, REG_PECTL = 0xE0,
};
#define GCMD_TE   (1u << 31)
#define GCMD_SRTP (1u << 30)
#define GCMD_QIE  (1u << 26)
#define GCMD_PERSISTENT (GCMD_TE | GCMD_QIE | (1u << 25) | (1u << 23))

/* A platform with one IOMMU of `preset`, one device at `sid` with a paging domain attached. */
typedef struct {
    engine_platform *p;
    engine_iommu *u;
    engine_device *dev;
    engine_domain *dom;
    uint64_t ram_hpa;     /* 4 MiB of Engine RAM, 2 MiB aligned: buffers the domain maps */
    uint8_t *ram;
} paging_fixture;

int paging_fixture_open(paging_fixture *f, const char *preset, uint16_t sid);
void paging_fixture_close(paging_fixture *f);

/* A translated read request without PASID. */
engine_request read_request(uint16_t sid, uint64_t iova);

#endif
