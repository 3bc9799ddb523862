/*
 * h1_int.h - what h1.c and h1_parse.c share: the request-side parser as
 * pure functions over bytes (no I/O, no allocation but the body buffer),
 * so that unit tests and fuzzers can drive it directly. Private to proxy/.
 */
#ifndef SP_PROXY_H1_INT_H
#define SP_PROXY_H1_INT_H

#include <stddef.h>
#include <stdint.h>

#include "h1.h"
#include "sp.h"

/* ---- finding the end of a head ----
 *
 * Every line must end in CRLF: a bare LF is refused (400), never taken as a
 * line end, so that no two parsers on the path can split the head
 * differently. Empty lines before the request line are skipped (RFC 9112
 * §2.2). */
struct h1_scan {
    size_t start;   /* offset of the request line */
    size_t line;    /* offset of the line being scanned */
    size_t pos;     /* where scanning resumes */
    size_t nfields; /* header lines so far */
};

/* Start scanning at offset at. */
void h1_scan_init(struct h1_scan *s, size_t at);
/* Scan buf[0..len) (len only grows between calls; on compaction shift the
 * offsets with h1_scan_shift). Returns 1 and *end (offset past the final
 * CRLF) when the head is complete, 0 for more, -1 and err (400 bad_request,
 * 431 headers_too_large) when it cannot be one. */
int h1_scan_head(struct h1_scan *s, const char *buf, size_t len, size_t max_head, size_t max_fields,
                 size_t *end, struct sp_err *err);
void h1_scan_shift(struct h1_scan *s, size_t by);

/* ---- parsing a complete head, in place ---- */

struct h1_info {
    const char *method; /* NUL-terminated in place */
    size_t method_len;
    const char *target; /* NUL-terminated in place */
    size_t target_len;
    int version;            /* 10 or 11 */
    int keepalive;          /* by version and Connection */
    int chunked;            /* Transfer-Encoding: chunked */
    int64_t content_length; /* -1: none */
    int expect_continue;    /* HTTP/1.1 Expect: 100-continue */
    int expect_other;       /* HTTP/1.1 Expect with anything else */
    int is_head;            /* HEAD */
};

/*
 * Parse the head p[0..len) (from the request line through the final CRLF,
 * as h1_scan_head delimited it; nfields from the scan) into info and
 * h[0..nfields). Writes NULs into p after the method, the target, each
 * name and each value. Refuses (400 bad_request unless said): a malformed
 * request line, HTTP/0.9, HTTP/2's preface, versions other than 1.0/1.1,
 * whitespace before a header line (obs-fold), a name that is not a token or
 * is followed by whitespace, CR, NUL or other controls but HTAB in a value,
 * Content-Length that is not digits or differs between headers (413
 * payload_too_large above max_body), Transfer-Encoding other than one
 * "chunked" or in HTTP/1.0, both framings at once, an HTTP/1.1 request
 * without exactly one Host (HTTP/1.0: more than one).
 */
int h1_parse_head(char *p, size_t len, struct sp_h1_header *h, size_t nfields, size_t max_body,
                  struct h1_info *info, struct sp_err *err);

/* ---- a chunked body ---- */

struct h1_chunked {
    int state;
    uint64_t size;     /* of the chunk being read: left to copy */
    unsigned digits;   /* of its size */
    size_t line;       /* bytes of the current size or trailer line */
    size_t trailers;   /* bytes of trailer section so far */
    size_t total_wire; /* bytes consumed, framing included */
    uint64_t total;    /* chunk data so far (what max_body bounds) */
};

void h1_chunked_init(struct h1_chunked *c);
/*
 * Feed p[0..n): chunk data is appended to body. Returns 1 when the last
 * chunk and its trailers (read and discarded) are in, with *used the bytes
 * consumed (the rest is the next request); 0 when all n were consumed and
 * more is needed; -1 and err: 400 for a malformed size line, chunk or
 * trailer, 413 as soon as a chunk size takes the body past max_body, 431
 * when trailers pass max_trailer bytes, 500 out of memory. Extensions are
 * ignored (size lines are bounded at 4 KiB); sizes are overflow-safe.
 */
int h1_chunked_feed(struct h1_chunked *c, const char *p, size_t n, size_t *used,
                    struct sp_buf *body, size_t max_body, size_t max_trailer, struct sp_err *err);
/*
 * The same decoder without a copy, for streamed bodies: stops at each run
 * of chunk data and returns 2 with *used the framing bytes before it and
 * *dlen the data bytes right after them (p[*used, *used + *dlen), both
 * consumed); otherwise as h1_chunked_feed (1 complete with *used, 0 all
 * consumed, -1 and err), max_body bounding the de-chunked total.
 */
int h1_chunked_next(struct h1_chunked *c, const char *p, size_t n, size_t *used, size_t *dlen,
                    size_t max_body, size_t max_trailer, struct sp_err *err);

/* ---- the server's internals: h1.c (connections, input), h1_out.c
 * (output), h1_reply.c (the owner's side) ---- */

#define H1_BUF_POOL_MAX 64 /* idle input buffers kept per server */

/*
 * A connection's states:
 *   IDLE     between requests, nothing buffered        idle timer
 *   HEAD     a head is arriving                        read deadline
 *   BODY     its body is arriving                      read deadline
 *   STREAM   the owner has a streamed request whose body is not all read:
 *            before sp_h1_req_body_start input is kept (up to the buffer),
 *            after it the body is delivered as read, unless paused;
 *            an EOF or error means the client is gone   inactivity timer
 *   SERVING  the owner has the request; input is kept (pipelining) but not
 *            parsed, and an EOF or error means the client is gone
 *   NEXT     answered; the answer drains before the next request is parsed
 *   CLOSING  a last answer drains; input is discarded
 *   LINGER   shut down for writing; input discarded until EOF    linger timer
 *   CLOSED   socket closed; the struct lives while the owner holds its request
 */
