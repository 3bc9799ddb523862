/*
 * api.c - the secrets API listener: routing, authentication, permission,
 * workspace, context and scope checks, JSON bodies, health and metrics, and
 * the one place every request ends (reply + audit line + metrics + free).
 */
#include "api_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http_struct.h>
#include <pcre2.h>
#include <stdio.h>
#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"

#define ALL_SECRET_FIELDS                                                                          \
    "value value_base64 description type apps envs hosts expires_at ttl ref_ttl"

static struct api_route routes[] = {
    {EVHTTP_REQ_GET, "/healthz", 0, NULL, NULL, "", NULL, -1},
    {EVHTTP_REQ_GET, "/readyz", 0, NULL, NULL, "", NULL, -1},
    {EVHTTP_REQ_GET, "/metrics", 0, NULL, NULL, "", NULL, -1},
    {EVHTTP_REQ_PUT, "/v1/secrets/{}", SP_PERM_SECRETS_WRITE, "secret.set", ALL_SECRET_FIELDS,
     "scope workspace", api_secret_put, -1},
    {EVHTTP_REQ_POST, "/v1/secrets", SP_PERM_SECRETS_WRITE, "secret.create",
     "name " ALL_SECRET_FIELDS, "scope workspace", api_secret_create, -1},
    {EVHTTP_REQ_GET, "/v1/secrets", SP_PERM_SECRETS_READ, "secret.list", NULL,
     "scope workspace cursor limit", api_secret_list, -1},
    {EVHTTP_REQ_GET, "/v1/secrets/{}", SP_PERM_SECRETS_READ, "secret.get", NULL,
     "scope workspace ref_ttl", api_secret_get, -1},
    {EVHTTP_REQ_GET, "/v1/secrets/{}/value", SP_PERM_SECRETS_READ_VALUE, "secret.read_value", NULL,
     "scope workspace", api_secret_value, -1},
    {EVHTTP_REQ_PATCH, "/v1/secrets/{}", SP_PERM_SECRETS_WRITE, "secret.update",
     ALL_SECRET_FIELDS " revoked", "scope workspace", api_secret_patch, -1},
    {EVHTTP_REQ_POST, "/v1/secrets/{}/revoke", SP_PERM_SECRETS_WRITE, "secret.revoke", "",
     "scope workspace", api_secret_revoke, -1},
    {EVHTTP_REQ_DELETE, "/v1/secrets/{}", SP_PERM_SECRETS_WRITE, "secret.delete", NULL,
     "scope workspace", api_secret_delete, -1},
    {EVHTTP_REQ_GET, "/v1/secrets/{}/complete", SP_PERM_SECRETS_READ, "secret.complete", NULL,
     "workspace", api_secret_complete, -1},
    {EVHTTP_REQ_POST, "/v1/keys", SP_PERM_KEYS_ADMIN, "key.create",
     "name permissions group app env user function workspace", "", api_key_create, -1},
    {EVHTTP_REQ_GET, "/v1/keys", SP_PERM_KEYS_ADMIN, "key.list", NULL, "workspace", api_key_list,
     -1},
    {EVHTTP_REQ_DELETE, "/v1/keys/{}", SP_PERM_KEYS_ADMIN, "key.delete", NULL, "workspace",
     api_key_delete, -1},
    {EVHTTP_REQ_POST, "/v1/groups", SP_PERM_KEYS_ADMIN, "group.create", "id name description",
     "workspace", api_group_create, -1},
    {EVHTTP_REQ_GET, "/v1/groups", SP_PERM_KEYS_ADMIN, "group.list", NULL, "workspace",
     api_group_list, -1},
    {EVHTTP_REQ_DELETE, "/v1/groups/{}", SP_PERM_KEYS_ADMIN, "group.delete", NULL, "workspace",
     api_group_delete, -1},
    {EVHTTP_REQ_POST, "/v1/keyring/rotate", SP_PERM_ROOT, "keyring.rotate", "", "",
     api_keyring_rotate, -1},
    {EVHTTP_REQ_GET, "/v1/keyring", SP_PERM_ROOT, "keyring.status", NULL, "", api_keyring_status,
     -1},
};

