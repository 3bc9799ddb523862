/*
 * upstream.c - the upstream client's life cycle and event loop glue:
 * libcurl's multi interface driven by one libevent event base per worker.
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer, which only arms a libevent timer); libevent tells curl
 * what happened (curl_multi_socket_action). Our callbacks to the caller
 * (on_head, on_body) run inside curl; anything the caller does from there
 * that curl forbids inside its callbacks (adding or removing a transfer,
 * resuming one) is deferred to the moment curl returns, tracked by
 * u->depth. on_done always runs outside curl.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "upstream_int.h"

#define PROCESS_ROUNDS 16 /* deferred work done per pass before yielding */
#define READ_BUFFER_SIZE 65536L

#define REQ_OF(l, field)                                                                           \
    ((struct sp_upstream_req *)(void *)((char *)(l)-offsetof(struct sp_upstream_req, field)))

/* ---- intrusive lists ---- */

static void link_init(struct up_link *l)
{
    l->prev = l->next = l;
}

static void link_add(struct up_link *head, struct up_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_del(struct up_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

/* Move every entry of from to (empty) to. */
static void link_splice(struct up_link *from, struct up_link *to)
{
    link_init(to);
    if (from->next == from)
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    link_init(from);
}

/* ---- sockets and timers ---- */

static struct up_sock *sock_get(struct sp_upstream *u, curl_socket_t fd, int create)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= u->nsocks) {
        size_t n = u->nsocks ? u->nsocks : 64;
        struct up_sock **ns;
        if (!create)
            return NULL;
        while (n <= (size_t)fd)
            n *= 2;
        ns = realloc(u->socks, n * sizeof(*ns));
        if (!ns)
            return NULL;
        memset(ns + u->nsocks, 0, (n - u->nsocks) * sizeof(*ns));
        u->socks = ns;
        u->nsocks = n;
    }
    if (!u->socks[fd] && create)
        u->socks[fd] = calloc(1, sizeof(struct up_sock));
    return u->socks[fd];
}

/* Free the event of fd before the number can be reused. */
static void sock_drop(struct sp_upstream *u, curl_socket_t fd)
{
    struct up_sock *s = sock_get(u, fd, 0);

    if (!s)
        return;
    if (s->ev)
        event_free(s->ev);
    free(s);
    u->socks[fd] = NULL;
}

static void process(struct sp_upstream *u);

static void pool_action(struct up_pool *p, curl_socket_t fd, int flags)
{
    struct sp_upstream *u = p->u;
    int running;

    u->depth++;
    (void)curl_multi_socket_action(p->multi, fd, flags, &running);
    u->depth--;
    if (u->depth == 0)
        process(u);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct up_sock *s = arg;
    int flags;

    /* An idle pooled connection became readable (closed by the server, or
     * stray bytes): stop watching; curl finds it dead before reusing it. */
    if (s->idle) {
        (void)event_del(s->ev);
        s->what = 0;
        return;
    }
    flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    pool_action(s->pool, fd, flags); /* may free s */
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    pool_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks, or stop. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct up_pool *p = userp;
    struct sp_upstream *u = p->u;
    struct up_sock *s;
    short ev;

    if (what == CURL_POLL_REMOVE) {
        /* Back to the pool: keep watching it for reading (a server closing
         * it makes it readable) rather than removing and adding its event
         * again for every request, two epoll_ctl calls each. */
        s = sock_get(u, fd, 0);
        if (!s || !s->ev)
            return 0;
        s->idle = 1;
        if (s->what == (EV_READ | EV_PERSIST))
            return 0;
        (void)event_del(s->ev);
        s->what = EV_READ | EV_PERSIST;
        if (event_assign(s->ev, u->base, fd, s->what, on_sock_event, s) < 0 ||
            event_add(s->ev, NULL) < 0)
            sock_drop(u, fd);
        return 0;
    }
    s = sock_get(u, fd, 1);
    if (!s)
        return -1;
    s->idle = 0;
    ev = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
                 EV_PERSIST);
    if (s->ev && s->what == ev && s->pool == p)
        return 0;
    if (!s->ev) {
        s->ev = event_new(u->base, fd, ev, on_sock_event, s);
        if (!s->ev)
            return -1;
    } else {
        (void)event_del(s->ev);
        if (event_assign(s->ev, u->base, fd, ev, on_sock_event, s) < 0)
            return -1;
    }
    s->what = ev;
    s->pool = p;
    return event_add(s->ev, NULL) < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: only arms (or disarms) the libevent timer. */
