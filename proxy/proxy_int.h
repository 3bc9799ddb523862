/*
 * proxy_int.h - what the forward proxy's files share: the worker (one
 * thread, one event base, its own store connection, upstream client and
 * listener) and the request entry points. Private to proxy/.
 */
#ifndef SP_PROXY_INT_H
#define SP_PROXY_INT_H

#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdatomic.h>

#include "conf.h"
#include "h1.h"
#include "http.h"
#include "keyring.h"
#include "metrics.h"
#include "resolver.h"
#include "store.h"
#include "target.h"
#include "upstream.h"

struct sp_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    const struct sp_conf *conf; /* borrowed; swapped on the worker's thread at reload */
    struct sp_keyring *kr;
    struct sp_store *store;
    struct sp_upstream *upstream;
    struct sp_sigv4_key_cache *sigv4_cache; /* derived SigV4 signing keys */
    struct sp_h1_server *h1;                /* the proxy listener */
    int listen_fd;
    int inflight;
    int metric_route, metric_fetch;
    int draining, drain_quiet;
    int64_t drain_deadline_us;
    struct event *drain_timer;
    struct event *stats_timer;              /* cache counters into metrics */
    struct sp_store_cache_stats cache_seen; /* as last reported */
    int64_t conns_seen;                     /* open client connections, as last reported */
    atomic_int finished;
    _Atomic(const struct sp_conf *) next_conf; /* handed over by sp_workers_reconfigure */
    /* the proxy's own listeners, refused as targets */
    char own_host[2][256];
    int own_port[2];
};

/* Start n workers on proxy.listen (SO_REUSEPORT); each runs until
 * sp_workers_stop(). Returns the array (n entries) or NULL with err. */
SP_MUSTCHECK struct sp_worker *sp_workers_start(int n, const struct sp_conf *conf,
                                                struct sp_keyring *kr, struct sp_err *err);
/* Stop accepting, let requests in flight finish (up to upstream.timeout),
 * then end each worker's loop. Non-blocking; poll sp_workers_done(). */
void sp_workers_stop(struct sp_worker *w, int n);
int sp_workers_done(struct sp_worker *w, int n);
/* Hand a reloaded configuration to every worker; each switches to it on
 * its own thread. conf must outlive the workers (the caller keeps retired
 * configurations until exit). */
void sp_workers_reconfigure(struct sp_worker *w, int n, const struct sp_conf *conf);
/* Join and free every worker (after sp_workers_done, or to force). */
void sp_workers_free(struct sp_worker *w, int n);
/* Is host:port one of this proxy's own listeners? */
int sp_worker_is_own_listener(const struct sp_worker *w, const char *host, int port);

/* Refuse the proxy's own listeners as a target, then apply
 * upstream.upgrade_hosts. */
SP_MUSTCHECK int sp_worker_check_target(const struct sp_worker *w, struct sp_target *t,
                                        struct sp_err *err);

/* Does a request go upstream with a body (and so a Content-Length)? When
 * it has one, or its method carries one (POST, PUT, PATCH). */
int sp_upstream_body_framed(const char *method, size_t body_len);
/* An upstream request for method/url/headers and a buffered body (framed
 * with Content-Length when sp_upstream_body_framed). */
void sp_fill_upstream_request(struct sp_upstream_request *r, const char *method,
                              const struct sp_buf *url, const struct sp_upstream_header *h,
                              size_t n, const void *body, size_t body_len);

/* ---- auth.awsv4 of POST /v1/fetch (fetch_awsv4.c) ---- */

#define SP_FETCH_AWSV4_CREDS 3         /* access key id, secret access key, session token */
#define SP_FETCH_AWSV4_MAX_HEADERS 128 /* headers of a request to sign, Host included */

struct json_t;

/* The parsed block and, once signed, the signature. The credentials borrow
 * from the description's JSON (they may be references; the caller passes
 * cred[0..ncred) to the resolver as extras). */