static int metric_other = -1; /* unknown paths and methods */

/* ---- ending a request ---- */

static void audit_line(struct api_req *ar, int status, enum sp_err_code code)
{
    struct sp_buf b;
    char ts[40];
    int64_t us = sp_mono_us() - ar->t0_us;
    const char *path = ar->rt ? ar->rt->pattern : "unknown";

    sp_buf_init(&b, 0, 0);
    sp_time_format(ts, sizeof(ts), sp_now_ms());
    if (sp_buf_printf(&b, NULL,
                      "{\"ts\":\"%s\",\"type\":\"api\",\"request_id\":\"%s\",\"method\":\"%s\","
                      "\"route\":\"%s\",\"status\":%d,\"code\":\"%s\",\"duration_ms\":%.3f",
                      ts, ar->rid, ar->rt ? sp_http_method_name(ar->rt->method) : "?", path, status,
                      sp_err_wire(code), (double)us / 1000.0) < 0)
        goto out;
    if (ar->rt && ar->rt->action &&
        sp_buf_printf(&b, NULL, ",\"action\":\"%s\"", ar->rt->action) < 0)
        goto out;
    if (ar->key.id[0] &&
        sp_buf_printf(&b, NULL, ",\"actor\":{\"key_id\":\"%s\",\"workspace\":\"%s\"}", ar->key.id,
                      ar->key.workspace) < 0)
        goto out;
    if (ar->ws[0] && sp_buf_printf(&b, NULL, ",\"workspace\":\"%s\"", ar->ws) < 0)
        goto out;
    if (ar->audit_name[0] &&
        sp_buf_printf(&b, NULL, ",\"secret\":{\"name\":\"%s\",\"scope\":\"%s\"}", ar->audit_name,
                      ar->audit_scope) < 0)
        goto out;
    if (ar->audit_target[0] && sp_buf_printf(&b, NULL, ",\"target\":\"%s\"", ar->audit_target) < 0)
        goto out;
    if (sp_buf_addstr(&b, "}", NULL) < 0)
        goto out;
    sp_log_line(NULL, b.data, b.len);
    /* Authenticated operations also go to the workspace's audit stream. */
    if (ar->ws[0] && ar->key.id[0] && ar->api->conf->log_audit_stream_maxlen.i > 0)
        sp_store_audit(ar->api->store, ar->ws, b.data, b.len,
                       (long)ar->api->conf->log_audit_stream_maxlen.i);
out:
    sp_buf_free(&b);
}

static void finish(struct api_req *ar, int status, enum sp_err_code code)
{
    /* One line per request; successful probes of /healthz, /readyz and
     * /metrics would only drown the rest. */
    if (!ar->rt || ar->rt->perm || status >= 400)
        audit_line(ar, status, code);
    if (code != SP_E_OK)
        sp_metrics_denial(code);
    sp_metrics_request(ar->rt ? ar->rt->metric : metric_other, status, sp_mono_us() - ar->t0_us);
    evhttp_clear_headers(&ar->query);
    json_decref(ar->body);
    sp_wipe(ar, sizeof(*ar));
    free(ar);
}

void api_reply(struct api_req *ar, int status, struct sp_buf *body)
{
    sp_http_reply_json(ar->req, status, ar->rid, body->data, body->len);
    finish(ar, status, SP_E_OK);
}

void api_reply_text(struct api_req *ar, int status, const char *json)
{
    sp_http_reply_json(ar->req, status, ar->rid, json, strlen(json));
    finish(ar, status, SP_E_OK);
}

void api_reply_secret(struct api_req *ar, int status, struct sp_buf *body)
{
    sp_http_reply_json_secret(ar->req, status, ar->rid, body);
    finish(ar, status, SP_E_OK);
}

