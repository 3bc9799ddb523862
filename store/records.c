/*
 * records.c - secrets and $secret: tokens as Redis hashes. Every write is one
 * Lua script, so the server increments `version` and applies the fields in
 * one step: concurrent writers never lose an update. Values are encrypted
 * before they leave this file and decrypted after they arrive; Redis only
 * ever holds "VERSION:base64(IV || ciphertext || tag)".
 */
#include "store_int.h"

#include <jansson.h>
#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"api",    "access", "credential", "api_key",
                                         "bearer", "oauth",  "aws"};

const char *sp_secret_type_name(enum sp_secret_type t)
{
    if ((unsigned)t >= SP_ARRAY_LEN(type_names))
        return "api";
    return type_names[t];
}

int sp_secret_type_parse(const char *s, enum sp_secret_type *out)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(type_names); i++) {
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum sp_secret_type)i;
            return 0;
        }
    }
    return -1;
}

int sp_scope_valid(const char *scope)
{
    static const char *const kinds[] = {"user:", "function:", "group:", "key:"};

    if (strcmp(scope, "workspace") == 0)
        return 1;
    for (size_t i = 0; i < SP_ARRAY_LEN(kinds); i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(scope, kinds[i], n) == 0)
            return sp_valid_name(scope + n, strlen(scope + n));
    }
    return 0;
}

int sp_store_prefix(char *out, size_t outsz, const char *ws)
{
    if (!ws || !sp_valid_name(ws, strlen(ws)))
        return -1;
    return snprintf(out, outsz, "sp:{%s}:", ws) < (int)outsz ? 0 : -1;
}

size_t sp_store_aad(char *out, size_t outsz, const char *ws, const char *scope, const char *name)
{
    size_t a = strlen(ws), b = strlen(scope), c = strlen(name);

    if (a + b + c + 2 > outsz)
        return 0;
    memcpy(out, ws, a);
    out[a] = '\0';
    memcpy(out + a + 1, scope, b);
    out[a + 1 + b] = '\0';
    memcpy(out + a + b + 2, name, c);
    return a + b + c + 2;
}

void sp_strlist_clear(struct sp_strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void sp_secret_meta_clear(struct sp_secret_meta *m)
{
    if (!m)
        return;
    free(m->description);
    sp_strlist_clear(&m->apps);
    sp_strlist_clear(&m->envs);
    sp_strlist_clear(&m->hosts);
    memset(m, 0, sizeof(*m));
}

void sp_secret_free(struct sp_secret *s)
{
    if (!s)
        return;
    sp_free_wiped(s->value, s->value_len);
    sp_secret_meta_clear(&s->meta);
    free(s);
}

int sp_store_reply_error(const struct redisReply *r, struct sp_err *err)
{
    /* Our scripts raise "SPERR <code> <message>". */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "SPERR ", 6) == 0) {
        const char *code = r->str + 6, *sp = strchr(code, ' ');
        size_t n = sp ? (size_t)(sp - code) : strlen(code);
        int c = sp_err_from_wire(code, n);
        return sp_err_set(err, c < 0 ? SP_E_INTERNAL : (enum sp_err_code)c, "%s",
                          sp ? sp + 1 : "refused");
    }
    if (r && r->type == REDIS_REPLY_ERROR)
        return sp_err_set(err, SP_E_INTERNAL, "store error: %.120s", r->str);
    return sp_err_set(err, SP_E_INTERNAL, "store: unexpected reply");
}

void *sp_store_rows(const struct redisReply *r, const struct sp_err *err, size_t size,
                    struct sp_err *e)
{
    void *rows;

    if (err) {
        *e = *err;
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        sp_store_reply_error(r, e);
        return NULL;
    }
    rows = calloc(r->elements + 1, size);
    if (!rows)
        sp_err_set(e, SP_E_INTERNAL, "out of memory");
    return rows;
}

/* ---- list fields as JSON arrays in the hash ---- */

static int strlist_from_json(const char *s, size_t n, struct sp_strlist *l)
{
    json_error_t je;
    json_t *a = json_loadb(s, n, 0, &je);
    size_t i;
    json_t *v;

    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    l->items = calloc(json_array_size(a) + 1, sizeof(char *));
    if (!l->items) {
        json_decref(a);
        return -1;
    }
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && (l->items[l->count] = strdup(json_string_value(v))))
            l->count++;
    }
    json_decref(a);
    return 0;
}

