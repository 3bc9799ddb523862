/* test_scan.c - finding references: every spelling, every percent form,
 * look-alikes, bounds, and the vector scanner checked against PCRE2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/text.h"

#define TOKEN22 "AbCdEfGhIjKlMnOpQrStUv"

/* An exact-size heap copy, so ASan catches any read past the end. */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

/* Scan s (exact-size copy) and expect one reference at start with len and
 * key, and nothing after it. */
static void expect_one(const char *s, unsigned flags, size_t start, size_t len,
                       enum sp_text_ref_kind kind, const char *key)
{
    size_t n = strlen(s);
    char *p = exact(s, n);
    struct sp_text_ref ref;

    if (!sp_text_scan(p, n, 0, flags, &ref))
        fail_msg("no reference found in '%s'", s);
    assert_int_equal(ref.start, start);
    assert_int_equal(ref.len, len);
    assert_int_equal(ref.kind, kind);
    assert_int_equal(ref.key_len, strlen(key));
    assert_memory_equal(ref.key, key, ref.key_len);
    assert_int_equal(sp_text_scan(p, n, ref.start + ref.len, flags, &ref), 0);
    assert_true(sp_text_has_ref(p, n, flags));
    free(p);
}

static void expect_none(const char *s, unsigned flags)
{
    size_t n = strlen(s);
    char *p = exact(s, n);
    struct sp_text_ref ref;

    if (sp_text_scan(p, n, 0, flags, &ref))
        fail_msg("unexpected reference in '%s' at %zu", s, ref.start);
    assert_false(sp_text_has_ref(p, n, flags));
    free(p);
}

static void plain_spellings_are_found(void **state)
{
    expect_one("$Secret{API_KEY}", 0, 0, 16, SP_TEXT_REF_NAMED, "API_KEY");
    expect_one("Bearer $Token{my-key_2}", 0, 7, 16, SP_TEXT_REF_NAMED, "my-key_2");
    expect_one("x=$secret:" TOKEN22 "&y", 0, 2, 30, SP_TEXT_REF_TOKEN, TOKEN22);
    expect_one("$secret:" TOKEN22, 0, 0, 30, SP_TEXT_REF_TOKEN, TOKEN22);
    expect_one("$Secret{K}", SP_TEXT_SCAN_PERCENT, 0, 10, SP_TEXT_REF_NAMED, "K");
    /* A '$' that starts nothing does not hide the next one. */
    expect_one("$$Secret{K}", 0, 1, 10, SP_TEXT_REF_NAMED, "K");
    expect_one("$Secret{$Secret{K}}", 0, 8, 10, SP_TEXT_REF_NAMED, "K");
    expect_one("$secret:$secret:" TOKEN22, 0, 8, 30, SP_TEXT_REF_TOKEN, TOKEN22);
}

/* Every mix of plain and percent-encoded punctuation, in both hex cases. */
static void every_percent_form_is_found_where_allowed(void **state)
{
    static const char *dollars[] = {"$", "%24"};
    static const char *opens[] = {"{", "%7B", "%7b"};
    static const char *closes[] = {"}", "%7D", "%7d"};
    static const char *colons[] = {":", "%3A", "%3a"};
    static const char *names[] = {"Secret", "Token"};
    char s[400];

    for (size_t d = 0; d < 2; d++) {
        for (size_t nm = 0; nm < 2; nm++) {
            for (size_t o = 0; o < 3; o++) {
                for (size_t c = 0; c < 3; c++) {
                    int len = snprintf(s, sizeof(s), "/a/%s%s%sKEY-1%s/b", dollars[d], names[nm],
                                       opens[o], closes[c]);
                    size_t rlen = (size_t)len - 5;
                    expect_one(s, SP_TEXT_SCAN_PERCENT, 3, rlen, SP_TEXT_REF_NAMED, "KEY-1");
                    if (d || o || c)
                        expect_none(s, 0);
                }
            }
        }
        for (size_t c = 0; c < 3; c++) {
            int len = snprintf(s, sizeof(s), "?t=%ssecret%s" TOKEN22 "&", dollars[d], colons[c]);
            expect_one(s, SP_TEXT_SCAN_PERCENT, 3, (size_t)len - 4, SP_TEXT_REF_TOKEN, TOKEN22);
            if (d || c)
                expect_none(s, 0);
        }
    }
}

