/* test_encode.c - substitution: every place x every spelling x every
 * encoding, unsafe header values, JSON string state, Basic credentials,
 * failure paths, and substitute-then-decode over random values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/text.h"

#define TOKEN22 "AbCdEfGhIjKlMnOpQrStUv"

/* The lookup the tests give: named keys and one token, from a table. */
struct entry {
    const char *key;
    const unsigned char *value;
    size_t len;
};

struct table {
    struct entry e[8];
    size_t n;
    int calls;
};

static int on_lookup(void *ctx, const struct sp_text_ref *ref, const unsigned char **value,
                     size_t *vlen, struct sp_err *err)
{
    struct table *t = ctx;

    t->calls++;
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->e[i].key) == ref->key_len &&
            memcmp(t->e[i].key, ref->key, ref->key_len) == 0) {
            *value = t->e[i].value;
            *vlen = t->e[i].len;
            return 0;
        }
    }
    return sp_err_set(err, SP_E_SECRET_NOT_FOUND, "Secret '%.*s' not found", (int)ref->key_len,
                      ref->key);
}

static void table_set(struct table *t, const char *key, const void *v, size_t len)
{
    t->e[t->n].key = key;
    t->e[t->n].value = v;
    t->e[t->n].len = len;
    t->n++;
}

/* Substitute s (exact-size heap copy) in place; returns the count and
 * leaves the output in out (caller frees). */
static int subst(enum sp_text_place place, const char *s, size_t n, struct table *t,
                 struct sp_buf *out, struct sp_err *err)
{
    char *p = malloc(n ? n : 1);
    int rc;

    assert_non_null(p);
    memcpy(p, s, n);
    sp_buf_init(out, 1 << 20, 0);
    rc = sp_text_subst(place, p, n, on_lookup, t, out, err);
    free(p);
    if (rc >= 0)
        assert_true(out->sensitive);
    return rc;
}

static void expect_subst(enum sp_text_place place, struct table *t, const char *in,
                         const char *want, int count)
{
    struct sp_buf out;
    struct sp_err err = {0};
    int rc = subst(place, in, strlen(in), t, &out, &err);

    if (rc < 0)
        fail_msg("place %d, '%s': %s", place, in, err.msg);
    assert_int_equal(rc, count);
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        fail_msg("place %d, '%s':\n got '%.*s'\nwant '%s'", place, in, (int)out.len, out.data,
                 want);
    sp_buf_free(&out);
}

static void expect_error(enum sp_text_place place, struct table *t, const char *in,
                         enum sp_err_code code, const char *msg_part)
{
    struct sp_buf out;
    struct sp_err err = {0};

    assert_int_equal(subst(place, in, strlen(in), t, &out, &err), -1);
    assert_int_equal(err.code, code);
    if (msg_part && !strstr(err.msg, msg_part))
        fail_msg("message '%s' lacks '%s'", err.msg, msg_part);
    assert_int_equal(out.len, 0);
    sp_buf_free(&out);
}

/* A value with every character that matters to some encoding. */
#define VAL "a b&c=d+e%f/g\"h\\i~\xc3\xa9"
#define VAL_PCT "a%20b%26c%3Dd%2Be%25f%2Fg%22h%5Ci~%C3%A9"
#define VAL_FORM "a+b%26c%3Dd%2Be%25f%2Fg%22h%5Ci~%C3%A9"
#define VAL_JSON "a b&c=d+e%f/g\\\"h\\\\i~\xc3\xa9"