static int strlist_to_json(const struct sp_strlist *l, struct sp_buf *out, struct sp_err *err)
{
    if (sp_buf_addstr(out, "[", err) < 0)
        return -1;
    for (size_t i = 0; l && i < l->count; i++) {
        if ((i && sp_buf_addstr(out, ",", err) < 0) || sp_buf_addstr(out, "\"", err) < 0 ||
            sp_json_escape(out, l->items[i], strlen(l->items[i]), err) < 0 ||
            sp_buf_addstr(out, "\"", err) < 0)
            return -1;
    }
    return sp_buf_addstr(out, "]", err);
}

/* ---- metadata <-> hash ---- */

static int64_t field_int(const redisReply *v)
{
    return v->str ? strtoll(v->str, NULL, 10) : 0;
}

static void field_copy(char *dst, size_t dstsz, const redisReply *v)
{
    size_t n = v->len < dstsz - 1 ? (size_t)v->len : dstsz - 1;

    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

int sp_store_meta_from_reply(const struct redisReply *r, struct sp_secret_meta *m,
                             const struct redisReply **value, struct sp_err *err)
{
    memset(m, 0, sizeof(*m));
    if (value)
        *value = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return sp_err_set(err, SP_E_INTERNAL, "store: malformed record");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        const char *f = k->str;
        int bad = 0;

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f, "id") == 0)
            field_copy(m->id, sizeof(m->id), v);
        else if (strcmp(f, "ws") == 0)
            field_copy(m->workspace, sizeof(m->workspace), v);
        else if (strcmp(f, "scope") == 0)
            field_copy(m->scope, sizeof(m->scope), v);
        else if (strcmp(f, "name") == 0)
            field_copy(m->name, sizeof(m->name), v);
        else if (strcmp(f, "description") == 0)
            bad = !(m->description = strndup(v->str, (size_t)v->len));
        else if (strcmp(f, "type") == 0)
            bad = sp_secret_type_parse(v->str, &m->type) < 0;
        else if (strcmp(f, "apps") == 0)
            bad = strlist_from_json(v->str, (size_t)v->len, &m->apps) < 0;
        else if (strcmp(f, "envs") == 0)
            bad = strlist_from_json(v->str, (size_t)v->len, &m->envs) < 0;
        else if (strcmp(f, "hosts") == 0)
            bad = strlist_from_json(v->str, (size_t)v->len, &m->hosts) < 0;
        else if (strcmp(f, "expires_at") == 0)
            m->expires_at = field_int(v);
        else if (strcmp(f, "revoked") == 0)
            m->revoked = field_int(v) != 0;
        else if (strcmp(f, "created_at") == 0)
            m->created_at = field_int(v);
        else if (strcmp(f, "updated_at") == 0)
            m->updated_at = field_int(v);
        else if (strcmp(f, "version") == 0)
            m->version = field_int(v);
        else if (strcmp(f, "value") == 0) {
            m->key_version = sp_keyring_version_of(v->str, (size_t)v->len);
            if (value)
                *value = v;
        }
        if (bad) {
            sp_secret_meta_clear(m);
            return sp_err_set(err, SP_E_INTERNAL, "store: malformed field '%s'", f);
        }
    }
    if (!m->id[0] || !m->name[0]) {
        sp_secret_meta_clear(m);
        return sp_err_set(err, SP_E_INTERNAL, "store: record without identity");
    }
    return 0;
}

