/*
 * body_digest.c - digests of the body that travel in request headers:
 * Content-MD5 (RFC 1864, which S3 checks and boto3 always sends) and the
 * S3 flexible checksums x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}
 * (the AWS SDKs send one). A client computes them over the body it wrote;
 * once substitution has changed the body they would be wrong (S3 answers
 * BadDigest), so the proxy computes them again over the body it sends.
 */
#include "proxy_int.h"

#include <mbedtls/md5.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <string.h>
#include <strings.h>

/* Reflected CRCs (as zlib and the AWS CRT compute them), bit by bit per
 * byte through a table built on first use. */
struct crc_table {
    uint64_t t[256];
    int ready;
};

static void crc_init(struct crc_table *c, uint64_t poly)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t v = i;
        for (int k = 0; k < 8; k++)
            v = (v & 1) ? (v >> 1) ^ poly : v >> 1;
        c->t[i] = v;
    }
    c->ready = 1;
}

static uint64_t crc(struct crc_table *c, uint64_t poly, uint64_t mask, const unsigned char *p,
                    size_t n)
{
    uint64_t v = mask;

    if (!c->ready)
        crc_init(c, poly);
    for (size_t i = 0; i < n; i++)
        v = c->t[(v ^ p[i]) & 0xff] ^ (v >> 8);
    return (v ^ mask) & mask;
}

static _Thread_local struct crc_table crc32_t, crc32c_t, crc64_t;

/* Big-endian bytes of a CRC, as the x-amz-checksum headers carry them. */
static size_t be_bytes(uint64_t v, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    return n;
}

/* The digest named by a header, in raw bytes; 0 when the header is not one. */
static size_t digest_for(const char *name, size_t len, const unsigned char *b, size_t n,
                         unsigned char out[32])
{
    static const char amz[] = "x-amz-checksum-";
    const char *alg;
    size_t al;

    if (sp_eq_ci(name, len, "Content-MD5"))
        return mbedtls_md5_ret(b, n, out) == 0 ? 16 : 0;
    if (len <= sizeof(amz) - 1 || strncasecmp(name, amz, sizeof(amz) - 1) != 0)
        return 0;
    alg = name + sizeof(amz) - 1;
    al = len - (sizeof(amz) - 1);
    if (sp_eq_ci(alg, al, "crc32"))
        return be_bytes(crc(&crc32_t, 0xEDB88320u, 0xFFFFFFFFu, b, n), 4, out);
    if (sp_eq_ci(alg, al, "crc32c"))
        return be_bytes(crc(&crc32c_t, 0x82F63B78u, 0xFFFFFFFFu, b, n), 4, out);
    if (sp_eq_ci(alg, al, "crc64nvme"))
        return be_bytes(crc(&crc64_t, 0x9A6C9329AC4BC9B5ull, ~0ull, b, n), 8, out);
    if (sp_eq_ci(alg, al, "sha1"))
        return mbedtls_sha1_ret(b, n, out) == 0 ? 20 : 0;
    if (sp_eq_ci(alg, al, "sha256"))
        return mbedtls_sha256_ret(b, n, out, 0) == 0 ? 32 : 0;
    return 0;
}

size_t sp_body_digests_refresh(struct sp_upstream_header *hs, size_t n, const void *body,
                               size_t len, struct sp_body_digests *d)
{
    size_t done = 0;

    for (size_t i = 0; i < n && done < SP_BODY_DIGESTS_MAX; i++) {
        unsigned char raw[32];
        size_t rn = digest_for(hs[i].name, hs[i].name_len, body ? body : "", body ? len : 0, raw);
        if (!rn)
            continue;
        hs[i].value = d->v[done];
        hs[i].value_len = sp_base64_encode(d->v[done], raw, rn);
        done++;
    }
    return done;
}