static void every_place_and_spelling_substitutes(void **state)
{
    static const char *plain[] = {"$Secret{K}", "$Token{K}", "$secret:" TOKEN22};
    static const char *pct[] = {"%24Secret%7BK%7D", "$Secret%7bK%7d", "%24Token{K}",
                                "%24secret%3A" TOKEN22, "$secret%3a" TOKEN22};
    static const struct {
        enum sp_text_place place;
        const char *enc;
        int percent;
    } places[] = {
        {SP_TEXT_PATH, VAL_PCT, 1},       {SP_TEXT_QUERY, VAL_PCT, 1},
        {SP_TEXT_BODY_FORM, VAL_FORM, 1}, {SP_TEXT_HEADER, VAL, 0},
        {SP_TEXT_AUTHORIZATION, VAL, 0},  {SP_TEXT_BODY_JSON, VAL_JSON, 0},
        {SP_TEXT_BODY_RAW, VAL, 0},       {SP_TEXT_PLAIN, VAL, 0},
    };
    struct table t = {0};
    char in[200], want[300];

    table_set(&t, "K", VAL, strlen(VAL));
    table_set(&t, TOKEN22, VAL, strlen(VAL));
    for (size_t p = 0; p < SP_ARRAY_LEN(places); p++) {
        for (size_t s = 0; s < SP_ARRAY_LEN(plain) + SP_ARRAY_LEN(pct); s++) {
            int is_pct = s >= SP_ARRAY_LEN(plain);
            const char *ref = is_pct ? pct[s - SP_ARRAY_LEN(plain)] : plain[s];

            snprintf(in, sizeof(in), "\"x=%s&y\"", ref);
            if (is_pct && !places[p].percent) {
                expect_subst(places[p].place, &t, in, in, 0);
                continue;
            }
            snprintf(want, sizeof(want), "\"x=%s&y\"", places[p].enc);
            expect_subst(places[p].place, &t, in, want, 1);
        }
    }
}

static void several_references_and_look_alikes(void **state)
{
    struct table t = {0};

    table_set(&t, "A", "1", 1);
    table_set(&t, "B", "22", 2);
    expect_subst(SP_TEXT_BODY_RAW, &t,
                 "$Secret{A}$Token{B} $secretary $Secret{bad key} $Secret{} $Secret{A",
                 "122 $secretary $Secret{bad key} $Secret{} $Secret{A", 2);
    expect_subst(SP_TEXT_QUERY, &t, "a=%24Secret%7BA%7D&b=$Token%7bB}&c=%Secret{A}",
                 "a=1&b=22&c=%Secret{A}", 2);
    expect_subst(SP_TEXT_PLAIN, &t, "", "", 0);
    expect_subst(SP_TEXT_PLAIN, &t, "no references here", "no references here", 0);
}

static void every_byte_value_round_trips(void **state)
{
    static const struct {
        enum sp_text_place place;
        int plus;
    } url[] = {{SP_TEXT_PATH, 0}, {SP_TEXT_QUERY, 0}, {SP_TEXT_BODY_FORM, 1}};
    unsigned char v[256];
    struct table t = {0};
    struct sp_buf out, dec;
    struct sp_err err;

    for (int i = 0; i < 256; i++)
        v[i] = (unsigned char)i;
    table_set(&t, "K", v, sizeof(v));
    for (size_t u = 0; u < SP_ARRAY_LEN(url); u++) {
        assert_int_equal(subst(url[u].place, "$Secret{K}", 10, &t, &out, &err), 1);
        for (size_t i = 0; i < out.len; i++)
            assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                               "-._~%+",
                               out.data[i]) &&
                        out.data[i]);
        sp_buf_init(&dec, 0, 1);
        assert_int_equal(sp_text_pct_decode(&dec, out.data, out.len, url[u].plus, &err), 0);
        assert_int_equal(dec.len, 256);
        assert_memory_equal(dec.data, v, 256);
        sp_buf_free(&dec);
        sp_buf_free(&out);
    }
    assert_int_equal(subst(SP_TEXT_BODY_JSON, "\"$Secret{K}\"", 12, &t, &out, &err), 1);
    sp_buf_init(&dec, 0, 1);
    assert_int_equal(sp_text_json_unescape(&dec, out.data + 1, out.len - 2, &err), 0);
    assert_int_equal(dec.len, 256);
    assert_memory_equal(dec.data, v, 256);
    sp_buf_free(&dec);
    sp_buf_free(&out);
    for (enum sp_text_place p = SP_TEXT_BODY_RAW; p <= SP_TEXT_PLAIN; p++) {
        assert_int_equal(subst(p, "$Secret{K}", 10, &t, &out, &err), 1);
        assert_int_equal(out.len, 256);
        assert_memory_equal(out.data, v, 256);
        sp_buf_free(&out);
    }
    /* Headers take every byte but CR, LF and NUL. */
    t.e[0].value = v + 1;
    t.e[0].len = 255;
    expect_error(SP_TEXT_HEADER, &t, "$Secret{K}", SP_E_SECRET_UNSAFE_VALUE, "'K'");
    v[10] = v[13] = 'x';
    assert_int_equal(subst(SP_TEXT_HEADER, "$Secret{K}", 10, &t, &out, &err), 1);
    assert_int_equal(out.len, 255);
    assert_memory_equal(out.data, v + 1, 255);
    sp_buf_free(&out);
}

