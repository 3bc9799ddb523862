/*
 * sigv4.h - AWS Signature Version 4 (private to resolver/; resolver.h
 * re-exports what the proxy needs): canonical request, string to sign and
 * signature for the Authorization header and for presigned URLs, parsing an
 * SDK's Authorization header or presigned query so the proxy can re-sign it,
 * a small cache of derived signing keys, and the aws-chunked streaming
 * signature chain with an incremental re-signing parser.
 *
 * Pure code over (ptr, len) byte ranges: no sockets, no store, no event
 * loop. The secret access key and every derived key are wiped with sp_wipe
 * as soon as they are used; none of them ever reaches an error message.
 *
 * Behaviour follows botocore (botocore/auth.py) and the AWS CRT
 * (aws-c-auth); tests/unit/resolver/test_sigv4.c checks the aws-c-auth
 * test suite byte for byte and tests/e2e/test_sigv4_botocore.py compares
 * random requests with botocore.
 */
#ifndef SP_RESOLVER_SIGV4_H
#define SP_RESOLVER_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

#define SP_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SP_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SP_SIGV4_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define SP_SIGV4_STREAMING_PAYLOAD_TRAILER "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
#define SP_SIGV4_STREAMING_UNSIGNED_TRAILER "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

#define SP_SIGV4_AMZ_DATE_LEN 16    /* 20150830T123600Z */
#define SP_SIGV4_SIG_HEX_LEN 64     /* a signature in lower-case hex */
#define SP_SIGV4_KEY_LEN 32         /* a derived signing key */
#define SP_SIGV4_MAX_NAME 63        /* region and service: [a-z0-9-]{1,63} */
#define SP_SIGV4_MAX_KEY_ID 512     /* access key id as parsed (a reference may stand there) */
#define SP_SIGV4_MAX_SIGNED 4096    /* SignedHeaders list, bytes */
#define SP_SIGV4_MAX_PAYLOAD 128    /* a caller-given payload hash, bytes */
#define SP_SIGV4_MAX_HEADERS 1024   /* headers per request */
#define SP_SIGV4_MAX_EXPIRES 604800 /* presigned URLs live at most 7 days */

/* ---- signing a request ---- */

/* One request header, borrowed. Names compare case-insensitively; a name
 * that is not an RFC 9110 token is refused. Values may hold obs-fold line
 * breaks: every run of SP, HTAB, CR, LF, VT or FF counts as one space. */
struct sp_sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The request as it will go upstream, after substitution. Everything is
 * borrowed for the duration of the call. */
struct sp_sigv4_request {
    const char *method; /* a token; upper-cased in the canonical request */
    size_t method_len;
    const char *path; /* the path as sent on the wire (already percent-encoded
                         once), without '?' and query; empty means "/" */
    size_t path_len;
    const char *query; /* the raw query after '?', or NULL/0 */
    size_t query_len;
    const struct sp_sigv4_header *headers; /* must include Host */
    size_t n_headers;
    /* Payload: payload_hash when set (64 hex digits or a literal such as
     * UNSIGNED-PAYLOAD or STREAMING-AWS4-HMAC-SHA256-PAYLOAD); otherwise the
     * value of the request's X-Amz-Content-Sha256 header; otherwise the
     * SHA-256 of body[0..body_len). */
    const char *payload_hash;
    size_t payload_hash_len;
    const void *body;
    size_t body_len;
};

/* Credentials, borrowed. The secret key never leaves this module: it is
 * only fed to HMAC (and hashed to identify cache entries). */
struct sp_sigv4_creds {
    const char *access_key_id; /* printable ASCII without space , / ; = " \, 1..128 */
    size_t access_key_id_len;
    const char *secret_key; /* any bytes, 1..1024 */
    size_t secret_key_len;
    const char *session_token; /* NULL or visible ASCII, 1..16384 */
    size_t session_token_len;
};

/* How the path becomes the canonical URI. */
enum sp_sigv4_path_mode {
    SP_SIGV4_PATH_NORMALIZE = 0, /* every service but S3: remove "." and ".."
                                    segments, collapse "//", then percent-encode
                                    the wire path again (double encoding) */
    SP_SIGV4_PATH_ENCODE = 1,    /* encode again without normalising (the
                                    aws-c-auth "unnormalized" test cases) */
    SP_SIGV4_PATH_AS_IS = 2,     /* S3: the wire path exactly as given */
};

enum sp_sigv4_mode {
    SP_SIGV4_MODE_HEADER = 0, /* Authorization header */
    SP_SIGV4_MODE_QUERY = 1,  /* presigned URL (X-Amz-* query parameters) */
};