int sp_secret_meta_json(const struct sp_secret_meta *m, struct sp_buf *out, struct sp_err *err)
{
    char created[40], updated[40], expires[40];

    sp_time_format(created, sizeof(created), m->created_at);
    sp_time_format(updated, sizeof(updated), m->updated_at);
    if (m->expires_at)
        sp_time_format(expires, sizeof(expires), m->expires_at);
    if (sp_buf_printf(out, err, "{\"id\":\"%s\",\"name\":\"%s\",\"scope\":\"%s\",", m->id, m->name,
                      m->scope) < 0 ||
        sp_buf_printf(out, err, "\"workspace\":\"%s\",\"type\":\"%s\",\"description\":\"",
                      m->workspace, sp_secret_type_name(m->type)) < 0 ||
        sp_json_escape(out, m->description ? m->description : "",
                       m->description ? strlen(m->description) : 0, err) < 0 ||
        sp_buf_addstr(out, "\",\"apps\":", err) < 0 || strlist_to_json(&m->apps, out, err) < 0 ||
        sp_buf_addstr(out, ",\"envs\":", err) < 0 || strlist_to_json(&m->envs, out, err) < 0 ||
        sp_buf_addstr(out, ",\"hosts\":", err) < 0 || strlist_to_json(&m->hosts, out, err) < 0)
        return -1;
    if (m->expires_at ? sp_buf_printf(out, err, ",\"expires_at\":\"%s\"", expires)
                      : sp_buf_addstr(out, ",\"expires_at\":null", err))
        return -1;
    return sp_buf_printf(out, err,
                         ",\"revoked\":%s,\"created_at\":\"%s\",\"updated_at\":\"%s\","
                         "\"version\":%lld,\"key_version\":%d}",
                         m->revoked ? "true" : "false", created, updated, (long long)m->version,
                         m->key_version);
}

