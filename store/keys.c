/*
 * keys.c - API keys (the resolution script that also authenticates them is
 * in resolve.c) and audit events.
 *
 * A key's token is "sp.<workspace>.<id>.<43 random chars>"; Redis keeps only
 * its SHA-256, compared here in constant time. The workspace inside the
 * token lets authentication and every reference of a request be looked up by
 * one script on the workspace's slot. The operator's api.bootstrap_key may be
 * any string: it is recognised by its hash and maps to key "bootstrap" in
 * workspace "default".
 */
#include "store_int.h"

#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

static const char *const perm_names[] = {
    "proxy",      "secrets:read",   "secrets:write", "secrets:read_value",
    "keys:admin", "assert_context", "root"};

int sp_perm_parse(const char *s, size_t n)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(perm_names); i++)
        if (strlen(perm_names[i]) == n && memcmp(perm_names[i], s, n) == 0)
            return 1 << i;
    return -1;
}

const char *sp_perm_name(unsigned bit)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(perm_names); i++)
        if (bit == 1u << i)
            return perm_names[i];
    return "?";
}

static unsigned char bootstrap_hash[32];
static int bootstrap_set;

void sp_store_set_bootstrap(const char *token)
{
    bootstrap_set = token && *token;
    if (bootstrap_set)
        mbedtls_sha256_ret((const unsigned char *)token, strlen(token), bootstrap_hash, 0);
}

int sp_key_token_parse(const char *tok, size_t len, struct sp_key_token *out)
{
    const char *p = tok, *end = tok + len, *dot1, *dot2;

    memset(out, 0, sizeof(*out));
    mbedtls_sha256_ret((const unsigned char *)tok, len, out->hash, 0);
    if (bootstrap_set && sp_ct_eq(out->hash, 32, bootstrap_hash, 32)) {
        memcpy(out->workspace, "default", 8);
        memcpy(out->id, "bootstrap", 10);
        return 0;
    }
    if (len < 8 || len > 400 || memcmp(p, "sp.", 3) != 0)
        return -1;
    p += 3;
    dot1 = memchr(p, '.', (size_t)(end - p));
    if (!dot1 || !sp_valid_name(p, (size_t)(dot1 - p)))
        return -1;
    dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (!dot2 || (size_t)(dot2 - dot1 - 1) >= sizeof(out->id) ||
        !sp_valid_name(dot1 + 1, (size_t)(dot2 - dot1 - 1)) ||
        !sp_valid_name(dot2 + 1, (size_t)(end - dot2 - 1)))
        return -1;
    memcpy(out->workspace, p, (size_t)(dot1 - p));
    memcpy(out->id, dot1 + 1, (size_t)(dot2 - dot1 - 1));
    return 0;
}

int sp_key_json(const struct sp_key *k, struct sp_buf *out, struct sp_err *err)
{
    char created[40];
    int first = 1;

    sp_time_format(created, sizeof(created), k->created_at);
    if (sp_buf_printf(out, err, "{\"id\":\"%s\",\"name\":\"", k->id) < 0 ||
        sp_json_escape(out, k->name, strlen(k->name), err) < 0 ||
        sp_buf_printf(out, err, "\",\"workspace\":\"%s\",\"permissions\":[", k->workspace) < 0)
        return -1;
    for (unsigned b = 1; b < SP_PERM_ALL; b <<= 1) {
        if (!(k->perms & b))
            continue;
        if (sp_buf_printf(out, err, "%s\"%s\"", first ? "" : ",", sp_perm_name(b)) < 0)
            return -1;
        first = 0;
    }
    if (sp_buf_addstr(out, "]", err) < 0)
        return -1;
    {
        const char *names[5] = {"group", "app", "env", "user", "function"};
        const char *vals[5] = {k->group, k->app, k->env, k->user, k->function};
        for (int i = 0; i < 5; i++) {
            if (!vals[i][0] ? sp_buf_printf(out, err, ",\"%s\":null", names[i])
                            : sp_buf_printf(out, err, ",\"%s\":\"%s\"", names[i], vals[i]))
                return -1;
        }
    }
    return sp_buf_printf(out, err, ",\"created_at\":\"%s\"}", created);
}

