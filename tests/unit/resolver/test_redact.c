/* test_redact.c - the redactor: every form of a value is replaced, random
 * values leave no trace, streaming at every split equals one-shot, text
 * without values passes unchanged, and matching stays linear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resolver/text.h"

static struct sp_redactor *redactor_of(const char *v, size_t n)
{
    struct sp_redactor *r = sp_redactor_new();
    struct sp_err err;

    assert_non_null(r);
    assert_int_equal(sp_redactor_add(r, v, n, &err), 0);
    return r;
}

/* One-shot redaction of text[0..n) into a fresh buffer (caller frees). */
static void redact(struct sp_redactor *r, const char *text, size_t n, struct sp_buf *out)
{
    struct sp_err err;
    char *copy = malloc(n ? n : 1);

    assert_non_null(copy);
    memcpy(copy, text, n);
    sp_buf_init(out, 0, 0);
    if (sp_redactor_redact(r, copy, n, out, &err) < 0)
        fail_msg("redact: %s", err.msg);
    free(copy);
}

static void expect_redacted(struct sp_redactor *r, const char *text, const char *want)
{
    struct sp_buf out;

    redact(r, text, strlen(text), &out);
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        fail_msg("redact '%s':\n got '%.*s'\nwant '%s'", text, (int)out.len, out.data, want);
    sp_buf_free(&out);
}

static void every_listed_form_is_redacted(void **state)
{
    /* "p@ss w/rd\"é" and its forms, written out by hand. */
    static const char v[] = "p@ss w/rd\"\xc3\xa9";
    static const char *forms[] = {
        "p@ss w/rd\"\xc3\xa9",      /* raw */
        "p%40ss%20w%2Frd%22%C3%A9", /* percent, upper, %20 */
        "p%40ss%20w%2frd%22%c3%a9", /* percent, lower */
        "p%40ss+w%2Frd%22%C3%A9",   /* form */
        "p%40ss+w%2frd%22%c3%a9",   /* form, lower */
        "p%40ss w%2Frd\"\xc3\xa9",  /* only reserved characters */
        "p@ss w/rd\\\"\xc3\xa9",    /* JSON */
        "p@ss w\\/rd\\\"\xc3\xa9",  /* JSON with \/ */
        "p@ss w/rd\\\"\\u00e9",     /* JSON, ensure_ascii */
        "cEBzcyB3L3JkIsOp",         /* base64 */
        "cEBzcyB3L3JkIsOp",         /* base64url (no + or / here) */
        "dXNlcjpwQHNzIHcvcmQiw6k=", /* base64("user:" + v) */
        "dXNlcjpwQHNzIHcvcmQiw6k",  /* unpadded */
        "dTpwQHNzIHcvcmQiw6kK",     /* base64("u:" + v + "\n") */
        "OnBAc3Mgdy9yZCLDqQ==",     /* base64(":" + v) */
        "OnBAc3Mgdy9yZCLDqQ",       /* unpadded */
        "OnBAc3Mgd3hyZCLDqQ==",     /* not a form: one byte differs */
    };
    struct sp_redactor *r = redactor_of(v, strlen(v));
    char text[200];
    struct sp_buf out;

    for (size_t i = 0; i < SP_ARRAY_LEN(forms); i++) {
        snprintf(text, sizeof(text), "before %s after", forms[i]);
        redact(r, text, strlen(text), &out);
        if (i == SP_ARRAY_LEN(forms) - 1) {
            assert_string_equal(out.data, text);
        } else if (!strstr(out.data, "[REDACTED]") || strstr(out.data, "cEBzcyB3") ||
                   memcmp(out.data, "before ", 7) != 0 ||
                   memcmp(out.data + out.len - 6, " after", 6) != 0 ||
                   out.len > 7 + 6 + 10 + 8 + 4) {
            fail_msg("form %zu '%s' -> '%s'", i, forms[i], out.data);
        }
        sp_buf_free(&out);
    }
    expect_redacted(r, "x p%40ss%20w%2Frd%22%C3%A9 y", "x [REDACTED] y");
    expect_redacted(r, "x p@ss w/rd\"\xc3\xa9 y", "x [REDACTED] y");
    /* Base64 at the end of its data: the last characters and the padding go
     * too; only what depends on the neighbours is left. */
    expect_redacted(r, "t=dXNlcjpwQHNzIHcvcmQiw6k;", "t=dXNlcjp[REDACTED];");
    expect_redacted(r, "t=dXNlcjpwQHNzIHcvcmQiw6k=;", "t=dXNlcjp[REDACTED];");
    expect_redacted(r, "t=OnBAc3Mgdy9yZCLDqQ;", "t=On[REDACTED];");
    expect_redacted(r, "t=OnBAc3Mgdy9yZCLDqQ==;", "t=On[REDACTED];");
    expect_redacted(r, "t=cEBzcyB3L3JkIsOp;", "t=[REDACTED];");
    sp_redactor_free(r);
}

