/*
 * keys.c - the `secretctl keys ...` and `secretctl keyring ...` commands:
 * API keys (create shows the token once), and key-ring rotation and status.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const key_order[] = {"id",  "name", "workspace", "permissions", "group", "app",
                                        "env", "user", "function",  "created_at",  NULL};

static const struct ctl_col key_cols[] = {
    {"ID", "id"},       {"NAME", "name"},         {"PERMISSIONS", "permissions"},
    {"GROUP", "group"}, {"APP", "app"},           {"ENV", "env"},
    {"USER", "user"},   {"FUNCTION", "function"}, {"CREATED", "created_at"},
};

static int oom(void)
{
    fputs("secretctl: out of memory\n", stderr);
    return CTL_EXIT_REFUSED;
}

static int on_dump(const char *p, size_t n, void *arg)
{
    return sp_buf_add(arg, p, n, NULL);
}

/* One body field from an option; lists for --permissions. */
static int put(const struct ctl *c, json_t *o, const char *field, enum ctl_opt opt, int list)
{
    const char *s = c->opt[opt];
    json_t *v;

    if (!s)
        return CTL_EXIT_OK;
    if (!ctl_is_text(s, strlen(s)))
        return ctl_usage_error(c, "--%s is not valid UTF-8", field);
    v = list ? ctl_split_list(s) : json_string(s);
    if (!v || json_object_set_new(o, field, v) < 0)
        return oom();
    return CTL_EXIT_OK;
}

static int key_body(const struct ctl *c, struct sp_buf *body)
{
    json_t *o = json_object();
    int rc = o ? CTL_EXIT_OK : oom();

    if (rc == CTL_EXIT_OK && !c->opt[OPT_NAME])
        rc = ctl_usage_error(c, "--name is required");
    if (rc == CTL_EXIT_OK && !c->opt[OPT_PERMISSIONS])
        rc = ctl_usage_error(c, "--permissions is required (e.g. --permissions proxy)");
    static const struct {
        const char *field;
        enum ctl_opt opt;
        int list;
    } fields[] = {{"name", OPT_NAME, 0},         {"permissions", OPT_PERMISSIONS, 1},
                  {"group", OPT_GROUP, 0},       {"app", OPT_APP, 0},
                  {"env", OPT_ENV, 0},           {"user", OPT_USER, 0},
                  {"function", OPT_FUNCTION, 0}, {"workspace", OPT_WORKSPACE, 0}};

    for (size_t i = 0; rc == CTL_EXIT_OK && i < SP_ARRAY_LEN(fields); i++)
        rc = put(c, o, fields[i].field, fields[i].opt, fields[i].list);
    if (rc == CTL_EXIT_OK && json_dump_callback(o, on_dump, body, JSON_COMPACT) < 0)
        rc = oom();
    json_decref(o);
    return rc;
}

/* The token goes to stdout with write(2), once; the warning to stderr. */
static int print_created_key(const struct ctl *c, const json_t *resp)
{
    const char *token = json_string_value(json_object_get(resp, "token"));
    const json_t *key = json_object_get(resp, "key");
    int rc;

    if (c->json)
        return ctl_print_json(resp);
    if (!token || !json_is_object(key)) {
        fputs("secretctl: the API's answer has no key or token\n", stderr);
        return CTL_EXIT_REFUSED;
    }
    rc = ctl_print_object(key, key_order, NULL, NULL);
    if (rc == CTL_EXIT_OK)
        rc = ctl_write_all(STDOUT_FILENO, "\ntoken: ", 8);
    if (rc == CTL_EXIT_OK)
        rc = ctl_write_all(STDOUT_FILENO, token, strlen(token));
    if (rc == CTL_EXIT_OK)
        rc = ctl_write_all(STDOUT_FILENO, "\n", 1);
    if (rc == CTL_EXIT_OK)
        fputs("secretctl: store the token now: it is shown only this once and cannot be "
              "recovered\n",
              stderr);
    return rc;
}

