/*
 * api_secrets.c - the /v1/secrets handlers: body validation, then one or
 * two store calls (write, then mint a reference), then the reply. Values
 * pass through here only in sensitive buffers and only to the store or to
 * the one /value reply.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TTL_S (10LL * 365 * 86400)

/* A parsed secret body. List items point into ar->body (alive until the
 * request ends). */
struct secret_op {
    struct api_req *ar;
    struct sp_secret_write w;
    struct sp_buf value; /* sensitive */
    struct sp_strlist lists[3];
    char name[130];
    int64_t ref_ttl_ms;
    int created;
    struct sp_buf meta; /* rendered metadata, waiting for the reference */
};

static struct secret_op *op_new(struct api_req *ar)
{
    struct secret_op *op = calloc(1, sizeof(*op));

    if (!op) {
        api_fail_code(ar, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    op->ar = ar;
    sp_buf_init(&op->value, SP_MAX_VALUE, 1);
    sp_buf_init(&op->meta, 0, 0);
    op->ref_ttl_ms = ar->api->conf->secrets_ref_ttl.i;
    snprintf(op->name, sizeof(op->name), "%s", ar->arg);
    return op;
}

static void op_free(struct secret_op *op)
{
    for (int i = 0; i < 3; i++)
        free(op->lists[i].items);
    sp_buf_free(&op->value);
    sp_buf_free(&op->meta);
    free(op);
}

static void op_fail(struct secret_op *op, const struct sp_err *err)
{
    api_fail(op->ar, err);
    op_free(op);
}

static int parse_list(json_t *a, const char *field, struct sp_strlist *out, struct sp_err *err)
{
    size_t i;
    json_t *v;

    if (!json_is_array(a))
        return sp_err_set(err, SP_E_BAD_REQUEST, "'%s' must be an array of strings", field);
    if (json_array_size(a) > SP_MAX_LIST)
        return sp_err_set(err, SP_E_BAD_REQUEST, "'%s' has more than %d entries", field,
                          SP_MAX_LIST);
    out->items = calloc(json_array_size(a) + 1, sizeof(char *));
    if (!out->items)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            return sp_err_set(err, SP_E_BAD_REQUEST, "'%s' must be an array of strings", field);
        if (strcmp(field, "hosts") == 0 ? !api_host_entry_ok(s) : !sp_valid_name(s, strlen(s)))
            return sp_err_set(err, SP_E_BAD_REQUEST, "'%s' entry '%.60s' is not valid%s", field, s,
                              strcmp(field, "hosts") == 0 ? " (a host name or a PCRE2 pattern)"
                                                          : " (expected [A-Za-z0-9_-]{1,128})");
        out->items[out->count++] = (char *)s;
    }
    return 0;
}

static int parse_value(struct secret_op *op, json_t *b, struct sp_err *err)
{
    json_t *v = json_object_get(b, "value"), *v64 = json_object_get(b, "value_base64");

    if (v && v64)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Give 'value' or 'value_base64', not both");
    if (v) {
        if (!json_is_string(v))
            return sp_err_set(err, SP_E_BAD_REQUEST, "'value' must be a string");
        if (json_string_length(v) > SP_MAX_VALUE)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Secret value is larger than 64 KiB");
        if (sp_buf_add(&op->value, json_string_value(v), json_string_length(v), err) < 0)
            return -1;
    } else if (v64) {
        const char *s = json_string_value(v64);
        size_t n, outlen;
        if (!s)
            return sp_err_set(err, SP_E_BAD_REQUEST, "'value_base64' must be a string");
        n = json_string_length(v64);
        if (sp_base64_dec_max(n) > SP_MAX_VALUE + 3)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Secret value is larger than 64 KiB");
        if (sp_buf_reserve(&op->value, sp_base64_dec_max(n), err) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Secret value is larger than 64 KiB");
        if (sp_base64_decode(op->value.data, &outlen, s, n) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "'value_base64' is not valid base64");
        if (outlen > SP_MAX_VALUE)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Secret value is larger than 64 KiB");
        op->value.len = outlen;
    } else {
        return 0;
    }
    op->w.value = (const unsigned char *)op->value.data;
    op->w.value_len = op->value.len;
    op->w.has_value = 1;
    return 0;
}

static int parse_expiry(struct secret_op *op, json_t *b, int patch, struct sp_err *err)
{
    json_t *exp = json_object_get(b, "expires_at"), *ttl = json_object_get(b, "ttl");
    int64_t ms;

    if (exp && ttl)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Give 'expires_at' or 'ttl', not both");
    if (exp && json_is_null(exp) && patch) {
        op->w.has_expires = 1;
        op->w.expires_at = 0;
    } else if (exp) {
        if (!json_is_string(exp) || sp_time_parse(json_string_value(exp), &ms) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "'expires_at' must be an RFC 3339 time such as "
                              "2030-01-01T00:00:00Z");
        if (ms <= sp_now_ms())
            return sp_err_set(err, SP_E_BAD_REQUEST, "'expires_at' is in the past");
        op->w.has_expires = 1;
        op->w.expires_at = ms;
    } else if (ttl) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) <= 0 ||
            json_integer_value(ttl) > MAX_TTL_S)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "'ttl' must be a whole number of seconds, 1 to %lld", MAX_TTL_S);
        op->w.has_expires = 1;
        op->w.expires_at = sp_now_ms() + json_integer_value(ttl) * 1000;
    }
    return 0;
}

