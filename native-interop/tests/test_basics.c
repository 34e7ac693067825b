/* Version, error strings, the per-thread last error, and struct layouts against the C# side. */
#include <pthread.h>
#include <stddef.h>

#include "test.h"

_Static_assert(sizeof(engine_request) == 16, "engine_request is 16 bytes");
_Static_assert(sizeof(engine_translation) == 16, "engine_translation is 16 bytes");
_Static_assert(offsetof(engine_request, pasid) == 8 && offsetof(engine_request, source_id) == 12
               && offsetof(engine_request, access) == 14 && offsetof(engine_request, flags) == 15, "engine_request layout");
_Static_assert(offsetof(engine_translation, status) == 8 && offsetof(engine_translation, fault_reason) == 9
               && offsetof(engine_translation, page_shift) == 10 && offsetof(engine_translation, permissions) == 11
               && offsetof(engine_translation, domain_id) == 12 && offsetof(engine_translation, flags) == 14,
               "engine_translation layout");

TEST(abi_version_is_1)
{
    CHECK(ENGINE_ABI_VERSION == 1);
    CHECK(engine_abi_version() == ENGINE_ABI_VERSION);
}

TEST(layout_matches_the_library)
{
    /* The library measures its own structs; every item must equal what this compiler laid out. */
    int rc = engine_layout_matches();
    if (rc != 0)
        FAIL_("layout item %d differs between engine.h and libengine", -rc - 1);
    uint32_t v = 0;
    CHECK_OK(engine_layout(ENGINE_LAYOUT_REQUEST_SIZE, &v));
    CHECK(v == sizeof(engine_request));
    CHECK_OK(engine_layout(ENGINE_LAYOUT_TRANSLATION_DOMAIN_ID, &v));
    CHECK(v == offsetof(engine_translation, domain_id));
    CHECK_OK(engine_layout(ENGINE_LAYOUT_IOMMU_OPTIONS_FLAGS, &v));
    CHECK(v == offsetof(engine_iommu_options, flags));
}

/* A struct laid out differently from the contract: the check must notice (it is what catches a
   header and a library that disagree). */
TEST(layout_check_detects_a_mismatch)
{
    typedef struct { uint64_t iova; uint16_t source_id; uint32_t pasid; uint8_t access, flags; } wrong_request;
    uint32_t v = 0;
    CHECK_OK(engine_layout(ENGINE_LAYOUT_REQUEST_SOURCE_ID, &v));
    CHECK(v != offsetof(wrong_request, source_id));
    CHECK_OK(engine_layout(ENGINE_LAYOUT_REQUEST_PASID, &v));
    CHECK(v != offsetof(wrong_request, pasid));
    CHECK_RC(-EINVAL, engine_layout(ENGINE_LAYOUT_COUNT, &v));
    CHECK_RC(-EINVAL, engine_layout(0xFFFFFFFFu, &v));
    CHECK_RC(-EINVAL, engine_layout(ENGINE_LAYOUT_REQUEST_SIZE, NULL));
}

TEST(strerror_names_every_code)
{
    const int codes[] = { EINVAL, ENOMEM, ENODEV, EOPNOTSUPP, EBUSY, EEXIST, EFAULT, EBADF, ENOSPC, EIO };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *neg = engine_strerror(-codes[i]), *pos = engine_strerror(codes[i]);
        CHECK(neg != NULL && pos != NULL);
        CHECK(strcmp(neg, pos) == 0);
        CHECK(strcmp(neg, "unknown error") != 0);
    }
    CHECK(strstr(engine_strerror(-EBADF), "EBADF") != NULL);
    CHECK(strcmp(engine_strerror(0), "Success") == 0);
    CHECK(strcmp(engine_strerror(-12345), "unknown error") == 0);
    /* Static strings: the same pointer every time. */
    CHECK(engine_strerror(-EINVAL) == engine_strerror(-EINVAL));
}

static void *fail_on_other_thread(void *arg)
{
    engine_platform_destroy(NULL);              /* -EBADF: "p is NULL" */
    const char *mine = engine_last_error();
    *(int *)arg = strstr(mine, "engine_platform_destroy") != NULL;
    return NULL;
}

TEST(last_error_is_per_thread_and_never_null)
{
    CHECK(engine_last_error() != NULL);
    CHECK_RC(-EINVAL, engine_platform_create(NULL));
    CHECK_ERROR_MENTIONS("engine_platform_create");
    CHECK_ERROR_MENTIONS("out is NULL");

    int other_saw_its_own = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fail_on_other_thread, &other_saw_its_own) == 0);
    pthread_join(t, NULL);
    CHECK(other_saw_its_own);
    /* This thread's message did not change. */
    CHECK_ERROR_MENTIONS("engine_platform_create");

    /* A successful call leaves it as it was. */
    CHECK(engine_abi_version() == 1);
    CHECK_ERROR_MENTIONS("engine_platform_create");
}

static void *fresh_thread(void *arg)
{
    const char *e = engine_last_error();
    *(int *)arg = e != NULL && strlen(e) > 0;
    return NULL;
}

TEST(last_error_before_any_failure_is_a_fixed_text)
{
    int ok = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fresh_thread, &ok) == 0);
    pthread_join(t, NULL);
    CHECK(ok);
}
