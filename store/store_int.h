/*
 * store_int.h - what the store's files share and nobody else sees: the
 * struct sp_store itself, the script runner, and record helpers.
 */
#ifndef SP_STORE_INT_H
#define SP_STORE_INT_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "keyring.h"
#include "store.h"

struct sp_cache;
struct sp_cmd;

struct sp_store {
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_store_url url;
    int64_t connect_timeout_ms, command_timeout_ms, reconnect_max_ms;
    int64_t retire_grace_ms;

    redisAsyncContext *ac;
    enum sp_store_state state;
    struct event *connect_timer;   /* connect + handshake deadline */
    struct event *reconnect_timer; /* backoff before the next attempt */
    int64_t backoff_ms;
    int handshake_left; /* replies still expected before READY */

    struct sp_cmd *pending; /* commands awaiting a reply (list) */
    uint64_t connects, roundtrips;
    struct sp_rot *rotation; /* the rotation this store runs, if any */
    void (*on_ready)(void *arg);
    void *on_ready_arg;
    int freeing;
    struct sp_cache *cache; /* resolve cache (cache.h); NULL until configured */
};

/* Lua scripts, sent with EVALSHA and re-sent with EVAL after NOSCRIPT. */
struct sp_script {
    const char *name;
    const char *text;
    char sha[41]; /* computed on first use */
};

/*
 * Run a script: argc strings as (ptr,len) pairs, the first nkeys of them
 * keys, the rest arguments. Same callback contract as
 * sp_store_command.
 */
SP_MUSTCHECK int sp_store_script(struct sp_store *s, struct sp_script *sc, int nkeys, int argc,
                                 const char **argv, const size_t *argvlen, sp_store_reply_fn cb,
                                 void *arg, struct sp_err *err);

/* Stop the store's running rotation (its callback gets an error). */
void sp_store_rotation_abort(struct sp_store *s);

/* Send a command whose reply nobody needs; failures are only logged. */
void sp_store_fire(struct sp_store *s, int argc, const char **argv, const size_t *argvlen);

/* sp_store_script for NUL-terminated arguments (at most 32). */
SP_MUSTCHECK int sp_store_script_strs(struct sp_store *s, struct sp_script *sc, int nkeys, int argc,
                                      const char **argv, sp_store_reply_fn cb, void *arg,
                                      struct sp_err *err);

/* "sp:{ws}:" into out; -1 if ws is not a valid name. */
int sp_store_prefix(char *out, size_t outsz, const char *ws);
/* AAD for a secret's ciphertext: ws NUL scope NUL name. Returns length. */
size_t sp_store_aad(char *out, size_t outsz, const char *ws, const char *scope, const char *name);

/* Fill meta from a flat HGETALL-style array reply (field, value, ...). */
SP_MUSTCHECK int sp_store_meta_from_reply(const struct redisReply *r, struct sp_secret_meta *m,
                                          const struct redisReply **value, struct sp_err *err);
/* Decrypt a stored value for meta into a new struct sp_secret. */
SP_MUSTCHECK struct sp_secret *sp_store_decrypt(struct sp_store *s,
                                                const struct sp_secret_meta *meta,
                                                const struct redisReply *value, struct sp_err *err);
/* Map an error reply to sp_err (secret_exists etc. are sent by our scripts
 * as "SPERR <code> <message>"). Returns -1 always. */
int sp_store_reply_error(const struct redisReply *r, struct sp_err *err);
/* The rows of a list reply r (an array): a zeroed array of r->elements + 1
 * items of size bytes each, or NULL with e set to err (the command failed),
 * the reply's error (it is not an array) or out of memory. Free with free. */
void *sp_store_rows(const struct redisReply *r, const struct sp_err *err, size_t size,
                    struct sp_err *e);
void sp_strlist_clear(struct sp_strlist *l);
/* Fill k (and, if hash is not NULL, the stored token hash) from an API
 * key's HGETALL-style reply. */
SP_MUSTCHECK int sp_store_key_from_reply(const struct redisReply *r, struct sp_key *k,
                                         unsigned char *hash, struct sp_err *err);
/* "<prefix>t:<sha256 hex of token>": where a $secret: token's record lives. */
void sp_store_token_key(char *out, size_t outsz, const char *prefix, const char *token, size_t len);

#endif