struct sp_fetch_awsv4 {
    const char *cred[SP_FETCH_AWSV4_CREDS];
    size_t cred_len[SP_FETCH_AWSV4_CREDS];
    size_t ncred; /* 2, or 3 with a session token */
    char region[SP_SIGV4_MAX_NAME + 1];
    char service[SP_SIGV4_MAX_NAME + 1];
    int unsigned_payload;
    struct sp_sigv4_result sig; /* sensitive; sp_fetch_awsv4_clear wipes it */
};

/* Read auth.awsv4 (o borrowed; a keeps pointers into it). Refuses with
 * SP_E_BAD_REQUEST a non-object, an unknown field, a credential that is
 * not a string (session_token may be absent or null), a region or service
 * outside [a-z0-9-]{1,63}, a non-boolean unsigned_payload. */
SP_MUSTCHECK int sp_fetch_awsv4_parse(struct json_t *o, struct sp_fetch_awsv4 *a,
                                      struct sp_err *err);
/* Sign the final request r, whose headers are hs[0..r->n_headers) (Host
 * included) and whose url and body are what goes upstream; the resolved
 * credentials are res's extras first_extra.. (the original text where an
 * extra had no reference). On success the headers the signature replaces
 * are dropped from hs, the signer's appended (cap: hs's size), r->headers
 * and r->n_headers updated; the new values point into a->sig, so they live
 * until sp_fetch_awsv4_clear. Refuses a credential resolving to CR, LF or
 * NUL (SP_E_SECRET_UNSAFE_VALUE) and what the signer refuses (bad key id,
 * header name, ...: SP_E_BAD_REQUEST); err never holds a value. */
SP_MUSTCHECK int sp_fetch_awsv4_sign(struct sp_fetch_awsv4 *a, const struct sp_resolution *res,
                                     size_t first_extra, struct sp_sigv4_key_cache *cache,
                                     struct sp_upstream_request *r, struct sp_upstream_header *hs,
                                     size_t cap, struct sp_err *err);
/* Wipe and free the signature (again and again ok). */
void sp_fetch_awsv4_clear(struct sp_fetch_awsv4 *a);
/* Drop from hs[0..*n) the headers a signature replaces, then append the
 * signer's (their values point into sig); cap is hs's size. */
SP_MUSTCHECK int sp_awsv4_apply_result(const struct sp_sigv4_result *sig,
                                       struct sp_upstream_header *hs, size_t *n, size_t cap,
                                       struct sp_err *err);

/* ---- digests of the body in headers (body_digest.c) ---- */

#define SP_BODY_DIGESTS_MAX 8

/* Room for the recomputed values (base64 of up to 32 bytes). */
struct sp_body_digests {
    char v[SP_BODY_DIGESTS_MAX][48];
};

/* After substitution changed the body: give every Content-MD5 and
 * x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} header of hs[0..n)
 * the digest of body[0..len) (values then point into d, which must
 * outlive hs's use). Returns how many headers were refreshed; other
 * x-amz-checksum-* algorithms are left as they are. */
size_t sp_body_digests_refresh(struct sp_upstream_header *hs, size_t n, const void *body,
                               size_t len, struct sp_body_digests *d);

/* ---- re-signing an SDK's SigV4 request (forward_sigv4.c) ---- */

enum sp_fwd_sigv4_mode {
    SP_FWD_SIGV4_NONE = 0,
    SP_FWD_SIGV4_HEADER, /* Authorization: AWS4-HMAC-SHA256 Credential=<reference>/... */
    SP_FWD_SIGV4_QUERY,  /* a presigned URL whose X-Amz-Credential holds a reference */
};

struct sp_fwd_sigv4 {
    enum sp_fwd_sigv4_mode mode;
    struct sp_sigv4_auth auth; /* auth.key_id: the reference, resolved as an aws extra */
    char amz_date[SP_SIGV4_AMZ_DATE_LEN + 1];
    int streaming;                   /* enum sp_sigv4_chunked_mode of an aws-chunked body, or 0 */
    struct sp_buf query;             /* QUERY: the query without its signing parameters */
    struct sp_sigv4_result sig;      /* the new signature (sensitive) */
    struct sp_sigv4_chunked *chunks; /* an aws-chunked body's re-writer */
    struct sp_buf body;              /* a re-signed buffered aws-chunked body */
};