/* Every field of a secret body; the route's field list has already
 * refused unknown ones. */
static int parse_secret_body(struct secret_op *op, int patch, struct sp_err *err)
{
    static const char *const lists[3] = {"apps", "envs", "hosts"};
    json_t *b = op->ar->body, *v;

    if (!b)
        return 0;
    if (parse_value(op, b, err) < 0 || parse_expiry(op, b, patch, err) < 0)
        return -1;
    if ((v = json_object_get(b, "description"))) {
        if (!json_is_string(v) || json_string_length(v) > 4096)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "'description' must be a string of at most 4096 bytes");
        op->w.description = json_string_value(v);
    }
    if ((v = json_object_get(b, "type"))) {
        if (!json_is_string(v) || sp_secret_type_parse(json_string_value(v), &op->w.type) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "'type' must be one of api, access, credential, api_key, bearer, "
                              "oauth, aws");
        op->w.has_type = 1;
    }
    for (int i = 0; i < 3; i++) {
        if (!(v = json_object_get(b, lists[i])))
            continue;
        if (parse_list(v, lists[i], &op->lists[i], err) < 0)
            return -1;
    }
    op->w.apps = json_object_get(b, "apps") ? &op->lists[0] : NULL;
    op->w.envs = json_object_get(b, "envs") ? &op->lists[1] : NULL;
    op->w.hosts = json_object_get(b, "hosts") ? &op->lists[2] : NULL;
    if ((v = json_object_get(b, "revoked"))) {
        if (!json_is_boolean(v))
            return sp_err_set(err, SP_E_BAD_REQUEST, "'revoked' must be true or false");
        op->w.has_revoked = 1;
        op->w.revoked = json_is_true(v);
    }
    if ((v = json_object_get(b, "ref_ttl"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 604800)
            return sp_err_set(err, SP_E_BAD_REQUEST, "'ref_ttl' must be 1 to 604800 seconds");
        op->ref_ttl_ms = json_integer_value(v) * 1000;
    }
    return 0;
}

static int meta_live(const struct sp_secret_meta *m)
{
    return !m->revoked && (!m->expires_at || m->expires_at > sp_now_ms());
}

/* {"secret":{…},"reference":"$secret:…"|null} */
static void reply_with_reference(struct secret_op *op, const char *token)
{
    struct sp_buf b;

    sp_buf_init(&b, 0, 0);
    if (sp_buf_addstr(&b, "{\"secret\":", NULL) < 0 ||
        sp_buf_add(&b, op->meta.data, op->meta.len, NULL) < 0 ||
        (token ? sp_buf_printf(&b, NULL, ",\"reference\":\"$secret:%s\"}\n", token)
               : sp_buf_addstr(&b, ",\"reference\":null}\n", NULL)) < 0) {
        sp_buf_free(&b);
        api_fail_code(op->ar, SP_E_INTERNAL, "out of memory");
        op_free(op);
        return;
    }
    api_reply(op->ar, op->created ? 201 : 200, &b);
    sp_buf_free(&b);
    op_free(op);
}

static void on_minted(const char *token, const struct sp_secret_meta *m, const struct sp_err *err,
                      void *arg)
{
    struct secret_op *op = arg;

    if (err) {
        op_fail(op, err);
        return;
    }
    reply_with_reference(op, token);
}

