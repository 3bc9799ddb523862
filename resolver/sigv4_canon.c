/*
 * sigv4_canon.c - the URL half of the SigV4 canonical request: percent-
 * encoding, the canonical URI (S3's path as given, or botocore's dot-segment
 * removal and double encoding for every other service) and the canonical
 * query string (decoded, re-encoded, sorted by name then value).
 */
#include <stdlib.h>
#include <string.h>

#include "sigv4_int.h"

#define QUERY_MAX ((size_t)16 << 20)

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Append p[0..n) percent-encoded: RFC 3986 unreserved bytes (and '/' when
 * keep_slash) as they are, every other byte as %XX with upper-case hex. */
int sp_sigv4_pct_encode(struct sp_buf *b, const char *p, size_t n, int keep_slash,
                        struct sp_err *err)
{
    static const char hx[] = "0123456789ABCDEF";
    char *o;

    if (n > SIZE_MAX / 3)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "URL too long");
    if (sp_buf_reserve(b, 3 * n, err) < 0)
        return -1;
    o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hx[c >> 4];
            *o++ = hx[c & 15];
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

/* ---- canonical URI ---- */

/* botocore's remove_dot_segments: drop empty and "." segments, let ".."
 * drop the previous one, keep a trailing '/' when anything is left. */
static int normalize_path(const char *p, size_t n, struct sp_buf *out, struct sp_err *err)
{
    size_t i = 0;

    if (sp_buf_reserve(out, n + 1, err) < 0)
        return -1;
    while (i < n) {
        const char *s = p + i, *slash = memchr(s, '/', n - i);
        size_t seg = slash ? (size_t)(slash - s) : n - i;

        if (seg == 2 && s[0] == '.' && s[1] == '.') {
            while (out->len > 0 && out->data[out->len - 1] != '/')
                out->len--;
            if (out->len > 0)
                out->len--;
        } else if (seg > 0 && !(seg == 1 && s[0] == '.')) {
            out->data[out->len++] = '/';
            memcpy(out->data + out->len, s, seg);
            out->len += seg;
        }
        i += seg + 1;
    }
    if (out->len == 0)
        out->data[out->len++] = '/';
    else if (p[n - 1] == '/')
        out->data[out->len++] = '/';
    out->data[out->len] = '\0';
    return 0;
}

int sp_sigv4_canonical_uri(const struct sp_sigv4_request *req, enum sp_sigv4_path_mode mode,
                           struct sp_buf *creq, struct sp_err *err)
{
    struct sp_buf norm;
    int rc;

    if (req->path_len == 0)
        return sp_buf_add(creq, "/", 1, err);
    if (req->path[0] != '/')
        return sp_err_set(err, SP_E_BAD_REQUEST, "request path must start with '/'");
    if (memchr(req->path, '?', req->path_len) || memchr(req->path, '#', req->path_len))
        return sp_err_set(err, SP_E_BAD_REQUEST, "request path holds '?' or '#'");
    switch (mode) {
    case SP_SIGV4_PATH_AS_IS:
        return sp_buf_add(creq, req->path, req->path_len, err);
    case SP_SIGV4_PATH_ENCODE:
        return sp_sigv4_pct_encode(creq, req->path, req->path_len, 1, err);
    case SP_SIGV4_PATH_NORMALIZE:
        sp_buf_init(&norm, 0, 1);
        rc = normalize_path(req->path, req->path_len, &norm, err);
        if (rc == 0)
            rc = sp_sigv4_pct_encode(creq, norm.data, norm.len, 1, err);
        sp_buf_free(&norm);
        return rc;
    }
    return sp_err_set(err, SP_E_BAD_REQUEST, "unknown SigV4 path mode");
}

/* ---- canonical query ---- */

/* Encoded names and values live in text; params index into it. */
struct qparam {
    size_t name_off, name_len, val_off, val_len;
};

struct qset {
    struct qparam *v;
    size_t n, cap;
    struct sp_buf text;    /* sensitive: values may be substituted secrets */
    struct sp_buf scratch; /* sensitive */
};

static void qset_init(struct qset *q)
{
    memset(q, 0, sizeof(*q));
    sp_buf_init(&q->text, QUERY_MAX, 1);
    sp_buf_init(&q->scratch, QUERY_MAX, 1);
}

static void qset_free(struct qset *q)
{
    free(q->v);
    q->v = NULL;
    sp_buf_free(&q->text);
    sp_buf_free(&q->scratch);
}

