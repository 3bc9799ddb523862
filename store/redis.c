/*
 * redis.c - the store's connection: one async hiredis context on the
 * worker's event base, connect and command deadlines on our own timers,
 * reconnection with capped backoff, and the state callers see. While the
 * state is not READY every command fails at once with store_unavailable, so
 * the proxy fails closed instead of queueing behind a dead Redis.
 */
#include "cache.h"
#include "store_int.h"

#include <errno.h>
#include <hiredis/adapters/libevent.h>
#include <mbedtls/sha1.h>
#include <stdlib.h>
#include <string.h>

static void (*latency_hook)(int64_t us);

void sp_store_set_latency_hook(void (*fn)(int64_t us))
{
    latency_hook = fn;
}

struct sp_cmd {
    struct sp_store *s;
    int64_t sent_us;
    sp_store_reply_fn cb;
    void *arg;
    struct event *timer;
    struct sp_cmd *prev, *next;
    int done;      /* the callback has run (timeout or failure) */
    int handshake; /* part of the connection handshake, not a caller's */
};

static void start_connect(struct sp_store *s);
static void link_lost(struct sp_store *s, const char *why);

static int64_t clamp_backoff(struct sp_store *s)
{
    int64_t b = s->backoff_ms ? s->backoff_ms * 2 : 50;

    if (b > s->reconnect_max_ms)
        b = s->reconnect_max_ms;
    s->backoff_ms = b;
    return b;
}

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}

/* ---- pending commands ---- */

static void cmd_unlink(struct sp_cmd *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->s->pending == c)
        c->s->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void cmd_free(struct sp_cmd *c)
{
    if (c->timer)
        event_free(c->timer);
    free(c);
}

static void cmd_fail(struct sp_cmd *c, const char *why)
{
    struct sp_err err;

    if (c->done)
        return;
    c->done = 1;
    sp_err_set(&err, SP_E_STORE_UNAVAILABLE, "store unavailable: %s", why);
    if (c->cb)
        c->cb(NULL, &err, c->arg);
}

/* Server states in which Redis answers but cannot serve us: fail closed. */
static int unavailable_error(const redisReply *r)
{
    static const char *const prefixes[] = {"LOADING",     "BUSY",     "MASTERDOWN", "TRYAGAIN",
                                           "CLUSTERDOWN", "READONLY", "NOREPLICAS"};

    for (size_t i = 0; i < SP_ARRAY_LEN(prefixes); i++) {
        size_t n = strlen(prefixes[i]);
        if ((size_t)r->len >= n && strncmp(r->str, prefixes[i], n) == 0)
            return 1;
    }
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sp_cmd *c = privdata;
    struct sp_store *s = c->s;
    redisReply *reply = r;
    struct sp_err err;

    cmd_unlink(c);
    if (reply && latency_hook)
        latency_hook(sp_mono_us() - c->sent_us);
    if (c->done) {
        cmd_free(c);
        return;
    }
    c->done = 1;
    if (!reply) {
        sp_err_set(&err, SP_E_STORE_UNAVAILABLE, "store unavailable: connection lost");
        if (c->cb)
            c->cb(NULL, &err, c->arg);
    } else if (reply->type == REDIS_REPLY_ERROR && unavailable_error(reply)) {
        sp_err_set(&err, SP_E_STORE_UNAVAILABLE, "store unavailable: %.60s", reply->str);
        if (c->cb)
            c->cb(NULL, &err, c->arg);
        /* A replica promoted away or a long script: re-probe the link. */
        if (!s->freeing && s->ac == ac)
            link_lost(s, "server not ready");
    } else if (c->cb) {
        c->cb(reply, NULL, c->arg);
    }
    cmd_free(c);
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sp_cmd *c = arg;
    struct sp_store *s = c->s;

    /* The reply may still come; on_reply will see done and only free. */
    cmd_fail(c, "command timed out");
    /* Redis is stuck or the network is: drop the link so everything queued
     * behind this command fails now and a fresh connection is tried. */
    link_lost(s, "command timed out");
}

