/*
 * fetch.c - POST /v1/fetch on the proxy port: a JSON description of a
 * request {url, method, headers, query, body | body_base64, auth} in, a
 * JSON {status, headers, body | body_base64} out. The same resolution,
 * checks, limits, redaction and logging as the forward proxy; the answer is
 * buffered (up to proxy.max_body_size) because it is returned inside JSON.
 */
#include "proxy_int.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FETCH_HEADERS 100

struct fetch {
    struct sp_worker *w;
    struct sp_h1_req *req; /* NULL once answered (the finishing call freed it) */
    char rid[SP_REQUEST_ID_LEN + 1];
    int64_t t0_us, t_up_start, store_us, upstream_us;
    json_t *in;
    char *url; /* the target with the query object appended */
    struct sp_target target;
    char method[16];
    struct sp_rheader headers[MAX_FETCH_HEADERS];
    size_t nheaders;
    struct sp_buf body; /* sensitive: may hold values after decode */
    const char *extra[SP_FETCH_AWSV4_CREDS];
    size_t extra_len[SP_FETCH_AWSV4_CREDS];
    size_t nextra;
    int auth_kind; /* 0 none, 1 basic, 2 bearer, 3 awsv4 */
    struct sp_fetch_awsv4 aws;
    struct sp_resolution *res;
    struct sp_upstream_req *up;
    int status;
    json_t *resp_headers;
    struct sp_buf resp_body; /* sensitive */
    enum sp_err_code code;
};

static void fetch_free(struct fetch *f)
{
    struct sp_access a = {"fetch",   f->rid,      f->method,      &f->target,
                          f->status, f->code,     f->body.len,    f->resp_body.len,
                          f->t0_us,  f->store_us, f->upstream_us, f->res};

    if (f->up)
        sp_upstream_cancel(f->up);
    if (f->req) /* every request ends with exactly one finishing call */
        sp_h1_reply_abort(f->req);
    sp_access_log(f->w, &a);
    sp_metrics_request(f->w->metric_fetch, f->status, sp_mono_us() - f->t0_us);
    if (f->code != SP_E_OK)
        sp_metrics_denial(f->code);
    f->w->inflight--;
    json_decref(f->in);
    json_decref(f->resp_headers);
    sp_free_wiped_str(f->url);
    sp_buf_free(&f->body);
    sp_buf_free(&f->resp_body);
    sp_fetch_awsv4_clear(&f->aws);
    sp_resolution_free(f->res);
    sp_wipe(f, sizeof(*f));
    free(f);
}

static void fetch_fail_with(struct fetch *f, const struct sp_err *err,
                            const struct sp_h1_header *extra, size_t n_extra)
{
    f->code = err->code;
    f->status = sp_err_http_status(err->code);
    sp_h1_reply_error(f->req, f->rid, err, extra, n_extra);
    f->req = NULL;
    fetch_free(f);
}

static void fetch_fail(struct fetch *f, const struct sp_err *err)
{
    static const struct sp_h1_header auth = {"Proxy-Authenticate", 18,
                                             "Basic realm=\"secretproxy\"", 25};

    fetch_fail_with(f, err, &auth, err->code == SP_E_PROXY_AUTH_REQUIRED);
}

/* ---- parsing the description ---- */

static int header_name_ok(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";

    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(tchar, *s)))
            return 0;
    return 1;
}

static int add_header(struct fetch *f, const char *name, json_t *v, struct sp_err *err)
{
    const char *s = json_string_value(v);

    if (!s)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Header '%.60s' must be a string or strings",
                          name);
    if (strpbrk(s, "\r\n") || json_string_length(v) != strlen(s))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Header '%.60s' holds CR, LF or NUL", name);
    if (sp_target_hop_header(name, strlen(name)))
        return 0; /* the proxy sets or drops these */
    if (f->nheaders == MAX_FETCH_HEADERS)
        return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "More than %d headers", MAX_FETCH_HEADERS);
    f->headers[f->nheaders++] = (struct sp_rheader){name, strlen(name), s, strlen(s)};
    return 0;
}