static void header_refuses_cr_lf_nul_without_showing_the_value(void **state)
{
    static const char *bad[] = {"s3cr3t\r\nX-Evil: 1", "s3cr3t\nX", "s3cr3t\rX", "s3cr3t"};
    struct table t = {0};
    struct sp_buf out;
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        size_t len = strlen(bad[i]) + (i == 3); /* the last one ends in NUL */
        t.n = 0;
        table_set(&t, "MY_KEY", bad[i], len);
        table_set(&t, TOKEN22, bad[i], len);
        for (enum sp_text_place p = SP_TEXT_HEADER; p <= SP_TEXT_AUTHORIZATION; p++) {
            sp_buf_init(&out, 0, 1);
            assert_int_equal(sp_buf_add(&out, "keep", 4, &err), 0);
            assert_int_equal(
                sp_text_subst(p, "Bearer $Secret{MY_KEY}", 22, on_lookup, &t, &out, &err), -1);
            assert_int_equal(err.code, SP_E_SECRET_UNSAFE_VALUE);
            assert_string_equal(err.msg,
                                "Secret 'MY_KEY' has a value that is not allowed in a header");
            assert_int_equal(out.len, 4);
            assert_memory_equal(out.data, "keep", 4);
            sp_buf_free(&out);
            expect_error(p, &t, "$secret:" TOKEN22, SP_E_SECRET_UNSAFE_VALUE, "not allowed");
            assert_null(strstr(err.msg, "s3cr3t"));
        }
    }
}

static void json_reference_must_sit_inside_a_string(void **state)
{
    struct table t = {0};

    table_set(&t, "K", "v\"\n", 3);
    expect_error(SP_TEXT_BODY_JSON, &t, "{\"a\": $Secret{K}}", SP_E_REFERENCE_INVALID,
                 "not inside a string");
    expect_error(SP_TEXT_BODY_JSON, &t, "{\"a\": \"x\"} $Token{K}", SP_E_REFERENCE_INVALID, "'K'");
    expect_error(SP_TEXT_BODY_JSON, &t, "$secret:" TOKEN22, SP_E_REFERENCE_INVALID, "$secret:");
    /* "x\\" is a whole string: what follows is outside. */
    expect_error(SP_TEXT_BODY_JSON, &t, "{\"a\":\"x\\\\\"$Secret{K}\"}", SP_E_REFERENCE_INVALID,
                 NULL);
    expect_subst(SP_TEXT_BODY_JSON, &t, "{\"a\":\"x\\\"$Secret{K}\"}", "{\"a\":\"x\\\"v\\\"\\n\"}",
                 1);
    expect_subst(SP_TEXT_BODY_JSON, &t, "[\"\\\\\\\"$Secret{K}\"]", "[\"\\\\\\\"v\\\"\\n\"]", 1);
    expect_subst(SP_TEXT_BODY_JSON, &t,
                 "{\"$Secret{K}\": \"$Token{K}\", \"n\": [1, \"$Secret{K}\"]}",
                 "{\"v\\\"\\n\": \"v\\\"\\n\", \"n\": [1, \"v\\\"\\n\"]}", 3);
    /* The second reference is checked with the state the first left. */
    expect_error(SP_TEXT_BODY_JSON, &t, "[\"$Secret{K}\", $Secret{K}]", SP_E_REFERENCE_INVALID,
                 NULL);
    /* Outside strings, JSON has no escapes: \" there opens a string. */
    expect_subst(SP_TEXT_BODY_JSON, &t, "\\\"$Secret{K}\"", "\\\"v\\\"\\n\"", 1);
}

