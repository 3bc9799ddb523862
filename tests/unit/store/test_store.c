/*
 * test_store.c - the store against a real redis-server: records, atomic
 * updates under concurrent writers, tokens, keys, resolution in one round
 * trip, fail-closed behaviour and reconnection after a restart.
 *
 * Uses SP_TEST_REDIS_URL (scripts/test.sh starts a throw-away Redis) and
 * starts private redis-servers for the tests that stop Redis.
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

#include "keyring.h"
#include "store.h"
#include "testutil.h"

#define CANARY "CANARY-store-7f3a9c"

struct fx {
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_conf *conf;
    struct sp_store *s;
    char *dir;
    char ws[64];
    redisContext *sync; /* a plain connection to look at what Redis holds */
};

static struct sp_conf *conf_for(const char *url, const char *timeout)
{
    char e1[300], e2[64], e3[64];
    char *env[] = {e1, e2, e3, NULL};

    snprintf(e1, sizeof(e1), "SECRETPROXY_REDIS_URL=%s", url);
    snprintf(e2, sizeof(e2), "SECRETPROXY_REDIS_COMMAND_TIMEOUT=%s", timeout);
    snprintf(e3, sizeof(e3), "SECRETPROXY_REDIS_RECONNECT_MAX=200ms");
    return tu_conf(env);
}