int sp_store_key_from_reply(const redisReply *r, struct sp_key *k, unsigned char *hash,
                            struct sp_err *err)
{
    memset(k, 0, sizeof(*k));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return sp_err_set(err, SP_E_INTERNAL, "store: malformed key record");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        struct {
            const char *name;
            char *dst;
            size_t sz;
        } strs[] = {
            {"id", k->id, sizeof(k->id)},       {"ws", k->workspace, sizeof(k->workspace)},
            {"name", k->name, sizeof(k->name)}, {"group", k->group, sizeof(k->group)},
            {"app", k->app, sizeof(k->app)},    {"env", k->env, sizeof(k->env)},
            {"user", k->user, sizeof(k->user)}, {"function", k->function, sizeof(k->function)}};
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        for (size_t j = 0; j < SP_ARRAY_LEN(strs); j++) {
            if (strcmp(f->str, strs[j].name) == 0) {
                size_t n = (size_t)v->len < strs[j].sz - 1 ? (size_t)v->len : strs[j].sz - 1;
                memcpy(strs[j].dst, v->str, n);
                strs[j].dst[n] = '\0';
            }
        }
        if (strcmp(f->str, "perms") == 0)
            k->perms = (unsigned)strtoul(v->str, NULL, 10) & SP_PERM_ALL;
        else if (strcmp(f->str, "created_at") == 0)
            k->created_at = strtoll(v->str, NULL, 10);
        else if (strcmp(f->str, "hash") == 0 && hash) {
            size_t n;
            if (v->len != 44 || sp_base64_decode(hash, &n, v->str, 44) < 0 || n != 32)
                return sp_err_set(err, SP_E_INTERNAL, "store: malformed key hash");
        }
    }
    if (!k->id[0])
        return sp_err_set(err, SP_E_INTERNAL, "store: key record without id");
    return 0;
}

struct key_op {
    struct sp_store *s;
    sp_store_key_fn key_cb;
    sp_store_keys_fn keys_cb;
    sp_store_done_fn done_cb;
    void *arg;
    struct sp_key key;
    struct sp_key_token tok;
    char token[256];
};

static void key_op_free(struct key_op *o)
{
    sp_wipe(o, sizeof(*o));
    free(o);
}

static void on_key_created(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct key_op *o = arg;
    struct sp_err e;

    if (err)
        o->key_cb(NULL, NULL, err, o->arg);
    else if (r->type == REDIS_REPLY_ERROR && sp_store_reply_error(r, &e))
        o->key_cb(NULL, NULL, &e, o->arg);
    else
        o->key_cb(&o->key, o->token, NULL, o->arg);
    key_op_free(o);
}

/* KEYS[1] key hash, KEYS[2] key set, KEYS[3] group prefix "sp:{ws}:g:";
 * ARGV[1] id, ARGV[2] group ('' = none), then field/value pairs. */
static struct sp_script script_key_create = {
    "key_create",
    "if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[3] .. ARGV[2]) == 0 then\n"
    "  return redis.error_reply('SPERR bad_request Group \\'' .. ARGV[2] .. '\\' does not exist')\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n",
    ""};