static void b64(char *out, const void *p, size_t n)
{
    sp_base64_encode(out, p, n);
}

static void basic_credential_round_trips(void **state)
{
    unsigned char pw[256], cred[300], dec[400];
    char enc[500], in[600], want[600];
    struct table t = {0};
    struct sp_buf out;
    struct sp_err err;
    size_t dlen;

    for (int i = 0; i < 256; i++)
        pw[i] = (unsigned char)(255 - i);
    table_set(&t, "PW", pw, sizeof(pw));
    table_set(&t, "U", "alice", 5);
    b64(enc, "$Secret{U}:$Secret{PW}", 22);
    snprintf(in, sizeof(in), "Basic %s", enc);
    assert_true(sp_text_place_has_ref(SP_TEXT_AUTHORIZATION, in, strlen(in)));
    assert_false(sp_text_place_has_ref(SP_TEXT_HEADER, in, strlen(in)));
    assert_int_equal(subst(SP_TEXT_AUTHORIZATION, in, strlen(in), &t, &out, &err), 2);
    assert_memory_equal(out.data, "Basic ", 6);
    assert_int_equal(sp_base64_decode(dec, &dlen, out.data + 6, out.len - 6), 0);
    memcpy(cred, "alice:", 6);
    memcpy(cred + 6, pw, sizeof(pw));
    assert_int_equal(dlen, 6 + sizeof(pw));
    assert_memory_equal(dec, cred, dlen);
    sp_buf_free(&out);

    /* Scheme in any case, extra blanks kept. */
    b64(enc, "u:$Secret{U}", 12);
    snprintf(in, sizeof(in), "  bASIC \t%s  ", enc);
    b64(enc, "u:alice", 7);
    snprintf(want, sizeof(want), "  bASIC \t%s  ", enc);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, in, want, 1);
    /* A bare reference after Basic is the whole credential, raw. */
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Basic $Secret{U}", "Basic alice", 1);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Bearer $Token{U}", "Bearer alice", 1);
    /* Nothing to do: the header is copied as it is. */
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz", 0);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Basic !!!", "Basic !!!", 0);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Basic", "Basic", 0);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, "Basicx", "Basicx", 0);
    assert_false(sp_text_place_has_ref(SP_TEXT_AUTHORIZATION, "Basic dXNlcjpwYXNz", 18));
    /* A value refused raw in a header is fine inside the base64. */
    table_set(&t, "NL", "a\r\nb", 4);
    b64(enc, "u:$Secret{NL}", 13);
    snprintf(in, sizeof(in), "Basic %s", enc);
    b64(enc, "u:a\r\nb", 6);
    snprintf(want, sizeof(want), "Basic %s", enc);
    expect_subst(SP_TEXT_AUTHORIZATION, &t, in, want, 1);
    expect_error(SP_TEXT_AUTHORIZATION, &t, "Basic $Secret{NL}", SP_E_SECRET_UNSAFE_VALUE, "'NL'");
    /* An unknown name inside the credential fails the request. */
    b64(enc, "u:$Secret{NOPE}", 15);
    snprintf(in, sizeof(in), "Basic %s", enc);
    expect_error(SP_TEXT_AUTHORIZATION, &t, in, SP_E_SECRET_NOT_FOUND, "'NOPE'");
}

