/*
 * resolve.c - resolution: authenticate a key token and resolve every
 * reference of a request in one Lua script, i.e. one round trip, or none
 * when the resolve cache (cache.c) holds the script's reply; and the fill
 * that makes a reply safe to keep.
 *
 * Why a fill: for a script, Redis 7.0 tracks (CLIENT TRACKING) only the keys
 * declared in KEYS; only 7.2 and later also track what its commands read.
 * The resolve script learns most names it reads from the records themselves
 * (a key's group, a token's secret), so a first run cannot declare them; it
 * reports what it read instead. After a miss the same script runs once more
 * in the background with exactly those keys declared, so reading and
 * tracking happen in one atomic step, and its reply is kept only if it read
 * nothing undeclared, authenticated, and no invalidation came meanwhile.
 */
#include "cache.h"
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/*
 * KEYS[1] the workspace prefix "sp:{ws}:" (declared so a cluster client
 * routes the script; every key built from it shares the slot); KEYS[2..]
 * (fills only) the keys the script is expected to read.
 * ARGV: key id ('' = none), key-scope id, group, function, user (each ''
 * = take it from the key's own binding), then (kind, text) pairs: kind 'n'
 * + secret name, or 't' + sha256 hex of token.
 * Returns {key hash fields, {status, secret fields, token user, token
 * PTTL}..., {every key read, without the prefix}, 1 if KEYS[2..] declared
 * every one of them else 0}. The PTTL (tokens only) bounds how long the
 * resolve cache may keep the reply.
 */
static struct sp_script script_resolve = {
    "resolve",
    "local p = KEYS[1]\n"
    "local decl, seen, rd = {}, {}, {}\n"
    "local covered = #KEYS > 1\n"
    "for j = 2, #KEYS do decl[KEYS[j]] = true end\n"
    "local function get(k)\n"
    "  if not seen[k] then\n"
    "    seen[k] = true\n"
    "    rd[#rd + 1] = k\n"
    "    if not decl[p .. k] then covered = false end\n"
    "  end\n"
    "  return redis.call('HGETALL', p .. k)\n"
    "end\n"
    "local out = {}\n"
    "if ARGV[1] ~= '' then out[1] = get('k:' .. ARGV[1]) else out[1] = {} end\n"
    "local key = {}\n"
    "for j = 1, #out[1], 2 do key[out[1][j]] = out[1][j + 1] end\n"
    "local function pick(a, k) if a ~= '' then return a end return key[k] or '' end\n"
    "local kid, grp = pick(ARGV[2], 'id'), pick(ARGV[3], 'group')\n"
    "local fn, usr = pick(ARGV[4], 'function'), pick(ARGV[5], 'user')\n"
    "local scopes = {}\n"
    "if kid ~= '' then scopes[#scopes + 1] = 'key:' .. kid end\n"
    "if grp ~= '' then scopes[#scopes + 1] = 'group:' .. grp end\n"
    "if fn ~= '' then scopes[#scopes + 1] = 'function:' .. fn end\n"
    "if usr ~= '' then scopes[#scopes + 1] = 'user:' .. usr end\n"
    "scopes[#scopes + 1] = 'workspace'\n"
    "for i = 6, #ARGV, 2 do\n"
    "  local r = {'secret_not_found'}\n"
    "  if ARGV[i] == 'n' then\n"
    "    for _, sc in ipairs(scopes) do\n"
    "      local h = get('s:' .. sc .. ':' .. ARGV[i + 1])\n"
    "      if #h > 0 then r = {'ok', h, ''}; break end\n"
    "    end\n"
    "  else\n"
    "    local t = get('t:' .. ARGV[i + 1])\n"
    "    if #t == 0 then r = {'reference_invalid'} else\n"
    "      local tk = {}\n"
    "      for j = 1, #t, 2 do tk[t[j]] = t[j + 1] end\n"
    "      local ttl = redis.call('PTTL', p .. 't:' .. ARGV[i + 1])\n"
    "      local h = get('s:' .. tk.scope .. ':' .. tk.name)\n"
    "      local id = nil\n"
    "      for j = 1, #h, 2 do if h[j] == 'id' then id = h[j + 1] end end\n"
    "      if id ~= nil and id == tk.id then r = {'ok', h, tk.user or '', ttl}\n"
    "      else r = {'secret_not_found', {}, '', ttl} end\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = r\n"
    "end\n"
    "out[#out + 1] = rd\n"
    "out[#out + 1] = covered and 1 or 0\n"
    "return out\n",
    ""};

/* Elements of the reply besides the key and one per reference. */
#define TRAILER 2