static int wait_ready(struct fx *f, int ms)
{
    for (int i = 0; i < ms / 10 && sp_store_state(f->s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    return sp_store_state(f->s) == SP_STORE_READY;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sp_store_url u;
    struct sp_err err;
    char path[512];
    static int seq;

    if (!tu_redis_url()) {
        free(f);
        return -1;
    }
    f->dir = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
    assert_int_equal(sp_keyring_open(path, NULL, 1, &f->kr, &err), 0);
    f->base = event_base_new();
    f->conf = conf_for(tu_redis_url(), "2s");
    assert_non_null(f->conf);
    f->s = sp_store_new(f->base, f->conf, f->kr, &err);
    assert_non_null(f->s);
    assert_true(wait_ready(f, 3000));
    snprintf(f->ws, sizeof(f->ws), "ws-%d-%d", (int)getpid(), seq++);
    assert_int_equal(sp_store_url_parse(tu_redis_url(), &u, &err), 0);
    f->sync = redisConnect(u.host, u.port);
    assert_non_null(f->sync);
    assert_int_equal(f->sync->err, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sp_store_free(f->s);
    event_base_free(f->base);
    sp_keyring_free(f->kr);
    sp_conf_free(f->conf);
    redisFree(f->sync);
    tu_rmrf(f->dir);
    free(f);
    return 0;
}

/* ---- small synchronous wrappers over the callback API ---- */

struct res {
    int done;
    struct sp_err err;
    struct sp_secret_meta meta;
    struct sp_secret *secret;
    char token[128];
    size_t count;
    int ok_count;
    char codes[32][40];
    char values[32][100];
    struct sp_key key;
};

static void copy_meta(struct sp_secret_meta *dst, const struct sp_secret_meta *src)
{
    *dst = *src;
    dst->description = NULL;
    memset(&dst->apps, 0, sizeof(dst->apps));
    memset(&dst->envs, 0, sizeof(dst->envs));
    memset(&dst->hosts, 0, sizeof(dst->hosts));
}

static void on_meta(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (err)
        snprintf(r->err.msg, sizeof(r->err.msg), "%s", err->msg);
    if (m)
        copy_meta(&r->meta, m);
}

static struct res write_secret(struct fx *f, const char *scope, const char *name,
                               enum sp_write_mode mode, const struct sp_secret_write *w)
{
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    if (sp_store_secret_write(f->s, f->ws, scope, name, mode, w, on_meta, &r, &err) < 0) {
        r.err = err;
        return r;
    }
    assert_true(tu_run_until(f->base, &r.done, 5000));
    return r;
}

static struct res put_value(struct fx *f, const char *scope, const char *name, const char *value)
{
    struct sp_secret_write w;

    memset(&w, 0, sizeof(w));
    w.value = (const unsigned char *)value;
    w.value_len = strlen(value);
    w.has_value = 1;
    return write_secret(f, scope, name, SP_WRITE_UPSERT, &w);
}

static void on_secret(struct sp_secret *s, const struct sp_err *err, void *arg)
{
    struct res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    r->secret = s;
}

static struct res get_secret(struct fx *f, const char *scope, const char *name)
{
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_secret_get(f->s, f->ws, scope, name, on_secret, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 5000));
    return r;
}

static void on_done(const struct sp_err *err, void *arg)
{
    struct res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
}

static void on_token(const char *token, const struct sp_secret_meta *m, const struct sp_err *err,
                     void *arg)
{
    struct res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (token)
        snprintf(r->token, sizeof(r->token), "%s", token);
}

static struct res mint(struct fx *f, const char *scope, const char *name, const char *user,
                       int64_t ttl)
{
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    if (sp_store_token_mint(f->s, f->ws, scope, name, user, ttl, on_token, &r, &err) < 0) {
        r.err = err;
        return r;
    }
    assert_true(tu_run_until(f->base, &r.done, 5000));
    return r;
}

static void on_resolved(const struct sp_key *key, struct sp_ref_result *results, size_t count,
                        const struct sp_err *err, void *arg)
{
    struct res *r = arg;

    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (key)
        r->key = *key;
    r->count = count;
    for (size_t i = 0; i < count && i < 32; i++) {
        snprintf(r->codes[i], sizeof(r->codes[i]), "%s", sp_err_wire(results[i].err.code));
        if (results[i].secret) {
            r->ok_count++;
            snprintf(r->values[i], sizeof(r->values[i]), "%.*s", (int)results[i].secret->value_len,
                     results[i].secret->value);
        }
    }
}

static struct res resolve(struct fx *f, const struct sp_caller *ctx, const struct sp_ref *refs,
                          size_t n)
{
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    if (sp_store_resolve(f->s, NULL, 0, ctx, refs, n, on_resolved, &r, &err) < 0) {
        r.err = err;
        return r;
    }
    assert_true(tu_run_until(f->base, &r.done, 5000));
    return r;
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

/* ---- tests ---- */

static void create_get_update_list_delete(void **state)
{
    struct fx *f = *state;
    struct sp_secret_write w;
    struct sp_strlist hosts;
    char *hv[] = {"api.example.com", ".*\\.stripe\\.com"};
    struct res r;

    memset(&w, 0, sizeof(w));
    w.value = (const unsigned char *)CANARY "-one";
    w.value_len = strlen(CANARY "-one");
    w.has_value = 1;
    w.description = "Stripe live key";
    w.has_type = 1;
    w.type = SP_SECRET_API_KEY;
    hosts.items = hv;
    hosts.count = 2;
    w.hosts = &hosts;
    r = write_secret(f, "workspace", "STRIPE", SP_WRITE_CREATE, &w);
    assert_int_equal(r.err.code, SP_E_OK);
    assert_int_equal(r.meta.version, 1);
    assert_int_equal(r.meta.type, SP_SECRET_API_KEY);
    assert_int_equal(r.meta.key_version, sp_keyring_current(f->kr));

    r = write_secret(f, "workspace", "STRIPE", SP_WRITE_CREATE, &w);
    assert_int_equal(r.err.code, SP_E_SECRET_EXISTS);
    r = write_secret(f, "workspace", "NOPE", SP_WRITE_UPDATE, &w);
    assert_int_equal(r.err.code, SP_E_SECRET_NOT_FOUND);

    r = get_secret(f, "workspace", "STRIPE");
    assert_int_equal(r.err.code, SP_E_OK);
    assert_int_equal(r.secret->value_len, strlen(CANARY "-one"));
    assert_memory_equal(r.secret->value, CANARY "-one", r.secret->value_len);
    assert_string_equal(r.secret->meta.description, "Stripe live key");
    assert_int_equal(r.secret->meta.hosts.count, 2);
    assert_string_equal(r.secret->meta.hosts.items[1], ".*\\.stripe\\.com");
    sp_secret_free(r.secret);

    /* A metadata-only update keeps the value and bumps the version. */
    memset(&w, 0, sizeof(w));
    w.has_revoked = 1;
    w.revoked = 1;
    r = write_secret(f, "workspace", "STRIPE", SP_WRITE_UPDATE, &w);
    assert_int_equal(r.err.code, SP_E_OK);
    assert_int_equal(r.meta.version, 2);
    assert_true(r.meta.revoked);
    r = get_secret(f, "workspace", "STRIPE");
    assert_memory_equal(r.secret->value, CANARY "-one", r.secret->value_len);
    sp_secret_free(r.secret);

    r = get_secret(f, "workspace", "MISSING");
    assert_int_equal(r.err.code, SP_E_SECRET_NOT_FOUND);

    {
        struct res d;
        struct sp_err err;
        memset(&d, 0, sizeof(d));
        assert_int_equal(
            sp_store_secret_delete(f->s, f->ws, "workspace", "STRIPE", on_done, &d, &err), 0);
        assert_true(tu_run_until(f->base, &d.done, 5000));
        assert_int_equal(d.err.code, SP_E_OK);
        memset(&d, 0, sizeof(d));
        assert_int_equal(
            sp_store_secret_delete(f->s, f->ws, "workspace", "STRIPE", on_done, &d, &err), 0);
        assert_true(tu_run_until(f->base, &d.done, 5000));
        assert_int_equal(d.err.code, SP_E_SECRET_NOT_FOUND);
    }
    r = get_secret(f, "workspace", "STRIPE");
    assert_int_equal(r.err.code, SP_E_SECRET_NOT_FOUND);
}

static void bad_writes_are_refused_before_redis(void **state)
{
    struct fx *f = *state;
    struct sp_secret_write w;
    struct sp_err err;
    struct res r;
    static unsigned char big[SP_MAX_VALUE + 1];

    memset(&w, 0, sizeof(w));
    w.value = big;
    w.value_len = sizeof(big);
    w.has_value = 1;
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "BIG", SP_WRITE_UPSERT, &w,
                                           on_meta, &r, &err),
                     -1);
    assert_int_equal(err.code, SP_E_BAD_REQUEST);
    w.value_len = 10;
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "bad name", SP_WRITE_UPSERT,
                                           &w, on_meta, &r, &err),
                     -1);
    assert_int_equal(err.code, SP_E_BAD_REQUEST);
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "planet:mars", "OK", SP_WRITE_UPSERT, &w,
                                           on_meta, &r, &err),
                     -1);
    w.value = (const unsigned char *)"{\"access_key_id\":\"AKIA\"}";
    w.value_len = strlen((const char *)w.value);
    w.has_type = 1;
    w.type = SP_SECRET_AWS;
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "AWS", SP_WRITE_UPSERT, &w,
                                           on_meta, &r, &err),
                     -1);
    assert_non_null(strstr(err.msg, "aws"));
    w.value = (const unsigned char *)"{\"access_key_id\":\"AKIA\",\"secret_access_key\":\"x\"}";
    w.value_len = strlen((const char *)w.value);
    r = write_secret(f, "workspace", "AWS", SP_WRITE_UPSERT, &w);
    assert_int_equal(r.err.code, SP_E_OK);
    /* A metadata-only create has no value. */
    memset(&w, 0, sizeof(w));
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "EMPTY", SP_WRITE_CREATE, &w,
                                           on_meta, &r, &err),
                     -1);
}

