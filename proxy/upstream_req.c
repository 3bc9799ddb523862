/*
 * upstream_req.c - request and response framing for the upstream client:
 * checks the method, URL and headers a caller hands in, turns them into the
 * HTTP library's request options (nothing added, nothing reordered but
 * Host), collects and checks the response head under its size and count
 * limits, and maps a failed exchange to an sp_err that names the host only.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream_int.h"

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A field value: no control characters but HTAB (obs-text allowed). */
static int is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int name_is(const struct sp_upstream_header *h, const char *name)
{
    return sp_eq_ci(h->name, h->name_len, name);
}

/*
 * Check the URL's form and copy its host into req->host. Only what this
 * layer relies on is checked here; the HTTP library's parser (with the path
 * kept as is) has the last word.
 */
static int check_url(struct sp_upstream_req *req, const char *url, size_t len, struct sp_err *err)
{
    size_t skip, end, hb, he;

    if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL is not http:// or https://");
    req->https = skip == 8;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL holds a space or control byte");
    }
    for (end = skip; end < len && url[end] != '/' && url[end] != '?' && url[end] != '#'; end++)
        if (url[end] == '@')
            return sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL holds user info");
    hb = skip;
    if (hb < end && url[hb] == '[') {
        const char *close = memchr(url + hb, ']', end - hb);
        if (!close)
            return sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL has a malformed host");
        he = (size_t)(close - url) + 1;
    } else {
        const char *colon = memchr(url + hb, ':', end - hb);
        he = colon ? (size_t)(colon - url) : end;
    }
    if (he == hb)
        return sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL has no host");
    if (he - hb >= sizeof(req->host))
        return sp_err_set(err, SP_E_BAD_REQUEST, "upstream host name too long");
    memcpy(req->host, url + hb, he - hb);
    req->host[he - hb] = '\0';
    return 0;
}

/* One list node and its "Name: value" line in a single block, so the block
 * can be wiped whole. */
static struct curl_slist *node_new(const char *name, size_t nlen, const char *value, size_t vlen,
                                   int remove)
{
    struct curl_slist *n = malloc(sizeof(*n) + nlen + vlen + 3);
    char *line;

    if (!n)
        return NULL;
    line = (char *)(n + 1);
    memcpy(line, name, nlen);
    if (remove) {
        line[nlen] = ':'; /* "Name:" tells curl not to send its own Name */
        line[nlen + 1] = '\0';
    } else if (vlen == 0) {
        line[nlen] = ';'; /* "Name;" is how curl sends an empty value */
        line[nlen + 1] = '\0';
    } else {
        line[nlen] = ':';
        line[nlen + 1] = ' ';
        memcpy(line + nlen + 2, value, vlen);
        line[nlen + 2 + vlen] = '\0';
    }
    n->data = line;
    n->next = NULL;
    return n;
}

void up_req_free_headers(struct curl_slist *list)
{
    while (list) {
        struct curl_slist *next = list->next;
        sp_free_wiped(list, sizeof(*list) + strlen(list->data) + 1);
        list = next;
    }
}

/* A value of only blanks would read to curl as "do not send". */
static size_t trimmed_len(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i == n ? 0 : n;
}

static int build_headers(struct sp_upstream_req *req, const struct sp_upstream_request *r,
                         int post_mode, struct sp_err *err)
{
    struct curl_slist **tail = &req->headers;
    int has_accept = 0, has_expect = 0, has_ctype = 0;

    for (size_t i = 0; i < r->n_headers + 3; i++) {
        const struct sp_upstream_header *h = i < r->n_headers ? &r->headers[i] : NULL;
        const char *drop = NULL;
        struct curl_slist *n;

        if (h) {
            if (!h->name || !is_token(h->name, h->name_len))
                return sp_err_set(err, SP_E_BAD_REQUEST, "request header %zu has a bad name", i);
            if ((h->value_len && !h->value) || !is_field_value(h->value, h->value_len))
                return sp_err_set(err, SP_E_BAD_REQUEST,
                                  "request header '%.*s' has a control byte in its value",
                                  (int)(h->name_len > 64 ? 64 : h->name_len), h->name);
            if (name_is(h, "Content-Length") || name_is(h, "Transfer-Encoding"))
                continue; /* we frame the body */
            has_accept |= name_is(h, "Accept");
            has_expect |= name_is(h, "Expect");
            has_ctype |= name_is(h, "Content-Type");
            n = node_new(h->name, h->name_len, h->value, trimmed_len(h->value, h->value_len), 0);
        } else {
            /* Suppress what curl would add on its own. */
            if (i == r->n_headers && !has_accept)
                drop = "Accept";
            else if (i == r->n_headers + 1 && !has_expect)
                drop = "Expect";
            else if (i == r->n_headers + 2 && !has_ctype && post_mode)
                drop = "Content-Type";
            if (!drop)
                continue;
            n = node_new(drop, strlen(drop), NULL, 0, 1);
        }
        if (!n)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        *tail = n;
        tail = &n->next;
    }
    return 0;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(req->easy, opt, val);                                            \
    } while (0)

