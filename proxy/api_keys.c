/*
 * api_keys.c - /v1/keys and /v1/keyring: API keys (a caller can grant only
 * permissions it holds; tokens are shown once) and key-ring rotation.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int key_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int parse_key_body(struct api_req *ar, struct sp_key *k, struct sp_err *err)
{
    static const char *const binds[] = {"group", "app", "env", "user", "function"};
    char *dst[] = {k->group, k->app, k->env, k->user, k->function};
    json_t *b = ar->body, *v;
    size_t i;

    memset(k, 0, sizeof(*k));
    v = json_object_get(b, "name");
    if (!json_is_string(v) || !key_name_ok(json_string_value(v)))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "'name' is required: 1 to 128 printable characters");
    snprintf(k->name, sizeof(k->name), "%s", json_string_value(v));
    v = json_object_get(b, "permissions");
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 16)
        return sp_err_set(err, SP_E_BAD_REQUEST, "'permissions' must be a non-empty array");
    {
        json_t *p;
        json_array_foreach(v, i, p)
        {
            const char *s = json_string_value(p);
            int bit = s ? sp_perm_parse(s, strlen(s)) : -1;
            if (bit < 0)
                return sp_err_set(err, SP_E_BAD_REQUEST,
                                  "Unknown permission (proxy, secrets:read, secrets:write, "
                                  "secrets:read_value, keys:admin, assert_context, root)");
            k->perms |= (unsigned)bit;
        }
    }
    for (i = 0; i < SP_ARRAY_LEN(binds); i++) {
        const char *s;
        if (!(v = json_object_get(b, binds[i])) || json_is_null(v))
            continue;
        s = json_string_value(v);
        if (!s || !sp_valid_name(s, strlen(s)))
            return sp_err_set(err, SP_E_BAD_REQUEST, "'%s' must match [A-Za-z0-9_-]{1,128}",
                              binds[i]);
        snprintf(dst[i], 129, "%s", s);
    }
    snprintf(k->workspace, sizeof(k->workspace), "%s", ar->ws);
    if ((v = json_object_get(b, "workspace"))) {
        const char *s = json_string_value(v);
        if (!(ar->key.perms & SP_PERM_ROOT))
            return sp_err_set(err, SP_E_FORBIDDEN,
                              "Only a root key may create keys in another "
                              "workspace");
        if (!s || !sp_valid_name(s, strlen(s)))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace");
        snprintf(k->workspace, sizeof(k->workspace), "%s", s);
    }
    /* No escalation: grant only what the caller holds. */
    if (k->perms & ~ar->key.perms) {
        unsigned extra = k->perms & ~ar->key.perms;
        return sp_err_set(err, SP_E_FORBIDDEN,
                          "A key cannot grant a permission it does not have ('%s')",
                          sp_perm_name(extra & (0u - extra)));
    }
    return 0;
}

static void on_key_created(const struct sp_key *key, const char *token, const struct sp_err *err,
                           void *arg)
{
    struct api_req *ar = arg;
    struct sp_buf b;
    struct sp_err e;

    if (err) {
        api_fail(ar, err);
        return;
    }
    snprintf(ar->audit_target, sizeof(ar->audit_target), "%s", key->id);
    /* The token is a credential: the reply buffer is wiped once sent. */
    sp_buf_init(&b, 0, 1);
    if (sp_buf_addstr(&b, "{\"key\":", &e) < 0 || sp_key_json(key, &b, &e) < 0 ||
        sp_buf_printf(&b, &e, ",\"token\":\"%s\"}\n", token) < 0) {
        sp_buf_free(&b);
        api_fail(ar, &e);
        return;
    }
    api_reply_secret(ar, 201, &b);
    sp_buf_free(&b);
}

void api_key_create(struct api_req *ar)
{
    struct sp_key k;
    struct sp_err err;

    if (parse_key_body(ar, &k, &err) < 0 ||
        sp_store_key_create(ar->api->store, &k, NULL, on_key_created, ar, &err) < 0)
        api_fail(ar, &err);
}

static int render_key(const void *k, struct sp_buf *out, struct sp_err *err)
{
    return sp_key_json(k, out, err);
}