struct sp_secret *sp_store_decrypt(struct sp_store *s, const struct sp_secret_meta *meta,
                                   const struct redisReply *value, struct sp_err *err)
{
    struct sp_secret *sec;
    struct sp_buf pt;
    char aad[512];
    size_t aadlen;

    if (!value) {
        sp_err_set(err, SP_E_INTERNAL, "store: secret '%s' has no value", meta->name);
        return NULL;
    }
    aadlen = sp_store_aad(aad, sizeof(aad), meta->workspace, meta->scope, meta->name);
    sp_buf_init(&pt, SP_MAX_VALUE, 1);
    if (!aadlen ||
        sp_keyring_decrypt(s->kr, aad, aadlen, value->str, (size_t)value->len, &pt, err) < 0) {
        sp_buf_free(&pt);
        if (aadlen)
            sp_err_set(err, SP_E_INTERNAL, "cannot decrypt secret '%s'", meta->name);
        return NULL;
    }
    sec = calloc(1, sizeof(*sec));
    if (!sec) {
        sp_buf_free(&pt);
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    sec->meta = *meta;
    sec->value = (unsigned char *)sp_buf_steal(&pt, &sec->value_len);
    if (!sec->value) {
        free(sec);
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    return sec;
}

/* ---- scripts ---- */

/* KEYS[1] secret hash, KEYS[2] index. ARGV: mode, now, new id, ws, scope,
 * name, index member, then field/value pairs. */
static struct sp_script script_write = {
    "write",
    "local exists = redis.call('EXISTS', KEYS[1]) == 1\n"
    "if ARGV[1] == 'create' and exists then\n"
    "  return redis.error_reply('SPERR secret_exists Secret \\'' .. ARGV[6] .. '\\' already "
    "exists')\n"
    "end\n"
    "if ARGV[1] == 'update' and not exists then\n"
    "  return redis.error_reply('SPERR secret_not_found Secret \\'' .. ARGV[6] .. '\\' not "
    "found')\n"
    "end\n"
    "local has_value = false\n"
    "for i = 8, #ARGV, 2 do if ARGV[i] == 'value' then has_value = true end end\n"
    "if not exists then\n"
    "  if not has_value then\n"
    "    return redis.error_reply('SPERR bad_request A new secret needs a value')\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'id', ARGV[3], 'ws', ARGV[4], 'scope', ARGV[5],\n"
    "    'name', ARGV[6], 'created_at', ARGV[2], 'type', 'api', 'revoked', '0',\n"
    "    'expires_at', '0', 'description', '', 'apps', '[]', 'envs', '[]', 'hosts', '[]')\n"
    "  redis.call('ZADD', KEYS[2], 0, ARGV[7])\n"
    "end\n"
    "for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])\n"
    "redis.call('HINCRBY', KEYS[1], 'version', 1)\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    ""};

/* KEYS[1] secret hash, KEYS[2] index; ARGV[1] member, ARGV[2] name. */
static struct sp_script script_delete = {"delete",
                                         "if redis.call('DEL', KEYS[1]) == 0 then\n"
                                         "  return redis.error_reply('SPERR secret_not_found "
                                         "Secret \\'' .. ARGV[2] .. '\\' not found')\n"
                                         "end\n"
                                         "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                         "return 1\n",
                                         ""};

/* KEYS[1] index; ARGV: secret key prefix, min, max, limit. Values are
 * stripped so a list never carries ciphertext. */
static struct sp_script script_list = {
    "list",
    "local m = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, "
    "tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "for _, member in ipairs(m) do\n"
    "  local nl = string.find(member, '\\n', 1, true)\n"
    "  local h = redis.call('HGETALL', ARGV[1] .. string.sub(member, 1, nl - 1) .. ':' ..\n"
    "    string.sub(member, nl + 1))\n"
    "  local f = {}\n"
    "  for i = 1, #h, 2 do\n"
    "    if h[i] == 'value' then\n"
    "      f[#f + 1] = 'value'; f[#f + 1] = string.match(h[i + 1], '^[0-9]+:') or ''\n"
    "    else f[#f + 1] = h[i]; f[#f + 1] = h[i + 1] end\n"
    "  end\n"
    "  out[#out + 1] = f\n"
    "end\n"
    "return {out, m[#m] or ''}\n",
    ""};

/* KEYS[1] secret hash, KEYS[2] token hash; ARGV: ttl ms, user, scope, name. */
static struct sp_script script_mint = {
    "mint",
    "local id = redis.call('HGET', KEYS[1], 'id')\n"
    "if not id then\n"
    "  return redis.error_reply('SPERR secret_not_found Secret \\'' .. ARGV[4] .. '\\' not "
    "found')\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'id', id, 'scope', ARGV[3], 'name', ARGV[4], 'user', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[1])\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    ""};

/* ---- operations ---- */

struct op {
    struct sp_store *s;
    sp_store_meta_fn meta_cb;
    sp_store_secret_fn secret_cb;
    sp_store_done_fn done_cb;
    sp_store_list_fn list_cb;
    sp_store_token_fn token_cb;
    void *arg;
    char token[64];
    char name[129];
    size_t limit;
};

static struct op *op_new(struct sp_store *s, void *arg, struct sp_err *err)
{
    struct op *o = calloc(1, sizeof(*o));

    if (!o)
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
    else {
        o->s = s;
        o->arg = arg;
    }
    return o;
}

static void op_free(struct op *o)
{
    sp_wipe(o->token, sizeof(o->token));
    free(o);
}

static int check_identity(const char *ws, const char *scope, const char *name, char *prefix,
                          size_t prefixsz, struct sp_err *err)
{
    if (sp_store_prefix(prefix, prefixsz, ws) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (!sp_scope_valid(scope))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "Invalid scope (workspace, user:<id>, function:<name>, group:<id>, "
                          "key:<id>)");
    if (!sp_valid_name(name, strlen(name)))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "Invalid secret name (expected [A-Za-z0-9_-]{1,128})");
    return 0;
}

static void on_meta_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct op *o = arg;
    struct sp_secret_meta m;
    struct sp_err e;

    if (err) {
        o->meta_cb(NULL, err, o->arg);
    } else if (r->type == REDIS_REPLY_ERROR) {
        sp_store_reply_error(r, &e);
        o->meta_cb(NULL, &e, o->arg);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        sp_err_set(&e, SP_E_SECRET_NOT_FOUND, "Secret '%s' not found", o->name);
        o->meta_cb(NULL, &e, o->arg);
    } else if (sp_store_meta_from_reply(r, &m, NULL, &e) < 0) {
        o->meta_cb(NULL, &e, o->arg);
    } else {
        o->meta_cb(&m, NULL, o->arg);
        sp_secret_meta_clear(&m);
    }
    op_free(o);
}

/* Validate a write before anything is encrypted or sent. */
static int check_write(const struct sp_secret_write *w, enum sp_write_mode mode, struct sp_err *err)
{
    const struct sp_strlist *lists[3] = {w->apps, w->envs, w->hosts};

    if (w->has_value && w->value_len > SP_MAX_VALUE)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Secret value is larger than 64 KiB");
    if (mode != SP_WRITE_UPDATE && !w->has_value)
        return sp_err_set(err, SP_E_BAD_REQUEST, "A new secret needs a value");
    for (size_t i = 0; i < 3; i++)
        if (lists[i] && lists[i]->count > SP_MAX_LIST)
            return sp_err_set(err, SP_E_BAD_REQUEST, "At most %d entries in apps, envs or hosts",
                              SP_MAX_LIST);
    if (w->description && strlen(w->description) > 4096)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Description is longer than 4096 bytes");
    if (w->has_value && w->has_type && w->type == SP_SECRET_AWS) {
        json_error_t je;
        json_t *j = json_loadb((const char *)w->value, w->value_len, 0, &je);
        int ok = json_is_object(j) && json_is_string(json_object_get(j, "access_key_id")) &&
                 json_is_string(json_object_get(j, "secret_access_key")) &&
                 (!json_object_get(j, "session_token") ||
                  json_is_string(json_object_get(j, "session_token")));
        json_decref(j);
        sp_wipe(&je, sizeof(je));
        if (!ok)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "A secret of type aws holds JSON {\"access_key_id\", "
                              "\"secret_access_key\", \"session_token\"?}");
    }
    return 0;
}

int sp_store_secret_write(struct sp_store *s, const char *ws, const char *scope, const char *name,
                          enum sp_write_mode mode, const struct sp_secret_write *w,
                          sp_store_meta_fn cb, void *arg, struct sp_err *err)
{
    static const char *const modes[] = {"", "upsert", "create", "update"};
    char prefix[160], key[560], idx[180], member[300], now[24], id[40], exp[24], rev[2];
    char aad[512];
    struct sp_buf enc, apps, envs, hosts;
    const char *argv[32];
    size_t lens[32], aadlen;
    int n = 0, rc = -1;
    struct op *o;

    if (check_identity(ws, scope, name, prefix, sizeof(prefix), err) < 0 ||
        check_write(w, mode, err) < 0)
        return -1;
    sp_buf_init(&enc, 0, 0);
    sp_buf_init(&apps, 0, 0);
    sp_buf_init(&envs, 0, 0);
    sp_buf_init(&hosts, 0, 0);
    snprintf(key, sizeof(key), "%ss:%s:%s", prefix, scope, name);
    snprintf(idx, sizeof(idx), "%sidx", prefix);
    snprintf(member, sizeof(member), "%s\n%s", scope, name);
    snprintf(now, sizeof(now), "%lld", (long long)sp_now_ms());
    if (sp_random_token(id, sizeof(id), 16, err) < 0)
        goto fail;
#define ARG(p, l) (argv[n] = (p), lens[n] = (l), n++)
#define ARGS(p) ARG(p, strlen(p))
    ARGS(key);
    ARGS(idx);
    ARGS(modes[mode]);
    ARGS(now);
    ARGS(id);
    ARGS(ws);
    ARGS(scope);
    ARGS(name);
    ARGS(member);
    if (w->has_value) {
        aadlen = sp_store_aad(aad, sizeof(aad), ws, scope, name);
        if (sp_keyring_encrypt(s->kr, aad, aadlen, w->value, w->value_len, &enc, err) < 0)
            goto fail;
        ARGS("value");
        ARG(enc.data, enc.len);
    }
    if (w->description) {
        ARGS("description");
        ARGS(w->description);
    }
    if (w->has_type) {
        ARGS("type");
        ARGS(sp_secret_type_name(w->type));
    }
    {
        const struct sp_strlist *lists[3] = {w->apps, w->envs, w->hosts};
        static const char *const names[3] = {"apps", "envs", "hosts"};
        struct sp_buf *bufs[3] = {&apps, &envs, &hosts};
        for (int i = 0; i < 3; i++) {
            if (!lists[i])
                continue;
            if (strlist_to_json(lists[i], bufs[i], err) < 0)
                goto fail;
            ARGS(names[i]);
            ARG(bufs[i]->data, bufs[i]->len);
        }
    }
    if (w->has_expires) {
        snprintf(exp, sizeof(exp), "%lld", (long long)w->expires_at);
        ARGS("expires_at");
        ARGS(exp);
    }
    if (w->has_revoked) {
        snprintf(rev, sizeof(rev), "%d", w->revoked ? 1 : 0);
        ARGS("revoked");
        ARGS(rev);
    }
#undef ARGS
#undef ARG
    o = op_new(s, arg, err);
    if (!o)
        goto fail;
    o->meta_cb = cb;
    snprintf(o->name, sizeof(o->name), "%s", name);
    if (sp_store_script(s, &script_write, 2, n, argv, lens, on_meta_reply, o, err) < 0) {
        op_free(o);
        goto fail;
    }
    rc = 0;
    /* Remember the workspace for rotation and root listings (its own slot). */
    {
        const char *sa[3] = {"SADD", "sp:workspaces", ws};
        size_t sl[3] = {4, 13, strlen(ws)};
        sp_store_fire(s, 3, sa, sl);
    }
fail:
    sp_wipe(aad, sizeof(aad));
    sp_buf_free(&enc);
    sp_buf_free(&apps);
    sp_buf_free(&envs);
    sp_buf_free(&hosts);
    return rc;
}

/* HGETALL of one secret's hash, answered through fn with o. */
static int hgetall_secret(struct sp_store *s, const char *ws, const char *scope, const char *name,
                          sp_store_reply_fn fn, struct op *o, struct sp_err *err)
{
    char prefix[160], key[560];
    const char *argv[2];
    size_t lens[2];

    if (check_identity(ws, scope, name, prefix, sizeof(prefix), err) < 0)
        goto fail;
    snprintf(key, sizeof(key), "%ss:%s:%s", prefix, scope, name);
    argv[0] = "HGETALL", lens[0] = 7;
    argv[1] = key, lens[1] = strlen(key);
    snprintf(o->name, sizeof(o->name), "%s", name);
    if (sp_store_command(s, fn, o, 2, argv, lens, err) < 0)
        goto fail;
    return 0;
fail:
    op_free(o);
    return -1;
}

int sp_store_secret_meta(struct sp_store *s, const char *ws, const char *scope, const char *name,
                         sp_store_meta_fn cb, void *arg, struct sp_err *err)
{
    struct op *o = op_new(s, arg, err);

    if (!o)
        return -1;
    o->meta_cb = cb;
    return hgetall_secret(s, ws, scope, name, on_meta_reply, o, err);
}

static void on_get_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct op *o = arg;
    struct sp_secret_meta m;
    const redisReply *value;
    struct sp_secret *sec;
    struct sp_err e;

    if (err) {
        o->secret_cb(NULL, err, o->arg);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        sp_err_set(&e, SP_E_SECRET_NOT_FOUND, "Secret '%s' not found", o->name);
        o->secret_cb(NULL, &e, o->arg);
    } else if (sp_store_meta_from_reply(r, &m, &value, &e) < 0) {
        o->secret_cb(NULL, &e, o->arg);
    } else if (!(sec = sp_store_decrypt(o->s, &m, value, &e))) {
        sp_secret_meta_clear(&m);
        o->secret_cb(NULL, &e, o->arg);
    } else {
        o->secret_cb(sec, NULL, o->arg);
    }
    op_free(o);
}

