/*
 * groups.c - groups of API keys within a workspace. A key bound to a group
 * resolves group:<id> secrets before function, user and workspace ones. A
 * group must exist before a key names it, and cannot be deleted while a key
 * still does.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* KEYS[1] group hash, KEYS[2] group set; ARGV: id, name, description, now. */
static struct sp_script script_group_create = {
    "group_create",
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  return redis.error_reply('SPERR conflict Group \\'' .. ARGV[1] .. '\\' already exists')\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'description', ARGV[3],\n"
    "  'created_at', ARGV[4])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n",
    ""};

/* KEYS[1] group hash, KEYS[2] group set, KEYS[3] key set; ARGV: id, prefix. */
static struct sp_script script_group_delete = {
    "group_delete",
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return redis.error_reply('SPERR not_found Group \\'' .. ARGV[1] .. '\\' not found')\n"
    "end\n"
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
    "  if redis.call('HGET', ARGV[2] .. 'k:' .. k, 'group') == ARGV[1] then\n"
    "    return redis.error_reply('SPERR conflict Group \\'' .. ARGV[1] ..\n"
    "      '\\' still has API keys; delete them first')\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return 1\n",
    ""};

/* KEYS[1] group set; ARGV[1] prefix. */
static struct sp_script script_group_list = {
    "group_list",
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local h = redis.call('HGETALL', ARGV[1] .. 'g:' .. id)\n"
    "  if #h > 0 then out[#out + 1] = h end\n"
    "end\n"
    "return out\n",
    ""};

struct group_op {
    sp_store_done_fn done_cb;
    sp_store_groups_fn list_cb;
    void *arg;
};

int sp_group_json(const struct sp_group *g, struct sp_buf *out, struct sp_err *err)
{
    char created[40];

    sp_time_format(created, sizeof(created), g->created_at);
    if (sp_buf_printf(out, err, "{\"id\":\"%s\",\"name\":\"", g->id) < 0 ||
        sp_json_escape(out, g->name, strlen(g->name), err) < 0 ||
        sp_buf_addstr(out, "\",\"description\":\"", err) < 0 ||
        sp_json_escape(out, g->description, strlen(g->description), err) < 0)
        return -1;
    return sp_buf_printf(out, err, "\",\"created_at\":\"%s\"}", created);
}

static void on_group_done(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct group_op *o = arg;
    struct sp_err e;

    if (err)
        o->done_cb(err, o->arg);
    else if (r->type == REDIS_REPLY_ERROR && sp_store_reply_error(r, &e))
        o->done_cb(&e, o->arg);
    else
        o->done_cb(NULL, o->arg);
    free(o);
}

static int run(struct sp_store *s, struct sp_script *sc, int nkeys, int argc, const char **argv,
               sp_store_reply_fn fn, struct group_op *o, struct sp_err *err)
{
    if (sp_store_script_strs(s, sc, nkeys, argc, argv, fn, o, err) < 0) {
        free(o);
        return -1;
    }
    return 0;
}

static struct group_op *op_new(void *arg, struct sp_err *err)
{
    struct group_op *o = calloc(1, sizeof(*o));

    if (!o)
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
    else
        o->arg = arg;
    return o;
}

int sp_store_group_create(struct sp_store *s, const char *ws, const struct sp_group *g,
                          sp_store_done_fn cb, void *arg, struct sp_err *err)
{
    char prefix[160], key[300], set[180], now[24];
    const char *argv[6];
    struct group_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (!sp_valid_name(g->id, strlen(g->id)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Group id must match [A-Za-z0-9_-]{1,128}");
    if (!(o = op_new(arg, err)))
        return -1;
    o->done_cb = cb;
    snprintf(key, sizeof(key), "%sg:%s", prefix, g->id);
    snprintf(set, sizeof(set), "%sgroups", prefix);
    snprintf(now, sizeof(now), "%lld", (long long)sp_now_ms());
    argv[0] = key, argv[1] = set, argv[2] = g->id, argv[3] = g->name, argv[4] = g->description,
    argv[5] = now;
    return run(s, &script_group_create, 2, 6, argv, on_group_done, o, err);
}

int sp_store_group_delete(struct sp_store *s, const char *ws, const char *id, sp_store_done_fn cb,
                          void *arg, struct sp_err *err)
{
    char prefix[160], key[300], set[180], keys[180];
    const char *argv[5];
    struct group_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0 || !sp_valid_name(id, strlen(id)))
        return sp_err_set(err, SP_E_NOT_FOUND, "Group not found");
    if (!(o = op_new(arg, err)))
        return -1;
    o->done_cb = cb;
    snprintf(key, sizeof(key), "%sg:%s", prefix, id);
    snprintf(set, sizeof(set), "%sgroups", prefix);
    snprintf(keys, sizeof(keys), "%skeys", prefix);
    argv[0] = key, argv[1] = set, argv[2] = keys, argv[3] = id, argv[4] = prefix;
    return run(s, &script_group_delete, 3, 5, argv, on_group_done, o, err);
}

static void field_str(char *dst, size_t sz, const redisReply *v)
{
    size_t n = (size_t)v->len < sz - 1 ? (size_t)v->len : sz - 1;

    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

static void on_group_list(struct redisReply *r, const struct sp_err *err, void *arg)
{
    struct group_op *o = arg;
    struct sp_err e;
    struct sp_group *groups = sp_store_rows(r, err, sizeof(*groups), &e);
    size_t n = 0;

    if (!groups) {
        o->list_cb(NULL, 0, &e, o->arg);
    } else {
        for (size_t i = 0; i < r->elements; i++, n++) {
            const redisReply *h = r->element[i];
            for (size_t j = 0; h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2) {
                const char *f = h->element[j]->str;
                const redisReply *v = h->element[j + 1];
                if (strcmp(f, "id") == 0)
                    field_str(groups[n].id, sizeof(groups[n].id), v);
                else if (strcmp(f, "name") == 0)
                    field_str(groups[n].name, sizeof(groups[n].name), v);
                else if (strcmp(f, "description") == 0)
                    field_str(groups[n].description, sizeof(groups[n].description), v);
                else if (strcmp(f, "created_at") == 0)
                    groups[n].created_at = strtoll(v->str, NULL, 10);
            }
        }
        o->list_cb(groups, n, NULL, o->arg);
    }
    free(groups);
    free(o);
}

int sp_store_group_list(struct sp_store *s, const char *ws, sp_store_groups_fn cb, void *arg,
                        struct sp_err *err)
{
    char prefix[160], set[180];
    const char *argv[2];
    struct group_op *o;

    if (sp_store_prefix(prefix, sizeof(prefix), ws) < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
    if (!(o = op_new(arg, err)))
        return -1;
    o->list_cb = cb;
    snprintf(set, sizeof(set), "%sgroups", prefix);
    argv[0] = set, argv[1] = prefix;
    return run(s, &script_group_list, 1, 2, argv, on_group_list, o, err);
}