/* Redis holds "VERSION:base64(...)" and nothing of the plaintext; the
 * ciphertext is bound to its record. */
static void redis_never_holds_plaintext_and_aad_binds_records(void **state)
{
    struct fx *f = *state;
    char key[300];
    redisReply *rep;
    struct res r;

    assert_int_equal(put_value(f, "workspace", "A", CANARY "-aad-a").err.code, SP_E_OK);
    assert_int_equal(put_value(f, "user:bob", "B", CANARY "-aad-b").err.code, SP_E_OK);
    snprintf(key, sizeof(key), "sp:{%s}:s:workspace:A", f->ws);
    rep = redisCommand(f->sync, "HGET %s value", key);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_null(strstr(rep->str, "CANARY"));
    assert_true(rep->str[0] >= '1' && rep->str[0] <= '9' && strchr(rep->str, ':'));
    {
        /* Move A's ciphertext onto B: decryption of B must fail. */
        char bkey[300];
        redisReply *set;
        snprintf(bkey, sizeof(bkey), "sp:{%s}:s:user:bob:B", f->ws);
        set = redisCommand(f->sync, "HSET %s value %b", bkey, rep->str, (size_t)rep->len);
        freeReplyObject(set);
    }
    freeReplyObject(rep);
    r = get_secret(f, "user:bob", "B");
    assert_int_equal(r.err.code, SP_E_INTERNAL);
    assert_null(r.secret);
}

struct writer {
    struct fx *f;
    struct sp_store *s;
    int left, inflight, errors;
    int64_t max_version;
};

