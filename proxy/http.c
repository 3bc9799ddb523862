/* http.c - request ids, JSON and error replies, credentials from headers. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sp_http_request_id(char out[SP_REQUEST_ID_LEN + 1])
{
    char tok[40];

    if (sp_random_token(tok, sizeof(tok), 15, NULL) < 0)
        snprintf(tok, sizeof(tok), "%020lld", (long long)sp_mono_us());
    memcpy(out, tok, SP_REQUEST_ID_LEN);
    out[SP_REQUEST_ID_LEN] = '\0';
}

const char *sp_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

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
    struct sp_buf b;
    int status = sp_err_http_status(err->code);
    const char *wire = sp_err_wire(err->code);

    sp_buf_init(&b, 0, 0);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Secretproxy-Error", wire);
    if (sp_buf_printf(&b, NULL, "{\"error\":{\"code\":\"%s\",\"message\":\"", wire) < 0 ||
        sp_json_escape(&b, err->msg, strlen(err->msg), NULL) < 0 ||
        sp_buf_printf(&b, NULL, "\",\"request_id\":\"%s\"}}\n", rid ? rid : "") < 0) {
        sp_buf_free(&b);
        evhttp_send_reply(req, 500, sp_http_reason(500), NULL);
        return;
    }
    sp_http_reply_json(req, status, rid, b.data, b.len);
    sp_buf_free(&b);
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
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");

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