static int parse_headers(struct fetch *f, json_t *h, struct sp_err *err)
{
    const char *name;
    json_t *v;

    if (!h)
        return 0;
    if (!json_is_object(h))
        return sp_err_set(err, SP_E_BAD_REQUEST, "'headers' must be an object");
    json_object_foreach(h, name, v)
    {
        if (!header_name_ok(name))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid header name '%.60s'", name);
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (add_header(f, name, e, err) < 0)
                    return -1;
            }
        } else if (add_header(f, name, v, err) < 0) {
            return -1;
        }
    }
    return 0;
}

static int add_query_pair(struct sp_buf *u, int *first, const char *k, json_t *v,
                          struct sp_err *err)
{
    const char *s = json_string_value(v);

    if (!s)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Query '%.60s' must be a string or strings", k);
    if (sp_buf_addstr(u, *first ? "" : "&", err) < 0 ||
        sp_text_pct_encode(u, (const unsigned char *)k, strlen(k), err) < 0 ||
        sp_buf_addstr(u, "=", err) < 0 ||
        sp_text_pct_encode(u, (const unsigned char *)s, json_string_length(v), err) < 0)
        return -1;
    *first = 0;
    return 0;
}

/* url plus the query object, each name and value percent-encoded (a
 * reference in them is then found in its percent-encoded spelling). */
static int build_url(struct fetch *f, struct sp_err *err)
{
    json_t *url = json_object_get(f->in, "url"), *q = json_object_get(f->in, "query"), *v;
    struct sp_buf u;
    const char *k;
    int first;

    if (!json_is_string(url))
        return sp_err_set(err, SP_E_BAD_REQUEST, "'url' is required (http:// or https://)");
    if (q && !json_is_object(q))
        return sp_err_set(err, SP_E_BAD_REQUEST, "'query' must be an object");
    sp_buf_init(&u, 16384, 1);
    if (sp_buf_add(&u, json_string_value(url), json_string_length(url), err) < 0)
        goto fail;
    if (strpbrk(u.data, " \r\n\t") || strlen(u.data) != u.len) {
        sp_err_set(err, SP_E_BAD_REQUEST, "'url' holds whitespace or NUL");
        goto fail;
    }
    first = !strchr(u.data, '?');
    if (q && json_object_size(q) && first && sp_buf_addstr(&u, "?", err) < 0)
        goto fail;
    if (q && json_object_size(q) && !first && u.data[u.len - 1] != '?' &&
        u.data[u.len - 1] != '&' && sp_buf_addstr(&u, "&", err) < 0)
        goto fail;
    first = 1;
    json_object_foreach(q, k, v)
    {
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (add_query_pair(&u, &first, k, e, err) < 0)
                    goto fail;
            }
        } else if (add_query_pair(&u, &first, k, v, err) < 0) {
            goto fail;
        }
    }
    f->url = sp_buf_steal(&u, NULL);
    if (!f->url)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    return sp_target_parse(f->url, &f->target, err);
fail:
    sp_buf_free(&u);
    if (err->code == SP_E_PAYLOAD_TOO_LARGE)
        sp_err_set(err, SP_E_BAD_REQUEST, "'url' with its query is longer than 16 KiB");
    return -1;
}