/* Render meta, then mint a fresh reference if the secret is usable. A
 * user-scoped secret's reference is bound to that user. */
static void meta_then_mint(struct secret_op *op, const struct sp_secret_meta *m)
{
    struct api_req *ar = op->ar;
    struct sp_err err;
    const char *user = strncmp(m->scope, "user:", 5) == 0 ? m->scope + 5 : NULL;

    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", m->name);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", m->scope);
    if (sp_secret_meta_json(m, &op->meta, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    if (!meta_live(m)) {
        reply_with_reference(op, NULL);
        return;
    }
    if (sp_store_token_mint(ar->api->store, ar->ws, m->scope, m->name, user, op->ref_ttl_ms,
                            on_minted, op, &err) < 0)
        op_fail(op, &err);
}

static void on_written_mint(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct secret_op *op = arg;

    if (err) {
        op_fail(op, err);
        return;
    }
    meta_then_mint(op, m);
}

static void write_secret(struct api_req *ar, const char *name, enum sp_write_mode mode)
{
    struct secret_op *op = op_new(ar);
    struct sp_err err;

    if (!op)
        return;
    snprintf(op->name, sizeof(op->name), "%s", name);
    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", name);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", ar->scope);
    op->created = mode == SP_WRITE_CREATE;
    if (!sp_valid_name(name, strlen(name))) {
        sp_err_set(&err, SP_E_BAD_REQUEST, "Invalid secret name (expected [A-Za-z0-9_-]{1,128})");
        op_fail(op, &err);
        return;
    }
    if (parse_secret_body(op, 0, &err) < 0 ||
        sp_store_secret_write(ar->api->store, ar->ws, ar->scope, name, mode, &op->w,
                              on_written_mint, op, &err) < 0)
        op_fail(op, &err);
}

void api_secret_put(struct api_req *ar)
{
    write_secret(ar, ar->arg, SP_WRITE_UPSERT);
}

void api_secret_create(struct api_req *ar)
{
    json_t *n = json_object_get(ar->body, "name");

    if (!json_is_string(n)) {
        api_fail_code(ar, SP_E_BAD_REQUEST, "'name' is required");
        return;
    }
    write_secret(ar, json_string_value(n), SP_WRITE_CREATE);
}

static void on_meta_for_get(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct secret_op *op = arg;

    if (err) {
        op_fail(op, err);
        return;
    }
    meta_then_mint(op, m);
}

void api_secret_get(struct api_req *ar)
{
    struct secret_op *op = op_new(ar);
    const char *t = api_param(ar, "ref_ttl");
    struct sp_err err;

    if (!op)
        return;
    if (t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end || end == t || v < 1 || v > 604800) {
            sp_err_set(&err, SP_E_BAD_REQUEST, "'ref_ttl' must be 1 to 604800 seconds");
            op_fail(op, &err);
            return;
        }
        op->ref_ttl_ms = (int64_t)v * 1000;
    }
    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", ar->arg);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", ar->scope);
    if (sp_store_secret_meta(ar->api->store, ar->ws, ar->scope, ar->arg, on_meta_for_get, op,
                             &err) < 0)
        op_fail(op, &err);
}

/* ---- value ---- */

static int is_utf8_text(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0 || len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        if ((len == 2 && c < 0xC2) || (len == 3 && c == 0xE0 && s[i + 1] < 0xA0) ||
            (len == 3 && c == 0xED && s[i + 1] >= 0xA0) ||
            (len == 4 &&
             ((c == 0xF0 && s[i + 1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[i + 1] >= 0x90))))
            return 0;
        i += len;
    }
    return 1;
}

/* "value":"<JSON string>" for UTF-8 text, else "value_base64":"...". */
static int append_value(struct sp_buf *b, const unsigned char *v, size_t n, struct sp_err *err)
{
    if (is_utf8_text(v, n))
        return sp_buf_addstr(b, "\"value\":\"", err) < 0 ||
                       sp_json_escape(b, (const char *)v, n, err) < 0 ||
                       sp_buf_addstr(b, "\"", err) < 0
                   ? -1
                   : 0;
    if (sp_buf_addstr(b, "\"value_base64\":\"", err) < 0 ||
        sp_buf_reserve(b, sp_base64_enc_len(n) + 2, err) < 0)
        return -1;
    b->len += sp_base64_encode(b->data + b->len, v, n);
    return sp_buf_addstr(b, "\"", err);
}