struct resolve_op {
    struct sp_store *s;
    sp_store_resolve_fn cb;
    void *arg;
    int have_token;
    struct sp_key_token tok;
    size_t count;
    char user[129];
    char **names; /* each ref's text, for messages */
    /* for the cache */
    char ws[129];
    unsigned char ckey[32];
    struct sp_cache_ticket ticket; /* armed: a miss whose reply may be filled */
    int nargs;                     /* the script's ARGV, kept for the fill */
    char **args;
    size_t *arglens;
};

/* A background run of the script with its read set declared. */
struct fill_op {
    struct sp_store *s;
    int have_token;
    unsigned char tok_hash[32];
    size_t count;
    char ws[129];
    unsigned char ckey[32];
    struct sp_cache_ticket ticket;
};

static void resolve_op_free(struct resolve_op *o)
{
    for (size_t i = 0; o->names && i < o->count; i++)
        free(o->names[i]);
    free(o->names);
    for (int i = 0; o->args && i < o->nargs; i++)
        sp_free_wiped(o->args[i], o->arglens[i]);
    free(o->args);
    free(o->arglens);
    sp_wipe(o, sizeof(*o));
    free(o);
}

/* Fill one result from {status, fields, token user}. */
static void resolve_one(struct resolve_op *o, const redisReply *e, size_t i,
                        struct sp_ref_result *res)
{
    struct sp_secret_meta m;
    const redisReply *value;
    const char *name = o->names[i];

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
        e->element[0]->type != REDIS_REPLY_STRING) {
        sp_err_set(&res->err, SP_E_INTERNAL, "store: malformed resolution");
        return;
    }
    if (strcmp(e->element[0]->str, "reference_invalid") == 0) {
        sp_err_set(&res->err, SP_E_REFERENCE_INVALID, "Reference has expired or is unknown");
        return;
    }
    if (strcmp(e->element[0]->str, "ok") != 0 || e->elements < 3) {
        sp_err_set(&res->err, SP_E_SECRET_NOT_FOUND, "Secret '%s' not found", name);
        return;
    }
    if (e->element[2]->type == REDIS_REPLY_STRING && e->element[2]->len > 0) {
        res->token_user_bound = 1;
        /* A token minted for a user works only for that user. */
        if (!o->user[0]) {
            sp_err_set(&res->err, SP_E_USER_REQUIRED, "A user-scoped secret needs a user context");
            return;
        }
        if (strcmp(o->user, e->element[2]->str) != 0) {
            sp_err_set(&res->err, SP_E_REFERENCE_INVALID, "Reference has expired or is unknown");
            return;
        }
    }
    if (sp_store_meta_from_reply(e->element[1], &m, &value, &res->err) < 0)
        return;
    res->secret = sp_store_decrypt(o->s, &m, value, &res->err);
    if (!res->secret)
        sp_secret_meta_clear(&m);
    else
        res->err.code = SP_E_OK;
}

/* The key record in r0 is the one the token names (no token: always). */
static int key_matches(const redisReply *r0, int have_token, const unsigned char tok_hash[32],
                       struct sp_key *key)
{
    unsigned char hash[32] = {0};
    int ok;

    if (!have_token)
        return 1;
    ok = r0->type == REDIS_REPLY_ARRAY && r0->elements > 0 &&
         sp_store_key_from_reply(r0, key, hash, NULL) == 0 && sp_ct_eq(hash, 32, tok_hash, 32);
    sp_wipe(hash, sizeof(hash));
    return ok;
}

/* ---- what the cache may keep ---- */

static void consider(int64_t *min, int64_t t)
{
    if (!*min || t < *min)
        *min = t;
}

static void consider_expires_at(int64_t *min, const redisReply *h, int64_t now_us, int64_t now_ms)
{
    for (size_t j = 0; h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
        const redisReply *f = h->element[j], *v = h->element[j + 1];
        int64_t at, left;
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            strcmp(f->str, "expires_at") != 0)
            continue;
        at = strtoll(v->str, NULL, 10);
        left = at - now_ms;
        if (at > 0 && left < 1000LL * 86400 * 365)
            consider(min, left > 0 ? now_us + left * 1000 : now_us);
    }
}

/* When the reply stops being true without any write (monotonic us, 0 =
 * never): a token's TTL runs out, a secret's expires_at passes. Redis
 * expires keys lazily, so the cache cannot wait for an invalidation. */
static int64_t reply_expiry(const redisReply *r, size_t count, int64_t sent_us)
{
    int64_t min = 0, now_us = sp_mono_us(), now_ms = sp_now_ms();

    for (size_t i = 0; i < count; i++) {
        const redisReply *e = r->element[i + 1];
        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        if (e->elements >= 4 && e->element[3]->type == REDIS_REPLY_INTEGER) {
            long long pttl = e->element[3]->integer;
            /* Measured after the script was sent: earlier than the truth. */
            if (pttl >= 0 && pttl < 1000LL * 86400 * 365)
                consider(&min, sent_us + pttl * 1000);
            else if (pttl != -1)
                consider(&min, now_us);
        }
        if (e->elements >= 2)
            consider_expires_at(&min, e->element[1], now_us, now_ms);
    }
    return min;
}

