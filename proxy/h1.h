/*
 * h1.h - the proxy listener's HTTP/1.1 server side (RFC 9112): accepts on
 * a listening socket it is given, parses requests itself, reads their
 * bodies whole, and hands each complete request to one callback (or, for
 * requests the owner picks, hands the head over at once and streams the
 * body to it: see "Streamed request bodies" below); the answer goes back
 * buffered or streamed. Everything it refuses on its own
 * (malformed, too large, too slow) is answered in the product's error
 * format (http_err.h) and the connection closed. Private to proxy/.
 *
 * What it refuses by itself, always with Connection: close (RFC 9112;
 * strict wherever two parsers could frame a request differently):
 *   400 bad_request       malformed request line or header line, a bare LF
 *                         (CRLF is required: no lenient LF), obs-fold or
 *                         whitespace before a header line, whitespace
 *                         before a colon, a name that is not a token, NUL,
 *                         CR or another control (HTAB aside) in a value,
 *                         HTTP/0.9, HTTP/2's preface, versions other than
 *                         1.0 and 1.1 (the table has no 505), Content-Length
 *                         not all digits or differing between headers (a
 *                         list such as "5, 5" too), Transfer-Encoding other
 *                         than exactly one "chunked" (no 501 in the table)
 *                         or in HTTP/1.0, both Content-Length and
 *                         Transfer-Encoding, a malformed chunk, an HTTP/1.1
 *                         request without exactly one Host
 *   431 headers_too_large request line + headers over max_head_bytes (a
 *                         long request line too: the table has no 414),
 *                         more than max_headers lines, trailers over
 *                         max_head_bytes
 *   413 payload_too_large Content-Length over max_body (max_stream_body for
 *                         a streamed request; before any of the body is
 *                         read), or a chunk that takes the total over it
 *                         (before its data is read)
 *   408 (bad_request)     head or body not complete read_timeout_ms after it
 *                         began (a streamed body: no byte for that long
 *                         while not paused); the table has no 408 code of
 *                         its own
 *   417 (bad_request)     an HTTP/1.1 Expect other than 100-continue
 *   500 internal_error    out of memory
 * Expect: 100-continue is answered "100 Continue" before the body is read
 * (unless some of it came with the head); for a streamed request only when
 * the owner calls sp_h1_req_body_start. Pipelined requests are parsed
 * one at a time: the next only once the answer to the one before ended
 * and mostly drained. After a refusal the module still reads (and drops)
 * what the client sends for up to 2 s after its answer, so that closing
 * does not reset the connection before the client has read the answer.
 *
 * Threading: a server and all its requests belong to the thread running
 * its event base; nothing here is thread-safe.
 *
 * Callbacks: the module calls the owner's callbacks (request, gone, drain,
 * reject, stream, body) only from its own event callbacks, never from inside an sp_h1_*
 * call the owner makes, so an owner may call any sp_h1_* function from any
 * callback, including a finishing call on the request at hand.
 *
 * Request ownership (the one rule): on_request hands the owner a request.
 * The owner owns it until it makes exactly one finishing call on it:
 * sp_h1_reply, sp_h1_reply_error, sp_h1_reply_end or sp_h1_reply_abort.
 * That call frees the request; the pointer is dead once it returns. The
 * module never frees an owned request itself: not when the client goes
 * away, not on a timeout, not in sp_h1_server_free. When the client goes
 * away first, the owner is told once (sp_h1_req_on_gone), the request stays
 * valid (headers, body, peer), every answer call becomes a no-op that
 * returns -1, and the finishing call is still due: it frees the request.
 * Everything the request points to (method, target, headers, body) lives
 * until the finishing call.
 *
 * Streamed request bodies: if the owner set sp_h1_server_on_stream, each
 * request with a body (Content-Length > 0 or chunked) is offered to it once
 * its head is accepted. A streamed request goes to on_request at once with
 * no body (sp_h1_req_body() NULL, sp_h1_req_streamed() 1); nothing of the
 * body is delivered, and no 100 Continue sent, until the owner calls
 * sp_h1_req_body_start. The body callback then gets the body in order
 * (de-chunked; chunk extensions and trailers dropped), in pieces of any
 * size, last = 1 exactly once on the final call (n may be 0 there), and no
 * call after it or after the finishing call. sp_h1_req_body_pause stops
 * reading the socket, so the client's sends block on TCP's window.
 *   Errors while the body streams (malformed chunk, max_stream_body passed,
 *   client EOF or reset before the end, no byte for read_timeout_ms while
 *   not paused) make the request gone: the gone callback fires once, no
 *   body call comes any more (so never last = 1), answer calls are no-ops,
 *   and the finishing call is still due. If the owner had not started an
 *   answer, the module first answers 400, 413, 431 or 408 itself, as for
 *   its own refusals (the reject callback sees it), and closes.
 *   Keep-alive only after a body read to its end: an answer that ends
 *   while the body is not (refused before sp_h1_req_body_start, or an
 *   early answer) carries Connection: close, the rest of the body is read
 *   and dropped for a while (as after a refusal) and the connection
 *   closes. An answer whose head is queued while the body is still being
 *   read also says Connection: close. The next pipelined request is parsed
 *   only after both the body and the answer ended.
 *   Delivered bytes live in the module's input buffer, which is wiped when
 *   freed, like the rest of the request.
 */
