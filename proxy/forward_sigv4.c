/*
 * forward_sigv4.c - re-signing an unmodified AWS SDK's request in the
 * forward proxy (DESIGN §6). The SDK signs with a secret reference as its
 * access key id and a dummy secret key; we find that signature (an
 * Authorization header, or the X-Amz-* parameters of a presigned URL),
 * hand the reference to the resolver as an extra that must name a secret
 * of type aws, and once the request is substituted sign it again with the
 * real key pair, the SDK's date, region, service and signed headers, plus
 * every header substitution changed. aws-chunked bodies get a new chain of
 * chunk signatures; STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies pass through.
 */
#include "proxy_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The parameters a presigned URL's signature consists of. */
static const char *const presign_param[] = {
    "X-Amz-Algorithm",     "X-Amz-Credential", "X-Amz-Date",          "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature",  "X-Amz-Security-Token"};

static const char *trim(const char *v, size_t *n)
{
    while (*n && (v[0] == ' ' || v[0] == '\t'))
        v++, (*n)--;
    while (*n && (v[*n - 1] == ' ' || v[*n - 1] == '\t'))
        (*n)--;
    return v;
}

/* ---- finding an SDK's signature ---- */

/* The query without the presigned URL's signing parameters. */
static int strip_presign(const char *q, size_t n, struct sp_buf *out, struct sp_err *err)
{
    size_t i = 0;

    while (i < n) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n, name = i;
        int drop = 0;

        while (name < end && q[name] != '=')
            name++;
        for (size_t k = 0; k < SP_ARRAY_LEN(presign_param); k++)
            drop |= strlen(presign_param[k]) == name - i &&
                    memcmp(q + i, presign_param[k], name - i) == 0;
        if (!drop && end > i &&
            ((out->len && sp_buf_add(out, "&", 1, err) < 0) ||
             sp_buf_add(out, q + i, end - i, err) < 0))
            return -1;
        i = end + 1;
    }
    return sp_buf_add(out, "", 0, err);
}

static int key_id_is_reference(const struct sp_sigv4_auth *auth)
{
    return sp_text_has_ref(auth->key_id, auth->key_id_len, 0);
}

static int detect_header(struct sp_fwd_sigv4 *a, struct sp_rheader *h, size_t n, struct sp_err *err)
{
    size_t found = SIZE_MAX;

    for (size_t i = 0; i < n; i++) {
        size_t vl = h[i].value_len;
        const char *v = trim(h[i].value, &vl);
        if (!sp_eq_ci(h[i].name, h[i].name_len, "Authorization") || vl < 17 ||
            memcmp(v, SP_SIGV4_ALGORITHM " ", 17) != 0 || !sp_text_has_ref(v, vl, 0))
            continue;
        if (found != SIZE_MAX)
            return sp_err_set(err, SP_E_BAD_REQUEST, "More than one SigV4 Authorization header");
        if (sp_sigv4_parse_authorization(v, vl, &a->auth, err) < 0)
            return -1;
        found = i;
    }
    if (found == SIZE_MAX)
        return 0;
    if (!key_id_is_reference(&a->auth))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "A secret reference in a SigV4 Authorization header must be its "
                          "access key id (Credential=$Secret{NAME}/...)");
    for (size_t i = 0; i < n; i++) {
        size_t vl = h[i].value_len;
        const char *v = trim(h[i].value, &vl);
        if (!sp_eq_ci(h[i].name, h[i].name_len, "X-Amz-Date"))
            continue;
        if (vl != SP_SIGV4_AMZ_DATE_LEN || a->amz_date[0])
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed or repeated X-Amz-Date header");
        memcpy(a->amz_date, v, vl);
        a->amz_date[vl] = '\0';
    }
    if (!a->amz_date[0])
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "A SigV4 request to re-sign needs an X-Amz-Date header");
    /* The signature is replaced: its text is never resolved or forwarded. */
    h[found].value_len = 0;
    a->mode = SP_FWD_SIGV4_HEADER;
    return 1;
}