static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
    struct up_pool *p = userp;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (ms < 0)
        return evtimer_del(p->timer) < 0 ? -1 : 0;
    return evtimer_add(p->timer, &tv) < 0 ? -1 : 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: the SSRF guard sees every address dialled. */
static curl_socket_t on_curl_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct sp_upstream_req *req = clientp;
    struct sp_upstream *u = req->u;
    const char *why = NULL;
    struct up_sock *stale;
    int fd;

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (up_guard_check(u->guard, &a->addr, a->addrlen, &why) < 0) {
        req->dials_denied++;
        req->deny_why = why;
        return CURL_SOCKET_BAD;
    }
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    req->dials_opened++;
    /* curl closes an abandoned connect attempt without telling us; if it
     * watched that number, it still believes it does: watch the new socket
     * the same way. */
    stale = sock_get(u, fd, 0);
    if (stale && stale->ev) {
        (void)event_del(stale->ev);
        (void)event_add(stale->ev, NULL);
    }
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: drop the event, then close. */
static int on_curl_close(void *clientp, curl_socket_t fd)
{
    struct up_pool *p = clientp;

    sock_drop(p->u, fd);
    return close(fd);
}

/* ---- pools ---- */

static void pool_free(struct up_pool *p)
{
    if (!p)
        return;
    if (p->multi)
        curl_multi_cleanup(p->multi); /* closes its connections */
    if (p->share)
        curl_share_cleanup(p->share);
    if (p->timer)
        event_free(p->timer);
    free(p);
}

static struct up_pool *pool_new(struct sp_upstream *u, size_t max_idle, struct sp_err *err)
{
    struct up_pool *p = calloc(1, sizeof(*p));
    CURLMcode mc = CURLM_OK;

    if (!p)
        goto nomem;
    p->u = u;
    p->multi = curl_multi_init();
    p->share = curl_share_init();
    p->timer = evtimer_new(u->base, on_timer_event, p);
    if (!p->multi || !p->share || !p->timer)
        goto nomem;
    if (curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
        goto nomem;
    mc = curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, (long)max_idle);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(p->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    if (mc != CURLM_OK) {
        sp_err_set(err, SP_E_INTERNAL, "cannot set up the connection pool: %s",
                   curl_multi_strerror(mc));
        pool_free(p);
        return NULL;
    }
    return p;
nomem:
    pool_free(p);
    sp_err_set(err, SP_E_INTERNAL, "out of memory");
    return NULL;
}

/* ---- requests ---- */

static void req_free(struct sp_upstream_req *req)
{
    link_del(&req->all);
    link_del(&req->deferred);
    if (req->easy)
        curl_easy_cleanup(req->easy);
    curl_url_cleanup(req->uh);
    up_req_free_headers(req->headers);
    up_ca_unref(req->ca);
    sp_buf_free(&req->head);
    free(req->hoffs);
    if (req->pool) {
        req->pool->nreqs--;
        if (req->pool != req->u->pool && req->pool->nreqs == 0)
            event_active(req->u->kick, 0, 0); /* free the retired pool */
    }
    sp_free_wiped(req, sizeof(*req));
}

static void defer(struct sp_upstream_req *req, unsigned what)
{
    if (!req->defer)
        link_add(&req->u->deferred, &req->deferred);
    req->defer |= what;
}

/* The transfer is over: tell the caller (unless cancelled) and free it.
 * Only outside curl. */
static void finish(struct sp_upstream_req *req, CURLcode rc)
{
    struct sp_err err;
    int failed = rc != CURLE_OK || req->abort != UP_ABORT_NONE || !req->head_sent;

    curl_multi_remove_handle(req->pool->multi, req->easy);
    if (!req->cancelled) {
        if (failed && rc == CURLE_OK && req->abort == UP_ABORT_NONE)
            req->abort = UP_ABORT_HEAD_MALFORMED; /* ended without a head */
        if (failed)
            up_req_error(req, rc, &err);
        req->state = UP_FINISHING;
        req->cb.on_done(req->arg, failed ? &err : NULL, req->head_sent);
    }
    req_free(req);
}

static void drain(struct up_pool *p)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(p->multi, &left))) {
        char *priv = NULL;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result; /* before remove_handle invalidates msg */
        if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) == CURLE_OK && priv)
            finish((struct sp_upstream_req *)(void *)priv, rc);
    }
}

static int add_to_pool(struct sp_upstream_req *req)
{
    if (curl_multi_add_handle(req->pool->multi, req->easy) != CURLM_OK)
        return -1;
    req->state = UP_RUNNING;
    return 0;
}

