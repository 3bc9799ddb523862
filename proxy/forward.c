/*
 * forward.c - one forward-proxy request, from the client's absolute-form
 * request to the upstream's streamed answer:
 *
 *   PARSE      target, framing and hop-by-hop headers, caller's key
 *   RESOLVING  sp_resolver_run: key + every reference, one round trip
 *   UPSTREAM   the substituted request is sent; nothing was sent before
 *   STREAMING  the answer's head went to the client; body through the
 *              request's redactor
 *   DONE       fwd_free(): the one place a request ends
 *
 * Every failure before STREAMING answers with the error table's status and
 * nothing reaches the upstream; a failure during STREAMING closes the
 * client connection so the answer can never look complete.
 */
#include "proxy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 200
#define CLIENT_BACKLOG (4 << 20)     /* pause the upstream above this much unsent */
#define CLIENT_LOW_WATER (256 << 10) /* and resume once it fell to this */
#define STREAM_HIGH (1 << 20)        /* a streamed upload: stop reading the client above this */
#define STREAM_LOW (256 << 10)       /* and read again once the upstream took this much */
#define REF_TAIL 272                 /* longer than any reference: scanned across reads */

enum fwd_state {
    FWD_PARSE = 1,
    FWD_RESOLVING,
    FWD_UPSTREAM,
    FWD_STREAMING,
    FWD_DONE,
};

struct fwd {
    struct sp_worker *w;
    struct sp_h1_req *req; /* NULL once answered (the finishing call freed it) */
    enum fwd_state state;
    char rid[SP_REQUEST_ID_LEN + 1];
    int64_t t0_us, t_store_us, t_upstream_us, t_upstream_start;
    char method[16];
    struct sp_target target;
    char *uri; /* copy of the request target (path/query point into it) */
    char token[256];
    struct sp_rheader headers[MAX_HEADERS];
    size_t nheaders;
    const char *body;
    size_t body_len;
    struct sp_resolution *res;
    struct sp_fwd_sigv4 aws; /* an SDK's signature to re-sign */
    unsigned char aws_extra;
    /* a streamed aws-chunked upload (h1 delivers it as it arrives) */
    int streamed, body_done, body_paused, up_waiting;
    int64_t stream_length; /* the client's Content-Length, or -1 (chunked) */
    struct sp_buf upbuf;   /* re-signed bytes the upstream has not taken yet */
    size_t upoff;
    char tail[REF_TAIL]; /* the end of what came before, to find a reference split across reads */
    size_t tail_len;
    struct sp_upstream_req *up;
    struct sp_redact_stream *stream;
    int status, client_gone, paused;
    uint64_t bytes_out;
    enum sp_err_code code;
};

static void fwd_free(struct fwd *f);

/* ---- replies ---- */

static void fail(struct fwd *f, const struct sp_err *err)
{
    static const struct sp_h1_header auth = {"Proxy-Authenticate", 18,
                                             "Basic realm=\"secretproxy\"", 25};
    struct sp_log_ctx ctx = {f->rid, NULL, NULL};
    struct sp_err e = *err;

    f->code = err->code;
    f->status = sp_err_http_status(err->code);
    /* An error message never holds a value, but redact anyway. */
    if (f->res && sp_resolution_redactor(f->res)) {
        struct sp_buf red;
        sp_buf_init(&red, sizeof(e.msg) - 1, 0);
        if (sp_redactor_redact(sp_resolution_redactor(f->res), err->msg, strlen(err->msg), &red,
                               NULL) == 0)
            snprintf(e.msg, sizeof(e.msg), "%s", red.data ? red.data : "");
        sp_buf_free(&red);
    }
    /* Answered even when the client is gone: the finishing call frees the
     * request. After 400, 413 and 431 h1 closes the connection (the request
     * may have been framed other than we read it). */
    sp_h1_reply_error(f->req, f->rid, &e, &auth, err->code == SP_E_PROXY_AUTH_REQUIRED);
    f->req = NULL;
    if (err->code >= SP_E_INTERNAL)
        sp_log(SP_LOG_WARN, &ctx, "%s", e.msg);
    fwd_free(f);
}

