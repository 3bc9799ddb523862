/* test_common.c - the error table, buffers, codecs, time and random tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

static void err_table_is_consistent(void **state)
{
    for (int c = 0; c < SP_E__COUNT; c++) {
        const char *w = sp_err_wire((enum sp_err_code)c);
        assert_int_equal(sp_err_from_wire(w, strlen(w)), c);
        assert_true(sp_err_http_status((enum sp_err_code)c) >= 200);
    }
    assert_int_equal(sp_err_http_status(SP_E_SECRET_NOT_FOUND), 404);
    assert_int_equal(sp_err_http_status(SP_E_PROXY_AUTH_REQUIRED), 407);
    assert_int_equal(sp_err_http_status(SP_E_STORE_UNAVAILABLE), 503);
    assert_int_equal(sp_err_from_wire("nope", 4), -1);
}

/* The README lists every wire code the table has (DESIGN: one table). */
static void readme_lists_every_error_code(void **state)
{
    char path[1024], *text;
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/README.md", getenv("SP_SOURCE_DIR"));
    f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    for (int c = 1; c < SP_E__COUNT; c++) {
        char needle[80];
        snprintf(needle, sizeof(needle), "`%s`", sp_err_wire((enum sp_err_code)c));
        if (!strstr(text, needle))
            fail_msg("README.md does not list error code %s", needle);
    }
    free(text);
}

static void buf_refuses_to_pass_its_max(void **state)
{
    struct sp_buf b;
    struct sp_err err;

    sp_buf_init(&b, 10, 1);
    assert_int_equal(sp_buf_add(&b, "0123456789", 10, &err), 0);
    assert_int_equal(sp_buf_add(&b, "x", 1, &err), -1);
    assert_int_equal(err.code, SP_E_PAYLOAD_TOO_LARGE);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    sp_buf_free(&b);
    sp_buf_init(&b, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sp_buf_printf(&b, &err, "%d,", i), 0);
    assert_true(b.len > 2000);
    sp_buf_free(&b);
}

static void base64_round_trips_every_length(void **state)
{
    unsigned char in[300], out[400];
    char enc[500];
    size_t n;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len < sizeof(in); len++) {
        size_t e = sp_base64_encode(enc, in, len);
        assert_int_equal(e, sp_base64_enc_len(len));
        assert_int_equal(sp_base64_decode(out, &n, enc, e), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
    }
    assert_int_equal(sp_base64_decode(out, &n, "a", 1), -1);
    assert_int_equal(sp_base64_decode(out, &n, "ab!d", 4), -1);
    /* URL-safe alphabet is accepted. */
    assert_int_equal(sp_base64_decode(out, &n, "-_8", 3), 0);
}

static void names_and_times(void **state)
{
    int64_t ms;
    char buf[200];

    assert_true(sp_valid_name("A-z_09", 6));
    assert_false(sp_valid_name("", 0));
    assert_false(sp_valid_name("bad key", 7));
    assert_false(sp_valid_name("a.b", 3));
    memset(buf, 'a', 129);
    assert_false(sp_valid_name(buf, 129));
    assert_true(sp_valid_name(buf, 128));

    assert_int_equal(sp_time_parse("2030-01-02T03:04:05Z", &ms), 0);
    assert_int_equal(ms, 1893553445000LL);
    assert_int_equal(sp_time_parse("2030-01-02T05:04:05.250+02:00", &ms), 0);
    assert_int_equal(ms, 1893553445250LL);
    sp_time_format(buf, sizeof(buf), ms);
    assert_string_equal(buf, "2030-01-02T03:04:05.250Z");
    assert_int_equal(sp_time_parse("2030-13-02T03:04:05Z", &ms), -1);
    assert_int_equal(sp_time_parse("2030-01-02 03:04:05", &ms), -1);
    assert_int_equal(sp_time_parse("2030-01-02T03:04:05Zjunk", &ms), -1);
}

static void random_tokens_are_url_safe_and_distinct(void **state)
{
    char a[64], b[64];
    struct sp_err err;

    assert_int_equal(sp_random_token(a, sizeof(a), 32, &err), 0);
    assert_int_equal(sp_random_token(b, sizeof(b), 32, &err), 0);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    assert_true(sp_valid_name(a, strlen(a)));
    assert_int_equal(sp_random_token(a, 10, 32, &err), -1);
}

static void json_escape_and_ct_compare(void **state)
{
    struct sp_buf b;

    sp_buf_init(&b, 0, 0);
    assert_int_equal(sp_json_escape(&b, "a\"b\\c\n\x01\xc3\xa9", 9, NULL), 0);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001\xc3\xa9");
    sp_buf_free(&b);
    assert_true(sp_ct_eq("abc", 3, "abc", 3));
    assert_false(sp_ct_eq("abc", 3, "abd", 3));
    assert_false(sp_ct_eq("abc", 3, "ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_table_is_consistent),
        cmocka_unit_test(readme_lists_every_error_code),
        cmocka_unit_test(buf_refuses_to_pass_its_max),
        cmocka_unit_test(base64_round_trips_every_length),
        cmocka_unit_test(names_and_times),
        cmocka_unit_test(random_tokens_are_url_safe_and_distinct),
        cmocka_unit_test(json_escape_and_ct_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