static void json_variants_are_redacted(void **state)
{
    struct sp_redactor *r = redactor_of("a<b>&\x01\x7f\n/\xf0\x9f\x98\x80", 13);

    expect_redacted(r, "{\"m\":\"a<b>&\\u0001\x7f\\n/\xf0\x9f\x98\x80\"}",
                    "{\"m\":\"[REDACTED]\"}");
    expect_redacted(r, "{\"m\":\"a<b>&\\u0001\\u007f\\u000a/\xf0\x9f\x98\x80\"}",
                    "{\"m\":\"[REDACTED]\"}");
    expect_redacted(r, "{\"m\":\"a<b>&\\u0001\\u007F\\u000A/\xf0\x9f\x98\x80\"}",
                    "{\"m\":\"[REDACTED]\"}");
    expect_redacted(r, "{\"m\":\"a<b>&\\u0001\x7f\\n\\/\xf0\x9f\x98\x80\"}",
                    "{\"m\":\"[REDACTED]\"}");
    expect_redacted(r, "{\"m\":\"a<b>&\\u0001\x7f\\n/\\ud83d\\ude00\"}", "{\"m\":\"[REDACTED]\"}");
    expect_redacted(r, "{\"m\":\"a\\u003cb\\u003e\\u0026\\u0001\x7f\\n/\xf0\x9f\x98\x80\"}",
                    "{\"m\":\"[REDACTED]\"}");
    sp_redactor_free(r);
}

static void hex_case_and_base64url_are_folded(void **state)
{
    struct sp_redactor *r = redactor_of("\xfb\xff\xbf\x3e\x3f\xfb\xef\xbe", 8);

    expect_redacted(r, "a=+/+/Pj/7774=;", "a=[REDACTED];");
    expect_redacted(r, "a=-_-_Pj_7774;", "a=[REDACTED];");
    expect_redacted(r, "u=eDr7/78+P/vvvg==;", "u=eDr[REDACTED];");
    expect_redacted(r, "u=eDr7_78-P_vvvg;", "u=eDr[REDACTED];");
    expect_redacted(r, "{\"b\":\"+\\/+\\/Pj\\/7774=\"}", "{\"b\":\"[REDACTED]\"}");
    expect_redacted(r, "p=%FB%FF%BF%3E%3F%FB%EF%BE&", "p=[REDACTED]&");
    expect_redacted(r, "p=%fb%ff%bf%3e%3f%fb%ef%be&", "p=[REDACTED]&");
    expect_redacted(r, "p=%fB%Ff%bF%3e%3F%Fb%eF%BE&", "p=[REDACTED]&");
    sp_redactor_free(r);
}

static void short_values_are_still_redacted(void **state)
{
    struct sp_redactor *r = redactor_of("x", 1);

    expect_redacted(r, "axbxc", "a[REDACTED]b[REDACTED]c");
    sp_redactor_free(r);
    r = redactor_of("ab", 2);
    expect_redacted(r, "cab YWI= YWI ab", "c[REDACTED] [REDACTED] YWI [REDACTED]");
    sp_redactor_free(r);
    r = redactor_of(" ", 1);
    expect_redacted(r, "a b+c%20d", "a[REDACTED]b[REDACTED]c[REDACTED]d");
    sp_redactor_free(r);
}