static void percent_flag_is_reported(void **state)
{
    struct sp_text_ref ref;

    assert_true(sp_text_scan("$Secret{K}", 10, 0, SP_TEXT_SCAN_PERCENT, &ref));
    assert_int_equal(ref.percent, 0);
    assert_true(sp_text_scan("$Secret%7BK}", 12, 0, SP_TEXT_SCAN_PERCENT, &ref));
    assert_int_equal(ref.percent, 1);
    assert_true(sp_text_scan("%24Token{K}", 11, 0, SP_TEXT_SCAN_PERCENT, &ref));
    assert_int_equal(ref.percent, 1);
}

static void look_alikes_are_left_alone(void **state)
{
    static const char *cases[] = {
        "$secretary",
        "$Secret{bad key}",
        "$Secret{}",
        "$Secret{KEY",
        "$Secret{KEY)",
        "$secret:",
        "$secret:short",
        "$secret: " TOKEN22,
        "$Secrets{K}",
        "$SECRET{K}",
        "$secret{K}",
        "$token{K}",
        "$Token:abc",
        "$Secret {K}",
        "Secret{K}",
        "%Secret{K}",
        "%2524Secret{K}",
        "%24Secret%7BK%7",
        "%24Secret%7",
        "%24secret%3!" TOKEN22,
        "%24secret%G" TOKEN22,
        "$Secret{K%7E}",
        "$Secret{K.1}",
        "$Secret{K%20}",
        "$Secret{\xc3\xa9}",
        "",
        "$",
        "%",
        "%2",
        "%24",
    };

    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        expect_none(cases[i], 0);
        expect_none(cases[i], SP_TEXT_SCAN_PERCENT);
    }
}

static void key_and_token_lengths_are_bounded(void **state)
{
    char s[600], key[300];

    for (size_t len = 1; len <= 130; len++) {
        memset(key, 'k', len);
        key[len] = '\0';
        snprintf(s, sizeof(s), "$Secret{%s}", key);
        if (len <= 128)
            expect_one(s, 0, 0, len + 9, SP_TEXT_REF_NAMED, key);
        else
            expect_none(s, 0);
    }
    for (size_t len = 1; len <= 258; len++) {
        memset(key, 'T', len);
        key[len] = '\0';
        snprintf(s, sizeof(s), "$secret:%s", key);
        if (len >= 16 && len <= 256)
            expect_one(s, 0, 0, len + 8, SP_TEXT_REF_TOKEN, key);
        else
            expect_none(s, 0);
        /* The token ends at the first character outside its alphabet. */
        snprintf(s, sizeof(s), "$secret:%s/x", key);
        if (len >= 16 && len <= 256)
            expect_one(s, 0, 0, len + 8, SP_TEXT_REF_TOKEN, key);
        else
            expect_none(s, 0);
    }
}

/* Every prefix of a reference, as a buffer of exactly that size. */
static void truncated_references_never_read_past_the_end(void **state)
{
    static const char *refs[] = {"%24Secret%7BKEY%7D", "$Token{KEY}", "%24secret%3A" TOKEN22};

    for (size_t r = 0; r < SP_ARRAY_LEN(refs); r++) {
        size_t n = strlen(refs[r]);
        for (size_t len = 0; len < n; len++) {
            char *p = exact(refs[r], len);
            struct sp_text_ref ref;
            int found = sp_text_scan(p, len, 0, SP_TEXT_SCAN_PERCENT, &ref);
            /* Only the token form can end early and still be a reference. */
            assert_int_equal(found, r == 2 && len >= n - 6);
            free(p);
        }
    }
}

