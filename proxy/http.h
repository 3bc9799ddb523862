/*
 * http.h - reply helpers shared by the API and the proxy listeners: request
 * ids, JSON replies, the one error format (Secretproxy-Error header plus
 * {"error":{code,message,request_id}}), credentials from headers. Private
 * to proxy/.
 */
#ifndef SP_PROXY_HTTP_H
#define SP_PROXY_HTTP_H

#include <event2/http.h>
#include <stddef.h>

#include "http_err.h"
#include "sp.h"

#define SP_REQUEST_ID_LEN SP_HTTP_ERROR_RID_LEN

/* A fresh request id (URL-safe, SP_REQUEST_ID_LEN chars) into out. */
#define sp_http_request_id(out) sp_http_error_request_id(out)

/* Send a JSON reply; body is copied. rid may be NULL. */
void sp_http_reply_json(struct evhttp_request *req, int status, const char *rid, const char *body,
                        size_t len);
/* Send a JSON reply whose body holds secret bytes: the buffer is handed
 * over (evbuffer_add_reference) and wiped and freed once written. */
void sp_http_reply_json_secret(struct evhttp_request *req, int status, const char *rid,
                               struct sp_buf *body);
/* The error reply for err (http_err.h's format): status from the error
 * table, Secretproxy-Error, JSON body. Extra headers (Proxy-Authenticate)
 * are the caller's. */
void sp_http_reply_error(struct evhttp_request *req, const char *rid, const struct sp_err *err);
/* Reason phrase for a status. */
#define sp_http_reason(status) sp_http_status_reason(status)

/*
 * The token of "Bearer <token>" or the password of "Basic base64(user:pw)"
 * in header value v. Writes at most outsz-1 bytes + NUL into out. Returns 0,
 * or -1 if absent or malformed. The caller wipes out.
 */
int sp_http_credential(const char *v, char *out, size_t outsz, int allow_basic);

/* "GET", "PUT", ... for an EVHTTP_REQ_* value. */
const char *sp_http_method_name(int method);

/* Content-Type is application/json (parameters allowed). */
int sp_http_is_json(struct evhttp_request *req);
/* Is a Content-Type value (NULL ok) application/json, with parameters or not? */
int sp_http_is_json_type(const char *content_type);

#endif