static void failures_leave_the_output_as_it_was(void **state)
{
    struct table t = {0};
    struct sp_buf out;
    struct sp_err err;

    table_set(&t, "A", "secret-one", 10);
    sp_buf_init(&out, 0, 0);
    assert_int_equal(sp_buf_add(&out, "keep", 4, &err), 0);
    assert_int_equal(
        sp_text_subst(SP_TEXT_BODY_RAW, "$Secret{A} $Secret{B}", 21, on_lookup, &t, &out, &err),
        -1);
    assert_int_equal(err.code, SP_E_SECRET_NOT_FOUND);
    assert_string_equal(err.msg, "Secret 'B' not found");
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    /* The secret that had been written is wiped, not just cut off. */
    assert_null(memmem(out.data, out.cap, "secret-one", 10));
    assert_true(out.sensitive);
    sp_buf_free(&out);

    sp_buf_init(&out, 12, 1);
    assert_int_equal(
        sp_text_subst(SP_TEXT_BODY_RAW, "x $Secret{A} y", 14, on_lookup, &t, &out, &err), -1);
    assert_int_equal(err.code, SP_E_PAYLOAD_TOO_LARGE);
    assert_int_equal(out.len, 0);
    sp_buf_free(&out);
}

static void place_flags(void **state)
{
    assert_int_equal(sp_text_place_flags(SP_TEXT_PATH), SP_TEXT_SCAN_PERCENT);
    assert_int_equal(sp_text_place_flags(SP_TEXT_QUERY), SP_TEXT_SCAN_PERCENT);
    assert_int_equal(sp_text_place_flags(SP_TEXT_BODY_FORM), SP_TEXT_SCAN_PERCENT);
    assert_int_equal(sp_text_place_flags(SP_TEXT_HEADER), 0);
    assert_int_equal(sp_text_place_flags(SP_TEXT_BODY_JSON), 0);
    assert_int_equal(sp_text_place_flags(SP_TEXT_BODY_RAW), 0);
    assert_int_equal(sp_text_place_flags(SP_TEXT_PLAIN), 0);
    assert_true(sp_text_place_has_ref(SP_TEXT_QUERY, "a=%24Secret%7BK%7D", 18));
    assert_false(sp_text_place_has_ref(SP_TEXT_HEADER, "a=%24Secret%7BK%7D", 18));
}

static void decoders(void **state)
{
    struct sp_buf b;
    struct sp_err err;

    sp_buf_init(&b, 0, 0);
    assert_int_equal(sp_text_pct_decode(&b, "a%2Fb%2fc%zz%4+%", 16, 0, &err), 0);
    assert_string_equal(b.data, "a/b/c%zz%4+%");
    sp_buf_reset(&b);
    assert_int_equal(sp_text_pct_decode(&b, "a+b%2B", 6, 1, &err), 0);
    assert_string_equal(b.data, "a b+");
    sp_buf_reset(&b);
    assert_int_equal(sp_text_json_unescape(&b, "\\u00e9\\ud83d\\ude00\\/\\n\\u0000x", 29, &err), 0);
    assert_int_equal(b.len, 2 + 4 + 1 + 1 + 1 + 1);
    assert_memory_equal(b.data, "\xc3\xa9\xf0\x9f\x98\x80/\n\0x", b.len);
    static const char *bad[] = {"\\",      "\\x",     "\\u12",         "\\u12g4",
                                "\\ud83d", "\\ude00", "\\ud83d\\u0041"};
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        sp_buf_reset(&b);
        assert_int_equal(sp_text_json_unescape(&b, bad[i], strlen(bad[i]), &err), -1);
        assert_int_equal(err.code, SP_E_BAD_REQUEST);
    }
    sp_buf_free(&b);
}

/* A random value, biased towards the bytes each encoding cares about. */
static size_t random_value(unsigned char *v, size_t max, unsigned *seed)
{
    static const char special[] = "\"\\&=+%/ \r\n\t\x7f~.-_{}$:?#";
    size_t n = (size_t)rand_r(seed) % max;

    for (size_t i = 0; i < n; i++) {
        int k = rand_r(seed) % 4;
        if (k == 0)
            v[i] = (unsigned char)special[rand_r(seed) % (sizeof(special) - 1)];
        else if (k == 1 && i + 1 < n) {
            v[i++] = 0xC3; /* é, multibyte UTF-8 */
            v[i] = 0xA9;
        } else
            v[i] = (unsigned char)(rand_r(seed) & 0xFF);
    }
    return n;
}

