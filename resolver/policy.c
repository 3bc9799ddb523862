/*
 * policy.c - may this caller send this secret to this host? The checks after
 * a reference has been found in the store, in DESIGN §3's order: revoked,
 * expired, app, env, host. Host entries are exact names (compared
 * case-insensitively) or PCRE2 patterns anchored to the whole host name;
 * compiled patterns are cached per thread.
 */
#include "resolver.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CACHE_SLOTS 256

/* A per-thread cache of compiled patterns: host lists are short and
 * repeat across requests, compiling one costs microseconds. */
struct pat {
    char *text;
    pcre2_code *re;
    uint64_t used;
};

static __thread struct {
    struct pat slots[CACHE_SLOTS];
    uint64_t clock;
    pcre2_match_data *md;
} cache;

static int plain_host(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static pcre2_code *compile_cached(const char *pattern)
{
    struct pat *victim = &cache.slots[0];
    int code;
    PCRE2_SIZE off;

    cache.clock++;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct pat *p = &cache.slots[i];
        if (p->text && strcmp(p->text, pattern) == 0) {
            p->used = cache.clock;
            return p->re;
        }
        if (p->used < victim->used)
            victim = p;
    }
    free(victim->text);
    pcre2_code_free(victim->re);
    memset(victim, 0, sizeof(*victim));
    victim->re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                      PCRE2_CASELESS | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
    if (!victim->re)
        return NULL;
    (void)pcre2_jit_compile(victim->re, PCRE2_JIT_COMPLETE);
    victim->text = strdup(pattern);
    if (!victim->text) {
        pcre2_code_free(victim->re);
        victim->re = NULL;
        return NULL;
    }
    victim->used = cache.clock;
    return victim->re;
}

int sp_resolver_host_matches(const char *entry, const char *host, size_t hostlen)
{
    size_t n = strlen(entry);
    pcre2_code *re;

    if (plain_host(entry, n))
        return n == hostlen && strncasecmp(entry, host, n) == 0;
    re = compile_cached(entry);
    if (!re)
        return 0; /* a pattern that does not compile matches nothing */
    if (!cache.md && !(cache.md = pcre2_match_data_create(4, NULL)))
        return 0;
    return pcre2_match(re, (PCRE2_SPTR)host, hostlen, 0, 0, cache.md, NULL) >= 0;
}

int sp_resolver_hosts_allow(const struct sp_strlist *hosts, const char *host, size_t hostlen,
                            int empty_means_any)
{
    if (hosts->count == 0)
        return empty_means_any;
    for (size_t i = 0; i < hosts->count; i++)
        if (sp_resolver_host_matches(hosts->items[i], host, hostlen))
            return 1;
    return 0;
}

static int in_list(const struct sp_strlist *l, const char *v)
{
    if (l->count == 0)
        return 1;
    if (!v || !*v)
        return 0;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], v) == 0)
            return 1;
    return 0;
}

int sp_resolver_check(const struct sp_secret_meta *m, const struct sp_caller *ctx, const char *host,
                      int empty_hosts_any, struct sp_err *err)
{
    if (m->revoked)
        return sp_err_set(err, SP_E_SECRET_REVOKED, "Secret '%s' has been revoked", m->name);
    if (m->expires_at && m->expires_at <= sp_now_ms())
        return sp_err_set(err, SP_E_SECRET_EXPIRED, "Secret '%s' has expired", m->name);
    if (!in_list(&m->apps, ctx->app))
        return sp_err_set(err, SP_E_SECRET_SCOPE_MISMATCH,
                          "Secret '%s' is not accessible by app '%.60s'", m->name,
                          ctx->app && *ctx->app ? ctx->app : "(none)");
    if (!in_list(&m->envs, ctx->env))
        return sp_err_set(err, SP_E_SECRET_ENV_MISMATCH,
                          "Secret '%s' is not available in environment '%.60s'", m->name,
                          ctx->env && *ctx->env ? ctx->env : "(none)");
    if (host && !sp_resolver_hosts_allow(&m->hosts, host, strlen(host), empty_hosts_any))
        return sp_err_set(err, SP_E_SECRET_HOST_DENIED,
                          "Secret '%s' may not be sent to host '%.80s'", m->name, host);
    return 0;
}

void sp_resolver_thread_cleanup(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(cache.slots[i].text);
        pcre2_code_free(cache.slots[i].re);
    }
    pcre2_match_data_free(cache.md);
    memset(&cache, 0, sizeof(cache));
}
