/*
 * secrets.c - the `secretctl secrets ...` commands: request bodies from the
 * options (the value as "value" when it is UTF-8 text, else
 * "value_base64"), the calls to /v1/secrets, and their output.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const secret_order[] = {"name",        "scope",      "workspace", "type",
                                           "description", "apps",       "envs",      "hosts",
                                           "expires_at",  "revoked",    "version",   "key_version",
                                           "created_at",  "updated_at", "id",        NULL};

static const struct ctl_col secret_cols[] = {
    {"NAME", "name"},       {"SCOPE", "scope"},        {"TYPE", "type"},
    {"VERSION", "version"}, {"UPDATED", "updated_at"}, {"EXPIRES", "expires_at"},
    {"REVOKED", "revoked"},
};

static int oom(void)
{
    fputs("secretctl: out of memory\n", stderr);
    return CTL_EXIT_REFUSED;
}

/* "/v1/secrets[/NAME[/suffix]]?scope=..&workspace=.." into path. */
static int secret_path(const struct ctl *c, const char *name, const char *suffix,
                       struct sp_buf *path)
{
    sp_buf_init(path, 0, 0);
    if (name && !name[0])
        return ctl_usage_error(c, "NAME must not be empty");
    if (sp_buf_addstr(path, "/v1/secrets", NULL) < 0 || (name && ctl_path_add(path, name) < 0) ||
        (suffix && sp_buf_addstr(path, suffix, NULL) < 0) ||
        ctl_query_add(path, "scope", c->opt[OPT_SCOPE]) < 0 ||
        ctl_query_add(path, "workspace", c->opt[OPT_WORKSPACE]) < 0)
        return oom();
    return CTL_EXIT_OK;
}

static int put_int(const struct ctl *c, json_t *o, const char *field, const char *flag,
                   const char *s)
{
    long long n;
    int rc;

    if (!s)
        return CTL_EXIT_OK;
    if ((rc = ctl_parse_int(c, flag, s, &n)) != CTL_EXIT_OK)
        return rc;
    if (json_object_set_new(o, field, json_integer(n)) < 0)
        return oom();
    return CTL_EXIT_OK;
}

static int put_value(json_t *o, const struct sp_buf *v)
{
    struct sp_buf b64;
    int rc = -1;

    if (ctl_is_text(v->data ? v->data : "", v->len))
        return json_object_set_new(o, "value", json_stringn(v->data ? v->data : "", v->len)) < 0
                   ? oom()
                   : CTL_EXIT_OK;
    sp_buf_init(&b64, 0, 1);
    if (sp_buf_reserve(&b64, sp_base64_enc_len(v->len), NULL) == 0) {
        b64.len = sp_base64_encode(b64.data, v->data, v->len);
        rc = json_object_set_new(o, "value_base64", json_stringn(b64.data, b64.len));
    }
    sp_buf_free(&b64);
    return rc < 0 ? oom() : CTL_EXIT_OK;
}

static int put_revoked(const struct ctl *c, json_t *o)
{
    const char *s = c->opt[OPT_REVOKED];
    int yes;

    if (!s)
        return CTL_EXIT_OK;
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
        yes = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
        yes = 0;
    else
        return ctl_usage_error(c, "--revoked takes true or false, not '%s'", s);
    return json_object_set_new(o, "revoked", json_boolean(yes)) < 0 ? oom() : CTL_EXIT_OK;
}

/* Everything but the value, from the options. */
static int put_metadata(const struct ctl *c, json_t *o)
{
    int rc;

    if (c->opt[OPT_TTL] && c->opt[OPT_EXPIRES_AT])
        return ctl_usage_error(c, "give --ttl or --expires-at, not both");
    if ((rc = ctl_put_text(c, o, "description", "--description", c->opt[OPT_DESCRIPTION], 0)) ||
        (rc = ctl_put_text(c, o, "type", "--type", c->opt[OPT_TYPE], 0)) ||
        (rc = ctl_put_text(c, o, "apps", "--apps", c->opt[OPT_APPS], 1)) ||
        (rc = ctl_put_text(c, o, "envs", "--envs", c->opt[OPT_ENVS], 1)) ||
        (rc = ctl_put_text(c, o, "hosts", "--hosts", c->opt[OPT_HOSTS], 1)) ||
        (rc = put_int(c, o, "ttl", "--ttl", c->opt[OPT_TTL])) ||
        (rc = ctl_put_text(c, o, "expires_at", "--expires-at", c->opt[OPT_EXPIRES_AT], 0)) ||
        (rc = put_int(c, o, "ref_ttl", "--ref-ttl", c->opt[OPT_REF_TTL])) ||
        (rc = put_revoked(c, o)))
        return rc;
    return CTL_EXIT_OK;
}

static int on_dump(const char *p, size_t n, void *arg)
{
    return sp_buf_add(arg, p, n, NULL);
}

/* The JSON body of set/create/update into body (sensitive). name is set
 * for create; value_required for set/create. */
