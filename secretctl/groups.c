/*
 * groups.c - the `secretctl groups ...` commands: create, list and delete
 * the groups of a workspace (POST/GET /v1/groups, DELETE /v1/groups/ID),
 * which API keys are bound to with `keys create --group`. The server checks
 * ids, names and descriptions; this file only refuses what cannot be sent
 * (an empty ID, text that is not UTF-8).
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

static const char *const group_order[] = {"id", "name", "description", "created_at", NULL};

static const struct ctl_col group_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"DESCRIPTION", "description"},
    {"CREATED", "created_at"},
};

static int oom(void)
{
    (void)fputs("secretctl: out of memory\n", stderr);
    return CTL_EXIT_REFUSED;
}

static int on_dump(const char *p, size_t n, void *arg)
{
    return sp_buf_add(arg, p, n, NULL);
}

/* "/v1/groups[/ID][?workspace=W]" into path (initialised here; the caller
 * frees it in every case). */
static int group_path(const struct ctl *c, const char *id, struct sp_buf *path)
{
    sp_buf_init(path, 0, 0);
    if (sp_buf_addstr(path, "/v1/groups", NULL) < 0 || (id && ctl_path_add(path, id) < 0) ||
        ctl_query_add(path, "workspace", c->opt[OPT_WORKSPACE]) < 0)
        return oom();
    return CTL_EXIT_OK;
}

/* {"id", "name"?, "description"?} from ID, --name and --description. */
static int group_body(const struct ctl *c, struct sp_buf *body)
{
    json_t *o = json_object();
    int rc = o ? CTL_EXIT_OK : oom();

    if (rc == CTL_EXIT_OK)
        rc = ctl_put_text(c, o, "id", "ID", c->pos[0], 0);
    if (rc == CTL_EXIT_OK)
        rc = ctl_put_text(c, o, "name", "--name", c->opt[OPT_NAME], 0);
    if (rc == CTL_EXIT_OK)
        rc = ctl_put_text(c, o, "description", "--description", c->opt[OPT_DESCRIPTION], 0);
    if (rc == CTL_EXIT_OK && json_dump_callback(o, on_dump, body, JSON_COMPACT) < 0)
        rc = oom();
    json_decref(o);
    return rc;
}

int ctl_groups_create(struct ctl *c)
{
    struct sp_buf path, body;
    struct ctl_resp r;
    const json_t *g;
    int rc;

    memset(&r, 0, sizeof(r));
    sp_buf_init(&body, 0, 0);
    rc = group_path(c, NULL, &path);
    if (rc == CTL_EXIT_OK && !c->pos[0][0])
        rc = ctl_usage_error(c, "ID must not be empty");
    if (rc == CTL_EXIT_OK)
        rc = group_body(c, &body);
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "POST", path.data, &body, &r);
    g = json_object_get(r.json, "group");
    if (rc == CTL_EXIT_OK && c->json) {
        rc = ctl_print_json(r.json);
    } else if (rc == CTL_EXIT_OK && !json_is_object(g)) {
        (void)fputs("secretctl: the API's answer has no \"group\" object\n", stderr);
        rc = CTL_EXIT_REFUSED;
    } else if (rc == CTL_EXIT_OK) {
        rc = ctl_print_object(g, group_order, NULL, NULL);
    }
    ctl_resp_free(&r);
    sp_buf_free(&body);
    sp_buf_free(&path);
    return rc;
}

int ctl_groups_list(struct ctl *c)
{
    struct sp_buf path;
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = group_path(c, NULL, &path);
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "GET", path.data, NULL, &r);
    if (rc == CTL_EXIT_OK)
        rc = c->json ? ctl_print_json(r.json)
                     : ctl_print_table(json_object_get(r.json, "groups"), group_cols,
                                       SP_ARRAY_LEN(group_cols));
    ctl_resp_free(&r);
    sp_buf_free(&path);
    return rc;
}

int ctl_groups_delete(struct ctl *c)
{
    struct sp_buf path;
    struct ctl_resp r;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = group_path(c, c->pos[0], &path);
    if (rc == CTL_EXIT_OK && !c->pos[0][0])
        rc = ctl_usage_error(c, "ID must not be empty");
    if (rc == CTL_EXIT_OK)
        rc = ctl_call(c, "DELETE", path.data, NULL, &r);
    if (rc == CTL_EXIT_OK && c->json)
        rc = ctl_print_json(r.json);
    else if (rc == CTL_EXIT_OK)
        printf("deleted group %s\n", c->pos[0]);
    ctl_resp_free(&r);
    sp_buf_free(&path);
    return rc;
}
