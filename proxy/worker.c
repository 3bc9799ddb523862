/*
 * worker.c - proxy workers: one thread and one event base each, with its own
 * SO_REUSEPORT listener on proxy.listen, Redis connection and upstream
 * client, so nothing is shared on the request path. Draining on SIGTERM:
 * stop accepting, let requests in flight finish (up to upstream.timeout),
 * then end the loop.
 */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A refusal of the listener's own (h1's, or the worker's below): counted
 * like every other refusal and logged without bytes of the request. */
static void count_refusal(struct sp_worker *w, int status, const struct sp_err *err,
                          const char *rid, const char *what)
{
    struct sp_log_ctx ctx = {rid, NULL, NULL};

    sp_metrics_request(w->metric_route, status, 0);
    sp_metrics_denial(err->code);
    if (w->conf->log_access.i)
        sp_log(SP_LOG_INFO, &ctx, "proxy listener refused %s: %d %s: %s", what, status,
               sp_err_wire(err->code), err->msg);
}

/* A request the worker answers itself (CONNECT, an origin-form path,
 * draining). */
static void refuse(struct sp_worker *w, struct sp_h1_req *req, enum sp_err_code code,
                   const char *msg)
{
    char rid[SP_REQUEST_ID_LEN + 1];
    struct sp_err e;

    sp_http_request_id(rid);
    sp_err_set(&e, code, "%s", msg);
    count_refusal(w, sp_err_http_status(code), &e, rid,
                  sp_h1_req_method_is(req, "CONNECT") ? "CONNECT" : "a request");
    sp_h1_reply_error(req, rid, &e, NULL, 0);
}

static void on_request(struct sp_h1_req *req, void *arg)
{
    struct sp_worker *w = arg;
    const char *uri = sp_h1_req_target(req, NULL);

    if (w->draining) {
        sp_h1_req_close_after(req);
        refuse(w, req, SP_E_STORE_UNAVAILABLE, "The proxy is shutting down");
        return;
    }
    if (uri[0] == '/') {
        if (strncmp(uri, "/v1/fetch", 9) == 0 && (uri[9] == '\0' || uri[9] == '?'))
            sp_fetch_request(w, req);
        else
            refuse(w, req, SP_E_NOT_FOUND,
                   "This is a forward proxy: send absolute-form requests (HTTP_PROXY), or "
                   "POST /v1/fetch");
        return;
    }
    if (sp_h1_req_method_is(req, "CONNECT")) {
        refuse(w, req, SP_E_METHOD_NOT_ALLOWED,
               "CONNECT is not supported yet: send http:// URLs (upstream.upgrade_hosts "
               "turns them into https upstream)");
        return;
    }
    sp_forward_request(w, req);
}

/* What h1 refused on its own (malformed, too large, too slow, too many
 * connections): counted like every other refusal, logged without bytes of
 * the request. */
static void on_reject(void *arg, const struct sp_h1_rejection *r)
{
    count_refusal(arg, r->status, r->err, r->request_id, "a request");
}

/* What the proxy listener accepts, from the configuration. */
static void limits_from_conf(struct sp_h1_limits *lim, const struct sp_conf *c)
{
    sp_h1_limits_default(lim);
    lim->max_head_bytes = (size_t)c->proxy_max_header_size.i;
    lim->max_body = (size_t)c->proxy_max_body_size.i;
    lim->idle_timeout_ms = c->proxy_client_timeout.i;
    lim->read_timeout_ms = c->proxy_client_timeout.i;
    lim->write_timeout_ms = c->proxy_client_timeout.i;
    lim->max_connections = (unsigned)c->proxy_max_connections.i;
}

/* A listening socket of our own: SO_REUSEPORT so every worker accepts on
 * the same address, TCP_NODELAY inherited by accepted sockets. */