static void fail_code(struct fwd *f, enum sp_err_code code, const char *msg)
{
    struct sp_err e;

    sp_err_set(&e, code, "%s", msg);
    fail(f, &e);
}

/* ---- upstream callbacks ---- */

/* The Content-Length the upstream sent with a HEAD or 304 answer, which
 * describes the representation (no body follows): -1 when none is valid. */
static int64_t head_length(const struct sp_upstream_head *hd)
{
    for (size_t i = 0; i < hd->n_headers; i++) {
        const struct sp_upstream_header *h = &hd->headers[i];
        int64_t v = 0;
        if (!sp_eq_ci(h->name, h->name_len, "Content-Length") || h->value_len == 0 ||
            h->value_len > 18)
            continue;
        for (size_t k = 0; k < h->value_len && v >= 0; k++)
            v = h->value[k] >= '0' && h->value[k] <= '9' ? v * 10 + (h->value[k] - '0') : -1;
        return v;
    }
    return -1;
}

static void on_client_drained(struct sp_h1_req *req, void *arg)
{
    struct fwd *f = arg;

    if (f->paused && f->up) {
        f->paused = 0;
        sp_upstream_pause(f->up, 0);
    }
}

static int on_up_head(void *arg, const struct sp_upstream_head *hd)
{
    struct fwd *f = arg;
    const struct sp_upstream_header *h = hd->headers;
    struct sp_h1_header *out = calloc(hd->n_headers + 2, sizeof(*out));
    size_t *off = calloc(hd->n_headers + 1, sizeof(*off)), k = 0;
    int64_t length = hd->content_length;
    char reason[128];
    struct sp_buf vals;
    struct sp_err err;
    int rc = -1;

    sp_buf_init(&vals, 0, 1);
    if (f->client_gone || !out || !off)
        goto out;
    sp_metrics_upstream_connection(hd->reused);
    /* Header values are echoes too (a Location built from the request):
     * redacted like the body, into one buffer, pointed at once complete. */
    for (size_t i = 0; i < hd->n_headers; i++) {
        if (sp_target_hop_header(h[i].name, h[i].name_len))
            continue;
        off[k] = vals.len;
        if ((f->stream ? sp_redactor_redact(sp_resolution_redactor(f->res), h[i].value,
                                            h[i].value_len, &vals, NULL)
                       : sp_buf_add(&vals, h[i].value, h[i].value_len, NULL)) < 0)
            goto out;
        out[k++] = (struct sp_h1_header){h[i].name, h[i].name_len, NULL, 0};
    }
    off[k] = vals.len;
    for (size_t i = 0; i < k; i++) {
        out[i].value = vals.data ? vals.data + off[i] : "";
        out[i].value_len = off[i + 1] - off[i];
    }
    out[k++] = (struct sp_h1_header){"Via", 3, "1.1 secretproxy", 15};
    out[k++] = (struct sp_h1_header){"Secretproxy-Request-Id", 22, f->rid, strlen(f->rid)};
    if (strcmp(f->method, "HEAD") == 0 || hd->status == 304)
        length = head_length(hd);
    else if (f->stream)
        length = -1; /* redaction may change the length: chunked */
    snprintf(reason, sizeof(reason), "%.*s", (int)(hd->reason_len < 100 ? hd->reason_len : 100),
             hd->reason ? hd->reason : "");
    f->status = hd->status;
    if (sp_h1_reply_start(f->req, hd->status, reason[0] ? reason : NULL, out, k, length, &err) < 0)
        goto out;
    f->state = FWD_STREAMING;
    sp_h1_req_on_drain(f->req, CLIENT_LOW_WATER, on_client_drained, f);
    rc = 0;
out:
    sp_buf_free(&vals);
    free(out);
    free(off);
    return rc;
}

