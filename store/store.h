/*
 * store.h - secretproxy's shared state in Redis: an asynchronous connection
 * per event loop (hiredis on libevent) that reconnects by itself and fails
 * closed while Redis is away, and the typed records on top of it: secrets
 * (values AES-256-GCM encrypted), API keys (stored hashed), groups,
 * short-lived $secret: reference tokens, and key-ring rotation.
 *
 * Key layout (every key of a workspace carries the hash tag {ws}, so all of a
 * workspace's multi-key work runs on one Redis Cluster slot):
 *
 *   sp:{ws}:s:<scope>:<name>   HASH  a secret (see struct sp_secret_meta)
 *   sp:{ws}:idx                ZSET  "<scope>\n<name>" of every secret (score 0)
 *   sp:{ws}:t:<sha256(token)>  HASH  a $secret: token (PEXPIRE = its lifetime)
 *   sp:{ws}:k:<key id>         HASH  an API key (token hashed with SHA-256)
 *   sp:{ws}:keys               SET   key ids
 *   sp:{ws}:g:<group id>       HASH  a group
 *   sp:{ws}:groups             SET   group ids
 *   sp:{ws}:audit              STREAM audit events, capped
 *   sp:workspaces              SET   every workspace ever written (rotation, root)
 *   sp:rotation                HASH  progress of the running key rotation
 *   sp:rotation:lock           STRING who rotates now (SET NX PX)
 *
 * Threading: a struct sp_store belongs to one event base and is used only
 * from that base's thread. The key ring it is given is shared (thread-safe).
 *
 * Callbacks: every asynchronous call that returns 0 calls its callback
 * exactly once, later, from the event loop - on success, on a Redis error, on
 * a timeout, on a lost connection, or when the store is freed. A call that
 * returns -1 never calls it.
 */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "sp.h"

struct event_base;
struct redisReply;
struct sp_keyring;
struct sp_rotation_status;
struct sp_store;

/* ---- connection ---- */

enum sp_store_state {
    SP_STORE_DOWN = 0,   /* no connection; reconnect timer armed */
    SP_STORE_CONNECTING, /* TCP/unix connect or handshake in progress */
    SP_STORE_READY,      /* usable */
    SP_STORE_CLOSED,     /* sp_store_close() was called */
};

/* Parsed redis.url. */
struct sp_store_url {
    char host[256]; /* or the unix socket path */
    int port;       /* 0 for unix */
    int is_unix;
    int db;
    char user[128];
    char pass[256];
};
/* Parse redis://[user:pass@]host:port[/db] or unix:///path[?db=N].
 * Percent-escapes in user and pass are decoded. */
SP_MUSTCHECK int sp_store_url_parse(const char *url, struct sp_store_url *out, struct sp_err *err);

/*
 * Open a store on base with the redis.* and keyring settings of conf. The key
 * ring is borrowed and must outlive the store. Connecting starts at once and
 * continues in the background; sp_store_state() says when it is ready.
 */
SP_MUSTCHECK struct sp_store *sp_store_new(struct event_base *base, const struct sp_conf *conf,
                                           struct sp_keyring *kr, struct sp_err *err);
/* Drop the connection; pending callbacks run with store_unavailable. NULL ok. */
void sp_store_free(struct sp_store *s);
enum sp_store_state sp_store_state(const struct sp_store *s);
/* Call fn(arg) each time the connection becomes READY (start-up work such
 * as ensuring the bootstrap key). One hook per store; fn may issue
 * commands. */
void sp_store_on_ready(struct sp_store *s, void (*fn)(void *arg), void *arg);
/* Observe every command's round-trip time (metrics). Process-wide; set
 * once at start, before threads. */
void sp_store_set_latency_hook(void (*fn)(int64_t us));
/* Progress of the rotation this store runs now; 0 if it runs none. */
int sp_store_rotation_progress(const struct sp_store *s, struct sp_rotation_status *out);
/* Take new timeouts from a reloaded config (redis.url changes need a restart). */
void sp_store_reconfigure(struct sp_store *s, const struct sp_conf *conf);
/* Monotonic count of connections established, and of command round trips
 * sent, for metrics and tests. */