static void on_value(struct sp_secret *sec, const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;
    struct sp_buf b;
    struct sp_err e;

    if (err) {
        api_fail(ar, err);
        return;
    }
    if (sec->meta.revoked) {
        api_fail_code(ar, SP_E_SECRET_REVOKED, "Secret '%s' has been revoked", sec->meta.name);
        sp_secret_free(sec);
        return;
    }
    if (sec->meta.expires_at && sec->meta.expires_at <= sp_now_ms()) {
        api_fail_code(ar, SP_E_SECRET_EXPIRED, "Secret '%s' has expired", sec->meta.name);
        sp_secret_free(sec);
        return;
    }
    sp_buf_init(&b, 0, 1);
    if (sp_buf_addstr(&b, "{", &e) < 0 || append_value(&b, sec->value, sec->value_len, &e) < 0 ||
        sp_buf_addstr(&b, "}\n", &e) < 0)
        goto fail;
    sp_secret_free(sec);
    api_reply_secret(ar, 200, &b);
    sp_buf_free(&b);
    return;
fail:
    sp_secret_free(sec);
    sp_buf_free(&b);
    api_fail(ar, &e);
}

void api_secret_value(struct api_req *ar)
{
    struct sp_err err;

    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", ar->arg);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", ar->scope);
    if (sp_store_secret_get(ar->api->store, ar->ws, ar->scope, ar->arg, on_value, ar, &err) < 0)
        api_fail(ar, &err);
}

/* ---- update, revoke, delete ---- */

static int render_meta(const void *m, struct sp_buf *out, struct sp_err *err)
{
    return sp_secret_meta_json(m, out, err);
}

static void on_updated(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct secret_op *op = arg;

    if (err) {
        op_fail(op, err);
        return;
    }
    api_reply_one(op->ar, 200, "secret", m, render_meta);
    op_free(op);
}

static void send_update(struct secret_op *op)
{
    struct api_req *ar = op->ar;
    struct sp_err err;

    if (sp_store_secret_write(ar->api->store, ar->ws, ar->scope, ar->arg, SP_WRITE_UPDATE, &op->w,
                              on_updated, op, &err) < 0)
        op_fail(op, &err);
}

/* A new value without a type: the stored type decides whether the value
 * must be aws JSON, so look it up first. */
static void on_type_known(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct secret_op *op = arg;

    if (err) {
        op_fail(op, err);
        return;
    }
    op->w.has_type = 1;
    op->w.type = m->type;
    send_update(op);
}

static void update_secret(struct api_req *ar, int revoke)
{
    struct secret_op *op = op_new(ar);
    struct sp_err err;

    if (!op)
        return;
    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", ar->arg);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", ar->scope);
    if (!revoke && parse_secret_body(op, 1, &err) < 0) {
        op_fail(op, &err);
        return;
    }
    if (revoke) {
        op->w.has_revoked = 1;
        op->w.revoked = 1;
    }
    if (!revoke && !op->w.has_value && !op->w.description && !op->w.has_type && !op->w.apps &&
        !op->w.envs && !op->w.hosts && !op->w.has_expires && !op->w.has_revoked) {
        sp_err_set(&err, SP_E_BAD_REQUEST, "Nothing to update");
        op_fail(op, &err);
        return;
    }
    if (op->w.has_value && !op->w.has_type) {
        if (sp_store_secret_meta(ar->api->store, ar->ws, ar->scope, ar->arg, on_type_known, op,
                                 &err) < 0)
            op_fail(op, &err);
        return;
    }
    send_update(op);
}

void api_secret_patch(struct api_req *ar)
{
    update_secret(ar, 0);
}

void api_secret_revoke(struct api_req *ar)
{
    update_secret(ar, 1);
}

void api_secret_delete(struct api_req *ar)
{
    struct sp_err err;

    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", ar->arg);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "%s", ar->scope);
    if (sp_store_secret_delete(ar->api->store, ar->ws, ar->scope, ar->arg, api_on_deleted, ar,
                               &err) < 0)
        api_fail(ar, &err);
}

/* ---- list and complete ---- */

