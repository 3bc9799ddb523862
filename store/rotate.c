/*
 * rotate.c - key rotation, online. The steps, each safe to be killed after:
 *
 *   1. take sp:rotation:lock (SET NX PX; a lock left by a dead process on
 *      this host is taken over);
 *   2. record {running=1, target=V} in sp:rotation *before* adding key
 *      version V, so a restart knows what to finish;
 *   3. add V to the key ring (if not there yet) - new writes now use V;
 *   4. pass over every workspace's records in index order, batch by batch:
 *      decrypt each value not at V, encrypt it with V, and swap it in with a
 *      compare-and-swap script (a concurrent writer wins; its value is at V
 *      already). The position is saved after each batch;
 *   5. repeat passes until one finds no record at an older version;
 *   6. retire every older version, then mark the rotation finished.
 *
 * A resumed rotation starts from the saved position; passes are idempotent.
 */
#include "store_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 200
#define LOCK_TTL_MS 10000
#define MAX_PASSES 10

struct sp_rot {
    struct sp_store *s;
    sp_store_rotation_fn cb;
    void *arg;
    int start;           /* start a new rotation (vs resume only) */
    int64_t interval_ms; /* scheduled rotation age, for resume */
    char lock[160];
    struct sp_rotation_status st;
    char **ws;
    size_t nws, wsi;
    char cursor[600]; /* last index member done in the current workspace */
    int pass;
    uint64_t old_in_pass;
    struct event *renew;
    struct event *grace; /* wait before the last pass (retire_grace) */
    int grace_done;
};

static void step_lock(struct sp_rot *r);
static void step_state(struct sp_rot *r);
static void step_workspaces(struct sp_rot *r);
static void step_batch(struct sp_rot *r);
static void finish(struct sp_rot *r, const struct sp_err *err);

static void rot_free(struct sp_rot *r)
{
    if (r->s->rotation == r)
        r->s->rotation = NULL;
    for (size_t i = 0; i < r->nws; i++)
        free(r->ws[i]);
    free(r->ws);
    if (r->renew)
        event_free(r->renew);
    if (r->grace)
        event_free(r->grace);
    free(r);
}

static int cmd(struct sp_rot *r, sp_store_reply_fn cb, int argc, const char **argv)
{
    size_t lens[16];
    struct sp_err err;

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (sp_store_command(r->s, cb, r, argc, argv, lens, &err) < 0) {
        finish(r, &err);
        return -1;
    }
    return 0;
}

/* Compare-and-delete / compare-and-extend so we only touch our own lock. */
static struct sp_script script_unlock = {
    "unlock",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n",
    ""};
static struct sp_script script_renew = {"renew",
                                        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                        "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
                                        "return 0\n",
                                        ""};

static void on_ignore(struct redisReply *rep, const struct sp_err *err, void *arg)
{
}

static void on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sp_rot *r = arg;
    char ttl[16];
    const char *argv[3] = {"sp:rotation:lock", r->lock, ttl};

    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    if (sp_store_script_strs(r->s, &script_renew, 1, 3, argv, on_ignore, NULL, NULL) < 0)
        sp_log(SP_LOG_WARN, NULL, "rotation lock not renewed: store unavailable");
}

static void finish(struct sp_rot *r, const struct sp_err *err)
{
    if (r->lock[0]) {
        const char *argv[2] = {"sp:rotation:lock", r->lock};
        size_t lens[2] = {16, strlen(r->lock)};
        if (sp_store_script(r->s, &script_unlock, 1, 2, argv, lens, on_ignore, NULL, NULL) < 0)
            sp_log(SP_LOG_WARN, NULL, "rotation lock not released; it expires by itself");
    }
    if (err)
        sp_log(SP_LOG_ERROR, NULL, "key rotation stopped: %s", err->msg);
    r->cb(&r->st, err, r->arg);
    rot_free(r);
}

/* ---- 1. lock ---- */

