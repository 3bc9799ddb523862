/*
 * cache.c - the resolve cache's table: entries holding a private copy of a
 * resolve reply, found by a salted digest, bounded by count and bytes with
 * LRU eviction, aged by secrets.cache_ttl and by the earliest expiry they
 * hold, wiped whenever they go; the queue that answers hits from the event
 * loop; and the public configure and stats calls. Whether hits may be
 * served at all is decided with tracking.c (see cache.h).
 */
#include "cache.h"
#include "store_int.h"

#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

/* One cached reply. The copy of the reply tree lives in the same block,
 * after the header, and is wiped with it. */
struct centry {
    unsigned char key[32];
    char ws[129];
    int64_t deadline_us;
    struct centry *hnext, *lprev, *lnext;
    unsigned refs; /* 1 while in the table, +1 per queued hit */
    size_t size;   /* of the whole block */
    redisReply *reply;
};

struct cache_hit {
    struct cache_hit *next;
    struct centry *e;
    sp_store_reply_fn cb;
    void *arg;
};

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define MAX_DEPTH 8

/* ---- copying a reply into one block ---- */

static int reply_size(const redisReply *r, int depth, size_t *out)
{
    size_t n = ALIGN8(sizeof(redisReply));

    if (depth > MAX_DEPTH)
        return -1;
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        n += ALIGN8(r->len + 1);
        break;
    case REDIS_REPLY_ARRAY:
        n += ALIGN8(r->elements * sizeof(redisReply *));
        for (size_t i = 0; i < r->elements; i++)
            if (reply_size(r->element[i], depth + 1, out) < 0)
                return -1;
        break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        break;
    default:
        return -1;
    }
    *out += n;
    return 0;
}

static redisReply *reply_copy(const redisReply *r, unsigned char **cur)
{
    redisReply *d = (redisReply *)*cur;

    *cur += ALIGN8(sizeof(redisReply));
    memset(d, 0, sizeof(*d));
    d->type = r->type;
    d->integer = r->integer;
    if (r->type == REDIS_REPLY_ARRAY) {
        d->elements = r->elements;
        d->element = (redisReply **)*cur;
        *cur += ALIGN8(r->elements * sizeof(redisReply *));
        for (size_t i = 0; i < r->elements; i++)
            d->element[i] = reply_copy(r->element[i], cur);
    } else if (r->type != REDIS_REPLY_INTEGER && r->type != REDIS_REPLY_NIL) {
        d->len = r->len;
        d->str = (char *)*cur;
        memcpy(d->str, r->str, r->len);
        d->str[r->len] = '\0';
        *cur += ALIGN8(r->len + 1);
    }
    return d;
}

/* ---- table ---- */

static size_t bucket_of(const struct sp_cache *c, const unsigned char key[32])
{
    uint64_t h;

    memcpy(&h, key, sizeof(h));
    return (size_t)(h & (c->nbuckets - 1));
}

static void entry_unref(struct centry *e)
{
    if (--e->refs == 0)
        sp_free_wiped(e, e->size);
}

