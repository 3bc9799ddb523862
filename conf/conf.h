/*
 * conf.h - secretproxy's configuration: one descriptor table (SP_CONF_TABLE)
 * drives the INI parser, the SECRETPROXY_<SECTION>_<KEY> environment
 * overrides, --check-config, --print-config and the sample config test.
 *
 * struct sp_conf is a plain value (not opaque, unlike other public structs):
 * it is read-only after loading, copied per reload, and read on hot paths as
 * fields, the way redis reads `server.*`.
 */
#ifndef SP_CONF_H
#define SP_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

enum sp_conf_type {
    SP_CONF_STR = 1, /* free text (may be empty) */
    SP_CONF_SECRET,  /* free text, never printed (keys, passwords) */
    SP_CONF_ADDR,    /* host:port or [v6]:port, or unix:/path */
    SP_CONF_INT,     /* integer in [min, max] */
    SP_CONF_BOOL,    /* true/false/yes/no/on/off/1/0 */
    SP_CONF_DUR,     /* duration: 1.5, 500ms, 30s, 5m, 2h, 90d; stored in ms */
    SP_CONF_SIZE,    /* bytes: 1024, 64k, 10m, 1g */
    SP_CONF_LIST,    /* comma-separated host names or PCRE2 patterns */
    SP_CONF_ENUM,    /* one of a '|'-separated list given as `choices` */
    SP_CONF_PATH,    /* a file path (checked by the module that uses it) */
};

/*
 * X(section, key, type, field, default, min, max, choices, reloadable, help)
 * min/max bound INT, DUR (ms) and SIZE values; choices is for ENUM.
 */
