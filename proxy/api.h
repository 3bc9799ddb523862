/*
 * api.h - the secrets API listener (api.listen): secrets, API keys, key
 * ring, /healthz, /readyz, /metrics. Private to proxy/; the contract is the
 * "Secrets API" section of README.md.
 */
#ifndef SP_PROXY_API_H
#define SP_PROXY_API_H

#include "conf.h"
#include "sp.h"

struct event_base;
struct sp_api;
struct sp_keyring;
struct sp_store;

/*
 * Bind api.listen on base and serve. store, kr and conf are borrowed and
 * must outlive the API (sp_api_set_conf swaps conf on reload).
 */
SP_MUSTCHECK struct sp_api *sp_api_new(struct event_base *base, const struct sp_conf *conf,
                                       struct sp_store *store, struct sp_keyring *kr,
                                       struct sp_err *err);
void sp_api_set_conf(struct sp_api *api, const struct sp_conf *conf);
/* Close the listening socket (draining); requests in flight go on. */
void sp_api_stop_accepting(struct sp_api *api);
/* Stop listening; requests in flight are answered when their store calls
 * return. NULL ok. */
void sp_api_free(struct sp_api *api);

#endif