void api_reply_one(struct api_req *ar, int status, const char *field, const void *item,
                   api_render_fn render)
{
    struct sp_buf b;
    struct sp_err e;

    sp_buf_init(&b, 0, 0);
    if (sp_buf_printf(&b, &e, "{\"%s\":", field) < 0 || render(item, &b, &e) < 0 ||
        sp_buf_addstr(&b, "}\n", &e) < 0) {
        sp_buf_free(&b);
        api_fail(ar, &e);
        return;
    }
    api_reply(ar, status, &b);
    sp_buf_free(&b);
}

void api_reply_list(struct api_req *ar, const char *field, const void *items, size_t count,
                    size_t size, api_render_fn render)
{
    struct sp_buf b;
    struct sp_err e;

    sp_buf_init(&b, 0, 0);
    if (sp_buf_printf(&b, &e, "{\"%s\":[", field) < 0)
        goto fail;
    for (size_t i = 0; i < count; i++)
        if ((i && sp_buf_addstr(&b, ",", &e) < 0) ||
            render((const char *)items + i * size, &b, &e) < 0)
            goto fail;
    if (sp_buf_addstr(&b, "]}\n", &e) < 0)
        goto fail;
    api_reply(ar, 200, &b);
    sp_buf_free(&b);
    return;
fail:
    sp_buf_free(&b);
    api_fail(ar, &e);
}

void api_on_deleted(const struct sp_err *err, void *arg)
{
    struct api_req *ar = arg;

    if (err)
        api_fail(ar, err);
    else
        api_reply_text(ar, 200, "{\"deleted\":true}\n");
}

void api_fail(struct api_req *ar, const struct sp_err *err)
{
    if (err->code == SP_E_UNAUTHORIZED)
        evhttp_add_header(evhttp_request_get_output_headers(ar->req), "WWW-Authenticate",
                          "Bearer realm=\"secretproxy\"");
    sp_http_reply_error(ar->req, ar->rid, err);
    finish(ar, sp_err_http_status(err->code), err->code);
}

void api_fail_code(struct api_req *ar, enum sp_err_code code, const char *fmt, ...)
{
    struct sp_err err;
    va_list ap;

    err.code = code;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    api_fail(ar, &err);
}

/* ---- small helpers ---- */

const char *api_param(const struct api_req *ar, const char *name)
{
    return evhttp_find_header(&ar->query, name);
}

int api_scope_allowed(const struct api_req *ar, const char *s)
{
    const struct sp_key *k = &ar->key;
    static const struct {
        const char *prefix;
        size_t off;
    } bound[] = {{"user:", offsetof(struct api_req, user)},
                 {"function:", offsetof(struct api_req, function)},
                 {"group:", offsetof(struct api_req, key) + offsetof(struct sp_key, group)}};

    if (strcmp(s, "workspace") == 0 || (k->perms & SP_PERM_ROOT))
        return 1;
    for (size_t i = 0; i < SP_ARRAY_LEN(bound); i++) {
        size_t n = strlen(bound[i].prefix);
        const char *mine = (const char *)ar + bound[i].off;
        if (strncmp(s, bound[i].prefix, n) == 0)
            return !mine[0] || strcmp(s + n, mine) == 0;
    }
    if (strncmp(s, "key:", 4) == 0)
        return (k->perms & SP_PERM_KEYS_ADMIN) || strcmp(s + 4, k->id) == 0;
    return 0;
}

int api_host_entry_ok(const char *s)
{
    size_t n = strlen(s);
    int plain = n > 0 && n <= 253;
    pcre2_code *re;
    int code;
    PCRE2_SIZE off;

    for (size_t i = 0; plain && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.';
    }
    if (plain)
        return 1;
    if (n == 0 || n > 512)
        return 0;
    re = pcre2_compile((PCRE2_SPTR)s, n, PCRE2_CASELESS, &code, &off, NULL);
    pcre2_code_free(re);
    return re != NULL;
}