static int send_chunk(struct fwd *f, const char *p, size_t n)
{
    if (sp_h1_reply_chunk(f->req, p, n) < 0)
        return -1;
    f->bytes_out += n;
    if (sp_h1_req_unsent(f->req) > CLIENT_BACKLOG && !f->paused) {
        f->paused = 1;
        sp_upstream_pause(f->up, 1);
    }
    return 0;
}

static int on_up_body(void *arg, const char *p, size_t n)
{
    struct fwd *f = arg;
    struct sp_buf out;
    int rc;

    if (f->client_gone)
        return -1;
    if (!f->stream)
        return send_chunk(f, p, n);
    sp_buf_init(&out, 0, 0);
    rc = sp_redact_stream_feed(f->stream, p, n, &out, NULL);
    if (rc == 0 && out.len)
        rc = send_chunk(f, out.data, out.len);
    sp_buf_free(&out);
    return rc;
}

static void on_up_done(void *arg, const struct sp_err *err, int head_sent)
{
    struct fwd *f = arg;

    f->up = NULL;
    f->t_upstream_us = sp_mono_us() - f->t_upstream_start;
    sp_metrics_upstream_latency(f->t_upstream_us);
    if (err && !head_sent) {
        fail(f, err);
        return;
    }
    if (err) {
        f->code = err->code;
    } else if (f->stream) {
        struct sp_buf out;
        sp_buf_init(&out, 0, 0);
        if (sp_redact_stream_finish(f->stream, &out, NULL) < 0 ||
            (out.len && send_chunk(f, out.data, out.len) < 0))
            f->code = SP_E_INTERNAL;
        sp_buf_free(&out);
    }
    /* A failed answer is made visibly incomplete: the connection resets. */
    if (f->code != SP_E_OK)
        sp_h1_reply_abort(f->req);
    else
        sp_h1_reply_end(f->req);
    f->req = NULL;
    fwd_free(f);
}

/* ---- after resolution ---- */

/* Re-sign an SDK's SigV4 request (hs, n and the body are updated). */
static int resign(struct fwd *f, struct sp_upstream_header *hs, size_t *n, size_t cap,
                  const char **body, size_t *body_len, const struct sp_buf **query,
                  struct sp_err *err)
{
    const struct sp_buf *path = sp_resolution_path(f->res);
    const struct sp_buf *q = sp_resolution_query(f->res);
    struct sp_fwd_sigv4_req r;

    if (!q && f->aws.mode == SP_FWD_SIGV4_QUERY)
        q = &f->aws.query;
    memset(&r, 0, sizeof(r));
    r.method = f->method;
    r.path = path ? path->data : f->target.path;
    r.path_len = path ? path->len : f->target.path_len;
    r.query = q ? q->data : f->target.query;
    r.query_len = q ? q->len : f->target.query_len;
    r.hs = hs, r.n_hs = *n, r.cap = cap;
    r.body = *body, r.body_len = *body_len;
    r.body_changed = sp_resolution_body(f->res) != NULL;
    r.body_framed = sp_upstream_body_framed(f->method, *body_len);
    if (f->streamed) {
        r.streamed = 1;
        r.body_len = f->stream_length > 0 ? (size_t)f->stream_length : 0;
        r.body_framed = f->stream_length >= 0;
    }
    if (sp_fwd_sigv4_sign(&f->aws, f->res, 0, f->w->sigv4_cache, f->headers, f->nheaders, &r, err) <
        0)
        return -1;
    *n = r.n_hs;
    *body = r.body, *body_len = r.body_len;
    *query = r.signed_query ? r.signed_query : q;
    return 0;
}

/* ---- a streamed aws-chunked upload ---- */

/* The upload failed on our side: nothing complete reaches the upstream. */
static void stream_fail(struct fwd *f, const struct sp_err *err)
{
    if (f->up) {
        sp_upstream_cancel(f->up);
        f->up = NULL;
    }
    if (f->state != FWD_STREAMING) {
        fail(f, err);
        return;
    }
    f->code = err->code;
    sp_h1_reply_abort(f->req);
    f->req = NULL;
    fwd_free(f);
}

/* A reference in an upload cannot be substituted (the chunk signatures
 * cover the body as written): refused, also when it is split across
 * reads. */