static int parse_auth(struct fetch *f, json_t *a, struct sp_err *err)
{
    json_t *basic, *bearer, *aws;

    if (!a || json_is_null(a))
        return 0;
    if (!json_is_object(a) || json_object_size(a) != 1)
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "'auth' is one of {basic:{username,password}}, {bearer:{token}}, "
                          "{awsv4:{access_key_id,secret_access_key,region,service,...}}");
    if ((aws = json_object_get(a, "awsv4"))) {
        if (sp_fetch_awsv4_parse(aws, &f->aws, err) < 0)
            return -1;
        for (size_t i = 0; i < f->aws.ncred; i++)
            f->extra[i] = f->aws.cred[i], f->extra_len[i] = f->aws.cred_len[i];
        f->nextra = f->aws.ncred;
        f->auth_kind = 3;
        return 0;
    }
    if ((basic = json_object_get(a, "basic"))) {
        json_t *u = json_object_get(basic, "username"), *p = json_object_get(basic, "password");
        if (!json_is_string(u) || !json_is_string(p) || strchr(json_string_value(u), ':'))
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "auth.basic needs string username (no ':') and password");
        f->extra[0] = json_string_value(u), f->extra_len[0] = json_string_length(u);
        f->extra[1] = json_string_value(p), f->extra_len[1] = json_string_length(p);
        f->nextra = 2;
        f->auth_kind = 1;
        return 0;
    }
    if ((bearer = json_object_get(a, "bearer"))) {
        json_t *t = json_object_get(bearer, "token");
        if (!json_is_string(t))
            return sp_err_set(err, SP_E_BAD_REQUEST, "auth.bearer needs a string token");
        f->extra[0] = json_string_value(t), f->extra_len[0] = json_string_length(t);
        f->nextra = 1;
        f->auth_kind = 2;
        return 0;
    }
    return sp_err_set(err, SP_E_BAD_REQUEST, "Unknown auth kind");
}

static int parse_description(struct fetch *f, struct sp_err *err)
{
    size_t n;
    char *in = sp_h1_req_body(f->req, &n);
    json_t *m, *b, *b64;
    const char *k;
    json_error_t je;

    if (!sp_http_is_json_type(sp_h1_req_header(f->req, "Content-Type")))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Content-Type must be application/json");
    f->in = json_loadb(in ? in : "", n, JSON_REJECT_DUPLICATES, &je);
    if (in)
        sp_wipe(in, n);
    if (!json_is_object(f->in))
        return sp_err_set(err, SP_E_BAD_REQUEST, "The body must be a JSON object");
    json_object_foreach(f->in, k, m)
    {
        static const char allowed[] = " url method headers query body body_base64 auth ";
        char w[80];
        snprintf(w, sizeof(w), " %.60s ", k);
        if (!strstr(allowed, w))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Unknown field '%.60s'", k);
    }
    m = json_object_get(f->in, "method");
    snprintf(f->method, sizeof(f->method), "%s",
             m ? json_string_value(m) ? json_string_value(m) : "" : "GET");
    if (!header_name_ok(f->method) || strlen(f->method) > 12)
        return sp_err_set(err, SP_E_BAD_REQUEST, "'method' must be an HTTP method");
    b = json_object_get(f->in, "body");
    b64 = json_object_get(f->in, "body_base64");
    if (b && b64)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Give 'body' or 'body_base64', not both");
    sp_buf_init(&f->body, (size_t)f->w->conf->proxy_max_body_size.i, 1);
    if (b && (!json_is_string(b) ||
              sp_buf_add(&f->body, json_string_value(b), json_string_length(b), err) < 0))
        return sp_err_set(err, SP_E_BAD_REQUEST, "'body' must be a string");
    if (b64) {
        size_t outlen, len = json_string_length(b64);
        if (!json_is_string(b64) || sp_buf_reserve(&f->body, sp_base64_dec_max(len), err) < 0 ||
            sp_base64_decode(f->body.data, &outlen, json_string_value(b64), len) < 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "'body_base64' must be base64");
        f->body.len = outlen;
    }
    if (build_url(f, err) < 0 || parse_headers(f, json_object_get(f->in, "headers"), err) < 0)
        return -1;
    return parse_auth(f, json_object_get(f->in, "auth"), err);
}

/* ---- the answer ---- */

static int on_head(void *arg, const struct sp_upstream_head *hd)
{
    struct fetch *f = arg;
    const struct sp_upstream_header *h = hd->headers;
    size_t n = hd->n_headers;

    sp_metrics_upstream_connection(hd->reused);
    f->status = hd->status;
    f->resp_headers = json_object();
    if (!f->resp_headers)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char name[256];
        json_t *old, *v;
        if (h[i].name_len >= sizeof(name))
            continue;
        memcpy(name, h[i].name, h[i].name_len);
        name[h[i].name_len] = '\0';
        v = json_stringn_nocheck(h[i].value, h[i].value_len);
        if (!v)
            return -1;
        old = json_object_get(f->resp_headers, name);
        if (!old) {
            json_object_set_new(f->resp_headers, name, v);
        } else if (json_is_array(old)) {
            json_array_append_new(old, v);
        } else {
            json_t *arr = json_array();
            json_array_append(arr, old);
            json_array_append_new(arr, v);
            json_object_set_new(f->resp_headers, name, arr);
        }
    }
    return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
    struct fetch *f = arg;

    return sp_buf_add(&f->resp_body, p, n, NULL);
}