static void on_lock_owner(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    char host[100] = "";
    struct sp_err e;
    long pid;

    if (err) {
        finish(r, err);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    /* "<host>:<pid>:<nonce>" - a lock of a dead process on this host is
     * stale: delete it (only if unchanged) and try again. */
    if (rep->type == REDIS_REPLY_STRING) {
        size_t hl = strlen(host);
        if ((size_t)rep->len > hl && strncmp(rep->str, host, hl) == 0 && rep->str[hl] == ':') {
            pid = strtol(rep->str + hl + 1, NULL, 10);
            if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
                const char *argv[2] = {"sp:rotation:lock", rep->str};
                size_t lens[2] = {16, (size_t)rep->len};
                char stale[128];
                snprintf(stale, sizeof(stale), "%s", rep->str);
                argv[1] = stale;
                if (sp_store_script(r->s, &script_unlock, 1, 2, argv, lens, on_ignore, NULL, &e) ==
                    0) {
                    sp_log(SP_LOG_WARN, NULL, "taking over the rotation lock of dead pid %ld", pid);
                    step_lock(r);
                    return;
                }
            }
        }
    }
    if (rep->type == REDIS_REPLY_NIL) {
        step_lock(r); /* released meanwhile */
        return;
    }
    sp_err_set(&e, SP_E_CONFLICT, "A key rotation is already running in another process");
    finish(r, &e);
}

static void on_lock(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    const char *argv[2] = {"GET", "sp:rotation:lock"};

    if (err) {
        finish(r, err);
        return;
    }
    if (rep->type == REDIS_REPLY_STATUS) {
        step_state(r);
        return;
    }
    cmd(r, on_lock_owner, 2, argv);
}

static void step_lock(struct sp_rot *r)
{
    char host[100] = "", nonce[24];
    char ttl[16];
    const char *argv[6] = {"SET", "sp:rotation:lock", r->lock, "NX", "PX", ttl};
    struct sp_err err;

    gethostname(host, sizeof(host) - 1);
    if (sp_random_token(nonce, sizeof(nonce), 9, &err) < 0) {
        finish(r, &err);
        return;
    }
    snprintf(r->lock, sizeof(r->lock), "%s:%ld:%s", host, (long)getpid(), nonce);
    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    cmd(r, on_lock, 6, argv);
}

/* ---- 2, 3. state and key version ---- */

static const char *field(const redisReply *h, const char *name)
{
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1]->str;
    return NULL;
}

static void on_state_saved(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    struct sp_err e;
    int v;

    if (err) {
        finish(r, err);
        return;
    }
    /* The intent is recorded: now the key version may appear. Under the
     * key ring's file lock, so two processes resuming the same rotation
     * cannot overshoot the target. */
    if (sp_keyring_ensure_current(r->s->kr, r->st.target_version, &v, &e) < 0) {
        finish(r, &e);
        return;
    }
    sp_log(SP_LOG_INFO, NULL, "key rotation to version %d: re-encrypting", r->st.target_version);
    step_workspaces(r);
}

static void save_state(struct sp_rot *r, int fresh)
{
    char target[16], started[24];
    const char *argv[16] = {"HSET",   "sp:rotation", "running",    "1",
                            "target", target,        "started_at", started};
    int n = 8;

    snprintf(target, sizeof(target), "%d", r->st.target_version);
    snprintf(started, sizeof(started), "%lld", (long long)r->st.started_at);
    if (fresh) {
        argv[n++] = "ws", argv[n++] = "", argv[n++] = "cursor", argv[n++] = "";
        argv[n++] = "pass", argv[n++] = "0";
        argv[n++] = "reencrypted", argv[n++] = "0";
    }
    cmd(r, on_state_saved, n, argv);
}