int sp_store_key_create(struct sp_store *s, const struct sp_key *tmpl, const char *fixed_token,
                        sp_store_key_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160], key[220], set[180], perms[16], created[24], hash64[48], secret[64];
    char gprefix[180];
    const char *argv[32];
    size_t lens[32];
    int n = 0;
    struct key_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), tmpl->workspace) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->s = s;
    o->key_cb = cb;
    o->arg = arg;
    o->key = *tmpl;
    o->key.created_at = sp_now_ms();
    if (fixed_token) {
        if (strlen(fixed_token) >= sizeof(o->token))
            goto toolong;
        snprintf(o->token, sizeof(o->token), "%s", fixed_token);
        if (sp_key_token_parse(o->token, strlen(o->token), &o->tok) < 0)
            goto toolong;
        snprintf(o->key.id, sizeof(o->key.id), "%s", o->tok.id);
    } else {
        if (sp_random_token(o->key.id, sizeof(o->key.id), 12, err) < 0 ||
            sp_random_token(secret, sizeof(secret), 32, err) < 0)
            goto fail;
        /* Ids must not contain the token's separator; base64url has none. */
        snprintf(o->token, sizeof(o->token), "sp.%s.%s.%s", tmpl->workspace, o->key.id, secret);
        sp_wipe(secret, sizeof(secret));
        if (sp_key_token_parse(o->token, strlen(o->token), &o->tok) < 0) {
            sp_err_set(err, SP_E_INTERNAL, "generated a malformed key");
            goto fail;
        }
    }
    sp_base64_encode(hash64, o->tok.hash, 32);
    snprintf(key, sizeof(key), "%sk:%s", prefix, o->key.id);
    snprintf(set, sizeof(set), "%skeys", prefix);
    snprintf(gprefix, sizeof(gprefix), "%sg:", prefix);
    snprintf(perms, sizeof(perms), "%u", o->key.perms & SP_PERM_ALL);
    snprintf(created, sizeof(created), "%lld", (long long)o->key.created_at);
#define PAIR(f, v)                                                                                 \
    (argv[n] = (f), lens[n] = strlen(f), n++, argv[n] = (v), lens[n] = strlen(v), n++)
    argv[n] = key, lens[n] = strlen(key), n++;
    argv[n] = set, lens[n] = strlen(set), n++;
    argv[n] = gprefix, lens[n] = strlen(gprefix), n++;
    argv[n] = o->key.id, lens[n] = strlen(o->key.id), n++;
    argv[n] = o->key.group, lens[n] = strlen(o->key.group), n++;
    PAIR("id", o->key.id);
    PAIR("ws", o->key.workspace);
    PAIR("name", o->key.name);
    PAIR("hash", hash64);
    PAIR("perms", perms);
    PAIR("group", o->key.group);
    PAIR("app", o->key.app);
    PAIR("env", o->key.env);
    PAIR("user", o->key.user);
    PAIR("function", o->key.function);
    PAIR("created_at", created);
#undef PAIR
    if (sp_store_script(s, &script_key_create, 3, n, argv, lens, on_key_created, o, err) < 0)
        goto fail;
    {
        const char *sa[3] = {"SADD", "sp:workspaces", tmpl->workspace};
        size_t sl[3] = {4, 13, strlen(tmpl->workspace)};
        sp_store_fire(s, 3, sa, sl);
    }
    return 0;
toolong:
    sp_err_set(err, SP_E_CONFIG, "the bootstrap key must be 16-199 characters");
fail:
    key_op_free(o);
    return -1;
}

static void on_key_auth(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct key_op *o = arg;
    unsigned char hash[32] = {0};
    struct sp_err e;

    if (err) {
        o->key_cb(NULL, NULL, err, o->arg);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
               sp_store_key_from_reply(r, &o->key, hash, &e) < 0 ||
               !sp_ct_eq(hash, 32, o->tok.hash, 32)) {
        sp_err_set(&e, SP_E_UNAUTHORIZED, "Invalid API key");
        o->key_cb(NULL, NULL, &e, o->arg);
    } else {
        o->key_cb(&o->key, NULL, NULL, o->arg);
    }
    key_op_free(o);
}

int sp_store_key_auth(struct sp_store *s, const char *token, size_t len, sp_store_key_fn cb,
                      void *arg, struct sp_err *err)
{
    char prefix[160], key[220];
    const char *argv[2];
    size_t lens[2];
    struct key_op *o;

    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    if (sp_key_token_parse(token, len, &o->tok) < 0 ||
        sp_store_prefix(prefix, sizeof(prefix), o->tok.workspace) < 0) {
        key_op_free(o);
        return sp_err_set(err, SP_E_UNAUTHORIZED, "Invalid API key");
    }
    o->key_cb = cb;
    o->arg = arg;
    snprintf(key, sizeof(key), "%sk:%s", prefix, o->tok.id);
    argv[0] = "HGETALL", lens[0] = 7;
    argv[1] = key, lens[1] = strlen(key);
    if (sp_store_command(s, on_key_auth, o, 2, argv, lens, err) < 0) {
        key_op_free(o);
        return -1;
    }
    return 0;
}