enum conn_state {
    C_IDLE = 1,
    C_HEAD,
    C_BODY,
    C_STREAM,
    C_SERVING,
    C_NEXT,
    C_CLOSING,
    C_LINGER,
    C_CLOSED,
};

enum resp_mode {
    M_NONE = 0,
    M_LENGTH,  /* Content-Length */
    M_CHUNKED, /* Transfer-Encoding: chunked */
    M_CLOSE,   /* HTTP/1.0, length unknown: the close ends it */
    M_NOBODY,  /* HEAD, 204, 304 */
};

struct h1_seg {
    struct h1_seg *next;
    size_t len; /* bytes stored */
    size_t off; /* bytes written */
    size_t cap;
    char data[];
};

struct h1_conn;

struct sp_h1_req {
    struct h1_conn *c;
    struct h1_info info;
    struct sp_h1_header *headers;
    size_t nheaders;
    struct sp_buf body; /* sensitive: wiped when freed */
    struct h1_chunked ch;
    size_t max_body, max_trailer; /* the limits when the head arrived (max_body: the
                                     streamed one for a streamed request) */
    int owned, gone, close_after, started, broken, close_on_end;
    /* A streamed body: started by the owner, paused by it, all delivered. */
    int streamed, body_started, body_paused, body_done;
    sp_h1_body_fn on_body;
    void *body_arg;
    uint64_t body_left;   /* Content-Length bytes not yet delivered */
    int64_t body_timeout; /* inactivity limit, from read_timeout_ms */
    enum resp_mode mode;
    int64_t resp_cl;
    uint64_t resp_sent;
    sp_h1_req_fn on_gone, on_drain;
    void *gone_arg, *drain_arg;
    size_t low_water;
    int drain_armed;
    struct sp_h1_header hbuf[];
};

struct h1_conn {
    struct sp_h1_server *srv;    /* NULL once the server is freed (a zombie's) */
    struct h1_conn *prev, *next; /* srv->conns, or srv->zombies once CLOSED */
    int fd;
    enum conn_state state;
    struct event *ev_read, *ev_write, *ev_timer;
    struct event *ev_flush; /* fd-less: run a flush later in this loop pass */
    struct event *ev_body;  /* fd-less: deliver buffered streamed body bytes */
    int busy, read_paused, write_armed, flush_queued, peer_eof, zombie;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char *ibuf;
    size_t icap, ilen, ipos; /* valid bytes [0, ilen); unconsumed from ipos */
    size_t ihw;              /* high-water mark: what to wipe */
    size_t head_end;         /* the parsed head lies before this */
    struct h1_scan scan;
    struct sp_h1_req *req; /* being read, or owned */
    struct h1_seg *out_head, *out_tail;
    size_t out_len; /* unsent */
};

struct sp_h1_server {
    struct event_base *base;
    int lfd;
    struct event *ev_accept, *ev_retry;
    struct sp_h1_limits lim;
    sp_h1_request_fn on_request;
    void *arg;
    sp_h1_reject_fn on_reject;
    void *reject_arg;
    sp_h1_stream_fn on_stream;
    void *stream_arg;
    struct h1_conn *conns, *zombies;
    size_t nconns;
    int draining, nodelay;
    char *bufs[H1_BUF_POOL_MAX];
    size_t nbufs;
    struct h1_seg *segs;
    size_t nsegs;
};

enum { CONN_NONE = 0, CONN_CLOSE, CONN_KEEPALIVE };

struct h1_head {
    int status;
    const char *reason;
    size_t reason_len;
    const struct sp_h1_header *h[2];
    size_t n[2];
    int64_t content_length; /* -1: none */
    int chunked;
    int connection;
};

/* h1.c: the connection's end. */
void h1_req_free(struct sp_h1_req *req);
/* Close the socket (quietly; rst: with a reset). An owned request keeps the
 * struct, and the buffer its spans point into, alive as a zombie. */
void h1_conn_close(struct h1_conn *c, int rst);
/* Free c once it is CLOSED, holds no owned request and none of our
 * callbacks runs on it (busy): nothing on the stack can see it freed. */
void h1_conn_maybe_free(struct h1_conn *c);
void h1_read_pause(struct h1_conn *c, int pause);

/* h1_out.c: n contiguous bytes at the end of the output (NULL: out of
 * memory); h1_out_commit() makes them count. */
char *h1_out_reserve(struct h1_conn *c, size_t n);
void h1_out_commit(struct h1_conn *c, size_t n);
int h1_out_add(struct h1_conn *c, const void *p, size_t n);
void h1_out_free(struct h1_conn *c);
/* Write what the socket takes: 0, or -1 when the connection failed. */
int h1_out_flush(struct h1_conn *c);
/* Flush later in this loop pass (coalescing writes). */
void h1_schedule_flush(struct h1_conn *c);
/* Names are tokens, values hold no CR, LF or NUL. */
int h1_fields_ok(const struct sp_h1_header *h, size_t n);
size_t h1_fmt_u64(char *out, uint64_t v, unsigned base);
/* A head's exact size, and the head written there (returns its end). */
size_t h1_head_size(const struct h1_head *hd);
char *h1_head_write(const struct h1_head *hd, char *w);
void h1_head_reason(struct h1_head *hd, const char *reason);
/* The product's error answer as a head with Connection: close; the header
 * fields go into f (SP_HTTP_ERROR_FIELDS entries). */
struct sp_http_error;
void h1_error_head(struct h1_head *hd, struct sp_h1_header *f, const struct sp_http_error *e);

/* A token character (RFC 9110 tchar). */
int h1_is_tchar(unsigned char c);

#endif