static int send_argv(struct sp_store *s, int handshake, sp_store_reply_fn cb, void *arg, int argc,
                     const char **argv, const size_t *argvlen, struct sp_err *err)
{
    struct sp_cmd *c = calloc(1, sizeof(*c));

    if (!c)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    c->s = s;
    c->cb = cb;
    c->arg = arg;
    c->handshake = handshake;
    c->sent_us = sp_mono_us();
    c->timer = evtimer_new(s->base, on_cmd_timeout, c);
    if (!c->timer) {
        free(c);
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    }
    if (redisAsyncCommandArgv(s->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        cmd_free(c);
        return sp_err_set(err, SP_E_STORE_UNAVAILABLE, "store unavailable: cannot send");
    }
    c->next = s->pending;
    if (s->pending)
        s->pending->prev = c;
    s->pending = c;
    arm(c->timer, s->command_timeout_ms);
    s->roundtrips++;
    return 0;
}

int sp_store_command(struct sp_store *s, sp_store_reply_fn cb, void *arg, int argc,
                     const char **argv, const size_t *argvlen, struct sp_err *err)
{
    if (s->state != SP_STORE_READY || !s->ac)
        return sp_err_set(err, SP_E_STORE_UNAVAILABLE, "store unavailable: Redis is not connected");
    return send_argv(s, 0, cb, arg, argc, argv, argvlen, err);
}

void sp_store_fire(struct sp_store *s, int argc, const char **argv, const size_t *argvlen)
{
    struct sp_err err;

    /* Best effort by design (bookkeeping such as SADD sp:workspaces): a
     * failure is logged and the caller's operation goes on. */
    if (sp_store_command(s, NULL, NULL, argc, argv, argvlen, &err) < 0)
        sp_log(SP_LOG_DEBUG, NULL, "store: %s not sent: %s", argv[0], err.msg);
}

/* ---- scripts ---- */

struct script_call {
    struct sp_store *s;
    struct sp_script *sc;
    sp_store_reply_fn cb;
    void *arg;
    int argc;
    char **argv;
    size_t *argvlen;
};

static void script_call_free(struct script_call *sc)
{
    for (int i = 0; i < sc->argc; i++)
        sp_free_wiped(sc->argv[i], sc->argvlen[i]);
    free(sc->argv);
    free(sc->argvlen);
    free(sc);
}

static void on_script_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct script_call *sc = arg;
    struct sp_err e2;

    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* The server lost its script cache (restart, failover, FLUSH):
         * send the body once with EVAL, which caches it again. */
        memcpy(sc->argv[0], "EVAL", 5);
        sc->argvlen[0] = 4;
        free(sc->argv[1]);
        sc->argv[1] = strdup(sc->sc->text);
        sc->argvlen[1] = sc->argv[1] ? strlen(sc->sc->text) : 0;
        if (sc->argv[1] && sp_store_command(sc->s, sc->cb, sc->arg, sc->argc,
                                            (const char **)sc->argv, sc->argvlen, &e2) == 0) {
            script_call_free(sc);
            return;
        }
        if (!sc->argv[1])
            sp_err_set(&e2, SP_E_INTERNAL, "out of memory");
        sc->cb(NULL, &e2, sc->arg);
        script_call_free(sc);
        return;
    }
    sc->cb(r, err, sc->arg);
    script_call_free(sc);
}

static void script_sha(struct sp_script *sc)
{
    unsigned char d[20];

    if (sc->sha[0])
        return;
    mbedtls_sha1_ret((const unsigned char *)sc->text, strlen(sc->text), d);
    sp_hex_encode(sc->sha, d, sizeof(d));
}

int sp_store_script(struct sp_store *s, struct sp_script *scr, int nkeys, int argc,
                    const char **argv, const size_t *argvlen, sp_store_reply_fn cb, void *arg,
                    struct sp_err *err)
{
    struct script_call *sc = calloc(1, sizeof(*sc));
    char nk[16];
    int total = 3 + argc;

