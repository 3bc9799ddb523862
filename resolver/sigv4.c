/*
 * sigv4.c - signing a request with AWS Signature Version 4: the canonical
 * request (method, URI, query, headers, signed header list, payload hash),
 * the string to sign, the signature, and from them the Authorization header
 * or the presigned query. The canonical URI and query are built in
 * sigv4_canon.c, keys derived and cached in sigv4_key.c, an SDK's signature
 * parsed in sigv4_parse.c, aws-chunked bodies re-signed in sigv4_chunked.c.
 */
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigv4_int.h"

#define CREQ_MAX ((size_t)16 << 20)
#define SMALL_MAX ((size_t)64 << 10)
#define MAX_KEY_ID 128
#define MAX_TOKEN 16384
#define MAX_LISTED 256

/* ---- character classes ---- */

/* RFC 9110 tchar: what a header name may hold. */
static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive equality of name[0..len) with a lower-case literal. */
static int name_is(const char *name, size_t len, const char *lit)
{
    size_t i;

    for (i = 0; i < len && lit[i]; i++)
        if (lower((unsigned char)name[i]) != (unsigned char)lit[i])
            return 0;
    return i == len && lit[i] == '\0';
}

static int names_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int valid_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

static int visible_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* ---- encoders ---- */

/* Append v[0..n) with leading and trailing white space removed and each
 * inner run of it replaced by one space (the SigV4 "Trimall"). */