static void on_concurrent(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct writer *w = arg;
    w->inflight--;
    if (err)
        w->errors++;
    else if (m->version > w->max_version)
        w->max_version = m->version;
}

/* 8 connections, 25 upserts each, all in flight at once: the final version
 * counts every write, none is lost. */
static void concurrent_writers_lose_no_update(void **state)
{
    struct fx *f = *state;
    struct writer w[8];
    struct sp_secret_write sw;
    struct sp_err err;
    struct res r;
    int total = 0;

    assert_int_equal(put_value(f, "workspace", "HOT", "v0").err.code, SP_E_OK);
    memset(&sw, 0, sizeof(sw));
    sw.value = (const unsigned char *)"v1";
    sw.value_len = 2;
    sw.has_value = 1;
    for (int i = 0; i < 8; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].s = sp_store_new(f->base, f->conf, f->kr, &err);
        assert_non_null(w[i].s);
    }
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 300 && sp_store_state(w[i].s) != SP_STORE_READY; t++)
            tu_run_for(f->base, 10);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 25; k++) {
            assert_int_equal(sp_store_secret_write(w[i].s, f->ws, "workspace", "HOT",
                                                   SP_WRITE_UPSERT, &sw, on_concurrent, &w[i],
                                                   &err),
                             0);
            w[i].inflight++;
        }
    for (int t = 0; t < 1000; t++) {
        int left = 0;
        for (int i = 0; i < 8; i++)
            left += w[i].inflight;
        if (!left)
            break;
        tu_run_for(f->base, 10);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(w[i].inflight, 0);
        assert_int_equal(w[i].errors, 0);
        total += 25;
        sp_store_free(w[i].s);
    }
    r = get_secret(f, "workspace", "HOT");
    assert_int_equal(r.secret->meta.version, 1 + total);
    sp_secret_free(r.secret);
}

struct page {
    int done, n;
    char next[700];
    int bad;
};

static void on_page(const struct sp_secret_meta *items, size_t count, const char *next,
                    const struct sp_err *e, void *arg)
{
    struct page *p = arg;

    p->done = 1;
    p->n = (int)count;
    snprintf(p->next, sizeof(p->next), "%s", next ? next : "");
    p->bad = e != NULL;
    for (size_t i = 0; i < count; i++)
        if (items[i].key_version <= 0 || !items[i].name[0])
            p->bad = 1;
}

static void list_pages_through_every_secret(void **state)
{
    struct fx *f = *state;
    char name[32], cursor[700] = "";
    int seen = 0, pages = 0;
    struct sp_err err;
    struct page pg;

    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "S%02d", i);
        assert_int_equal(put_value(f, i % 2 ? "workspace" : "group:ops", name, "x").err.code,
                         SP_E_OK);
    }
    do {
        memset(&pg, 0, sizeof(pg));
        assert_int_equal(sp_store_secret_list(f->s, f->ws, NULL, cursor[0] ? cursor : NULL, 10,
                                              on_page, &pg, &err),
                         0);
        assert_true(tu_run_until(f->base, &pg.done, 5000));
        assert_false(pg.bad);
        seen += pg.n;
        pages++;
        snprintf(cursor, sizeof(cursor), "%s", pg.next);
    } while (cursor[0] && pages < 10);
    /* 25 items in pages of 10: 10, 10, 5 (the last page has no cursor). */
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);
    /* One scope only. */
    memset(&pg, 0, sizeof(pg));
    assert_int_equal(sp_store_secret_list(f->s, f->ws, "group:ops", NULL, 100, on_page, &pg, &err),
                     0);
    assert_true(tu_run_until(f->base, &pg.done, 5000));
    assert_int_equal(pg.n, 13);
    assert_string_equal(pg.next, "");
}

/* key > group > function > user > workspace; absent context skips scopes. */
static void named_references_resolve_most_specific_first(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, "k1", "g1", "fn1", "u1", NULL, NULL};
    struct sp_ref refs[1] = {named("PREC")};
    struct res r;

    assert_int_equal(put_value(f, "workspace", "PREC", "ws").err.code, SP_E_OK);
    assert_int_equal(put_value(f, "user:u1", "PREC", "user").err.code, SP_E_OK);
    assert_int_equal(put_value(f, "function:fn1", "PREC", "fn").err.code, SP_E_OK);
    assert_int_equal(put_value(f, "group:g1", "PREC", "group").err.code, SP_E_OK);
    assert_int_equal(put_value(f, "key:k1", "PREC", "key").err.code, SP_E_OK);
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.values[0], "key");
    ctx.key_id = "k2";
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.values[0], "group");
    ctx.group = NULL;
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.values[0], "fn");
    ctx.function = "";
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.values[0], "user");
    ctx.user = "u2";
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.values[0], "ws");
    refs[0] = named("ABSENT");
    r = resolve(f, &ctx, refs, 1);
    assert_string_equal(r.codes[0], "secret_not_found");
}