    if (!sc)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    script_sha(scr);
    snprintf(nk, sizeof(nk), "%d", nkeys);
    sc->s = s;
    sc->sc = scr;
    sc->cb = cb;
    sc->arg = arg;
    sc->argv = calloc((size_t)total, sizeof(char *));
    sc->argvlen = calloc((size_t)total, sizeof(size_t));
    if (!sc->argv || !sc->argvlen)
        goto nomem;
    /* Arguments are copied: a retry after NOSCRIPT needs them again, and
     * they may hold ciphertext or hashes that we wipe when done. */
    sc->argc = total;
    {
        const char *head[3] = {"EVALSHA", scr->sha, nk};
        for (int i = 0; i < total; i++) {
            const char *p = i < 3 ? head[i] : argv[i - 3];
            size_t n = i < 3 ? strlen(head[i]) : argvlen[i - 3];
            sc->argv[i] = malloc(n + 1);
            if (!sc->argv[i]) {
                sc->argc = i;
                goto nomem;
            }
            memcpy(sc->argv[i], p, n);
            sc->argv[i][n] = '\0';
            sc->argvlen[i] = n;
        }
    }
    if (sp_store_command(s, on_script_reply, sc, total, (const char **)sc->argv, sc->argvlen, err) <
        0) {
        script_call_free(sc);
        return -1;
    }
    return 0;
nomem:
    script_call_free(sc);
    return sp_err_set(err, SP_E_INTERNAL, "out of memory");
}

int sp_store_script_strs(struct sp_store *s, struct sp_script *sc, int nkeys, int argc,
                         const char **argv, sp_store_reply_fn cb, void *arg, struct sp_err *err)
{
    size_t lens[32];

    if (argc > (int)SP_ARRAY_LEN(lens))
        return sp_err_set(err, SP_E_INTERNAL, "too many script arguments");
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return sp_store_script(s, sc, nkeys, argc, argv, lens, cb, arg, err);
}

/* ---- connection life cycle ---- */

static void fail_pending(struct sp_store *s, const char *why)
{
    /* The link is going: the resolve cache is off before any callback
     * can ask it for a hit. */
    sp_cache_link_lost(s);
    /* Run callbacks for everything in flight; on_reply frees them later
     * when hiredis hands back the NULL replies. */
    for (struct sp_cmd *c = s->pending; c; c = c->next)
        cmd_fail(c, why);
}

static void schedule_reconnect(struct sp_store *s)
{
    if (s->freeing || s->state == SP_STORE_CLOSED)
        return;
    s->state = SP_STORE_DOWN;
    arm(s->reconnect_timer, clamp_backoff(s));
}

/* Drop the current link (any reason) and try again after a backoff. */
static void link_lost(struct sp_store *s, const char *why)
{
    redisAsyncContext *ac = s->ac;

    if (!ac)
        return;
    evtimer_del(s->connect_timer);
    if (s->state == SP_STORE_READY)
        sp_log(SP_LOG_WARN, NULL, "redis connection lost: %s", why);
    s->ac = NULL;
    ac->data = NULL;
    fail_pending(s, why);
    /* Frees at once (or after the running hiredis callback returns); its
     * pending callbacks see done and only free their commands. */
    redisAsyncFree(ac);
    schedule_reconnect(s);
}

static void on_handshake(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct sp_store *s = arg;

    if (s->freeing || s->state != SP_STORE_CONNECTING)
        return;
    if (err || !r || r->type == REDIS_REPLY_ERROR) {
        if (r && r->type == REDIS_REPLY_ERROR)
            sp_log(SP_LOG_WARN, NULL, "redis handshake refused: %.80s", r->str);
        link_lost(s, err ? err->msg : "handshake refused");
        return;
    }
    if (--s->handshake_left > 0)
        return;
    evtimer_del(s->connect_timer);
    s->state = SP_STORE_READY;
    s->backoff_ms = 0;
    s->connects++;
    sp_log(SP_LOG_INFO, NULL, "redis connected");
    sp_cache_link_ready(s);
    if (s->on_ready)
        s->on_ready(s->on_ready_arg);
}

