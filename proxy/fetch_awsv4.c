/*
 * fetch_awsv4.c - auth.awsv4 of POST /v1/fetch: reading the block
 * {access_key_id, secret_access_key, session_token?, region, service,
 * unsigned_payload?} and signing the final upstream request (after
 * substitution) with SigV4 in header mode. The credentials are resolver
 * extras, so a reference in them resolves in the request's one store round
 * trip and is redacted like any other value.
 */
#include "proxy_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const cred_field[SP_FETCH_AWSV4_CREDS] = {"access_key_id", "secret_access_key",
                                                             "session_token"};

/* region and service: [a-z0-9-]{1,63}, the signer's limit. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SP_SIGV4_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int copy_name(json_t *o, const char *field, char *out, struct sp_err *err)
{
    json_t *v = json_object_get(o, field);

    if (!json_is_string(v) || !name_ok(json_string_value(v), json_string_length(v)))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "auth.awsv4.%s must be a string of [a-z0-9-]{1,%d}", field,
                          SP_SIGV4_MAX_NAME);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int sp_fetch_awsv4_parse(json_t *o, struct sp_fetch_awsv4 *a, struct sp_err *err)
{
    static const char allowed[] = " access_key_id secret_access_key session_token region service "
                                  "unsigned_payload ";
    const char *k;
    json_t *v;

    memset(a, 0, sizeof(*a));
    if (!json_is_object(o))
        return sp_err_set(err, SP_E_BAD_REQUEST, "auth.awsv4 must be an object");
    json_object_foreach(o, k, v)
    {
        char w[80];
        snprintf(w, sizeof(w), " %.60s ", k);
        if (!strstr(allowed, w))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Unknown field auth.awsv4.%.60s", k);
    }
    for (size_t i = 0; i < SP_FETCH_AWSV4_CREDS; i++) {
        v = json_object_get(o, cred_field[i]);
        if (i == 2 && (!v || json_is_null(v)))
            break;
        if (!json_is_string(v))
            return sp_err_set(err, SP_E_BAD_REQUEST, "auth.awsv4.%s must be a string",
                              cred_field[i]);
        a->cred[i] = json_string_value(v);
        a->cred_len[i] = json_string_length(v);
        a->ncred = i + 1;
    }
    if (copy_name(o, "region", a->region, err) < 0 || copy_name(o, "service", a->service, err) < 0)
        return -1;
    v = json_object_get(o, "unsigned_payload");
    if (v && !json_is_boolean(v))
        return sp_err_set(err, SP_E_BAD_REQUEST, "auth.awsv4.unsigned_payload must be a boolean");
    a->unsigned_payload = json_is_true(v);
    return 0;
}

/* The resolved credentials. A value with CR, LF or NUL is refused: the key
 * id and token go into headers, and no real secret key holds them. */
static int resolved_creds(const struct sp_fetch_awsv4 *a, const struct sp_resolution *res,
                          size_t first_extra, struct sp_sigv4_creds *c, struct sp_err *err)
{
    const char *v[SP_FETCH_AWSV4_CREDS] = {NULL, NULL, NULL};
    size_t n[SP_FETCH_AWSV4_CREDS] = {0, 0, 0};

    for (size_t i = 0; i < a->ncred; i++) {
        const struct sp_buf *b = sp_resolution_extra(res, first_extra + i);
        v[i] = b ? b->data : a->cred[i];
        n[i] = b ? b->len : a->cred_len[i];
        if (n[i] &&
            (memchr(v[i], '\r', n[i]) || memchr(v[i], '\n', n[i]) || memchr(v[i], '\0', n[i])))
            return sp_err_set(err, SP_E_SECRET_UNSAFE_VALUE,
                              "auth.awsv4.%s resolves to a value not allowed in a request",
                              cred_field[i]);
    }
    *c = (struct sp_sigv4_creds){v[0], n[0], v[1], n[1], v[2], n[2]};
    return 0;
}

/* Path and query of an absolute URL as sp_target_url builds it (no
 * fragment, no user information). */