static void on_state(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    const char *running, *v;
    struct sp_err e;
    int64_t last;

    if (err) {
        finish(r, err);
        return;
    }
    running = field(rep, "running");
    if (running && strcmp(running, "1") == 0) {
        r->st.running = 1;
        r->st.target_version = (v = field(rep, "target")) ? (int)strtol(v, NULL, 10) : 0;
        r->st.started_at = (v = field(rep, "started_at")) ? strtoll(v, NULL, 10) : sp_now_ms();
        r->st.reencrypted = (v = field(rep, "reencrypted")) ? strtoull(v, NULL, 10) : 0;
        r->pass = (v = field(rep, "pass")) ? (int)strtol(v, NULL, 10) : 0;
        snprintf(r->cursor, sizeof(r->cursor), "%s", (v = field(rep, "cursor")) ? v : "");
        if (r->st.target_version < 1) {
            sp_err_set(&e, SP_E_INTERNAL, "rotation state in Redis is malformed");
            finish(r, &e);
            return;
        }
        /* ws is restored in step_workspaces from the saved name. */
        sp_log(SP_LOG_INFO, NULL, "resuming key rotation to version %d", r->st.target_version);
        save_state(r, 0);
        return;
    }
    last = (v = field(rep, "last_finished")) ? strtoll(v, NULL, 10) : 0;
    if (!r->start) {
        if (r->interval_ms <= 0 || !last || sp_now_ms() - last < r->interval_ms) {
            /* Nothing to do; remember when scheduling started counting. */
            const char *argv[4] = {"HSETNX", "sp:rotation", "last_finished", NULL};
            char now[24];
            snprintf(now, sizeof(now), "%lld", (long long)sp_now_ms());
            argv[3] = now;
            if (!last)
                sp_store_fire(r->s, 4, argv, (size_t[]){6, 11, 13, strlen(now)});
            finish(r, NULL);
            return;
        }
    }
    if (sp_keyring_reload(r->s->kr, &e) < 0)
        sp_log(SP_LOG_WARN, NULL, "key ring reload: %s", e.msg);
    r->st.running = 1;
    r->st.target_version = sp_keyring_current(r->s->kr) + 1;
    r->st.started_at = sp_now_ms();
    save_state(r, 1);
}

static void step_state(struct sp_rot *r)
{
    const char *argv[2] = {"HGETALL", "sp:rotation"};

    if (!r->renew)
        r->renew = event_new(r->s->base, -1, EV_PERSIST, on_renew_timer, r);
    if (r->renew) {
        struct timeval tv = {LOCK_TTL_MS / 3000, 0};
        evtimer_add(r->renew, &tv);
    }
    cmd(r, on_state, 2, argv);
}

/* ---- 4, 5. passes ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void on_saved_ws(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;

    if (err) {
        finish(r, err);
        return;
    }
    /* Restore the position: skip workspaces before the saved one. */
    if (rep->type == REDIS_REPLY_STRING && rep->len > 0)
        while (r->wsi < r->nws && strcmp(r->ws[r->wsi], rep->str) < 0)
            r->wsi++;
    else
        r->cursor[0] = '\0';
    step_batch(r);
}

static void on_workspaces(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    struct sp_err e;
    const char *argv[3] = {"HGET", "sp:rotation", "ws"};

    if (err) {
        finish(r, err);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        sp_store_reply_error(rep, &e);
        finish(r, &e);
        return;
    }
    r->ws = calloc(rep->elements + 1, sizeof(char *));
    if (!r->ws) {
        sp_err_set(&e, SP_E_INTERNAL, "out of memory");
        finish(r, &e);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            (r->ws[r->nws] = strdup(rep->element[i]->str)))
            r->nws++;
    qsort(r->ws, r->nws, sizeof(char *), cmp_str);
    r->wsi = 0;
    cmd(r, on_saved_ws, 3, argv);
}

static void step_workspaces(struct sp_rot *r)
{
    const char *argv[2] = {"SMEMBERS", "sp:workspaces"};

    for (size_t i = 0; i < r->nws; i++)
        free(r->ws[i]);
    free(r->ws);
    r->ws = NULL;
    r->nws = 0;
    cmd(r, on_workspaces, 2, argv);
}

/* KEYS[1] index; ARGV: secret prefix, min, limit -> {member, value}... */
static struct sp_script script_batch = {
    "rot_batch",
    "local m = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))\n"
    "local out = {}\n"
    "for _, member in ipairs(m) do\n"
    "  local nl = string.find(member, '\\n', 1, true)\n"
    "  local v = redis.call('HGET', ARGV[1] .. string.sub(member, 1, nl - 1) .. ':' ..\n"
    "    string.sub(member, nl + 1), 'value')\n"
    "  out[#out + 1] = member; out[#out + 1] = v or ''\n"
    "end\n"
    "return out\n",
    ""};