static int utf8_text(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n); /* jansson validates UTF-8 */
    int ok = j != NULL && memchr(s, '\0', n) == NULL;

    json_decref(j);
    return ok;
}

static void reply(struct fetch *f)
{
    struct sp_redactor *r = sp_resolution_redactor(f->res);
    int redact = f->w->conf->proxy_echo_redaction.i && sp_resolution_refs(f->res) > 0;
    struct sp_buf body, out, hdrs;
    char *hj = json_dumps(f->resp_headers, JSON_COMPACT);
    struct sp_err e;

    sp_buf_init(&body, 0, 1);
    sp_buf_init(&out, 0, 1);
    sp_buf_init(&hdrs, 0, 1);
    /* The answer, its headers included, goes through the redactor. */
    if (!hj ||
        (redact ? sp_redactor_redact(r, f->resp_body.data ? f->resp_body.data : "",
                                     f->resp_body.len, &body, &e)
                : sp_buf_add(&body, f->resp_body.data ? f->resp_body.data : "", f->resp_body.len,
                             &e)) < 0 ||
        (redact ? sp_redactor_redact(r, hj, strlen(hj), &hdrs, &e) : sp_buf_addstr(&hdrs, hj, &e)) <
            0)
        goto fail;
    if (sp_buf_printf(&out, &e, "{\"status\":%d,\"headers\":", f->status) < 0 ||
        sp_buf_add(&out, hdrs.data, hdrs.len, &e) < 0)
        goto fail;
    if (utf8_text(body.data ? body.data : "", body.len)) {
        if (sp_buf_addstr(&out, ",\"body\":\"", &e) < 0 ||
            sp_json_escape(&out, body.data ? body.data : "", body.len, &e) < 0 ||
            sp_buf_addstr(&out, "\"}\n", &e) < 0)
            goto fail;
    } else {
        if (sp_buf_addstr(&out, ",\"body_base64\":\"", &e) < 0 ||
            sp_buf_reserve(&out, sp_base64_enc_len(body.len) + 4, &e) < 0)
            goto fail;
        out.len += sp_base64_encode(out.data + out.len, body.data, body.len);
        if (sp_buf_addstr(&out, "\"}\n", &e) < 0)
            goto fail;
    }
    {
        const struct sp_h1_header h[] = {
            {"Content-Type", 12, "application/json", 16},
            {"Cache-Control", 13, "no-store", 8},
            {"Secretproxy-Request-Id", 22, f->rid, strlen(f->rid)},
        };
        sp_h1_reply(f->req, 200, NULL, h, SP_ARRAY_LEN(h), out.data, out.len);
        f->req = NULL;
    }
    goto done;
fail:
    sp_free_wiped_str(hj);
    hj = NULL;
    sp_buf_free(&body);
    sp_buf_free(&out);
    sp_buf_free(&hdrs);
    fetch_fail(f, &e);
    return;
done:
    sp_free_wiped_str(hj);
    sp_buf_free(&body);
    sp_buf_free(&out);
    sp_buf_free(&hdrs);
    f->status = 200;
    fetch_free(f);
}

static void on_done(void *arg, const struct sp_err *err, int head_sent)
{
    struct fetch *f = arg;

    f->up = NULL;
    f->upstream_us = sp_mono_us() - f->t_up_start;
    sp_metrics_upstream_latency(f->upstream_us);
    if (err) {
        fetch_fail(f, err);
        return;
    }
    reply(f);
}

/* ---- resolution and the upstream request ---- */

/* The resolved basic or bearer block as an Authorization header value
 * (awsv4 signs later). A value that would break the header (CR, LF, NUL)
 * is refused like any header value. */