static void tokens_are_bound_and_follow_their_secret(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct sp_caller other = {"someone-else", NULL, NULL, NULL, NULL, NULL, NULL};
    struct res m, r, u;
    struct sp_ref ref;
    char tok[128];

    assert_int_equal(put_value(f, "workspace", "TOK", CANARY "-tok").err.code, SP_E_OK);
    m = mint(f, "workspace", "TOK", NULL, 60000);
    assert_int_equal(m.err.code, SP_E_OK);
    assert_true(strlen(m.token) >= 43);
    snprintf(tok, sizeof(tok), "%s", m.token);
    ref = token_ref(tok);
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "ok");
    assert_string_equal(r.values[0], CANARY "-tok");
    /* Another workspace cannot use it. */
    r = resolve(f, &other, &ref, 1);
    assert_string_equal(r.codes[0], "reference_invalid");
    /* Nothing in Redis names the token itself. */
    {
        redisReply *rep = redisCommand(f->sync, "KEYS sp:{%s}:t:*", f->ws);
        for (size_t i = 0; i < rep->elements; i++)
            assert_null(strstr(rep->element[i]->str, tok));
        freeReplyObject(rep);
    }
    /* Delete and re-create under the same name: the old token is dead. */
    {
        struct res d;
        struct sp_err err;
        memset(&d, 0, sizeof(d));
        assert_int_equal(sp_store_secret_delete(f->s, f->ws, "workspace", "TOK", on_done, &d, &err),
                         0);
        assert_true(tu_run_until(f->base, &d.done, 5000));
    }
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "secret_not_found");
    assert_int_equal(put_value(f, "workspace", "TOK", "new").err.code, SP_E_OK);
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "secret_not_found");

    /* A user-bound token: only that user; no user -> user_required. */
    assert_int_equal(put_value(f, "user:alice", "MINE", "alice's").err.code, SP_E_OK);
    u = mint(f, "user:alice", "MINE", "alice", 60000);
    assert_int_equal(u.err.code, SP_E_OK);
    ref = token_ref(u.token);
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "user_required");
    ctx.user = "mallory";
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "reference_invalid");
    ctx.user = "alice";
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.values[0], "alice's");

    /* Lifetime: a 1 s token is gone after it. */
    m = mint(f, "workspace", "TOK", NULL, 1000);
    ref = token_ref(m.token);
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "ok");
    usleep(1100 * 1000);
    r = resolve(f, &ctx, &ref, 1);
    assert_string_equal(r.codes[0], "reference_invalid");
    /* Minting for a missing secret fails. */
    m = mint(f, "workspace", "GHOST", NULL, 60000);
    assert_int_equal(m.err.code, SP_E_SECRET_NOT_FOUND);
}

static long evalsha_calls(struct fx *f)
{
    redisReply *rep = redisCommand(f->sync, "INFO commandstats");
    const char *p = strstr(rep->str, "cmdstat_evalsha:calls=");
    long n = p ? strtol(p + 22, NULL, 10) : 0;

    freeReplyObject(rep);
    return n;
}

/* Twenty references, one script, one round trip. */
static void twenty_references_take_one_round_trip(void **state)
{
    struct fx *f = *state;
    struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
    struct sp_ref refs[20];
    char names[20][16], toks[10][128];
    uint64_t before;
    long calls;
    struct res r;

    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(names[i], sizeof(names[i]), "R%d", i);
        snprintf(v, sizeof(v), "value-%d", i);
        assert_int_equal(put_value(f, "workspace", names[i], v).err.code, SP_E_OK);
    }
    for (int i = 0; i < 10; i++) {
        struct res m = mint(f, "workspace", names[i], NULL, 60000);
        snprintf(toks[i], sizeof(toks[i]), "%s", m.token);
        refs[i] = token_ref(toks[i]);
    }
    for (int i = 10; i < 20; i++)
        refs[i] = named(names[i]);
    r = resolve(f, &ctx, refs, 20); /* warm the script cache */
    before = sp_store_roundtrips(f->s);
    calls = evalsha_calls(f);
    r = resolve(f, &ctx, refs, 20);
    assert_int_equal(sp_store_roundtrips(f->s) - before, 1);
    assert_int_equal(evalsha_calls(f) - calls, 1);
    assert_int_equal(r.ok_count, 20);
    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(v, sizeof(v), "value-%d", i);
        assert_string_equal(r.values[i], v);
    }
}