struct sp_sigv4_key_cache;

struct sp_sigv4_opts {
    enum sp_sigv4_mode mode;
    const char *region;   /* NUL-terminated, [a-z0-9-]{1,63} */
    const char *service;  /* NUL-terminated, [a-z0-9-]{1,63} */
    const char *amz_date; /* NUL-terminated YYYYMMDDTHHMMSSZ, see sp_sigv4_format_amz_date */
    enum sp_sigv4_path_mode path_mode; /* see sp_sigv4_path_mode_for */
    /* NULL: sign every header given except Authorization, hop-by-hop headers
     * (Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
     * Upgrade) and those botocore never signs (User-Agent, Expect,
     * X-Amzn-Trace-Id). Otherwise a ';'-separated list of names in any order
     * and case (an SDK's SignedHeaders plus any header the proxy changed):
     * exactly those are signed, and each must be in the request. Host and
     * the headers the signer sets are signed in both cases. */
    const char *signed_headers;
    size_t signed_headers_len;
    int add_content_sha256;           /* also set X-Amz-Content-Sha256 to the payload hash
                                         (S3 requires it; so does UNSIGNED-PAYLOAD) */
    int token_unsigned;               /* add the session token after signing, unsigned
                                         (the aws-c-auth "omit_session_token" style) */
    unsigned expires;                 /* query mode: X-Amz-Expires, 1..604800 */
    struct sp_sigv4_key_cache *cache; /* optional signing-key cache */
};

#define SP_SIGV4_MAX_SET 4

/* What signing produced. Zero-initialise, pass to sp_sigv4_sign, read, then
 * sp_sigv4_result_free (which wipes what may hold secret bytes: the
 * canonical request holds substituted header values and the session token,
 * and so does the presigned query). */
struct sp_sigv4_result {
    char amz_date[SP_SIGV4_AMZ_DATE_LEN + 1];
    char scope[16 + 2 * SP_SIGV4_MAX_NAME + 16]; /* date/region/service/aws4_request */
    char payload_hash[SP_SIGV4_MAX_PAYLOAD + 1];
    char signature[SP_SIGV4_SIG_HEX_LEN + 1];
    struct sp_buf signed_headers;    /* "host;x-amz-date" */
    struct sp_buf canonical_request; /* sensitive */
    struct sp_buf string_to_sign;
    struct sp_buf authorization; /* header mode: the Authorization value */
    struct sp_buf query;         /* query mode: the new query string, no '?' (sensitive) */
    struct sp_buf token;         /* copy of the session token (sensitive) */
    /* Headers the caller sets on the request, in this order, after removing
     * every copy of the names sp_sigv4_result_replaces() reports. Header
     * mode: X-Amz-Security-Token (with a token), X-Amz-Date,
     * x-amz-content-sha256 (when set), Authorization; query mode only
     * x-amz-content-sha256 (when set). Values point into this result. */
    struct sp_sigv4_header set[SP_SIGV4_MAX_SET];
    size_t n_set;
    int replaces_content_sha256;
    enum sp_sigv4_mode mode;
};

/* Sign req. Fills out (zero-initialised by the caller, or a result already
 * freed) and returns 0; on malformed input (a bad date, region, service,
 * header name, percent escape, a listed header missing, no Host, ...) returns
 * -1 with SP_E_BAD_REQUEST, or SP_E_PAYLOAD_TOO_LARGE / SP_E_INTERNAL, and
 * leaves nothing to free in out. Never logs; err->msg never holds a value. */
SP_MUSTCHECK int sp_sigv4_sign(const struct sp_sigv4_request *req,
                               const struct sp_sigv4_creds *creds, const struct sp_sigv4_opts *opts,
                               struct sp_sigv4_result *out, struct sp_err *err);
/* Wipe and free what a result holds; NULL ok; the result may be reused. */
void sp_sigv4_result_free(struct sp_sigv4_result *r);
/* True when the caller must drop every header called name[0..len) before
 * adding r->set: Authorization, X-Amz-Date and X-Amz-Security-Token in
 * header mode (also when no token is set: an SDK's stand-in token must not
 * go upstream), the same three in query mode, and X-Amz-Content-Sha256 when
 * the signer sets it. */
int sp_sigv4_result_replaces(const struct sp_sigv4_result *r, const char *name, size_t len);

/* Path rules for a service name: S3 (s3, s3-object-lambda, s3-outposts) keeps
 * the path as given; every other service normalises and double-encodes. */