#define SP_CONF_TABLE(X)                                                                           \
    X(proxy, listen, SP_CONF_ADDR, proxy_listen, "127.0.0.1:8080", 0, 0, NULL, 0,                  \
      "forward proxy and POST /v1/fetch")                                                          \
    X(proxy, workers, SP_CONF_INT, proxy_workers, "0", 0, 256, NULL, 0,                            \
      "worker threads, each with its own event loop; 0 = one per core")                            \
    X(proxy, max_connections, SP_CONF_INT, proxy_max_connections, "10000", 1, 1000000, NULL, 1,    \
      "client connections per worker; more are answered 503 and closed")                           \
    X(proxy, max_header_size, SP_CONF_SIZE, proxy_max_header_size, "64k", 1024, 16777216, NULL, 1, \
      "request line plus headers; larger -> 431 headers_too_large")                                \
    X(proxy, max_body_size, SP_CONF_SIZE, proxy_max_body_size, "10m", 0, 4294967296, NULL, 1,      \
      "request body; larger -> 413 payload_too_large")                                             \
    X(proxy, client_timeout, SP_CONF_DUR, proxy_client_timeout, "60s", 100, 86400000, NULL, 1,     \
      "idle keep-alive, slow-client (408) and stalled-write timeout")                              \
    X(proxy, echo_redaction, SP_CONF_BOOL, proxy_echo_redaction, "true", 0, 0, NULL, 1,            \
      "redact injected values if an upstream echoes them back")                                    \
    X(proxy, default_app, SP_CONF_STR, proxy_default_app, "", 0, 0, NULL, 1,                       \
      "caller app when the API key binds none (sidecars)")                                         \
    X(proxy, default_env, SP_CONF_STR, proxy_default_env, "", 0, 0, NULL, 1,                       \
      "caller env when the API key binds none (sidecars)")                                         \
    X(api, listen, SP_CONF_ADDR, api_listen, "127.0.0.1:8081", 0, 0, NULL, 0,                      \
      "secrets API, /healthz, /readyz, /metrics")                                                  \
    X(api, bootstrap_key, SP_CONF_SECRET, api_bootstrap_key, "", 0, 0, NULL, 0,                    \
      "if set, an API key with this value and every permission (root) is ensured at start")        \
    X(api, max_body_size, SP_CONF_SIZE, api_max_body_size, "1m", 1024, 67108864, NULL, 1,          \
      "API request body limit")                                                                    \
    X(secrets, ref_ttl, SP_CONF_DUR, secrets_ref_ttl, "300s", 1000, 604800000, NULL, 1,            \
      "lifetime of a minted $secret: reference")                                                   \
    X(secrets, empty_hosts, SP_CONF_ENUM, secrets_empty_hosts, "any", 0, 0, "any|none", 1,         \
      "what an empty hosts list allows: any host, or none")                                        \
    X(secrets, cache_ttl, SP_CONF_DUR, secrets_cache_ttl, "30s", 0, 300000, NULL, 1,               \
      "longest a worker keeps a resolved key or secret (encrypted) in memory; changes in "         \
      "Redis still take effect within 1s (CLIENT TRACKING); 0 = off")                              \
    X(redis, url, SP_CONF_STR, redis_url, "redis://127.0.0.1:6379/0", 0, 0, NULL, 0,               \
      "redis://[user:pass@]host:port[/db] or unix:///path.sock[?db=N]")                            \
    X(redis, connect_timeout, SP_CONF_DUR, redis_connect_timeout, "1s", 10, 60000, NULL, 1,        \
      "to connect and authenticate")                                                               \
    X(redis, command_timeout, SP_CONF_DUR, redis_command_timeout, "1s", 10, 60000, NULL, 1,        \
      "for one command; a timeout drops the connection and reconnects")                            \
    X(redis, reconnect_max, SP_CONF_DUR, redis_reconnect_max, "500ms", 10, 10000, NULL, 1,         \
      "longest wait between reconnection attempts")                                                \
    X(keyring, file, SP_CONF_PATH, keyring_file, ".secretproxy/keyring.json", 0, 0, NULL, 0,       \
      "versioned key ring, created 0600 if missing")                                               \
    X(keyring, master_key, SP_CONF_SECRET, keyring_master_key, "", 0, 0, NULL, 0,                  \
      "base64 of 32 bytes; when set, the key ring file is encrypted with it")                      \
    X(keyring, rotate_interval, SP_CONF_DUR, keyring_rotate_interval, "90d", 0, 31622400000, NULL, \
      1, "scheduled key rotation; 0 = only on demand")                                             \
    X(keyring, retire_grace, SP_CONF_DUR, keyring_retire_grace, "15s", 0, 3600000, NULL, 1,        \
      "wait after a rotation's new version before old ones are retired, so every process "         \
      "sharing the key ring has re-read it (they do every 5s)")                                    \
    X(upstream, ca_file, SP_CONF_PATH, upstream_ca_file, "", 0, 0, NULL, 1,                        \
      "extra CA bundle trusted for upstream TLS (the system bundle is always trusted)")            \
    X(upstream, allow_private, SP_CONF_BOOL, upstream_allow_private, "false", 0, 0, NULL, 1,       \
      "allow dials to loopback/private/link-local addresses")                                      \
    X(upstream, connect_timeout, SP_CONF_DUR, upstream_connect_timeout, "5s", 10, 600000, NULL, 1, \
      "to connect, TLS included")                                                                  \
    X(upstream, timeout, SP_CONF_DUR, upstream_timeout, "30s", 10, 86400000, NULL, 1,              \
      "for the whole upstream exchange")                                                           \
    X(upstream, idle_timeout, SP_CONF_DUR, upstream_idle_timeout, "60s", 0, 86400000, NULL, 1,     \
      "to keep an idle pooled connection")                                                         \
    X(upstream, upgrade_hosts, SP_CONF_LIST, upstream_upgrade_hosts, "", 0, 0, NULL, 1,            \
      "host patterns whose http:// requests go upstream as https://")                              \
    X(connect, default, SP_CONF_ENUM, connect_default, "tunnel", 0, 0, "refuse|tunnel|intercept",  \
      1, "CONNECT policy for hosts no rule names (not used yet: CONNECT is refused)")              \
    X(connect, intercept_hosts, SP_CONF_LIST, connect_intercept_hosts, "", 0, 0, NULL, 1,          \
      "host patterns whose CONNECT tunnels are intercepted (not used yet)")                        \
    X(connect, tunnel_hosts, SP_CONF_LIST, connect_tunnel_hosts, "", 0, 0, NULL, 1,                \
      "host patterns tunnelled untouched (not used yet)")                                          \
    X(connect, refuse_hosts, SP_CONF_LIST, connect_refuse_hosts, "", 0, 0, NULL, 1,                \
      "host patterns refused (not used yet)")                                                      \
    X(connect, ca_cert, SP_CONF_PATH, connect_ca_cert, ".secretproxy/ca.pem", 0, 0, NULL, 0,       \
      "local CA certificate for interception (not used yet)")                                      \
    X(connect, ca_key, SP_CONF_PATH, connect_ca_key, ".secretproxy/ca.key", 0, 0, NULL, 0,         \
      "local CA private key (not used yet)")                                                       \
    X(log, file, SP_CONF_PATH, log_file, "-", 0, 0, NULL, 1, "JSON-lines log; - = stderr")         \
    X(log, level, SP_CONF_ENUM, log_level, "info", 0, 0, "debug|info|warn|error", 1,               \
      "lowest level written")                                                                      \
    X(log, access, SP_CONF_BOOL, log_access, "true", 0, 0, NULL, 1, "one line per request")        \
    X(log, audit_stream_maxlen, SP_CONF_INT, log_audit_stream_maxlen, "10000", 0, 100000000, NULL, \
      1, "approximate cap of each workspace's Redis audit stream; 0 = no stream")