/* Does path match pattern? On a match the {} segment goes to arg. */
static int match(const char *pattern, const char *path, char *arg, size_t argsz)
{
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= argsz)
                return 0;
            memcpy(arg, path, n);
            arg[n] = '\0';
            pattern += 2;
            path += n;
            continue;
        }
        if (*pattern++ != *path++)
            return 0;
    }
    return *pattern == '\0' && *path == '\0';
}

static int word_in(const char *list, const char *w)
{
    size_t n = strlen(w);

    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, w, n) == 0)
            return 1;
        p += len;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* ---- built-in endpoints ---- */

static void health(struct api_req *ar, const char *which)
{
    struct sp_buf b;

    sp_buf_init(&b, 0, 0);
    if (strcmp(which, "/healthz") == 0) {
        api_reply_text(ar, 200, "{\"status\":\"ok\"}\n");
    } else if (strcmp(which, "/readyz") == 0) {
        if (sp_store_state(ar->api->store) != SP_STORE_READY)
            api_fail_code(ar, SP_E_STORE_UNAVAILABLE, "Redis is not reachable");
        else if (sp_keyring_current(ar->api->kr) < 1)
            api_fail_code(ar, SP_E_INTERNAL, "The key ring is not loaded");
        else
            api_reply_text(ar, 200, "{\"status\":\"ready\"}\n");
    } else {
        struct sp_err err;
        sp_metrics_set_gauge("redis_up", sp_store_state(ar->api->store) == SP_STORE_READY);
        sp_metrics_set_gauge("keyring_version", sp_keyring_current(ar->api->kr));
        {
            struct sp_rotation_status st;
            int running = sp_store_rotation_progress(ar->api->store, &st);
            sp_metrics_set_gauge("rotation_running", running);
            sp_metrics_set_gauge("rotation_reencrypted", running ? (int64_t)st.reencrypted : 0);
            sp_metrics_set_gauge("rotation_target_version", running ? st.target_version : 0);
        }
        if (sp_metrics_render(&b, &err) < 0) {
            api_fail(ar, &err);
        } else {
            struct evbuffer *out = evbuffer_new();
            evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Content-Type",
                              "text/plain; version=0.0.4");
            if (out)
                evbuffer_add(out, b.data, b.len);
            evhttp_send_reply(ar->req, out ? 200 : 500, out ? "OK" : "Internal Server Error", out);
            if (out)
                evbuffer_free(out);
            finish(ar, out ? 200 : 500, SP_E_OK);
        }
    }
    sp_buf_free(&b);
}

/* ---- after authentication ---- */

static int parse_body(struct api_req *ar, struct sp_err *err)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(ar->req);
    size_t n = evbuffer_get_length(in);
    json_error_t je;
    const char *k;
    json_t *v;

    if (!ar->rt->fields) {
        if (n > 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "This call takes no request body");
        return 0;
    }
    if (n == 0) {
        if (ar->rt->fields[0])
            return sp_err_set(err, SP_E_BAD_REQUEST, "A JSON object body is required");
        return 0;
    }
    if (!sp_http_is_json(ar->req))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Content-Type must be application/json");
    ar->body = json_loadb((const char *)evbuffer_pullup(in, -1), n, JSON_REJECT_DUPLICATES, &je);
    /* The raw body may hold a value: wipe it now that it is parsed. */
    sp_wipe(evbuffer_pullup(in, -1), n);
    if (!ar->body)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed JSON at line %d column %d", je.line,
                          je.column);
    if (!json_is_object(ar->body))
        return sp_err_set(err, SP_E_BAD_REQUEST, "The body must be a JSON object");
    json_object_foreach(ar->body, k, v)
    {
        if (!word_in(ar->rt->fields, k))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Unknown field '%.60s'", k);
    }
    return 0;
}

