/*
 * http_err.h - the product's one error answer, independent of any HTTP
 * server library: from a struct sp_err, the status (error table), the
 * header fields every error carries and the JSON body
 * {"error":{"code":…,"message":…,"request_id":…}}. The proxy listener
 * (h1.c) sends it; http.c (evhttp) can send the same. Private to proxy/.
 */
#ifndef SP_PROXY_HTTP_ERR_H
#define SP_PROXY_HTTP_ERR_H

#include <stddef.h>

#include "sp.h"

#define SP_HTTP_ERROR_FIELDS 4

/* A header field as two NUL-terminated strings. */
struct sp_http_field {
    const char *name;
    const char *value;
};

struct sp_http_error {
    int status;
    const char *reason; /* static */
    /* Content-Type, Cache-Control, Secretproxy-Error and, when a request id
     * was given, Secretproxy-Request-Id (its value borrows rid). */
    struct sp_http_field fields[SP_HTTP_ERROR_FIELDS];
    size_t nfields;
    struct sp_buf body; /* the JSON, newline-terminated */
};

/*
 * Build the answer for err. status 0 takes the error table's status for
 * err->code; another value overrides it (for statuses the table has no code
 * of its own for, such as 408 and 417, which go out with the closest code).
 * rid may be NULL (then request_id is "" and no Secretproxy-Request-Id);
 * it must outlive e. err->msg never holds a value (sp_err's rule), so the
 * body holds none. Returns -1 only when out of memory (e is then empty);
 * free with sp_http_error_free either way.
 */
SP_MUSTCHECK int sp_http_error_build(struct sp_http_error *e, const struct sp_err *err, int status,
                                     const char *rid);
void sp_http_error_free(struct sp_http_error *e);

/* The reason phrase for a status ("Status" for one it does not know). */
const char *sp_http_status_reason(int status);

/* A fresh request id: SP_HTTP_ERROR_RID_LEN URL-safe characters + NUL. */
#define SP_HTTP_ERROR_RID_LEN 20
void sp_http_error_request_id(char out[SP_HTTP_ERROR_RID_LEN + 1]);

#endif