static void on_fill(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct fill_op *f = arg;
    struct sp_key key;

    /* On an error the store may be being freed: touch nothing of it. */
    if (!err && r->type == REDIS_REPLY_ARRAY && r->elements == f->count + 1 + TRAILER &&
        r->element[f->count + 2]->type == REDIS_REPLY_INTEGER &&
        r->element[f->count + 2]->integer == 1 &&
        key_matches(r->element[0], f->have_token, f->tok_hash, &key))
        sp_cache_put(f->s, &f->ticket, f->ckey, f->ws, r,
                     reply_expiry(r, f->count, f->ticket.sent_us));
    sp_wipe(&key, sizeof(key));
    sp_wipe(f, sizeof(*f));
    free(f);
}

/* Run the script again with every key the miss read declared. */
static void start_fill(struct resolve_op *o, const redisReply *r)
{
    const redisReply *rd = r->element[o->count + 1];
    struct fill_op *f = NULL;
    const char **argv = NULL;
    size_t *lens = NULL, nkeys, klen = 0, plen, off = 0;
    char prefix[160], *keys = NULL;
    struct sp_err err;

    if (!sp_cache_ticket_valid(o->s, &o->ticket) || rd->type != REDIS_REPLY_ARRAY ||
        rd->elements > 4096 || sp_store_prefix(prefix, sizeof(prefix), o->ws) < 0)
        return;
    plen = strlen(prefix);
    nkeys = 1 + rd->elements;
    for (size_t i = 0; i < rd->elements; i++) {
        if (rd->element[i]->type != REDIS_REPLY_STRING)
            return;
        klen += plen + rd->element[i]->len;
    }
    f = calloc(1, sizeof(*f));
    argv = calloc(nkeys + (size_t)o->nargs, sizeof(*argv));
    lens = calloc(nkeys + (size_t)o->nargs, sizeof(*lens));
    keys = malloc(klen + 1);
    if (!f || !argv || !lens || !keys)
        goto out;
    argv[0] = prefix, lens[0] = plen;
    for (size_t i = 0; i < rd->elements; i++) {
        memcpy(keys + off, prefix, plen);
        memcpy(keys + off + plen, rd->element[i]->str, rd->element[i]->len);
        argv[1 + i] = keys + off;
        lens[1 + i] = plen + rd->element[i]->len;
        off += lens[1 + i];
    }
    for (int j = 0; j < o->nargs; j++)
        argv[nkeys + (size_t)j] = o->args[j], lens[nkeys + (size_t)j] = o->arglens[j];
    f->s = o->s;
    f->have_token = o->have_token;
    memcpy(f->tok_hash, o->tok.hash, 32);
    f->count = o->count;
    memcpy(f->ws, o->ws, sizeof(f->ws));
    memcpy(f->ckey, o->ckey, 32);
    sp_cache_ticket(o->s, &f->ticket);
    if (f->ticket.armed && sp_store_script(o->s, &script_resolve, (int)nkeys, (int)nkeys + o->nargs,
                                           argv, lens, on_fill, f, &err) == 0)
        f = NULL;
out:
    if (f)
        sp_free_wiped(f, sizeof(*f));
    free(argv);
    free(lens);
    free(keys);
}

/* Keep the script's ARGV for a fill. */
static int keep_args(struct resolve_op *o, int n, const char **argv, const size_t *lens)
{
    o->args = calloc((size_t)n + 1, sizeof(*o->args));
    o->arglens = calloc((size_t)n + 1, sizeof(*o->arglens));
    if (!o->args || !o->arglens)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!(o->args[i] = malloc(lens[i] + 1)))
            return -1;
        memcpy(o->args[i], argv[i], lens[i]);
        o->arglens[i] = lens[i];
        o->nargs = i + 1;
    }
    return 0;
}

/* ---- the call ---- */