static int detect_query(struct sp_fwd_sigv4 *a, const char *q, size_t n, struct sp_err *err)
{
    static const char cred[] = "X-Amz-Credential=";
    const char *p = q;
    int has = 0;

    /* Only a presigned URL whose credential holds a reference is ours. */
    while (p && (size_t)(p - q) < n) {
        size_t left = n - (size_t)(p - q), vl;
        const char *amp;
        if (left >= sizeof(cred) - 1 && memcmp(p, cred, sizeof(cred) - 1) == 0) {
            amp = memchr(p, '&', left);
            vl = (amp ? (size_t)(amp - p) : left) - (sizeof(cred) - 1);
            has |= sp_text_has_ref(p + sizeof(cred) - 1, vl, SP_TEXT_SCAN_PERCENT);
        }
        amp = memchr(p, '&', left);
        p = amp ? amp + 1 : NULL;
    }
    if (!has)
        return 0;
    if (sp_sigv4_parse_presigned(q, n, &a->auth, err) < 0)
        return -1;
    if (!key_id_is_reference(&a->auth))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "A secret reference in X-Amz-Credential must be the access key id");
    memcpy(a->amz_date, a->auth.amz_date, sizeof(a->amz_date));
    sp_buf_init(&a->query, n + 1, 0);
    if (strip_presign(q, n, &a->query, err) < 0)
        return -1;
    a->mode = SP_FWD_SIGV4_QUERY;
    return 1;
}

/* The body's aws-chunked mode, from X-Amz-Content-Sha256 (0: not chunked). */
static int streaming_mode(const struct sp_rheader *h, size_t n, struct sp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        size_t vl = h[i].value_len;
        const char *v = trim(h[i].value, &vl);
        enum sp_sigv4_chunked_mode m;
        if (!sp_eq_ci(h[i].name, h[i].name_len, "X-Amz-Content-Sha256"))
            continue;
        if (sp_sigv4_chunked_mode_for(v, vl, &m) == 0)
            return (int)m;
        if (vl > 10 && memcmp(v, "STREAMING-", 10) == 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "This streaming payload (X-Amz-Content-Sha256) cannot be re-signed");
    }
    return 0;
}

int sp_fwd_sigv4_detect(struct sp_fwd_sigv4 *a, struct sp_rheader *h, size_t n, const char *query,
                        size_t query_len, struct sp_err *err)
{
    int rc;

    memset(a, 0, sizeof(*a));
    rc = detect_header(a, h, n, err);
    if (rc == 0 && query)
        rc = detect_query(a, query, query_len, err);
    if (rc <= 0)
        return rc;
    if (memcmp(a->amz_date, a->auth.date, 8) != 0)
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "The SigV4 credential's date does not match X-Amz-Date");
    rc = streaming_mode(h, n, err);
    if (rc < 0)
        return -1;
    a->streaming = rc;
    return 1;
}

/* ---- signing again ---- */

struct creds {
    json_t *j;
    struct sp_sigv4_creds c;
};

/* The aws secret's JSON (checked when it was stored; checked again). Each
 * part is added to the request's redactor: the key id goes upstream in the
 * Authorization header and may come back in an echo. */
static int load_creds(struct sp_resolution *res, size_t extra, struct creds *cr, struct sp_err *err)
{
    const struct sp_buf *v = sp_resolution_extra(res, extra);
    static const char *const field[] = {"access_key_id", "secret_access_key", "session_token"};
    const char *s[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    json_error_t je;

    memset(cr, 0, sizeof(*cr));
    if (!v)
        return sp_err_set(err, SP_E_INTERNAL, "the SigV4 credential was not resolved");
    cr->j = json_loadb(v->data, v->len, 0, &je);
    sp_wipe(&je, sizeof(je));
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_object_get(cr->j, field[i]);
        if (i == 2 && !f)
            break;
        if (!json_is_string(f) || json_string_length(f) == 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "The aws secret does not hold {\"access_key_id\", "
                              "\"secret_access_key\", \"session_token\"?}");
        s[i] = json_string_value(f);
        len[i] = json_string_length(f);
        if (sp_redactor_add(sp_resolution_redactor(res), s[i], len[i], err) < 0)
            return -1;
    }
    cr->c = (struct sp_sigv4_creds){s[0], len[0], s[1], len[1], s[2], len[2]};
    return 0;
}

static void free_creds(struct creds *cr)
{
    json_decref(cr->j); /* jansson's free wipes (keyring_file.c) */
    memset(cr, 0, sizeof(*cr));
}

static const struct sp_upstream_header *find(const struct sp_upstream_header *hs, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (sp_eq_ci(hs[i].name, hs[i].name_len, name))
            return &hs[i];
    return NULL;
}