static void overlapping_matches_merge(void **state)
{
    struct sp_redactor *r = redactor_of("abcdef", 6);
    struct sp_err err;

    assert_int_equal(sp_redactor_add(r, "defghi", 6, &err), 0);
    assert_int_equal(sp_redactor_add(r, "zz", 2, &err), 0);
    expect_redacted(r, "-abcdefghi-", "-[REDACTED]-");
    expect_redacted(r, "-abcdefabcdef-", "-[REDACTED][REDACTED]-");
    expect_redacted(r, "-abcdefzz-zzz", "-[REDACTED][REDACTED]-[REDACTED]");
    expect_redacted(r, "abcdeabcdef", "abcde[REDACTED]");
    assert_int_equal(sp_redactor_count(r), 3);
    assert_int_equal(sp_redactor_add(r, "zz", 2, &err), 0);
    assert_int_equal(sp_redactor_add(r, "", 0, &err), 0);
    assert_int_equal(sp_redactor_count(r), 3);
    sp_redactor_free(r);
}

static void text_without_values_passes_unchanged(void **state)
{
    struct sp_redactor *r = sp_redactor_new();
    struct sp_err err;
    unsigned seed = 7;
    char text[4096];
    struct sp_buf out;

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)(rand_r(&seed) & 0xFF);
    redact(r, text, sizeof(text), &out);
    assert_int_equal(out.len, sizeof(text));
    assert_memory_equal(out.data, text, sizeof(text));
    sp_buf_free(&out);
    assert_int_equal(sp_redactor_add(r, "\xff\xfe\xfd-not-in-the-text-\x01", 21, &err), 0);
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)(' ' + rand_r(&seed) % 95);
    redact(r, text, sizeof(text), &out);
    assert_int_equal(out.len, sizeof(text));
    assert_memory_equal(out.data, text, sizeof(text));
    sp_buf_free(&out);
    sp_redactor_free(r);
    sp_redactor_free(NULL);
}

/* Feed text in the chunks cut at the given offsets, then finish. */
static void stream_in_chunks(struct sp_redactor *r, const char *text, size_t n, const size_t *cuts,
                             size_t ncuts, struct sp_buf *out)
{
    struct sp_err err;
    struct sp_redact_stream *s = sp_redact_stream_new(r, &err);
    size_t at = 0;

    assert_non_null(s);
    sp_buf_init(out, 0, 0);
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : n;
        char *chunk = malloc(to - at + 1);
        memcpy(chunk, text + at, to - at);
        assert_int_equal(sp_redact_stream_feed(s, chunk, to - at, out, &err), 0);
        free(chunk);
        at = to;
    }
    assert_int_equal(sp_redact_stream_finish(s, out, &err), 0);
    assert_int_equal(sp_redact_stream_pending(s), 0);
    sp_redact_stream_free(s);
}

static void streaming_at_every_split_equals_one_shot(void **state)
{
    static const char *texts[] = {
        "head p%40ss+w%2Frd tail p@ss w/rd",
        "p@ss w/rdp@ss w/rd",
        "xx dXNlcjpwQHNzIHcvcmQ= yy cEBzcyB3L3Jk",
        "p@ss w/r p@ss w/rd!",
        "nothing to see here, at all, really",
        "p@ss w/rdzz",
        "",
    };
    struct sp_redactor *r = redactor_of("p@ss w/rd", 9);
    struct sp_err err;

    assert_int_equal(sp_redactor_add(r, "zz", 2, &err), 0);
    for (size_t t = 0; t < SP_ARRAY_LEN(texts); t++) {
        size_t n = strlen(texts[t]);
        struct sp_buf one, st;

        redact(r, texts[t], n, &one);
        for (size_t a = 0; a <= n; a++) {
            for (size_t b = a; b <= n; b++) {
                size_t cuts[2] = {a, b};
                stream_in_chunks(r, texts[t], n, cuts, 2, &st);
                if (st.len != one.len || (one.len && memcmp(st.data, one.data, one.len) != 0))
                    fail_msg("text %zu cut %zu,%zu: '%s' vs '%s'", t, a, b, st.data, one.data);
                sp_buf_free(&st);
            }
        }
        /* Byte by byte. */
        {
            size_t cuts[64];
            for (size_t i = 0; i < n; i++)
                cuts[i] = i + 1;
            stream_in_chunks(r, texts[t], n, cuts, n, &st);
            assert_int_equal(st.len, one.len);
            assert_memory_equal(st.data, one.data, one.len);
            sp_buf_free(&st);
        }
        sp_buf_free(&one);
    }
    sp_redactor_free(r);
}