/* Resume what the caller asked to resume (curl may call on_body inside). */
static void apply_pause(struct sp_upstream_req *req, int resume_send)
{
    struct sp_upstream *u = req->u;
    int recv = req->recv_paused && req->want_pause;
    int send = req->send_paused && !resume_send;
    CURLcode rc;

    if (req->state != UP_RUNNING || (recv == req->recv_paused && send == req->send_paused))
        return;
    req->recv_paused = recv;
    req->send_paused = send;
    u->depth++;
    rc = curl_easy_pause(req->easy, (recv ? CURLPAUSE_RECV : 0) | (send ? CURLPAUSE_SEND : 0));
    u->depth--;
    if (rc != CURLE_OK && !req->cancelled)
        finish(req, rc);
}

static void run_deferred(struct sp_upstream_req *req)
{
    unsigned what = req->defer;

    req->defer = 0;
    link_del(&req->deferred);
    if (what & UP_DEFER_REMOVE) {
        if (req->state == UP_RUNNING)
            curl_multi_remove_handle(req->pool->multi, req->easy);
        req_free(req);
        return;
    }
    if ((what & UP_DEFER_ADD) && add_to_pool(req) < 0) {
        req->abort = UP_ABORT_NOMEM; /* start() already returned: on_done */
        finish(req, CURLE_OUT_OF_MEMORY);
        return;
    }
    if (what & (UP_DEFER_RESUME_RECV | UP_DEFER_RESUME_SEND))
        apply_pause(req, (what & UP_DEFER_RESUME_SEND) != 0);
}

/* After curl returns: finished transfers, then deferred work, a bounded
 * number of rounds (a resume may call the caller, who may defer more). */
static void process(struct sp_upstream *u)
{
    for (int round = 0; round < PROCESS_ROUNDS; round++) {
        struct up_link local;
        drain(u->pool);
        for (struct up_pool *p = u->retired; p; p = p->next)
            drain(p);
        if (u->deferred.next == &u->deferred)
            return;
        link_splice(&u->deferred, &local);
        while (local.next != &local)
            run_deferred(REQ_OF(local.next, deferred));
    }
    event_active(u->kick, 0, 0);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct sp_upstream *u = arg;
    struct up_pool **pp = &u->retired;

    while (*pp) {
        struct up_pool *p = *pp;
        if (p->nreqs == 0) {
            *pp = p->next;
            pool_free(p);
        } else {
            pp = &p->next;
        }
    }
    process(u);
}

/* ---- transfer callbacks ---- */

static size_t on_curl_write(char *data, size_t size, size_t n, void *arg)
{
    struct sp_upstream_req *req = arg;
    size_t len = size * n;

    if (req->cancelled)
        return 0;
    if (req->want_pause) {
        req->recv_paused = 1;
        return CURL_WRITEFUNC_PAUSE; /* curl holds data and stops reading */
    }
    if (!req->head_sent) {
        req->abort = UP_ABORT_HEAD_MALFORMED;
        return 0;
    }
    if (req->cb.on_body(req->arg, data, len) < 0) {
        req->abort = UP_ABORT_CALLBACK;
        return 0;
    }
    return req->cancelled ? 0 : len;
}

