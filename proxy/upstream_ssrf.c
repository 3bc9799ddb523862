/*
 * upstream_ssrf.c - the SSRF guard of the upstream client (DESIGN §11,
 * destination_denied): classifies the address about to be dialled and
 * refuses loopback, private, link-local, unspecified, multicast, broadcast,
 * CGNAT and reserved addresses (also inside IPv4-mapped, -compatible, NAT64
 * and 6to4 IPv6 addresses) unless upstream.allow_private is set, and the
 * proxy's own listeners always. The check runs on the address actually
 * dialled, after DNS, so DNS rebinding cannot get around it.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "upstream_int.h"

/* An address in one form: IPv4 as 4 bytes, IPv6 as 16. */
struct addr {
    int family;
    unsigned char b[16];
    uint16_t port;
};

struct own {
    struct addr a;
    int wildcard; /* any local address on this port */
};

struct up_guard {
    int allow_private;
    struct own *own;
    size_t n_own;
    struct addr *local; /* interface addresses, for wildcard listeners */
    size_t n_local;
};

static int from_sockaddr(const struct sockaddr *sa, size_t len, struct addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        out->family = AF_INET;
        memcpy(out->b, &in.sin_addr, 4);
        out->port = ntohs(in.sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        out->family = AF_INET6;
        memcpy(out->b, &in6.sin6_addr, 16);
        out->port = ntohs(in6.sin6_port);
        return 0;
    }
    return -1;
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is:
 * the kernel dials it as IPv4. */
static void unmap(struct addr *a)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (a->family == AF_INET6 && memcmp(a->b, mapped, 12) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

static const char *classify_v4(const unsigned char *b)
{
    if (b[0] == 127)
        return "a loopback address";
    if (b[0] == 0)
        return "an unspecified address";
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168))
        return "a private address";
    if (b[0] == 169 && b[1] == 254)
        return "a link-local address";
    if (b[0] == 100 && (b[1] & 0xc0) == 64)
        return "a shared (CGNAT) address";
    if (b[0] >= 224 && b[0] <= 239)
        return "a multicast address";
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
        return "the broadcast address";
    if (b[0] >= 240)
        return "a reserved address";
    return NULL;
}

/* Which class of non-public address a is, or NULL for a public one. */
static const char *classify(const struct addr *a)
{
    const unsigned char *b = a->b;
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (a->family == AF_INET)
        return classify_v4(b);
    if (all_zero(b, 16))
        return "an unspecified address";
    if (all_zero(b, 15) && b[15] == 1)
        return "a loopback address";
    if ((b[0] & 0xfe) == 0xfc)
        return "a private address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "a link-local address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "a private address"; /* deprecated site-local fec0::/10 */
    if (b[0] == 0xff)
        return "a multicast address";
    /* Forms that carry an IPv4 address a gateway may dial for us:
     * IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16. */
    if (all_zero(b, 12) || memcmp(b, nat64, 12) == 0)
        return classify_v4(b + 12);
    if (b[0] == 0x20 && b[1] == 0x02)
        return classify_v4(b + 2);
    return NULL;
}

static int same_addr(const struct addr *a, const struct addr *b)
{
    size_t n = a->family == AF_INET ? 4 : 16;
    return a->family == b->family && memcmp(a->b, b->b, n) == 0;
}

static int is_loopback_or_any(const struct addr *a)
{
    if (a->family == AF_INET)
        return a->b[0] == 127 || all_zero(a->b, 4);
    return all_zero(a->b, 15) && (a->b[15] == 0 || a->b[15] == 1);
}

/* A dial to the unspecified address reaches the loopback one on Linux. */
static void any_to_loopback(struct addr *a)
{
    if (a->family == AF_INET && all_zero(a->b, 4)) {
        a->b[0] = 127;
        a->b[3] = 1;
    } else if (a->family == AF_INET6 && all_zero(a->b, 16)) {
        a->b[15] = 1;
    }
}

static int is_own(const struct up_guard *g, const struct addr *dest)
{
    struct addr a = *dest;

    any_to_loopback(&a);
    for (size_t i = 0; i < g->n_own; i++) {
        const struct own *o = &g->own[i];
        if (o->a.port != a.port)
            continue;
        if (!o->wildcard && same_addr(&o->a, &a))
            return 1;
        if (o->wildcard) {
            if (is_loopback_or_any(&a))
                return 1;
            for (size_t j = 0; j < g->n_local; j++)
                if (same_addr(&g->local[j], &a))
                    return 1;
        }
    }
    return 0;
}