void sp_store_on_ready(struct sp_store *s, void (*fn)(void *arg), void *arg)
{
    s->on_ready = fn;
    s->on_ready_arg = arg;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct sp_store *s = ac->data;
    const char *argv[3];
    size_t lens[3];
    char db[16];
    struct sp_err err;
    int rc = 0;

    if (!s || s->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        s->ac = NULL;
        evtimer_del(s->connect_timer);
        fail_pending(s, "connect failed");
        schedule_reconnect(s);
        return;
    }
    /* AUTH, SELECT, PING: the PING reply also proves the server is not
     * LOADING. Commands are pipelined; the first error drops the link. */
    s->handshake_left = 1;
    if (s->url.pass[0]) {
        int n = 0;
        argv[n] = "AUTH", lens[n++] = 4;
        if (s->url.user[0])
            argv[n] = s->url.user, lens[n] = strlen(s->url.user), n++;
        argv[n] = s->url.pass, lens[n] = strlen(s->url.pass), n++;
        rc |= send_argv(s, 1, on_handshake, s, n, argv, lens, &err);
        s->handshake_left++;
    }
    if (s->url.db) {
        snprintf(db, sizeof(db), "%d", s->url.db);
        argv[0] = "SELECT", lens[0] = 6;
        argv[1] = db, lens[1] = strlen(db);
        rc |= send_argv(s, 1, on_handshake, s, 2, argv, lens, &err);
        s->handshake_left++;
    }
    argv[0] = "PING", lens[0] = 4;
    rc |= send_argv(s, 1, on_handshake, s, 1, argv, lens, &err);
    if (rc)
        link_lost(s, "cannot send handshake");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sp_store *s = ac->data;

    if (!s || s->ac != ac)
        return;
    /* hiredis frees the context after this callback. */
    s->ac = NULL;
    evtimer_del(s->connect_timer);
    if (s->state == SP_STORE_READY)
        sp_log(SP_LOG_WARN, NULL, "redis connection lost");
    fail_pending(s, "connection lost");
    schedule_reconnect(s);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    link_lost(arg, "connect timed out");
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    start_connect(arg);
}

static void start_connect(struct sp_store *s)
{
    redisAsyncContext *ac;

    if (s->freeing || s->state == SP_STORE_CLOSED)
        return;
    s->state = SP_STORE_CONNECTING;
    if (s->url.is_unix)
        ac = redisAsyncConnectUnix(s->url.host);
    else
        ac = redisAsyncConnect(s->url.host, s->url.port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    arm(s->connect_timer, s->connect_timeout_ms);
}

void sp_store_reconfigure(struct sp_store *s, const struct sp_conf *conf)
{
    s->connect_timeout_ms = conf->redis_connect_timeout.i;
    s->command_timeout_ms = conf->redis_command_timeout.i;
    s->reconnect_max_ms = conf->redis_reconnect_max.i;
    s->retire_grace_ms = conf->keyring_retire_grace.i;
}

struct sp_store *sp_store_new(struct event_base *base, const struct sp_conf *conf,
                              struct sp_keyring *kr, struct sp_err *err)
{
    struct sp_store *s = calloc(1, sizeof(*s));

    if (!s) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    s->base = base;
    s->kr = kr;
    sp_store_reconfigure(s, conf);
    if (sp_store_url_parse(conf->redis_url.s, &s->url, err) < 0)
        goto fail;
    s->connect_timer = evtimer_new(base, on_connect_timeout, s);
    s->reconnect_timer = evtimer_new(base, on_reconnect, s);
    if (!s->connect_timer || !s->reconnect_timer) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    start_connect(s);
    return s;
fail:
    sp_store_free(s);
    return NULL;
}

void sp_store_free(struct sp_store *s)
{
    if (!s)
        return;
    s->freeing = 1;
    sp_store_rotation_abort(s);
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        ac->data = NULL;
        fail_pending(s, "shutting down");
        redisAsyncFree(ac);
    }
    /* Commands whose replies never came back (hiredis already freed). */
    while (s->pending) {
        struct sp_cmd *c = s->pending;
        cmd_unlink(c);
        cmd_fail(c, "shutting down");
        cmd_free(c);
    }
    sp_cache_free(s);
    if (s->connect_timer)
        event_free(s->connect_timer);
    if (s->reconnect_timer)
        event_free(s->reconnect_timer);
    sp_wipe(&s->url, sizeof(s->url));
    free(s);
}