static size_t on_curl_read(char *buf, size_t size, size_t n, void *arg)
{
    struct sp_upstream_req *req = arg;
    size_t len = size * n;
    ssize_t got;

    if (req->cancelled)
        return CURL_READFUNC_ABORT;
    got = req->on_read(req->arg, buf, len);
    if (req->cancelled)
        return CURL_READFUNC_ABORT;
    if (got == SP_UPSTREAM_READ_WAIT) {
        req->send_paused = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (got < 0 || (size_t)got > len) {
        req->abort = UP_ABORT_READ;
        return CURL_READFUNC_ABORT;
    }
    req->uploaded += got;
    return (size_t)got;
}

/* curl rewinds to resend a request on a fresh connection when a pooled one
 * turned out dead: possible only before on_read handed anything out. */
static int on_curl_seek(void *arg, curl_off_t offset, int origin)
{
    struct sp_upstream_req *req = arg;

    if (offset == 0 && origin == SEEK_SET && req->uploaded == 0)
        return CURL_SEEKFUNC_OK;
    return CURL_SEEKFUNC_CANTSEEK;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)

/* Everything but the request itself: transport, TLS, limits, callbacks. */
static CURLcode easy_setup(struct sp_upstream_req *req)
{
    struct sp_upstream *u = req->u;
    CURL *e = req->easy;
    CURLcode rc = CURLE_OK;

    SETOPT(CURLOPT_PRIVATE, (void *)req);
    SETOPT(CURLOPT_SHARE, req->pool->share);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROXY, ""); /* ignore http_proxy & co. in the environment */
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_PATH_AS_IS, 1L);
    SETOPT(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SETOPT(CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    SETOPT(CURLOPT_TCP_NODELAY, 1L);
    SETOPT(CURLOPT_BUFFERSIZE, READ_BUFFER_SIZE);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (u->idle_timeout_ms > 0)
        SETOPT(CURLOPT_MAXAGE_CONN, (long)((u->idle_timeout_ms + 999) / 1000));
    else
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(CURLOPT_CAPATH, NULL); /* the CA file alone is cached per pool */
    if (req->ca && req->ca->fd >= 0) {
        SETOPT(CURLOPT_CAINFO, req->ca->path);
    } else if (req->ca) {
        struct curl_blob blob = {req->ca->data, req->ca->len, CURL_BLOB_NOCOPY};
        SETOPT(CURLOPT_CAINFO_BLOB, &blob);
    }
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, on_curl_open);
    SETOPT(CURLOPT_OPENSOCKETDATA, (void *)req);
    SETOPT(CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
    SETOPT(CURLOPT_CLOSESOCKETDATA, (void *)req->pool);
    SETOPT(CURLOPT_HEADERFUNCTION, up_on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)req);
    SETOPT(CURLOPT_WRITEFUNCTION, on_curl_write);
    SETOPT(CURLOPT_WRITEDATA, (void *)req);
    SETOPT(CURLOPT_READFUNCTION, on_curl_read);
    SETOPT(CURLOPT_READDATA, (void *)req);
    SETOPT(CURLOPT_SEEKFUNCTION, on_curl_seek);
    SETOPT(CURLOPT_SEEKDATA, (void *)req);
    return rc;
}

#undef SETOPT

struct sp_upstream_req *sp_upstream_start(struct sp_upstream *u,
                                          const struct sp_upstream_request *r,
                                          const struct sp_upstream_callbacks *cb, void *arg,
                                          struct sp_err *err)
{
    struct sp_upstream_req *req = calloc(1, sizeof(*req));
    CURLcode rc;

    if (!req) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    req->u = u;
    link_init(&req->all);
    link_init(&req->deferred);
    link_add(&u->all, &req->all);
    req->pool = u->pool;
    req->pool->nreqs++;
    req->cb = *cb;
    req->arg = arg;
    req->ca = up_ca_ref(u->ca);
    req->connect_timeout_ms = u->connect_timeout_ms;
    req->timeout_ms = u->timeout_ms;
    req->max_headers = u->max_headers;
    req->max_header_size = u->max_header_size;
    sp_buf_init(&req->head, u->max_header_size, 1);
    req->easy = curl_easy_init();
    if (!req->easy) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    rc = easy_setup(req);
    if (rc != CURLE_OK) {
        sp_err_set(err, SP_E_INTERNAL, "cannot set up the transfer: %s", curl_easy_strerror(rc));
        goto fail;
    }
    if (up_req_setup(req, r, err) < 0)
        goto fail;
    if (u->depth > 0) {
        req->state = UP_PENDING; /* curl forbids adding from its callbacks */
        defer(req, UP_DEFER_ADD);
    } else if (add_to_pool(req) < 0) {
        sp_err_set(err, SP_E_INTERNAL, "cannot start the transfer");
        goto fail;
    }
    return req;
fail:
    req_free(req);
    return NULL;
}

void sp_upstream_cancel(struct sp_upstream_req *req)
{
    if (!req || req->cancelled || req->state == UP_FINISHING)
        return;
    req->cancelled = 1;
    if (req->u->depth > 0) {
        defer(req, UP_DEFER_REMOVE); /* curl forbids removing from its callbacks */
        return;
    }
    if (req->state == UP_RUNNING)
        curl_multi_remove_handle(req->pool->multi, req->easy);
    req_free(req);
}

void sp_upstream_pause(struct sp_upstream_req *req, int paused)
{
    if (!req || req->cancelled || req->state == UP_FINISHING)
        return;
    req->want_pause = paused != 0;
    if (!paused && req->recv_paused) {
        defer(req, UP_DEFER_RESUME_RECV);
        event_active(req->u->kick, 0, 0);
    }
}

