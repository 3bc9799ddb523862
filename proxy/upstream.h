/*
 * upstream.h - the proxy's upstream HTTP/1.1 client, private to proxy/.
 *
 * One struct sp_upstream per worker thread, bound to that thread's event
 * base; nothing in it is locked, so every call for one sp_upstream (and its
 * requests) comes from that thread. It forwards one request at a time per
 * struct sp_upstream_req and reports the response through callbacks:
 * on_head once, on_body for each slice of the (transfer-decoded, never
 * content-decoded) body, on_done exactly once at the end. Connections are
 * pooled per origin and reused (HTTP/1.1 keep-alive); redirects are never
 * followed; TLS is always verified.
 *
 * The SSRF guard (DESIGN §11 destination_denied) checks the address actually
 * dialled, after DNS, so a name that resolves (or re-resolves) to a private
 * address is refused too.
 *
 * Secret hygiene: URLs, header values and bodies may hold secret values.
 * They never appear in an error message (which names the host only) and
 * every copy this layer or the HTTP library makes is wiped when freed (the
 * TLS library's record buffers excepted).
 *
 * The implementation (libcurl's multi interface on libevent today) is not
 * part of the interface: nothing here names it.
 */
#ifndef SP_PROXY_UPSTREAM_H
#define SP_PROXY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sp.h"

struct event_base;
struct sp_upstream;
struct sp_upstream_req;

#define SP_UPSTREAM_MAX_OWN_ADDRS 8

/*
 * Settings, copied by sp_upstream_new and sp_upstream_set_opts: every
 * pointer is borrowed for the duration of the call only. Zero values mean
 * the defaults noted.
 */
struct sp_upstream_opts {
    int64_t connect_timeout_ms; /* DNS, TCP connect and TLS handshake; 0 = 5000 */
    int64_t timeout_ms;         /* the whole exchange, head and body; 0 = 30000 */
    int64_t idle_timeout_ms;    /* reuse an idle pooled connection (whole seconds,
                                   rounded up); 0 = never reuse */
    const char *ca_file;        /* extra PEM bundle trusted besides the system one;
                                   NULL or "" = system bundle only */
    int allow_private;          /* 1 = allow loopback/private/link-local dials */
    /* The proxy's own listeners, "host:port" or "[v6]:port" ("unix:..." is
     * ignored); dials to them are always refused. A wildcard host (0.0.0.0,
     * ::) covers every local address on that port. */
    const char *own_addrs[SP_UPSTREAM_MAX_OWN_ADDRS];
    size_t n_own_addrs;
    size_t max_header_size; /* response status line + headers; 0 = 64 KiB */
    size_t max_headers;     /* response header lines; 0 = 100 */
    size_t max_idle_conns;  /* pooled connections kept; 0 = 64 */
};

struct sp_conf;
/* Fill o from the configuration: the upstream.* keys, and the proxy's own
 * listeners (proxy.listen, api.listen). The strings stay borrowed from c. */
void sp_upstream_opts_from_conf(struct sp_upstream_opts *o, const struct sp_conf *c);

/* A header as bytes: (name, name_len) and (value, value_len), neither
 * NUL-terminated. */
struct sp_upstream_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

enum sp_upstream_body_kind {
    SP_UPSTREAM_BODY_NONE = 0, /* no body, no Content-Length */
    SP_UPSTREAM_BODY_BUFFER,   /* body/body_len, sent with Content-Length */
    SP_UPSTREAM_BODY_STREAM,   /* pulled through on_read */
};

/* on_read returns this when no body bytes are available yet; call
 * sp_upstream_resume_upload once there are. */
#define SP_UPSTREAM_READ_WAIT ((ssize_t)-2)

/*
 * Pull callback for a streamed body: copy up to len bytes into buf and
 * return how many (> 0), 0 at the end of the body, SP_UPSTREAM_READ_WAIT if
 * none are available yet, or -1 to abort the exchange (on_done follows with
 * upstream_error). The caller wipes its own copies.
 */
typedef ssize_t (*sp_upstream_read_fn)(void *arg, char *buf, size_t len);

#define SP_UPSTREAM_F_HEAD 0x1u /* expect no response body (set for method HEAD) */

/*
 * One request, borrowed for the duration of sp_upstream_start except body,
 * which stays borrowed until on_done returns or sp_upstream_cancel.
 */
struct sp_upstream_request {
    const char *method; /* token: GET, POST, ... (CONNECT is refused) */
    size_t method_len;
    const char *url; /* absolute http:// or https:// URL, no user info;
                        the path and query are sent exactly as given */
    size_t url_len;
    /* Sent in this order (Host, if given, goes first), exactly as given:
     * the caller has removed hop-by-hop headers and decides Host (from the
     * URL when absent). Content-Length and Transfer-Encoding are ignored:
     * this layer frames the body. Nothing is added: no User-Agent, Accept,
     * Expect or Content-Type of its own. */
    const struct sp_upstream_header *headers;
    size_t n_headers;
    enum sp_upstream_body_kind body_kind;
    const void *body; /* BUFFER */
    size_t body_len;  /* BUFFER; 0 sends Content-Length: 0 */
    /* STREAM: the total length (sent as Content-Length), or -1 when unknown
     * (sent chunked). */
    int64_t body_size;
    sp_upstream_read_fn on_read; /* STREAM */
    unsigned flags;              /* SP_UPSTREAM_F_* */
};

