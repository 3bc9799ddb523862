/*
 * bench_resolver.c - figures for the resolver's text engine: reference
 * scanning (ours and, for comparison, a PCRE2 JIT pattern), substitutions
 * per second, and redaction throughput one-shot and streaming. Prints
 * figures; never fails on speed. Build Release for meaningful numbers.
 */
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text.h"

#define MIB (1u << 20)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile size_t sink;

/* Fill a 1 MiB body with JSON-ish text: no '$', no '%'. */
static void fill_text(char *b, size_t n)
{
    static const char words[] = "{\"id\": 12345, \"name\": \"lorem ipsum dolor\", \"tags\": "
                                "[\"alpha\", \"beta\"], \"text\": \"sit amet, consectetur\"},\n";

    for (size_t i = 0; i < n; i++)
        b[i] = words[i % (sizeof(words) - 1)];
}

/* A form body: every third byte a '%' (percent-encoded UTF-8 text). */
static void fill_form(char *b, size_t n)
{
    static const char words[] = "q=%C3%A9t%C3%A9+%C3%A0+Paris&x=%E2%82%AC%20%2F%3D&";

    for (size_t i = 0; i < n; i++)
        b[i] = words[i % (sizeof(words) - 1)];
}

static void put_refs(char *b, size_t n, const char *ref, int count)
{
    size_t rl = strlen(ref);

    for (int i = 0; i < count; i++)
        memcpy(b + (size_t)(i + 1) * (n / (size_t)(count + 1)), ref, rl);
}

static void bench_scan(const char *label, const char *b, size_t n, unsigned flags)
{
    double t0 = now_s(), t = 0;
    size_t rounds = 0, found = 0;

    do {
        struct sp_text_ref ref;
        size_t from = 0;
        while (sp_text_scan(b, n, from, flags, &ref)) {
            found++;
            from = ref.start + ref.len;
        }
        rounds++;
        t = now_s() - t0;
    } while (t < 0.5);
    sink += found;
    printf("scan   %-44s %7.2f GB/s  (%zu refs per pass)\n", label,
           (double)n * (double)rounds / t / 1e9, found / rounds);
}