enum sp_sigv4_path_mode sp_sigv4_path_mode_for(const char *service);
/* Format seconds since the epoch as YYYYMMDDTHHMMSSZ into out[17]. */
void sp_sigv4_format_amz_date(int64_t unix_seconds, char out[SP_SIGV4_AMZ_DATE_LEN + 1]);
/* Lower-case hex SHA-256 of p[0..n) into out[65] (a payload hash). */
void sp_sigv4_sha256_hex(const void *p, size_t n, char out[SP_SIGV4_SIG_HEX_LEN + 1]);

/* ---- signing keys ---- */

/* Derive the signing key HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date),
 * region), service), "aws4_request") into key, through cache when given.
 * date is YYYYMMDD. The caller wipes key with sp_wipe when done. Returns -1
 * with SP_E_BAD_REQUEST on a malformed date, region or service. */
SP_MUSTCHECK int sp_sigv4_signing_key(struct sp_sigv4_key_cache *cache,
                                      const struct sp_sigv4_creds *creds, const char *date,
                                      const char *region, const char *service,
                                      uint8_t key[SP_SIGV4_KEY_LEN], struct sp_err *err);

/* A bounded cache of derived signing keys, one entry per (secret key,
 * date, region, service), least recently used evicted. Entries hold the
 * derived key and a salted SHA-256 of the secret key (to recognise it),
 * never the secret itself; evicted entries and the whole cache on free are
 * wiped. NOT thread-safe: give each worker thread (event base) its own,
 * like everything else on the request path. capacity 1..4096 (0: 32).
 * Returns NULL (SP_E_CONFIG or SP_E_INTERNAL) on failure; free with
 * sp_sigv4_key_cache_free (NULL ok), after the last signing that uses it. */
struct sp_sigv4_key_cache *sp_sigv4_key_cache_new(size_t capacity, struct sp_err *err);
void sp_sigv4_key_cache_free(struct sp_sigv4_key_cache *c);
/* Lookups answered from the cache and derivations done, since creation. */
void sp_sigv4_key_cache_stats(const struct sp_sigv4_key_cache *c, uint64_t *hits, uint64_t *misses);

/* ---- parsing an SDK's signature ---- */

/* The parts of an incoming SigV4 signature. key_id is as written in the
 * Authorization header, or percent-decoded once from X-Amz-Credential; it
 * may be a secret reference ($Secret{AWS_PROD}, $secret:tok, or their
 * percent-encoded forms), so it is not validated beyond its framing. */
struct sp_sigv4_auth {
    char key_id[SP_SIGV4_MAX_KEY_ID + 1];
    size_t key_id_len;
    char date[9]; /* YYYYMMDD */
    char region[SP_SIGV4_MAX_NAME + 1];
    char service[SP_SIGV4_MAX_NAME + 1];
    char signed_headers[SP_SIGV4_MAX_SIGNED + 1]; /* "host;x-amz-date", as given */
    char signature[SP_SIGV4_SIG_HEX_LEN + 1];     /* lower-cased */
    /* presigned form only */
    int presigned;
    char amz_date[SP_SIGV4_AMZ_DATE_LEN + 1]; /* X-Amz-Date */
    unsigned expires;                         /* X-Amz-Expires */
    int has_token;                            /* X-Amz-Security-Token was present */
};

/* Parse an Authorization header value "AWS4-HMAC-SHA256 Credential=<key
 * id>/<date>/<region>/<service>/aws4_request, SignedHeaders=a;b,
 * Signature=<hex>". Spaces and tabs around ',' and '=' are tolerated; the
 * three parameters must each appear exactly once (any order) and nothing
 * else may. value is borrowed for the call; out receives copies. Returns -1
 * with SP_E_BAD_REQUEST and a message naming the defect (never quoting the
 * input) on anything malformed. */
SP_MUSTCHECK int sp_sigv4_parse_authorization(const char *value, size_t len,
                                              struct sp_sigv4_auth *out, struct sp_err *err);
/* Parse the X-Amz-* parameters of a presigned URL's raw query (after '?'):
 * X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 * X-Amz-SignedHeaders and X-Amz-Signature are required, once each;
 * X-Amz-Security-Token is optional. Other parameters are ignored. */
SP_MUSTCHECK int sp_sigv4_parse_presigned(const char *query, size_t len, struct sp_sigv4_auth *out,
                                          struct sp_err *err);

/* ---- aws-chunked streaming ---- */

/* The chain of signatures of an aws-chunked body: each chunk's string to
 * sign is "AWS4-HMAC-SHA256-PAYLOAD\n<amz date>\n<scope>\n<previous
 * signature>\n<sha256("")>\n<sha256(chunk)>", the first previous signature
 * being the seed (the request's own signature). Holds the signing key
 * (wiped on free). Not thread-safe; one per request. */