/* The response head, borrowed until on_head returns. */
struct sp_upstream_head {
    int status;         /* final status, 200..599 (1xx interim answers are skipped) */
    int http_minor;     /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    const char *reason; /* reason phrase, possibly empty */
    size_t reason_len;
    /* Every response header in order, as received (obs-folded lines joined
     * with one space); names are tokens, values hold no CR, LF or NUL. */
    const struct sp_upstream_header *headers;
    size_t n_headers;
    /* The body length this exchange delivers by, or -1 when it is chunked
     * or ends at close. Frame the reply from this, never from a
     * Content-Length in headers (which may disagree or repeat). For HEAD,
     * 204 and 304 no body follows whatever it says. */
    int64_t content_length;
    int reused; /* the exchange went over a pooled connection */
};

struct sp_upstream_callbacks {
    /* The final response head arrived. Return 0 to go on, -1 to abort
     * (on_done follows with upstream_error). */
    int (*on_head)(void *arg, const struct sp_upstream_head *head);
    /* A slice of the response body, borrowed until the call returns.
     * Return 0 to go on, -1 to abort (on_done follows). */
    int (*on_body)(void *arg, const char *data, size_t len);
    /*
     * The exchange ended: err is NULL on success, else its code is
     * SP_E_UPSTREAM_ERROR (refused, reset, DNS or TLS failure, malformed or
     * truncated response, a callback aborted), SP_E_UPSTREAM_TIMEOUT (connect
     * or total timeout), SP_E_DESTINATION_DENIED (the SSRF guard) or
     * SP_E_INTERNAL (out of memory); its message names the host, never the
     * path or query. head_sent tells whether on_head was called: if so, the
     * client connection must be closed rather than answered with an error.
     * err is borrowed until the call returns; the request is freed after it.
     */
    void (*on_done)(void *arg, const struct sp_err *err, int head_sent);
};

/*
 * A client bound to base (which must outlive it). Reads ca_file and
 * resolves own address names: call at start-up or reload, not on the
 * request path. Returns NULL and err (SP_E_CONFIG: an unreadable ca_file or
 * one without a PEM certificate, an own address that does not parse or
 * resolve; SP_E_INTERNAL: out of memory) on failure.
 *
 * The first call in the process initialises the HTTP library with wiping
 * allocators: every block it frees (URL, header lines, bodies, buffers) is
 * overwritten first. Measured cost: about 1 us of CPU on a ~37 us small
 * request. Nothing else in the process may initialise libcurl earlier (it
 * would keep the plain allocators).
 */
SP_MUSTCHECK struct sp_upstream *
sp_upstream_new(struct event_base *base, const struct sp_upstream_opts *opts, struct sp_err *err);

/*
 * Reload: new requests use the new settings, requests in flight finish with
 * theirs. When the guard (allow_private, own addresses) or the trusted CAs
 * change, pooled connections are no longer reused. On failure (as for
 * sp_upstream_new) the old settings stay.
 */
SP_MUSTCHECK int sp_upstream_set_opts(struct sp_upstream *u, const struct sp_upstream_opts *opts,
                                      struct sp_err *err);

/* Cancel every request in flight (no callbacks), close every connection,
 * free everything. NULL is fine. Never call it from inside a callback. */
void sp_upstream_free(struct sp_upstream *u);

/*
 * Start an exchange; callbacks get arg. Never calls a callback before it
 * returns. Returns the request (owned by u: freed after on_done returns, or
 * by sp_upstream_cancel), or NULL and err: SP_E_BAD_REQUEST for a method,
 * URL or header this layer will not send (the message names no value),
 * SP_E_INTERNAL when out of memory. cb is copied.
 */
SP_MUSTCHECK struct sp_upstream_req *sp_upstream_start(struct sp_upstream *u,
                                                       const struct sp_upstream_request *r,
                                                       const struct sp_upstream_callbacks *cb,
                                                       void *arg, struct sp_err *err);

/* Abandon a request (the client went away): no callback follows, its
 * connection is closed, req is freed. Fine from inside any callback,
 * including this request's own on_head/on_body; a no-op inside its on_done. */
void sp_upstream_cancel(struct sp_upstream_req *req);

/*
 * Back-pressure from a slow client: while paused, on_body is not called and
 * the connection is not read (at most one more read, 64 KiB, is held).
 * Resuming delivers what was held from the event loop, never from inside
 * this call. on_done can still come while paused: when no body bytes were
 * left, or when the total timeout (which keeps running) strikes.
 */
void sp_upstream_pause(struct sp_upstream_req *req, int paused);

/* on_read returned SP_UPSTREAM_READ_WAIT and now has bytes (or the end):
 * on_read is called again from the event loop. */
void sp_upstream_resume_upload(struct sp_upstream_req *req);

#endif