int sp_store_secret_get(struct sp_store *s, const char *ws, const char *scope, const char *name,
                        sp_store_secret_fn cb, void *arg, struct sp_err *err)
{
    struct op *o = op_new(s, arg, err);

    if (!o)
        return -1;
    o->secret_cb = cb;
    return hgetall_secret(s, ws, scope, name, on_get_reply, o, err);
}

static void on_done_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct op *o = arg;
    struct sp_err e;

    if (err)
        o->done_cb(err, o->arg);
    else if (r->type == REDIS_REPLY_ERROR && sp_store_reply_error(r, &e))
        o->done_cb(&e, o->arg);
    else
        o->done_cb(NULL, o->arg);
    op_free(o);
}

int sp_store_secret_delete(struct sp_store *s, const char *ws, const char *scope, const char *name,
                           sp_store_done_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160], key[560], idx[180], member[300];
    const char *argv[4];
    struct op *o;

    if (check_identity(ws, scope, name, prefix, sizeof(prefix), err) < 0)
        return -1;
    snprintf(key, sizeof(key), "%ss:%s:%s", prefix, scope, name);
    snprintf(idx, sizeof(idx), "%sidx", prefix);
    snprintf(member, sizeof(member), "%s\n%s", scope, name);
    argv[0] = key, argv[1] = idx, argv[2] = member, argv[3] = name;
    if (!(o = op_new(s, arg, err)))
        return -1;
    o->done_cb = cb;
    if (sp_store_script_strs(s, &script_delete, 2, 4, argv, on_done_reply, o, err) < 0) {
        op_free(o);
        return -1;
    }
    return 0;
}