static void split_url(const char *url, size_t len, struct sp_sigv4_request *q)
{
    const char *end = url + len, *p = memchr(url, ':', len), *qm;

    p = p && end - p >= 3 ? p + 3 : url;
    while (p < end && *p != '/' && *p != '?')
        p++;
    qm = memchr(p, '?', (size_t)(end - p));
    q->path = p;
    q->path_len = (size_t)((qm ? qm : end) - p);
    q->query = qm ? qm + 1 : NULL;
    q->query_len = qm ? (size_t)(end - qm - 1) : 0;
}

int sp_awsv4_apply_result(const struct sp_sigv4_result *sig, struct sp_upstream_header *hs,
                          size_t *n_hs, size_t cap, struct sp_err *err)
{
    size_t n = 0;

    for (size_t i = 0; i < *n_hs; i++)
        if (!sp_sigv4_result_replaces(sig, hs[i].name, hs[i].name_len))
            hs[n++] = hs[i];
    if (n + sig->n_set > cap)
        return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "Too many headers with the signature");
    for (size_t i = 0; i < sig->n_set; i++)
        hs[n++] = (struct sp_upstream_header){sig->set[i].name, sig->set[i].name_len,
                                              sig->set[i].value, sig->set[i].value_len};
    *n_hs = n;
    return 0;
}

int sp_fetch_awsv4_sign(struct sp_fetch_awsv4 *a, const struct sp_resolution *res,
                        size_t first_extra, struct sp_sigv4_key_cache *cache,
                        struct sp_upstream_request *r, struct sp_upstream_header *hs, size_t cap,
                        struct sp_err *err)
{
    struct sp_sigv4_header sh[SP_FETCH_AWSV4_MAX_HEADERS];
    char date[SP_SIGV4_AMZ_DATE_LEN + 1], payload[SP_SIGV4_SIG_HEX_LEN + 1];
    struct sp_sigv4_request q;
    struct sp_sigv4_creds c;
    struct sp_sigv4_opts o;
    size_t n;
    int rc;

    if (resolved_creds(a, res, first_extra, &c, err) < 0)
        return -1;
    if (r->n_headers > SP_FETCH_AWSV4_MAX_HEADERS)
        return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "Too many headers to sign");
    for (size_t i = 0; i < r->n_headers; i++)
        sh[i] = (struct sp_sigv4_header){hs[i].name, hs[i].name_len, hs[i].value, hs[i].value_len};
    memset(&q, 0, sizeof(q));
    q.method = r->method, q.method_len = r->method_len;
    split_url(r->url, r->url_len, &q);
    q.headers = sh, q.n_headers = r->n_headers;
    if (a->unsigned_payload)
        memcpy(payload, SP_SIGV4_UNSIGNED_PAYLOAD, sizeof(SP_SIGV4_UNSIGNED_PAYLOAD));
    else
        sp_sigv4_sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, payload);
    q.payload_hash = payload, q.payload_hash_len = strlen(payload);
    sp_sigv4_format_amz_date(sp_now_ms() / 1000, date);
    memset(&o, 0, sizeof(o));
    o.mode = SP_SIGV4_MODE_HEADER;
    o.region = a->region;
    o.service = a->service;
    o.amz_date = date;
    o.path_mode = sp_sigv4_path_mode_for(a->service);
    /* S3 (s3, s3-object-lambda, s3-outposts) wants the payload hash as a header; so does
     * UNSIGNED-PAYLOAD. */
    o.add_content_sha256 = o.path_mode == SP_SIGV4_PATH_AS_IS || a->unsigned_payload;
    o.cache = cache;
    sp_sigv4_result_free(&a->sig);
    memset(&a->sig, 0, sizeof(a->sig));
    if (sp_sigv4_sign(&q, &c, &o, &a->sig, err) < 0)
        return -1;
    n = r->n_headers;
    rc = sp_awsv4_apply_result(&a->sig, hs, &n, cap, err);
    r->headers = hs;
    r->n_headers = n;
    if (rc < 0)
        sp_fetch_awsv4_clear(a);
    return rc;
}

void sp_fetch_awsv4_clear(struct sp_fetch_awsv4 *a)
{
    sp_sigv4_result_free(&a->sig);
}
