/*
 * api_int.h - what the secrets API's files share: the per-request context
 * and the reply/finish helpers every handler ends with. Private to proxy/.
 *
 * Life cycle: on_request() builds a struct api_req, routes it, authenticates
 * the caller (one store round trip), checks permission, workspace, context
 * and scope, parses the JSON body, then calls the route's handler. A handler
 * ends in exactly one api_reply*() or api_fail(), which sends the reply,
 * writes the audit line, counts metrics and frees the request.
 */
#ifndef SP_PROXY_API_INT_H
#define SP_PROXY_API_INT_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "api.h"
#include "http.h"
#include "keyring.h"
#include "store.h"

struct api_req;
typedef void (*api_handler)(struct api_req *ar);

struct api_route {
    int method;          /* EVHTTP_REQ_* */
    const char *pattern; /* "/v1/secrets/{}/value": {} is one path segment */
    unsigned perm;       /* SP_PERM_* needed; 0 = none (no auth) */
    const char *action;  /* audit action, e.g. "secret.set" */
    const char *fields;  /* allowed JSON body fields, space-separated; NULL = no body */
    const char *params;  /* allowed query parameters, space-separated */
    api_handler fn;
    int metric; /* metrics route index */
};

struct sp_api {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct sp_store *store;
    struct sp_keyring *kr;
    const struct sp_conf *conf;
    int rotating;
};

struct api_req {
    struct sp_api *api;
    struct evhttp_request *req;
    const struct api_route *rt;
    char rid[SP_REQUEST_ID_LEN + 1];
    int64_t t0_us;
    char arg[130]; /* the {} path segment, decoded */
    struct evkeyvalq query;
    json_t *body;

    struct sp_key key; /* the caller */
    char ws[129];      /* effective workspace */
    char scope[140];   /* ?scope=, default "workspace" */
    int scope_given;
    char user[129]; /* context: from the key, or asserted */
    char function[129];

    /* for the audit line */
    char audit_name[130];
    char audit_scope[140];
    char audit_target[64];
};

/* Replies that end the request. */
void api_reply(struct api_req *ar, int status, struct sp_buf *body);
void api_reply_secret(struct api_req *ar, int status, struct sp_buf *body);
/* Renders one item (struct sp_key, sp_group, sp_secret_meta ...) as JSON. */
typedef int (*api_render_fn)(const void *item, struct sp_buf *out, struct sp_err *err);
/* {"field": item} and {"field": [items...]} (items is an array of count
 * elements of size bytes). */
void api_reply_one(struct api_req *ar, int status, const char *field, const void *item,
                   api_render_fn render);
void api_reply_list(struct api_req *ar, const char *field, const void *items, size_t count,
                    size_t size, api_render_fn render);
/* Store callback for deletions: {"deleted":true}, or the store's error. */
void api_on_deleted(const struct sp_err *err, void *arg);
/* A constant JSON body. */
void api_reply_text(struct api_req *ar, int status, const char *json);
void api_fail(struct api_req *ar, const struct sp_err *err);
void api_fail_code(struct api_req *ar, enum sp_err_code code, const char *fmt, ...) SP_PRINTF(3, 4);

/* May this caller use scope s (in its workspace)? */
int api_scope_allowed(const struct api_req *ar, const char *s);
/* The query parameter's value, or NULL. */
const char *api_param(const struct api_req *ar, const char *name);

/* Handlers (api_secrets.c, api_keys.c). */
void api_secret_put(struct api_req *ar);
void api_secret_create(struct api_req *ar);
void api_secret_list(struct api_req *ar);
void api_secret_get(struct api_req *ar);
void api_secret_value(struct api_req *ar);
void api_secret_patch(struct api_req *ar);
void api_secret_revoke(struct api_req *ar);
void api_secret_delete(struct api_req *ar);
void api_secret_complete(struct api_req *ar);
void api_key_create(struct api_req *ar);
void api_key_list(struct api_req *ar);
void api_key_delete(struct api_req *ar);
void api_group_create(struct api_req *ar);
void api_group_list(struct api_req *ar);
void api_group_delete(struct api_req *ar);
void api_keyring_rotate(struct api_req *ar);
void api_keyring_status(struct api_req *ar);

/* Host entries: a valid host name, or a PCRE2 pattern that compiles. */
int api_host_entry_ok(const char *s);

#endif