#ifndef SP_PROXY_H1_H
#define SP_PROXY_H1_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sp.h"

struct sp_h1_server;
struct sp_h1_req;

/*
 * Limits, per worker, changeable at run time (sp_h1_server_set_limits):
 * a change applies to requests whose head starts after it, and
 * max_connections to the next accept. 0 means "no limit" for the
 * timeouts and max_connections, and "none allowed" for max_body.
 */
struct sp_h1_limits {
    size_t max_head_bytes;    /* request line + header lines, CRLFs included: more -> 431 */
    size_t max_headers;       /* header lines: more -> 431 */
    size_t max_body;          /* Content-Length or de-chunked total: more -> 413 */
    size_t max_stream_body;   /* the same for a streamed body (0: no limit) */
    int64_t idle_timeout_ms;  /* no request started this long: close quietly */
    int64_t read_timeout_ms;  /* a head, and then its body, not complete this long
                                 after its first byte: 408 and close */
    int64_t write_timeout_ms; /* output pending and none written this long: close */
    unsigned max_connections; /* open client connections: one more is answered 503 and
                                 closed at once (see sp_h1_server_new) */
};

/* 64 KiB head, 100 headers, 10 MiB body, 5 GiB streamed body (S3's
 * single-PUT maximum), 60 s idle and read, 60 s write, 10000 connections
 * (proxy.* defaults). */
void sp_h1_limits_default(struct sp_h1_limits *lim);

/* A header: name and value spans. In a request both are also
 * NUL-terminated (name[name_len] == value[value_len] == '\0'); the value is
 * trimmed of surrounding whitespace. In an answer they need not be. */
struct sp_h1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A complete request: the owner now owns it (see the rule above). */
typedef void (*sp_h1_request_fn)(struct sp_h1_req *req, void *arg);
/* A request event: the client went away, or the output drained. */
typedef void (*sp_h1_req_fn)(struct sp_h1_req *req, void *arg);

/* Something the module refused on its own, for the owner's log and
 * metrics. Borrowed for the call. */
struct sp_h1_rejection {
    int status;
    const struct sp_err *err; /* err->msg is the module's own text, never request bytes */
    const char *request_id;   /* as sent in the answer */
    const struct sockaddr *peer;
    socklen_t peer_len;
};
typedef void (*sp_h1_reject_fn)(void *arg, const struct sp_h1_rejection *r);
/* Should this request's body be streamed (1) or buffered whole (0)? Asked
 * once per request with a body, right after its head is accepted. The
 * request is borrowed, read-only and not owned yet: decide from the head. */
typedef int (*sp_h1_stream_fn)(const struct sp_h1_req *req, void *arg);
/* A piece of a streamed body: p[0..n) is borrowed until the callback
 * returns (it points into the module's input buffer); last is 1 on the
 * final call only. See "Streamed request bodies" above. */
typedef void (*sp_h1_body_fn)(struct sp_h1_req *req, const char *p, size_t n, int last, void *arg);