static void on_list_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct op *o = arg;
    struct sp_secret_meta *items = NULL;
    struct sp_err e;
    size_t n = 0;
    char cursor[600] = "";

    if (err) {
        o->list_cb(NULL, 0, NULL, err, o->arg);
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        sp_store_reply_error(r, &e);
        o->list_cb(NULL, 0, NULL, &e, o->arg);
        goto done;
    }
    items = sp_store_rows(r->element[0], NULL, sizeof(*items), &e);
    if (!items) {
        o->list_cb(NULL, 0, NULL, &e, o->arg);
        goto done;
    }
    for (size_t i = 0; i < r->element[0]->elements; i++)
        if (sp_store_meta_from_reply(r->element[0]->element[i], &items[n], NULL, NULL) == 0)
            n++;
    /* A full page may have more behind it; a short one is the last. */
    if (r->element[0]->elements == o->limit && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[1]->len > 0 && (size_t)r->element[1]->len < sizeof(cursor) / 2)
        sp_base64_encode(cursor, r->element[1]->str, (size_t)r->element[1]->len);
    /* URL-safe cursor. */
    for (char *p = cursor; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p == '=' ? '\0' : *p;
    o->list_cb(items, n, cursor[0] ? cursor : NULL, NULL, o->arg);
done:
    for (size_t i = 0; i < n; i++)
        sp_secret_meta_clear(&items[i]);
    free(items);
    op_free(o);
}