static void stream_holds_back_less_than_the_longest_form(void **state)
{
    struct sp_redactor *r = redactor_of("0123456789", 10);
    struct sp_err err;
    struct sp_redact_stream *s = sp_redact_stream_new(r, &err);
    struct sp_buf out;
    char chunk[1000];

    assert_non_null(s);
    sp_buf_init(&out, 0, 0);
    memset(chunk, 'q', sizeof(chunk));
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sp_redact_stream_feed(s, chunk, sizeof(chunk), &out, &err), 0);
        /* The longest form of a 10-byte digit string is 16 characters (base64). */
        assert_true(sp_redact_stream_pending(s) <= 15);
        assert_int_equal(out.len + sp_redact_stream_pending(s), (size_t)(i + 1) * sizeof(chunk));
    }
    assert_int_equal(sp_redact_stream_feed(s, "01234", 5, &out, &err), 0);
    /* The stream may be used after its redactor is gone. */
    sp_redactor_free(r);
    assert_int_equal(sp_redact_stream_feed(s, "56789", 5, &out, &err), 0);
    assert_int_equal(sp_redact_stream_finish(s, &out, &err), 0);
    assert_int_equal(out.len, 100 * sizeof(chunk) + 10);
    assert_memory_equal(out.data + out.len - 10, "[REDACTED]", 10);
    sp_buf_reset(&out);
    /* A finished stream starts over as a new input. */
    assert_int_equal(sp_redact_stream_feed(s, "x0123456789", 11, &out, &err), 0);
    assert_int_equal(sp_redact_stream_finish(s, &out, &err), 0);
    assert_string_equal(out.data, "x[REDACTED]");
    sp_buf_free(&out);
    sp_redact_stream_free(s);
    sp_redact_stream_free(NULL);
}

static void values_added_later_reach_new_streams_only(void **state)
{
    struct sp_redactor *r = redactor_of("first-secret", 12);
    struct sp_err err;
    struct sp_redact_stream *s = sp_redact_stream_new(r, &err), *s2;
    struct sp_buf out;

    assert_non_null(s);
    assert_int_equal(sp_redactor_add(r, "second-secret", 13, &err), 0);
    sp_buf_init(&out, 0, 0);
    assert_int_equal(sp_redact_stream_feed(s, "first-secret second-secret", 26, &out, &err), 0);
    assert_int_equal(sp_redact_stream_finish(s, &out, &err), 0);
    assert_string_equal(out.data, "[REDACTED] second-secret");
    sp_buf_reset(&out);
    s2 = sp_redact_stream_new(r, &err);
    assert_non_null(s2);
    assert_int_equal(sp_redact_stream_feed(s2, "first-secret second-secret", 26, &out, &err), 0);
    assert_int_equal(sp_redact_stream_finish(s2, &out, &err), 0);
    assert_string_equal(out.data, "[REDACTED] [REDACTED]");
    sp_buf_free(&out);
    sp_redact_stream_free(s);
    sp_redact_stream_free(s2);
    sp_redactor_free(r);
}

static void redactor_plugs_into_the_logger(void **state)
{
    struct sp_redactor *r = redactor_of("hunter2!", 8);
    sp_redact_fn fn = sp_redactor_log_hook;
    struct sp_log_ctx ctx = {"req-1", sp_redactor_log_hook, r};
    struct sp_buf out;

    sp_buf_init(&out, 0, 0);
    assert_int_equal(fn(r, "{\"msg\":\"pw=hunter2%21\"}", 23, &out), 0);
    assert_string_equal(out.data, "{\"msg\":\"pw=[REDACTED]\"}");
    sp_buf_free(&out);
    assert_ptr_equal(ctx.redact_ctx, r);
    sp_redactor_free(r);
}

