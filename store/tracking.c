/*
 * tracking.c - what keeps the resolve cache honest: a second hiredis
 * connection per store, SUBSCRIBEd to __redis__:invalidate and to a private
 * heartbeat channel; CLIENT TRACKING on REDIRECT <its id> sent on the main
 * connection each time either link comes up; the heartbeat that bounds how
 * stale a hit can be if the tracking link dies silently; and turning
 * invalidation messages into dropped entries.
 *
 * hiredis 0.14 speaks RESP2 only, where invalidations can reach a client
 * only through a redirect to a connection in Pub/Sub mode. NOLOOP is not
 * used: writes made through this store must invalidate its entries too.
 * An ACL user needs +client, +subscribe, +publish and the channels
 * __redis__:invalidate and __sp__:hb:* for the cache to turn on; without
 * them the cache stays off and every resolve goes to Redis.
 */
#include "cache.h"
#include "store_int.h"

#include <hiredis/adapters/libevent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INVALIDATE_CHANNEL "__redis__:invalidate"

static void link_connect(struct sp_cache *c);

static void arm_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}

/* Either link changed: nothing cached can be trusted any more, and CLIENT
 * TRACKING must be (re)sent for the new pair before hits resume. */
static void pair_changed(struct sp_cache *c)
{
    int was_on = sp_cache_live(c->s);

    c->pair++;
    c->on = 0;
    c->lease_until_us = 0;
    c->tracking_sent_us = INT64_MAX; /* no heartbeat counts before the next enable */
    if (c->entries)
        c->stats.flushes++;
    sp_cache_drop(c, NULL, 0);
    if (was_on && !c->s->freeing)
        sp_log(SP_LOG_INFO, NULL, "resolve cache off until invalidation works again");
}

/* ---- enabling tracking on the main link, heartbeats ---- */

static void on_enabled(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct sp_store *s = arg;
    struct sp_cache *c = s->cache;

    /* A lost link is logged by redis.c and changes the pair anyway. */
    if (err || s->freeing || !c)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        /* Stays off until a link changes (a refusal such as NOPERM would
         * only repeat). */
        sp_log(SP_LOG_WARN, NULL, "resolve cache off: CLIENT TRACKING refused: %.100s", r->str);
        return;
    }
    if (c->pair != c->enable_sent_pair || c->link != SP_CACHE_LINK_SUBSCRIBED)
        return;
    c->on = 1;
    c->last_hb_rx_us = sp_mono_us();
    sp_log(SP_LOG_INFO, NULL, "resolve cache on (invalidations via client %lld)", c->client_id);
}

static void drop_link(struct sp_cache *c, const char *why);

struct heartbeat {
    struct sp_store *s;
    uint64_t pair; /* the links it was sent for */
};

static void on_heartbeat_sent(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct heartbeat *hb = arg;
    struct sp_cache *c = err ? NULL : hb->s->cache;

    /* No subscriber: Redis no longer knows our tracking link even though
     * we have not seen it close yet. */
    if (c && !hb->s->freeing && hb->pair == c->pair && r->type == REDIS_REPLY_INTEGER &&
        r->integer == 0 && c->link == SP_CACHE_LINK_SUBSCRIBED)
        drop_link(c, "heartbeat found no subscriber");
    free(hb);
}

static void send_heartbeat(struct sp_cache *c)
{
    char now[24];
    const char *argv[3] = {"PUBLISH", c->hb_channel, now};
    size_t lens[3];
    struct sp_err err;
    struct heartbeat *hb = malloc(sizeof(*hb));

    if (!hb)
        return;
    hb->s = c->s;
    hb->pair = c->pair;
    snprintf(now, sizeof(now), "%lld", (long long)sp_mono_us());
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    if (sp_store_command(c->s, on_heartbeat_sent, hb, 3, argv, lens, &err) < 0) {
        sp_log(SP_LOG_DEBUG, NULL, "resolve cache heartbeat not sent: %s", err.msg);
        free(hb);
    }
}

static void maybe_enable(struct sp_cache *c)
{
    char id[24];
    const char *argv[5] = {"CLIENT", "TRACKING", "on", "REDIRECT", id};
    size_t lens[5];
    struct sp_err err;

    if (!c->ttl_ms || c->s->state != SP_STORE_READY || c->link != SP_CACHE_LINK_SUBSCRIBED ||
        c->enable_sent_pair == c->pair)
        return;
    snprintf(id, sizeof(id), "%lld", c->client_id);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    c->enable_sent_pair = c->pair;
    c->tracking_sent_us = sp_mono_us();
    if (sp_store_command(c->s, on_enabled, c->s, 5, argv, lens, &err) < 0) {
        sp_log(SP_LOG_WARN, NULL, "resolve cache off: %s", err.msg);
        return;
    }
    /* Right behind it on the same connection: the first lease. */
    send_heartbeat(c);
}