int sp_store_secret_list(struct sp_store *s, const char *ws, const char *scope, const char *cursor,
                         size_t limit, sp_store_list_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160], idx[180], spfx[180], min[600], max[300], lim[16];
    const char *argv[5];
    struct op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (scope && !sp_scope_valid(scope))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid scope");
    if (limit == 0 || limit > 1000)
        limit = 1000;
    snprintf(idx, sizeof(idx), "%sidx", prefix);
    snprintf(spfx, sizeof(spfx), "%ss:", prefix);
    snprintf(max, sizeof(max), scope ? "[%s\n\xff" : "+", scope);
    if (cursor && *cursor) {
        char raw[450];
        size_t rawlen;
        if (strlen(cursor) > 590 || sp_base64_decode(raw, &rawlen, cursor, strlen(cursor)) < 0 ||
            rawlen >= sizeof(raw) - 1 || memchr(raw, '\0', rawlen))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid cursor");
        raw[rawlen] = '\0';
        snprintf(min, sizeof(min), "(%s", raw);
    } else {
        snprintf(min, sizeof(min), scope ? "[%s\n" : "-", scope);
    }
    snprintf(lim, sizeof(lim), "%zu", limit);
    argv[0] = idx, argv[1] = spfx, argv[2] = min, argv[3] = max, argv[4] = lim;
    if (!(o = op_new(s, arg, err)))
        return -1;
    o->list_cb = cb;
    o->limit = limit;
    if (sp_store_script_strs(s, &script_list, 1, 5, argv, on_list_reply, o, err) < 0) {
        op_free(o);
        return -1;
    }
    return 0;
}

static void on_mint_reply(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct op *o = arg;
    struct sp_secret_meta m;
    struct sp_err e;

    if (err) {
        o->token_cb(NULL, NULL, err, o->arg);
    } else if (r->type == REDIS_REPLY_ERROR) {
        sp_store_reply_error(r, &e);
        o->token_cb(NULL, NULL, &e, o->arg);
    } else if (sp_store_meta_from_reply(r, &m, NULL, &e) < 0) {
        o->token_cb(NULL, NULL, &e, o->arg);
    } else {
        o->token_cb(o->token, &m, NULL, o->arg);
        sp_secret_meta_clear(&m);
    }
    op_free(o);
}

/* Token records are keyed by SHA-256 of the token: a Redis dump does not
 * hand out usable references. */
void sp_store_token_key(char *out, size_t outsz, const char *prefix, const char *token, size_t len)
{
    unsigned char d[32];
    char hx[65];

    mbedtls_sha256_ret((const unsigned char *)token, len, d, 0);
    sp_hex_encode(hx, d, sizeof(d));
    snprintf(out, outsz, "%st:%s", prefix, hx);
}

int sp_store_token_mint(struct sp_store *s, const char *ws, const char *scope, const char *name,
                        const char *user, int64_t ttl_ms, sp_store_token_fn cb, void *arg,
                        struct sp_err *err)
{
    char prefix[160], key[560], tkey[260], ttl[24];
    const char *argv[6];
    struct op *o;