static int render_group(const void *g, struct sp_buf *out, struct sp_err *err)
{
    return sp_group_json(g, out, err);
}

static void on_key_list(const struct sp_key *keys, size_t count, const struct sp_err *err,
                        void *arg)
{
    if (err)
        api_fail(arg, err);
    else
        api_reply_list(arg, "keys", keys, count, sizeof(*keys), render_key);
}

void api_key_list(struct api_req *ar)
{
    struct sp_err err;

    if (sp_store_key_list(ar->api->store, ar->ws, on_key_list, ar, &err) < 0)
        api_fail(ar, &err);
}

void api_key_delete(struct api_req *ar)
{
    struct sp_err err;

    snprintf(ar->audit_target, sizeof(ar->audit_target), "%.60s", ar->arg);
    if (!sp_valid_name(ar->arg, strlen(ar->arg)) || strlen(ar->arg) >= 40) {
        api_fail_code(ar, SP_E_NOT_FOUND, "API key not found");
        return;
    }
    if (sp_store_key_delete(ar->api->store, ar->ws, ar->arg, api_on_deleted, ar, &err) < 0)
        api_fail(ar, &err);
}

/* ---- groups ---- */

static void on_group_created(const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;
    struct sp_group g;

    if (err) {
        api_fail(ar, err);
        return;
    }
    memset(&g, 0, sizeof(g));
    snprintf(g.id, sizeof(g.id), "%s", json_string_value(json_object_get(ar->body, "id")));
    snprintf(g.name, sizeof(g.name), "%s",
             json_string_value(json_object_get(ar->body, "name"))
                 ? json_string_value(json_object_get(ar->body, "name"))
                 : g.id);
    snprintf(g.description, sizeof(g.description), "%s",
             json_string_value(json_object_get(ar->body, "description"))
                 ? json_string_value(json_object_get(ar->body, "description"))
                 : "");
    g.created_at = sp_now_ms();
    api_reply_one(ar, 201, "group", &g, render_group);
}

void api_group_create(struct api_req *ar)
{
    json_t *id = json_object_get(ar->body, "id"), *name = json_object_get(ar->body, "name");
    json_t *desc = json_object_get(ar->body, "description");
    struct sp_group g;
    struct sp_err err;

    if (!json_is_string(id) || !sp_valid_name(json_string_value(id), json_string_length(id))) {
        api_fail_code(ar, SP_E_BAD_REQUEST, "'id' is required: [A-Za-z0-9_-]{1,128}");
        return;
    }
    if ((name && (!json_is_string(name) || !key_name_ok(json_string_value(name)))) ||
        (desc && (!json_is_string(desc) || json_string_length(desc) > 1024))) {
        api_fail_code(ar, SP_E_BAD_REQUEST,
                      "'name' is 1 to 128 printable characters, 'description' at most 1024 bytes");
        return;
    }
    memset(&g, 0, sizeof(g));
    snprintf(g.id, sizeof(g.id), "%s", json_string_value(id));
    snprintf(g.name, sizeof(g.name), "%s", name ? json_string_value(name) : g.id);
    snprintf(g.description, sizeof(g.description), "%s", desc ? json_string_value(desc) : "");
    snprintf(ar->audit_target, sizeof(ar->audit_target), "%.60s", g.id);
    if (sp_store_group_create(ar->api->store, ar->ws, &g, on_group_created, ar, &err) < 0)
        api_fail(ar, &err);
}

static void on_group_list(const struct sp_group *groups, size_t count, const struct sp_err *err,
                          void *arg)
{
    if (err)
        api_fail(arg, err);
    else
        api_reply_list(arg, "groups", groups, count, sizeof(*groups), render_group);
}

void api_group_list(struct api_req *ar)
{
    struct sp_err err;

    if (sp_store_group_list(ar->api->store, ar->ws, on_group_list, ar, &err) < 0)
        api_fail(ar, &err);
}

void api_group_delete(struct api_req *ar)
{
    struct sp_err err;

    snprintf(ar->audit_target, sizeof(ar->audit_target), "%.60s", ar->arg);
    if (sp_store_group_delete(ar->api->store, ar->ws, ar->arg, api_on_deleted, ar, &err) < 0)
        api_fail(ar, &err);
}