static int stream_has_ref(struct fwd *f, const char *p, size_t n)
{
    char join[2 * REF_TAIL];
    size_t k = n < REF_TAIL ? n : REF_TAIL, keep;

    memcpy(join, f->tail, f->tail_len);
    memcpy(join + f->tail_len, p, k);
    if (sp_text_has_ref(join, f->tail_len + k, 0) || sp_text_has_ref(p, n, 0))
        return 1;
    keep = n >= REF_TAIL ? 0 : (f->tail_len < REF_TAIL - n ? f->tail_len : REF_TAIL - n);
    memmove(f->tail, f->tail + f->tail_len - keep, keep);
    memcpy(f->tail + keep, p + n - (n >= REF_TAIL ? REF_TAIL : n), n >= REF_TAIL ? REF_TAIL : n);
    f->tail_len = keep + (n >= REF_TAIL ? REF_TAIL : n);
    return 0;
}

static void on_stream_data(struct sp_h1_req *req, const char *p, size_t n, int last, void *arg)
{
    struct fwd *f = arg;
    struct sp_err e;

    if (!f->up)
        return; /* the upstream already answered: the rest is dropped */
    if (n && stream_has_ref(f, p, n)) {
        sp_err_set(&e, SP_E_REFERENCE_INVALID,
                   "A secret reference inside an aws-chunked body cannot be substituted");
        stream_fail(f, &e);
        return;
    }
    if (sp_fwd_sigv4_body(&f->aws, p, n, last, &f->upbuf, &e) < 0) {
        stream_fail(f, &e);
        return;
    }
    f->body_done = last;
    if (f->upbuf.len - f->upoff > STREAM_HIGH && !f->body_paused) {
        f->body_paused = 1;
        sp_h1_req_body_pause(f->req, 1);
    }
    if (f->up_waiting) {
        f->up_waiting = 0;
        sp_upstream_resume_upload(f->up);
    }
}

static ssize_t on_up_read(void *arg, char *buf, size_t len)
{
    struct fwd *f = arg;
    size_t n = f->upbuf.len - f->upoff;

    if (!n) {
        if (f->body_done)
            return 0;
        f->up_waiting = 1;
        return SP_UPSTREAM_READ_WAIT;
    }
    n = n < len ? n : len;
    memcpy(buf, f->upbuf.data + f->upoff, n);
    f->upoff += n;
    if (f->upoff == f->upbuf.len) {
        f->upbuf.len = 0;
        f->upoff = 0;
    } else if (f->upoff >= STREAM_LOW) {
        memmove(f->upbuf.data, f->upbuf.data + f->upoff, f->upbuf.len - f->upoff);
        f->upbuf.len -= f->upoff;
        f->upoff = 0;
    }
    if (f->body_paused && f->upbuf.len - f->upoff <= STREAM_LOW) {
        f->body_paused = 0;
        sp_h1_req_body_pause(f->req, 0);
    }
    return (ssize_t)n;
}

int sp_forward_wants_stream(const struct sp_h1_req *req, void *arg)
{
    const char *auth = sp_h1_req_header(req, "Authorization");
    const char *sha = sp_h1_req_header(req, "X-Amz-Content-Sha256");
    enum sp_sigv4_chunked_mode m;

    (void)arg;
    /* An SDK's aws-chunked upload to re-sign streams through; every other
     * body is read whole (references in it are substituted). */
    return sp_h1_req_target(req, NULL)[0] != '/' && sha &&
           sp_sigv4_chunked_mode_for(sha, strlen(sha), &m) == 0 && auth &&
           strncmp(auth, SP_SIGV4_ALGORITHM " ", 17) == 0 && sp_text_has_ref(auth, strlen(auth), 0);
}