static void on_heartbeat_received(struct sp_cache *c, const redisReply *payload)
{
    char *end;
    long long sent;

    if (payload->type != REDIS_REPLY_STRING)
        return;
    sent = strtoll(payload->str, &end, 10);
    /* Only a heartbeat sent after tracking was asked for on this pair
     * proves that invalidations for this pair are flowing. */
    if (*end || sent < c->tracking_sent_us || sent > sp_mono_us())
        return;
    c->last_hb_rx_us = sp_mono_us();
    if (sent + SP_CACHE_LEASE_US > c->lease_until_us)
        c->lease_until_us = sent + SP_CACHE_LEASE_US;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sp_cache *c = arg;

    if (!c->ttl_ms)
        return;
    if (c->on && sp_mono_us() - c->last_hb_rx_us > SP_CACHE_HEARTBEAT_LOST_US) {
        drop_link(c, "heartbeats stopped arriving");
        return;
    }
    maybe_enable(c);
    if (c->on && c->s->state == SP_STORE_READY)
        send_heartbeat(c);
}

/* ---- invalidations ---- */

/* "sp:{ws}:..." -> ws; -1 for any other name. */
static int key_workspace(const redisReply *k, const char **ws, size_t *len)
{
    const char *close;

    if (k->type != REDIS_REPLY_STRING || k->len < 5 || memcmp(k->str, "sp:{", 4) != 0)
        return -1;
    close = memchr(k->str + 4, '}', k->len - 4);
    if (!close || close == k->str + 4)
        return -1;
    *ws = k->str + 4;
    *len = (size_t)(close - *ws);
    return 0;
}

static void on_invalidate(struct sp_cache *c, const redisReply *payload)
{
    const char *ws;
    size_t len;

    c->stats.invalidations++;
    /* A nil payload is FLUSHDB/FLUSHALL; a name outside our layout is
     * taken to concern everything. */
    if (payload->type != REDIS_REPLY_ARRAY) {
        c->stats.flushes++;
        sp_cache_drop(c, NULL, 0);
        return;
    }
    for (size_t i = 0; i < payload->elements; i++) {
        if (key_workspace(payload->element[i], &ws, &len) < 0) {
            c->stats.flushes++;
            sp_cache_drop(c, NULL, 0);
            return;
        }
        sp_cache_drop(c, ws, len);
    }
}

/* ---- the tracking link ---- */

static void link_down(struct sp_cache *c, const char *why)
{
    if (c->link == SP_CACHE_LINK_SUBSCRIBED && c->ttl_ms)
        sp_log(SP_LOG_WARN, NULL, "resolve cache: invalidation link lost: %s", why);
    c->link = SP_CACHE_LINK_DOWN;
    c->client_id = 0;
    evtimer_del(c->connect_timer);
    pair_changed(c);
    if (!c->ttl_ms || c->s->freeing)
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 50;
    if (c->backoff_ms > c->s->reconnect_max_ms)
        c->backoff_ms = c->s->reconnect_max_ms;
    arm_ms(c->reconnect_timer, c->backoff_ms);
}

/* Close the link on our initiative (any callback of it may be running). */
static void drop_link(struct sp_cache *c, const char *why)
{
    redisAsyncContext *ac = c->tac;

    if (!ac)
        return;
    c->tac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    link_down(c, why);
}

static void link_failed(struct sp_cache *c, const char *what, const redisReply *r)
{
    if (!c->warned)
        sp_log(SP_LOG_WARN, NULL, "resolve cache off: invalidation link: %s%s%.100s", what,
               r && r->type == REDIS_REPLY_ERROR ? ": " : "",
               r && r->type == REDIS_REPLY_ERROR ? r->str : "");
    c->warned = 1;
    drop_link(c, what);
}

static void on_link_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sp_cache *c = ac->data;
    redisReply *r = reply;

    if (c && c->tac == ac && (!r || r->type == REDIS_REPLY_ERROR))
        link_failed(c, "AUTH refused", r);
}

static void on_link_id(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sp_cache *c = ac->data;
    redisReply *r = reply;

    if (!c || c->tac != ac)
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        link_failed(c, "CLIENT ID refused", r);
    else
        c->client_id = r->integer;
}

static void on_link_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sp_cache *c = ac->data;
    redisReply *r = reply;
    const redisReply *kind, *chan;

    if (!c || c->tac != ac || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    kind = r->element[0];
    chan = r->element[1];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        if (--c->subs_left > 0 || !c->client_id)
            return;
        evtimer_del(c->connect_timer);
        c->link = SP_CACHE_LINK_SUBSCRIBED;
        c->backoff_ms = 0;
        c->warned = 0;
        pair_changed(c);
        maybe_enable(c);
    } else if (strcmp(kind->str, "message") == 0) {
        if (strcmp(chan->str, INVALIDATE_CHANNEL) == 0)
            on_invalidate(c, r->element[2]);
        else if (strcmp(chan->str, c->hb_channel) == 0)
            on_heartbeat_received(c, r->element[2]);
    }
}