static void references_are_found_at_every_offset(void **state)
{
    static const char *fills[] = {"a", "%", "%2", "%25", "$", "\0"};
    static const char *refs[] = {"$Secret{K}", "%24Secret%7BK%7D", "%24secret:" TOKEN22};
    char buf[200];

    for (size_t f = 0; f < SP_ARRAY_LEN(fills); f++) {
        size_t fl = strlen(fills[f]) ? strlen(fills[f]) : 1;
        for (size_t r = 0; r < SP_ARRAY_LEN(refs); r++) {
            size_t rl = strlen(refs[r]);
            for (size_t off = 0; off + rl + 3 < sizeof(buf) - 40; off++) {
                size_t n = off + rl + 37;
                struct sp_text_ref ref;
                char *p;

                for (size_t i = 0; i < n; i++)
                    buf[i] = fills[f][i % fl];
                memcpy(buf + off, refs[r], rl);
                buf[off + rl] = '/';
                p = exact(buf, n);
                assert_true(sp_text_scan(p, n, 0, SP_TEXT_SCAN_PERCENT, &ref));
                /* A filler '$' or "%24" just before cannot start a reference. */
                assert_int_equal(ref.start, off);
                assert_int_equal(ref.len, rl);
                free(p);
            }
        }
    }
}

/* The same grammar written as a PCRE2 pattern is the oracle: random texts
 * over the characters that matter must give the same references. */
static pcre2_code *oracle(int pct)
{
    const char *pat =
        pct ? "(?:\\$|%24)(?:secret(?::|%3[aA])([A-Za-z0-9_-]{16,256})(?![A-Za-z0-9_-])|"
              "(?:Secret|Token)(?:\\{|%7[bB])([A-Za-z0-9_-]{1,128})(?:\\}|%7[dD]))"
            : "\\$(?:secret:([A-Za-z0-9_-]{16,256})(?![A-Za-z0-9_-])|"
              "(?:Secret|Token)\\{([A-Za-z0-9_-]{1,128})\\})";
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);

    assert_non_null(re);
    return re;
}

static void random_text(char *s, size_t n, unsigned *seed)
{
    static const char *pieces[] = {"$",  "%24", "%2", "%",   "Secret", "Token", "secret",
                                   "{",  "}",   ":",  "%7B", "%7d",    "%3a",   "%3A",
                                   "K",  "-",   "_",  "x9",  " ",      "\"",    TOKEN22,
                                   "%7", "%3",  "\n", "$S",  "Secre",  "Toke"};
    size_t i = 0;

    while (i < n) {
        const char *pc = pieces[rand_r(seed) % SP_ARRAY_LEN(pieces)];
        size_t l = strlen(pc);
        if (l > n - i)
            l = n - i;
        memcpy(s + i, pc, l);
        i += l;
    }
}

static void scanner_agrees_with_pcre2_on_random_text(void **state)
{
    unsigned seed = 12345;
    char buf[400];

    for (int pct = 0; pct < 2; pct++) {
        pcre2_code *re = oracle(pct);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);

        for (int iter = 0; iter < 4000; iter++) {
            size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
            size_t from = 0;
            char *p;

            random_text(buf, n, &seed);
            p = exact(buf, n);
            for (;;) {
                struct sp_text_ref ref;
                int ours = sp_text_scan(p, n, from, pct ? SP_TEXT_SCAN_PERCENT : 0, &ref);
                int rc = pcre2_match(re, (PCRE2_SPTR)p, n, from, 0, md, NULL);
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

                assert_int_equal(ours, rc > 0);
                if (!ours)
                    break;
                assert_int_equal(ref.start, ov[0]);
                assert_int_equal(ref.len, ov[1] - ov[0]);
                from = ref.start + ref.len;
            }
            free(p);
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_spellings_are_found),
        cmocka_unit_test(every_percent_form_is_found_where_allowed),
        cmocka_unit_test(percent_flag_is_reported),
        cmocka_unit_test(look_alikes_are_left_alone),
        cmocka_unit_test(key_and_token_lengths_are_bounded),
        cmocka_unit_test(truncated_references_never_read_past_the_end),
        cmocka_unit_test(references_are_found_at_every_offset),
        cmocka_unit_test(scanner_agrees_with_pcre2_on_random_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
