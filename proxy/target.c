/*
 * target.c - what a forward-proxy request asks for, checked before anything
 * is resolved: the absolute-form target (scheme, host, port, path, query),
 * hop-by-hop headers (RFC 9110 §7.6.1), the framing headers that smuggling
 * relies on, and the http -> https upgrade rule.
 */
#include "target.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resolver.h"

int sp_target_parse(const char *uri, struct sp_target *t, struct sp_err *err)
{
    const char *p, *auth, *auth_end, *path;
    size_t hl;

    memset(t, 0, sizeof(*t));
    if (strncasecmp(uri, "http://", 7) == 0) {
        t->https = 0;
        auth = uri + 7;
    } else if (strncasecmp(uri, "https://", 8) == 0) {
        t->https = 1;
        auth = uri + 8;
    } else {
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "Send absolute-form requests (http://host/path) through the proxy");
    }
    auth_end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(auth_end - auth)))
        return sp_err_set(err, SP_E_BAD_REQUEST, "User information in the target URL is refused");
    /* host or [v6], then an optional :port */
    if (*auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
        if (!close)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed IPv6 host in the target URL");
        hl = (size_t)(close - auth - 1);
        if (hl == 0 || hl >= sizeof(t->host))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed host in the target URL");
        memcpy(t->host, auth + 1, hl);
        p = close + 1;
    } else {
        const char *colon = memchr(auth, ':', (size_t)(auth_end - auth));
        p = colon ? colon : auth_end;
        hl = (size_t)(p - auth);
        if (hl == 0 || hl >= sizeof(t->host))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Missing or overlong host in the target URL");
        memcpy(t->host, auth, hl);
    }
    t->host[hl] = '\0';
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)t->host[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == ':' || c == '_'))
            return sp_err_set(err, SP_E_BAD_REQUEST, "Invalid character in the target host");
        t->host[i] = (char)tolower(c);
    }
    t->port = t->https ? 443 : 80;
    if (p < auth_end) {
        char *end;
        long v;
        if (*p != ':' || p + 1 == auth_end)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed port in the target URL");
        v = strtol(p + 1, &end, 10);
        if (end != auth_end || v < 1 || v > 65535)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed port in the target URL");
        t->port = (int)v;
    }
    path = auth_end;
    if (*path == '#')
        return sp_err_set(err, SP_E_BAD_REQUEST, "A fragment in the target URL is refused");
    t->path = path;
    t->path_len = strcspn(path, "?#");
    if (path[t->path_len] == '?') {
        t->query = path + t->path_len + 1;
        t->query_len = strcspn(t->query, "#");
    }
    if ((t->query ? t->query[t->query_len] : path[t->path_len]) == '#')
        return sp_err_set(err, SP_E_BAD_REQUEST, "A fragment in the target URL is refused");
    return 0;
}

/* RFC 9110 §7.6.1 and what must never reach an upstream from us. */
int sp_target_hop_header(const char *name, size_t n)
{
    static const char *const hop[] = {"Connection", "Keep-Alive",        "TE",
                                      "Trailer",    "Transfer-Encoding", "Upgrade",
                                      "Host",       "Content-Length",    "Proxy-Connection"};

    for (size_t i = 0; i < SP_ARRAY_LEN(hop); i++)
        if (sp_eq_ci(name, n, hop[i]))
            return 1;
    return (n >= 6 && strncasecmp(name, "Proxy-", 6) == 0) ||
           (n >= 12 && strncasecmp(name, "Secretproxy-", 12) == 0);
}

int sp_target_named_by_connection(const char *connection, const char *name, size_t n)
{
    const char *p = connection;

    while (p && *p) {
        size_t len;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        len = strcspn(p, ", \t");
        if (len && len == n && strncasecmp(p, name, n) == 0)
            return 1;
        p += len;
    }
    return 0;
}

int sp_target_upgrade(const struct sp_conf *c, struct sp_target *t)
{
    char **items, *storage;
    size_t n;
    int hit = 0;

    if (t->https || !c->upstream_upgrade_hosts.s[0])
        return 0;
    n = sp_conf_split_list(c->upstream_upgrade_hosts.s, &items, &storage);
    for (size_t i = 0; i < n && !hit; i++)
        hit = sp_resolver_host_matches(items[i], t->host, strlen(t->host));
    free(items);
    free(storage);
    if (hit) {
        t->https = 1;
        if (t->port == 80)
            t->port = 443;
    }
    return hit;
}

int sp_target_authority(const struct sp_target *t, struct sp_buf *out)
{
    int v6 = strchr(t->host, ':') != NULL;

    if (sp_buf_printf(out, NULL, "%s%s%s", v6 ? "[" : "", t->host, v6 ? "]" : "") < 0)
        return -1;
    if (t->port != (t->https ? 443 : 80) && sp_buf_printf(out, NULL, ":%d", t->port) < 0)
        return -1;
    return 0;
}

int sp_target_url(const struct sp_target *t, const struct sp_buf *path, const struct sp_buf *query,
                  struct sp_buf *url)
{
    if (sp_buf_addstr(url, t->https ? "https://" : "http://", NULL) < 0 ||
        sp_target_authority(t, url) < 0)
        return -1;
    if (path ? sp_buf_add(url, path->data, path->len, NULL)
             : (t->path_len ? sp_buf_add(url, t->path, t->path_len, NULL)
                            : sp_buf_addstr(url, "/", NULL)))
        return -1;
    if (query || t->query) {
        if (sp_buf_addstr(url, "?", NULL) < 0 ||
            sp_buf_add(url, query ? query->data : t->query, query ? query->len : t->query_len,
                       NULL) < 0)
            return -1;
    }
    return 0;
}
