/*
 * sigv4_key.c - SigV4 signing keys: HMAC-SHA256, the key derivation
 * ("AWS4" + secret -> date -> region -> service -> "aws4_request") and the
 * per-thread cache of derived keys; also the small validators and the
 * percent-decoder the other sigv4 files share.
 */
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4_int.h"

#define CACHE_DEFAULT 32
#define CACHE_MAX 4096
#define MAX_SECRET 1024

int sp_sigv4_hmac(const void *key, size_t keylen, const void *msg, size_t len, uint8_t out[32],
                  struct sp_err *err)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

    if (!md || mbedtls_md_hmac(md, key, keylen, msg, len, out) != 0)
        return sp_err_set(err, SP_E_INTERNAL, "HMAC-SHA256 failed");
    return 0;
}

int sp_sigv4_valid_name(const char *s, size_t n)
{
    if (!s || n == 0 || n > SP_SIGV4_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int sp_sigv4_valid_date(const char *s, size_t n)
{
    return s && n == 8 && all_digits(s, 8);
}

int sp_sigv4_valid_amz_date(const char *s, size_t n)
{
    return s && n == SP_SIGV4_AMZ_DATE_LEN && all_digits(s, 8) && s[8] == 'T' &&
           all_digits(s + 9, 6) && s[15] == 'Z';
}

int sp_sigv4_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sp_sigv4_pct_decode(const char *p, size_t n, struct sp_buf *out, struct sp_err *err)
{
    size_t i = 0;

    if (sp_buf_reserve(out, n, err) < 0)
        return -1;
    while (i < n) {
        const char *pct = memchr(p + i, '%', n - i);
        size_t run = pct ? (size_t)(pct - (p + i)) : n - i;
        int hi, lo;
        char c;

        if (sp_buf_add(out, p + i, run, err) < 0)
            return -1;
        i += run;
        if (i == n)
            break;
        if (n - i < 3 || (hi = sp_sigv4_hexval((unsigned char)p[i + 1])) < 0 ||
            (lo = sp_sigv4_hexval((unsigned char)p[i + 2])) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "malformed percent-escape in the URL");
        c = (char)(hi << 4 | lo);
        if (sp_buf_add(out, &c, 1, err) < 0)
            return -1;
        i += 3;
    }
    return 0;
}

int sp_sigv4_scope(const struct sp_sigv4_opts *opts, char *scope, size_t scopesz,
                   struct sp_err *err)
{
    size_t rl, sl;
    char *p = scope;

    if (!opts->amz_date || !sp_sigv4_valid_amz_date(opts->amz_date, strlen(opts->amz_date)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 date is not of the form YYYYMMDDTHHMMSSZ");
    if (!opts->region || !opts->service)
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 region and service are required");
    rl = strlen(opts->region);
    sl = strlen(opts->service);
    if (!sp_sigv4_valid_name(opts->region, rl))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 region must match [a-z0-9-]{1,63}");
    if (!sp_sigv4_valid_name(opts->service, sl))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 service must match [a-z0-9-]{1,63}");
    SP_ASSERT(scopesz >= 8 + rl + sl + 16);
    memcpy(p, opts->amz_date, 8);
    p += 8;
    *p++ = '/';
    memcpy(p, opts->region, rl);
    p += rl;
    *p++ = '/';
    memcpy(p, opts->service, sl);
    p += sl;
    memcpy(p, "/aws4_request", sizeof("/aws4_request"));
    return 0;
}

/* ---- derivation ---- */

static int derive(const struct sp_sigv4_creds *creds, const char *date, const char *region,
                  const char *service, uint8_t key[SP_SIGV4_KEY_LEN], struct sp_err *err)
{
    uint8_t seed[4 + MAX_SECRET], k1[32], k2[32];
    size_t seedlen = 4 + creds->secret_key_len;
    int rc;

    seed[0] = 'A'; /* "AWS4" + secret, not a C string */
    seed[1] = 'W';
    seed[2] = 'S';
    seed[3] = '4';
    memcpy(seed + 4, creds->secret_key, creds->secret_key_len);
    rc = sp_sigv4_hmac(seed, seedlen, date, 8, k1, err);
    sp_wipe(seed, seedlen);
    if (rc == 0)
        rc = sp_sigv4_hmac(k1, 32, region, strlen(region), k2, err);
    if (rc == 0)
        rc = sp_sigv4_hmac(k2, 32, service, strlen(service), k1, err);
    if (rc == 0)
        rc = sp_sigv4_hmac(k1, 32, "aws4_request", 12, key, err);
    sp_wipe(k1, sizeof(k1));
    sp_wipe(k2, sizeof(k2));
    return rc;
}

struct cache_entry {
    uint8_t id[32]; /* SHA-256(salt || secret key) */
    char date[9];
    char region[SP_SIGV4_MAX_NAME + 1];
    char service[SP_SIGV4_MAX_NAME + 1];
    uint8_t key[SP_SIGV4_KEY_LEN];
    uint64_t used; /* 0: empty */
};

struct sp_sigv4_key_cache {
    size_t cap;
    uint64_t tick, hits, misses;
    uint8_t salt[16];
    struct cache_entry e[];
};

struct sp_sigv4_key_cache *sp_sigv4_key_cache_new(size_t capacity, struct sp_err *err)
{
    struct sp_sigv4_key_cache *c;

    if (capacity == 0)
        capacity = CACHE_DEFAULT;
    if (capacity > CACHE_MAX) {
        sp_err_set(err, SP_E_CONFIG, "SigV4 key cache capacity must be 1..%d", CACHE_MAX);
        return NULL;
    }
    c = calloc(1, sizeof(*c) + capacity * sizeof(c->e[0]));
    if (!c) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    c->cap = capacity;
    if (sp_random(c->salt, sizeof(c->salt), err) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void sp_sigv4_key_cache_free(struct sp_sigv4_key_cache *c)
{
    if (!c)
        return;
    sp_wipe(c, sizeof(*c) + c->cap * sizeof(c->e[0]));
    free(c);
}

void sp_sigv4_key_cache_stats(const struct sp_sigv4_key_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c ? c->hits : 0;
    *misses = c ? c->misses : 0;
}

static int secret_id(const struct sp_sigv4_key_cache *c, const struct sp_sigv4_creds *creds,
                     uint8_t id[32], struct sp_err *err)
{
    mbedtls_sha256_context h;
    int rc;

    mbedtls_sha256_init(&h);
    rc = mbedtls_sha256_starts_ret(&h, 0);
    if (rc == 0)
        rc = mbedtls_sha256_update_ret(&h, c->salt, sizeof(c->salt));
    if (rc == 0)
        rc = mbedtls_sha256_update_ret(&h, (const unsigned char *)creds->secret_key,
                                       creds->secret_key_len);
    if (rc == 0)
        rc = mbedtls_sha256_finish_ret(&h, id);
    mbedtls_sha256_free(&h); /* zeroizes the state, which saw the secret */
    return rc == 0 ? 0 : sp_err_set(err, SP_E_INTERNAL, "SHA-256 failed");
}

static int entry_matches(const struct cache_entry *e, const uint8_t id[32], const char *date,
                         const char *region, const char *service)
{
    return e->used && memcmp(e->date, date, 8) == 0 && strcmp(e->region, region) == 0 &&
           strcmp(e->service, service) == 0 && sp_ct_eq(e->id, 32, id, 32);
}

static int cached_key(struct sp_sigv4_key_cache *c, const struct sp_sigv4_creds *creds,
                      const char *date, const char *region, const char *service,
                      uint8_t key[SP_SIGV4_KEY_LEN], struct sp_err *err)
{
    struct cache_entry *victim = &c->e[0];
    uint8_t id[32];

    if (secret_id(c, creds, id, err) < 0)
        return -1;
    for (size_t i = 0; i < c->cap; i++) {
        struct cache_entry *e = &c->e[i];
        if (entry_matches(e, id, date, region, service)) {
            e->used = ++c->tick;
            c->hits++;
            memcpy(key, e->key, SP_SIGV4_KEY_LEN);
            sp_wipe(id, sizeof(id));
            return 0;
        }
        if (e->used < victim->used)
            victim = e;
    }
    c->misses++;
    sp_wipe(victim, sizeof(*victim));
    if (derive(creds, date, region, service, key, err) < 0) {
        sp_wipe(id, sizeof(id));
        return -1;
    }
    memcpy(victim->id, id, 32);
    memcpy(victim->date, date, 8);
    memcpy(victim->region, region, strlen(region) + 1);
    memcpy(victim->service, service, strlen(service) + 1);
    memcpy(victim->key, key, SP_SIGV4_KEY_LEN);
    victim->used = ++c->tick;
    sp_wipe(id, sizeof(id));
    return 0;
}

int sp_sigv4_signing_key(struct sp_sigv4_key_cache *cache, const struct sp_sigv4_creds *creds,
                         const char *date, const char *region, const char *service,
                         uint8_t key[SP_SIGV4_KEY_LEN], struct sp_err *err)
{
    if (!date || !sp_sigv4_valid_date(date, strnlen(date, 9)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 date is not of the form YYYYMMDD");
    if (!region || !sp_sigv4_valid_name(region, strlen(region)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 region must match [a-z0-9-]{1,63}");
    if (!service || !sp_sigv4_valid_name(service, strlen(service)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 service must match [a-z0-9-]{1,63}");
    if (!creds->secret_key || creds->secret_key_len == 0 || creds->secret_key_len > MAX_SECRET)
        return sp_err_set(err, SP_E_BAD_REQUEST, "AWS secret access key must be 1..%d bytes",
                          MAX_SECRET);
    if (cache)
        return cached_key(cache, creds, date, region, service, key, err);
    return derive(creds, date, region, service, key, err);
}