/* ARGV: (key, old, new)... ; all keys share the workspace's slot. */
static struct sp_script script_cas = {
    "rot_cas",
    "local n = 0\n"
    "for i = 1, #ARGV, 3 do\n"
    "  if redis.call('HGET', ARGV[i], 'value') == ARGV[i + 1] then\n"
    "    redis.call('HSET', ARGV[i], 'value', ARGV[i + 2]); n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n",
    ""};

static void next_workspace(struct sp_rot *r)
{
    r->wsi++;
    r->cursor[0] = '\0';
    step_batch(r);
}

static void on_progress(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;

    if (err) {
        finish(r, err);
        return;
    }
    step_batch(r);
}

static void save_progress(struct sp_rot *r)
{
    char re[24], pass[8];
    const char *argv[10] = {"HSET",    "sp:rotation", "ws", r->ws[r->wsi], "cursor",
                            r->cursor, "reencrypted", re,   "pass",        pass};

    snprintf(re, sizeof(re), "%llu", (unsigned long long)r->st.reencrypted);
    snprintf(pass, sizeof(pass), "%d", r->pass);
    cmd(r, on_progress, 10, argv);
}

static void on_cas(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;

    if (err) {
        finish(r, err);
        return;
    }
    if (rep->type == REDIS_REPLY_INTEGER)
        r->st.reencrypted += (uint64_t)rep->integer;
    save_progress(r);
}

/* Re-encrypt one stored value for (ws, member) into out. */
static int reencrypt(struct sp_rot *r, const char *ws, const char *member, size_t mlen,
                     const redisReply *v, struct sp_buf *out, struct sp_err *err)
{
    char scope[200], aad[512];
    const char *nl = memchr(member, '\n', mlen);
    struct sp_buf pt;
    size_t aadlen;
    int rc;

    if (!nl || (size_t)(nl - member) >= sizeof(scope))
        return sp_err_set(err, SP_E_INTERNAL, "malformed index entry");
    memcpy(scope, member, (size_t)(nl - member));
    scope[nl - member] = '\0';
    aadlen = sp_store_aad(aad, sizeof(aad), ws, scope, nl + 1);
    sp_buf_init(&pt, SP_MAX_VALUE, 1);
    rc = sp_keyring_decrypt(r->s->kr, aad, aadlen, v->str, (size_t)v->len, &pt, err);
    if (rc == 0)
        rc = sp_keyring_encrypt(r->s->kr, aad, aadlen, pt.data, pt.len, out, err);
    sp_buf_free(&pt);
    return rc;
}