/* ---- key ring ---- */

static int rotation_json(struct sp_buf *b, const struct sp_rotation_status *st, struct sp_err *err)
{
    char started[40] = "", finished[40] = "";

    if (st->started_at)
        sp_time_format(started, sizeof(started), st->started_at);
    if (st->finished_at)
        sp_time_format(finished, sizeof(finished), st->finished_at);
    return sp_buf_printf(
        b, err,
        "{\"running\":%s,\"target_version\":%d,\"reencrypted\":%llu,"
        "\"started_at\":%s%s%s,\"finished_at\":%s%s%s}",
        st->running ? "true" : "false", st->target_version, (unsigned long long)st->reencrypted,
        started[0] ? "\"" : "", started[0] ? started : "null", started[0] ? "\"" : "",
        finished[0] ? "\"" : "", finished[0] ? finished : "null", finished[0] ? "\"" : "");
}

static void on_rotation_done(const struct sp_rotation_status *st, const struct sp_err *err,
                             void *arg)
{
    struct sp_api *api = arg;

    api->rotating = 0;
    if (err)
        sp_log(SP_LOG_ERROR, NULL, "key rotation failed: %s", err->msg);
}

static void on_rotation_state(const struct sp_rotation_status *st, const struct sp_err *err,
                              void *arg)
{
    struct api_req *ar = arg;
    struct sp_api *api = ar->api;
    struct sp_rotation_status now;
    struct sp_buf b;
    struct sp_err e;

    if (err) {
        api_fail(ar, err);
        return;
    }
    if (st->running || api->rotating) {
        api_fail_code(ar, SP_E_CONFLICT, "A key rotation is already running");
        return;
    }
    if (sp_store_rotation_start(api->store, on_rotation_done, api, &e) < 0) {
        api_fail(ar, &e);
        return;
    }
    api->rotating = 1;
    memset(&now, 0, sizeof(now));
    now.running = 1;
    now.target_version = sp_keyring_current(api->kr) + 1;
    now.started_at = sp_now_ms();
    sp_buf_init(&b, 0, 0);
    if (sp_buf_addstr(&b, "{\"rotation\":", &e) < 0 || rotation_json(&b, &now, &e) < 0 ||
        sp_buf_addstr(&b, "}\n", &e) < 0) {
        sp_buf_free(&b);
        api_fail(ar, &e);
        return;
    }
    api_reply(ar, 202, &b);
    sp_buf_free(&b);
}

void api_keyring_rotate(struct api_req *ar)
{
    struct sp_err err;

    if (ar->api->rotating) {
        api_fail_code(ar, SP_E_CONFLICT, "A key rotation is already running");
        return;
    }
    if (sp_store_rotation_status(ar->api->store, on_rotation_state, ar, &err) < 0)
        api_fail(ar, &err);
}

static void on_status(const struct sp_rotation_status *st, const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;
    struct sp_buf b;
    struct sp_err e;

    if (err) {
        api_fail(ar, err);
        return;
    }
    sp_buf_init(&b, 0, 0);
    /* {"current":…,"wrapped":…,"versions":[…]} plus "rotation" */
    if (sp_keyring_status_json(ar->api->kr, &b, &e) < 0)
        goto fail;
    while (b.len > 0 && b.data[b.len - 1] != '}')
        b.len--;
    if (b.len < 2) {
        sp_err_set(&e, SP_E_INTERNAL, "key ring status is malformed");
        goto fail;
    }
    b.len--;
    b.data[b.len] = '\0';
    if (sp_buf_addstr(&b, ",\"rotation\":", &e) < 0 || rotation_json(&b, st, &e) < 0 ||
        sp_buf_addstr(&b, "}\n", &e) < 0)
        goto fail;
    api_reply(ar, 200, &b);
    sp_buf_free(&b);
    return;
fail:
    sp_buf_free(&b);
    api_fail(ar, &e);
}

void api_keyring_status(struct api_req *ar)
{
    struct sp_err err;

    if (sp_store_rotation_status(ar->api->store, on_status, ar, &err) < 0)
        api_fail(ar, &err);
}