static void start_upstream(struct fwd *f)
{
    struct sp_upstream_header hs[MAX_HEADERS + 2 + SP_SIGV4_MAX_SET];
    struct sp_upstream_request r;
    struct sp_upstream_callbacks cbs = {on_up_head, on_up_body, on_up_done};
    struct sp_buf url, host;
    struct sp_body_digests digests;
    const struct sp_buf *rbody = sp_resolution_body(f->res), *query = sp_resolution_query(f->res);
    const char *body = rbody ? rbody->data : f->body;
    size_t body_len = rbody ? rbody->len : f->body_len;
    int redact = f->w->conf->proxy_echo_redaction.i && sp_resolution_refs(f->res) > 0;
    size_t n = 0;
    struct sp_err err;

    sp_buf_init(&url, 0, 1);
    sp_buf_init(&host, 0, 0);
    if (sp_target_authority(&f->target, &host) < 0) {
        fail_code(f, SP_E_INTERNAL, "out of memory");
        goto out;
    }
    hs[n++] = (struct sp_upstream_header){"Host", 4, host.data, host.len};
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct sp_buf *v = sp_resolution_header(f->res, i);
        /* Echo redaction needs a plain body: ask for no content coding. */
        if (redact && sp_eq_ci(f->headers[i].name, f->headers[i].name_len, "Accept-Encoding"))
            continue;
        hs[n++] = (struct sp_upstream_header){f->headers[i].name, f->headers[i].name_len,
                                              v ? v->data : f->headers[i].value,
                                              v ? v->len : f->headers[i].value_len};
    }
    hs[n++] = (struct sp_upstream_header){"Via", 3, "1.1 secretproxy", 15};
    if (rbody)
        (void)sp_body_digests_refresh(hs, n, body, body_len, &digests);
    if (f->aws.mode && resign(f, hs, &n, SP_ARRAY_LEN(hs), &body, &body_len, &query, &err) < 0) {
        fail(f, &err);
        goto out;
    }
    if (sp_target_url(&f->target, sp_resolution_path(f->res), query, &url) < 0) {
        fail_code(f, SP_E_INTERNAL, "out of memory");
        goto out;
    }
    sp_fill_upstream_request(&r, f->method, &url, hs, n, body, body_len);
    if (f->streamed) {
        r.body_kind = SP_UPSTREAM_BODY_STREAM;
        r.body_size = f->stream_length;
        r.on_read = on_up_read;
    }
    /* The stream starts after signing: the key id, key and token that
     * signing added to the redactor are redacted from the answer too. */
    if (redact) {
        f->stream = sp_redact_stream_new(sp_resolution_redactor(f->res), &err);
        if (!f->stream) {
            fail(f, &err);
            goto out;
        }
    }
    f->state = FWD_UPSTREAM;
    f->t_upstream_start = sp_mono_us();
    f->up = sp_upstream_start(f->w->upstream, &r, &cbs, f, &err);
    if (!f->up)
        fail(f, &err);
    else if (f->streamed) /* only now is the client invited to send its body */
        sp_h1_req_body_start(f->req, on_stream_data, f);
out:
    sp_buf_free(&url);
    sp_buf_free(&host);
}

static void on_resolved(struct sp_resolution *res, const struct sp_err *err, void *arg)
{
    struct fwd *f = arg;

    f->res = res;
    f->t_store_us = sp_mono_us() - f->t_store_us;
    if (f->client_gone) {
        fail_code(f, SP_E_BAD_REQUEST, "The client went away");
        return;
    }
    if (err) {
        fail(f, err);
        return;
    }
    start_upstream(f);
}

/* ---- the request ---- */

static void on_client_gone(struct sp_h1_req *req, void *arg)
{
    struct fwd *f = arg;

    f->client_gone = 1;
    if (f->up) {
        sp_upstream_cancel(f->up);
        f->up = NULL;
        if (f->state != FWD_STREAMING)
            f->status = 502;
        f->code = SP_E_UPSTREAM_ERROR;
        sp_h1_reply_abort(f->req);
        f->req = NULL;
        fwd_free(f);
    }
    /* While RESOLVING, on_resolved sees client_gone and answers. */
}