/* Method and body: curl's POST mode frames a body (Content-Length, or
 * chunked when the length is unknown); CUSTOMREQUEST renames the method. */
static int set_method_body(struct sp_upstream_req *req, const struct sp_upstream_request *r,
                           const char *method, struct sp_err *err)
{
    CURLcode rc = CURLE_OK;
    int head = (r->flags & SP_UPSTREAM_F_HEAD) || strcmp(method, "HEAD") == 0;
    const char *dflt = "GET";

    if (head && r->body_kind != SP_UPSTREAM_BODY_NONE)
        return sp_err_set(err, SP_E_BAD_REQUEST, "a HEAD request cannot carry a body");
    if (head) {
        SETOPT(CURLOPT_NOBODY, 1L);
        dflt = "HEAD";
    } else if (r->body_kind == SP_UPSTREAM_BODY_BUFFER) {
        if (r->body_len && !r->body)
            return sp_err_set(err, SP_E_BAD_REQUEST, "request body missing");
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SETOPT(CURLOPT_POSTFIELDS, r->body_len ? r->body : "");
        dflt = "POST";
    } else if (r->body_kind == SP_UPSTREAM_BODY_STREAM) {
        if (!r->on_read || r->body_size < -1)
            return sp_err_set(err, SP_E_BAD_REQUEST, "streamed body without a reader");
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_size);
        req->on_read = r->on_read;
        dflt = "POST";
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(method, dflt) != 0)
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    if (rc != CURLE_OK)
        return sp_err_set(err, SP_E_INTERNAL, "cannot set up the request: %s",
                          curl_easy_strerror(rc));
    return 0;
}

int up_req_setup(struct sp_upstream_req *req, const struct sp_upstream_request *r,
                 struct sp_err *err)
{
    char method[32];
    char *url = NULL;
    CURLcode rc = CURLE_OK;
    int ret = -1;

    if (!r->method || !is_token(r->method, r->method_len) || r->method_len >= sizeof(method))
        return sp_err_set(err, SP_E_BAD_REQUEST, "bad request method");
    memcpy(method, r->method, r->method_len);
    method[r->method_len] = '\0';
    if (strcmp(method, "CONNECT") == 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "CONNECT is not forwarded upstream");
    if (!r->url)
        return sp_err_set(err, SP_E_BAD_REQUEST, "no upstream URL");
    if (check_url(req, r->url, r->url_len, err) < 0 || set_method_body(req, r, method, err) < 0 ||
        build_headers(req, r, r->body_kind != SP_UPSTREAM_BODY_NONE, err) < 0)
        return -1;

    /* Parsed here, once, so that a URL curl refuses fails now rather than
     * in on_done; curl works from a copy of this handle. */
    url = malloc(r->url_len + 1);
    req->uh = curl_url();
    if (!url || !req->uh) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto out;
    }
    memcpy(url, r->url, r->url_len);
    url[r->url_len] = '\0';
    if (curl_url_set(req->uh, CURLUPART_URL, url, CURLU_PATH_AS_IS | CURLU_DISALLOW_USER) !=
        CURLUE_OK) {
        sp_err_set(err, SP_E_BAD_REQUEST, "upstream URL for host '%s' does not parse", req->host);
        goto out;
    }
    SETOPT(CURLOPT_CURLU, req->uh);
    SETOPT(CURLOPT_HTTPHEADER, req->headers);
    if (rc != CURLE_OK) {
        sp_err_set(err, SP_E_INTERNAL, "cannot set up the request: %s", curl_easy_strerror(rc));
        goto out;
    }
    ret = 0;
out:
    sp_free_wiped(url, r->url_len + 1);
    return ret;
}

/* ---- the response head ---- */

static size_t line_len(const char *p, size_t n)
{
    if (n && p[n - 1] == '\n')
        n--;
    if (n && p[n - 1] == '\r')
        n--;
    return n;
}