static int compose_auth(struct fetch *f, struct sp_buf *auth, struct sp_err *err)
{
    const char *v[2];
    size_t n[2];

    if (f->auth_kind != 1 && f->auth_kind != 2)
        return 0;
    for (size_t i = 0; i < f->nextra && i < 2; i++) {
        const struct sp_buf *b = sp_resolution_extra(f->res, i);
        v[i] = b ? b->data : f->extra[i];
        n[i] = b ? b->len : f->extra_len[i];
    }
    if (f->auth_kind == 2) {
        if (memchr(v[0], '\r', n[0]) || memchr(v[0], '\n', n[0]) || memchr(v[0], '\0', n[0]))
            return sp_err_set(err, SP_E_SECRET_UNSAFE_VALUE,
                              "auth.bearer resolves to a value not allowed in a header");
        return sp_buf_addstr(auth, "Bearer ", err) < 0 ? -1 : sp_buf_add(auth, v[0], n[0], err);
    }
    if (f->auth_kind == 1) {
        struct sp_buf cred;
        int rc;
        sp_buf_init(&cred, 0, 1);
        rc = sp_buf_add(&cred, v[0], n[0], err) < 0 || sp_buf_addstr(&cred, ":", err) < 0 ||
                     sp_buf_add(&cred, v[1], n[1], err) < 0 ||
                     sp_buf_addstr(auth, "Basic ", err) < 0 ||
                     sp_buf_reserve(auth, sp_base64_enc_len(cred.len) + 1, err) < 0
                 ? -1
                 : 0;
        if (rc == 0)
            auth->len += sp_base64_encode(auth->data + auth->len, cred.data, cred.len);
        sp_buf_free(&cred);
        return rc;
    }
    return 0;
}