/* ---- the server ---- */

/*
 * A server accepting on listen_fd (bound and listening; the caller sets
 * SO_REUSEPORT and the like) on base. On success the server owns listen_fd
 * and closes it (sp_h1_server_stop_accepting or _free); on failure (NULL,
 * err) the caller still does. Accepted sockets get TCP_NODELAY.
 *
 * Beyond lim->max_connections the module still accepts, writes a 503
 * (store_unavailable, "too many client connections") with Connection:
 * close, and closes: the client learns why at once instead of waiting in
 * a backlog that SO_REUSEPORT would not share with idler workers. A
 * client whose request was already in flight may see a reset instead.
 */
struct sp_h1_server *sp_h1_server_new(struct event_base *base, int listen_fd,
                                      const struct sp_h1_limits *lim, sp_h1_request_fn on_request,
                                      void *arg, struct sp_err *err);
void sp_h1_server_set_limits(struct sp_h1_server *srv, const struct sp_h1_limits *lim);
/* Report refusals to fn instead of the default INFO log line. */
void sp_h1_server_on_reject(struct sp_h1_server *srv, sp_h1_reject_fn fn, void *arg);
/* Offer requests with a body to fn for streaming (NULL fn: buffer all, as
 * by default). Applies to heads parsed after the call. */
void sp_h1_server_on_stream(struct sp_h1_server *srv, sp_h1_stream_fn fn, void *arg);
/*
 * Drain: close the listening socket now (connections still in its backlog
 * are reset by the kernel); close idle keep-alive connections now; a
 * request being read or served still gets its answer, with Connection:
 * close, and its connection closes after it. Again and again ok.
 */
void sp_h1_server_stop_accepting(struct sp_h1_server *srv);
/* Open client connections (refused ones never count). */
size_t sp_h1_server_connections(const struct sp_h1_server *srv);
/*
 * Close the listener and every connection. Each owned request whose client
 * had not gone yet gets its gone callback now; owned requests then stay
 * valid, with their client gone, until their finishing call, which may come
 * after this returns (but before base is freed). Not from inside one of
 * this server's callbacks. NULL ok.
 */
void sp_h1_server_free(struct sp_h1_server *srv);

/* ---- the request (valid until its finishing call) ---- */

/* The method token, NUL-terminated (any token: "GET", "PURGE", ...). */
const char *sp_h1_req_method(const struct sp_h1_req *req);
/* Is the method m (exact, case-sensitive as RFC 9110 says)? */
int sp_h1_req_method_is(const struct sp_h1_req *req, const char *m);
/* The request target exactly as sent, NUL-terminated; *len may be NULL. */
const char *sp_h1_req_target(const struct sp_h1_req *req, size_t *len);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
int sp_h1_req_version(const struct sp_h1_req *req);
/* Every header line in order, duplicates kept. */
const struct sp_h1_header *sp_h1_req_headers(const struct sp_h1_req *req, size_t *n);
/* The first header named name (case-insensitive), NUL-terminated, or NULL. */
const char *sp_h1_req_header(const struct sp_h1_req *req, const char *name);
/* The body, de-chunked, contiguous, NUL-terminated after len bytes; NULL
 * when empty (*len 0), and always for a streamed request. The owner may
 * modify or wipe it in place; the module wipes it when the request is freed. */
char *sp_h1_req_body(struct sp_h1_req *req, size_t *len);
/* Is the body streamed (the stream callback said so)? */
int sp_h1_req_streamed(const struct sp_h1_req *req);
/*
 * Start delivering a streamed body to fn (from the event loop, never from
 * inside this call; bytes already read come in a later loop pass), and
 * send "100 Continue" if the client asked for it, no answer was started
 * and none of the body arrived yet. Once per request: a second call, a
 * call on a request that is not streamed, or on one whose client is gone,
 * does nothing.
 */
void sp_h1_req_body_start(struct sp_h1_req *req, sp_h1_body_fn fn, void *arg);
/*
 * Flow control for a streamed body: paused (1), no body call comes, the
 * socket is not read (the client's sends block) and the inactivity timeout
 * does not run; the answer is still written. Resumed (0), bytes already
 * read are delivered from the event loop, never from inside this call.
 * May be called from the body callback; before sp_h1_req_body_start it
 * holds back the start; after the body ended it does nothing.
 */
