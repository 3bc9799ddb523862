/* http.c - request ids, JSON and error replies, credentials from headers. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void common_headers(struct evhttp_request *req, const char *rid)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (rid)
        evhttp_add_header(h, "Secretproxy-Request-Id", rid);
}

void sp_http_reply_json(struct evhttp_request *req, int status, const char *rid, const char *body,
                        size_t len)
{
    struct evbuffer *b = evbuffer_new();

    common_headers(req, rid);
    if (b)
        evbuffer_add(b, body, len);
    evhttp_send_reply(req, status, sp_http_reason(status), b);
    if (b)
        evbuffer_free(b);
}

static void wipe_cleanup(const void *data, size_t len, void *arg)
{
    sp_free_wiped((void *)data, (size_t)arg);
}

void sp_http_reply_json_secret(struct evhttp_request *req, int status, const char *rid,
                               struct sp_buf *body)
{
    struct evbuffer *b = evbuffer_new();
    size_t len, cap = body->cap;
    char *p = sp_buf_steal(body, &len);

    common_headers(req, rid);
    if (!b || !p || evbuffer_add_reference(b, p, len, wipe_cleanup, (void *)cap) < 0) {
        sp_free_wiped(p, cap);
        evhttp_send_reply(req, 500, sp_http_reason(500), NULL);
    } else {
        evhttp_send_reply(req, status, sp_http_reason(status), b);
    }
    if (b)
        evbuffer_free(b);
}

void sp_http_reply_error(struct evhttp_request *req, const char *rid, const struct sp_err *err)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    struct sp_http_error e;

    if (sp_http_error_build(&e, err, 0, rid) < 0 || !b ||
        evbuffer_add(b, e.body.data, e.body.len) < 0) {
        if (b)
            evbuffer_free(b);
        sp_http_error_free(&e);
        evhttp_send_reply(req, 500, sp_http_reason(500), NULL);
        return;
    }
    for (size_t i = 0; i < e.nfields; i++)
        evhttp_add_header(h, e.fields[i].name, e.fields[i].value);
    evhttp_send_reply(req, e.status, e.reason, b);
    evbuffer_free(b);
    sp_http_error_free(&e);
}

int sp_http_credential(const char *v, char *out, size_t outsz, int allow_basic)
{
    size_t n;

    if (!v)
        return -1;
    while (*v == ' ')
        v++;
    if (strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7;
        while (*v == ' ')
            v++;
        n = strcspn(v, " \t");
        if (n == 0 || n >= outsz || v[n])
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    if (allow_basic && strncasecmp(v, "Basic ", 6) == 0) {
        char dec[600];
        const char *colon;
        size_t dl;
        v += 6;
        while (*v == ' ')
            v++;
        n = strlen(v);
        if (n == 0 || n > 790 || sp_base64_decode(dec, &dl, v, n) < 0 || dl >= sizeof(dec))
            return -1;
        dec[dl] = '\0';
        colon = memchr(dec, ':', dl);
        if (!colon || (size_t)(dec + dl - colon - 1) >= outsz || colon[1] == '\0') {
            sp_wipe(dec, sizeof(dec));
            return -1;
        }
        memcpy(out, colon + 1, (size_t)(dec + dl - colon - 1) + 1);
        sp_wipe(dec, sizeof(dec));
        return 0;
    }
    return -1;
}

int sp_http_is_json(struct evhttp_request *req)
{
    return sp_http_is_json_type(
        evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type"));
}

int sp_http_is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

const char *sp_http_method_name(int m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}
