/*
 * h1.c - the proxy listener's HTTP/1.1 server: accepting, connections and
 * their state machine (h1_int.h), reading (64 KiB recv() into one buffer
 * per connection, lent from a pool only while a request is in progress),
 * the request's way in (bodies buffered whole or streamed to the owner),
 * timeouts, refusals of our own and lingering close.
 * Parsing is h1_parse.c's, output h1_out.c's, the owner's side h1_reply.c's.
 *
 * Lifetime: a connection struct is freed only by h1_conn_maybe_free(),
 * once it is CLOSED, holds no owned request and no callback of ours runs
 * on it (busy), so nothing on the stack can see it freed.
 */
#include "h1_int.h"
#include "http_err.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536      /* input buffer, and the most one recv() asks for */
#define MIN_READ 4096       /* room kept free behind a parsed head */
#define ACCEPT_BATCH 64     /* accepts per wake-up */
#define ACCEPT_RETRY_MS 100 /* pause after EMFILE and the like */
#define NEXT_LOW 65536      /* parse the next request once this little is unsent */
#define LINGER_MS 2000      /* wait for the client's EOF after our last answer */
#define CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"

static void process_input(struct h1_conn *c);

void sp_h1_limits_default(struct sp_h1_limits *lim)
{
    lim->max_head_bytes = 64 * 1024;
    lim->max_headers = 100;
    lim->max_body = 10 * 1024 * 1024;
    lim->max_stream_body = (size_t)5 << 30;
    lim->idle_timeout_ms = 60000;
    lim->read_timeout_ms = 60000;
    lim->write_timeout_ms = 60000;
    lim->max_connections = 10000;
}

/* ---- lists and timers ---- */

