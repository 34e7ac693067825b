/* The test runner and the shared fixtures. */
#include "test.h"

#define MAX_TESTS 256

static struct { const char *name; test_fn fn; } tests[MAX_TESTS];
static int test_count;
int test_failures;

void test_register(const char *name, test_fn fn)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[test_count].name = name;
    tests[test_count].fn = fn;
    test_count++;
}

int main(int argc, char **argv)
{
    if (engine_abi_version() != ENGINE_ABI_VERSION) {
        fprintf(stderr, "libengine implements ABI %u, the header %u\n", engine_abi_version(), ENGINE_ABI_VERSION);
        return 1;
    }
    int ran = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        int before = test_failures;
        tests[i].fn();
        ran++;
        if (test_failures != before) {
            failed++;
            fprintf(stderr, "FAILED %s\n", tests[i].name);
        } else {
            printf("ok %s\n", tests[i].name);
        }
    }
    if (ran == 0) {
        fprintf(stderr, "no test called %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    return failed == 0 ? 0 : 1;
}

engine_request read_request(uint16_t sid, uint64_t iova)
{
    engine_request r = { .iova = iova, .pasid = ENGINE_NO_PASID, .source_id = sid, .access = ENGINE_ACCESS_READ, .flags = 0 };
    return r;
}

int paging_fixture_open(paging_fixture *f, const char *preset, uint16_t sid)
{
    memset(f, 0, sizeof *f);
    int rc;
    void *host;
    if ((rc = engine_platform_create(&f->p)) != 0
        || (rc = engine_iommu_create_preset(f->p, "dmar0", preset, &f->u)) != 0
        || (rc = engine_device_create(f->p, f->u, "nic", sid, 0, &f->dev)) != 0
        || (rc = engine_domain_alloc_paging(f->dev, &f->dom)) != 0
        || (rc = engine_domain_attach(f->dom, f->dev)) != 0
        || (rc = engine_platform_alloc_ram(f->p, 4u << 20, 2u << 20, &f->ram_hpa, &host)) != 0) {
        fprintf(stderr, "fixture: %s (%s)\n", engine_strerror(rc), engine_last_error());
        return rc;
    }
    f->ram = host;
    return 0;
}

void paging_fixture_close(paging_fixture *f)
{
    if (f->p != NULL && engine_platform_destroy(f->p) != 0)
        fprintf(stderr, "fixture close: %s\n", engine_last_error());
    memset(f, 0, sizeof *f);
}