enum sp_store_state sp_store_state(const struct sp_store *s)
{
    return s->state;
}

uint64_t sp_store_connects(const struct sp_store *s)
{
    return s->connects;
}

uint64_t sp_store_roundtrips(const struct sp_store *s)
{
    return s->roundtrips;
}

struct sp_keyring *sp_store_keyring(const struct sp_store *s)
{
    return s->kr;
}

/* ---- URL ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int pct_decode(char *out, size_t outsz, const char *in, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0)
                return -1;
            c = (char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
            i += 2;
        }
        if (o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_db(const char *p, int *db)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(p, &end, 10);
    if (errno || end == p || *end || v < 0 || v > 100000)
        return -1;
    *db = (int)v;
    return 0;
}

int sp_store_url_parse(const char *url, struct sp_store_url *out, struct sp_err *err)
{
    const char *p, *at, *slash, *hostend;
    char hostport[300];
    size_t n;

    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        n = q ? (size_t)(q - url - 7) : strlen(url + 7);
        if (n == 0 || url[7] != '/' || n >= sizeof(out->host) || n > 107)
            return sp_err_set(err, SP_E_CONFIG, "redis.url: a unix URL needs an absolute path");
        memcpy(out->host, url + 7, n);
        out->is_unix = 1;
        if (q && (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &out->db) < 0))
            return sp_err_set(err, SP_E_CONFIG, "redis.url: bad ?db= in unix URL");
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return sp_err_set(err, SP_E_CONFIG,
                          "redis.url: must start with redis:// or unix:// (TLS is not supported)");
    p = url + 8;
    slash = strchr(p, '/');
    at = memrchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_decode(out->user, sizeof(out->user), p, (size_t)(colon - p)) < 0 ||
                pct_decode(out->pass, sizeof(out->pass), colon + 1, (size_t)(at - colon - 1)) < 0)
                return sp_err_set(err, SP_E_CONFIG, "redis.url: bad user or password");
        } else if (pct_decode(out->pass, sizeof(out->pass), p, (size_t)(at - p)) < 0) {
            return sp_err_set(err, SP_E_CONFIG, "redis.url: bad password");
        }
        p = at + 1;
    }
    hostend = slash ? slash : p + strlen(p);
    n = (size_t)(hostend - p);
    if (n == 0 || n >= sizeof(hostport))
        return sp_err_set(err, SP_E_CONFIG, "redis.url: missing host");
    memcpy(hostport, p, n);
    hostport[n] = '\0';
    {
        char *colon = hostport[0] == '[' ? strstr(hostport, "]:") : strrchr(hostport, ':');
        char *end;
        long port = 6379;
        if (colon) {
            char *num = hostport[0] == '[' ? colon + 2 : colon + 1;
            errno = 0;
            port = strtol(num, &end, 10);
            if (errno || end == num || *end || port < 1 || port > 65535)
                return sp_err_set(err, SP_E_CONFIG, "redis.url: bad port");
            *(hostport[0] == '[' ? colon + 1 : colon) = '\0';
        }
        if (hostport[0] == '[') {
            size_t hl = strlen(hostport);
            if (hl < 3 || hostport[hl - 1] != ']')
                return sp_err_set(err, SP_E_CONFIG, "redis.url: bad IPv6 host");
            hostport[hl - 1] = '\0';
            memmove(hostport, hostport + 1, hl - 1);
        }
        if (!hostport[0] || strlen(hostport) >= sizeof(out->host))
            return sp_err_set(err, SP_E_CONFIG, "redis.url: missing or overlong host");
        memcpy(out->host, hostport, strlen(hostport) + 1);
        out->port = (int)port;
    }
    if (slash && slash[1] && parse_db(slash + 1, &out->db) < 0)
        return sp_err_set(err, SP_E_CONFIG, "redis.url: bad database number");
    return 0;
}