void sp_upstream_resume_upload(struct sp_upstream_req *req)
{
    if (!req || req->cancelled || req->state == UP_FINISHING || !req->send_paused)
        return;
    defer(req, UP_DEFER_RESUME_SEND);
    event_active(req->u->kick, 0, 0);
}

/* ---- the client ---- */

static void opts_numbers(struct sp_upstream *u, const struct sp_upstream_opts *o)
{
    u->connect_timeout_ms =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : UP_DEFAULT_CONNECT_TIMEOUT_MS;
    u->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : UP_DEFAULT_TIMEOUT_MS;
    u->idle_timeout_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 0;
    u->max_header_size = o->max_header_size ? o->max_header_size : UP_DEFAULT_MAX_HEADER_SIZE;
    u->max_headers = o->max_headers ? o->max_headers : UP_DEFAULT_MAX_HEADERS;
    u->max_idle_conns = o->max_idle_conns ? o->max_idle_conns : UP_DEFAULT_MAX_IDLE_CONNS;
}

int sp_upstream_set_opts(struct sp_upstream *u, const struct sp_upstream_opts *opts,
                         struct sp_err *err)
{
    struct up_guard *guard = NULL;
    struct up_ca *ca = NULL;
    struct up_pool *pool = NULL;
    size_t idle = opts->max_idle_conns ? opts->max_idle_conns : UP_DEFAULT_MAX_IDLE_CONNS;

    if (up_guard_new(&guard, opts, err) < 0 || up_ca_load(opts->ca_file, &ca, err) < 0)
        goto fail;
    if (u->pool &&
        (!up_guard_same(u->guard, guard) || !up_ca_same(u->ca, ca) || idle != u->max_idle_conns)) {
        /* Pooled connections were dialled under the old rules: new requests
         * get a fresh pool, the old one drains. */
        pool = pool_new(u, idle, err);
        if (!pool)
            goto fail;
        u->pool->next = u->retired;
        u->retired = u->pool;
        u->pool = pool;
        event_active(u->kick, 0, 0);
    }
    opts_numbers(u, opts);
    up_guard_free(u->guard);
    u->guard = guard;
    if (up_ca_same(u->ca, ca)) {
        up_ca_unref(ca); /* same trust: keep the file pooled connections name */
    } else {
        up_ca_unref(u->ca);
        u->ca = ca;
    }
    return 0;
fail:
    up_guard_free(guard);
    up_ca_unref(ca);
    return -1;
}

struct sp_upstream *sp_upstream_new(struct event_base *base, const struct sp_upstream_opts *opts,
                                    struct sp_err *err)
{
    struct sp_upstream *u;

    if (up_global_init(err) < 0)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    u->base = base;
    link_init(&u->all);
    link_init(&u->deferred);
    u->kick = event_new(base, -1, 0, on_kick, u);
    if (!u->kick) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    if (sp_upstream_set_opts(u, opts, err) < 0)
        goto fail;
    u->pool = pool_new(u, u->max_idle_conns, err);
    if (!u->pool)
        goto fail;
    return u;
fail:
    sp_upstream_free(u);
    return NULL;
}

void sp_upstream_free(struct sp_upstream *u)
{
    if (!u)
        return;
    SP_ASSERT(u->depth == 0);
    while (u->all.next != &u->all) {
        struct sp_upstream_req *req = REQ_OF(u->all.next, all);
        if (req->state == UP_RUNNING)
            curl_multi_remove_handle(req->pool->multi, req->easy);
        req->cancelled = 1;
        req->pool = NULL; /* the pools go next, whole */
        req_free(req);
    }
    pool_free(u->pool);
    while (u->retired) {
        struct up_pool *p = u->retired;
        u->retired = p->next;
        pool_free(p);
    }
    for (size_t i = 0; i < u->nsocks; i++)
        sock_drop(u, (curl_socket_t)i);
    free(u->socks);
    if (u->kick)
        event_free(u->kick);
    up_guard_free(u->guard);
    up_ca_unref(u->ca);
    free(u);
}

void sp_upstream_opts_from_conf(struct sp_upstream_opts *o, const struct sp_conf *c)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = c->upstream_connect_timeout.i;
    o->timeout_ms = c->upstream_timeout.i;
    o->idle_timeout_ms = c->upstream_idle_timeout.i;
    o->ca_file = c->upstream_ca_file.s;
    o->allow_private = c->upstream_allow_private.i != 0;
    o->own_addrs[o->n_own_addrs++] = c->proxy_listen.s;
    o->own_addrs[o->n_own_addrs++] = c->api_listen.s;
}