int up_guard_check(const struct up_guard *g, const struct sockaddr *sa, size_t salen,
                   const char **why)
{
    struct addr a;
    const char *cls;

    if (from_sockaddr(sa, salen, &a) < 0) {
        *why = "not an IP address";
        return -1;
    }
    unmap(&a);
    if (is_own(g, &a)) {
        *why = "this proxy's own listener";
        return -1;
    }
    cls = classify(&a);
    if (cls && !g->allow_private) {
        *why = cls;
        return -1;
    }
    return 0;
}

static int add_own(struct up_guard *g, const struct addr *a, int wildcard, struct sp_err *err)
{
    struct own *n = realloc(g->own, (g->n_own + 1) * sizeof(*n));

    if (!n)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    g->own = n;
    n[g->n_own].a = *a;
    n[g->n_own].wildcard = wildcard;
    unmap(&n[g->n_own].a);
    g->n_own++;
    return 0;
}

/* One "host:port" listener: a literal, a wildcard, or a name resolved now. */
static int parse_own(struct up_guard *g, const char *s, struct sp_err *err)
{
    char host[UP_HOST_MAX], port_s[8];
    struct addrinfo hints, *res = NULL;
    int port, is_unix, rc;
    struct addr a;

    if (sp_conf_parse_addr(s, host, sizeof(host), &port, &is_unix) < 0)
        return sp_err_set(err, SP_E_CONFIG, "listener address '%s' does not parse", s);
    if (is_unix)
        return 0;
    if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "::") == 0) {
        memset(&a, 0, sizeof(a));
        a.family = strcmp(host, "::") == 0 ? AF_INET6 : AF_INET;
        a.port = (uint16_t)port;
        return add_own(g, &a, 1, err);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port_s, sizeof(port_s), "%d", port);
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0)
        return sp_err_set(err, SP_E_CONFIG, "listener address '%s' does not resolve", s);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a) < 0)
            continue;
        if (add_own(g, &a, 0, err) < 0) {
            freeaddrinfo(res);
            return -1;
        }
    }
    freeaddrinfo(res);
    return 0;
}

static int list_local(struct up_guard *g, struct sp_err *err)
{
    struct ifaddrs *ifs = NULL;
    size_t n = 0;

    if (getifaddrs(&ifs) < 0)
        return 0; /* loopback and unspecified are still covered */
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        n++;
    g->local = calloc(n ? n : 1, sizeof(*g->local));
    if (!g->local) {
        freeifaddrs(ifs);
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    }
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        size_t len = 0;
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            len = sizeof(struct sockaddr_in);
        else if (i->ifa_addr->sa_family == AF_INET6)
            len = sizeof(struct sockaddr_in6);
        if (len && from_sockaddr(i->ifa_addr, len, &g->local[g->n_local]) == 0) {
            unmap(&g->local[g->n_local]);
            g->n_local++;
        }
    }
    freeifaddrs(ifs);
    return 0;
}

int up_guard_new(struct up_guard **out, const struct sp_upstream_opts *opts, struct sp_err *err)
{
    struct up_guard *g = calloc(1, sizeof(*g));
    int wildcard = 0;

    *out = NULL;
    if (!g)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    g->allow_private = opts->allow_private != 0;
    if (opts->n_own_addrs > SP_UPSTREAM_MAX_OWN_ADDRS) {
        sp_err_set(err, SP_E_CONFIG, "more than %d own listener addresses",
                   SP_UPSTREAM_MAX_OWN_ADDRS);
        goto fail;
    }
    for (size_t i = 0; i < opts->n_own_addrs; i++)
        if (opts->own_addrs[i] && opts->own_addrs[i][0] &&
            parse_own(g, opts->own_addrs[i], err) < 0)
            goto fail;
    for (size_t i = 0; i < g->n_own; i++)
        wildcard |= g->own[i].wildcard;
    if (wildcard && list_local(g, err) < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    up_guard_free(g);
    return -1;
}

void up_guard_free(struct up_guard *g)
{
    if (!g)
        return;
    free(g->own);
    free(g->local);
    free(g);
}

int up_guard_same(const struct up_guard *a, const struct up_guard *b)
{
    if (a->allow_private != b->allow_private || a->n_own != b->n_own || a->n_local != b->n_local)
        return 0;
    for (size_t i = 0; i < a->n_own; i++)
        if (a->own[i].wildcard != b->own[i].wildcard || a->own[i].a.port != b->own[i].a.port ||
            !same_addr(&a->own[i].a, &b->own[i].a))
            return 0;
    for (size_t i = 0; i < a->n_local; i++)
        if (!same_addr(&a->local[i], &b->local[i]))
            return 0;
    return 1;
}