static void on_list(const struct sp_secret_meta *items, size_t count, const char *next,
                    const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;
    struct sp_buf b;
    struct sp_err e;
    int first = 1;

    if (err) {
        api_fail(ar, err);
        return;
    }
    sp_buf_init(&b, 0, 0);
    if (sp_buf_addstr(&b, "{\"secrets\":[", &e) < 0)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        /* Without ?scope=, show only the scopes this caller may use. */
        if (!api_scope_allowed(ar, items[i].scope))
            continue;
        if ((!first && sp_buf_addstr(&b, ",", &e) < 0) ||
            sp_secret_meta_json(&items[i], &b, &e) < 0)
            goto fail;
        first = 0;
    }
    if ((next ? sp_buf_printf(&b, &e, "],\"next_cursor\":\"%s\"}\n", next)
              : sp_buf_addstr(&b, "],\"next_cursor\":null}\n", &e)) < 0)
        goto fail;
    api_reply(ar, 200, &b);
    sp_buf_free(&b);
    return;
fail:
    sp_buf_free(&b);
    api_fail(ar, &e);
}

void api_secret_list(struct api_req *ar)
{
    const char *l = api_param(ar, "limit"), *cursor = api_param(ar, "cursor");
    long limit = 100;
    struct sp_err err;

    if (l) {
        char *end;
        limit = strtol(l, &end, 10);
        if (*end || end == l || limit < 1 || limit > 1000) {
            api_fail_code(ar, SP_E_BAD_REQUEST, "'limit' must be 1 to 1000");
            return;
        }
    }
    if (sp_store_secret_list(ar->api->store, ar->ws, ar->scope_given ? ar->scope : NULL, cursor,
                             (size_t)limit, on_list, ar, &err) < 0)
        api_fail(ar, &err);
}

/* key > group > function > user > workspace */
static int specificity(const char *scope)
{
    static const char *const order[] = {"key:", "group:", "function:", "user:", "workspace"};

    for (int i = 0; i < 5; i++)
        if (strncmp(scope, order[i], strlen(order[i])) == 0)
            return i;
    return 5;
}

static int by_specificity(const void *a, const void *b)
{
    const struct sp_secret *x = *(struct sp_secret *const *)a, *y = *(struct sp_secret *const *)b;
    int d = specificity(x->meta.scope) - specificity(y->meta.scope);

    return d ? d : strcmp(x->meta.scope, y->meta.scope);
}

static void on_complete(struct sp_secret **items, size_t count, const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;
    struct sp_buf b;
    struct sp_err e;
    int first = 1;

    if (err) {
        api_fail(ar, err);
        return;
    }
    qsort(items, count, sizeof(*items), by_specificity);
    sp_buf_init(&b, 0, 1);
    if (sp_buf_addstr(&b, "{\"secrets\":[", &e) < 0)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        struct sp_secret *s = items[i];
        if (!api_scope_allowed(ar, s->meta.scope))
            continue;
        if ((!first && sp_buf_addstr(&b, ",", &e) < 0) || sp_secret_meta_json(&s->meta, &b, &e) < 0)
            goto fail;
        first = 0;
        if (!s->value)
            continue;
        /* Add "value" (or "value_base64") inside the object just closed. */
        b.len--;
        if (sp_buf_addstr(&b, ",", &e) < 0 || append_value(&b, s->value, s->value_len, &e) < 0 ||
            sp_buf_addstr(&b, "}", &e) < 0)
            goto fail;
    }
    if (sp_buf_addstr(&b, "]}\n", &e) < 0)
        goto fail;
    api_reply_secret(ar, 200, &b);
    sp_buf_free(&b);
    return;
fail:
    sp_buf_free(&b);
    api_fail(ar, &e);
}

void api_secret_complete(struct api_req *ar)
{
    struct sp_err err;
    int values = (ar->key.perms & SP_PERM_SECRETS_READ_VALUE) != 0;

    snprintf(ar->audit_name, sizeof(ar->audit_name), "%s", ar->arg);
    snprintf(ar->audit_scope, sizeof(ar->audit_scope), "*");
    if (!sp_valid_name(ar->arg, strlen(ar->arg))) {
        api_fail_code(ar, SP_E_BAD_REQUEST, "Invalid secret name (expected [A-Za-z0-9_-]{1,128})");
        return;
    }
    if (sp_store_secret_complete(ar->api->store, ar->ws, ar->arg, values, on_complete, ar, &err) <
        0)
        api_fail(ar, &err);
}
