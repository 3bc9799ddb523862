/*
 * cache.h - private to store/: the per-store cache of resolve replies
 * (cache.c) and the Redis CLIENT TRACKING link that keeps it honest
 * (tracking.c).
 *
 * What is cached is the raw reply of the resolve script, as Redis sent it
 * (ciphertext, hashed key records, metadata), keyed by a salted SHA-256 of
 * everything the script and its parser depend on. A hit runs the same parse,
 * decrypt and checks as a miss, so plaintext never lives in the cache.
 *
 * Only a reply whose every read key Redis tracks is kept: the main
 * connection runs CLIENT TRACKING on REDIRECT <id> (no NOLOOP, so our own
 * writes invalidate too), and since Redis 7.0 tracks only a script's
 * declared KEYS, a miss is followed by a fill that re-runs the script with
 * its read set declared (resolve.c). Invalidations reach a second connection
 * subscribed to __redis__:invalidate. Hits may be served only while the
 * cache is "live": both links up and paired, tracking acknowledged, and a
 * heartbeat that travelled main link -> Redis -> tracking link sent less
 * than the lease ago. Any change of either link flushes everything.
 */
#ifndef SP_STORE_CACHE_H
#define SP_STORE_CACHE_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SP_CACHE_DEFAULT_ENTRIES 4096
#define SP_CACHE_DEFAULT_BYTES (16 * 1024 * 1024)
/* A heartbeat is sent this often while the cache is on... */
#define SP_CACHE_HEARTBEAT_MS 200
/* ...and each one received keeps hits allowed this long after it was sent:
 * a write Redis executed before that PUBLISH has been seen by then, so a
 * silently dead tracking link can make a hit at most this stale. */
#define SP_CACHE_LEASE_US 900000
/* No heartbeat for this long: the tracking link is dropped and redialled. */
#define SP_CACHE_HEARTBEAT_LOST_US 3000000

struct centry;
struct cache_hit;

enum sp_cache_link {
    SP_CACHE_LINK_DOWN = 0,
    SP_CACHE_LINK_CONNECTING, /* connect, AUTH, CLIENT ID, SUBSCRIBE */
    SP_CACHE_LINK_SUBSCRIBED, /* receiving invalidations */
};

struct sp_cache {
    struct sp_store *s;
    int64_t ttl_ms; /* 0 = off */
    size_t max_entries, max_bytes;
    unsigned char salt[32];

    /* entries: hash chains on the key digest, and one LRU list */
    struct centry **buckets;
    size_t nbuckets;
    struct centry *lru_head, *lru_tail;
    size_t entries, bytes;

    /* hits answered later from the loop, in order */
    struct cache_hit *q_head, *q_tail;
    struct event *deliver_ev;
    int *alive; /* set while delivering, cleared if the store is freed */
    struct cache_hit *delivering;

    /* validity: gen moves on every flush or invalidation, so a miss sent
     * before one never fills the cache with what it read */
    uint64_t gen;
    uint64_t pair;             /* moves whenever either link changes */
    uint64_t enable_sent_pair; /* pair CLIENT TRACKING was last sent for */
    int on;                    /* CLIENT TRACKING acknowledged for pair */
    int64_t tracking_sent_us;  /* when CLIENT TRACKING was sent */
    int64_t lease_until_us;
    int64_t last_hb_rx_us;

    /* the tracking link */
    redisAsyncContext *tac;
    enum sp_cache_link link;
    long long client_id;
    int subs_left;
    int warned; /* a failing link is logged once until it works again */
    int64_t backoff_ms;
    char hb_channel[48];
    struct event *connect_timer, *reconnect_timer, *hb_timer;

    struct sp_store_cache_stats stats;
};

/* A script run's claim on the cache: taken when it is sent, checked when
 * its reply comes back. */
struct sp_cache_ticket {
    int armed; /* the cache was live when the miss was sent */
    uint64_t gen;
    int64_t sent_us;
};

/* cache.c */
/* True when hits may be served now. */
int sp_cache_live(const struct sp_store *s);
/* The lookup key: salted SHA-256 over the key token's hash (NULL when no
 * token) and the script's arguments, each length-prefixed. */
void sp_cache_key(struct sp_store *s, const unsigned char *token_hash, int argc, const char **argv,
                  const size_t *lens, unsigned char out[32]);
/* A live, unexpired entry for key: cb(reply, NULL, arg) is queued to run
 * from the loop (never inside this call) and 1 is returned; the reply is
 * borrowed until cb returns. 0: not cached, cb is not called. If the store
 * is freed first, cb runs with store_unavailable instead. */
int sp_cache_lookup(struct sp_store *s, const unsigned char key[32], sp_store_reply_fn cb,
                    void *arg);
void sp_cache_ticket(struct sp_store *s, struct sp_cache_ticket *t);
/* Nothing happened since t was taken that could make a reply stale. */
int sp_cache_ticket_valid(const struct sp_store *s, const struct sp_cache_ticket *t);
/* Store a copy of r under key for workspace ws when t is still valid;
 * expires_us (monotonic, 0 = none) caps the entry's life. */
void sp_cache_put(struct sp_store *s, const struct sp_cache_ticket *t, const unsigned char key[32],
                  const char *ws, const redisReply *r, int64_t expires_us);
/* Drop every entry (or ws's only) and move gen. ws NULL = all. */
void sp_cache_drop(struct sp_cache *c, const char *ws, size_t wslen);
/* Fail queued hits, drop the tracking link, wipe and free everything. */
void sp_cache_free(struct sp_store *s);

/* tracking.c */
SP_MUSTCHECK int sp_cache_tracking_init(struct sp_cache *c, struct sp_err *err);
/* Start (ttl > 0) or stop (ttl == 0) the tracking link after a change. */
void sp_cache_tracking_apply(struct sp_cache *c);
void sp_cache_tracking_free(struct sp_cache *c);
/* The main link became ready / was lost. */
void sp_cache_link_ready(struct sp_store *s);
void sp_cache_link_lost(struct sp_store *s);

#endif