/* Decode what a place made of a value, back to the value. */
static void decode_place(enum sp_text_place place, const char *enc, size_t n, struct sp_buf *dec)
{
    struct sp_err err;
    unsigned char raw[400];
    size_t rlen;

    switch (place) {
    case SP_TEXT_PATH:
    case SP_TEXT_QUERY:
    case SP_TEXT_BODY_FORM:
        assert_int_equal(sp_text_pct_decode(dec, enc, n, place == SP_TEXT_BODY_FORM, &err), 0);
        break;
    case SP_TEXT_BODY_JSON:
        assert_int_equal(sp_text_json_unescape(dec, enc, n, &err), 0);
        break;
    case SP_TEXT_AUTHORIZATION:
        assert_int_equal(sp_base64_decode(raw, &rlen, enc, n), 0);
        assert_true(rlen >= 2 && memcmp(raw, "u:", 2) == 0);
        assert_int_equal(sp_buf_add(dec, raw + 2, rlen - 2, &err), 0);
        break;
    default:
        assert_int_equal(sp_buf_add(dec, enc, n, &err), 0);
    }
}

static void substitute_then_decode_gives_the_value(void **state)
{
    static const enum sp_text_place places[] = {
        SP_TEXT_PATH,     SP_TEXT_QUERY, SP_TEXT_BODY_FORM, SP_TEXT_BODY_JSON,
        SP_TEXT_BODY_RAW, SP_TEXT_PLAIN, SP_TEXT_HEADER,    SP_TEXT_AUTHORIZATION};
    unsigned seed = 20240607;
    unsigned char v[64];
    char basic[64], in[128];
    struct table t = {0};

    b64(basic, "u:$Secret{K}", 12);
    table_set(&t, "K", v, 0);
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = random_value(v, sizeof(v), &seed);
        t.e[0].len = n;
        for (size_t p = 0; p < SP_ARRAY_LEN(places); p++) {
            enum sp_text_place place = places[p];
            int unsafe = (place == SP_TEXT_HEADER) &&
                         (memchr(v, '\r', n) || memchr(v, '\n', n) || memchr(v, '\0', n));
            size_t pre = 2, post = 1;
            struct sp_buf out, dec;
            struct sp_err err;
            int rc;

            if (place == SP_TEXT_AUTHORIZATION) {
                snprintf(in, sizeof(in), "Basic %s", basic);
                pre = 6;
                post = 0;
            } else if (place == SP_TEXT_BODY_JSON) {
                snprintf(in, sizeof(in), "[\"%s\"]", iter % 2 ? "$Token{K}" : "$Secret{K}");
                post = 2;
            } else {
                snprintf(in, sizeof(in), "a=%s&",
                         sp_text_place_flags(place) ? "%24Secret%7bK%7D" : "$Secret{K}");
            }
            rc = subst(place, in, strlen(in), &t, &out, &err);
            if (unsafe) {
                assert_int_equal(rc, -1);
                assert_int_equal(err.code, SP_E_SECRET_UNSAFE_VALUE);
                sp_buf_free(&out);
                continue;
            }
            assert_int_equal(rc, 1);
            assert_memory_equal(out.data, in, pre);
            assert_memory_equal(out.data + out.len - post, in + strlen(in) - post, post);
            sp_buf_init(&dec, 0, 1);
            decode_place(place, out.data + pre, out.len - pre - post, &dec);
            assert_int_equal(dec.len, n);
            assert_memory_equal(dec.data, v, n);
            sp_buf_free(&dec);
            sp_buf_free(&out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_place_and_spelling_substitutes),
        cmocka_unit_test(several_references_and_look_alikes),
        cmocka_unit_test(every_byte_value_round_trips),
        cmocka_unit_test(header_refuses_cr_lf_nul_without_showing_the_value),
        cmocka_unit_test(json_reference_must_sit_inside_a_string),
        cmocka_unit_test(basic_credential_round_trips),
        cmocka_unit_test(failures_leave_the_output_as_it_was),
        cmocka_unit_test(place_flags),
        cmocka_unit_test(decoders),
        cmocka_unit_test(substitute_then_decode_gives_the_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