/* Append one encoded component to q->text; decode first when asked. */
static int q_component(struct qset *q, const char *s, size_t n, int decode, size_t *off,
                       size_t *len, struct sp_err *err)
{
    *off = q->text.len;
    if (decode) {
        sp_buf_reset(&q->scratch);
        if (sp_sigv4_pct_decode(s, n, &q->scratch, err) < 0)
            return -1;
        s = q->scratch.data;
        n = q->scratch.len;
    }
    if (sp_sigv4_pct_encode(&q->text, s, n, 0, err) < 0)
        return -1;
    *len = q->text.len - *off;
    return 0;
}

static int q_add(struct qset *q, const char *name, size_t nlen, const char *val, size_t vlen,
                 int decode, struct sp_err *err)
{
    struct qparam *p;

    if (q->n == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 16;
        struct qparam *nv = realloc(q->v, ncap * sizeof(*nv));
        if (!nv)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        q->v = nv;
        q->cap = ncap;
    }
    p = &q->v[q->n];
    if (q_component(q, name, nlen, decode, &p->name_off, &p->name_len, err) < 0 ||
        q_component(q, val, vlen, decode, &p->val_off, &p->val_len, err) < 0)
        return -1;
    q->n++;
    return 0;
}

/* The parameters a presigned URL carries: dropped from the query given in
 * query mode (re-signing an SDK's presigned URL replaces them). */
static int is_auth_param(const struct qset *q)
{
    static const char *const names[] = {
        "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",     "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"};
    for (size_t i = 0; i < SP_ARRAY_LEN(names); i++)
        if (q->scratch.len == strlen(names[i]) &&
            memcmp(q->scratch.data, names[i], q->scratch.len) == 0)
            return 1;
    return 0;
}

/* Split the raw query into name=value pieces (empty pieces skipped, a piece
 * without '=' has an empty value), decode and re-encode each. In query mode
 * the pieces kept are also copied, raw, to kept. */
static int parse_query(const struct sp_sigv4_request *req, struct qset *q, struct sp_buf *kept,
                       struct sp_err *err)
{
    const char *p = req->query;
    size_t n = req->query ? req->query_len : 0, i = 0;

    while (i < n) {
        const char *amp = memchr(p + i, '&', n - i);
        size_t plen = amp ? (size_t)(amp - (p + i)) : n - i;
        const char *piece = p + i, *eq = memchr(piece, '=', plen);
        size_t nlen = eq ? (size_t)(eq - piece) : plen;

        i += plen + 1;
        if (plen == 0)
            continue;
        if (kept) {
            sp_buf_reset(&q->scratch);
            if (sp_sigv4_pct_decode(piece, nlen, &q->scratch, err) < 0)
                return -1;
            if (is_auth_param(q))
                continue;
            if ((kept->len && sp_buf_add(kept, "&", 1, err) < 0) ||
                sp_buf_add(kept, piece, plen, err) < 0)
                return -1;
        }
        if (q_add(q, piece, nlen, eq ? eq + 1 : "", eq ? plen - nlen - 1 : 0, 1, err) < 0)
            return -1;
    }
    return 0;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

static int cmp_param(const void *x, const void *y, void *ctx)
{
    const struct qparam *a = x, *b = y;
    const char *t = ctx;
    int r = cmp_bytes(t + a->name_off, a->name_len, t + b->name_off, b->name_len);

    return r ? r : cmp_bytes(t + a->val_off, a->val_len, t + b->val_off, b->val_len);
}

/* Sort by encoded name, then encoded value, and append "n=v&n=v". */
static int emit_query(struct qset *q, struct sp_buf *creq, struct sp_err *err)
{
    if (q->n > 1)
        qsort_r(q->v, q->n, sizeof(q->v[0]), cmp_param, q->text.data);
    for (size_t i = 0; i < q->n; i++) {
        const struct qparam *p = &q->v[i];
        if ((i && sp_buf_add(creq, "&", 1, err) < 0) ||
            sp_buf_add(creq, q->text.data + p->name_off, p->name_len, err) < 0 ||
            sp_buf_add(creq, "=", 1, err) < 0 ||
            sp_buf_add(creq, q->text.data + p->val_off, p->val_len, err) < 0)
            return -1;
    }
    return 0;
}

int sp_sigv4_canonical_query(const struct sp_sigv4_request *req, const struct sp_sigv4_param *extra,
                             size_t n_extra, struct sp_buf *kept, struct sp_buf *creq,
                             struct sp_err *err)
{
    struct qset q;
    int rc = -1;

    qset_init(&q);
    if (parse_query(req, &q, kept, err) < 0)
        goto out;
    for (size_t i = 0; i < n_extra; i++)
        if (q_add(&q, extra[i].name, strlen(extra[i].name), extra[i].value, extra[i].value_len, 0,
                  err) < 0)
            goto out;
    rc = emit_query(&q, creq, err);
out:
    qset_free(&q);
    return rc;
}
