/* time_rand.c - clocks, RFC 3339 and the per-thread CTR-DRBG. */
#include "sp.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t sp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sp_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sp_time_format(char *out, size_t outsz, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int sp_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0;
    struct tm tm;
    const char *p;
    int64_t t;

    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        oh *= sign;
        om *= sign;
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (int64_t)timegm(&tm);
    if (t == -1)
        return -1;
    t -= (int64_t)oh * 3600 + (int64_t)om * 60;
    *ms = t * 1000 + frac;
    return 0;
}

/* One DRBG per thread: no lock on the request path. Reseeded after fork. */
static __thread struct {
    int ready;
    pid_t pid;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} rng;

int sp_random(void *buf, size_t n, struct sp_err *err)
{
    static const unsigned char pers[] = "secretproxy";
    unsigned char *p = buf;

    if (rng.ready && rng.pid != getpid()) {
        mbedtls_ctr_drbg_free(&rng.drbg);
        mbedtls_entropy_free(&rng.entropy);
        rng.ready = 0;
    }
    if (!rng.ready) {
        mbedtls_entropy_init(&rng.entropy);
        mbedtls_ctr_drbg_init(&rng.drbg);
        if (mbedtls_ctr_drbg_seed(&rng.drbg, mbedtls_entropy_func, &rng.entropy, pers,
                                  sizeof(pers) - 1) != 0) {
            mbedtls_ctr_drbg_free(&rng.drbg);
            mbedtls_entropy_free(&rng.entropy);
            return sp_err_set(err, SP_E_INTERNAL, "cannot seed the random generator");
        }
        rng.pid = getpid();
        rng.ready = 1;
    }
    while (n > 0) {
        size_t chunk = n > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : n;
        if (mbedtls_ctr_drbg_random(&rng.drbg, p, chunk) != 0)
            return sp_err_set(err, SP_E_INTERNAL, "random generator failed");
        p += chunk;
        n -= chunk;
    }
    return 0;
}

int sp_random_token(char *out, size_t outsz, size_t bytes, struct sp_err *err)
{
    unsigned char raw[64];
    size_t n;

    if (bytes > sizeof(raw) || outsz < sp_base64_enc_len(bytes) + 1)
        return sp_err_set(err, SP_E_INTERNAL, "token buffer too small");
    if (sp_random(raw, bytes, err) < 0)
        return -1;
    n = sp_base64_encode(out, raw, bytes);
    sp_wipe(raw, sizeof(raw));
    /* URL-safe alphabet, no padding: the token matches [A-Za-z0-9_-]. */
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return 0;
}