static void bench_pcre(const char *label, const char *b, size_t n)
{
    static const char pat[] =
        "(?:\\$|%24)(?:secret(?::|%3[aA])[A-Za-z0-9_-]{16,256}(?![A-Za-z0-9_-])|"
        "(?:Secret|Token)(?:\\{|%7[bB])[A-Za-z0-9_-]{1,128}(?:\\}|%7[dD]))";
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    pcre2_match_data *md;
    double t0, t = 0;
    size_t rounds = 0;

    if (!re)
        return;
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    md = pcre2_match_data_create_from_pattern(re, NULL);
    t0 = now_s();
    do {
        PCRE2_SIZE from = 0;
        while (pcre2_match(re, (PCRE2_SPTR)b, n, from, 0, md, NULL) > 0)
            from = pcre2_get_ovector_pointer(md)[1];
        rounds++;
        t = now_s() - t0;
    } while (t < 0.5);
    printf("pcre2  %-44s %7.2f GB/s\n", label, (double)n * (double)rounds / t / 1e9);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static int on_lookup(void *ctx, const struct sp_text_ref *ref, const unsigned char **value,
                     size_t *vlen, struct sp_err *err)
{
    *value = (const unsigned char *)"sk_live_51H8abcdefghijklmnopqrstuvwxyz0123456789";
    *vlen = 48;
    return 0;
}

static void bench_subst(const char *label, enum sp_text_place place, const char *in)
{
    struct sp_buf out;
    struct sp_err err;
    size_t n = strlen(in), rounds = 0;
    double t0 = now_s(), t = 0;

    sp_buf_init(&out, MIB, 1);
    do {
        for (int i = 0; i < 1000; i++) {
            sp_buf_reset(&out);
            if (sp_text_subst(place, in, n, on_lookup, NULL, &out, &err) < 0) {
                printf("subst  %s: %s\n", label, err.msg);
                sp_buf_free(&out);
                return;
            }
        }
        rounds += 1000;
        t = now_s() - t0;
    } while (t < 0.5);
    printf("subst  %-44s %7.2f M/s\n", label, (double)rounds / t / 1e6);
    sp_buf_free(&out);
}

static struct sp_redactor *make_redactor(void)
{
    static const char *values[] = {"sk_live_51H8abcdefghijklmnopqrstuvwxyz0123456789",
                                   "p@ssw0rd with spaces/and&symbols", "AKIAIOSFODNN7EXAMPLE",
                                   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                   "ghp_0123456789abcdefABCDEF0123456789ab"};
    struct sp_redactor *r = sp_redactor_new();
    struct sp_err err;

    for (size_t i = 0; r && i < SP_ARRAY_LEN(values); i++) {
        if (sp_redactor_add(r, values[i], strlen(values[i]), &err) < 0) {
            sp_redactor_free(r);
            return NULL;
        }
    }
    return r;
}

static void bench_redact(const char *label, struct sp_redactor *r, const char *b, size_t n,
                         size_t chunk)
{
    struct sp_buf out;
    struct sp_err err;
    size_t rounds = 0;
    double t0 = now_s(), t = 0;

    sp_buf_init(&out, 0, 0);
    do {
        sp_buf_reset(&out);
        if (chunk == 0) {
            if (sp_redactor_redact(r, b, n, &out, &err) < 0)
                break;
        } else {
            struct sp_redact_stream *s = sp_redact_stream_new(r, &err);
            for (size_t at = 0; s && at < n; at += chunk) {
                if (sp_redact_stream_feed(s, b + at, n - at < chunk ? n - at : chunk, &out, &err) <
                    0)
                    break;
            }
            if (s && sp_redact_stream_finish(s, &out, &err) < 0)
                printf("redact %s: %s\n", label, err.msg);
            sp_redact_stream_free(s);
        }
        rounds++;
        t = now_s() - t0;
    } while (t < 0.5);
    printf("redact %-44s %7.0f MB/s\n", label, (double)n * (double)rounds / t / 1e6);
    sink += out.len;
    sp_buf_free(&out);
}

static void bench_redactor_build(void)
{
    size_t rounds = 0;
    double t0 = now_s(), t = 0;
    struct sp_buf out;
    struct sp_err err;

    sp_buf_init(&out, 0, 0);
    do {
        struct sp_redactor *r = make_redactor();
        sp_buf_reset(&out);
        if (!r || sp_redactor_redact(r, "x", 1, &out, &err) < 0)
            break;
        sp_redactor_free(r);
        rounds++;
        t = now_s() - t0;
    } while (t < 0.5);
    printf("redact %-44s %7.1f us\n", "build for 5 values (new+add+first use)",
           t / (double)rounds * 1e6);
    sp_buf_free(&out);
}

int main(void)
{
    char *text = malloc(MIB), *refs = malloc(MIB), *form = malloc(MIB), *hits = malloc(MIB);
    struct sp_redactor *r = make_redactor();

    if (!text || !refs || !form || !hits || !r) {
        (void)fprintf(stderr, "out of memory\n");
        goto done;
    }
    fill_text(text, MIB);
    memcpy(refs, text, MIB);
    put_refs(refs, MIB, "$Secret{STRIPE_KEY}", 10);
    fill_form(form, MIB);

    bench_scan("1 MiB JSON, no reference", text, MIB, 0);
    bench_scan("1 MiB JSON, no reference, percent forms on", text, MIB, SP_TEXT_SCAN_PERCENT);
    bench_scan("1 MiB JSON, 10 references", refs, MIB, 0);
    bench_scan("1 MiB JSON, 10 references, percent forms on", refs, MIB, SP_TEXT_SCAN_PERCENT);
    bench_scan("1 MiB form body, every 3rd byte '%'", form, MIB, SP_TEXT_SCAN_PERCENT);
    put_refs(form, MIB, "%24Secret%7BSTRIPE_KEY%7D", 10);
    bench_scan("1 MiB form body, 10 references", form, MIB, SP_TEXT_SCAN_PERCENT);
    bench_pcre("1 MiB JSON, no reference (JIT)", text, MIB);
    bench_pcre("1 MiB form body, 10 references (JIT)", form, MIB);

    bench_subst("header 'Bearer $Secret{K}'", SP_TEXT_HEADER, "Bearer $Secret{STRIPE_KEY}");
    bench_subst("query, percent-encoded reference", SP_TEXT_QUERY,
                "a=1&key=%24Secret%7BSTRIPE_KEY%7D&b=2");
    bench_subst("Authorization Basic, reference inside", SP_TEXT_AUTHORIZATION,
                "Basic YXBpOiRTZWNyZXR7U1RSSVBFX0tFWX0=");
    bench_subst("JSON body 3 references", SP_TEXT_BODY_JSON,
                "{\"a\":\"$Secret{A}\",\"n\":[1,2,3],\"b\":\"x $Token{B} y\",\"c\":"
                "\"$secret:AbCdEfGhIjKlMnOpQrStUv\"}");

    memcpy(hits, text, MIB);
    put_refs(hits, MIB, "sk_live_51H8abcdefghijklmnopqrstuvwxyz0123456789", 100);
    put_refs(hits + 7, MIB - 7, "d0BzdzByZCB3aXRoIHNwYWNlcy9hbmQmc3ltYm9scw", 50);
    bench_redactor_build();
    bench_redact("1 MiB response, no match, one-shot", r, text, MIB, 0);
    bench_redact("1 MiB response, 150 matches, one-shot", r, hits, MIB, 0);
    bench_redact("1 MiB response, no match, 16 KiB chunks", r, text, MIB, 16384);
    bench_redact("1 MiB response, 150 matches, 16 KiB chunks", r, hits, MIB, 16384);
    bench_redact("1 MiB form body ('%'-heavy), no match", r, form, MIB, 0);

done:
    sp_redactor_free(r);
    free(text);
    free(refs);
    free(form);
    free(hits);
    return 0;
}
