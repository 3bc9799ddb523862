/*
 * resolver.h - the resolver's public face: finding secret references in the
 * parts of a request, checking that the caller may send each secret to the
 * destination, substituting values encoded for where they land, redacting
 * values from anything that leaves (logs, errors, echoed responses), and
 * AWS SigV4. It sees byte ranges and an abstract request, never a socket.
 */
#ifndef SP_RESOLVER_H
#define SP_RESOLVER_H

#include <stddef.h>

#include "sigv4.h"
#include "sp.h"
#include "store.h"
/* The text engine's public part: finding and substituting references, the
 * redactor (sp_redactor_*, sp_redact_stream_*) and the encoders. */
#include "text.h"

/* ---- policy (policy.c) ---- */

/*
 * The checks after a secret was found, in DESIGN §3's order: revoked,
 * expired, the caller's app in apps, env in envs, host in hosts (host NULL
 * skips the host check). empty_hosts_any says what an empty hosts list
 * allows. Returns 0, or -1 with the code and the seed-style message.
 */
SP_MUSTCHECK int sp_resolver_check(const struct sp_secret_meta *m, const struct sp_caller *ctx,
                                   const char *host, int empty_hosts_any, struct sp_err *err);
/* Does host[0..hostlen) match one entry: an exact name (case-insensitive)
 * or a PCRE2 pattern anchored to the whole host (compiled once per thread)? */
int sp_resolver_host_matches(const char *entry, const char *host, size_t hostlen);
/* Any entry of hosts matches; an empty list gives empty_means_any. */
int sp_resolver_hosts_allow(const struct sp_strlist *hosts, const char *host, size_t hostlen,
                            int empty_means_any);
/* Free this thread's compiled-pattern cache (call before a worker exits). */
void sp_resolver_thread_cleanup(void);

/* ---- a whole request (request.c) ---- */

/* A header as received (borrowed). */
struct sp_rheader {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The abstract request to resolve; everything borrowed for the call. */
struct sp_rrequest {
    const char *host; /* destination host name, no port (after any upgrade) */
    const char *path; /* as on the wire (percent-encoded) */
    size_t path_len;
    const char *query; /* without '?'; NULL/0 = none */
    size_t query_len;
    const struct sp_rheader *headers; /* to be forwarded (hop-by-hop already gone) */
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *content_type; /* picks the body's encoding: JSON, form, raw */
    const char *const *extra; /* plain strings resolved raw (/v1/fetch auth) */
    const size_t *extra_len;
    size_t nextra;
    /* NULL, or per extra: nonzero when that extra must be exactly one
     * reference to a secret of type aws (the access key id of an SDK's
     * SigV4 signature); SP_E_BAD_REQUEST when it is anything else,
     * SP_E_SECRET_TYPE_MISMATCH when the secret has another type. */
    const unsigned char *extra_aws;
};

struct sp_resolve_opts {
    unsigned required_perms; /* SP_PERM_* the caller's key must hold */
    int empty_hosts_any;     /* secrets.empty_hosts */
    const char *default_app, *default_env;
    size_t max_body; /* cap on the substituted body; 0 = none */
};

struct sp_resolution;
/*
 * err NULL: every reference resolved, passed the checks and was
 * substituted. Else the request must be refused with err and nothing sent.
 * The callback owns res either way and frees it with sp_resolution_free.
 */
typedef void (*sp_resolve_fn)(struct sp_resolution *res, const struct sp_err *err, void *arg);

/*
 * Authenticate key_token and resolve every reference of q in one store
 * round trip. asserted carries the Secretproxy-User/Function/App/Env
 * headers (NULL fields when absent); they need assert_context. Returns 0
 * (cb runs later, exactly once) or -1 with err (cb never runs).
 */
SP_MUSTCHECK int sp_resolver_run(struct sp_store *s, const char *key_token, size_t key_token_len,
                                 const struct sp_caller *asserted, const struct sp_rrequest *q,
                                 const struct sp_resolve_opts *opts, sp_resolve_fn cb, void *arg,
                                 struct sp_err *err);
/* Wipes every substituted part and the redactor. NULL ok. */
void sp_resolution_free(struct sp_resolution *res);
/* The substituted parts: NULL when a part had no reference (send the
 * original). Borrowed until sp_resolution_free; they hold secret values. */
const struct sp_buf *sp_resolution_path(const struct sp_resolution *res);
const struct sp_buf *sp_resolution_query(const struct sp_resolution *res);
const struct sp_buf *sp_resolution_header(const struct sp_resolution *res, size_t i);
const struct sp_buf *sp_resolution_body(const struct sp_resolution *res);
const struct sp_buf *sp_resolution_extra(const struct sp_resolution *res, size_t i);
/* The authenticated key and the caller's effective context (NULL until the
 * key was authenticated). */
const struct sp_key *sp_resolution_key(const struct sp_resolution *res);
const struct sp_caller *sp_resolution_caller(const struct sp_resolution *res);
/* The request's redactor: every resolved value in all its forms. */
struct sp_redactor *sp_resolution_redactor(struct sp_resolution *res);
/* The distinct references, for audit: name and scope (a token's name is
 * "$secret" until resolved; never the token itself). */
size_t sp_resolution_refs(const struct sp_resolution *res);
int sp_resolution_ref(const struct sp_resolution *res, size_t i, const char **name,
                      const char **scope);

#endif