uint64_t sp_store_connects(const struct sp_store *s);
uint64_t sp_store_roundtrips(const struct sp_store *s);
struct sp_keyring *sp_store_keyring(const struct sp_store *s);

/*
 * Raw command. reply is borrowed until the callback returns; it is NULL when
 * err is set. Server errors LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN,
 * READONLY and NOREPLICAS become err->code SP_E_STORE_UNAVAILABLE; other
 * error replies are passed through as a reply of type REDIS_REPLY_ERROR.
 */
typedef void (*sp_store_reply_fn)(struct redisReply *reply, const struct sp_err *err, void *arg);
SP_MUSTCHECK int sp_store_command(struct sp_store *s, sp_store_reply_fn cb, void *arg, int argc,
                                  const char **argv, const size_t *argvlen, struct sp_err *err);

/* ---- records ---- */

enum sp_secret_type {
    SP_SECRET_API = 0,
    SP_SECRET_ACCESS,
    SP_SECRET_CREDENTIAL,
    SP_SECRET_API_KEY,
    SP_SECRET_BEARER,
    SP_SECRET_OAUTH,
    SP_SECRET_AWS,
};
const char *sp_secret_type_name(enum sp_secret_type t);
int sp_secret_type_parse(const char *s, enum sp_secret_type *out);

#define SP_MAX_VALUE (64 * 1024)
#define SP_MAX_LIST 64 /* entries in apps, envs, hosts */

/*
 * A scope as text: "workspace", "user:<id>", "function:<name>", "group:<id>",
 * "key:<id>" (ids match [A-Za-z0-9_-]{1,128}). Returns 0 if valid.
 */
int sp_scope_valid(const char *scope);

/* A string list (apps, envs, hosts). Owned by the containing struct. */
struct sp_strlist {
    char **items;
    size_t count;
};

/* A secret's metadata: everything but the value. Owned by the caller that
 * received it; free with sp_secret_meta_clear(). */
struct sp_secret_meta {
    char id[40];
    char workspace[129];
    char scope[140];
    char name[129];
    char *description;
    enum sp_secret_type type;
    struct sp_strlist apps, envs, hosts;
    int64_t expires_at; /* ms since epoch, 0 = never */
    int revoked;
    int64_t created_at, updated_at;
    int64_t version;
    int key_version; /* key-ring version of the stored ciphertext */
};
void sp_secret_meta_clear(struct sp_secret_meta *m);
/* Render as a JSON object (no value) into out. */
SP_MUSTCHECK int sp_secret_meta_json(const struct sp_secret_meta *m, struct sp_buf *out,
                                     struct sp_err *err);

/* A secret with its plaintext value. The value lives only here, from decrypt
 * to sp_secret_free(), which wipes it. */
struct sp_secret {
    struct sp_secret_meta meta;
    unsigned char *value;
    size_t value_len;
};
void sp_secret_free(struct sp_secret *s);

/* What a write sets. NULL pointers / has_* = 0 leave a field as it is
 * (update) or at its default (create). */
struct sp_secret_write {
    const unsigned char *value;
    size_t value_len;
    int has_value;
    const char *description;
    int has_type;
    enum sp_secret_type type;
    const struct sp_strlist *apps, *envs, *hosts;
    int has_expires;
    int64_t expires_at; /* 0 clears */
    int has_revoked;
    int revoked;
};

enum sp_write_mode {
    SP_WRITE_UPSERT = 1, /* create or replace the given fields */
    SP_WRITE_CREATE,     /* fail with secret_exists if present */
    SP_WRITE_UPDATE,     /* fail with secret_not_found if absent */
};

/* Result callbacks. Borrowed pointers live until the callback returns. */
typedef void (*sp_store_meta_fn)(const struct sp_secret_meta *meta, const struct sp_err *err,
                                 void *arg);
typedef void (*sp_store_secret_fn)(struct sp_secret *secret, const struct sp_err *err, void *arg);
typedef void (*sp_store_done_fn)(const struct sp_err *err, void *arg);
typedef void (*sp_store_list_fn)(const struct sp_secret_meta *items, size_t count,
                                 const char *next_cursor, const struct sp_err *err, void *arg);