void sp_h1_req_body_pause(struct sp_h1_req *req, int paused);
/* The client's address. */
const struct sockaddr *sp_h1_req_peer(const struct sp_h1_req *req, socklen_t *len);
/* Has the client gone away (the gone callback fired or would have)? */
int sp_h1_req_gone(const struct sp_h1_req *req);

/*
 * Call cb(req, arg) once if the client goes away (reset, EOF, write error
 * or timeout, server freed) before the finishing call. A client that shuts
 * down its sending side while its request is served counts as gone (as in
 * nginx and evhttp). Returns -1 if it is already gone (cb will never be
 * called): the owner should finish the request. Replaces an earlier cb.
 */
int sp_h1_req_on_gone(struct sp_h1_req *req, sp_h1_req_fn cb, void *arg);
/*
 * Back-pressure: bytes queued for this connection and not yet written to
 * the socket, and a callback run when, after rising above low_water, they
 * fall to low_water or below (once per crossing).
 */
size_t sp_h1_req_unsent(const struct sp_h1_req *req);
void sp_h1_req_on_drain(struct sp_h1_req *req, size_t low_water, sp_h1_req_fn cb, void *arg);
/* Close the connection after this answer (Connection: close is sent if the
 * head has not gone yet). Must not be a refused request's only defence:
 * sp_h1_reply_error already closes after 400, 413 and 431. */
void sp_h1_req_close_after(struct sp_h1_req *req);

/* ---- the answer ----
 *
 * Headers given by the owner are copied. The module writes the framing:
 * Content-Length, Transfer-Encoding and Connection (and drops Keep-Alive
 * and those three from the owner's list). A header whose name is not a
 * token or whose value holds CR, LF or NUL refuses the answer. HEAD
 * requests and 204/304 answers never carry a body: body bytes are dropped.
 * The status is 200..999 (no 1xx from the owner).
 */

/* Finishing: a complete answer with Content-Length: len (body copied).
 * reason NULL: the standard phrase. If the headers are refused, or the
 * client is gone, nothing is sent (refused: the connection is closed). */
void sp_h1_reply(struct sp_h1_req *req, int status, const char *reason,
                 const struct sp_h1_header *h, size_t n, const void *body, size_t len);
/* Finishing: the product's error answer for err (http_err.h), rid NULL for
 * a fresh one, extra headers (Proxy-Authenticate, Allow) appended. After
 * bad_request, headers_too_large and payload_too_large the connection
 * closes: the request may have been framed other than we read it. */
void sp_h1_reply_error(struct sp_h1_req *req, const char *rid, const struct sp_err *err,
                       const struct sp_h1_header *extra, size_t n_extra);
/*
 * Streaming: the head now, the body by sp_h1_reply_chunk, then
 * sp_h1_reply_end. content_length >= 0 is sent as Content-Length; -1
 * (unknown) is chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
 * Returns -1 and err (nothing sent) if the client is gone, an answer was
 * already started or a header is refused; the request is still owned.
 */
SP_MUSTCHECK int sp_h1_reply_start(struct sp_h1_req *req, int status, const char *reason,
                                   const struct sp_h1_header *h, size_t n, int64_t content_length,
                                   struct sp_err *err);
/* Queue n body bytes (copied; an empty chunk is a no-op). -1 if the client
 * is gone, no answer was started, or the bytes would pass the announced
 * Content-Length (the answer is then broken: sp_h1_reply_end aborts). */
SP_MUSTCHECK int sp_h1_reply_chunk(struct sp_h1_req *req, const void *p, size_t n);
/* Finishing: end the streamed answer (last chunk; or close for a
 * close-delimited one). If the answer cannot be complete (fewer bytes than
 * Content-Length, a broken answer, none started), this aborts instead. */
void sp_h1_reply_end(struct sp_h1_req *req);
/* Finishing: reset the connection (unsent output dropped), so whatever was
 * sent can never look like a complete answer. */
void sp_h1_reply_abort(struct sp_h1_req *req);

#endif