struct sp_sigv4_chain;

/* A chain for the request signed with creds and opts (region, service,
 * amz_date, cache), whose signature was seed_signature (64 hex digits:
 * out.signature of sp_sigv4_sign). Free with sp_sigv4_chain_free. */
struct sp_sigv4_chain *sp_sigv4_chain_new(const struct sp_sigv4_creds *creds,
                                          const struct sp_sigv4_opts *opts,
                                          const char *seed_signature, struct sp_err *err);
void sp_sigv4_chain_free(struct sp_sigv4_chain *ch);
/* Feed data of the current chunk (any number of calls, any sizes). */
void sp_sigv4_chain_update(struct sp_sigv4_chain *ch, const void *data, size_t len);
/* Close the current chunk: its signature into sig[65], which becomes the
 * previous signature of the next. A 0-byte chunk is the final one. */
SP_MUSTCHECK int sp_sigv4_chain_finish_chunk(struct sp_sigv4_chain *ch,
                                             char sig[SP_SIGV4_SIG_HEX_LEN + 1],
                                             struct sp_err *err);
/* The trailer signature (x-amz-trailer-signature) over canonical trailers
 * "name:value\n"... (lower-case names, trimmed values, sorted by name):
 * "AWS4-HMAC-SHA256-TRAILER\n<amz date>\n<scope>\n<previous
 * signature>\n<sha256(canonical)>". */
SP_MUSTCHECK int sp_sigv4_chain_sign_trailer(struct sp_sigv4_chain *ch, const char *canonical,
                                             size_t len, char sig[SP_SIGV4_SIG_HEX_LEN + 1],
                                             struct sp_err *err);

/* Which aws-chunked framing a payload hash announces. */
enum sp_sigv4_chunked_mode {
    SP_SIGV4_CHUNKED_SIGNED = 1,           /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    SP_SIGV4_CHUNKED_SIGNED_TRAILER = 2,   /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    SP_SIGV4_CHUNKED_UNSIGNED_TRAILER = 3, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};
/* The mode for a payload hash (x-amz-content-sha256 value); -1 when it is
 * not one of the three streaming values (then the body is not aws-chunked,
 * or it is one the proxy cannot re-sign, e.g. the ECDSA variants). */
int sp_sigv4_chunked_mode_for(const char *payload_hash, size_t len,
                              enum sp_sigv4_chunked_mode *mode);

/*
 * An incremental re-writer of an aws-chunked body:
 *   hex-size[;chunk-signature=<64 hex>]\r\n <data> \r\n ... 0[;...]\r\n
 *   [trailer: value\r\n ...] \r\n
 * It accepts the body in slices of any size and appends the re-signed body
 * to out: in the signed modes each chunk-signature (and the
 * x-amz-trailer-signature) gets its new value, every other byte is copied
 * unchanged, so the output has exactly the input's length (Content-Length
 * stays valid). A chunk's header can only be written once the chunk's data
 * is hashed, so up to one chunk (max_chunk bytes, 0: 8 MiB) is held; the
 * body as a whole is never buffered. In the unsigned-trailer mode the body
 * is checked and passed through unchanged. Trailers are limited to 16 KiB.
 */
struct sp_sigv4_chunked;

/* chain is taken over (freed with the re-writer, also on failure); it must
 * be NULL in the unsigned mode and non-NULL in the signed ones. Returns
 * NULL on failure; free with sp_sigv4_chunked_free (NULL ok). */
struct sp_sigv4_chunked *sp_sigv4_chunked_new(enum sp_sigv4_chunked_mode mode,
                                              struct sp_sigv4_chain *chain, size_t max_chunk,
                                              struct sp_err *err);
void sp_sigv4_chunked_free(struct sp_sigv4_chunked *c);
/* Consume in[0..len) and append output to out (nothing of in is kept
 * beyond the current chunk). Returns -1 with SP_E_BAD_REQUEST on malformed
 * framing, SP_E_PAYLOAD_TOO_LARGE on a chunk over max_chunk (or out's own
 * maximum), SP_E_HEADERS_TOO_LARGE on more than 64 trailers; once failed it
 * keeps failing. */
SP_MUSTCHECK int sp_sigv4_chunked_feed(struct sp_sigv4_chunked *c, const void *in, size_t len,
                                       struct sp_buf *out, struct sp_err *err);
/* At the end of the body: 0 when the final chunk and trailers were
 * complete, -1 (SP_E_BAD_REQUEST) when the body was cut short. */
SP_MUSTCHECK int sp_sigv4_chunked_finish(const struct sp_sigv4_chunked *c, struct sp_err *err);

#endif
