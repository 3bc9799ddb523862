/*
 * test_cache.c - the resolve cache against a real redis-server: a hit skips
 * Redis and equals the miss; every kind of change (key revoked, secret
 * overwritten, revoked or deleted, token deleted, group membership changed,
 * FLUSHALL) is seen well under a second later; token TTLs and expires_at
 * end entries without waiting for Redis; a killed tracking or main
 * connection, or a frozen Redis, turns the cache off until it can be
 * trusted again; bounds; and freeing the store with hits still queued.
 *
 * Runs when SP_TEST_REDIS_URL is set (like the other store tests), but on a
 * private redis-server of its own: it flushes, kills clients, freezes the
 * server and reads INFO commandstats, none of which may disturb or be
 * disturbed by other tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "keyring.h"
#include "store.h"
#include "store_int.h"
#include "testutil.h"

#define CANARY "CANARY-cache-51d2e8"

static int redis_port;
static pid_t redis_pid;

struct fx {
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_conf *conf;
    struct sp_store *s; /* the store under test: a proxy worker's */
    struct sp_store *w; /* writes go through another, like the API's */
    char *dir;
    char ws[64];
    redisContext *sync;
    char token[200]; /* an API key of ws, with group g1 */
    char key_id[40];
};

static struct sp_conf *conf_for(int port, const char *user_pass)
{
    char e1[300], e2[64], e3[64];
    char *env[] = {e1, e2, e3, NULL};

    snprintf(e1, sizeof(e1), "SECRETPROXY_REDIS_URL=redis://%s127.0.0.1:%d/0",
             user_pass ? user_pass : "", port);
    snprintf(e2, sizeof(e2), "SECRETPROXY_REDIS_COMMAND_TIMEOUT=3s");
    snprintf(e3, sizeof(e3), "SECRETPROXY_REDIS_RECONNECT_MAX=100ms");
    return tu_conf(env);
}

static struct sp_store_cache_stats stats(struct fx *f)
{
    struct sp_store_cache_stats st;

    sp_store_cache_stats(f->s, &st);
    return st;
}

/* Run the loop until the cache serves hits (or ms pass). */
static int wait_on(struct fx *f, int ms)
{
    int64_t end = tu_now_ms() + ms;

    while (!stats(f).on && tu_now_ms() < end)
        tu_run_for(f->base, 5);
    return stats(f).on;
}

static int wait_off(struct fx *f, int ms)
{
    int64_t end = tu_now_ms() + ms;

    while (stats(f).on && tu_now_ms() < end)
        tu_run_for(f->base, 1);
    return !stats(f).on;
}