static void on_resolved(struct sp_resolution *res, const struct sp_err *err, void *arg)
{
    struct fetch *f = arg;
    struct sp_upstream_header hs[MAX_FETCH_HEADERS + 2 + SP_SIGV4_MAX_SET];
    struct sp_upstream_callbacks cbs = {on_head, on_body, on_done};
    struct sp_upstream_request r;
    struct sp_buf url, auth, host;
    struct sp_body_digests digests;
    const struct sp_buf *body;
    struct sp_err e;
    size_t n = 0;

    f->store_us = sp_mono_us() - f->store_us;
    f->res = res;
    if (err) {
        fetch_fail(f, err);
        return;
    }
    sp_buf_init(&url, 0, 1);
    sp_buf_init(&auth, 0, 1);
    sp_buf_init(&host, 0, 0);
    if (sp_target_url(&f->target, sp_resolution_path(f->res), sp_resolution_query(f->res), &url) <
            0 ||
        sp_target_authority(&f->target, &host) < 0) {
        sp_err_set(&e, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    if (compose_auth(f, &auth, &e) < 0)
        goto fail;
    hs[n++] = (struct sp_upstream_header){"Host", 4, host.data, host.len};
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct sp_buf *v = sp_resolution_header(f->res, i);
        if (f->auth_kind && sp_eq_ci(f->headers[i].name, f->headers[i].name_len, "Authorization"))
            continue; /* auth wins over a header of the same name */
        hs[n++] = (struct sp_upstream_header){f->headers[i].name, f->headers[i].name_len,
                                              v ? v->data : f->headers[i].value,
                                              v ? v->len : f->headers[i].value_len};
    }
    if (auth.len)
        hs[n++] = (struct sp_upstream_header){"Authorization", 13, auth.data, auth.len};
    body = sp_resolution_body(f->res);
    if (body)
        (void)sp_body_digests_refresh(hs, n, body->data, body->len, &digests);
    sp_fill_upstream_request(&r, f->method, &url, hs, n, body ? body->data : f->body.data,
                             body ? body->len : f->body.len);
    /* SigV4 signs the request exactly as it goes upstream. */
    if (f->auth_kind == 3 && sp_fetch_awsv4_sign(&f->aws, f->res, 0, f->w->sigv4_cache, &r, hs,
                                                 sizeof(hs) / sizeof(hs[0]), &e) < 0)
        goto fail;
    sp_buf_init(&f->resp_body, (size_t)f->w->conf->proxy_max_body_size.i, 1);
    f->t_up_start = sp_mono_us();
    f->up = sp_upstream_start(f->w->upstream, &r, &cbs, f, &e);
    sp_fetch_awsv4_clear(&f->aws);
    sp_buf_free(&url);
    sp_buf_free(&auth);
    sp_buf_free(&host);
    if (!f->up)
        fetch_fail(f, &e);
    return;
fail:
    sp_buf_free(&url);
    sp_buf_free(&auth);
    sp_buf_free(&host);
    fetch_fail(f, &e);
}

void sp_fetch_request(struct sp_worker *w, struct sp_h1_req *req)
{
    static const struct sp_h1_header allow = {"Allow", 5, "POST", 4};
    struct fetch *f = calloc(1, sizeof(*f));
    char token[256];
    struct sp_caller asserted;
    struct sp_rrequest q;
    struct sp_resolve_opts o;
    const char *ct = NULL;
    struct sp_err err;

    if (!f) {
        sp_err_set(&err, SP_E_INTERNAL, "out of memory");
        sp_h1_reply_error(req, NULL, &err, NULL, 0);
        return;
    }
    f->w = w;
    f->req = req;
    f->t0_us = sp_mono_us();
    f->code = SP_E_OK;
    sp_http_request_id(f->rid);
    snprintf(f->method, sizeof(f->method), "POST");
    w->inflight++;
    if (!sp_h1_req_method_is(req, "POST")) {
        sp_err_set(&err, SP_E_METHOD_NOT_ALLOWED, "Use POST /v1/fetch");
        fetch_fail_with(f, &err, &allow, 1);
        return;
    }
    /* The key: Authorization: Bearer, or Proxy-Authorization. */
    if (sp_http_credential(sp_h1_req_header(req, "Authorization"), token, sizeof(token), 0) < 0 &&
        sp_http_credential(sp_h1_req_header(req, "Proxy-Authorization"), token, sizeof(token), 1) <
            0) {
        sp_err_set(&err, SP_E_PROXY_AUTH_REQUIRED,
                   "An API key is required (Authorization: Bearer KEY)");
        fetch_fail(f, &err);
        return;
    }
    memset(&asserted, 0, sizeof(asserted));
    asserted.user = sp_h1_req_header(req, "Secretproxy-User");
    asserted.function = sp_h1_req_header(req, "Secretproxy-Function");
    asserted.app = sp_h1_req_header(req, "Secretproxy-App");
    asserted.env = sp_h1_req_header(req, "Secretproxy-Env");
    if (parse_description(f, &err) < 0 || sp_worker_check_target(w, &f->target, &err) < 0) {
        sp_wipe(token, sizeof(token));
        fetch_fail(f, &err);
        return;
    }
    for (size_t i = 0; i < f->nheaders; i++)
        if (sp_eq_ci(f->headers[i].name, f->headers[i].name_len, "Content-Type"))
            ct = f->headers[i].value;
    memset(&q, 0, sizeof(q));
    q.host = f->target.host;
    q.path = f->target.path, q.path_len = f->target.path_len;
    q.query = f->target.query, q.query_len = f->target.query_len;
    q.headers = f->headers, q.nheaders = f->nheaders;
    q.body = f->body.data, q.body_len = f->body.len;
    q.content_type = ct;
    q.extra = f->extra, q.extra_len = f->extra_len, q.nextra = f->nextra;
    memset(&o, 0, sizeof(o));
    o.required_perms = SP_PERM_PROXY;
    o.empty_hosts_any = strcmp(w->conf->secrets_empty_hosts.s, "any") == 0;
    o.default_app = w->conf->proxy_default_app.s;
    o.default_env = w->conf->proxy_default_env.s;
    o.max_body = (size_t)w->conf->proxy_max_body_size.i * 2 + 65536;
    f->store_us = sp_mono_us();
    if (sp_resolver_run(w->store, token, strlen(token), &asserted, &q, &o, on_resolved, f, &err) <
        0) {
        f->store_us = 0; /* never reached the store */
        fetch_fail(f, &err);
    }
    sp_wipe(token, sizeof(token));
}
