/*
 * scan.c - finding secret references ($secret:<token>, $Secret{KEY},
 * $Token{KEY}) in byte ranges, plain or with percent-encoded punctuation.
 *
 * Speed matters more here than anywhere else in the resolver: every request
 * body passes through it and almost none holds a reference. So the scanner
 * never looks at a byte twice in the common case: it jumps from one
 * candidate start to the next ('$' with memchr; '$' or "%24" with a vector
 * loop, 32 bytes a round, when percent forms count) and only then checks
 * the spelling. A PCRE2 JIT pattern for the same grammar runs at under
 * 2 GB/s; this runs at memchr speed without percent forms and above
 * 10 GB/s with them (bench/bench_resolver.c).
 */
#include "text.h"

#include <string.h>

#define TOKEN_MIN 16
#define TOKEN_MAX 256
#define KEY_MAX 128

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Length of the run of [A-Za-z0-9_-] at p[i..n), stopping once it passes
 * limit (the caller then knows it is too long). */
static size_t name_run(const unsigned char *p, size_t n, size_t i, size_t limit)
{
    size_t j = i;

    while (j < n && j - i <= limit && name_char(p[j]))
        j++;
    return j - i;
}

/* Does p[i..n) start with the punctuation c, plain or (when pct) as %XX with
 * hex digits hi and lo in either case? Returns its length (1 or 3), or 0. */
static size_t punct_at(const unsigned char *p, size_t n, size_t i, int pct, unsigned char c,
                       unsigned char hi, unsigned char lo)
{
    if (i < n && p[i] == c)
        return 1;
    if (pct && i + 2 < n && p[i] == '%' && p[i + 1] == hi && (p[i + 2] | 0x20) == lo)
        return 3;
    return 0;
}

/* A reference starting at p[i] ('$' or "%24")? Fill *ref and return 1. */
static int match_at(const unsigned char *p, size_t n, size_t i, int pct, struct sp_text_ref *ref)
{
    size_t j = i, d, kl;
    int named, enc = 0;

    if (p[i] == '$') {
        j += 1;
    } else if (pct && i + 2 < n && p[i] == '%' && p[i + 1] == '2' && p[i + 2] == '4') {
        j += 3;
        enc = 1;
    } else {
        return 0;
    }
    if (n - j >= 7 && memcmp(p + j, "secret", 6) == 0) {
        named = 0;
        j += 6;
        d = punct_at(p, n, j, pct, ':', '3', 'a');
    } else if (n - j >= 7 && memcmp(p + j, "Secret", 6) == 0) {
        named = 1;
        j += 6;
        d = punct_at(p, n, j, pct, '{', '7', 'b');
    } else if (n - j >= 6 && memcmp(p + j, "Token", 5) == 0) {
        named = 1;
        j += 5;
        d = punct_at(p, n, j, pct, '{', '7', 'b');
    } else {
        return 0;
    }
    if (d == 0)
        return 0;
    enc |= d == 3;
    j += d;
    kl = name_run(p, n, j, named ? KEY_MAX : TOKEN_MAX);
    ref->key = (const char *)p + j;
    ref->key_len = kl;
    j += kl;
    if (named) {
        if (kl < 1 || kl > KEY_MAX)
            return 0;
        d = punct_at(p, n, j, pct, '}', '7', 'd');
        if (d == 0)
            return 0;
        enc |= d == 3;
        j += d;
        ref->kind = SP_TEXT_REF_NAMED;
    } else {
        if (kl < TOKEN_MIN || kl > TOKEN_MAX)
            return 0;
        ref->kind = SP_TEXT_REF_TOKEN;
    }
    ref->start = i;
    ref->len = j - i;
    ref->percent = enc;
    return 1;
}

typedef unsigned char v16u __attribute__((vector_size(16)));

static v16u load16(const unsigned char *p)
{
    v16u v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static v16u splat(unsigned char c)
{
    v16u v;

    memset(&v, c, sizeof(v));
    return v;
}

/* Offset of the next '$' or "%24" at or after i, or n. The vector loop
 * tests 32 bytes per round for either pattern (generic GCC vectors: SSE2 on
 * x86-64, NEON on arm64), so a form body full of '%' costs no more than one
 * without; only a block with a hit is scanned byte by byte. */
static size_t next_candidate_pct(const unsigned char *p, size_t n, size_t i)
{
    const v16u dollar = splat('$'), pc = splat('%'), two = splat('2'), four = splat('4');

    while (i + 34 <= n) {
        v16u a0 = load16(p + i), a1 = load16(p + i + 16);
        v16u b0 = load16(p + i + 1), b1 = load16(p + i + 17);
        v16u c0 = load16(p + i + 2), c1 = load16(p + i + 18);
        v16u m0 = (v16u)((a0 == dollar) | ((a0 == pc) & (b0 == two) & (c0 == four)));
        v16u m1 = (v16u)((a1 == dollar) | ((a1 == pc) & (b1 == two) & (c1 == four)));
        v16u m = m0 | m1;
        unsigned long long w[2];

        memcpy(w, &m, sizeof(w));
        if (w[0] | w[1])
            break;
        i += 32;
    }
    for (; i < n; i++) {
        if (p[i] == '$' || (p[i] == '%' && i + 2 < n && p[i + 1] == '2' && p[i + 2] == '4'))
            return i;
    }
    return n;
}

static size_t next_candidate(const unsigned char *p, size_t n, size_t i, int pct)
{
    const unsigned char *q;

    if (pct)
        return next_candidate_pct(p, n, i);
    q = memchr(p + i, '$', n - i);
    return q ? (size_t)(q - p) : n;
}

int sp_text_scan(const char *text, size_t n, size_t from, unsigned flags, struct sp_text_ref *ref)
{
    const unsigned char *p = (const unsigned char *)text;
    int pct = (flags & SP_TEXT_SCAN_PERCENT) != 0;
    size_t i = from;

    while (i < n) {
        i = next_candidate(p, n, i, pct);
        if (i >= n)
            break;
        if (match_at(p, n, i, pct, ref))
            return 1;
        i++;
    }
    return 0;
}

int sp_text_has_ref(const char *p, size_t n, unsigned flags)
{
    struct sp_text_ref ref;

    return sp_text_scan(p, n, 0, flags, &ref);
}