/* KEYS[1] key set; ARGV[1] prefix. */
static struct sp_script script_key_list = {
    "key_list",
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local h = redis.call('HGETALL', ARGV[1] .. 'k:' .. id)\n"
    "  if #h > 0 then out[#out + 1] = h end\n"
    "end\n"
    "return out\n",
    ""};

static void on_key_list(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct key_op *o = arg;
    struct sp_err e;
    struct sp_key *keys = sp_store_rows(r, err, sizeof(*keys), &e);
    size_t n = 0;

    if (!keys) {
        o->keys_cb(NULL, 0, &e, o->arg);
    } else {
        for (size_t i = 0; i < r->elements; i++)
            if (sp_store_key_from_reply(r->element[i], &keys[n], NULL, NULL) == 0)
                n++;
        o->keys_cb(keys, n, NULL, o->arg);
    }
    free(keys);
    key_op_free(o);
}

int sp_store_key_list(struct sp_store *s, const char *ws, sp_store_keys_fn cb, void *arg,
                      struct sp_err *err)
{
    char prefix[160], set[180];
    const char *argv[2];
    size_t lens[2];
    struct key_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->keys_cb = cb;
    o->arg = arg;
    snprintf(set, sizeof(set), "%skeys", prefix);
    argv[0] = set, lens[0] = strlen(set);
    argv[1] = prefix, lens[1] = strlen(prefix);
    if (sp_store_script(s, &script_key_list, 1, 2, argv, lens, on_key_list, o, err) < 0) {
        key_op_free(o);
        return -1;
    }
    return 0;
}

/* KEYS[1] key hash, KEYS[2] key set; ARGV[1] id. */
static struct sp_script script_key_delete = {
    "key_delete",
    "if redis.call('DEL', KEYS[1]) == 0 then\n"
    "  return redis.error_reply('SPERR not_found API key \\'' .. ARGV[1] .. '\\' not found')\n"
    "end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return 1\n",
    ""};

static void on_key_done(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct key_op *o = arg;
    struct sp_err e;

    if (err)
        o->done_cb(err, o->arg);
    else if (r->type == REDIS_REPLY_ERROR && sp_store_reply_error(r, &e))
        o->done_cb(&e, o->arg);
    else
        o->done_cb(NULL, o->arg);
    key_op_free(o);
}

int sp_store_key_delete(struct sp_store *s, const char *ws, const char *id, sp_store_done_fn cb,
                        void *arg, struct sp_err *err)
{
    char prefix[160], key[220], set[180];
    const char *argv[3];
    struct key_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0 || !sp_valid_name(id, strlen(id)) ||
        strlen(id) >= 40)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace or key id");
    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->done_cb = cb;
    o->arg = arg;
    snprintf(key, sizeof(key), "%sk:%s", prefix, id);
    snprintf(set, sizeof(set), "%skeys", prefix);
    argv[0] = key, argv[1] = set, argv[2] = id;
    if (sp_store_script_strs(s, &script_key_delete, 2, 3, argv, on_key_done, o, err) < 0) {
        key_op_free(o);
        return -1;
    }
    return 0;
}

void sp_store_audit(struct sp_store *s, const char *ws, const char *json, size_t len, long maxlen)
{
    char key[180], cap[24];
    const char *argv[8];
    size_t lens[8];

    if (maxlen <= 0 || sp_store_prefix(key, sizeof(key), ws) < 0)
        return;
    strncat(key, "audit", sizeof(key) - strlen(key) - 1);
    snprintf(cap, sizeof(cap), "%ld", maxlen);
    argv[0] = "XADD", argv[1] = key, argv[2] = "MAXLEN", argv[3] = "~", argv[4] = cap,
    argv[5] = "*", argv[6] = "event";
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    argv[7] = json, lens[7] = len;
    if (sp_store_state(s) != SP_STORE_READY)
        sp_log(SP_LOG_WARN, NULL, "audit event for workspace %s not stored: store unavailable", ws);
    else
        sp_store_fire(s, 8, argv, lens);
}