static redisReply *cmd(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->sync, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void cmd_ok(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->sync, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

/* EVAL and EVALSHA calls Redis has run to the end (a NOSCRIPT is followed
 * by an EVAL): how many resolves reached it. */
static long scripts_run(struct fx *f)
{
    redisReply *r = cmd(f, "INFO commandstats");
    long n = 0;
    const char *names[] = {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="};

    for (int i = 0; i < 2; i++) {
        const char *p = strstr(r->str, names[i]), *fl;
        if (!p)
            continue;
        n += strtol(p + strlen(names[i]), NULL, 10);
        fl = strstr(p, "failed_calls=");
        if (fl)
            n -= strtol(fl + 13, NULL, 10);
    }
    freeReplyObject(r);
    return n;
}

/* ---- synchronous wrappers ---- */

struct res {
    int done, calls;
    struct sp_err err;
    char key_id[40];
    size_t count;
    char codes[8][40];
    char values[8][100];
    int revoked[8];
    int64_t expires_at[8];
    struct fx *free_store; /* free this fixture's store from the callback */
    struct fx *drop_cache; /* act as an invalidation from the callback */
};

static void on_resolved(const struct sp_key *key, struct sp_ref_result *results, size_t count,
                        const struct sp_err *err, void *arg)
{
    struct res *r = arg;

    r->done = 1;
    r->calls++;
    r->err.code = err ? err->code : SP_E_OK;
    if (key)
        snprintf(r->key_id, sizeof(r->key_id), "%s", key->id);
    r->count = count;
    for (size_t i = 0; i < count && i < 8; i++) {
        snprintf(r->codes[i], sizeof(r->codes[i]), "%s", sp_err_wire(results[i].err.code));
        if (results[i].secret) {
            snprintf(r->values[i], sizeof(r->values[i]), "%.*s", (int)results[i].secret->value_len,
                     results[i].secret->value);
            r->revoked[i] = results[i].secret->meta.revoked;
            r->expires_at[i] = results[i].secret->meta.expires_at;
        }
    }
    if (r->drop_cache)
        sp_cache_drop(r->drop_cache->s->cache, NULL, 0);
    if (r->free_store) {
        sp_store_free(r->free_store->s);
        r->free_store->s = NULL;
    }
}

static struct sp_ref named(const char *name)
{
    struct sp_ref r = {SP_REF_NAMED, name, strlen(name)};
    return r;
}

static struct sp_ref token_ref(const char *tok)
{
    struct sp_ref r = {SP_REF_TOKEN, tok, strlen(tok)};
    return r;
}

/* Run the loop until the store waits for no reply (a miss's fill is back). */
static void settle(struct fx *f)
{
    int64_t end = tu_now_ms() + 2000;

    do
        tu_run_for(f->base, 1);
    while (f->s && f->s->pending && tu_now_ms() < end);
}

/* Resolve with the fixture's API key; the callback must not run inside. */
static struct res resolve(struct fx *f, const struct sp_ref *refs, size_t n)
{
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    if (sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, refs, n, on_resolved, &r, &err) <
        0) {
        r.err = err;
        r.done = 1;
        return r;
    }
    assert_int_equal(r.calls, 0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    settle(f);
    assert_int_equal(r.calls, 1);
    return r;
}

struct wres {
    int done;
    struct sp_err err;
    char token[128];
    char key_id[40];
};

static void on_meta(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct wres *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
}

static void on_done(const struct sp_err *err, void *arg)
{
    struct wres *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
}

static void on_token(const char *token, const struct sp_secret_meta *m, const struct sp_err *err,
                     void *arg)
{
    struct wres *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (token)
        snprintf(r->token, sizeof(r->token), "%s", token);
}

static void on_key(const struct sp_key *key, const char *token, const struct sp_err *err, void *arg)
{
    struct wres *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (token)
        snprintf(r->token, sizeof(r->token), "%s", token);
    if (key)
        snprintf(r->key_id, sizeof(r->key_id), "%s", key->id);
}

static void write_secret_via(struct fx *f, struct sp_store *via, const char *scope,
                             const char *name, const struct sp_secret_write *w)
{
    struct wres r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_secret_write(via, f->ws, scope, name,
                                           w->has_value ? SP_WRITE_UPSERT : SP_WRITE_UPDATE, w,
                                           on_meta, &r, &err),
                     0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    assert_int_equal(r.err.code, SP_E_OK);
}

static void write_secret(struct fx *f, const char *scope, const char *name,
                         const struct sp_secret_write *w)
{
    write_secret_via(f, f->w, scope, name, w);
}

static void put_value_via(struct fx *f, struct sp_store *via, const char *scope, const char *name,
                          const char *value)
{
    struct sp_secret_write w;

    memset(&w, 0, sizeof(w));
    w.value = (const unsigned char *)value;
    w.value_len = strlen(value);
    w.has_value = 1;
    write_secret_via(f, via, scope, name, &w);
}

static void put_value(struct fx *f, const char *scope, const char *name, const char *value)
{
    put_value_via(f, f->w, scope, name, value);
}

static void mint(struct fx *f, const char *name, int64_t ttl, char *out, size_t outsz)
{
    struct wres r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    assert_int_equal(
        sp_store_token_mint(f->w, f->ws, "workspace", name, NULL, ttl, on_token, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    assert_int_equal(r.err.code, SP_E_OK);
    snprintf(out, outsz, "%s", r.token);
}

/* ---- fixture ---- */

static struct fx *fx_new(int port, const char *user_pass, int64_t ttl_ms)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sp_err err;
    char path[512];
    static int seq;

    f->dir = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
    assert_int_equal(sp_keyring_open(path, NULL, 1, &f->kr, &err), 0);
    f->base = event_base_new();
    f->conf = conf_for(port, user_pass);
    assert_non_null(f->conf);
    f->s = sp_store_new(f->base, f->conf, f->kr, &err);
    assert_non_null(f->s);
    sp_store_cache_configure(f->s, ttl_ms, 0, 0);
    f->w = sp_store_new(f->base, f->conf, f->kr, &err);
    assert_non_null(f->w);
    for (int i = 0; i < 300 && (sp_store_state(f->s) != SP_STORE_READY ||
                                sp_store_state(f->w) != SP_STORE_READY);
         i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(f->s), SP_STORE_READY);
    assert_int_equal(sp_store_state(f->w), SP_STORE_READY);
    snprintf(f->ws, sizeof(f->ws), "cws-%d-%d", (int)getpid(), seq++);
    f->sync = redisConnect("127.0.0.1", port);
    assert_non_null(f->sync);
    assert_int_equal(f->sync->err, 0);
    return f;
}

/* An API key bound to group g1, and the secrets most tests use. */
static void fx_key(struct fx *f)
{
    struct sp_key k;
    struct sp_group g;
    struct wres r;
    struct sp_err err;

    memset(&g, 0, sizeof(g));
    snprintf(g.id, sizeof(g.id), "g1");
    snprintf(g.name, sizeof(g.name), "g1");
    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_group_create(f->w, f->ws, &g, on_done, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    memset(&k, 0, sizeof(k));
    snprintf(k.workspace, sizeof(k.workspace), "%s", f->ws);
    snprintf(k.name, sizeof(k.name), "proxy");
    snprintf(k.group, sizeof(k.group), "g1");
    k.perms = SP_PERM_PROXY;
    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_key_create(f->w, &k, NULL, on_key, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    assert_int_equal(r.err.code, SP_E_OK);
    snprintf(f->token, sizeof(f->token), "%s", r.token);
    snprintf(f->key_id, sizeof(f->key_id), "%s", r.key_id);
}

static void fx_free(struct fx *f)
{
    sp_store_free(f->s);
    sp_store_free(f->w);
    event_base_free(f->base);
    sp_keyring_free(f->kr);
    sp_conf_free(f->conf);
    redisFree(f->sync);
    tu_rmrf(f->dir);
    free(f);
}

static int setup(void **state)
{
    struct fx *f = fx_new(redis_port, NULL, 30000);

    fx_key(f);
    assert_true(wait_on(f, 3000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* Run the loop until an invalidation arrives; its delay in ms, or -1. */
static int64_t wait_invalidation(struct fx *f, uint64_t before, int64_t t0)
{
    while (stats(f).invalidations == before && tu_now_ms() - t0 < 2000)
        tu_run_for(f->base, 1);
    return stats(f).invalidations == before ? -1 : tu_now_ms() - t0;
}

/* ---- tests ---- */

static void hit_after_miss_is_identical_and_skips_redis(void **state)
{
    struct fx *f = *state;
    char tok[128];
    struct sp_ref refs[3];
    struct res a, b;
    long before;

    put_value(f, "workspace", "A", CANARY "-a");
    put_value(f, "workspace", "T", CANARY "-t");
    mint(f, "T", 60000, tok, sizeof(tok));
    refs[0] = named("A");
    refs[1] = token_ref(tok);
    refs[2] = named("MISSING");

    /* A miss, then its fill (the same script with its reads declared). */
    before = scripts_run(f);
    a = resolve(f, refs, 3);
    assert_int_equal(a.err.code, SP_E_OK);
    assert_int_equal(scripts_run(f) - before, 2);
    assert_int_equal(stats(f).entries, 1);

    before = scripts_run(f);
    b = resolve(f, refs, 3);
    assert_int_equal(scripts_run(f) - before, 0); /* Redis never saw it */
    assert_int_equal(stats(f).hits, 1);
    assert_int_equal(b.err.code, SP_E_OK);
    assert_string_equal(b.key_id, f->key_id);
    assert_string_equal(a.key_id, b.key_id);
    assert_int_equal(b.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(a.codes[i], b.codes[i]);
        assert_string_equal(a.values[i], b.values[i]);
    }
    assert_string_equal(b.values[0], CANARY "-a");
    assert_string_equal(b.values[1], CANARY "-t");
    assert_string_equal(b.codes[2], "secret_not_found");

    /* Another reference list is another entry. */
    before = scripts_run(f);
    b = resolve(f, refs, 2);
    assert_int_equal(scripts_run(f) - before, 2);
    assert_int_equal(stats(f).entries, 2);
}

/* The cache holds what Redis sent: no plaintext anywhere in it. */
static void cache_never_holds_plaintext(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("P");
    struct sp_cache *c = f->s->cache;

    put_value(f, "workspace", "P", CANARY "-plain");
    assert_string_equal(resolve(f, &ref, 1).values[0], CANARY "-plain");
    assert_string_equal(resolve(f, &ref, 1).values[0], CANARY "-plain");
    assert_int_equal(stats(f).hits, 1);
    assert_non_null(c->lru_head);
    assert_null(memmem(c->lru_head, stats(f).bytes, CANARY, strlen(CANARY)));
    assert_null(memmem(c->lru_head, stats(f).bytes, f->token, strlen(f->token)));
}

/* Every key the resolve script reads is tracked (thanks to the fill), even
 * one written by a client that never declared it: a write to it reaches the
 * tracking link at once. */
static void every_key_the_script_reads_is_tracked(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("L");
    uint64_t inv;
    int64_t t0, ms;

    put_value(f, "workspace", "L", "one");
    assert_string_equal(resolve(f, &ref, 1).values[0], "one");
    inv = stats(f).invalidations;
    t0 = tu_now_ms();
    cmd_ok(f, "HSET sp:{%s}:s:workspace:L description changed", f->ws);
    ms = wait_invalidation(f, inv, t0);
    printf("invalidation after an HSET by another client: %lld ms\n", (long long)ms);
    assert_true(ms >= 0 && ms < 200);
    assert_int_equal(stats(f).entries, 0);
    /* A key the script looked for and did not find is tracked as well. */
    {
        struct sp_ref kref = named("LATER");
        assert_string_equal(resolve(f, &kref, 1).codes[0], "secret_not_found");
        assert_int_equal(stats(f).entries, 1);
        inv = stats(f).invalidations;
        t0 = tu_now_ms();
        put_value(f, "workspace", "LATER", "now");
        assert_true(wait_invalidation(f, inv, t0) >= 0);
        assert_string_equal(resolve(f, &kref, 1).values[0], "now");
    }
}

/* Poll: resolve until pred holds; the time it took, or -1 after 1.5 s. */
typedef int (*pred_fn)(const struct res *r, const void *arg);

static int64_t until_seen(struct fx *f, const struct sp_ref *refs, size_t n, pred_fn pred,
                          const void *arg, int64_t t0)
{
    for (;;) {
        struct res r = resolve(f, refs, n);
        if (pred(&r, arg))
            return tu_now_ms() - t0;
        if (tu_now_ms() - t0 > 1500)
            return -1;
        tu_run_for(f->base, 1);
    }
}

static int err_is(const struct res *r, const void *arg)
{
    return r->err.code == *(const enum sp_err_code *)arg;
}

static int code0_is(const struct res *r, const void *arg)
{
    return strcmp(r->codes[0], arg) == 0;
}

static int value0_is(const struct res *r, const void *arg)
{
    return strcmp(r->values[0], arg) == 0;
}

static int revoked0(const struct res *r, const void *arg)
{
    return r->revoked[0];
}

static void check_seen(const char *what, int64_t ms)
{
    printf("%-36s seen after %lld ms\n", what, (long long)ms);
    assert_true(ms >= 0);
    assert_true(ms < 1000);
}

/* Each write below is followed at once by resolves (hits until the
 * invalidation is processed); the change must show well under 1 s. */
static void every_change_is_seen_at_once(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("S");
    struct sp_ref gref = named("G");
    struct sp_secret_write w;
    char tok[128];
    struct sp_ref tref;
    int64_t t0;

    /* Overwritten through another connection (the API's store). */
    put_value(f, "workspace", "S", "v1");
    assert_string_equal(resolve(f, &ref, 1).values[0], "v1");
    assert_string_equal(resolve(f, &ref, 1).values[0], "v1");
    t0 = tu_now_ms();
    put_value(f, "workspace", "S", "v2");
    check_seen("secret overwritten", until_seen(f, &ref, 1, value0_is, "v2", t0));

    /* Overwritten through this very store (no NOLOOP: own writes count). */
    t0 = tu_now_ms();
    put_value_via(f, f->s, "workspace", "S", "v3");
    check_seen("secret overwritten (own connection)", until_seen(f, &ref, 1, value0_is, "v3", t0));

    /* Revoked. */
    assert_int_equal(resolve(f, &ref, 1).revoked[0], 0);
    memset(&w, 0, sizeof(w));
    w.has_revoked = 1;
    w.revoked = 1;
    t0 = tu_now_ms();
    write_secret(f, "workspace", "S", &w);
    check_seen("secret revoked", until_seen(f, &ref, 1, revoked0, NULL, t0));

    /* Deleted by another client. */
    assert_true(resolve(f, &ref, 1).revoked[0]);
    t0 = tu_now_ms();
    cmd_ok(f, "DEL sp:{%s}:s:workspace:S", f->ws);
    check_seen("secret deleted", until_seen(f, &ref, 1, code0_is, "secret_not_found", t0));

    /* A $secret: token deleted. */
    put_value(f, "workspace", "TK", "tv");
    mint(f, "TK", 60000, tok, sizeof(tok));
    tref = token_ref(tok);
    assert_string_equal(resolve(f, &tref, 1).values[0], "tv");
    assert_string_equal(resolve(f, &tref, 1).values[0], "tv");
    {
        redisReply *keys = cmd(f, "KEYS sp:{%s}:t:*", f->ws);
        assert_int_equal(keys->elements, 1);
        t0 = tu_now_ms();
        cmd_ok(f, "DEL %s", keys->element[0]->str);
        freeReplyObject(keys);
    }
    check_seen("token deleted", until_seen(f, &tref, 1, code0_is, "reference_invalid", t0));

    /* Group membership changed: the key moves from g1 to g2. */
    put_value(f, "group:g1", "G", "in-g1");
    put_value(f, "group:g2", "G", "in-g2");
    assert_string_equal(resolve(f, &gref, 1).values[0], "in-g1");
    assert_string_equal(resolve(f, &gref, 1).values[0], "in-g1");
    t0 = tu_now_ms();
    cmd_ok(f, "HSET sp:{%s}:k:%s group g2", f->ws, f->key_id);
    check_seen("key's group changed", until_seen(f, &gref, 1, value0_is, "in-g2", t0));

    /* The API key deleted (revoked). */
    {
        enum sp_err_code want = SP_E_PROXY_AUTH_REQUIRED;
        struct wres d;
        struct sp_err err;
        memset(&d, 0, sizeof(d));
        t0 = tu_now_ms();
        assert_int_equal(sp_store_key_delete(f->w, f->ws, f->key_id, on_done, &d, &err), 0);
        assert_true(tu_run_until(f->base, &d.done, 5000));
        check_seen("API key deleted", until_seen(f, &gref, 1, err_is, &want, t0));
    }
    assert_true(stats(f).hits > 0);
}

/* What the design rests on, checked on the Redis at hand: a script's
 * declared KEYS are tracked for its caller (7.0 and later); the keys its
 * commands read are tracked only from 7.2 on, hence the fill. */
static void redis_tracks_a_scripts_declared_keys(void **state)
{
    struct fx *f = *state;
    redisContext *sub = redisConnect("127.0.0.1", redis_port);
    redisContext *m = redisConnect("127.0.0.1", redis_port);
    redisReply *r, *id;
    struct timeval tv = {0, 300000};
    int inner;

    id = redisCommand(sub, "CLIENT ID");
    freeReplyObject(redisCommand(sub, "SUBSCRIBE __redis__:invalidate"));
    redisSetTimeout(sub, tv);
    r = redisCommand(m, "CLIENT TRACKING on REDIRECT %lld", id->integer);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    freeReplyObject(id);
    cmd_ok(f, "SET cache-inner 1");
    cmd_ok(f, "SET cache-declared 1");
    freeReplyObject(redisCommand(m, "EVAL %s 0", "return redis.call('GET', 'cache-inner')"));
    freeReplyObject(
        redisCommand(m, "EVAL %s 1 cache-declared", "return redis.call('GET', KEYS[1])"));
    cmd_ok(f, "SET cache-inner 2");
    cmd_ok(f, "SET cache-declared 2");
    /* Invalidations come in order: inner's first, if it is tracked. */
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    inner = strcmp(r->element[2]->element[0]->str, "cache-inner") == 0;
    if (inner) {
        freeReplyObject(r);
        assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    }
    assert_string_equal(r->element[2]->element[0]->str, "cache-declared");
    freeReplyObject(r);
    printf("this Redis tracks keys read inside a script: %s\n", inner ? "yes" : "no");
    redisFree(sub);
    redisFree(m);
}

/* A fill sent before an invalidation arrives is not kept either. */
static void a_fill_overtaken_by_an_invalidation_is_not_kept(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct sp_ref ref = named("FO");
    struct res r;
    struct sp_err err;

    put_value(f, "workspace", "FO", "fo");
    memset(&r, 0, sizeof(r));
    r.drop_cache = f;
    assert_int_equal(
        sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, &ref, 1, on_resolved, &r, &err),
        0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    settle(f);
    assert_string_equal(r.values[0], "fo");
    assert_int_equal(stats(f).entries, 0);
    resolve(f, &ref, 1);
    assert_int_equal(stats(f).entries, 1);
}

/* With active expiry off, Redis sends no invalidation when a token's TTL
 * runs out: the entry must end by itself. */
static void token_ttl_and_expires_at_end_entries(void **state)
{
    struct fx *f = *state;
    struct sp_ref tref;
    struct sp_ref eref = named("EXP");
    struct sp_secret_write w;
    char tok[128];
    struct res r;
    uint64_t hits;

    cmd_ok(f, "DEBUG SET-ACTIVE-EXPIRE 0");
    put_value(f, "workspace", "TT", "short");
    mint(f, "TT", 1000, tok, sizeof(tok));
    tref = token_ref(tok);
    assert_string_equal(resolve(f, &tref, 1).values[0], "short");
    assert_string_equal(resolve(f, &tref, 1).values[0], "short");
    assert_int_equal(stats(f).hits, 1);
    tu_run_for(f->base, 1050);
    hits = stats(f).hits;
    r = resolve(f, &tref, 1);
    assert_string_equal(r.codes[0], "reference_invalid");
    assert_int_equal(stats(f).hits, hits);

    /* expires_at: the entry ends with the secret (the resolver then says
     * secret_expired); past it nothing is kept. */
    memset(&w, 0, sizeof(w));
    w.value = (const unsigned char *)"e";
    w.value_len = 1;
    w.has_value = 1;
    w.has_expires = 1;
    w.expires_at = sp_now_ms() + 600;
    write_secret(f, "workspace", "EXP", &w);
    r = resolve(f, &eref, 1);
    assert_true(r.expires_at[0] > sp_now_ms());
    resolve(f, &eref, 1);
    hits = stats(f).hits;
    tu_run_for(f->base, 650);
    r = resolve(f, &eref, 1);
    assert_true(r.expires_at[0] <= sp_now_ms());
    assert_int_equal(stats(f).hits, hits);
    resolve(f, &eref, 1);
    assert_int_equal(stats(f).hits, hits); /* an expired secret is not kept */
    cmd_ok(f, "DEBUG SET-ACTIVE-EXPIRE 1");
}

static void tracking_link_killed_turns_the_cache_off(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("K");
    uint64_t flushes = stats(f).flushes;
    long before;

    put_value(f, "workspace", "K", "k1");
    resolve(f, &ref, 1);
    assert_int_equal(stats(f).entries, 1);
    cmd_ok(f, "CLIENT KILL TYPE pubsub");
    assert_true(wait_off(f, 500));
    assert_int_equal(stats(f).entries, 0);
    assert_true(stats(f).flushes > flushes);
    /* Off: a write now is not seen through invalidation, yet resolves are
     * right because they go to Redis. */
    put_value(f, "workspace", "K", "k2");
    if (!stats(f).on) {
        before = scripts_run(f);
        assert_string_equal(resolve(f, &ref, 1).values[0], "k2");
        assert_int_equal(scripts_run(f) - before, 1);
    }
    assert_true(wait_on(f, 3000));
    resolve(f, &ref, 1);
    before = scripts_run(f);
    assert_string_equal(resolve(f, &ref, 1).values[0], "k2");
    assert_int_equal(scripts_run(f) - before, 0);
}

static void main_link_killed_turns_the_cache_off(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("M");
    long before;
    uint64_t connects = sp_store_connects(f->s);

    put_value(f, "workspace", "M", "m1");
    resolve(f, &ref, 1);
    assert_int_equal(stats(f).entries, 1);
    cmd_ok(f, "CLIENT KILL TYPE normal SKIPME yes");
    assert_true(wait_off(f, 500));
    assert_int_equal(stats(f).entries, 0);
    /* A change while the main link is away: the new connection has no
     * tracking yet, and nothing old may be served. */
    cmd_ok(f, "HSET sp:{%s}:s:workspace:M revoked 1", f->ws);
    for (int i = 0; i < 300 && sp_store_connects(f->s) == connects; i++)
        tu_run_for(f->base, 5);
    assert_true(sp_store_connects(f->s) > connects);
    assert_true(resolve(f, &ref, 1).revoked[0]);
    assert_true(wait_on(f, 3000));
    resolve(f, &ref, 1);
    before = scripts_run(f);
    assert_true(resolve(f, &ref, 1).revoked[0]);
    assert_int_equal(scripts_run(f) - before, 0);
}

static void flushall_flushes(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("F");
    uint64_t inv;
    int64_t t0, ms;

    put_value(f, "workspace", "F", "f");
    resolve(f, &ref, 1);
    assert_int_equal(stats(f).entries, 1);
    inv = stats(f).invalidations;
    t0 = tu_now_ms();
    cmd_ok(f, "FLUSHALL");
    ms = wait_invalidation(f, inv, t0);
    printf("FLUSHALL invalidation after %lld ms\n", (long long)ms);
    assert_true(ms >= 0 && ms < 1000);
    assert_int_equal(stats(f).entries, 0);
    assert_int_equal(resolve(f, &ref, 1).err.code, SP_E_PROXY_AUTH_REQUIRED);
}

/* A frozen Redis sends nothing, so no invalidation either: within the
 * lease the cache goes off by itself, before any command times out. */
static void frozen_redis_ends_the_lease(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("Z");

    put_value(f, "workspace", "Z", "z");
    resolve(f, &ref, 1);
    assert_true(stats(f).on);
    kill(redis_pid, SIGSTOP);
    tu_run_for(f->base, 1000);
    assert_false(stats(f).on);
    assert_int_equal(sp_store_state(f->s), SP_STORE_READY); /* no timeout yet */
    {
        struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
        struct res r;
        struct sp_err err;
        memset(&r, 0, sizeof(r));
        if (sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, &ref, 1, on_resolved, &r,
                             &err) == 0)
            tu_run_for(f->base, 50);
        assert_int_equal(r.done, 0); /* waiting on Redis, not answered from memory */
        kill(redis_pid, SIGCONT);
        assert_true(tu_run_until(f->base, &r.done, 5000));
    }
    assert_true(wait_on(f, 5000));
}

static void ttl_zero_never_caches(void **state)
{
    struct fx *f = fx_new(redis_port, NULL, 0);
    struct sp_ref ref = named("N");
    long before;

    fx_key(f);
    put_value(f, "workspace", "N", "n");
    tu_run_for(f->base, 300);
    for (int i = 0; i < 3; i++) {
        before = scripts_run(f);
        assert_string_equal(resolve(f, &ref, 1).values[0], "n");
        assert_int_equal(scripts_run(f) - before, 1);
    }
    assert_int_equal(stats(f).hits + stats(f).entries + stats(f).on, 0);
    {
        /* No tracking link was opened. */
        redisReply *r = cmd(f, "CLIENT LIST TYPE pubsub");
        assert_int_equal(r->len, 0);
        freeReplyObject(r);
    }
    /* Turned on and off again at run time (SIGHUP). */
    sp_store_cache_configure(f->s, 30000, 0, 0);
    assert_true(wait_on(f, 3000));
    resolve(f, &ref, 1);
    resolve(f, &ref, 1);
    assert_int_equal(stats(f).hits, 1);
    sp_store_cache_configure(f->s, 0, 0, 0);
    assert_false(stats(f).on);
    assert_int_equal(stats(f).entries, 0);
    before = scripts_run(f);
    resolve(f, &ref, 1);
    assert_int_equal(scripts_run(f) - before, 1);
    fx_free(f);
}

static void bounds_are_respected(void **state)
{
    struct fx *f = *state;
    char names[10][8];
    struct sp_ref refs[10];
    static char big[20000];
    long before;

    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof(names[i]), "B%d", i);
        put_value(f, "workspace", names[i], "b");
        refs[i] = named(names[i]);
    }
    sp_store_cache_configure(f->s, 30000, 4, 64 * 1024);
    assert_true(wait_on(f, 3000));
    for (int i = 0; i < 10; i++) {
        resolve(f, &refs[i], 1);
        assert_true(stats(f).entries <= 4);
    }
    assert_int_equal(stats(f).entries, 4);
    assert_int_equal(stats(f).evictions, 6);
    before = scripts_run(f);
    for (int i = 6; i < 10; i++)
        resolve(f, &refs[i], 1);
    assert_int_equal(scripts_run(f) - before, 0);
    resolve(f, &refs[0], 1); /* evicted long ago: a miss and its fill */
    assert_int_equal(scripts_run(f) - before, 2);
    /* An entry over a quarter of max_bytes is not kept. */
    memset(big, 'x', sizeof(big) - 1);
    put_value(f, "workspace", "BIG", big);
    {
        struct sp_ref b = named("BIG");
        uint64_t n = stats(f).entries;
        resolve(f, &b, 1);
        assert_true(stats(f).entries <= n);
        assert_true(stats(f).bytes <= 64 * 1024);
    }
}

static void wrong_token_is_not_cached(void **state)
{
    struct fx *f = *state;
    struct sp_ref ref = named("W");
    char good[200];

    put_value(f, "workspace", "W", "w");
    snprintf(good, sizeof(good), "%s", f->token);
    f->token[strlen(f->token) - 1] = f->token[strlen(f->token) - 1] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 2; i++)
        assert_int_equal(resolve(f, &ref, 1).err.code, SP_E_PROXY_AUTH_REQUIRED);
    assert_int_equal(stats(f).entries, 0);
    assert_int_equal(stats(f).hits, 0);
    snprintf(f->token, sizeof(f->token), "%s", good);
    assert_string_equal(resolve(f, &ref, 1).values[0], "w");
}

/* A miss whose reply comes back after an invalidation was processed is
 * used once and not kept: it may hold what the write replaced. */
static void a_miss_overtaken_by_an_invalidation_is_not_kept(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct sp_ref ref = named("R");
    struct res r;
    struct sp_err err;

    put_value(f, "workspace", "R", "r");
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, &ref, 1, on_resolved, &r, &err),
        0);
    sp_cache_drop(f->s->cache, NULL, 0); /* as an invalidation would */
    assert_true(tu_run_until(f->base, &r.done, 5000));
    assert_string_equal(r.values[0], "r");
    assert_int_equal(stats(f).entries, 0);
}

/* Freed with hits queued: each callback runs once, with store_unavailable,
 * and nothing leaks (ASan). Then freed from inside a hit's callback. */
static void freeing_with_hits_queued(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct sp_ref ref = named("Q");
    struct res r[3];
    struct sp_err err;

    put_value(f, "workspace", "Q", "q");
    resolve(f, &ref, 1);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++)
        assert_int_equal(sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, &ref, 1,
                                          on_resolved, &r[i], &err),
                         0);
    assert_int_equal(stats(f).hits, 3);
    sp_store_free(f->s);
    f->s = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err.code, SP_E_STORE_UNAVAILABLE);
    }
    tu_run_for(f->base, 20);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].calls, 1);

    /* Again, the first hit's callback freeing the store. */
    f->s = sp_store_new(f->base, f->conf, f->kr, &err);
    assert_non_null(f->s);
    sp_store_cache_configure(f->s, 30000, 0, 0);
    assert_true(wait_on(f, 3000));
    resolve(f, &ref, 1);
    memset(r, 0, sizeof(r));
    r[0].free_store = f;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sp_store_resolve(f->s, f->token, strlen(f->token), &ctx, &ref, 1,
                                          on_resolved, &r[i], &err),
                         0);
    tu_run_for(f->base, 20);
    assert_null(f->s);
    assert_int_equal(r[0].err.code, SP_E_OK);
    assert_string_equal(r[0].values[0], "q");
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].calls, 1);
    for (int i = 1; i < 3; i++)
        assert_int_equal(r[i].err.code, SP_E_STORE_UNAVAILABLE);
}