static void on_resolve(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct resolve_op *o = arg;
    struct sp_ref_result *res = NULL;
    struct sp_key key, *kp = NULL;
    struct sp_err e;

    if (err) {
        o->cb(NULL, NULL, 0, err, o->arg);
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != o->count + 1 + TRAILER) {
        sp_store_reply_error(r, &e);
        o->cb(NULL, NULL, 0, &e, o->arg);
        goto done;
    }
    if (o->have_token) {
        if (!key_matches(r->element[0], 1, o->tok.hash, &key)) {
            sp_err_set(&e, SP_E_PROXY_AUTH_REQUIRED, "Invalid API key");
            o->cb(NULL, NULL, 0, &e, o->arg);
            goto done;
        }
        kp = &key;
        /* Tokens bound to a user check the effective user: asserted, or
         * else the key's own binding. */
        if (!o->user[0])
            snprintf(o->user, sizeof(o->user), "%s", key.user);
    }
    res = calloc(o->count + 1, sizeof(*res));
    if (!res) {
        sp_err_set(&e, SP_E_INTERNAL, "out of memory");
        o->cb(NULL, NULL, 0, &e, o->arg);
        goto done;
    }
    for (size_t i = 0; i < o->count; i++)
        resolve_one(o, r->element[i + 1], i, &res[i]);
    /* A miss that authenticated may be kept (wrong tokens never are); the
     * fill is sent before the callback, which may free the store. */
    if (o->ticket.armed)
        start_fill(o, r);
    o->cb(kp, res, o->count, NULL, o->arg);
    for (size_t i = 0; i < o->count; i++)
        sp_secret_free(res[i].secret);
    free(res);
done:
    if (kp)
        sp_wipe(kp, sizeof(*kp));
    resolve_op_free(o);
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* Answer from the cache when it can; otherwise send the script. */
static int send_or_hit(struct sp_store *s, struct resolve_op *o, int n, const char **argv,
                       const size_t *lens, struct sp_err *err)
{
    if (sp_cache_live(s)) {
        sp_cache_key(s, o->have_token ? o->tok.hash : NULL, n, argv, lens, o->ckey);
        if (sp_cache_lookup(s, o->ckey, on_resolve, o))
            return 0;
    }
    sp_cache_ticket(s, &o->ticket);
    if (o->ticket.armed && keep_args(o, n - 1, argv + 1, lens + 1) < 0)
        o->ticket.armed = 0;
    return sp_store_script(s, &script_resolve, 1, n, argv, lens, on_resolve, o, err);
}

int sp_store_resolve(struct sp_store *s, const char *key_token, size_t key_token_len,
                     const struct sp_caller *ctx, const struct sp_ref *refs, size_t count,
                     sp_store_resolve_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160];
    const char **argv = NULL;
    size_t *lens = NULL;
    char(*tkeys)[260] = NULL;
    struct resolve_op *o;
    int n = 0, rc = -1;
    const char *ws = ctx->workspace;

    if (count > 256)
        return sp_err_set(err, SP_E_BAD_REQUEST, "More than 256 references in one request");
    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->s = s;
    o->cb = cb;
    o->arg = arg;
    o->count = count;
    if (key_token) {
        if (sp_key_token_parse(key_token, key_token_len, &o->tok) < 0) {
            sp_err_set(err, SP_E_PROXY_AUTH_REQUIRED, "Invalid API key");
            goto fail;
        }
        o->have_token = 1;
        ws = o->tok.workspace;
    }
    if (!ws || sp_store_prefix(prefix, sizeof(prefix), ws) < 0) {
        sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
        goto fail;
    }
    snprintf(o->ws, sizeof(o->ws), "%s", ws);
    snprintf(o->user, sizeof(o->user), "%s", ctx->user ? ctx->user : "");
    o->names = calloc(count + 1, sizeof(char *));
    argv = calloc(6 + 2 * count, sizeof(*argv));
    lens = calloc(6 + 2 * count, sizeof(*lens));
    tkeys = calloc(count + 1, sizeof(*tkeys));
    if (!o->names || !argv || !lens || !tkeys) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
#define ARG(p) (argv[n] = nz(p), lens[n] = strlen(argv[n]), n++)
    ARG(prefix);
    ARG(o->have_token ? o->tok.id : "");
    ARG(ctx->key_id ? ctx->key_id : (o->have_token ? o->tok.id : ""));
    ARG(ctx->group);
    ARG(ctx->function);
    ARG(ctx->user);
#undef ARG
    for (size_t i = 0; i < count; i++) {
        if (refs[i].kind == SP_REF_NAMED) {
            o->names[i] = strndup(refs[i].text, refs[i].len);
            argv[n] = "n", lens[n++] = 1;
            argv[n] = refs[i].text, lens[n++] = refs[i].len;
        } else {
            /* Hash the token here; only its digest goes to Redis. */
            char full[260];
            sp_store_token_key(full, sizeof(full), "", refs[i].text, refs[i].len);
            memcpy(tkeys[i], full + 2, strlen(full + 2) + 1); /* strip "t:" */
            o->names[i] = strdup("$secret reference");
            argv[n] = "t", lens[n++] = 1;
            argv[n] = tkeys[i], lens[n++] = strlen(tkeys[i]);
        }
        if (!o->names[i]) {
            sp_err_set(err, SP_E_INTERNAL, "out of memory");
            goto fail;
        }
    }
    if (send_or_hit(s, o, n, argv, lens, err) < 0)
        goto fail;
    o = NULL;
    rc = 0;
fail:
    if (o)
        resolve_op_free(o);
    free(argv);
    free(lens);
    free(tkeys);
    return rc;
}