static int list_has(const struct sp_buf *l, const char *name, size_t n)
{
    size_t i = 0;

    while (i < l->len) {
        const char *semi = memchr(l->data + i, ';', l->len - i);
        size_t end = semi ? (size_t)(semi - l->data) : l->len;
        if (end - i == n && strncasecmp(l->data + i, name, n) == 0)
            return 1;
        i = end + 1;
    }
    return 0;
}

static int list_add(struct sp_buf *l, const char *name, size_t n, struct sp_err *err)
{
    if (list_has(l, name, n))
        return 0;
    return (l->len && sp_buf_add(l, ";", 1, err) < 0) || sp_buf_add(l, name, n, err) < 0 ? -1 : 0;
}

/* The SDK's signed headers that are still in the request (a header the
 * proxy drops, such as Accept-Encoding under echo redaction, cannot be
 * signed), Content-Length when the SDK signed it and a body is framed,
 * then every header substitution changed. */
static int signed_list(const struct sp_fwd_sigv4 *a, const struct sp_fwd_sigv4_req *q,
                       const struct sp_rheader *in, size_t n_in, struct sp_resolution *res,
                       struct sp_buf *l, int *sign_length, struct sp_err *err)
{
    const char *s = a->auth.signed_headers;
    size_t n = strlen(s), i = 0;

    *sign_length = 0;
    while (i <= n) {
        const char *semi = memchr(s + i, ';', n - i);
        size_t end = semi ? (size_t)(semi - s) : n;
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(end - i < 127 ? end - i : 127), s + i);
        if (sp_eq_ci(name, strlen(name), "content-length")) {
            *sign_length = q->body_framed;
            if (q->body_framed && list_add(l, name, strlen(name), err) < 0)
                return -1;
        } else if ((find(q->hs, q->n_hs, name) || sp_eq_ci(name, strlen(name), "x-amz-date") ||
                    sp_eq_ci(name, strlen(name), "x-amz-security-token")) &&
                   list_add(l, s + i, end - i, err) < 0) {
            return -1;
        }
        i = end + 1;
    }
    for (size_t k = 0; k < n_in; k++)
        if (sp_resolution_header(res, k) && list_add(l, in[k].name, in[k].name_len, err) < 0)
            return -1;
    return 0;
}

/* The payload hash to sign with: NULL keeps the request's own
 * X-Amz-Content-Sha256 (or, without one, hashes the body); a body that
 * substitution changed gets its hash recomputed. */
static const char *payload_hash(const struct sp_fwd_sigv4 *a, const struct sp_fwd_sigv4_req *q,
                                char out[SP_SIGV4_SIG_HEX_LEN + 1])
{
    const struct sp_upstream_header *h = find(q->hs, q->n_hs, "X-Amz-Content-Sha256");

    if (a->mode == SP_FWD_SIGV4_QUERY)
        return h ? NULL : SP_SIGV4_UNSIGNED_PAYLOAD;
    if (h && q->body_changed && !a->streaming) {
        size_t vl = h->value_len;
        const char *v = trim(h->value, &vl);
        if (vl == SP_SIGV4_SIG_HEX_LEN && strspn(v, "0123456789abcdefABCDEF") >= vl) {
            sp_sigv4_sha256_hex(q->body ? q->body : "", q->body_len, out);
            return out;
        }
    }
    return NULL;
}

/* The aws-chunked re-writer: a new chain of chunk signatures in the signed
 * modes (output as long as the input), a framing check in the unsigned
 * one. A buffered body goes through it at once; a streamed one through
 * sp_fwd_sigv4_body as it arrives. */
static int open_chunks(struct sp_fwd_sigv4 *a, const struct sp_sigv4_creds *c,
                       const struct sp_sigv4_opts *o, struct sp_fwd_sigv4_req *q,
                       struct sp_err *err)
{
    struct sp_sigv4_chain *chain = NULL;