static int head_add(struct sp_upstream_req *req, const char *p, size_t n, uint32_t *off)
{
    struct sp_err e;

    *off = (uint32_t)req->head.len;
    if (sp_buf_add(&req->head, p, n, &e) < 0) {
        req->abort = e.code == SP_E_PAYLOAD_TOO_LARGE ? UP_ABORT_HEAD_TOO_BIG : UP_ABORT_NOMEM;
        return -1;
    }
    return 0;
}

/* "HTTP/1.x NNN reason" */
static int status_line(struct sp_upstream_req *req, const char *p, size_t n)
{
    size_t i;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    for (i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if (n > 12 && p[12] != ' ')
        return -1;
    req->http_minor = p[7] - '0';
    req->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    req->nh = 0;
    sp_buf_reset(&req->head);
    i = n > 12 ? 13 : 12;
    if (!is_field_value(p + i, n - i))
        return -1;
    req->reason_len = (uint32_t)(n - i);
    return head_add(req, p + i, n - i, &req->reason_off);
}

/* An obs-fold continuation joins the previous value with one space; that
 * value is the last thing in req->head, so it grows in place. */
static int fold_line(struct sp_upstream_req *req, const char *p, size_t n)
{
    uint32_t off;
    size_t i = 0;

    if (req->nh == 0)
        return -1;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    while (n > i && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (i == n)
        return 0;
    if (!is_field_value(p + i, n - i) || head_add(req, " ", 1, &off) < 0 ||
        head_add(req, p + i, n - i, &off) < 0)
        return -1;
    req->hoffs[req->nh - 1].value_len += (uint32_t)(n - i + 1);
    return 0;
}

static int header_line(struct sp_upstream_req *req, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    size_t nlen, vb, ve;
    struct up_hoff h;

    if (!colon)
        return -1;
    nlen = (size_t)(colon - p);
    if (!is_token(p, nlen))
        return -1;
    vb = nlen + 1;
    while (vb < n && (p[vb] == ' ' || p[vb] == '\t'))
        vb++;
    ve = n;
    while (ve > vb && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    if (!is_field_value(p + vb, ve - vb))
        return -1;
    if (req->nh >= req->max_headers) {
        req->abort = UP_ABORT_HEAD_TOO_BIG;
        return -1;
    }
    if (req->nh == req->hcap) {
        size_t ncap = req->hcap ? req->hcap * 2 : 16;
        struct up_hoff *nh;
        if (ncap > req->max_headers)
            ncap = req->max_headers;
        nh = realloc(req->hoffs, ncap * sizeof(*nh));
        if (!nh) {
            req->abort = UP_ABORT_NOMEM;
            return -1;
        }
        req->hoffs = nh;
        req->hcap = ncap;
    }
    h.name_len = (uint32_t)nlen;
    h.value_len = (uint32_t)(ve - vb);
    if (head_add(req, p, nlen, &h.name_off) < 0 || head_add(req, p + vb, ve - vb, &h.value_off) < 0)
        return -1;
    req->hoffs[req->nh++] = h;
    return 0;
}

/* The blank line: a final head goes to on_head, an interim one is dropped. */
static int head_end(struct sp_upstream_req *req)
{
    struct sp_upstream_header *hs = NULL;
    struct sp_upstream_head head;
    curl_off_t cl = -1;
    int rc;

    if (req->status < 200) {
        req->status = 0;
        req->nh = 0;
        sp_buf_reset(&req->head);
        return 0;
    }
    if (req->nh) {
        hs = malloc(req->nh * sizeof(*hs));
        if (!hs) {
            req->abort = UP_ABORT_NOMEM;
            return -1;
        }
    }
    for (size_t i = 0; i < req->nh; i++) {
        hs[i].name = req->head.data + req->hoffs[i].name_off;
        hs[i].name_len = req->hoffs[i].name_len;
        hs[i].value = req->head.data + req->hoffs[i].value_off;
        hs[i].value_len = req->hoffs[i].value_len;
    }
    if (curl_easy_getinfo(req->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK)
        cl = -1;
    head.status = req->status;
    head.http_minor = req->http_minor;
    head.reason = req->head.data ? req->head.data + req->reason_off : "";
    head.reason_len = req->reason_len;
    head.headers = hs;
    head.n_headers = req->nh;
    head.content_length = cl < 0 ? -1 : (int64_t)cl;
    {
        long connects = 1;
        head.reused = curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK &&
                      connects == 0;
    }
    req->head_sent = 1;
    rc = req->cb.on_head(req->arg, &head);
    free(hs);
    sp_buf_free(&req->head);
    free(req->hoffs);
    req->hoffs = NULL;
    req->nh = req->hcap = 0;
    if (rc < 0)
        req->abort = UP_ABORT_CALLBACK;
    return rc < 0 ? -1 : 0;
}

size_t up_on_header(char *p, size_t size, size_t n, void *arg)
{
    struct sp_upstream_req *req = arg;
    size_t len = size * n, ll;
    int rc;

    if (req->cancelled)
        return 0;
    if (req->head_sent)
        return len; /* trailers of a chunked body: not forwarded */
    ll = line_len(p, len);
    if (ll >= 5 && memcmp(p, "HTTP/", 5) == 0 && req->status == 0)
        rc = status_line(req, p, ll);
    else if (req->status == 0)
        rc = -1;
    else if (ll == 0)
        rc = head_end(req);
    else if (p[0] == ' ' || p[0] == '\t')
        rc = fold_line(req, p, ll);
    else
        rc = header_line(req, p, ll);
    if (rc < 0 && req->abort == UP_ABORT_NONE)
        req->abort = UP_ABORT_HEAD_MALFORMED;
    if (rc < 0 || req->cancelled)
        return 0;
    return len;
}

/* ---- errors ---- */

static int is_ip_literal(const char *host)
{
    struct in_addr a;

    return host[0] == '[' || inet_pton(AF_INET, host, &a) == 1;
}

static int connected(struct sp_upstream_req *req)
{
    curl_off_t t = 0;

    if (curl_easy_getinfo(req->easy,
                          req->https ? CURLINFO_APPCONNECT_TIME_T : CURLINFO_CONNECT_TIME_T,
                          &t) != CURLE_OK)
        return 0;
    return t > 0;
}

static void abort_error(struct sp_upstream_req *req, struct sp_err *err)
{
    const char *h = req->host;

    switch (req->abort) {
    case UP_ABORT_HEAD_TOO_BIG:
        sp_err_set(err, SP_E_UPSTREAM_ERROR,
                   "response head from host '%s' exceeds %zu bytes or %zu header lines", h,
                   req->max_header_size, req->max_headers);
        break;
    case UP_ABORT_HEAD_MALFORMED:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "malformed response head from host '%s'", h);
        break;
    case UP_ABORT_CALLBACK:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "exchange with host '%s' aborted by the proxy", h);
        break;
    case UP_ABORT_READ:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "request body for host '%s' failed", h);
        break;
    case UP_ABORT_NOMEM:
    case UP_ABORT_NONE:
        sp_err_set(err, SP_E_INTERNAL, "out of memory talking to host '%s'", h);
        break;
    }
}

void up_req_error(struct sp_upstream_req *req, CURLcode rc, struct sp_err *err)
{
    const char *h = req->host;

    if (req->abort != UP_ABORT_NONE) {
        abort_error(req, err);
        return;
    }
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (req->dials_denied) /* some address was refused, none answered */
            sp_err_set(err, SP_E_DESTINATION_DENIED,
                       "host '%s' %s %s (refused unless upstream.allow_private is on)", h,
                       is_ip_literal(h) ? "is" : "resolves to", req->deny_why);
        else
            sp_err_set(err, SP_E_UPSTREAM_ERROR, "could not connect to host '%s'", h);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "could not resolve host '%s'", h);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (connected(req))
            sp_err_set(err, SP_E_UPSTREAM_TIMEOUT, "host '%s' did not finish within %lld ms", h,
                       (long long)req->timeout_ms);
        else
            sp_err_set(err, SP_E_UPSTREAM_TIMEOUT, "connecting to host '%s' timed out", h);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "TLS handshake with host '%s' failed", h);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "TLS certificate of host '%s' could not be verified",
                   h);
        break;
    case CURLE_GOT_NOTHING:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "host '%s' closed the connection without answering",
                   h);
        break;
    case CURLE_PARTIAL_FILE:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "host '%s' closed the connection mid-response", h);
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "connection to host '%s' failed (reset)", h);
        break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "malformed response from host '%s'", h);
        break;
    case CURLE_OUT_OF_MEMORY:
        sp_err_set(err, SP_E_INTERNAL, "out of memory talking to host '%s'", h);
        break;
    default:
        sp_err_set(err, SP_E_UPSTREAM_ERROR, "exchange with host '%s' failed: %s", h,
                   curl_easy_strerror(rc));
        break;
    }
}
