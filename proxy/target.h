/*
 * target.h - parsing and vetting a forward-proxy request's target and
 * headers. Private to proxy/.
 */
#ifndef SP_PROXY_TARGET_H
#define SP_PROXY_TARGET_H

#include <stddef.h>

#include "conf.h"
#include "sp.h"

struct sp_target {
    int https;
    char host[256]; /* lower case, no brackets */
    int port;
    const char *path; /* into the URI; "" when the URI has none */
    size_t path_len;
    const char *query; /* into the URI, after '?'; NULL if none */
    size_t query_len;
};

/* Parse an absolute-form target "http(s)://host[:port][/path][?query]".
 * Refuses other forms, user information and fragments (bad_request).
 * path and query borrow from uri. */
SP_MUSTCHECK int sp_target_parse(const char *uri, struct sp_target *t, struct sp_err *err);
/* A header the proxy never forwards as is: hop-by-hop ones, Host and
 * Content-Length (the proxy sets them), Proxy-* and Secretproxy-*. */
int sp_target_hop_header(const char *name, size_t n);
/* Is name listed in a Connection header's value? */
int sp_target_named_by_connection(const char *connection, const char *name, size_t n);
/* Apply upstream.upgrade_hosts: http -> https (port 80 -> 443). Returns 1
 * if upgraded. */
int sp_target_upgrade(const struct sp_conf *c, struct sp_target *t);

/* "host[:port]" as it goes in a Host header (port only when not the
 * scheme's default; IPv6 in brackets). */
SP_MUSTCHECK int sp_target_authority(const struct sp_target *t, struct sp_buf *out);
/* The upstream URL, with the substituted path/query when given (NULL: the
 * target's own). */
SP_MUSTCHECK int sp_target_url(const struct sp_target *t, const struct sp_buf *path,
                               const struct sp_buf *query, struct sp_buf *url);

#endif