int ctl_keys_create(struct ctl *c)
{
    struct sp_buf body;
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    sp_buf_init(&body, 0, 1);
    rc = key_body(c, &body);
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "POST", "/v1/keys", &body, &r);
    if (rc == CTL_EXIT_OK)
        rc = print_created_key(c, r.json);
    ctl_resp_free(&r);
    sp_buf_free(&body);
    return rc;
}

int ctl_keys_list(struct ctl *c)
{
    struct sp_buf path;
    struct ctl_resp r;
    int rc = CTL_EXIT_OK;

    memset(&r, 0, sizeof(r));
    sp_buf_init(&path, 0, 0);
    if (sp_buf_addstr(&path, "/v1/keys", NULL) < 0 ||
        ctl_query_add(&path, "workspace", c->opt[OPT_WORKSPACE]) < 0)
        rc = oom();
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "GET", path.data, NULL, &r);
    if (rc == CTL_EXIT_OK)
        rc = c->json ? ctl_print_json(r.json)
                     : ctl_print_table(json_object_get(r.json, "keys"), key_cols,
                                       SP_ARRAY_LEN(key_cols));
    ctl_resp_free(&r);
    sp_buf_free(&path);
    return rc;
}

int ctl_keys_delete(struct ctl *c)
{
    struct sp_buf path;
    struct ctl_resp r;
    int rc = CTL_EXIT_OK;

    memset(&r, 0, sizeof(r));
    sp_buf_init(&path, 0, 0);
    if (!c->pos[0][0])
        return ctl_usage_error(c, "ID must not be empty");
    if (sp_buf_addstr(&path, "/v1/keys", NULL) < 0 || ctl_path_add(&path, c->pos[0]) < 0 ||
        ctl_query_add(&path, "workspace", c->opt[OPT_WORKSPACE]) < 0)
        rc = oom();
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "DELETE", path.data, NULL, &r);
    if (rc == CTL_EXIT_OK && c->json)
        rc = ctl_print_json(r.json);
    else if (rc == CTL_EXIT_OK)
        printf("deleted key %s\n", c->pos[0]);
    ctl_resp_free(&r);
    sp_buf_free(&path);
    return rc;
}

/* ---- key ring ---- */

int ctl_keyring_rotate(struct ctl *c)
{
    static const char *const order[] = {"state", "status", "from", "to", NULL};
    struct ctl_resp r;
    const json_t *rot;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = ctl_call(c, "POST", "/v1/keyring/rotate", NULL, &r);
    rot = json_object_get(r.json, "rotation");
    if (rc == CTL_EXIT_OK && c->json) {
        rc = ctl_print_json(r.json);
    } else if (rc == CTL_EXIT_OK) {
        fputs("rotation started\n", stdout);
        fflush(stdout);
        rc = ctl_print_object(json_is_object(rot) ? rot : r.json, order, NULL, NULL);
    }
    ctl_resp_free(&r);
    return rc;
}

/* current, rotation.*, then the versions as a table. */
static int print_keyring(const json_t *resp)
{
    static const char *const order[] = {"current", NULL};
    static const struct ctl_col cols[] = {{"VERSION", "version"},
                                          {"CREATED", "created_at"},
                                          {"CURRENT", "current"},
                                          {"RETIRED", "retired"},
                                          {"RETIRED_AT", "retired_at"}};
    const json_t *versions = json_object_get(resp, "versions");
    json_t *rest = json_copy((json_t *)resp);
    int rc;

    if (!rest)
        return oom();
    if (json_is_array(versions))
        json_object_del(rest, "versions");
    rc = ctl_print_object(rest, order, NULL, NULL);
    json_decref(rest);
    if (rc == CTL_EXIT_OK && json_is_array(versions)) {
        rc = ctl_write_all(STDOUT_FILENO, "\n", 1);
        if (rc == CTL_EXIT_OK)
            rc = ctl_print_table(versions, cols, SP_ARRAY_LEN(cols));
    }
    return rc;
}

int ctl_keyring_status(struct ctl *c)
{
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = ctl_call(c, "GET", "/v1/keyring", NULL, &r);
    if (rc == CTL_EXIT_OK)
        rc = c->json ? ctl_print_json(r.json) : print_keyring(r.json);
    ctl_resp_free(&r);
    return rc;
}