/* The request as it goes upstream, for signing; hs/n_hs are updated (the
 * replaced headers dropped, the signer's appended), and so are body and
 * body_len for a re-signed aws-chunked body. */
struct sp_fwd_sigv4_req {
    const char *method;
    const char *path, *query; /* final, substituted; query without '?' */
    size_t path_len, query_len;
    struct sp_upstream_header *hs;
    size_t n_hs, cap;
    const char *body;
    size_t body_len;
    int body_changed; /* substitution changed the body */
    int body_framed;  /* the body goes with a Content-Length */
    int streamed;     /* the body comes later, through sp_fwd_sigv4_body (body NULL,
                         body_len its Content-Length) */
    const struct sp_buf *signed_query; /* out, QUERY: the whole new query */
};

/* Look for an SDK's signature holding a reference. 0: none (the request is
 * forwarded as it is, any other AWS signature untouched); 1: found, a is
 * filled, and the Authorization header's value in h is emptied so that the
 * resolver leaves it alone (header mode), or a->query holds the query to
 * resolve instead of the original (query mode); -1 with SP_E_BAD_REQUEST
 * on a malformed signature, a reference elsewhere than the key id, a
 * missing X-Amz-Date or a streaming payload that cannot be re-signed. */
SP_MUSTCHECK int sp_fwd_sigv4_detect(struct sp_fwd_sigv4 *a, struct sp_rheader *h, size_t n,
                                     const char *query, size_t query_len, struct sp_err *err);
/* Sign q again with the aws secret that extra of res resolved to (the
 * resolver checked its type); in/n_in are the request's headers as given
 * to the resolver (to find those substitution changed). Adds the key id,
 * secret key and token to res's redactor. err never holds a value. */
SP_MUSTCHECK int sp_fwd_sigv4_sign(struct sp_fwd_sigv4 *a, struct sp_resolution *res, size_t extra,
                                   struct sp_sigv4_key_cache *cache, const struct sp_rheader *in,
                                   size_t n_in, struct sp_fwd_sigv4_req *q, struct sp_err *err);
/* A streamed aws-chunked body, as it arrives: append p[0..n) re-signed
 * (or checked, unsigned trailer mode) to out; last closes it (-1 when the
 * body was cut short). -1 with SP_E_BAD_REQUEST on malformed framing. */
SP_MUSTCHECK int sp_fwd_sigv4_body(struct sp_fwd_sigv4 *a, const char *p, size_t n, int last,
                                   struct sp_buf *out, struct sp_err *err);
/* Wipe and free (a zeroed struct is fine). */
void sp_fwd_sigv4_clear(struct sp_fwd_sigv4 *a);

/* ---- the access line and audit event of a request (access.c) ---- */

struct sp_access {
    const char *type; /* "proxy" or "fetch" */
    const char *rid, *method;
    const struct sp_target *target; /* destination; its path is logged, $secret: tokens masked */
    int status;
    enum sp_err_code code;
    size_t bytes_in;
    uint64_t bytes_out;
    int64_t t0_us, store_us, upstream_us;
    struct sp_resolution *res; /* NULL before resolution */
};

/* Write the access line (log.access) and, when the request used secrets,
 * the workspace's audit event (log.audit_stream_maxlen). Never a value. */
void sp_access_log(struct sp_worker *w, const struct sp_access *a);

/* An absolute-form request on a worker (forward.c). */
void sp_forward_request(struct sp_worker *w, struct sp_h1_req *req);
/* h1's question for a request with a body: stream it? Yes for an SDK's
 * aws-chunked upload to re-sign (forward.c). */
int sp_forward_wants_stream(const struct sp_h1_req *req, void *arg);
/* POST /v1/fetch on a worker (fetch.c). */
void sp_fetch_request(struct sp_worker *w, struct sp_h1_req *req);

#endif