static void on_batch(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;
    const char *ws = r->ws[r->wsi];
    char prefix[160], (*keys)[600] = NULL;
    struct sp_buf *enc = NULL;
    const char **argv = NULL;
    size_t *lens = NULL, n = 0, k = 0;
    struct sp_err e;

    if (err) {
        finish(r, err);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        sp_store_reply_error(rep, &e);
        finish(r, &e);
        return;
    }
    if (rep->elements == 0) {
        next_workspace(r);
        return;
    }
    n = rep->elements / 2;
    keys = calloc(n, sizeof(*keys));
    enc = calloc(n, sizeof(*enc));
    argv = calloc(3 * n, sizeof(*argv));
    lens = calloc(3 * n, sizeof(*lens));
    if (!keys || !enc || !argv || !lens) {
        sp_err_set(&e, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    (void)sp_store_prefix(prefix, sizeof(prefix), ws);
    for (size_t i = 0; i < n; i++) {
        const redisReply *m = rep->element[2 * i], *v = rep->element[2 * i + 1];
        const char *nl = memchr(m->str, '\n', (size_t)m->len);
        int ver = sp_keyring_version_of(v->str, (size_t)v->len);

        r->st.scanned++;
        sp_buf_init(&enc[i], 0, 0);
        if (!nl || v->len == 0 || ver == r->st.target_version)
            continue;
        r->old_in_pass++;
        if (reencrypt(r, ws, m->str, (size_t)m->len, v, &enc[i], &e) < 0) {
            sp_log(SP_LOG_ERROR, NULL, "rotation: workspace %s: %s", ws, e.msg);
            goto fail;
        }
        snprintf(keys[i], sizeof(keys[i]), "%ss:%.*s:%s", prefix, (int)(nl - m->str), m->str,
                 nl + 1);
        argv[k] = keys[i], lens[k++] = strlen(keys[i]);
        argv[k] = v->str, lens[k++] = (size_t)v->len;
        argv[k] = enc[i].data, lens[k++] = enc[i].len;
    }
    {
        const redisReply *last = rep->element[rep->elements - 2];
        size_t ln = (size_t)last->len < sizeof(r->cursor) - 1 ? (size_t)last->len : 0;
        memcpy(r->cursor, last->str, ln);
        r->cursor[ln] = '\0';
    }
    if (k == 0) {
        save_progress(r);
    } else if (sp_store_script(r->s, &script_cas, 0, (int)k, argv, lens, on_cas, r, &e) < 0) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        sp_buf_free(&enc[i]);
    free(keys), free(enc), free(argv), free(lens);
    return;
fail:
    for (size_t i = 0; enc && i < n; i++)
        sp_buf_free(&enc[i]);
    free(keys), free(enc), free(argv), free(lens);
    finish(r, &e);
}

static void on_finished(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct sp_rot *r = arg;

    if (err) {
        finish(r, err);
        return;
    }
    sp_log(SP_LOG_INFO, NULL, "key rotation to version %d finished: %llu records re-encrypted",
           r->st.target_version, (unsigned long long)r->st.reencrypted);
    finish(r, NULL);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct sp_rot *r = arg;

    r->old_in_pass = 0;
    r->wsi = 0;
    r->cursor[0] = '\0';
    r->pass++;
    r->grace_done = 1;
    step_batch(r);
}

static void end_pass(struct sp_rot *r)
{
    char now[24], re[24];
    const char *argv[10] = {"HSET", "sp:rotation",   "running", "0",           "finished_at",
                            now,    "last_finished", now,       "reencrypted", re};
    struct sp_err e;

    if (r->old_in_pass > 0 || r->pass == 0) {
        /* Something moved during this pass (or it was the first): another
         * pass proves nothing is left at an older version. */
        if (++r->pass > MAX_PASSES) {
            sp_err_set(&e, SP_E_INTERNAL, "records keep appearing at old key versions");
            finish(r, &e);
            return;
        }
        r->old_in_pass = 0;
        r->wsi = 0;
        r->cursor[0] = '\0';
        step_batch(r);
        return;
    }
    /* Other processes sharing the key ring pick up the new version when
     * they next reload it; until the grace has passed one of them may still
     * write under the old one, so look once more before retiring. */
    {
        int64_t wait = r->s->retire_grace_ms - (sp_now_ms() - r->st.started_at);
        if (wait > 0 && !r->grace_done) {
            struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
            if (!r->grace)
                r->grace = evtimer_new(r->s->base, on_grace, r);
            if (r->grace && evtimer_add(r->grace, &tv) == 0)
                return;
        }
    }
    /* 6. Nothing uses an older version any more. */
    for (int v = 1; v < r->st.target_version; v++)
        if (sp_keyring_retire(r->s->kr, v, &e) < 0 && e.code != SP_E_NOT_FOUND)
            sp_log(SP_LOG_WARN, NULL, "retiring key version %d: %s", v, e.msg);
    r->st.running = 0;
    r->st.finished_at = sp_now_ms();
    snprintf(now, sizeof(now), "%lld", (long long)r->st.finished_at);
    snprintf(re, sizeof(re), "%llu", (unsigned long long)r->st.reencrypted);
    cmd(r, on_finished, 10, argv);
}

static void step_batch(struct sp_rot *r)
{
    char prefix[160], idx[180], spfx[180], min[610], lim[16];
    const char *argv[4];
    struct sp_err e;

    if (r->wsi >= r->nws) {
        end_pass(r);
        return;
    }
    if (sp_store_prefix(prefix, sizeof(prefix), r->ws[r->wsi]) < 0) {
        next_workspace(r);
        return;
    }
    snprintf(idx, sizeof(idx), "%sidx", prefix);
    snprintf(spfx, sizeof(spfx), "%ss:", prefix);
    snprintf(min, sizeof(min), r->cursor[0] ? "(%s" : "-", r->cursor);
    snprintf(lim, sizeof(lim), "%d", BATCH);
    argv[0] = idx, argv[1] = spfx, argv[2] = min, argv[3] = lim;
    if (sp_store_script_strs(r->s, &script_batch, 1, 4, argv, on_batch, r, &e) < 0)
        finish(r, &e);
}

/* ---- entry points ---- */

static int rot_begin(struct sp_store *s, int start, int64_t interval, sp_store_rotation_fn cb,
                     void *arg, struct sp_err *err)
{
    struct sp_rot *r;

    if (sp_store_state(s) != SP_STORE_READY)
        return sp_err_set(err, SP_E_STORE_UNAVAILABLE, "store unavailable");
    if (s->rotation)
        return sp_err_set(err, SP_E_CONFLICT, "A key rotation is already running");
    if (!(r = calloc(1, sizeof(*r))))
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    r->s = s;
    r->cb = cb;
    r->arg = arg;
    r->start = start;
    r->interval_ms = interval;
    s->rotation = r;
    step_lock(r);
    return 0;
}

int sp_store_rotation_progress(const struct sp_store *s, struct sp_rotation_status *out)
{
    if (!s->rotation)
        return 0;
    *out = s->rotation->st;
    return 1;
}

void sp_store_rotation_abort(struct sp_store *s)
{
    struct sp_err err;

    if (!s->rotation)
        return;
    /* Progress is in Redis: the next start resumes from there. */
    sp_err_set(&err, SP_E_STORE_UNAVAILABLE, "rotation interrupted: shutting down");
    finish(s->rotation, &err);
}

int sp_store_rotation_start(struct sp_store *s, sp_store_rotation_fn cb, void *arg,
                            struct sp_err *err)
{
    return rot_begin(s, 1, 0, cb, arg, err);
}

int sp_store_rotation_resume(struct sp_store *s, int64_t rotate_interval_ms,
                             sp_store_rotation_fn cb, void *arg, struct sp_err *err)
{
    return rot_begin(s, 0, rotate_interval_ms, cb, arg, err);
}

struct status_op {
    sp_store_rotation_fn cb;
    void *arg;
};

static void on_status(struct redisReply *rep, const struct sp_err *err, void *arg)
{
    struct status_op *o = arg;
    struct sp_rotation_status st;
    const char *v;

    memset(&st, 0, sizeof(st));
    if (!err) {
        st.running = (v = field(rep, "running")) && strcmp(v, "1") == 0;
        st.target_version = (v = field(rep, "target")) ? (int)strtol(v, NULL, 10) : 0;
        st.started_at = (v = field(rep, "started_at")) ? strtoll(v, NULL, 10) : 0;
        st.finished_at = (v = field(rep, "finished_at")) ? strtoll(v, NULL, 10) : 0;
        st.reencrypted = (v = field(rep, "reencrypted")) ? strtoull(v, NULL, 10) : 0;
    }
    o->cb(err ? NULL : &st, err, o->arg);
    free(o);
}

int sp_store_rotation_status(struct sp_store *s, sp_store_rotation_fn cb, void *arg,
                             struct sp_err *err)
{
    const char *argv[2] = {"HGETALL", "sp:rotation"};
    size_t lens[2] = {7, 11};
    struct status_op *o = calloc(1, sizeof(*o));

    if (!o)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    o->cb = cb;
    o->arg = arg;
    if (sp_store_command(s, on_status, o, 2, argv, lens, err) < 0) {
        free(o);
        return -1;
    }
    return 0;
}