static void list_link(struct h1_conn **head, struct h1_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void list_unlink(struct h1_conn **head, struct h1_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void add_timeout(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    event_add(ev, ms > 0 ? &tv : NULL);
}

static void timer_set(struct h1_conn *c, int64_t ms)
{
    if (ms > 0)
        add_timeout(c->ev_timer, ms);
    else
        event_del(c->ev_timer);
}

void h1_read_pause(struct h1_conn *c, int pause)
{
    if (pause && !c->read_paused) {
        event_del(c->ev_read);
        c->read_paused = 1;
    } else if (!pause && c->read_paused && !c->peer_eof) {
        event_add(c->ev_read, NULL);
        c->read_paused = 0;
    }
}

/* ---- input buffers ---- */

static char *ibuf_get(struct sp_h1_server *srv)
{
    if (srv && srv->nbufs)
        return srv->bufs[--srv->nbufs];
    return malloc(BUF_SIZE);
}

/* Wipe what the buffer held, then back to the pool (or free). */
static void ibuf_drop(struct h1_conn *c)
{
    sp_wipe(c->ibuf, c->ihw);
    if (c->srv && c->icap == BUF_SIZE && c->srv->nbufs < H1_BUF_POOL_MAX)
        c->srv->bufs[c->srv->nbufs++] = c->ibuf;
    else
        free(c->ibuf);
}

static void ibuf_release(struct h1_conn *c)
{
    if (!c->ibuf)
        return;
    ibuf_drop(c);
    c->ibuf = NULL;
    c->icap = c->ilen = c->ipos = c->ihw = 0;
}

/* Grow to cap, before any span points into the buffer. */
static int ibuf_grow(struct h1_conn *c, size_t cap)
{
    char *p = malloc(cap);

    if (!p)
        return -1;
    memcpy(p, c->ibuf, c->ilen);
    ibuf_drop(c);
    c->ibuf = p;
    c->icap = cap;
    c->ihw = c->ilen;
    return 0;
}

/* ---- connection end ---- */

void h1_req_free(struct sp_h1_req *req)
{
    sp_buf_free(&req->body);
    free(req);
}

/* Close the socket (quietly; rst: with a reset). An owned request keeps
 * the struct (and the buffer its spans point into) alive as a zombie. */
void h1_conn_close(struct h1_conn *c, int rst)
{
    struct sp_h1_server *srv = c->srv;

    if (c->fd < 0)
        return;
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timer);
    event_free(c->ev_flush);
    event_free(c->ev_body);
    c->ev_read = c->ev_write = c->ev_timer = c->ev_flush = c->ev_body = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    list_unlink(&srv->conns, c);
    srv->nconns--;
    h1_out_free(c);
    if (c->req && !c->req->owned) {
        h1_req_free(c->req);
        c->req = NULL;
    }
    if (c->req) {
        list_link(&srv->zombies, c);
        c->zombie = 1;
    } else {
        ibuf_release(c);
    }
}

void h1_conn_maybe_free(struct h1_conn *c)
{
    if (c->state != C_CLOSED || c->req || c->busy)
        return;
    if (c->zombie && c->srv)
        list_unlink(&c->srv->zombies, c);
    ibuf_release(c);
    free(c);
}

/* Tell the owner once that its client is gone. */
static void mark_gone(struct sp_h1_req *req)
{
    if (req->gone)
        return;
    req->gone = 1;
    req->drain_armed = 0;
    if (req->on_gone)
        req->on_gone(req, req->gone_arg);
}

/* The client went away or failed: close, and tell an owner once. */
static void conn_fail(struct h1_conn *c)
{
    /* Only an owned request survives h1_conn_close(). */
    struct sp_h1_req *req = c->req && c->req->owned ? c->req : NULL;

    h1_conn_close(c, 0);
    if (req)
        mark_gone(req);
}

/* ---- refusals of our own ---- */

static void report(struct sp_h1_server *srv, const struct sp_http_error *e,
                   const struct sp_err *err, const char *rid, const struct sockaddr_storage *peer,
                   socklen_t peer_len)
{
    if (srv->on_reject) {
        struct sp_h1_rejection r = {e->status, err, rid, (const struct sockaddr *)peer, peer_len};
        srv->on_reject(srv->reject_arg, &r);
    } else {
        struct sp_log_ctx ctx = {rid, NULL, NULL};
        sp_log(SP_LOG_INFO, &ctx, "client request refused (%d %s): %s", e->status,
               sp_err_wire(err->code), err->msg);
    }
}

/* Queue the product's error answer and close after it. An owned request
 * (a streamed one that failed) stays in c->req. */
static void send_error(struct h1_conn *c, const struct sp_err *err, int status)
{
    struct sp_http_error e;
    struct sp_h1_header f[SP_HTTP_ERROR_FIELDS];
    struct h1_head hd;
    char rid[SP_HTTP_ERROR_RID_LEN + 1], *w;
    size_t sz;

    sp_http_error_request_id(rid);
    if (sp_http_error_build(&e, err, status, rid) < 0) {
        h1_conn_close(c, 0);
        return;
    }
    report(c->srv, &e, err, rid, &c->peer, c->peer_len);
    h1_error_head(&hd, f, &e);
    sz = h1_head_size(&hd);
    w = h1_out_reserve(c, sz + e.body.len);
    if (!w) {
        sp_http_error_free(&e);
        h1_conn_close(c, 0);
        return;
    }
    memcpy(h1_head_write(&hd, w), e.body.data, e.body.len);
    h1_out_commit(c, sz + e.body.len);
    sp_http_error_free(&e);
    c->state = C_CLOSING;
    timer_set(c, 0);
    h1_read_pause(c, 0);
    h1_schedule_flush(c);
}

/* Answer with the product's error and close: the module's own refusals. */
static void reject(struct h1_conn *c, const struct sp_err *err, int status)
{
    if (c->req) {
        h1_req_free(c->req);
        c->req = NULL;
    }
    send_error(c, err, status);
}

static void reject_code(struct h1_conn *c, enum sp_err_code code, int status, const char *msg)
{
    struct sp_err e;

    sp_err_set(&e, code, "%s", msg);
    reject(c, &e, status);
}

/* Over max_connections: a best-effort 503 on the fresh socket, then close. */
static void refuse(struct sp_h1_server *srv, int fd, const struct sockaddr_storage *peer,
                   socklen_t peer_len)
{
    struct sp_err err;
    struct sp_http_error e;
    struct sp_h1_header f[SP_HTTP_ERROR_FIELDS];
    struct h1_head hd;
    char rid[SP_HTTP_ERROR_RID_LEN + 1], buf[4096];

    sp_err_set(&err, SP_E_STORE_UNAVAILABLE,
               "Too many client connections (proxy.max_connections): retry later");
    sp_http_error_request_id(rid);
    if (sp_http_error_build(&e, &err, 0, rid) == 0) {
        size_t sz;
        report(srv, &e, &err, rid, peer, peer_len);
        h1_error_head(&hd, f, &e);
        sz = h1_head_size(&hd);
        if (sz + e.body.len <= sizeof(buf)) {
            memcpy(h1_head_write(&hd, buf), e.body.data, e.body.len);
            /* Best effort: if it does not fit, the close alone says it. */
            (void)send(fd, buf, sz + e.body.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        sp_http_error_free(&e);
    }
    shutdown(fd, SHUT_WR);
    /* What already arrived would turn the close into a reset. */
    if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        sp_wipe(buf, sizeof(buf));
    close(fd);
}

/* ---- the request's way in ---- */

static void dispatch(struct h1_conn *c, enum conn_state state)
{
    struct sp_h1_req *req = c->req;

    timer_set(c, 0);
    c->state = state;
    req->owned = 1;
    c->srv->on_request(req, c->srv->arg);
}

/* Stream the body or buffer it (the owner's stream callback says), and
 * refuse a Content-Length over the limit that applies (413). */
static int choose_body(struct h1_conn *c, struct sp_h1_req *req, struct sp_err *err)
{
    const struct sp_h1_limits *lim = &c->srv->lim;
    size_t max = lim->max_body;

    if ((req->info.chunked || req->info.content_length > 0) && !req->info.expect_other &&
        c->srv->on_stream && c->srv->on_stream(req, c->srv->stream_arg)) {
        req->streamed = 1;
        max = lim->max_stream_body ? lim->max_stream_body : SIZE_MAX;
    }
    req->max_body = max;
    if (req->info.content_length > 0 && (uint64_t)req->info.content_length > max)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "Request body larger than %zu bytes", max);
    return 0;
}

/* The head [scan.start, end) is complete: parse it, start the body. */
static int head_complete(struct h1_conn *c, size_t end)
{
    const struct sp_h1_limits *lim = &c->srv->lim;
    size_t start = c->scan.start, n = c->scan.nfields;
    struct sp_h1_req *req;
    struct sp_err err;

    /* Room behind the head for a chunked body: once parsed it cannot move. */
    if (c->icap - end < MIN_READ && ibuf_grow(c, c->ilen + MIN_READ) < 0)
        goto oom;
    req = calloc(1, sizeof(*req) + n * sizeof(req->hbuf[0]));
    if (!req)
        goto oom;
    req->c = c;
    req->headers = req->hbuf;
    req->nheaders = n;
    req->max_trailer = lim->max_head_bytes;
    req->body_timeout = lim->read_timeout_ms;
    sp_buf_init(&req->body, 0, 1);
    c->req = req;
    c->head_end = c->ipos = end;
    /* The body limit depends on streaming, asked once the head parsed. */
    if (h1_parse_head(c->ibuf + start, end - start, req->hbuf, n, SIZE_MAX, &req->info, &err) < 0 ||
        choose_body(c, req, &err) < 0) {
        reject(c, &err, 0);
        return -1;
    }
    if (req->info.expect_other) {
        reject_code(c, SP_E_BAD_REQUEST, 417, "Only the 100-continue expectation is supported");
        return -1;
    }
    if (!req->info.chunked && req->info.content_length <= 0) {
        dispatch(c, C_SERVING);
        return 0;
    }
    if (req->info.chunked)
        h1_chunked_init(&req->ch);
    if (req->streamed) {
        req->body_left = req->info.chunked ? 0 : (uint64_t)req->info.content_length;
        dispatch(c, C_STREAM);
        return 0;
    }
    if (!req->info.chunked &&
        sp_buf_reserve(&req->body, (size_t)req->info.content_length, NULL) < 0)
        goto oom;
    /* Ask for the body unless some of it is here already. */
    if (req->info.expect_continue && c->ilen == end) {
        if (h1_out_add(c, CONTINUE_LINE, sizeof(CONTINUE_LINE) - 1) < 0)
            goto oom;
        h1_schedule_flush(c);
    }
    c->state = C_BODY;
    timer_set(c, lim->read_timeout_ms);
    return 0;
oom:
    reject_code(c, SP_E_INTERNAL, 0, "out of memory");
    return -1;
}

/* ---- streamed bodies ---- */

/* A streamed body failed: answer the error ourselves if the owner has not
 * started an answer (then close), else just close; the owner learns it
 * once, as its client being gone. */
static void stream_fail(struct h1_conn *c, const struct sp_err *err, int status)
{
    struct sp_h1_req *req = c->req;

    if (req->started) {
        conn_fail(c);
        return;
    }
    /* Our answer, not the owner's: theirs are no-ops from now on. */
    send_error(c, err, status);
    mark_gone(req);
}

/* Hand a piece to the owner: 0 while delivery may go on, -1 to stop (the
 * body ended, the owner paused or finished, or the connection failed). */
static int deliver(struct h1_conn *c, struct sp_h1_req *req, const char *p, size_t n, int last)
{
    if (last) {
        /* Before the call: a pause or an answer in it sees the body ended. */
        req->body_done = 1;
        c->state = C_SERVING;
        timer_set(c, 0);
    }
    req->on_body(req, p, n, last, req->body_arg);
    return c->req == req && c->state == C_STREAM && !req->body_paused ? 0 : -1;
}

/* Deliver what the buffer holds of a started, unpaused streamed body. */
static void stream_step(struct h1_conn *c)
{
    struct sp_h1_req *req = c->req;

    while (c->ipos < c->ilen) {
        size_t avail = c->ilen - c->ipos, used = 0, k = 0;
        struct sp_err err;
        int rc = 2;

        if (req->info.chunked) {
            rc = h1_chunked_next(&req->ch, c->ibuf + c->ipos, avail, &used, &k, req->max_body,
                                 req->max_trailer, &err);
            if (rc < 0) {
                stream_fail(c, &err, 0);
                return;
            }
        } else {
            k = req->body_left < avail ? (size_t)req->body_left : avail;
            req->body_left -= k;
        }
        c->ipos += used + k;
        if (rc == 0)
            break;
        if (deliver(c, req, rc == 2 ? c->ibuf + c->ipos - k : "", k,
                    rc == 1 || (!req->info.chunked && !req->body_left)) < 0)
            return;
    }
    /* All taken: the next bytes go right behind the head again. */
    c->ipos = c->ilen = c->head_end;
    h1_read_pause(c, 0);
}

static void on_body_event(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *c = arg;

    c->busy++;
    if (c->state == C_STREAM)
        process_input(c);
    c->busy--;
    h1_conn_maybe_free(c);
}

/* Read and deliver, or stop, as the owner's start and pause say. */
static void stream_apply(struct h1_conn *c)
{
    struct sp_h1_req *req = c->req;

    if (req->body_paused) {
        h1_read_pause(c, 1);
        timer_set(c, 0);
        return;
    }
    h1_read_pause(c, 0);
    timer_set(c, req->body_timeout);
    if (c->ipos < c->ilen)
        event_active(c->ev_body, EV_READ, 1);
}

int sp_h1_req_streamed(const struct sp_h1_req *req)
{
    return req->streamed;
}

void sp_h1_req_body_start(struct sp_h1_req *req, sp_h1_body_fn fn, void *arg)
{
    struct h1_conn *c = req->c;

    if (!req->streamed || req->body_started || req->gone || c->fd < 0 || c->state != C_STREAM)
        return;
    req->body_started = 1;
    req->on_body = fn;
    req->body_arg = arg;
    /* Invited only now, so that an owner refusing first never gets the body.
     * Out of memory: the client sends it after its own wait anyway. */
    if (req->info.expect_continue && !req->started && c->ilen == c->head_end &&
        h1_out_add(c, CONTINUE_LINE, sizeof(CONTINUE_LINE) - 1) == 0)
        h1_schedule_flush(c);
    stream_apply(c);
}

void sp_h1_req_body_pause(struct sp_h1_req *req, int paused)
{
    struct h1_conn *c = req->c;

    req->body_paused = paused != 0;
    if (req->body_started && !req->gone && c->fd >= 0 && c->state == C_STREAM && c->req == req)
        stream_apply(c);
}

/* The body from the buffer: 1 complete, 0 more needed, -1 refused. */
static int body_step(struct h1_conn *c)
{
    struct sp_h1_req *req = c->req;
    size_t avail = c->ilen - c->ipos, left, k;

    if (req->info.chunked) {
        struct sp_err err;
        size_t used;
        int rc = h1_chunked_feed(&req->ch, c->ibuf + c->ipos, avail, &used, &req->body,
                                 req->max_body, req->max_trailer, &err);
        if (rc < 0) {
            reject(c, &err, 0);
            return -1;
        }
        c->ipos += used;
        return rc;
    }
    left = (size_t)req->info.content_length - req->body.len;
    k = left < avail ? left : avail;
    if (k) {
        memcpy(req->body.data + req->body.len, c->ibuf + c->ipos, k);
        req->body.len += k;
        req->body.data[req->body.len] = '\0';
        c->ipos += k;
    }
    return req->body.len == (size_t)req->info.content_length;
}

static int head_step(struct h1_conn *c)
{
    const struct sp_h1_limits *lim = &c->srv->lim;
    struct sp_err err;
    size_t end;
    int rc =
        h1_scan_head(&c->scan, c->ibuf, c->ilen, lim->max_head_bytes, lim->max_headers, &end, &err);

    c->ipos = c->scan.start;
    if (rc < 0) {
        reject(c, &err, 0);
        return -1;
    }
    if (rc == 0) {
        /* Only empty lines so far: still idle (the deadline stands). */
        if (c->scan.start == c->ilen)
            c->state = C_IDLE;
        return -1;
    }
    return head_complete(c, end);
}

static void process_input(struct h1_conn *c)
{
    for (;;) {
        switch (c->state) {
        case C_IDLE:
            if (c->ipos == c->ilen)
                return;
            c->state = C_HEAD;
            h1_scan_init(&c->scan, c->ipos);
            timer_set(c, c->srv->lim.read_timeout_ms);
            break;
        case C_HEAD:
            if (head_step(c) < 0)
                return;
            break;
        case C_BODY:
            if (body_step(c) <= 0)
                return;
            dispatch(c, C_SERVING);
            break;
        case C_STREAM:
            if (c->req->body_started && !c->req->body_paused)
                stream_step(c);
            return;
        default:
            return;
        }
    }
}

/* Free room at the end of the input buffer, or -1 (reading paused or the
 * connection refused). */
static int make_room(struct h1_conn *c)
{
    size_t from, cap, head_cap;

    if (!c->ibuf) {
        c->ibuf = ibuf_get(c->srv);
        if (!c->ibuf) {
            h1_conn_close(c, 0);
            return -1;
        }
        c->icap = BUF_SIZE;
    }
    if (c->state == C_IDLE && c->ipos == c->ilen)
        c->ipos = c->ilen = 0;
    if (c->icap - c->ilen >= (c->state == C_BODY || c->state == C_STREAM ? MIN_READ : 1))
        return 0;
    switch (c->state) {
    case C_IDLE:
    case C_HEAD:
        from = c->state == C_HEAD ? c->scan.start : c->ipos;
        memmove(c->ibuf, c->ibuf + from, c->ilen - from);
        c->ilen -= from;
        c->ipos -= from;
        if (c->state == C_HEAD)
            h1_scan_shift(&c->scan, from);
        if (c->ilen < c->icap)
            return 0;
        head_cap = c->srv->lim.max_head_bytes + MIN_READ;
        cap = c->icap * 2 < head_cap ? c->icap * 2 : head_cap;
        if (cap <= c->icap) {
            reject_code(c, SP_E_HEADERS_TOO_LARGE, 0, "Request line and headers too large");
            return -1;
        }
        if (ibuf_grow(c, cap) == 0)
            return 0;
        reject_code(c, SP_E_INTERNAL, 0, "out of memory");
        return -1;
    case C_BODY:
    case C_STREAM:
        /* Close the gap behind the head that decoded chunk framing (or a
         * streamed body's delivered bytes) left. */
        memmove(c->ibuf + c->head_end, c->ibuf + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos - c->head_end;
        c->ipos = c->head_end;
        if (c->ilen < c->icap)
            return 0;
        /* BODY: cannot happen, the decoder takes all it is given. STREAM:
         * not started or paused, so keep what came, up to the buffer. */
        h1_read_pause(c, 1);
        return -1;
    default:
        /* SERVING, NEXT: keep what comes (pipelining) up to the buffer. */
        h1_read_pause(c, 1);
        return -1;
    }
}

static void on_eof(struct h1_conn *c)
{
    switch (c->state) {
    case C_STREAM:
    case C_SERVING:
        conn_fail(c);
        break;
    case C_NEXT:
        /* Answered: finish writing it, then close. */
        c->peer_eof = 1;
        c->state = C_CLOSING;
        h1_read_pause(c, 1);
        break;
    default:
        /* Idle, or a request abandoned half-way: nobody to answer. */
        h1_conn_close(c, 0);
        break;
    }
}

static void read_input(struct h1_conn *c)
{
    struct sp_h1_req *req = c->req;
    int direct = c->state == C_BODY && !req->info.chunked && c->ipos == c->ilen;
    char *dst;
    size_t room;
    ssize_t n;

    if (direct) {
        /* A Content-Length body goes straight into its own buffer. */
        dst = req->body.data + req->body.len;
        room = (size_t)req->info.content_length - req->body.len;
    } else {
        if (make_room(c) < 0)
            return;
        dst = c->ibuf + c->ilen;
        room = c->icap - c->ilen;
    }
    n = recv(c->fd, dst, room, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail(c);
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    if (direct) {
        req->body.len += (size_t)n;
        req->body.data[req->body.len] = '\0';
    } else {
        c->ilen += (size_t)n;
        if (c->ilen > c->ihw)
            c->ihw = c->ilen;
    }
    /* A streamed body's timeout is one of inactivity. */
    if (c->state == C_STREAM && req->body_started && !req->body_paused)
        timer_set(c, req->body_timeout);
    process_input(c);
}

/* CLOSING, LINGER: read and drop, so that closing does not reset. Behind
 * the head of a request still owned (a streamed one that failed): the
 * owner's spans point into it. */
static void discard_input(struct h1_conn *c)
{
    size_t at = c->req ? c->head_end : 0;
    ssize_t n;

    if (!c->ibuf) {
        c->ibuf = ibuf_get(c->srv);
        if (!c->ibuf) {
            h1_conn_close(c, 0);
            return;
        }
        c->icap = BUF_SIZE;
    }
    n = recv(c->fd, c->ibuf + at, c->icap - at, 0);
    if (n > 0) {
        if (at + (size_t)n > c->ihw)
            c->ihw = at + (size_t)n;
        c->ilen = c->ipos = at;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    } else if (c->state == C_LINGER || n < 0) {
        h1_conn_close(c, 0);
    } else {
        c->peer_eof = 1;
        h1_read_pause(c, 1);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *c = arg;

    c->busy++;
    if (c->state == C_CLOSING || c->state == C_LINGER)
        discard_input(c);
    else
        read_input(c);
    c->busy--;
    h1_conn_maybe_free(c);
}

/* ---- the answer's way out ---- */

static void next_request(struct h1_conn *c)
{
    if (c->ipos < c->ilen) {
        memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    } else {
        ibuf_release(c);
    }
    c->state = C_IDLE;
    h1_read_pause(c, 0);
    if (c->srv->draining && !c->ilen) {
        h1_conn_close(c, 0);
        return;
    }
    timer_set(c, c->srv->lim.idle_timeout_ms);
    process_input(c);
}

static void start_linger(struct h1_conn *c)
{
    if (c->peer_eof) {
        h1_conn_close(c, 0);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = C_LINGER;
    h1_read_pause(c, 0);
    timer_set(c, LINGER_MS);
}

static void after_output(struct h1_conn *c)
{
    struct sp_h1_req *req = c->req;

    if (!c->out_len && c->write_armed) {
        event_del(c->ev_write);
        c->write_armed = 0;
    } else if (c->out_len && !c->write_armed) {
        add_timeout(c->ev_write, c->srv->lim.write_timeout_ms);
        c->write_armed = 1;
    }
    if (req && req->owned && req->drain_armed && c->out_len <= req->low_water) {
        req->drain_armed = 0;
        req->on_drain(req, req->drain_arg);
        if (c->fd < 0)
            return;
    }
    if (c->state == C_NEXT && c->out_len <= NEXT_LOW)
        next_request(c);
    else if (c->state == C_CLOSING && !c->out_len)
        start_linger(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *c = arg;

    c->busy++;
    c->flush_queued = 0;
    if ((what & EV_TIMEOUT) || h1_out_flush(c) < 0)
        conn_fail(c);
    else
        after_output(c);
    c->busy--;
    h1_conn_maybe_free(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *c = arg;

    c->busy++;
    switch (c->state) {
    case C_HEAD:
    case C_BODY:
        reject_code(c, SP_E_BAD_REQUEST, 408, "The request did not arrive in time");
        break;
    case C_STREAM:
        if (c->req->body_started && !c->req->body_paused) {
            struct sp_err err;
            sp_err_set(&err, SP_E_BAD_REQUEST, "The request body stopped arriving");
            stream_fail(c, &err, 408);
        }
        break;
    case C_IDLE:
    case C_LINGER:
        h1_conn_close(c, 0);
        break;
    default:
        break;
    }
    c->busy--;
    h1_conn_maybe_free(c);
}

/* ---- accepting ---- */

static int conn_new(struct sp_h1_server *srv, int fd, const struct sockaddr_storage *peer,
                    socklen_t peer_len)
{
    struct h1_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c)
        return -1;
    if (srv->nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = srv;
    c->fd = fd;
    c->peer = *peer;
    c->peer_len = peer_len;
    c->ev_read = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->ev_timer = evtimer_new(srv->base, on_timer, c);
    c->ev_flush = event_new(srv->base, -1, 0, on_write, c);
    c->ev_body = event_new(srv->base, -1, 0, on_body_event, c);
    if (!c->ev_read || !c->ev_write || !c->ev_timer || !c->ev_flush || !c->ev_body ||
        event_add(c->ev_read, NULL) < 0) {
        struct event *evs[] = {c->ev_read, c->ev_write, c->ev_timer, c->ev_flush, c->ev_body};
        for (size_t i = 0; i < SP_ARRAY_LEN(evs); i++)
            if (evs[i])
                event_free(evs[i]);
        free(c);
        return -1;
    }
    c->state = C_IDLE;
    list_link(&srv->conns, c);
    srv->nconns++;
    timer_set(c, srv->lim.idle_timeout_ms);
    return 0;
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct sp_h1_server *srv = arg;

    if (srv->ev_accept)
        event_add(srv->ev_accept, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct sp_h1_server *srv = arg;

    for (int i = 0; i < ACCEPT_BATCH && srv->lfd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the listener would stay readable and
                 * spin; pause it a moment instead. */
                sp_log(SP_LOG_WARN, NULL, "proxy listener: accept: %s; pausing %d ms",
                       strerror(errno), ACCEPT_RETRY_MS);
                event_del(srv->ev_accept);
                add_timeout(srv->ev_retry, ACCEPT_RETRY_MS);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sp_log(SP_LOG_WARN, NULL, "proxy listener: accept: %s", strerror(errno));
            }
            return;
        }
        if (srv->lim.max_connections && srv->nconns >= srv->lim.max_connections)
            refuse(srv, fd, &ss, sl);
        else if (conn_new(srv, fd, &ss, sl) < 0)
            close(fd);
    }
}

/* ---- the server ---- */

struct sp_h1_server *sp_h1_server_new(struct event_base *base, int listen_fd,
                                      const struct sp_h1_limits *lim, sp_h1_request_fn on_request,
                                      void *arg, struct sp_err *err)
{
    struct sp_h1_server *srv = calloc(1, sizeof(*srv));
    int on = 0;
    socklen_t len = sizeof(on);

    if (!srv) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    srv->base = base;
    srv->lfd = listen_fd;
    srv->lim = *lim;
    srv->on_request = on_request;
    srv->arg = arg;
    /* Accepted sockets inherit TCP_NODELAY on Linux: set it per socket
     * only when the listener lacks it (not on unix sockets). */
    srv->nodelay = getsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && !on;
    srv->ev_accept = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, srv);
    srv->ev_retry = evtimer_new(base, on_accept_retry, srv);
    if (evutil_make_socket_nonblocking(listen_fd) < 0 || !srv->ev_accept || !srv->ev_retry ||
        event_add(srv->ev_accept, NULL) < 0) {
        sp_err_set(err, SP_E_INTERNAL, "cannot accept on the proxy listener: %s", strerror(errno));
        srv->lfd = -1; /* still the caller's */
        sp_h1_server_free(srv);
        return NULL;
    }
    return srv;
}

void sp_h1_server_set_limits(struct sp_h1_server *srv, const struct sp_h1_limits *lim)
{
    srv->lim = *lim;
}

void sp_h1_server_on_reject(struct sp_h1_server *srv, sp_h1_reject_fn fn, void *arg)
{
    srv->on_reject = fn;
    srv->reject_arg = arg;
}

void sp_h1_server_on_stream(struct sp_h1_server *srv, sp_h1_stream_fn fn, void *arg)
{
    srv->on_stream = fn;
    srv->stream_arg = arg;
}

static void close_listener(struct sp_h1_server *srv)
{
    if (srv->ev_accept)
        event_free(srv->ev_accept);
    if (srv->ev_retry)
        event_free(srv->ev_retry);
    srv->ev_accept = srv->ev_retry = NULL;
    if (srv->lfd >= 0)
        close(srv->lfd);
    srv->lfd = -1;
}

void sp_h1_server_stop_accepting(struct sp_h1_server *srv)
{
    struct h1_conn *c, *next;

    close_listener(srv);
    srv->draining = 1;
    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (c->state == C_IDLE && c->ipos == c->ilen) {
            h1_conn_close(c, 0);
            h1_conn_maybe_free(c);
        }
    }
}

size_t sp_h1_server_connections(const struct sp_h1_server *srv)
{
    return srv->nconns;
}

void sp_h1_server_free(struct sp_h1_server *srv)
{
    struct h1_conn *c;

    if (!srv)
        return;
    close_listener(srv);
    /* Requests still owned outlive the server: their finishing call frees
     * them with their connection, which forgets the server here. */
    while ((c = srv->conns)) {
        c->busy++;
        conn_fail(c);
        if (c->zombie)
            list_unlink(&srv->zombies, c);
        c->zombie = 0;
        c->srv = NULL;
        c->busy--;
        h1_conn_maybe_free(c);
    }
    while ((c = srv->zombies)) {
        list_unlink(&srv->zombies, c);
        c->srv = NULL;
        c->zombie = 0;
    }
    while (srv->nbufs)
        free(srv->bufs[--srv->nbufs]);
    while (srv->segs) {
        struct h1_seg *s = srv->segs;
        srv->segs = s->next;
        free(s);
    }
    free(srv);
}