static void on_key(const struct sp_key *k, const char *token, const struct sp_err *err, void *arg)
{
    struct res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (k)
        r->key = *k;
    if (token)
        snprintf(r->token, sizeof(r->token), "%s", token);
}

static struct res key_auth(struct fx *f, const char *token)
{
    struct res r;
    struct sp_err err;

    memset(&r, 0, sizeof(r));
    if (sp_store_key_auth(f->s, token, strlen(token), on_key, &r, &err) < 0) {
        r.err = err;
        return r;
    }
    assert_true(tu_run_until(f->base, &r.done, 5000));
    return r;
}

static void api_keys_are_hashed_and_checked(void **state)
{
    struct fx *f = *state;
    struct sp_key k;
    struct sp_err err;
    struct res c, a;
    char tok[200], bad[200];

    memset(&k, 0, sizeof(k));
    snprintf(k.workspace, sizeof(k.workspace), "%s", f->ws);
    snprintf(k.name, sizeof(k.name), "ci");
    snprintf(k.env, sizeof(k.env), "prod");
    k.perms = SP_PERM_PROXY | SP_PERM_SECRETS_READ;
    memset(&c, 0, sizeof(c));
    assert_int_equal(sp_store_key_create(f->s, &k, NULL, on_key, &c, &err), 0);
    assert_true(tu_run_until(f->base, &c.done, 5000));
    assert_int_equal(c.err.code, SP_E_OK);
    snprintf(tok, sizeof(tok), "%s", c.token);
    assert_int_equal(strncmp(tok, "sp.", 3), 0);

    a = key_auth(f, tok);
    assert_int_equal(a.err.code, SP_E_OK);
    assert_string_equal(a.key.id, c.key.id);
    assert_int_equal(a.key.perms, SP_PERM_PROXY | SP_PERM_SECRETS_READ);
    assert_string_equal(a.key.env, "prod");
    /* Redis has the hash, not the token. */
    {
        redisReply *rep = redisCommand(f->sync, "HGETALL sp:{%s}:k:%s", f->ws, c.key.id);
        for (size_t i = 0; i < rep->elements; i++)
            assert_null(strstr(rep->element[i]->str, tok + strlen(tok) - 20));
        freeReplyObject(rep);
    }
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(key_auth(f, bad).err.code, SP_E_UNAUTHORIZED);
    assert_int_equal(key_auth(f, "garbage").err.code, SP_E_UNAUTHORIZED);
    assert_int_equal(key_auth(f, "sp.nows.noid.x").err.code, SP_E_UNAUTHORIZED);

    /* The token's key and references resolve together. */
    {
        struct sp_caller ctx = {f->ws, NULL, NULL, NULL, NULL, NULL, NULL};
        struct sp_ref ref = named("KEYED");
        struct res r;
        assert_int_equal(put_value(f, "workspace", "KEYED", "kv").err.code, SP_E_OK);
        memset(&r, 0, sizeof(r));
        assert_int_equal(
            sp_store_resolve(f->s, tok, strlen(tok), &ctx, &ref, 1, on_resolved, &r, &err), 0);
        assert_true(tu_run_until(f->base, &r.done, 5000));
        assert_int_equal(r.err.code, SP_E_OK);
        assert_string_equal(r.key.id, c.key.id);
        assert_string_equal(r.values[0], "kv");
        memset(&r, 0, sizeof(r));
        assert_int_equal(
            sp_store_resolve(f->s, bad, strlen(bad), &ctx, &ref, 1, on_resolved, &r, &err), 0);
        assert_true(tu_run_until(f->base, &r.done, 5000));
        assert_int_equal(r.err.code, SP_E_PROXY_AUTH_REQUIRED);
    }
    {
        struct res d;
        memset(&d, 0, sizeof(d));
        assert_int_equal(sp_store_key_delete(f->s, f->ws, c.key.id, on_done, &d, &err), 0);
        assert_true(tu_run_until(f->base, &d.done, 5000));
        assert_int_equal(d.err.code, SP_E_OK);
    }
    assert_int_equal(key_auth(f, tok).err.code, SP_E_UNAUTHORIZED);
}

