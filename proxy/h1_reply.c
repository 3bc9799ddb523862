/*
 * h1_reply.c - what the owner of a request sees: the request's fields and
 * events, and its answer (whole, streamed or aborted), framed by HTTP/1.1
 * rules (Content-Length, chunked, or close-delimited for HTTP/1.0; none for
 * HEAD, 204 and 304).
 */
#include "h1_int.h"
#include "http_err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the request ---- */

const char *sp_h1_req_method(const struct sp_h1_req *req)
{
    return req->info.method;
}

int sp_h1_req_method_is(const struct sp_h1_req *req, const char *m)
{
    return strcmp(req->info.method, m) == 0;
}

const char *sp_h1_req_target(const struct sp_h1_req *req, size_t *len)
{
    if (len)
        *len = req->info.target_len;
    return req->info.target;
}

int sp_h1_req_version(const struct sp_h1_req *req)
{
    return req->info.version;
}

const struct sp_h1_header *sp_h1_req_headers(const struct sp_h1_req *req, size_t *n)
{
    *n = req->nheaders;
    return req->headers;
}

const char *sp_h1_req_header(const struct sp_h1_req *req, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
            return req->headers[i].value;
    return NULL;
}

char *sp_h1_req_body(struct sp_h1_req *req, size_t *len)
{
    *len = req->body.len;
    return req->body.len ? req->body.data : NULL;
}

const struct sockaddr *sp_h1_req_peer(const struct sp_h1_req *req, socklen_t *len)
{
    if (len)
        *len = req->c->peer_len;
    return (const struct sockaddr *)&req->c->peer;
}

int sp_h1_req_gone(const struct sp_h1_req *req)
{
    return req->gone;
}

int sp_h1_req_on_gone(struct sp_h1_req *req, sp_h1_req_fn cb, void *arg)
{
    if (req->gone)
        return -1;
    req->on_gone = cb;
    req->gone_arg = arg;
    return 0;
}

size_t sp_h1_req_unsent(const struct sp_h1_req *req)
{
    return req->c->fd >= 0 && !req->gone ? req->c->out_len : 0;
}

void sp_h1_req_on_drain(struct sp_h1_req *req, size_t low_water, sp_h1_req_fn cb, void *arg)
{
    req->low_water = low_water;
    req->on_drain = cb;
    req->drain_arg = arg;
    req->drain_armed = cb && sp_h1_req_unsent(req) > low_water;
}

void sp_h1_req_close_after(struct sp_h1_req *req)
{
    req->close_after = 1;
}

/* ---- the answer ---- */

/* A streamed request that failed while the module's own error answer is
 * still on its way: free it, leave the connection to that answer. */
static int detach_gone(struct sp_h1_req *req)
{
    struct h1_conn *c = req->c;

    if (!req->gone || c->fd < 0)
        return 0;
    c->req = NULL;
    h1_req_free(req);
    return 1;
}

/* Free the request; the connection goes on (or closes after the output).
 * Keep-alive only once a streamed body was read to its end. */
static void finish(struct sp_h1_req *req)
{
    struct h1_conn *c = req->c;
    int close = c->fd < 0 || req->close_on_end || req->close_after || c->srv->draining ||
                (req->streamed && !req->body_done);

    if (detach_gone(req))
        return;
    c->req = NULL;
    h1_req_free(req);
    if (c->fd < 0) {
        h1_conn_maybe_free(c);
        return;
    }
    c->state = close ? C_CLOSING : C_NEXT;
    if (close)
        h1_read_pause(c, 0);
    h1_schedule_flush(c);
}

static int queue_head(struct sp_h1_req *req, int status, const char *reason,
                      const struct sp_h1_header *h, size_t n, const struct sp_h1_header *h2,
                      size_t n2, int64_t cl, struct sp_err *err)
{
    struct h1_conn *c = req->c;
    struct h1_head hd = {.status = status, .h = {h, h2}, .n = {n, n2}, .content_length = -1};
    int nobody = req->info.is_head || status == 204 || status == 304;
    size_t sz;
    char *w;

    if (status < 200 || status > 999)
        return sp_err_set(err, SP_E_INTERNAL, "Status %d cannot be sent", status);
    if (!h1_fields_ok(h, n) || !h1_fields_ok(h2, n2))
        return sp_err_set(err, SP_E_INTERNAL,
                          "A response header is invalid (name not a token, "
                          "or CR, LF or NUL in its value)");
    h1_head_reason(&hd, reason);
    if (nobody)
        req->mode = M_NOBODY;
    else if (cl >= 0)
        req->mode = M_LENGTH;
    else
        req->mode = req->info.version == 11 ? M_CHUNKED : M_CLOSE;
    if (status != 204 && cl >= 0)
        hd.content_length = cl;
    hd.chunked = req->mode == M_CHUNKED;
    req->close_on_end = !req->info.keepalive || req->close_after || c->srv->draining ||
                        req->mode == M_CLOSE || (req->streamed && !req->body_done);
    hd.connection = req->close_on_end         ? CONN_CLOSE
                    : req->info.version == 10 ? CONN_KEEPALIVE
                                              : CONN_NONE;
    sz = h1_head_size(&hd);
    w = h1_out_reserve(c, sz);
    if (!w)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    h1_head_write(&hd, w);
    h1_out_commit(c, sz);
    req->resp_cl = cl;
    req->started = 1;
    return 0;
}