static void entry_unlink(struct sp_cache *c, struct centry *e)
{
    struct centry **pp = &c->buckets[bucket_of(c, e->key)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        c->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail = e->lprev;
    e->hnext = e->lprev = e->lnext = NULL;
    c->entries--;
    c->bytes -= e->size;
    entry_unref(e);
}

static void lru_front(struct sp_cache *c, struct centry *e)
{
    if (c->lru_head == e)
        return;
    e->lprev->lnext = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail = e->lprev;
    e->lprev = NULL;
    e->lnext = c->lru_head;
    c->lru_head->lprev = e;
    c->lru_head = e;
}

static struct centry *find(struct sp_cache *c, const unsigned char key[32])
{
    for (struct centry *e = c->buckets[bucket_of(c, key)]; e; e = e->hnext)
        if (sp_ct_eq(e->key, 32, key, 32))
            return e;
    return NULL;
}

void sp_cache_drop(struct sp_cache *c, const char *ws, size_t wslen)
{
    struct centry *e = c->lru_head, *next;

    c->gen++;
    for (; e; e = next) {
        next = e->lnext;
        if (!ws || (strlen(e->ws) == wslen && memcmp(e->ws, ws, wslen) == 0))
            entry_unlink(c, e);
    }
}

int sp_cache_live(const struct sp_store *s)
{
    const struct sp_cache *c = s->cache;

    return c && c->ttl_ms > 0 && c->on && s->state == SP_STORE_READY &&
           sp_mono_us() < c->lease_until_us;
}

void sp_cache_key(struct sp_store *s, const unsigned char *token_hash, int argc, const char **argv,
                  const size_t *lens, unsigned char out[32])
{
    mbedtls_sha256_context sha;
    unsigned char flag = token_hash ? 1 : 0;

    mbedtls_sha256_init(&sha);
    /* SHA-256 over fixed inputs cannot fail; results are not checked. */
    (void)mbedtls_sha256_starts_ret(&sha, 0);
    (void)mbedtls_sha256_update_ret(&sha, s->cache->salt, sizeof(s->cache->salt));
    (void)mbedtls_sha256_update_ret(&sha, &flag, 1);
    if (token_hash)
        (void)mbedtls_sha256_update_ret(&sha, token_hash, 32);
    for (int i = 0; i < argc; i++) {
        uint64_t n = lens[i];
        (void)mbedtls_sha256_update_ret(&sha, (const unsigned char *)&n, sizeof(n));
        (void)mbedtls_sha256_update_ret(&sha, (const unsigned char *)argv[i], lens[i]);
    }
    (void)mbedtls_sha256_finish_ret(&sha, out);
    mbedtls_sha256_free(&sha);
}

/* ---- hits ---- */

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct sp_cache *c = arg;
    struct cache_hit *last = c->q_tail;
    int alive = 1;

    /* Hits queued by these callbacks wait for the next round. */
    c->alive = &alive;
    while (c->q_head) {
        struct cache_hit *h = c->q_head;
        int end = h == last;
        c->q_head = h->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->delivering = h;
        h->cb(h->e->reply, NULL, h->arg);
        if (!alive) {
            /* The callback freed the store, which released this entry. */
            free(h);
            return;
        }
        c->delivering = NULL;
        entry_unref(h->e);
        free(h);
        if (end)
            break;
    }
    c->alive = NULL;
    if (c->q_head)
        event_active(c->deliver_ev, EV_TIMEOUT, 1);
}

int sp_cache_lookup(struct sp_store *s, const unsigned char key[32], sp_store_reply_fn cb,
                    void *arg)
{
    struct sp_cache *c = s->cache;
    struct centry *e = find(c, key);
    struct cache_hit *h;

    if (e && sp_mono_us() >= e->deadline_us) {
        entry_unlink(c, e);
        e = NULL;
    }
    if (!e || !(h = calloc(1, sizeof(*h)))) {
        c->stats.misses++;
        return 0;
    }
    lru_front(c, e);
    e->refs++;
    h->e = e;
    h->cb = cb;
    h->arg = arg;
    if (c->q_tail)
        c->q_tail->next = h;
    else
        c->q_head = h;
    c->q_tail = h;
    event_active(c->deliver_ev, EV_TIMEOUT, 1);
    c->stats.hits++;
    return 1;
}

/* ---- fills ---- */

void sp_cache_ticket(struct sp_store *s, struct sp_cache_ticket *t)
{
    memset(t, 0, sizeof(*t));
    if (!sp_cache_live(s)) {
        if (s->cache && s->cache->ttl_ms > 0)
            s->cache->stats.bypassed++;
        return;
    }
    t->armed = 1;
    t->gen = s->cache->gen;
    t->sent_us = sp_mono_us();
}

int sp_cache_ticket_valid(const struct sp_store *s, const struct sp_cache_ticket *t)
{
    return t->armed && sp_cache_live(s) && t->gen == s->cache->gen;
}

static void evict(struct sp_cache *c, size_t room)
{
    while (c->lru_tail && (c->entries + 1 > c->max_entries || c->bytes + room > c->max_bytes)) {
        entry_unlink(c, c->lru_tail);
        c->stats.evictions++;
    }
}

