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

#include "sp.h"
#include "store.h"

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

#endif