/*
 * Write a secret atomically (one Lua script: version is incremented by the
 * server, concurrent writers never lose an update). The value, if given, is
 * encrypted here with AAD = workspace, scope, name. Validates the write
 * (value size, list sizes, aws JSON) before touching Redis. The callback
 * gets the new metadata.
 */
SP_MUSTCHECK int sp_store_secret_write(struct sp_store *s, const char *ws, const char *scope,
                                       const char *name, enum sp_write_mode mode,
                                       const struct sp_secret_write *w, sp_store_meta_fn cb,
                                       void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_secret_meta(struct sp_store *s, const char *ws, const char *scope,
                                      const char *name, sp_store_meta_fn cb, void *arg,
                                      struct sp_err *err);
/* Metadata and decrypted value. secret_not_found if absent. The callback owns
 * the secret and must sp_secret_free() it. */
SP_MUSTCHECK int sp_store_secret_get(struct sp_store *s, const char *ws, const char *scope,
                                     const char *name, sp_store_secret_fn cb, void *arg,
                                     struct sp_err *err);
SP_MUSTCHECK int sp_store_secret_delete(struct sp_store *s, const char *ws, const char *scope,
                                        const char *name, sp_store_done_fn cb, void *arg,
                                        struct sp_err *err);
/* List metadata of a workspace, optionally one scope only (scope NULL = all),
 * in (scope, name) order, at most limit items after cursor (NULL = start). */
SP_MUSTCHECK int sp_store_secret_list(struct sp_store *s, const char *ws, const char *scope,
                                      const char *cursor, size_t limit, sp_store_list_fn cb,
                                      void *arg, struct sp_err *err);

/* Every record called name in ws, in any scope; with decrypted values when
 * with_values, else value is NULL. Items are freed after the callback. */
typedef void (*sp_store_secrets_fn)(struct sp_secret **items, size_t count,
                                    const struct sp_err *err, void *arg);
SP_MUSTCHECK int sp_store_secret_complete(struct sp_store *s, const char *ws, const char *name,
                                          int with_values, sp_store_secrets_fn cb, void *arg,
                                          struct sp_err *err);

/* Mint a $secret: token for a secret (which must exist), bound to ws and to
 * user (NULL for none), living ttl_ms. token_out receives the token text
 * (without "$secret:"), valid until the callback returns. */
typedef void (*sp_store_token_fn)(const char *token, const struct sp_secret_meta *meta,
                                  const struct sp_err *err, void *arg);
SP_MUSTCHECK int sp_store_token_mint(struct sp_store *s, const char *ws, const char *scope,
                                     const char *name, const char *user, int64_t ttl_ms,
                                     sp_store_token_fn cb, void *arg, struct sp_err *err);

/* ---- API keys and groups ---- */

enum sp_perm {
    SP_PERM_PROXY = 1 << 0,
    SP_PERM_SECRETS_READ = 1 << 1,
    SP_PERM_SECRETS_WRITE = 1 << 2,
    SP_PERM_SECRETS_READ_VALUE = 1 << 3,
    SP_PERM_KEYS_ADMIN = 1 << 4,
    SP_PERM_ASSERT_CONTEXT = 1 << 5,
    SP_PERM_ROOT = 1 << 6,
    SP_PERM_ALL = (1 << 7) - 1,
};
/* Parse one permission name; -1 if unknown. */
int sp_perm_parse(const char *s, size_t n);
const char *sp_perm_name(unsigned bit);

struct sp_key {
    char id[40];
    char workspace[129];
    char name[129];
    unsigned perms;
    char group[129], app[129], env[129], user[129], function[129]; /* "" = unbound */
    int64_t created_at;
};
SP_MUSTCHECK int sp_key_json(const struct sp_key *k, struct sp_buf *out, struct sp_err *err);

/*
 * API key tokens read "sp.<workspace>.<key id>.<secret>": the workspace and
 * id locate the record, the secret is checked against the stored SHA-256 in
 * constant time. Split a presented token; -1 if malformed.
 */
struct sp_key_token {
    char workspace[129];
    char id[40];
    unsigned char hash[32]; /* SHA-256 of the whole token */
};
int sp_key_token_parse(const char *tok, size_t len, struct sp_key_token *out);
/* Recognise the operator's api.bootstrap_key (any string) as key
 * "bootstrap" of workspace "default". Call once at start, before threads. */
void sp_store_set_bootstrap(const char *token);

typedef void (*sp_store_key_fn)(const struct sp_key *key, const char *token,
                                const struct sp_err *err, void *arg);
typedef void (*sp_store_keys_fn)(const struct sp_key *keys, size_t count, const struct sp_err *err,
                                 void *arg);
/* Create a key; token is the full token, shown once, valid until the
 * callback returns. If fixed_token is given (the bootstrap key) it is used
 * instead of a random one and the key is (re)written idempotently. */
SP_MUSTCHECK int sp_store_key_create(struct sp_store *s, const struct sp_key *tmpl,
                                     const char *fixed_token, sp_store_key_fn cb, void *arg,
                                     struct sp_err *err);
/* Authenticate a presented token: unauthorized if unknown or wrong. */
SP_MUSTCHECK int sp_store_key_auth(struct sp_store *s, const char *token, size_t len,
                                   sp_store_key_fn cb, void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_key_list(struct sp_store *s, const char *ws, sp_store_keys_fn cb,
                                   void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_key_delete(struct sp_store *s, const char *ws, const char *id,
                                     sp_store_done_fn cb, void *arg, struct sp_err *err);

/* ---- groups ---- */

struct sp_group {
    char id[129];
    char name[129];
    char description[1025];
    int64_t created_at;
};
SP_MUSTCHECK int sp_group_json(const struct sp_group *g, struct sp_buf *out, struct sp_err *err);
typedef void (*sp_store_groups_fn)(const struct sp_group *groups, size_t count,
                                   const struct sp_err *err, void *arg);
/* Create (conflict if the id exists), list, delete (not_found; conflict
 * while an API key is bound to it). */
SP_MUSTCHECK int sp_store_group_create(struct sp_store *s, const char *ws, const struct sp_group *g,
                                       sp_store_done_fn cb, void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_group_list(struct sp_store *s, const char *ws, sp_store_groups_fn cb,
                                     void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_group_delete(struct sp_store *s, const char *ws, const char *id,
                                       sp_store_done_fn cb, void *arg, struct sp_err *err);

/* ---- resolution: one round trip for a whole request ---- */

/* The caller's context, from its key and (with assert_context) headers. */
struct sp_caller {
    const char *workspace;
    const char *key_id;
    const char *group; /* NULL or "" = none, likewise below */
    const char *function;
    const char *user;
    const char *app;
    const char *env;
};

enum sp_ref_kind {
    SP_REF_NAMED = 1, /* $Secret{KEY} / $Token{KEY} */
    SP_REF_TOKEN,     /* $secret:<token> */
};
struct sp_ref {
    enum sp_ref_kind kind;
    const char *text; /* the key or the token, not NUL-terminated */
    size_t len;
};

/* What one reference resolved to: a secret, or why not. The secret is owned
 * by the resolution and wiped with it. Checks beyond existence (revoked,
 * expired, apps, envs, hosts) are the resolver's, in DESIGN §3's order. */
struct sp_ref_result {
    struct sp_secret *secret; /* NULL when err.code != OK */
    struct sp_err err;        /* reference_invalid, secret_not_found, user_required */
    int token_user_bound;     /* the token was minted for a user */
};

typedef void (*sp_store_resolve_fn)(const struct sp_key *key, struct sp_ref_result *results,
                                    size_t count, const struct sp_err *err, void *arg);
/*
 * Authenticate the key token (may be NULL when the caller is already known:
 * then ctx->key_id names it and key is NULL in the callback) and resolve
 * every reference, all in one Lua script, i.e. one round trip. The caller's
 * group/function/user come from ctx (ctx->workspace must match the token's).
 * Named references resolve key > group > function > user > workspace.
 * results (count entries, one per ref, in order) are freed after the
 * callback returns. With the resolve cache on (sp_store_cache_configure) a
 * repeated call may take no round trip at all; its callback still runs
 * later, from the loop, never inside this call.
 */
SP_MUSTCHECK int sp_store_resolve(struct sp_store *s, const char *key_token, size_t key_token_len,
                                  const struct sp_caller *ctx, const struct sp_ref *refs,
                                  size_t count, sp_store_resolve_fn cb, void *arg,
                                  struct sp_err *err);

/* ---- resolve cache ---- */

/*
 * Answer repeated sp_store_resolve calls from memory. What is kept is the
 * script's raw reply (ciphertext, hashed key records), never plaintext: a
 * hit is decrypted and checked like a miss. Entries are dropped as soon as
 * Redis reports a change to anything they read (CLIENT TRACKING, through a
 * second connection this store opens), live at most ttl_ms and never past
 * the earliest expiry they hold (a $secret: token's TTL, a secret's
 * expires_at). Whenever invalidation cannot be trusted (either connection
 * down or new, tracking refused, heartbeats late by more than 0.9 s) the
 * cache is flushed and off, and every resolve goes to Redis.
 *
 * ttl_ms 0 turns the cache off (the default for a new store); max_entries
 * and max_bytes 0 take the defaults (4096 entries, 16 MiB). Any change
 * flushes. Failures (out of memory) are logged and leave the cache off.
 * Call from the store's thread.
 */
void sp_store_cache_configure(struct sp_store *s, int64_t ttl_ms, size_t max_entries,
                              size_t max_bytes);

struct sp_store_cache_stats {
    int on;                 /* hits may be served right now */
    uint64_t hits;          /* resolves answered from memory */
    uint64_t misses;        /* resolves sent to Redis while on */
    uint64_t bypassed;      /* resolves sent to Redis while configured but off */
    uint64_t invalidations; /* invalidation messages from Redis */
    uint64_t flushes;       /* whole-cache drops (link changes, FLUSHALL, reconfiguration) */
    uint64_t evictions;     /* entries dropped for the bounds */
    uint64_t entries;       /* now */
    uint64_t bytes;         /* now */
};
/* Counters since the store was opened; all zero while never configured. */
void sp_store_cache_stats(const struct sp_store *s, struct sp_store_cache_stats *out);

/* ---- audit ---- */

/* Append a JSON event (never holding a value) to ws's capped stream. Fire
 * and forget: failures are logged, not reported. */
void sp_store_audit(struct sp_store *s, const char *ws, const char *json, size_t len, long maxlen);

/* ---- key rotation ---- */

struct sp_rotation_status {
    int running;
    int target_version;
    int64_t started_at, finished_at;
    uint64_t reencrypted;
    uint64_t scanned;
};
typedef void (*sp_store_rotation_fn)(const struct sp_rotation_status *st, const struct sp_err *err,
                                     void *arg);
/*
 * Start a rotation (add a key version unless one is already in progress,
 * then re-encrypt every record with compare-and-swap, then retire versions
 * no record uses). Progress is recorded in Redis so a rotation interrupted at
 * any point resumes via sp_store_rotation_resume(). The callback fires when
 * the rotation has finished (or failed).
 */
SP_MUSTCHECK int sp_store_rotation_start(struct sp_store *s, sp_store_rotation_fn cb, void *arg,
                                         struct sp_err *err);
/* Resume an interrupted rotation if Redis says one is running; otherwise,
 * when rotate_interval_ms > 0 and the current key is older, start one. The
 * callback fires with running = 0 and no error when nothing was to do. */
SP_MUSTCHECK int sp_store_rotation_resume(struct sp_store *s, int64_t rotate_interval_ms,
                                          sp_store_rotation_fn cb, void *arg, struct sp_err *err);
SP_MUSTCHECK int sp_store_rotation_status(struct sp_store *s, sp_store_rotation_fn cb, void *arg,
                                          struct sp_err *err);

#endif