/* A value of 2,000 'a' over 1 MiB of 'a': a match ends at every byte. */
static void matching_stays_linear_on_repetitive_input(void **state)
{
    size_t vlen = 2000, n = 1 << 20;
    char *v = malloc(vlen), *text = malloc(n);
    struct sp_redactor *r;
    struct sp_buf out;
    clock_t t0 = clock();

    memset(v, 'a', vlen);
    memset(text, 'a', n);
    r = redactor_of(v, vlen);
    redact(r, text, n, &out);
    assert_string_equal(out.data, "[REDACTED]");
    sp_buf_free(&out);
    text[n / 2] = 'b';
    redact(r, text, n, &out);
    assert_string_equal(out.data, "[REDACTED]b[REDACTED]");
    sp_buf_free(&out);
    /* Generous: quadratic behaviour would take minutes. */
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0);
    sp_redactor_free(r);
    free(v);
    free(text);
}

/* ---- property test: random values leave no trace in any form ---- */

static size_t random_value(unsigned char *v, size_t min, size_t max, unsigned *seed)
{
    static const char special[] = "\"\\&=+%/ \r\n\t\x7f~.-_<>:?#[]!'()*@";
    size_t n = min + (size_t)rand_r(seed) % (max - min);

    for (size_t i = 0; i < n; i++) {
        int k = rand_r(seed) % 4;
        if (k == 0)
            v[i] = (unsigned char)special[rand_r(seed) % (sizeof(special) - 1)];
        else if (k == 1)
            v[i] = (unsigned char)('a' + rand_r(seed) % 26);
        else
            v[i] = (unsigned char)(rand_r(seed) & 0xFF);
    }
    return n;
}

/* Lower-case the hex digits after each '%'. */
static void lower_hex(struct sp_buf *b)
{
    for (size_t i = 0; i + 2 < b->len; i++) {
        if (b->data[i] == '%') {
            b->data[i + 1] = (char)(b->data[i + 1] | (b->data[i + 1] >= 'A' ? 0x20 : 0));
            b->data[i + 2] = (char)(b->data[i + 2] | (b->data[i + 2] >= 'A' ? 0x20 : 0));
            i += 2;
        }
    }
}

/* Text forms of v, built here independently of redact.c; the whole form is
 * the value's footprint. */
static size_t text_forms(const unsigned char *v, size_t n, struct sp_buf *f)
{
    struct sp_err err;
    size_t k = 0;

    for (int i = 0; i < 8; i++)
        sp_buf_init(&f[i], 0, 1);
    assert_int_equal(sp_buf_add(&f[k++], v, n, &err), 0);
    assert_int_equal(sp_text_pct_encode(&f[k++], v, n, &err), 0);
    assert_int_equal(sp_text_pct_encode(&f[k], v, n, &err), 0);
    lower_hex(&f[k++]);
    assert_int_equal(sp_text_form_encode(&f[k++], v, n, &err), 0);
    assert_int_equal(sp_text_form_encode(&f[k], v, n, &err), 0);
    lower_hex(&f[k++]);
    assert_int_equal(sp_json_escape(&f[k++], (const char *)v, n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '/')
            assert_int_equal(sp_buf_add(&f[k], "\\/", 2, &err), 0);
        else
            assert_int_equal(sp_json_escape(&f[k], (const char *)v + i, 1, &err), 0);
    }
    k++;
    return k;
}

static void check_no_window(const char *what, const char *out, size_t olen, const char *form,
                            size_t a, size_t b)
{
    size_t w = b - a < 6 ? b - a : 6;

    for (size_t i = a; i + w <= b; i++) {
        if (memmem(out, olen, form + i, w))
            fail_msg("%s: '%.*s' of the value's form survived in '%.*s'", what, (int)w, form + i,
                     (int)olen, out);
    }
}