static int secret_body(struct ctl *c, const char *name, int value_required, struct sp_buf *body)
{
    struct sp_buf value;
    json_t *o = json_object();
    int given = 0, rc;

    sp_buf_init(body, 0, 1);
    sp_buf_init(&value, 0, 1);
    if (!o)
        return oom();
    rc = put_metadata(c, o);
    if (rc == CTL_EXIT_OK)
        rc = ctl_put_text(c, o, "name", "NAME", name, 0);
    if (rc == CTL_EXIT_OK)
        rc = ctl_read_value(c, value_required, &value, &given);
    if (rc == CTL_EXIT_OK && given)
        rc = put_value(o, &value);
    if (rc == CTL_EXIT_OK && json_object_size(o) == 0)
        rc = ctl_usage_error(c, "nothing to change: give a value or an option");
    if (rc == CTL_EXIT_OK && json_dump_callback(o, on_dump, body, JSON_COMPACT) < 0)
        rc = oom();
    sp_buf_free(&value);
    json_decref(o);
    return rc;
}

/* Print {"secret":{...},"reference":...} (or {"secret"} alone). */
static int print_secret(const struct ctl *c, const json_t *resp)
{
    const json_t *s = json_object_get(resp, "secret");
    const char *ref = json_string_value(json_object_get(resp, "reference"));

    if (c->json)
        return ctl_print_json(resp);
    if (!json_is_object(s)) {
        fputs("secretctl: the API's answer has no \"secret\" object\n", stderr);
        return CTL_EXIT_REFUSED;
    }
    return ctl_print_object(s, secret_order, ref ? "reference" : NULL, ref);
}

/* PUT, POST or PATCH a secret body and print the answer. */
static int write_secret(struct ctl *c, const char *method, int create)
{
    struct sp_buf path, body;
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    sp_buf_init(&body, 0, 1);
    rc = secret_path(c, create ? NULL : c->pos[0], NULL, &path);
    if (rc == CTL_EXIT_OK && create && !c->pos[0][0])
        rc = ctl_usage_error(c, "NAME must not be empty");
    if (rc == CTL_EXIT_OK)
        rc = secret_body(c, create ? c->pos[0] : NULL, strcmp(method, "PATCH") != 0, &body);
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, method, path.data, &body, &r);
    if (rc == CTL_EXIT_OK)
        rc = print_secret(c, r.json);
    ctl_resp_free(&r);
    sp_buf_free(&body);
    sp_buf_free(&path);
    return rc;
}

int ctl_secrets_set(struct ctl *c)
{
    return write_secret(c, "PUT", 0);
}

int ctl_secrets_create(struct ctl *c)
{
    return write_secret(c, "POST", 1);
}

int ctl_secrets_update(struct ctl *c)
{
    return write_secret(c, "PATCH", 0);
}

/* A call without a body on one secret; print its secret object, or run
 * done() on the answer. */
static int secret_call(struct ctl *c, const char *method, const char *suffix,
                       int (*done)(struct ctl *c, const json_t *resp))
{
    struct sp_buf path;
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = secret_path(c, c->pos[0], suffix, &path);
    if (rc == CTL_EXIT_OK && c->opt[OPT_REF_TTL]) {
        long long n;
        rc = ctl_parse_int(c, "--ref-ttl", c->opt[OPT_REF_TTL], &n);
        if (rc == CTL_EXIT_OK && ctl_query_add(&path, "ref_ttl", c->opt[OPT_REF_TTL]) < 0)
            rc = oom();
    }
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, method, path.data, NULL, &r);
    if (rc == CTL_EXIT_OK)
        rc = done ? done(c, r.json) : print_secret(c, r.json);
    ctl_resp_free(&r);
    sp_buf_free(&path);
    return rc;
}

int ctl_secrets_get(struct ctl *c)
{
    return secret_call(c, "GET", NULL, NULL);
}

int ctl_secrets_revoke(struct ctl *c)
{
    return secret_call(c, "POST", "/revoke", NULL);
}

static int print_deleted(struct ctl *c, const json_t *resp)
{
    if (c->json)
        return ctl_print_json(resp);
    printf("deleted secret %s (scope %s)\n", c->pos[0],
           c->opt[OPT_SCOPE] ? c->opt[OPT_SCOPE] : "workspace");
    return CTL_EXIT_OK;
}

int ctl_secrets_delete(struct ctl *c)
{
    return secret_call(c, "DELETE", NULL, print_deleted);
}