static void on_link_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct sp_cache *c = ac->data;
    const struct sp_store_url *u;
    int rc = REDIS_OK;

    if (!c || c->tac != ac)
        return;
    u = &c->s->url;
    if (status != REDIS_OK) {
        c->tac = NULL; /* hiredis frees it after this callback */
        link_down(c, "connect failed");
        return;
    }
    /* No SELECT: invalidations name keys of every database alike. */
    if (u->pass[0] && u->user[0])
        rc = redisAsyncCommand(ac, on_link_auth, NULL, "AUTH %s %s", u->user, u->pass);
    else if (u->pass[0])
        rc = redisAsyncCommand(ac, on_link_auth, NULL, "AUTH %s", u->pass);
    if (rc == REDIS_OK)
        rc = redisAsyncCommand(ac, on_link_id, NULL, "CLIENT ID");
    c->subs_left = 2;
    if (rc == REDIS_OK)
        rc = redisAsyncCommand(ac, on_link_message, NULL, "SUBSCRIBE %s %s", INVALIDATE_CHANNEL,
                               c->hb_channel);
    if (rc != REDIS_OK)
        drop_link(c, "cannot send the handshake");
}

static void on_link_disconnect(const redisAsyncContext *ac, int status)
{
    struct sp_cache *c = ac->data;

    if (!c || c->tac != ac)
        return;
    c->tac = NULL; /* hiredis frees it after this callback */
    if (!c->warned && c->link != SP_CACHE_LINK_SUBSCRIBED && ac->errstr[0])
        sp_log(SP_LOG_WARN, NULL, "resolve cache off: invalidation link: %.100s", ac->errstr);
    if (c->link != SP_CACHE_LINK_SUBSCRIBED)
        c->warned = 1;
    link_down(c, "connection closed");
}

static void on_link_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    drop_link(arg, "connect timed out");
}

static void on_link_reconnect(evutil_socket_t fd, short what, void *arg)
{
    link_connect(arg);
}

static void link_connect(struct sp_cache *c)
{
    const struct sp_store_url *u = &c->s->url;
    redisAsyncContext *ac;

    if (c->tac || !c->ttl_ms || c->s->freeing || c->s->state == SP_STORE_CLOSED)
        return;
    c->link = SP_CACHE_LINK_CONNECTING;
    ac = u->is_unix ? redisAsyncConnectUnix(u->host) : redisAsyncConnect(u->host, u->port);
    if (!ac || ac->err || redisLibeventAttach(ac, c->s->base) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        link_down(c, "cannot connect");
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_link_connect);
    redisAsyncSetDisconnectCallback(ac, on_link_disconnect);
    c->tac = ac;
    arm_ms(c->connect_timer, c->s->connect_timeout_ms);
}

/* ---- entry points ---- */

int sp_cache_tracking_init(struct sp_cache *c, struct sp_err *err)
{
    struct event_base *base = c->s->base;
    char rnd[24];

    if (sp_random_token(rnd, sizeof(rnd), 12, err) < 0)
        return -1;
    snprintf(c->hb_channel, sizeof(c->hb_channel), "__sp__:hb:%s", rnd);
    c->connect_timer = evtimer_new(base, on_link_connect_timeout, c);
    c->reconnect_timer = evtimer_new(base, on_link_reconnect, c);
    c->hb_timer = event_new(base, -1, EV_PERSIST, on_tick, c);
    if (!c->connect_timer || !c->reconnect_timer || !c->hb_timer)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    return 0;
}

void sp_cache_tracking_apply(struct sp_cache *c)
{
    pair_changed(c);
    if (c->ttl_ms) {
        struct timeval tv = {0, SP_CACHE_HEARTBEAT_MS * 1000};
        evtimer_del(c->reconnect_timer);
        c->backoff_ms = 0;
        event_add(c->hb_timer, &tv);
        if (!c->tac)
            link_connect(c);
        else
            maybe_enable(c);
        return;
    }
    event_del(c->hb_timer);
    evtimer_del(c->reconnect_timer);
    drop_link(c, "cache turned off");
    sp_log(SP_LOG_INFO, NULL, "resolve cache off (secrets.cache_ttl is 0)");
    c->link = SP_CACHE_LINK_DOWN;
    if (c->s->state == SP_STORE_READY) {
        /* Redis need not remember what we read any more. */
        const char *argv[3] = {"CLIENT", "TRACKING", "off"};
        size_t lens[3] = {6, 8, 3};
        sp_store_fire(c->s, 3, argv, lens);
    }
}

void sp_cache_tracking_free(struct sp_cache *c)
{
    redisAsyncContext *ac = c->tac;

    if (ac) {
        c->tac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (c->connect_timer)
        event_free(c->connect_timer);
    if (c->reconnect_timer)
        event_free(c->reconnect_timer);
    if (c->hb_timer)
        event_free(c->hb_timer);
    c->connect_timer = c->reconnect_timer = c->hb_timer = NULL;
}

void sp_cache_link_ready(struct sp_store *s)
{
    if (!s->cache)
        return;
    pair_changed(s->cache);
    maybe_enable(s->cache);
}

void sp_cache_link_lost(struct sp_store *s)
{
    if (s->cache)
        pair_changed(s->cache);
}