static int collect_headers(struct fwd *f, struct sp_err *err)
{
    const char *conn = sp_h1_req_header(f->req, "Connection");
    size_t n;
    const struct sp_h1_header *h = sp_h1_req_headers(f->req, &n);

    /* Names are tokens and values hold no CR, LF or NUL (h1 checked). */
    for (size_t i = 0; i < n; i++) {
        if (sp_target_hop_header(h[i].name, h[i].name_len) ||
            (conn && sp_target_named_by_connection(conn, h[i].name, h[i].name_len)))
            continue;
        /* The whole body is already here (and the client got its 100
         * Continue): asking the upstream again only costs a round trip. */
        if (h[i].name_len == 6 && strcasecmp(h[i].name, "Expect") == 0 &&
            strcasecmp(h[i].value, "100-continue") == 0)
            continue;
        if (f->nheaders == MAX_HEADERS)
            return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "More than %d headers", MAX_HEADERS);
        f->headers[f->nheaders++] =
            (struct sp_rheader){h[i].name, h[i].name_len, h[i].value, h[i].value_len};
    }
    return 0;
}

static int parse(struct fwd *f, struct sp_caller *asserted, struct sp_err *err)
{
    static const char *const ctx_headers[] = {"Secretproxy-User", "Secretproxy-Function",
                                              "Secretproxy-App", "Secretproxy-Env"};
    const char **ctx_fields[] = {&asserted->user, &asserted->function, &asserted->app,
                                 &asserted->env};

    if (sp_target_parse(f->uri, &f->target, err) < 0 ||
        sp_worker_check_target(f->w, &f->target, err) < 0)
        return -1;
    if (sp_http_credential(sp_h1_req_header(f->req, "Proxy-Authorization"), f->token,
                           sizeof(f->token), 1) < 0)
        return sp_err_set(err, SP_E_PROXY_AUTH_REQUIRED,
                          "Proxy authentication required (an API key as the password of "
                          "HTTP_PROXY=http://x:KEY@host:port, or Proxy-Authorization: Bearer)");
    for (size_t i = 0; i < SP_ARRAY_LEN(ctx_headers); i++) {
        const char *v = sp_h1_req_header(f->req, ctx_headers[i]);
        if (v && !sp_valid_name(v, strlen(v)))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid %s header", ctx_headers[i]);
        *ctx_fields[i] = v;
    }
    if (collect_headers(f, err) < 0 ||
        sp_fwd_sigv4_detect(&f->aws, f->headers, f->nheaders, f->target.query, f->target.query_len,
                            err) < 0)
        return -1;
    f->body = sp_h1_req_body(f->req, &f->body_len);
    return 0;
}