static void random_values_leave_no_trace(void **state)
{
    unsigned seed = 424242;
    unsigned char v[48], pre[6], post[4], raw[64];
    char text[400], enc[200];
    struct sp_buf f[8], out;

    for (int iter = 0; iter < 2000; iter++) {
        size_t n = random_value(v, 8, sizeof(v), &seed);
        struct sp_redactor *r = redactor_of((const char *)v, n);
        size_t nf = text_forms(v, n, f);
        size_t pl = (size_t)rand_r(&seed) % 6, sl = (size_t)rand_r(&seed) % 4, tl, el;

        for (size_t i = 0; i < nf; i++) {
            tl = (size_t)snprintf(text, sizeof(text), "<<");
            memcpy(text + tl, f[i].data, f[i].len);
            tl += f[i].len;
            memcpy(text + tl, ">>", 2);
            redact(r, text, tl + 2, &out);
            if (out.len != 14 || memcmp(out.data, "<<[REDACTED]>>", 14) != 0)
                fail_msg("iter %d form %zu: got '%.*s'", iter, i, (int)out.len, out.data);
            sp_buf_free(&out);
            sp_buf_free(&f[i]);
        }
        /* base64 and base64url of (pl random bytes, v, sl random bytes). */
        for (size_t i = 0; i < pl; i++)
            pre[i] = (unsigned char)rand_r(&seed);
        for (size_t i = 0; i < sl; i++)
            post[i] = (unsigned char)rand_r(&seed);
        memcpy(raw, pre, pl);
        memcpy(raw + pl, v, n);
        memcpy(raw + pl + n, post, sl);
        el = sp_base64_encode(enc, raw, pl + n + sl);
        for (int url = 0; url < 2; url++) {
            /* Characters that depend on v alone: character i holds bits
             * [6i, 6i + 6) and v holds bits [8pl, 8(pl + n)). */
            size_t a = (pl * 8 + 5) / 6, b = (pl + n) * 8 / 6;
            for (size_t i = 0; url && i < el; i++)
                enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
            tl = (size_t)snprintf(text, sizeof(text), "x %s y", enc);
            redact(r, text, tl, &out);
            assert_non_null(strstr(out.data, "[REDACTED]"));
            check_no_window("base64", out.data, out.len, enc, a > b ? b : a, b);
            /* v last: its final characters and the padding are gone too. */
            if (sl == 0 && (out.len < 12 || memcmp(out.data + out.len - 12, "[REDACTED] y", 12)))
                fail_msg("iter %d: tail of '%s' survived: '%s'", iter, text, out.data);
            sp_buf_free(&out);
        }
        sp_redactor_free(r);
    }
}

/* Random texts with values cut across random chunk boundaries. */
static void random_streams_equal_one_shot(void **state)
{
    unsigned seed = 99;
    unsigned char v[3][24];
    char text[600];
    struct sp_buf one, st;

    for (int iter = 0; iter < 500; iter++) {
        struct sp_redactor *r = sp_redactor_new();
        struct sp_err err;
        size_t n = 0, cuts[5];

        for (int k = 0; k < 3; k++) {
            size_t len = random_value(v[k], 1, sizeof(v[k]), &seed);
            assert_int_equal(sp_redactor_add(r, v[k], len, &err), 0);
            while (n + 60 < sizeof(text) && rand_r(&seed) % 3) {
                struct sp_buf b;
                const char *src = (const char *)v[k];
                size_t sl = len;

                sp_buf_init(&b, 0, 0);
                assert_int_equal(sp_text_pct_encode(&b, v[k], len, &err), 0);
                if (rand_r(&seed) % 2) {
                    src = b.data;
                    sl = b.len;
                }
                if (sl > 50)
                    sl = 50;
                memcpy(text + n, src, sl);
                n += sl;
                text[n++] = (char)('a' + rand_r(&seed) % 26);
                sp_buf_free(&b);
            }
        }
        for (size_t c = 0; c < 5; c++)
            cuts[c] = n ? (size_t)rand_r(&seed) % (n + 1) : 0;
        for (size_t c = 1; c < 5; c++) {
            for (size_t d = c; d > 0 && cuts[d - 1] > cuts[d]; d--) {
                size_t x = cuts[d];
                cuts[d] = cuts[d - 1];
                cuts[d - 1] = x;
            }
        }
        redact(r, text, n, &one);
        stream_in_chunks(r, text, n, cuts, 5, &st);
        assert_int_equal(st.len, one.len);
        assert_memory_equal(st.data, one.data, one.len);
        sp_buf_free(&one);
        sp_buf_free(&st);
        sp_redactor_free(r);
    }
}

/* Naive oracle: every occurrence of every value, overlapping ones merged,
 * each merged run replaced once. */
