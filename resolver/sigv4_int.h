/*
 * sigv4_int.h - helpers shared by the sigv4*.c files and nothing else:
 * HMAC-SHA256, the validators of the scope's parts, and percent-decoding.
 */
#ifndef SP_RESOLVER_SIGV4_INT_H
#define SP_RESOLVER_SIGV4_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sigv4.h"

#define SP_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* HMAC-SHA256(key, msg) into out[32] (mbedtls_md_hmac). -1 only if mbedTLS
 * fails (out of memory). */
SP_MUSTCHECK int sp_sigv4_hmac(const void *key, size_t keylen, const void *msg, size_t len,
                               uint8_t out[32], struct sp_err *err);

/* [a-z0-9-]{1,63}: a region or a service name. */
int sp_sigv4_valid_name(const char *s, size_t n);
/* YYYYMMDD, digits only (the calendar is the caller's business). */
int sp_sigv4_valid_date(const char *s, size_t n);
/* YYYYMMDDTHHMMSSZ. */
int sp_sigv4_valid_amz_date(const char *s, size_t n);
/* 0-9a-fA-F digit value, or -1. */
int sp_sigv4_hexval(int c);

/* Percent-decode p[0..n) and append to out. '+' stays '+' (RFC 3986, as
 * AWS canonicalises it). A '%' not followed by two hex digits is -1. */
SP_MUSTCHECK int sp_sigv4_pct_decode(const char *p, size_t n, struct sp_buf *out,
                                     struct sp_err *err);

/* Append p[0..n) percent-encoded: RFC 3986 unreserved bytes (and '/' when
 * keep_slash) as they are, every other byte as %XX in upper-case hex. */
SP_MUSTCHECK int sp_sigv4_pct_encode(struct sp_buf *b, const char *p, size_t n, int keep_slash,
                                     struct sp_err *err);

/* Append the canonical URI of req->path under mode (sigv4_canon.c). */
SP_MUSTCHECK int sp_sigv4_canonical_uri(const struct sp_sigv4_request *req,
                                        enum sp_sigv4_path_mode mode, struct sp_buf *creq,
                                        struct sp_err *err);

/* A query parameter the signer adds itself (presigned URLs), not encoded. */
struct sp_sigv4_param {
    const char *name;
    const char *value;
    size_t value_len;
};

/* Append the canonical query string: req's query pieces (empty ones
 * skipped, a piece without '=' has an empty value) decoded and re-encoded,
 * plus extra, sorted by encoded name then value. With kept (query mode) the
 * request's own X-Amz-Algorithm/-Credential/-Date/-Expires/-SignedHeaders/
 * -Security-Token/-Signature are dropped and the other pieces copied, raw
 * and in order, to kept. */
SP_MUSTCHECK int sp_sigv4_canonical_query(const struct sp_sigv4_request *req,
                                          const struct sp_sigv4_param *extra, size_t n_extra,
                                          struct sp_buf *kept, struct sp_buf *creq,
                                          struct sp_err *err);

/* Validate opts' region, service and amz_date and write the credential
 * scope "YYYYMMDD/region/service/aws4_request" into scope[scopesz]. */
SP_MUSTCHECK int sp_sigv4_scope(const struct sp_sigv4_opts *opts, char *scope, size_t scopesz,
                                struct sp_err *err);

#endif