static void bootstrap_key_is_any_string(void **state)
{
    struct fx *f = *state;
    const char *boot = "operator-chosen-bootstrap-value";
    struct sp_key k;
    struct sp_err err;
    struct res c, a;

    sp_store_set_bootstrap(boot);
    memset(&k, 0, sizeof(k));
    snprintf(k.workspace, sizeof(k.workspace), "default");
    snprintf(k.name, sizeof(k.name), "bootstrap");
    k.perms = SP_PERM_ALL;
    memset(&c, 0, sizeof(c));
    assert_int_equal(sp_store_key_create(f->s, &k, boot, on_key, &c, &err), 0);
    assert_true(tu_run_until(f->base, &c.done, 5000));
    assert_int_equal(c.err.code, SP_E_OK);
    a = key_auth(f, boot);
    assert_int_equal(a.err.code, SP_E_OK);
    assert_string_equal(a.key.id, "bootstrap");
    assert_int_equal(a.key.perms, SP_PERM_ALL);
    sp_store_set_bootstrap(NULL);
    assert_int_equal(key_auth(f, boot).err.code, SP_E_UNAUTHORIZED);
}

static void urls_parse(void **state)
{
    struct sp_store_url u;
    struct sp_err err;

    assert_int_equal(sp_store_url_parse("redis://u%40x:p%3Aw@10.0.0.1:6380/3", &u, &err), 0);
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.user, "u@x");
    assert_string_equal(u.pass, "p:w");
    assert_int_equal(sp_store_url_parse("redis://:secret@localhost", &u, &err), 0);
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.pass, "secret");
    assert_int_equal(sp_store_url_parse("redis://[::1]:7000", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(sp_store_url_parse("unix:///run/redis.sock?db=2", &u, &err), 0);
    assert_true(u.is_unix);
    assert_int_equal(u.db, 2);
    assert_int_equal(sp_store_url_parse("rediss://h:1", &u, &err), -1);
    assert_int_equal(sp_store_url_parse("redis://h:99999", &u, &err), -1);
    assert_int_equal(sp_store_url_parse("redis://h:1/x", &u, &err), -1);
    assert_int_equal(sp_store_url_parse("unix://relative", &u, &err), -1);
}

/* No Redis: every call fails at once with store_unavailable. */
static void unreachable_redis_fails_closed(void **state)
{
    struct fx *f = *state;
    char url[64];
    struct sp_conf *c;
    struct sp_store *s;
    struct sp_err err;
    struct res r;

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", tu_free_port());
    c = conf_for(url, "1s");
    s = sp_store_new(f->base, c, f->kr, &err);
    assert_non_null(s);
    tu_run_for(f->base, 300);
    assert_int_not_equal(sp_store_state(s), SP_STORE_READY);
    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_secret_get(s, f->ws, "workspace", "X", on_secret, &r, &err), -1);
    assert_int_equal(err.code, SP_E_STORE_UNAVAILABLE);
    sp_store_free(s);
    sp_conf_free(c);
}

/* Redis restarted mid-run: store_unavailable meanwhile, then it is used
 * again within a second without anyone touching the store. A frozen Redis
 * (SIGSTOP) turns into a command timeout, not a hang. */