static void reply_whole(struct sp_h1_req *req, int status, const char *reason,
                        const struct sp_h1_header *h, size_t n, const struct sp_h1_header *h2,
                        size_t n2, const void *body, size_t len)
{
    struct sp_err err;

    if (req->gone || req->c->fd < 0) {
        finish(req);
        return;
    }
    if (req->started || queue_head(req, status, reason, h, n, h2, n2, (int64_t)len, &err) < 0 ||
        (len && req->mode != M_NOBODY && h1_out_add(req->c, body, len) < 0)) {
        if (!req->started)
            sp_log(SP_LOG_ERROR, NULL, "proxy listener: answer refused: %s", err.msg);
        sp_h1_reply_abort(req);
        return;
    }
    finish(req);
}

void sp_h1_reply(struct sp_h1_req *req, int status, const char *reason,
                 const struct sp_h1_header *h, size_t n, const void *body, size_t len)
{
    reply_whole(req, status, reason, h, n, NULL, 0, body, len);
}

void sp_h1_reply_error(struct sp_h1_req *req, const char *rid, const struct sp_err *err,
                       const struct sp_h1_header *extra, size_t n_extra)
{
    struct sp_http_error e;
    struct sp_h1_header f[SP_HTTP_ERROR_FIELDS];
    struct h1_head hd;
    char fresh[SP_HTTP_ERROR_RID_LEN + 1];

    if (!rid) {
        sp_http_error_request_id(fresh);
        rid = fresh;
    }
    /* A refused request may have been framed other than we read it. */
    if (err->code == SP_E_BAD_REQUEST || err->code == SP_E_HEADERS_TOO_LARGE ||
        err->code == SP_E_PAYLOAD_TOO_LARGE)
        req->close_after = 1;
    if (sp_http_error_build(&e, err, 0, rid) < 0) {
        sp_h1_reply_abort(req);
        return;
    }
    h1_error_head(&hd, f, &e);
    reply_whole(req, e.status, e.reason, f, e.nfields, extra, n_extra, e.body.data, e.body.len);
    sp_http_error_free(&e);
}

int sp_h1_reply_start(struct sp_h1_req *req, int status, const char *reason,
                      const struct sp_h1_header *h, size_t n, int64_t content_length,
                      struct sp_err *err)
{
    if (req->gone || req->c->fd < 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "The client went away");
    if (req->started)
        return sp_err_set(err, SP_E_INTERNAL, "The answer was already started");
    if (queue_head(req, status, reason, h, n, NULL, 0, content_length < 0 ? -1 : content_length,
                   err) < 0)
        return -1;
    h1_schedule_flush(req->c);
    return 0;
}

int sp_h1_reply_chunk(struct sp_h1_req *req, const void *p, size_t n)
{
    struct h1_conn *c = req->c;
    char *w;
    size_t k;

    if (req->gone || c->fd < 0 || !req->started || req->broken)
        return -1;
    if (n == 0 || req->mode == M_NOBODY) {
        req->resp_sent += n;
        return 0;
    }
    if (req->mode == M_LENGTH && n > (uint64_t)req->resp_cl - req->resp_sent) {
        req->broken = 1;
        return -1;
    }
    w = h1_out_reserve(c, n + (req->mode == M_CHUNKED ? 24 : 0));
    if (!w) {
        req->broken = 1;
        return -1;
    }
    k = 0;
    if (req->mode == M_CHUNKED) {
        k = h1_fmt_u64(w, n, 16);
        w[k++] = '\r';
        w[k++] = '\n';
    }
    memcpy(w + k, p, n);
    k += n;
    if (req->mode == M_CHUNKED) {
        w[k++] = '\r';
        w[k++] = '\n';
    }
    h1_out_commit(c, k);
    req->resp_sent += n;
    if (req->on_drain && c->out_len > req->low_water)
        req->drain_armed = 1;
    h1_schedule_flush(c);
    return 0;
}

void sp_h1_reply_end(struct sp_h1_req *req)
{
    if (req->gone || req->c->fd < 0) {
        finish(req);
        return;
    }
    if (!req->started || req->broken ||
        (req->mode == M_LENGTH && req->resp_sent != (uint64_t)req->resp_cl) ||
        (req->mode == M_CHUNKED && h1_out_add(req->c, "0\r\n\r\n", 5) < 0)) {
        sp_h1_reply_abort(req);
        return;
    }
    finish(req);
}

void sp_h1_reply_abort(struct sp_h1_req *req)
{
    struct h1_conn *c = req->c;

    if (detach_gone(req))
        return;
    c->req = NULL;
    h1_req_free(req);
    h1_conn_close(c, 1);
    h1_conn_maybe_free(c);
}
