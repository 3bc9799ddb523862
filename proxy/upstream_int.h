/*
 * upstream_int.h - what the files of the upstream client share, private to
 * upstream*.c: the structures behind struct sp_upstream and struct
 * sp_upstream_req, the SSRF guard (upstream_ssrf.c) and the request and
 * response framing helpers (upstream_req.c). upstream.c owns the event loop
 * glue and every request's life cycle.
 */
#ifndef SP_PROXY_UPSTREAM_INT_H
#define SP_PROXY_UPSTREAM_INT_H

#include <curl/curl.h>
#include <event2/event.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sp.h"
#include "upstream.h"

#define UP_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define UP_DEFAULT_TIMEOUT_MS 30000
#define UP_DEFAULT_MAX_HEADER_SIZE (64 * 1024)
#define UP_DEFAULT_MAX_HEADERS 100
#define UP_DEFAULT_MAX_IDLE_CONNS 64
#define UP_HOST_MAX 256 /* a DNS name is at most 253; an IPv6 literal less */

/* ---- the SSRF guard (upstream_ssrf.c) ---- */

struct up_guard;

/* Build the guard for opts: parse (and, for names, resolve) the own
 * addresses, and list local interface addresses for wildcard listeners.
 * Blocking (getaddrinfo, getifaddrs): call at configuration time only. */
SP_MUSTCHECK int up_guard_new(struct up_guard **out, const struct sp_upstream_opts *opts,
                              struct sp_err *err);
void up_guard_free(struct up_guard *g);
/* Same decisions for every address? (decides whether a reload must stop
 * reusing pooled connections) */
int up_guard_same(const struct up_guard *a, const struct up_guard *b);
/* 0 when a dial to sa may go ahead; -1 with *why naming the class ("a
 * loopback address", "this proxy's own listener", ...) when it may not. */
int up_guard_check(const struct up_guard *g, const struct sockaddr *sa, size_t salen,
                   const char **why);

/* ---- process-wide set-up and the CA bundle (upstream_global.c) ---- */

struct up_ca;

/* Initialise libcurl once per process, with allocators that wipe every
 * block they free. Thread-safe; cheap after the first call. */
SP_MUSTCHECK int up_global_init(struct sp_err *err);
/* The system bundle plus ca_file as one PEM blob; *out = NULL (the system
 * bundle alone, loaded and cached by the library) when ca_file is unset.
 * SP_E_CONFIG when a file cannot be read or holds no certificate. */
SP_MUSTCHECK int up_ca_load(const char *ca_file, struct up_ca **out, struct sp_err *err);
struct up_ca *up_ca_ref(struct up_ca *ca);
void up_ca_unref(struct up_ca *ca);
int up_ca_same(const struct up_ca *a, const struct up_ca *b);

/* ---- shared structures ---- */

struct up_link {
    struct up_link *prev, *next;
};

/* The trusted CA bundle when ca_file is set: system bundle + ca_file, as a
 * file at path (fd >= 0) or else as a blob handed to the HTTP library
 * without a copy; each request holds a reference. */
struct up_ca {
    unsigned refs;
    int fd;
    char path[40];
    size_t len;
    char data[];
};

/* One event loop's connection pool: a curl multi handle and its timer.
 * A reload that changes the guard or the CAs retires the pool: requests in
 * flight finish in it, new ones go to a fresh pool, and it is freed once
 * empty. */
struct up_pool {
    struct sp_upstream *u;
    CURLM *multi;
    CURLSH *share; /* TLS session cache across requests */
    struct event *timer;
    size_t nreqs;
    struct up_pool *next; /* in u->retired */
};

/* The libevent event of one socket curl asked us to watch, indexed by fd. */
struct up_sock {
    struct event *ev;
    struct up_pool *pool;
    short what;
    int idle; /* curl parked the connection in its pool (CURL_POLL_REMOVE) */
};

struct sp_upstream {
    struct event_base *base;
    struct up_pool *pool;    /* new requests go here */
    struct up_pool *retired; /* draining */
    struct up_sock **socks;  /* by fd number */
    size_t nsocks;
    struct event *kick; /* deferred work: resumes, freeing retired pools */
    struct up_link all; /* every request not yet freed */
    struct up_link deferred;
    int depth; /* > 0 while inside a curl call that may run callbacks */
    int64_t connect_timeout_ms, timeout_ms, idle_timeout_ms;
    size_t max_header_size, max_headers, max_idle_conns;
    struct up_guard *guard;
    struct up_ca *ca; /* NULL: the system bundle alone */
};

enum up_state {
    UP_PENDING = 1, /* started from inside a callback: added after it */
    UP_RUNNING,
    UP_FINISHING, /* inside on_done */
};

/* Why a transfer was stopped by us rather than by the network. */
enum up_abort {
    UP_ABORT_NONE = 0,
    UP_ABORT_HEAD_TOO_BIG,
    UP_ABORT_HEAD_MALFORMED,
    UP_ABORT_CALLBACK, /* on_head/on_body returned -1 */
    UP_ABORT_READ,     /* on_read returned -1 */
    UP_ABORT_NOMEM,
};

#define UP_DEFER_ADD 0x1u
#define UP_DEFER_REMOVE 0x2u
#define UP_DEFER_RESUME_RECV 0x4u
#define UP_DEFER_RESUME_SEND 0x8u

/* Offsets of one response header in req->head. */
struct up_hoff {
    uint32_t name_off, name_len, value_off, value_len;
};

struct sp_upstream_req {
    struct sp_upstream *u;
    struct up_pool *pool;
    CURL *easy;
    struct up_link all;      /* in u->all */
    struct up_link deferred; /* in u->deferred when defer != 0 */
    unsigned defer;
    enum up_state state;
    int cancelled;
    struct sp_upstream_callbacks cb;
    void *arg;
    sp_upstream_read_fn on_read;
    int64_t uploaded;
    struct curl_slist *headers; /* our own nodes: wiped and freed by us */
    CURLU *uh;                  /* the parsed URL */
    int https;
    struct up_ca *ca;
    char host[UP_HOST_MAX];
    int64_t connect_timeout_ms, timeout_ms;
    /* response head being collected */
    struct sp_buf head;
    struct up_hoff *hoffs;
    size_t nh, hcap, max_headers, max_header_size;
    int status, http_minor;
    uint32_t reason_off, reason_len;
    int head_sent;
    /* back-pressure: wanted by the caller / in force inside curl */
    int want_pause, recv_paused, send_paused;
    /* the SSRF guard's verdicts on this request's dials */
    int dials_denied, dials_opened;
    const char *deny_why;
    enum up_abort abort;
};

/* ---- request and response framing (upstream_req.c) ---- */

/* Check method, URL and headers, copy the host into req->host, build
 * req->headers, and set every per-request option on req->easy. */
SP_MUSTCHECK int up_req_setup(struct sp_upstream_req *req, const struct sp_upstream_request *r,
                              struct sp_err *err);
/* Wipe and free our header list. */
void up_req_free_headers(struct curl_slist *list);
/* CURLOPT_HEADERFUNCTION: collect the head, call on_head at its end. */
size_t up_on_header(char *p, size_t size, size_t n, void *arg);
/* The sp_err for a finished transfer (rc != CURLE_OK, or an abort). */
void up_req_error(struct sp_upstream_req *req, CURLcode rc, struct sp_err *err);

#endif