static void reconnects_after_restart_and_times_out_when_frozen(void **state)
{
    struct fx *f = *state;
    int port = tu_free_port();
    pid_t pid = tu_redis_start(port, NULL);
    char url[64];
    struct sp_conf *c;
    struct sp_store *s;
    struct sp_err err;
    struct res r;
    int64_t t0;

    assert_true(pid > 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    c = conf_for(url, "300ms");
    s = sp_store_new(f->base, c, f->kr, &err);
    for (int i = 0; i < 300 && sp_store_state(s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(s), SP_STORE_READY);

    tu_redis_stop(pid);
    tu_run_for(f->base, 100);
    assert_int_not_equal(sp_store_state(s), SP_STORE_READY);
    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_secret_get(s, f->ws, "workspace", "X", on_secret, &r, &err), -1);
    assert_int_equal(err.code, SP_E_STORE_UNAVAILABLE);

    pid = tu_redis_start(port, NULL);
    assert_true(pid > 0);
    t0 = sp_mono_us();
    for (int i = 0; i < 300 && sp_store_state(s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(s), SP_STORE_READY);
    assert_true(sp_mono_us() - t0 < 1000000);
    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_secret_get(s, f->ws, "workspace", "X", on_secret, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 2000));
    assert_int_equal(r.err.code, SP_E_SECRET_NOT_FOUND);

    /* Frozen: the command times out (300 ms), then the link is retried. */
    kill(pid, SIGSTOP);
    memset(&r, 0, sizeof(r));
    t0 = sp_mono_us();
    assert_int_equal(sp_store_secret_get(s, f->ws, "workspace", "X", on_secret, &r, &err), 0);
    assert_true(tu_run_until(f->base, &r.done, 3000));
    assert_int_equal(r.err.code, SP_E_STORE_UNAVAILABLE);
    assert_true(sp_mono_us() - t0 < 1500000);
    kill(pid, SIGCONT);
    for (int i = 0; i < 300 && sp_store_state(s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(s), SP_STORE_READY);
    assert_true(sp_store_connects(s) >= 3);

    sp_store_free(s);
    sp_conf_free(c);
    tu_redis_stop(pid);
}

/* Redis over a unix socket, with a database number in the URL. */
static void connects_over_a_unix_socket(void **state)
{
    struct fx *f = *state;
    int port = tu_free_port();
    char sock[128], url[160];
    const char *extra[] = {"--unixsocket", sock, "--unixsocketperm", "700", NULL};
    struct sp_conf *c;
    struct sp_store *s;
    struct sp_err err;
    pid_t pid;

    snprintf(sock, sizeof(sock), "%s/redis.sock", f->dir);
    pid = tu_redis_start(port, extra);
    assert_true(pid > 0);
    snprintf(url, sizeof(url), "unix://%s?db=3", sock);
    c = conf_for(url, "1s");
    s = sp_store_new(f->base, c, f->kr, &err);
    assert_non_null(s);
    for (int i = 0; i < 300 && sp_store_state(s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(s), SP_STORE_READY);
    sp_store_free(s);
    sp_conf_free(c);
    tu_redis_stop(pid);
}

/* Redis with ACL users and a non-zero database. */
static void authenticates_with_acl_user_and_selects_db(void **state)
{
    struct fx *f = *state;
    int port = tu_free_port();
    static const char *const acl[] = {"--user", "sp", "on", ">s3cret", "~*", "&*", "+@all", NULL};
    pid_t pid = tu_redis_start(port, acl);
    char url[128];
    struct sp_conf *c;
    struct sp_store *s;
    struct sp_err err;

    assert_true(pid > 0);
    snprintf(url, sizeof(url), "redis://sp:s3cret@127.0.0.1:%d/5", port);
    c = conf_for(url, "1s");
    s = sp_store_new(f->base, c, f->kr, &err);
    for (int i = 0; i < 300 && sp_store_state(s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    assert_int_equal(sp_store_state(s), SP_STORE_READY);
    sp_store_free(s);
    sp_conf_free(c);

    /* A wrong password never becomes ready. */
    snprintf(url, sizeof(url), "redis://sp:wrong@127.0.0.1:%d/5", port);
    c = conf_for(url, "1s");
    s = sp_store_new(f->base, c, f->kr, &err);
    tu_run_for(f->base, 300);
    assert_int_not_equal(sp_store_state(s), SP_STORE_READY);
    sp_store_free(s);
    sp_conf_free(c);
    tu_redis_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_parse),
        cmocka_unit_test_setup_teardown(create_get_update_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_writes_are_refused_before_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(redis_never_holds_plaintext_and_aad_binds_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_writers_lose_no_update, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_through_every_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(named_references_resolve_most_specific_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tokens_are_bound_and_follow_their_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(twenty_references_take_one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(api_keys_are_hashed_and_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_key_is_any_string, setup, teardown),
        cmocka_unit_test_setup_teardown(unreachable_redis_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnects_after_restart_and_times_out_when_frozen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(authenticates_with_acl_user_and_selects_db, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(connects_over_a_unix_socket, setup, teardown),
    };
    if (!tu_redis_url()) {
        printf("SP_TEST_REDIS_URL is not set: run through scripts/test.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