    if (check_identity(ws, scope, name, prefix, sizeof(prefix), err) < 0)
        return -1;
    if (user && *user && !sp_valid_name(user, strlen(user)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid user id");
    if (ttl_ms < 1000 || ttl_ms > 7LL * 86400 * 1000)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Reference lifetime must be 1 s to 7 days");
    if (!(o = op_new(s, arg, err)))
        return -1;
    o->token_cb = cb;
    /* 32 random bytes: 256 bits, 43 characters of [A-Za-z0-9_-]. */
    if (sp_random_token(o->token, sizeof(o->token), 32, err) < 0) {
        op_free(o);
        return -1;
    }
    sp_store_token_key(tkey, sizeof(tkey), prefix, o->token, strlen(o->token));
    snprintf(key, sizeof(key), "%ss:%s:%s", prefix, scope, name);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    argv[0] = key, argv[1] = tkey, argv[2] = ttl, argv[3] = user ? user : "", argv[4] = scope,
    argv[5] = name;
    if (sp_store_script_strs(s, &script_mint, 2, 6, argv, on_mint_reply, o, err) < 0) {
        op_free(o);
        return -1;
    }
    return 0;
}

/* ---- complete view ---- */

/* KEYS[1] index; ARGV[1] secret key prefix, ARGV[2] name. */
static struct sp_script script_complete = {
    "complete",
    "local out = {}\n"
    "local cursor = '0'\n"
    "repeat\n"
    "  local r = redis.call('ZSCAN', KEYS[1], cursor, 'MATCH', '*\\n' .. ARGV[2], 'COUNT', 1000)\n"
    "  cursor = r[1]\n"
    "  for i = 1, #r[2], 2 do\n"
    "    local m = r[2][i]\n"
    "    local nl = string.find(m, '\\n', 1, true)\n"
    "    out[#out + 1] = redis.call('HGETALL', ARGV[1] .. string.sub(m, 1, nl - 1) .. ':' ..\n"
    "      string.sub(m, nl + 1))\n"
    "  end\n"
    "until cursor == '0'\n"
    "return out\n",
    ""};

struct complete_op {
    struct sp_store *s;
    sp_store_secrets_fn cb;
    void *arg;
    int with_values;
};

static void on_complete(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct complete_op *o = arg;
    struct sp_secret **items = NULL;
    size_t n = 0;
    struct sp_err e;

    if (err) {
        o->cb(NULL, 0, err, o->arg);
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        sp_store_reply_error(r, &e);
        o->cb(NULL, 0, &e, o->arg);
        goto done;
    }
    items = calloc(r->elements + 1, sizeof(*items));
    if (!items) {
        sp_err_set(&e, SP_E_INTERNAL, "out of memory");
        o->cb(NULL, 0, &e, o->arg);
        goto done;
    }
    for (size_t i = 0; i < r->elements; i++) {
        struct sp_secret_meta m;
        const redisReply *value;
        if (sp_store_meta_from_reply(r->element[i], &m, &value, NULL) < 0)
            continue;
        if (o->with_values) {
            items[n] = sp_store_decrypt(o->s, &m, value, &e);
            if (!items[n]) {
                sp_secret_meta_clear(&m);
                continue;
            }
        } else if ((items[n] = calloc(1, sizeof(**items))) != NULL) {
            items[n]->meta = m;
        } else {
            sp_secret_meta_clear(&m);
            continue;
        }
        n++;
    }
    o->cb(items, n, NULL, o->arg);
    for (size_t i = 0; i < n; i++)
        sp_secret_free(items[i]);
    free(items);
done:
    free(o);
}

int sp_store_secret_complete(struct sp_store *s, const char *ws, const char *name, int with_values,
                             sp_store_secrets_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160], idx[180], spfx[180];
    const char *argv[3];
    struct complete_op *o;

    if (check_identity(ws, "workspace", name, prefix, sizeof(prefix), err) < 0)
        return -1;
    if (!(o = calloc(1, sizeof(*o))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->s = s;
    o->cb = cb;
    o->arg = arg;
    o->with_values = with_values;
    snprintf(idx, sizeof(idx), "%sidx", prefix);
    snprintf(spfx, sizeof(spfx), "%ss:", prefix);
    argv[0] = idx, argv[1] = spfx, argv[2] = name;
    if (sp_store_script_strs(s, &script_complete, 1, 3, argv, on_complete, o, err) < 0) {
        free(o);
        return -1;
    }
    return 0;
}