static int check_query(struct api_req *ar, struct sp_err *err)
{
    for (struct evkeyval *kv = ar->query.tqh_first; kv; kv = kv->next.tqe_next)
        if (!word_in(ar->rt->params, kv->key))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Unknown query parameter '%.60s'", kv->key);
    return 0;
}

/* Workspace, asserted context and scope for an authenticated caller. */
static int set_context(struct api_req *ar, struct sp_err *err)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(ar->req);
    const char *ws = api_param(ar, "workspace"), *s = api_param(ar, "scope");
    const char *u = evhttp_find_header(h, "Secretproxy-User");
    const char *fn = evhttp_find_header(h, "Secretproxy-Function");
    int root = (ar->key.perms & SP_PERM_ROOT) != 0;

    if (ws && !root)
        return sp_err_set(err, SP_E_FORBIDDEN, "Only a root key may choose ?workspace=");
    if (ws && !sp_valid_name(ws, strlen(ws)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid workspace '%.60s'", ws);
    snprintf(ar->ws, sizeof(ar->ws), "%s", ws ? ws : ar->key.workspace);
    snprintf(ar->user, sizeof(ar->user), "%s", ar->key.user);
    snprintf(ar->function, sizeof(ar->function), "%s", ar->key.function);
    if ((u || fn) && !(ar->key.perms & SP_PERM_ASSERT_CONTEXT))
        return sp_err_set(err, SP_E_FORBIDDEN,
                          "Secretproxy-User and Secretproxy-Function need the assert_context "
                          "permission");
    if (u && (!sp_valid_name(u, strlen(u)) || strlen(u) >= sizeof(ar->user)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid Secretproxy-User");
    if (fn && (!sp_valid_name(fn, strlen(fn)) || strlen(fn) >= sizeof(ar->function)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid Secretproxy-Function");
    if (u)
        snprintf(ar->user, sizeof(ar->user), "%s", u);
    if (fn)
        snprintf(ar->function, sizeof(ar->function), "%s", fn);
    ar->scope_given = s != NULL;
    snprintf(ar->scope, sizeof(ar->scope), "%s", s ? s : "workspace");
    if (s && (strlen(s) >= sizeof(ar->scope) || !sp_scope_valid(s)))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "Invalid scope (workspace, user:<id>, function:<name>, group:<id>, "
                          "key:<id>)");
    if (!api_scope_allowed(ar, ar->scope))
        return sp_err_set(err, SP_E_FORBIDDEN, "This API key may not use scope '%s'", ar->scope);
    return 0;
}

static void on_auth(const struct sp_key *key, const char *token, const struct sp_err *err,
                    void *arg)
{
    struct api_req *ar = arg;
    struct sp_err e;

    if (err) {
        if (err->code == SP_E_STORE_UNAVAILABLE) {
            api_fail(ar, err);
            return;
        }
        api_fail_code(ar, SP_E_UNAUTHORIZED, "Invalid API key");
        return;
    }
    ar->key = *key;
    /* root is one more ability (any workspace, the key ring), not a
     * bypass: a route's own permission is always needed. */
    if ((key->perms & ar->rt->perm) != ar->rt->perm) {
        api_fail_code(ar, SP_E_FORBIDDEN, "This API key lacks the '%s' permission",
                      sp_perm_name(ar->rt->perm));
        return;
    }
    if (set_context(ar, &e) < 0 || parse_body(ar, &e) < 0) {
        api_fail(ar, &e);
        return;
    }
    ar->rt->fn(ar);
}

/* ---- entry ---- */

static void route(struct api_req *ar, const char *path)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(ar->req);
    int method = (int)evhttp_request_get_command(ar->req);
    char allow[64] = "";
    char token[256];
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(routes); i++) {
        if (!match(routes[i].pattern, path, ar->arg, sizeof(ar->arg)))
            continue;
        snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s", allow[0] ? ", " : "",
                 sp_http_method_name(routes[i].method));
        if (routes[i].method == method) {
            ar->rt = &routes[i];
            break;
        }
    }
    if (!ar->rt) {
        if (allow[0]) {
            evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Allow", allow);
            api_fail_code(ar, SP_E_METHOD_NOT_ALLOWED, "Method not allowed on %.80s", path);
        } else {
            api_fail_code(ar, SP_E_NOT_FOUND, "No such API path");
        }
        return;
    }
    if (check_query(ar, &err) < 0) {
        api_fail(ar, &err);
        return;
    }
    if (!ar->rt->perm) {
        health(ar, ar->rt->pattern);
        return;
    }
    if (sp_http_credential(evhttp_find_header(h, "Authorization"), token, sizeof(token), 0) < 0) {
        api_fail_code(ar, SP_E_UNAUTHORIZED, "An API key is required (Authorization: Bearer)");
        return;
    }
    if (sp_store_key_auth(ar->api->store, token, strlen(token), on_auth, ar, &err) < 0) {
        sp_wipe(token, sizeof(token));
        if (err.code != SP_E_STORE_UNAVAILABLE)
            sp_err_set(&err, SP_E_UNAUTHORIZED, "Invalid API key");
        api_fail(ar, &err);
        return;
    }
    sp_wipe(token, sizeof(token));
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct sp_api *api = arg;
    struct api_req *ar = calloc(1, sizeof(*ar));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;

    if (!ar) {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        return;
    }
    ar->api = api;
    ar->req = req;
    ar->t0_us = sp_mono_us();
    TAILQ_INIT(&ar->query);
    sp_http_request_id(ar->rid);
    if (!path || (q && evhttp_parse_query_str(q, &ar->query) < 0)) {
        api_fail_code(ar, SP_E_BAD_REQUEST, "Malformed request target");
        return;
    }
    route(ar, path);
}

struct sp_api *sp_api_new(struct event_base *base, const struct sp_conf *conf,
                          struct sp_store *store, struct sp_keyring *kr, struct sp_err *err)
{
    struct sp_api *api = calloc(1, sizeof(*api));
    char host[256];
    int port, is_unix;

    if (!api) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    api->base = base;
    api->store = store;
    api->kr = kr;
    api->conf = conf;
    for (size_t i = 0; i < SP_ARRAY_LEN(routes); i++)
        routes[i].metric = sp_metrics_route(routes[i].pattern);
    metric_other = sp_metrics_route("other");
    api->http = evhttp_new(base);
    if (!api->http) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(api->http, (ev_ssize_t)conf->api_max_body_size.i);
    evhttp_set_max_headers_size(api->http, 64 * 1024);
    evhttp_set_timeout(api->http, 60);
    evhttp_set_gencb(api->http, on_request, api);
    if (sp_conf_parse_addr(conf->api_listen.s, host, sizeof(host), &port, &is_unix) < 0 ||
        is_unix) {
        sp_err_set(err, SP_E_CONFIG, "api.listen: need host:port");
        goto fail;
    }
    api->bound = evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!api->bound) {
        sp_err_set(err, SP_E_CONFIG, "api.listen: cannot listen on %s", conf->api_listen.s);
        goto fail;
    }
    return api;
fail:
    sp_api_free(api);
    return NULL;
}

void sp_api_stop_accepting(struct sp_api *api)
{
    if (api && api->bound) {
        evhttp_del_accept_socket(api->http, api->bound);
        api->bound = NULL;
    }
}

void sp_api_set_conf(struct sp_api *api, const struct sp_conf *conf)
{
    api->conf = conf;
    evhttp_set_max_body_size(api->http, (ev_ssize_t)conf->api_max_body_size.i);
}

void sp_api_free(struct sp_api *api)
{
    if (!api)
        return;
    if (api->http)
        evhttp_free(api->http);
    free(api);
}