static size_t naive_redact(char vals[][8], const size_t *vl, size_t nv, const char *t, size_t n,
                           char *out)
{
    size_t o = 0, i = 0;

    while (i < n) {
        size_t s = SIZE_MAX, e = 0;
        /* Leftmost match at or after i, then grow it while matches overlap. */
        for (size_t p = i; p < n && s == SIZE_MAX; p++) {
            for (size_t k = 0; k < nv; k++) {
                if (vl[k] <= n - p && memcmp(t + p, vals[k], vl[k]) == 0) {
                    s = p;
                    e = p + vl[k] > e ? p + vl[k] : e;
                }
            }
        }
        if (s == SIZE_MAX) {
            memcpy(out + o, t + i, n - i);
            return o + n - i;
        }
        for (size_t p = s + 1; p < e; p++) {
            for (size_t k = 0; k < nv; k++) {
                if (vl[k] <= n - p && memcmp(t + p, vals[k], vl[k]) == 0 && p + vl[k] > e)
                    e = p + vl[k];
            }
        }
        memcpy(out + o, t + i, s - i);
        o += s - i;
        memcpy(out + o, "[REDACTED]", 10);
        o += 10;
        i = e;
    }
    return o;
}

/* Values and texts over {a, b}: overlapping partial matches everywhere, the
 * case that exercises the automaton's failure links. Over this alphabet no
 * encoded form differs from the raw value or can occur (base64 of 'a' and
 * 'b' never yields 'a' or 'b'), so the naive search is an exact oracle. */
static void automaton_agrees_with_naive_search(void **state)
{
    unsigned seed = 5;
    char vals[4][8], text[80], want[1000];
    size_t vl[4];
    struct sp_buf out, st;

    for (int iter = 0; iter < 3000; iter++) {
        struct sp_redactor *r = sp_redactor_new();
        struct sp_err err;
        size_t nv = 1 + (size_t)rand_r(&seed) % 4, n = (size_t)rand_r(&seed) % sizeof(text), wl;
        size_t cuts[3];

        for (size_t k = 0; k < nv; k++) {
            vl[k] = 1 + (size_t)rand_r(&seed) % 7;
            for (size_t i = 0; i < vl[k]; i++)
                vals[k][i] = rand_r(&seed) % 2 ? 'a' : 'b';
            assert_int_equal(sp_redactor_add(r, vals[k], vl[k], &err), 0);
        }
        for (size_t i = 0; i < n; i++)
            text[i] = "aaaaaaabbbbbbbc"[rand_r(&seed) % 15];
        wl = naive_redact(vals, vl, nv, text, n, want);
        redact(r, text, n, &out);
        if (out.len != wl || (wl && memcmp(out.data, want, wl) != 0))
            fail_msg("iter %d: '%.*s' -> '%.*s', want '%.*s'", iter, (int)n, text, (int)out.len,
                     out.data, (int)wl, want);
        for (size_t c = 0; c < 3; c++)
            cuts[c] = (size_t)rand_r(&seed) % (n + 1);
        if (cuts[0] > cuts[1]) {
            size_t x = cuts[0];
            cuts[0] = cuts[1];
            cuts[1] = x;
        }
        if (cuts[1] > cuts[2]) {
            size_t x = cuts[1];
            cuts[1] = cuts[2];
            cuts[2] = x;
        }
        if (cuts[0] > cuts[1]) {
            size_t x = cuts[0];
            cuts[0] = cuts[1];
            cuts[1] = x;
        }
        stream_in_chunks(r, text, n, cuts, 3, &st);
        assert_int_equal(st.len, wl);
        if (wl)
            assert_memory_equal(st.data, want, wl);
        sp_buf_free(&out);
        sp_buf_free(&st);
        sp_redactor_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_listed_form_is_redacted),
        cmocka_unit_test(json_variants_are_redacted),
        cmocka_unit_test(hex_case_and_base64url_are_folded),
        cmocka_unit_test(short_values_are_still_redacted),
        cmocka_unit_test(overlapping_matches_merge),
        cmocka_unit_test(text_without_values_passes_unchanged),
        cmocka_unit_test(streaming_at_every_split_equals_one_shot),
        cmocka_unit_test(stream_holds_back_less_than_the_longest_form),
        cmocka_unit_test(values_added_later_reach_new_streams_only),
        cmocka_unit_test(redactor_plugs_into_the_logger),
        cmocka_unit_test(matching_stays_linear_on_repetitive_input),
        cmocka_unit_test(random_values_leave_no_trace),
        cmocka_unit_test(random_streams_equal_one_shot),
        cmocka_unit_test(automaton_agrees_with_naive_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
