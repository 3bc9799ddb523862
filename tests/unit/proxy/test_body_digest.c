/*
 * test_body_digest.c - the digests recomputed after substitution: each
 * algorithm against its published check value ("123456789"), header names
 * in any case, unknown algorithms and other headers left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "proxy/body_digest.c"

static int value_is(const struct sp_upstream_header *h, const char *want)
{
    return h->value_len == strlen(want) && memcmp(h->value, want, h->value_len) == 0;
}

static void every_algorithm_matches_its_check_value(void **state)
{
    struct sp_upstream_header hs[] = {
        {"Host", 4, "s3.amazonaws.com", 16},          {"Content-MD5", 11, "stale", 5},
        {"x-amz-checksum-crc32", 20, "stale", 5},     {"X-Amz-Checksum-CRC32C", 21, "stale", 5},
        {"x-amz-checksum-crc64nvme", 24, "stale", 5}, {"x-amz-checksum-sha1", 19, "stale", 5},
        {"x-amz-checksum-sha256", 21, "stale", 5},    {"x-amz-checksum-algorithm", 24, "CRC32", 5},
        {"x-amz-checksum-future", 21, "kept", 4},
    };
    struct sp_body_digests d;

    (void)state;
    assert_int_equal(sp_body_digests_refresh(hs, SP_ARRAY_LEN(hs), "123456789", 9, &d), 6);
    assert_true(value_is(&hs[0], "s3.amazonaws.com"));
    assert_true(value_is(&hs[1], "JfnnlDI7RTiF9RgfG2JNCw=="));
    assert_true(value_is(&hs[2], "y/Q5Jg=="));
    assert_true(value_is(&hs[3], "4waSgw=="));
    assert_true(value_is(&hs[4], "rosUhgp5mIg="));
    assert_true(value_is(&hs[5], "98O8HYCOBHMq32eZZczDTKeuNEE="));
    assert_true(value_is(&hs[6], "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU="));
    assert_true(value_is(&hs[7], "CRC32"));
    assert_true(value_is(&hs[8], "kept"));
}

static void an_empty_body_has_digests_too(void **state)
{
    struct sp_upstream_header hs[] = {{"x-amz-checksum-crc32", 20, "stale", 5}};
    struct sp_body_digests d;

    (void)state;
    assert_int_equal(sp_body_digests_refresh(hs, 1, NULL, 0, &d), 1);
    assert_true(value_is(&hs[0], "AAAAAA=="));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_algorithm_matches_its_check_value),
        cmocka_unit_test(an_empty_body_has_digests_too),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