void sp_cache_put(struct sp_store *s, const struct sp_cache_ticket *t, const unsigned char key[32],
                  const char *ws, const redisReply *r, int64_t expires_us)
{
    struct sp_cache *c = s->cache;
    size_t hdr = ALIGN8(sizeof(struct centry)), size = 0;
    int64_t now = sp_mono_us(), deadline;
    struct centry *e;
    unsigned char *cur;

    /* An invalidation, a flush or a link change since the script was sent
     * may concern what it read: then its reply is used once, not kept. */
    if (!sp_cache_ticket_valid(s, t))
        return;
    deadline = t->sent_us + c->ttl_ms * 1000;
    if (expires_us && expires_us < deadline)
        deadline = expires_us;
    if (deadline <= now || strlen(ws) >= sizeof(e->ws) || reply_size(r, 0, &size) < 0)
        return;
    size += hdr;
    if (size > c->max_bytes / 4)
        return;
    if ((e = find(c, key)))
        entry_unlink(c, e);
    evict(c, size);
    if (!(e = calloc(1, size)))
        return;
    memcpy(e->key, key, 32);
    memcpy(e->ws, ws, strlen(ws) + 1);
    e->deadline_us = deadline;
    e->size = size;
    e->refs = 1;
    cur = (unsigned char *)e + hdr;
    e->reply = reply_copy(r, &cur);
    SP_ASSERT(cur == (unsigned char *)e + size);
    e->hnext = c->buckets[bucket_of(c, key)];
    c->buckets[bucket_of(c, key)] = e;
    e->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
    c->entries++;
    c->bytes += size;
}

/* ---- life cycle ---- */

/* Size the hash table for max_entries; the table must be empty. */
static int resize(struct sp_cache *c, size_t max_entries)
{
    size_t n = 64;
    struct centry **b;

    while (n < max_entries * 2 && n < (1u << 20))
        n <<= 1;
    if (n == c->nbuckets)
        return 0;
    if (!(b = calloc(n, sizeof(*b))))
        return -1;
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return 0;
}

static struct sp_cache *cache_new(struct sp_store *s, struct sp_err *err)
{
    struct sp_cache *c = calloc(1, sizeof(*c));

    if (!c) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    c->s = s;
    c->deliver_ev = event_new(s->base, -1, 0, on_deliver, c);
    if (resize(c, SP_CACHE_DEFAULT_ENTRIES) < 0 || !c->deliver_ev) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    if (sp_random(c->salt, sizeof(c->salt), err) < 0 || sp_cache_tracking_init(c, err) < 0)
        goto fail;
    return c;
fail:
    sp_cache_tracking_free(c);
    if (c->deliver_ev)
        event_free(c->deliver_ev);
    free(c->buckets);
    free(c);
    return NULL;
}

void sp_cache_free(struct sp_store *s)
{
    struct sp_cache *c = s->cache;
    struct sp_err err;

    if (!c)
        return;
    if (c->alive) {
        /* Freed from a hit's callback: that hit's reference goes here. */
        *c->alive = 0;
        if (c->delivering)
            entry_unref(c->delivering->e);
    }
    sp_cache_tracking_free(c);
    sp_err_set(&err, SP_E_STORE_UNAVAILABLE, "store unavailable: shutting down");
    while (c->q_head) {
        struct cache_hit *h = c->q_head;
        c->q_head = h->next;
        h->cb(NULL, &err, h->arg);
        entry_unref(h->e);
        free(h);
    }
    while (c->lru_head)
        entry_unlink(c, c->lru_head);
    event_free(c->deliver_ev);
    free(c->buckets);
    sp_wipe(c->salt, sizeof(c->salt));
    free(c);
    s->cache = NULL;
}

void sp_store_cache_configure(struct sp_store *s, int64_t ttl_ms, size_t max_entries,
                              size_t max_bytes)
{
    struct sp_cache *c = s->cache;
    struct sp_err err;

    if (!max_entries)
        max_entries = SP_CACHE_DEFAULT_ENTRIES;
    if (!max_bytes)
        max_bytes = SP_CACHE_DEFAULT_BYTES;
    if (ttl_ms < 0)
        ttl_ms = 0;
    if (!c && ttl_ms == 0)
        return;
    if (c && c->ttl_ms == ttl_ms && c->max_entries == max_entries && c->max_bytes == max_bytes)
        return;
    if (!c) {
        if (!(c = cache_new(s, &err))) {
            sp_log(SP_LOG_ERROR, NULL, "resolve cache stays off: %s", err.msg);
            return;
        }
        s->cache = c;
    }
    /* Empty for the resize. */
    if (c->entries)
        c->stats.flushes++;
    sp_cache_drop(c, NULL, 0);
    if (resize(c, max_entries) < 0) {
        sp_log(SP_LOG_ERROR, NULL, "resolve cache stays off: out of memory");
        ttl_ms = 0;
    }
    c->ttl_ms = ttl_ms;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    sp_cache_tracking_apply(c);
}

void sp_store_cache_stats(const struct sp_store *s, struct sp_store_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!s->cache)
        return;
    *out = s->cache->stats;
    out->on = sp_cache_live(s);
    out->entries = s->cache->entries;
    out->bytes = s->cache->bytes;
}