/* A value as parsed. Strings are owned by struct sp_conf. */
union sp_conf_val {
    char *s;   /* STR, SECRET, ADDR, PATH, LIST, ENUM */
    int64_t i; /* INT, SIZE, DUR (ms), BOOL (0/1) */
};

struct sp_conf {
#define SP_CONF_X_FIELD(sec, key, type, field, def, min, max, ch, rel, help)                       \
    union sp_conf_val field;
    SP_CONF_TABLE(SP_CONF_X_FIELD)
#undef SP_CONF_X_FIELD
    char *path;                  /* the file it was read from, or NULL */
    unsigned char from_env[256]; /* per descriptor: set by a SECRETPROXY_ variable */
};

/* One descriptor per key, in table order, for tools and tests. */
struct sp_conf_desc {
    const char *section;
    const char *key;
    enum sp_conf_type type;
    const char *def;
    int64_t min, max;
    const char *choices;
    int reloadable;
    const char *help;
    size_t offset; /* of the union sp_conf_val in struct sp_conf */
};
const struct sp_conf_desc *sp_conf_descs(size_t *count);

/* Problems found while loading: every one, not just the first, so
 * --check-config can list them all as "file:line: message". */
struct sp_conf_diag {
    char **lines;
    size_t count;
};
void sp_conf_diag_free(struct sp_conf_diag *d);

/*
 * Load defaults, then the INI file at path (NULL: defaults only; a missing
 * file is an error), then SECRETPROXY_<SECTION>_<KEY> from environ. Unknown
 * sections, unknown keys, duplicate keys, and values that do not parse or
 * are out of range are all reported in diag. Returns a new config (free with
 * sp_conf_free) when there were no problems, else NULL.
 */
SP_MUSTCHECK struct sp_conf *sp_conf_load(const char *path, char **environ_,
                                          struct sp_conf_diag *diag);
void sp_conf_free(struct sp_conf *c);
/* Where section.key's value came from, for messages: "environment
 * (SECRETPROXY_SECTION_KEY)", the file's path, or "built-in default".
 * Writes into buf and returns it. */
const char *sp_conf_where(const struct sp_conf *c, const char *section, const char *key, char *buf,
                          size_t n);

/* Parsed accessors for typed values. */
int sp_conf_parse_addr(const char *s, char *host, size_t hostsz, int *port, int *is_unix);

/* Write the effective configuration as INI (secrets shown as "(set)"). */
SP_MUSTCHECK int sp_conf_print(const struct sp_conf *c, struct sp_buf *out, struct sp_err *err);

/* The commented sample configuration (conf/secretproxy.conf is this output;
 * a test keeps them equal). */
SP_MUSTCHECK int sp_conf_sample(struct sp_buf *out, struct sp_err *err);

/*
 * Split a LIST value into its items (trimmed, empty items dropped). Returns
 * the count; items point into a copy owned by *storage (free it). NULL list
 * or empty string -> 0.
 */
size_t sp_conf_split_list(const char *list, char ***items, char **storage);

#endif