/* A Redis user without the channels stays uncached, and correct. */
static void acl_without_channels_stays_off(void **state)
{
    struct fx *f;
    struct sp_ref ref = named("ACL");
    redisContext *admin = redisConnect("127.0.0.1", redis_port);
    redisReply *r;
    char up[64];

    r = redisCommand(admin, "ACL SETUSER nochan on >pw ~* resetchannels +@all");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(admin);
    snprintf(up, sizeof(up), "nochan:pw@");
    f = fx_new(redis_port, up, 30000);
    fx_key(f);
    put_value(f, "workspace", "ACL", "a");
    tu_run_for(f->base, 500);
    assert_false(stats(f).on);
    for (int i = 0; i < 2; i++)
        assert_string_equal(resolve(f, &ref, 1).values[0], "a");
    assert_int_equal(stats(f).hits, 0);
    fx_free(f);
}

static int group_setup(void **state)
{
    static const char *const extra[] = {"--enable-debug-command", "yes", NULL};

    redis_port = tu_free_port();
    redis_pid = tu_redis_start(redis_port, extra);
    return redis_pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    tu_redis_stop(redis_pid);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hit_after_miss_is_identical_and_skips_redis, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cache_never_holds_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(every_key_the_script_reads_is_tracked, setup, teardown),
        cmocka_unit_test_setup_teardown(every_change_is_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(redis_tracks_a_scripts_declared_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(a_fill_overtaken_by_an_invalidation_is_not_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(token_ttl_and_expires_at_end_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(tracking_link_killed_turns_the_cache_off, setup, teardown),
        cmocka_unit_test_setup_teardown(main_link_killed_turns_the_cache_off, setup, teardown),
        cmocka_unit_test_setup_teardown(flushall_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(frozen_redis_ends_the_lease, setup, teardown),
        cmocka_unit_test(ttl_zero_never_caches),
        cmocka_unit_test_setup_teardown(bounds_are_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_token_is_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(a_miss_overtaken_by_an_invalidation_is_not_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(freeing_with_hits_queued, setup, teardown),
        cmocka_unit_test(acl_without_channels_stays_off),
    };
    if (!tu_redis_url()) {
        printf("SP_TEST_REDIS_URL is not set: run through scripts/test.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
