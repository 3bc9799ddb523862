/* util.c - secret-byte hygiene, codecs, name validation, process hardening. */
#include "sp.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>

void sp_wipe(void *p, size_t n)
{
    if (p && n)
        mbedtls_platform_zeroize(p, n);
}

void sp_free_wiped(void *p, size_t n)
{
    if (!p)
        return;
    sp_wipe(p, n);
    free(p);
}

void sp_free_wiped_str(char *s)
{
    if (s)
        sp_free_wiped(s, strlen(s));
}

int sp_ct_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return 0;
    if (alen == 0)
        return 1;
    return mbedtls_ct_memcmp(a, b, alen) == 0;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sp_base64_enc_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t sp_base64_encode(char *out, const void *in, size_t n)
{
    const unsigned char *s = in;
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = b64std[v >> 18];
        out[o++] = b64std[(v >> 12) & 63];
        out[o++] = b64std[(v >> 6) & 63];
        out[o++] = b64std[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        out[o++] = b64std[v >> 18];
        out[o++] = b64std[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64std[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t sp_base64_dec_max(size_t n)
{
    return n / 4 * 3 + 3;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int sp_base64_decode(void *out, size_t *outlen, const char *in, size_t n)
{
    unsigned char *d = out;
    uint32_t acc = 0;
    size_t o = 0, bits = 0, i;

    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero in canonical encodings. */
    if (acc & ((1u << bits) - 1))
        return -1;
    *outlen = o;
    return 0;
}

void sp_hex_encode(char *out, const void *in, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *s = in;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[s[i] >> 4];
        out[2 * i + 1] = hx[s[i] & 15];
    }
    out[2 * n] = '\0';
}

int sp_eq_ci(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

int sp_valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sp_json_escape(struct sp_buf *b, const char *s, size_t n, struct sp_err *err)
{
    static const char hx[] = "0123456789abcdef";
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (sp_buf_add(b, s + run, i - run, err) < 0)
            return -1;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hx[c >> 4];
            esc[5] = hx[c & 15];
            elen = 6;
        }
        if (sp_buf_add(b, esc, elen, err) < 0)
            return -1;
        run = i + 1;
    }
    return sp_buf_add(b, s + run, n - run, err);
}

void sp_harden_process(void)
{
    struct rlimit rl = {0, 0};

    /* A core dump would hold decrypted values and key material. */
    (void)setrlimit(RLIMIT_CORE, &rl);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
