/* http_err.c - the one error answer format, as status + fields + body. */
#include "http_err.h"

#include <stdio.h>
#include <string.h>

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {417, "Expectation Failed"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *sp_http_status_reason(int status)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Status";
}

void sp_http_error_request_id(char out[SP_HTTP_ERROR_RID_LEN + 1])
{
    char tok[40];

    if (sp_random_token(tok, sizeof(tok), 15, NULL) < 0)
        snprintf(tok, sizeof(tok), "%020lld", (long long)sp_mono_us());
    memcpy(out, tok, SP_HTTP_ERROR_RID_LEN);
    out[SP_HTTP_ERROR_RID_LEN] = '\0';
}

int sp_http_error_build(struct sp_http_error *e, const struct sp_err *err, int status,
                        const char *rid)
{
    const char *wire = sp_err_wire(err->code);

    memset(e, 0, sizeof(*e));
    sp_buf_init(&e->body, 0, 0);
    e->status = status ? status : sp_err_http_status(err->code);
    e->reason = sp_http_status_reason(e->status);
    e->fields[e->nfields++] = (struct sp_http_field){"Content-Type", "application/json"};
    e->fields[e->nfields++] = (struct sp_http_field){"Cache-Control", "no-store"};
    e->fields[e->nfields++] = (struct sp_http_field){"Secretproxy-Error", wire};
    if (rid)
        e->fields[e->nfields++] = (struct sp_http_field){"Secretproxy-Request-Id", rid};
    if (sp_buf_printf(&e->body, NULL, "{\"error\":{\"code\":\"%s\",\"message\":\"", wire) < 0 ||
        sp_json_escape(&e->body, err->msg, strnlen(err->msg, sizeof(err->msg)), NULL) < 0 ||
        sp_buf_addstr(&e->body, "\",\"request_id\":\"", NULL) < 0 ||
        (rid && sp_json_escape(&e->body, rid, strlen(rid), NULL) < 0) ||
        sp_buf_addstr(&e->body, "\"}}\n", NULL) < 0) {
        sp_http_error_free(e);
        return -1;
    }
    return 0;
}

void sp_http_error_free(struct sp_http_error *e)
{
    sp_buf_free(&e->body);
    e->nfields = 0;
}