/* The value, byte for byte: {"value"} as it is, {"value_base64"} decoded. */
static int print_value(struct ctl *c, const json_t *resp)
{
    const json_t *v = json_object_get(resp, "value");
    const json_t *b = json_object_get(resp, "value_base64");
    struct sp_buf raw;
    int rc = CTL_EXIT_REFUSED;

    if (c->json)
        return ctl_print_json(resp);
    if (json_is_string(v)) {
        rc = ctl_write_all(STDOUT_FILENO, json_string_value(v), json_string_length(v));
    } else if (json_is_string(b)) {
        sp_buf_init(&raw, 0, 1);
        if (sp_buf_reserve(&raw, sp_base64_dec_max(json_string_length(b)), NULL) < 0) {
            rc = oom();
        } else if (sp_base64_decode(raw.data, &raw.len, json_string_value(b),
                                    json_string_length(b)) < 0) {
            fputs("secretctl: the API's value_base64 is not base64\n", stderr);
        } else {
            rc = ctl_write_all(STDOUT_FILENO, raw.data, raw.len);
        }
        sp_buf_free(&raw);
    } else {
        fputs("secretctl: the API's answer has no value\n", stderr);
    }
    /* A terminal gets its prompt back on a line of its own; a pipe or file
     * gets exactly the stored bytes. */
    if (rc == CTL_EXIT_OK && isatty(STDOUT_FILENO))
        rc = ctl_write_all(STDOUT_FILENO, "\n", 1);
    return rc;
}

int ctl_secrets_value(struct ctl *c)
{
    return secret_call(c, "GET", "/value", print_value);
}

static int print_complete(struct ctl *c, const json_t *resp)
{
    const json_t *list = json_object_get(resp, "secrets"), *item;
    size_t i;
    int rc;

    if (c->json)
        return ctl_print_json(resp);
    rc = ctl_print_table(list, secret_cols, SP_ARRAY_LEN(secret_cols));
    json_array_foreach(list, i, item)
    {
        if (json_object_get(item, "value") || json_object_get(item, "value_base64")) {
            fputs("secretctl: values are shown with --json only\n", stderr);
            break;
        }
    }
    return rc;
}

int ctl_secrets_complete(struct ctl *c)
{
    return secret_call(c, "GET", "/complete", print_complete);
}

/* ---- list ---- */

/* One page from cursor (NULL = first) into r. */
static int list_page(struct ctl *c, const char *cursor, struct ctl_resp *r)
{
    struct sp_buf path;
    long long n;
    int rc = secret_path(c, NULL, NULL, &path);

    if (rc == CTL_EXIT_OK && c->opt[OPT_LIMIT])
        rc = ctl_parse_int(c, "--limit", c->opt[OPT_LIMIT], &n);
    if (rc == CTL_EXIT_OK && (ctl_query_add(&path, "limit", c->opt[OPT_LIMIT]) < 0 ||
                              ctl_query_add(&path, "cursor", cursor) < 0))
        rc = oom();
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "GET", path.data, NULL, r);
    sp_buf_free(&path);
    return rc;
}

/* Every page: follow next_cursor until it is null or empty. */
static int list_all(struct ctl *c, json_t *all)
{
    char *cursor = c->opt[OPT_CURSOR] ? strdup(c->opt[OPT_CURSOR]) : NULL;
    int rc = CTL_EXIT_OK;

    for (int page = 0; rc == CTL_EXIT_OK; page++) {
        struct ctl_resp r;
        const char *next;
        memset(&r, 0, sizeof(r));
        rc = list_page(c, cursor, &r);
        if (rc == CTL_EXIT_OK && json_is_array(json_object_get(r.json, "secrets")) &&
            json_array_extend(all, json_object_get(r.json, "secrets")) < 0)
            rc = oom();
        next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (rc == CTL_EXIT_OK && next && next[0] && page >= 100000) {
            fputs("secretctl: the API keeps returning pages; stopped\n", stderr);
            rc = CTL_EXIT_REFUSED;
        }
        free(cursor);
        cursor = NULL;
        if (rc == CTL_EXIT_OK && next && next[0] && !(cursor = strdup(next)))
            rc = oom();
        ctl_resp_free(&r);
        if (!cursor)
            break;
    }
    free(cursor);
    return rc;
}

int ctl_secrets_list(struct ctl *c)
{
    struct ctl_resp r;
    json_t *all, *out;
    const char *next;
    int rc;

    if (c->opt[OPT_ALL]) {
        if (!(all = json_array()))
            return oom();
        rc = list_all(c, all);
        if (rc == CTL_EXIT_OK && c->json) {
            out = json_pack("{s:O,s:n}", "secrets", all, "next_cursor");
            rc = out ? ctl_print_json(out) : oom();
            json_decref(out);
        } else if (rc == CTL_EXIT_OK) {
            rc = ctl_print_table(all, secret_cols, SP_ARRAY_LEN(secret_cols));
        }
        json_decref(all);
        return rc;
    }
    memset(&r, 0, sizeof(r));
    rc = list_page(c, c->opt[OPT_CURSOR], &r);
    if (rc == CTL_EXIT_OK && c->json) {
        rc = ctl_print_json(r.json);
    } else if (rc == CTL_EXIT_OK) {
        rc = ctl_print_table(json_object_get(r.json, "secrets"), secret_cols,
                             SP_ARRAY_LEN(secret_cols));
        next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (next && next[0])
            fprintf(stderr, "secretctl: more secrets follow: --all, or --cursor %s\n", next);
    }
    ctl_resp_free(&r);
    return rc;
}