    if (a->streaming != SP_SIGV4_CHUNKED_UNSIGNED_TRAILER) {
        chain = sp_sigv4_chain_new(c, o, a->sig.signature, err);
        if (!chain)
            return -1;
    }
    a->chunks = sp_sigv4_chunked_new((enum sp_sigv4_chunked_mode)a->streaming, chain, 0, err);
    if (!a->chunks)
        return -1;
    if (q->streamed)
        return 0;
    sp_buf_init(&a->body, q->body_len + 1, 0);
    if (sp_fwd_sigv4_body(a, q->body, q->body_len, 1, &a->body, err) < 0)
        return -1;
    q->body = a->body.data;
    q->body_len = a->body.len;
    return 0;
}

int sp_fwd_sigv4_body(struct sp_fwd_sigv4 *a, const char *p, size_t n, int last, struct sp_buf *out,
                      struct sp_err *err)
{
    if (!a->chunks)
        return sp_err_set(err, SP_E_INTERNAL, "the aws-chunked body was not expected");
    if (sp_sigv4_chunked_feed(a->chunks, p ? p : "", n, out, err) < 0)
        return -1;
    return last ? sp_sigv4_chunked_finish(a->chunks, err) : 0;
}

int sp_fwd_sigv4_sign(struct sp_fwd_sigv4 *a, struct sp_resolution *res, size_t extra,
                      struct sp_sigv4_key_cache *cache, const struct sp_rheader *in, size_t n_in,
                      struct sp_fwd_sigv4_req *q, struct sp_err *err)
{
    struct sp_sigv4_header sh[SP_FETCH_AWSV4_MAX_HEADERS + 1];
    char hash[SP_SIGV4_SIG_HEX_LEN + 1], length[24];
    struct sp_sigv4_request r;
    struct sp_sigv4_opts o;
    struct sp_buf list;
    struct creds cr;
    int sign_length, rc = -1;
    size_t n = 0;

    sp_buf_init(&list, SP_SIGV4_MAX_SIGNED, 0);
    if (load_creds(res, extra, &cr, err) < 0 ||
        signed_list(a, q, in, n_in, res, &list, &sign_length, err) < 0)
        goto out;
    if (q->n_hs + 1 > SP_ARRAY_LEN(sh)) {
        sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "Too many headers to sign");
        goto out;
    }
    for (size_t i = 0; i < q->n_hs; i++)
        sh[n++] = (struct sp_sigv4_header){q->hs[i].name, q->hs[i].name_len, q->hs[i].value,
                                           q->hs[i].value_len};
    if (sign_length) {
        int len = snprintf(length, sizeof(length), "%zu", q->body_len);
        sh[n++] = (struct sp_sigv4_header){"Content-Length", 14, length, (size_t)len};
    }
    memset(&r, 0, sizeof(r));
    r.method = q->method, r.method_len = strlen(q->method);
    r.path = q->path, r.path_len = q->path_len;
    r.query = q->query, r.query_len = q->query_len;
    r.headers = sh, r.n_headers = n;
    r.payload_hash = payload_hash(a, q, hash);
    r.payload_hash_len = r.payload_hash ? strlen(r.payload_hash) : 0;
    r.body = q->body, r.body_len = q->body_len;
    memset(&o, 0, sizeof(o));
    o.mode = a->mode == SP_FWD_SIGV4_QUERY ? SP_SIGV4_MODE_QUERY : SP_SIGV4_MODE_HEADER;
    o.region = a->auth.region;
    o.service = a->auth.service;
    o.amz_date = a->amz_date;
    o.path_mode = sp_sigv4_path_mode_for(a->auth.service);
    o.signed_headers = list.data;
    o.signed_headers_len = list.len;
    o.expires = a->auth.expires;
    o.cache = cache;
    sp_sigv4_result_free(&a->sig);
    if (sp_sigv4_sign(&r, &cr.c, &o, &a->sig, err) < 0 ||
        (a->streaming && open_chunks(a, &cr.c, &o, q, err) < 0) ||
        sp_awsv4_apply_result(&a->sig, q->hs, &q->n_hs, q->cap, err) < 0)
        goto out;
    q->signed_query = o.mode == SP_SIGV4_MODE_QUERY ? &a->sig.query : NULL;
    rc = 0;
out:
    free_creds(&cr);
    sp_buf_free(&list);
    return rc;
}

void sp_fwd_sigv4_clear(struct sp_fwd_sigv4 *a)
{
    sp_sigv4_chunked_free(a->chunks);
    sp_sigv4_result_free(&a->sig);
    sp_buf_free(&a->query);
    sp_buf_free(&a->body);
    sp_wipe(a, sizeof(*a));
}