static int add_trimmed(struct sp_buf *b, const char *v, size_t n, struct sp_err *err)
{
    int pending = 0;
    char *o;

    if (sp_buf_reserve(b, n, err) < 0)
        return -1;
    o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (is_space(c)) {
            pending = o != b->data + b->len;
            continue;
        }
        if (pending)
            *o++ = ' ';
        pending = 0;
        *o++ = (char)c;
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

static int add_lower(struct sp_buf *b, const char *s, size_t n, struct sp_err *err)
{
    if (sp_buf_reserve(b, n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        b->data[b->len + i] = (char)lower((unsigned char)s[i]);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* ---- headers ---- */

struct hsel {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    size_t idx;
};

static int cmp_hsel(const void *x, const void *y)
{
    const struct hsel *a = x, *b = y;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;

    for (size_t i = 0; i < n; i++) {
        unsigned char ca = lower((unsigned char)a->name[i]), cb = lower((unsigned char)b->name[i]);
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Headers the signer sets itself: the request's copies are never signed. */
static int owned(const struct sp_sigv4_result *r, const char *name, size_t len)
{
    return name_is(name, len, "authorization") || name_is(name, len, "x-amz-date") ||
           name_is(name, len, "x-amz-security-token") ||
           (r->replaces_content_sha256 && name_is(name, len, "x-amz-content-sha256"));
}

/* Headers "sign all" leaves out: hop-by-hop ones, which change on the way,
 * and those botocore never signs. */
static int never_signed(const char *name, size_t len)
{
    static const char *const skip[] = {
        "connection",          "expect",           "keep-alive", "proxy-authenticate",
        "proxy-authorization", "proxy-connection", "te",         "trailer",
        "transfer-encoding",   "upgrade",          "user-agent", "x-amzn-trace-id"};
    for (size_t i = 0; i < SP_ARRAY_LEN(skip); i++)
        if (name_is(name, len, skip[i]))
            return 1;
    return 0;
}

struct listed {
    const char *name[MAX_LISTED];
    size_t len[MAX_LISTED];
    unsigned char found[MAX_LISTED];
    size_t n;
};

static int parse_listed(const char *s, size_t n, struct listed *l, struct sp_err *err)
{
    size_t i = 0;

    l->n = 0;
    if (n > SP_SIGV4_MAX_SIGNED)
        return sp_err_set(err, SP_E_BAD_REQUEST, "signed header list is too long");
    while (i <= n) {
        const char *semi = memchr(s + i, ';', n - i);
        size_t end = semi ? (size_t)(semi - s) : n, a = i, b = end;

        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (!valid_token(s + a, b - a))
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "signed header list has an empty or malformed name");
        if (l->n == MAX_LISTED)
            return sp_err_set(err, SP_E_BAD_REQUEST, "more than %d signed headers", MAX_LISTED);
        l->name[l->n] = s + a;
        l->len[l->n] = b - a;
        l->found[l->n++] = 0;
        i = end + 1;
    }
    return 0;
}

/* Is name listed? Marks the entries it satisfies. */
static int listed_has(struct listed *l, const char *name, size_t len)
{
    int hit = 0;

    for (size_t i = 0; i < l->n; i++)
        if (names_equal(l->name[i], l->len[i], name, len)) {
            l->found[i] = 1;
            hit = 1;
        }
    return hit;
}

static void sel_push(struct hsel *sel, size_t *n, const char *name, const char *value,
                     size_t value_len)
{
    sel[(*n)++] = (struct hsel){name, strlen(name), value, value_len, SIZE_MAX};
}

/* The headers the signer adds and signs (the token unless token_unsigned). */
static void add_own(const struct sp_sigv4_opts *opts, const struct sp_sigv4_result *r,
                    struct hsel *sel, size_t *n)
{
    if (opts->mode == SP_SIGV4_MODE_HEADER) {
        sel_push(sel, n, "x-amz-date", r->amz_date, SP_SIGV4_AMZ_DATE_LEN);
        if (r->token.len && !opts->token_unsigned)
            sel_push(sel, n, "x-amz-security-token", r->token.data, r->token.len);
    }
    if (r->replaces_content_sha256)
        sel_push(sel, n, "x-amz-content-sha256", r->payload_hash, strlen(r->payload_hash));
}

static int own_signed(const struct sp_sigv4_opts *opts, const struct sp_sigv4_result *r,
                      const char *name, size_t len)
{
    if (name_is(name, len, "x-amz-date"))
        return opts->mode == SP_SIGV4_MODE_HEADER;
    if (name_is(name, len, "x-amz-security-token"))
        return opts->mode == SP_SIGV4_MODE_HEADER && r->token.len && !opts->token_unsigned;
    return name_is(name, len, "x-amz-content-sha256") && r->replaces_content_sha256;
}

/* Choose the headers to sign into sel (n_headers + 3 entries), sorted. */
static int select_headers(const struct sp_sigv4_request *req, const struct sp_sigv4_opts *opts,
                          const struct sp_sigv4_result *r, struct hsel *sel, size_t *nsel,
                          struct sp_err *err)
{
    struct listed *l = NULL;
    int host = 0, rc = -1;

    *nsel = 0;
    if (opts->signed_headers) {
        l = malloc(sizeof(*l));
        if (!l)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        if (parse_listed(opts->signed_headers, opts->signed_headers_len, l, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct sp_sigv4_header *h = &req->headers[i];
        int is_host = name_is(h->name, h->name_len, "host");

        if (!valid_token(h->name, h->name_len)) {
            sp_err_set(err, SP_E_BAD_REQUEST, "header name is not an HTTP token");
            goto out;
        }
        host |= is_host;
        if (owned(r, h->name, h->name_len))
            continue;
        if (l ? listed_has(l, h->name, h->name_len) || is_host
              : !never_signed(h->name, h->name_len))
            sel[(*nsel)++] = (struct hsel){h->name, h->name_len, h->value, h->value_len, i};
    }
    if (!host) {
        sp_err_set(err, SP_E_BAD_REQUEST, "request has no Host header to sign");
        goto out;
    }
    for (size_t i = 0; l && i < l->n; i++)
        if (!l->found[i] && !owned(r, l->name[i], l->len[i]) &&
            !own_signed(opts, r, l->name[i], l->len[i])) {
            sp_err_set(err, SP_E_BAD_REQUEST, "signed header '%.*s' is not in the request",
                       (int)(l->len[i] > 64 ? 64 : l->len[i]), l->name[i]);
            goto out;
        }
    add_own(opts, r, sel, nsel);
    qsort(sel, *nsel, sizeof(sel[0]), cmp_hsel);
    rc = 0;
out:
    free(l);
    return rc;
}

/* "name:v1,v2\n" per name, then the blank line; the list into signed. */
static int emit_headers(const struct hsel *sel, size_t n, struct sp_buf *creq,
                        struct sp_buf *signed_list, struct sp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int first = i == 0 || !names_equal(sel[i - 1].name, sel[i - 1].name_len, sel[i].name,
                                           sel[i].name_len);
        if (first) {
            if (i && sp_buf_add(creq, "\n", 1, err) < 0)
                return -1;
            if ((signed_list->len && sp_buf_add(signed_list, ";", 1, err) < 0) ||
                add_lower(signed_list, sel[i].name, sel[i].name_len, err) < 0 ||
                add_lower(creq, sel[i].name, sel[i].name_len, err) < 0 ||
                sp_buf_add(creq, ":", 1, err) < 0)
                return -1;
        } else if (sp_buf_add(creq, ",", 1, err) < 0) {
            return -1;
        }
        if (add_trimmed(creq, sel[i].value, sel[i].value_len, err) < 0)
            return -1;
    }
    return sp_buf_add(creq, "\n\n", n ? 2 : 1, err);
}

/* ---- payload hash and inputs ---- */

/* payload_hash if given, else the X-Amz-Content-Sha256 header, else
 * SHA-256(body). Decides whether the signer sets that header. */
static int payload(const struct sp_sigv4_request *req, const struct sp_sigv4_opts *opts,
                   struct sp_sigv4_result *r, struct sp_err *err)
{
    const char *h = req->payload_hash;
    size_t hl = req->payload_hash_len, seen = 0;
    const struct sp_sigv4_header *hdr = NULL;

    for (size_t i = 0; i < req->n_headers; i++)
        if (name_is(req->headers[i].name, req->headers[i].name_len, "x-amz-content-sha256")) {
            hdr = &req->headers[i];
            seen++;
        }
    if (seen > 1 && !h)
        return sp_err_set(err, SP_E_BAD_REQUEST, "more than one X-Amz-Content-Sha256 header");
    r->replaces_content_sha256 = opts->add_content_sha256 || (h && seen);
    if (!h && hdr) {
        h = hdr->value;
        hl = hdr->value_len;
        while (hl && is_space((unsigned char)h[0]))
            h++, hl--;
        while (hl && is_space((unsigned char)h[hl - 1]))
            hl--;
    }
    if (!h) {
        sp_sigv4_sha256_hex(req->body, req->body ? req->body_len : 0, r->payload_hash);
        return 0;
    }
    if (hl == 0 || hl > SP_SIGV4_MAX_PAYLOAD || !visible_ascii(h, hl))
        return sp_err_set(err, SP_E_BAD_REQUEST, "payload hash must be 1..%d visible characters",
                          SP_SIGV4_MAX_PAYLOAD);
    memcpy(r->payload_hash, h, hl);
    r->payload_hash[hl] = '\0';
    return 0;
}

static int check_creds(const struct sp_sigv4_creds *c, struct sp_err *err)
{
    const char *k = c->access_key_id;

    if (!k || c->access_key_id_len == 0 || c->access_key_id_len > MAX_KEY_ID ||
        !visible_ascii(k, c->access_key_id_len))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "AWS access key id must be 1..%d visible characters", MAX_KEY_ID);
    for (size_t i = 0; i < c->access_key_id_len; i++)
        if (strchr(",/;=\"\\", k[i]))
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "AWS access key id holds one of , / ; = \" \\");
    if (c->session_token && (c->session_token_len == 0 || c->session_token_len > MAX_TOKEN ||
                             !visible_ascii(c->session_token, c->session_token_len)))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "AWS session token must be 1..%d visible characters", MAX_TOKEN);
    return 0;
}

static int check_request(const struct sp_sigv4_request *req, const struct sp_sigv4_opts *opts,
                         struct sp_err *err)
{
    if (!req->method || !valid_token(req->method, req->method_len))
        return sp_err_set(err, SP_E_BAD_REQUEST, "request method is not an HTTP token");
    if (!req->path && req->path_len)
        return sp_err_set(err, SP_E_BAD_REQUEST, "request path is missing");
    if (req->n_headers > SP_SIGV4_MAX_HEADERS)
        return sp_err_set(err, SP_E_BAD_REQUEST, "more than %d headers to sign",
                          SP_SIGV4_MAX_HEADERS);
    if (req->n_headers && !req->headers)
        return sp_err_set(err, SP_E_BAD_REQUEST, "request headers are missing");
    if (opts->mode != SP_SIGV4_MODE_HEADER && opts->mode != SP_SIGV4_MODE_QUERY)
        return sp_err_set(err, SP_E_BAD_REQUEST, "unknown SigV4 signing mode");
    if (opts->mode == SP_SIGV4_MODE_QUERY &&
        (opts->expires == 0 || opts->expires > SP_SIGV4_MAX_EXPIRES))
        return sp_err_set(err, SP_E_BAD_REQUEST, "presigned URL expiry must be 1..%d seconds",
                          SP_SIGV4_MAX_EXPIRES);
    return 0;
}

/* ---- canonical request, string to sign, outputs ---- */

/* The X-Amz-* parameters a presigned URL signs (the signature excepted),
 * into p[6]; returns how many. cred holds the credential's text. */
static size_t auth_params(const struct sp_sigv4_creds *c, const struct sp_sigv4_opts *opts,
                          const struct sp_sigv4_result *r, char *cred, size_t credsz,
                          char expires[16], struct sp_sigv4_param *p)
{
    size_t n = 0;
    int len =
        snprintf(cred, credsz, "%.*s/%s", (int)c->access_key_id_len, c->access_key_id, r->scope);

    (void)snprintf(expires, 16, "%u", opts->expires);
    p[n++] =
        (struct sp_sigv4_param){"X-Amz-Algorithm", SP_SIGV4_ALGORITHM, strlen(SP_SIGV4_ALGORITHM)};
    p[n++] = (struct sp_sigv4_param){"X-Amz-Credential", cred, (size_t)len};
    p[n++] = (struct sp_sigv4_param){"X-Amz-Date", r->amz_date, SP_SIGV4_AMZ_DATE_LEN};
    p[n++] = (struct sp_sigv4_param){"X-Amz-Expires", expires, strlen(expires)};
    p[n++] = (struct sp_sigv4_param){"X-Amz-SignedHeaders", r->signed_headers.data,
                                     r->signed_headers.len};
    if (r->token.len && !opts->token_unsigned)
        p[n++] = (struct sp_sigv4_param){"X-Amz-Security-Token", r->token.data, r->token.len};
    return n;
}

/* Room for the whole canonical request, so that it is built without
 * reallocations (each of which copies and wipes: it is sensitive). */
static size_t estimate(const struct sp_sigv4_request *req)
{
    size_t n = 512 + req->method_len + 3 * req->path_len + 3 * req->query_len;

    for (size_t i = 0; i < req->n_headers; i++)
        n += 2 * req->headers[i].name_len + req->headers[i].value_len + 2;
    return n < CREQ_MAX / 2 ? n : CREQ_MAX / 2;
}

static int canonical_request(const struct sp_sigv4_request *req, const struct sp_sigv4_creds *creds,
                             const struct sp_sigv4_opts *opts, struct sp_sigv4_result *r,
                             const struct hsel *sel, size_t nsel, struct sp_err *err)
{
    struct sp_buf *creq = &r->canonical_request, headers;
    struct sp_sigv4_param extra[6];
    char cred[MAX_KEY_ID + sizeof(r->scope) + 2], expires[16];
    size_t n_extra = 0;
    int query_mode = opts->mode == SP_SIGV4_MODE_QUERY, rc = -1;

    sp_buf_init(&headers, CREQ_MAX, 1);
    /* The signed list is needed first: a presigned query signs it too. */
    if (sp_buf_reserve(creq, estimate(req), err) < 0 ||
        emit_headers(sel, nsel, &headers, &r->signed_headers, err) < 0 ||
        sp_buf_add(creq, req->method, req->method_len, err) < 0)
        goto out;
    for (size_t i = 0; i < creq->len; i++) /* botocore upper-cases the method */
        if (creq->data[i] >= 'a' && creq->data[i] <= 'z')
            creq->data[i] = (char)(creq->data[i] - 32);
    if (query_mode)
        n_extra = auth_params(creds, opts, r, cred, sizeof(cred), expires, extra);
    if (sp_buf_add(creq, "\n", 1, err) < 0 ||
        sp_sigv4_canonical_uri(req, opts->path_mode, creq, err) < 0 ||
        sp_buf_add(creq, "\n", 1, err) < 0 ||
        sp_sigv4_canonical_query(req, extra, n_extra, query_mode ? &r->query : NULL, creq, err) <
            0 ||
        sp_buf_add(creq, "\n", 1, err) < 0 ||
        sp_buf_add(creq, headers.data, headers.len, err) < 0 ||
        sp_buf_add(creq, r->signed_headers.data, r->signed_headers.len, err) < 0 ||
        sp_buf_add(creq, "\n", 1, err) < 0 || sp_buf_addstr(creq, r->payload_hash, err) < 0)
        goto out;
    rc = 0;
out:
    sp_buf_free(&headers);
    return rc;
}

static int string_to_sign(struct sp_sigv4_result *r, struct sp_err *err)
{
    char hash[SP_SIGV4_SIG_HEX_LEN + 1];

    sp_sigv4_sha256_hex(r->canonical_request.data, r->canonical_request.len, hash);
    return sp_buf_printf(&r->string_to_sign, err, "%s\n%s\n%s\n%s", SP_SIGV4_ALGORITHM, r->amz_date,
                         r->scope, hash);
}

static int compute_signature(const struct sp_sigv4_creds *creds, const struct sp_sigv4_opts *opts,
                             struct sp_sigv4_result *r, struct sp_err *err)
{
    uint8_t key[SP_SIGV4_KEY_LEN], mac[32];
    char date[9];
    int rc;

    memcpy(date, r->amz_date, 8);
    date[8] = '\0';
    rc = sp_sigv4_signing_key(opts->cache, creds, date, opts->region, opts->service, key, err);
    if (rc == 0)
        rc = sp_sigv4_hmac(key, sizeof(key), r->string_to_sign.data, r->string_to_sign.len, mac,
                           err);
    sp_wipe(key, sizeof(key));
    if (rc == 0)
        sp_hex_encode(r->signature, mac, sizeof(mac));
    return rc;
}

static void set_header(struct sp_sigv4_result *r, const char *name, const char *value, size_t len)
{
    r->set[r->n_set++] = (struct sp_sigv4_header){name, strlen(name), value, len};
}

/* Authorization (header mode) or the presigned query, and r->set. The
 * header names and order are the AWS CRT's (aws-c-auth), which the test
 * suite's signed requests show. */
static int outputs(const struct sp_sigv4_creds *creds, const struct sp_sigv4_opts *opts,
                   struct sp_sigv4_result *r, struct sp_err *err)
{
    if (opts->mode == SP_SIGV4_MODE_QUERY) {
        struct sp_buf *q = &r->query;
        char cred[MAX_KEY_ID + sizeof(r->scope) + 2];
        int n = snprintf(cred, sizeof(cred), "%.*s/%s", (int)creds->access_key_id_len,
                         creds->access_key_id, r->scope);

        if ((q->len && sp_buf_add(q, "&", 1, err) < 0) ||
            sp_buf_addstr(q, "X-Amz-Algorithm=" SP_SIGV4_ALGORITHM "&X-Amz-Credential=", err) ||
            sp_sigv4_pct_encode(q, cred, (size_t)n, 0, err) < 0 ||
            sp_buf_printf(q, err, "&X-Amz-Date=%s&X-Amz-SignedHeaders=", r->amz_date) < 0 ||
            sp_sigv4_pct_encode(q, r->signed_headers.data, r->signed_headers.len, 0, err) < 0 ||
            sp_buf_printf(q, err, "&X-Amz-Expires=%u", opts->expires) < 0 ||
            (r->token.len && (sp_buf_addstr(q, "&X-Amz-Security-Token=", err) < 0 ||
                              sp_sigv4_pct_encode(q, r->token.data, r->token.len, 0, err) < 0)) ||
            sp_buf_printf(q, err, "&X-Amz-Signature=%s", r->signature) < 0)
            return -1;
    } else {
        if (sp_buf_printf(&r->authorization, err,
                          "%s Credential=%.*s/%s, SignedHeaders=%s, Signature=%s",
                          SP_SIGV4_ALGORITHM, (int)creds->access_key_id_len, creds->access_key_id,
                          r->scope, r->signed_headers.data, r->signature) < 0)
            return -1;
        if (r->token.len)
            set_header(r, "X-Amz-Security-Token", r->token.data, r->token.len);
        set_header(r, "X-Amz-Date", r->amz_date, SP_SIGV4_AMZ_DATE_LEN);
    }
    if (r->replaces_content_sha256)
        set_header(r, "x-amz-content-sha256", r->payload_hash, strlen(r->payload_hash));
    if (opts->mode == SP_SIGV4_MODE_HEADER)
        set_header(r, "Authorization", r->authorization.data, r->authorization.len);
    return 0;
}

static void result_init(struct sp_sigv4_result *r, enum sp_sigv4_mode mode)
{
    memset(r, 0, sizeof(*r));
    sp_buf_init(&r->signed_headers, SP_SIGV4_MAX_SIGNED * 2, 0);
    sp_buf_init(&r->canonical_request, CREQ_MAX, 1);
    sp_buf_init(&r->string_to_sign, SMALL_MAX, 0);
    sp_buf_init(&r->authorization, SMALL_MAX, 0);
    sp_buf_init(&r->query, CREQ_MAX, 1);
    sp_buf_init(&r->token, MAX_TOKEN, 1);
    r->mode = mode;
}

int sp_sigv4_sign(const struct sp_sigv4_request *req, const struct sp_sigv4_creds *creds,
                  const struct sp_sigv4_opts *opts, struct sp_sigv4_result *out, struct sp_err *err)
{
    struct hsel *sel = NULL;
    size_t nsel = 0;
    int rc = -1;

    result_init(out, opts->mode);
    if (check_request(req, opts, err) < 0 || check_creds(creds, err) < 0 ||
        sp_sigv4_scope(opts, out->scope, sizeof(out->scope), err) < 0)
        goto out;
    memcpy(out->amz_date, opts->amz_date, SP_SIGV4_AMZ_DATE_LEN);
    if (payload(req, opts, out, err) < 0 ||
        (creds->session_token &&
         sp_buf_add(&out->token, creds->session_token, creds->session_token_len, err) < 0))
        goto out;
    sel = malloc((req->n_headers + 3) * sizeof(*sel));
    if (!sel) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto out;
    }
    if (select_headers(req, opts, out, sel, &nsel, err) < 0 ||
        canonical_request(req, creds, opts, out, sel, nsel, err) < 0 ||
        string_to_sign(out, err) < 0 || compute_signature(creds, opts, out, err) < 0 ||
        outputs(creds, opts, out, err) < 0)
        goto out;
    rc = 0;
out:
    free(sel);
    if (rc < 0)
        sp_sigv4_result_free(out);
    return rc;
}

void sp_sigv4_result_free(struct sp_sigv4_result *r)
{
    if (!r)
        return;
    sp_buf_free(&r->signed_headers);
    sp_buf_free(&r->canonical_request);
    sp_buf_free(&r->string_to_sign);
    sp_buf_free(&r->authorization);
    sp_buf_free(&r->query);
    sp_buf_free(&r->token);
    r->n_set = 0;
}

int sp_sigv4_result_replaces(const struct sp_sigv4_result *r, const char *name, size_t len)
{
    return name_is(name, len, "authorization") || name_is(name, len, "x-amz-date") ||
           name_is(name, len, "x-amz-security-token") ||
           (r->replaces_content_sha256 && name_is(name, len, "x-amz-content-sha256"));
}

/* ---- small public helpers ---- */

enum sp_sigv4_path_mode sp_sigv4_path_mode_for(const char *service)
{
    if (service && (strcmp(service, "s3") == 0 || strcmp(service, "s3-object-lambda") == 0 ||
                    strcmp(service, "s3-outposts") == 0))
        return SP_SIGV4_PATH_AS_IS;
    return SP_SIGV4_PATH_NORMALIZE;
}

void sp_sigv4_format_amz_date(int64_t unix_seconds, char out[SP_SIGV4_AMZ_DATE_LEN + 1])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(out, SP_SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SP_SIGV4_AMZ_DATE_LEN)
        memcpy(out, "19700101T000000Z", SP_SIGV4_AMZ_DATE_LEN + 1);
}

void sp_sigv4_sha256_hex(const void *p, size_t n, char out[SP_SIGV4_SIG_HEX_LEN + 1])
{
    unsigned char d[32];

    if (mbedtls_sha256_ret(p, n, d, 0) != 0)
        memset(d, 0, sizeof(d)); /* cannot fail for the software SHA-256 */
    sp_hex_encode(out, d, sizeof(d));
}