static int listen_socket(const char *host, int port, struct sp_err *err)
{
    struct addrinfo hints, *ai = NULL;
    char ports[16];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ports, sizeof(ports), "%d", port);
    rc = getaddrinfo(host, ports, &hints, &ai);
    if (rc != 0 || !ai)
        return sp_err_set(err, SP_E_CONFIG, "proxy.listen: cannot resolve %s: %s", host,
                          gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        sp_err_set(err, SP_E_CONFIG, "proxy.listen: cannot listen on %s:%d: %s", host, port,
                   strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void set_own_listeners(struct sp_worker *w, const struct sp_conf *c)
{
    const char *addrs[2] = {c->proxy_listen.s, c->api_listen.s};
    int is_unix;

    for (int i = 0; i < 2; i++)
        if (sp_conf_parse_addr(addrs[i], w->own_host[i], sizeof(w->own_host[i]), &w->own_port[i],
                               &is_unix) < 0)
            w->own_port[i] = -1;
}

static int loopback_or_any(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
           strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcasecmp(h, "localhost.") == 0;
}

int sp_worker_is_own_listener(const struct sp_worker *w, const char *host, int port)
{
    for (int i = 0; i < 2; i++) {
        if (w->own_port[i] != port)
            continue;
        if (strcasecmp(host, w->own_host[i]) == 0 ||
            (loopback_or_any(host) && (loopback_or_any(w->own_host[i]))))
            return 1;
    }
    return 0;
}

int sp_upstream_body_framed(const char *method, size_t body_len)
{
    return body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

void sp_fill_upstream_request(struct sp_upstream_request *r, const char *method,
                              const struct sp_buf *url, const struct sp_upstream_header *h,
                              size_t n, const void *body, size_t body_len)
{
    int has_body = sp_upstream_body_framed(method, body_len);

    memset(r, 0, sizeof(*r));
    r->method = method;
    r->method_len = strlen(method);
    r->url = url->data;
    r->url_len = url->len;
    r->headers = h;
    r->n_headers = n;
    r->body_kind = has_body ? SP_UPSTREAM_BODY_BUFFER : SP_UPSTREAM_BODY_NONE;
    r->body = body;
    r->body_len = body_len;
    r->flags = strcmp(method, "HEAD") == 0 ? SP_UPSTREAM_F_HEAD : 0;
}

int sp_worker_check_target(const struct sp_worker *w, struct sp_target *t, struct sp_err *err)
{
    if (sp_worker_is_own_listener(w, t->host, t->port))
        return sp_err_set(err, SP_E_DESTINATION_DENIED,
                          "The target is one of this proxy's own listeners");
    sp_target_upgrade(w->conf, t);
    return 0;
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct sp_worker *w = arg;

    /* Two quiet ticks in a row: the last answers have left the output
     * buffers before the loop (and the connections) end. */
    if (w->inflight <= 0)
        w->drain_quiet++;
    else
        w->drain_quiet = 0;
    if (w->drain_quiet >= 2 || sp_mono_us() > w->drain_deadline_us)
        event_base_loopbreak(w->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct sp_worker *w = arg;
    struct timeval tick = {0, 50000};

    w->draining = 1;
    /* Stop accepting and close idle keep-alive connections; requests in
     * flight get their answer with Connection: close. */
    sp_h1_server_stop_accepting(w->h1);
    w->drain_deadline_us = sp_mono_us() + w->conf->upstream_timeout.i * 1000;
    w->drain_timer = event_new(w->base, -1, EV_PERSIST, on_drain_check, w);
    if (!w->drain_timer || event_add(w->drain_timer, &tick) < 0)
        event_base_loopbreak(w->base);
}

/* Once a second: this worker's open client connections and resolve-cache
 * counters into the process's metrics (read on the worker's own thread). */
static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    struct sp_worker *w = arg;
    struct sp_store_cache_stats now, *was = &w->cache_seen;
    int64_t conns;

    if (!w->store)
        return;
    conns = (int64_t)sp_h1_server_connections(w->h1);
    sp_metrics_add("client_connections", 0, conns - w->conns_seen);
    w->conns_seen = conns;
    sp_store_cache_stats(w->store, &now);
    sp_metrics_add("resolve_cache_hits_total", 1, (int64_t)(now.hits - was->hits));
    sp_metrics_add("resolve_cache_misses_total", 1, (int64_t)(now.misses - was->misses));
    sp_metrics_add("resolve_cache_bypassed_total", 1, (int64_t)(now.bypassed - was->bypassed));
    sp_metrics_add("resolve_cache_invalidations_total", 1,
                   (int64_t)(now.invalidations - was->invalidations));
    sp_metrics_add("resolve_cache_flushes_total", 1, (int64_t)(now.flushes - was->flushes));
    sp_metrics_add("resolve_cache_evictions_total", 1, (int64_t)(now.evictions - was->evictions));
    sp_metrics_add("resolve_cache_entries", 0, (int64_t)now.entries - (int64_t)was->entries);
    sp_metrics_add("resolve_cache_bytes", 0, (int64_t)now.bytes - (int64_t)was->bytes);
    sp_metrics_add("resolve_cache_workers_on", 0, (int64_t)now.on - (int64_t)was->on);
    *was = now;
}

static void *worker_main(void *arg)
{
    struct sp_worker *w = arg;

    event_base_dispatch(w->base);
    /* The store first: its pending callbacks answer requests while the
     * listener still owns their connections. */
    sp_store_free(w->store);
    w->store = NULL;
    sp_upstream_free(w->upstream);
    w->upstream = NULL;
    sp_resolver_thread_cleanup();
    atomic_store(&w->finished, 1);
    return NULL;
}

static int worker_init(struct sp_worker *w, const struct sp_conf *c, struct sp_keyring *kr,
                       struct sp_err *err)
{
    struct sp_upstream_opts uo;
    struct sp_h1_limits lim;
    struct event_config *cfg;
    char host[256];
    int port, is_unix;

    w->conf = c;
    w->kr = kr;
    w->listen_fd = -1;
    set_own_listeners(w, c);
    w->metric_route = sp_metrics_route("proxy");
    w->metric_fetch = sp_metrics_route("/v1/fetch");
    /* Fewer epoll_ctl calls per request (PERF-NOTES 5). */
    cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    if (!w->base)
        return sp_err_set(err, SP_E_INTERNAL, "cannot create an event base");
    w->store = sp_store_new(w->base, c, kr, err);
    if (!w->store)
        return -1;
    sp_store_cache_configure(w->store, c->secrets_cache_ttl.i, 0, 0);
    memset(&uo, 0, sizeof(uo));
    sp_upstream_opts_from_conf(&uo, c);
    w->upstream = sp_upstream_new(w->base, &uo, err);
    if (!w->upstream)
        return -1;
    w->sigv4_cache = sp_sigv4_key_cache_new(256, err);
    if (!w->sigv4_cache)
        return -1;
    w->stats_timer = event_new(w->base, -1, EV_PERSIST, on_stats, w);
    if (!w->stats_timer || event_add(w->stats_timer, &(struct timeval){1, 0}) < 0)
        return sp_err_set(err, SP_E_INTERNAL, "cannot start the stats timer");
    if (sp_conf_parse_addr(c->proxy_listen.s, host, sizeof(host), &port, &is_unix) < 0 || is_unix)
        return sp_err_set(err, SP_E_CONFIG, "proxy.listen: need host:port");
    w->listen_fd = listen_socket(host, port, err);
    if (w->listen_fd < 0)
        return -1;
    limits_from_conf(&lim, c);
    w->h1 = sp_h1_server_new(w->base, w->listen_fd, &lim, on_request, w, err);
    if (!w->h1)
        return -1;
    w->listen_fd = -1; /* the server owns it now */
    sp_h1_server_on_reject(w->h1, on_reject, w);
    sp_h1_server_on_stream(w->h1, sp_forward_wants_stream, w);
    return 0;
}

struct sp_worker *sp_workers_start(int n, const struct sp_conf *conf, struct sp_keyring *kr,
                                   struct sp_err *err)
{
    struct sp_worker *w = calloc((size_t)n, sizeof(*w));

    if (!w) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        if (worker_init(&w[i], conf, kr, err) < 0)
            goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            sp_err_set(err, SP_E_INTERNAL, "cannot start worker threads");
            /* Threads already running are stopped by the caller's free. */
            for (int j = i; j < n; j++)
                atomic_store(&w[j].finished, 1);
            sp_workers_stop(w, i);
            sp_workers_free(w, n);
            return NULL;
        }
    }
    return w;
fail:
    for (int i = 0; i < n; i++)
        atomic_store(&w[i].finished, 1);
    sp_workers_free(w, n);
    return NULL;
}

static void on_reconfigure(evutil_socket_t fd, short what, void *arg)
{
    struct sp_worker *w = arg;
    const struct sp_conf *c = atomic_load(&w->next_conf);
    struct sp_upstream_opts uo;
    struct sp_err err;

    if (!c || c == w->conf)
        return;
    w->conf = c;
    sp_store_reconfigure(w->store, c);
    sp_store_cache_configure(w->store, c->secrets_cache_ttl.i, 0, 0);
    memset(&uo, 0, sizeof(uo));
    sp_upstream_opts_from_conf(&uo, c);
    if (sp_upstream_set_opts(w->upstream, &uo, &err) < 0)
        sp_log(SP_LOG_ERROR, NULL, "worker %d: upstream settings kept: %s", w->id, err.msg);
    {
        struct sp_h1_limits lim;
        limits_from_conf(&lim, c);
        sp_h1_server_set_limits(w->h1, &lim);
    }
}

void sp_workers_reconfigure(struct sp_worker *w, int n, const struct sp_conf *conf)
{
    for (int i = 0; w && i < n; i++) {
        atomic_store(&w[i].next_conf, conf);
        if (w[i].base && w[i].thread)
            event_base_once(w[i].base, -1, EV_TIMEOUT, on_reconfigure, &w[i], NULL);
    }
}

void sp_workers_stop(struct sp_worker *w, int n)
{
    for (int i = 0; w && i < n; i++)
        if (w[i].base && w[i].thread)
            event_base_once(w[i].base, -1, EV_TIMEOUT, on_stop, &w[i], NULL);
}

int sp_workers_done(struct sp_worker *w, int n)
{
    for (int i = 0; w && i < n; i++)
        if (!atomic_load(&w[i].finished))
            return 0;
    return 1;
}

void sp_workers_free(struct sp_worker *w, int n)
{
    if (!w)
        return;
    for (int i = 0; i < n; i++) {
        if (w[i].thread)
            pthread_join(w[i].thread, NULL);
        sp_store_free(w[i].store);
        sp_upstream_free(w[i].upstream);
        sp_sigv4_key_cache_free(w[i].sigv4_cache);
        if (w[i].drain_timer)
            event_free(w[i].drain_timer);
        if (w[i].stats_timer)
            event_free(w[i].stats_timer);
        sp_h1_server_free(w[i].h1); /* closes the listening socket it owns */
        if (w[i].listen_fd >= 0)
            close(w[i].listen_fd);
        if (w[i].base)
            event_base_free(w[i].base);
    }
    free(w);
}