void sp_forward_request(struct sp_worker *w, struct sp_h1_req *req)
{
    struct fwd *f = calloc(1, sizeof(*f));
    struct sp_caller asserted;
    struct sp_rrequest q;
    struct sp_resolve_opts o;
    struct sp_err err;
    const char *key_id;
    size_t key_id_len;
    int rc;

    if (!f) {
        sp_err_set(&err, SP_E_INTERNAL, "out of memory");
        sp_h1_reply_error(req, NULL, &err, NULL, 0);
        return;
    }
    f->w = w;
    f->req = req;
    f->state = FWD_PARSE;
    f->t0_us = sp_mono_us();
    f->code = SP_E_OK;
    sp_http_request_id(f->rid);
    w->inflight++;
    /* The target is copied: the log line is written after the request was
     * answered (and freed). */
    f->uri = strdup(sp_h1_req_target(req, NULL));
    /* TRACE would echo the substituted request back. */
    if (strlen(sp_h1_req_method(req)) >= sizeof(f->method) || sp_h1_req_method_is(req, "TRACE")) {
        fail_code(f, SP_E_METHOD_NOT_ALLOWED, "This method is not forwarded");
        return;
    }
    snprintf(f->method, sizeof(f->method), "%s", sp_h1_req_method(req));
    memset(&asserted, 0, sizeof(asserted));
    if (!f->uri) {
        fail_code(f, SP_E_INTERNAL, "out of memory");
        return;
    }
    if (parse(f, &asserted, &err) < 0) {
        fail(f, &err);
        return;
    }
    f->streamed = sp_h1_req_streamed(req);
    if (f->streamed) {
        const char *cl = sp_h1_req_header(req, "Content-Length");
        f->stream_length = cl ? (int64_t)strtoll(cl, NULL, 10) : -1;
        sp_buf_init(&f->upbuf, 16u << 20, 1);
        if (f->aws.mode != SP_FWD_SIGV4_HEADER || !f->aws.streaming) {
            fail_code(f, SP_E_BAD_REQUEST, "This upload cannot be streamed");
            return;
        }
    }
    memset(&q, 0, sizeof(q));
    q.host = f->target.host;
    q.path = f->target.path, q.path_len = f->target.path_len;
    q.query = f->target.query, q.query_len = f->target.query_len;
    q.headers = f->headers, q.nheaders = f->nheaders;
    q.body = f->body, q.body_len = f->body_len;
    if (f->aws.mode) {
        /* The SDK's access key id is a reference to an aws secret. */
        f->aws_extra = 1;
        key_id = f->aws.auth.key_id;
        key_id_len = f->aws.auth.key_id_len;
        q.extra = &key_id, q.extra_len = &key_id_len, q.nextra = 1;
        q.extra_aws = &f->aws_extra;
        if (f->aws.mode == SP_FWD_SIGV4_QUERY)
            q.query = f->aws.query.data, q.query_len = f->aws.query.len;
        /* An aws-chunked body is framed by chunk sizes and its signatures
         * cover it as written: a reference in it cannot be substituted,
         * and is never passed on. */
        if (f->aws.streaming && sp_text_has_ref(f->body, f->body_len, 0)) {
            fail_code(f, SP_E_REFERENCE_INVALID,
                      "A secret reference inside an aws-chunked body cannot be substituted");
            return;
        }
        if (f->aws.streaming)
            q.body = NULL, q.body_len = 0;
    }
    q.content_type = sp_h1_req_header(req, "Content-Type");
    memset(&o, 0, sizeof(o));
    o.required_perms = SP_PERM_PROXY;
    o.empty_hosts_any = strcmp(w->conf->secrets_empty_hosts.s, "any") == 0;
    o.default_app = w->conf->proxy_default_app.s;
    o.default_env = w->conf->proxy_default_env.s;
    o.max_body = (size_t)w->conf->proxy_max_body_size.i * 2 + 65536;
    if (sp_h1_req_on_gone(req, on_client_gone, f) < 0) {
        fail_code(f, SP_E_BAD_REQUEST, "The client went away");
        return;
    }
    f->state = FWD_RESOLVING;
    f->t_store_us = sp_mono_us();
    rc = sp_resolver_run(w->store, f->token, strlen(f->token), &asserted, &q, &o, on_resolved, f,
                         &err);
    /* The key is needed only to start the resolution. */
    sp_wipe(f->token, sizeof(f->token));
    if (rc < 0) {
        f->t_store_us = 0; /* never reached the store */
        fail(f, &err);
    }
}

static void fwd_free(struct fwd *f)
{
    f->state = FWD_DONE;
    if (f->up)
        sp_upstream_cancel(f->up);
    if (f->req) /* every request ends with exactly one finishing call */
        sp_h1_reply_abort(f->req);
    {
        struct sp_access a = {"proxy",   f->rid,        f->method,        &f->target,
                              f->status, f->code,       f->body_len,      f->bytes_out,
                              f->t0_us,  f->t_store_us, f->t_upstream_us, f->res};
        sp_access_log(f->w, &a);
    }
    sp_metrics_request(f->w->metric_route, f->status, sp_mono_us() - f->t0_us);
    if (f->code != SP_E_OK)
        sp_metrics_denial(f->code);
    f->w->inflight--;
    sp_redact_stream_free(f->stream);
    sp_fwd_sigv4_clear(&f->aws);
    sp_buf_free(&f->upbuf);
    sp_resolution_free(f->res);
    free(f->uri);
    sp_wipe(f, sizeof(*f));
    free(f);
}
