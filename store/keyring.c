/*
 * keyring.c - the versioned key ring in memory: which AES-256 key encrypts
 * new values (the current version), which older keys still decrypt, how
 * versions are added and retired, and the locking that lets worker threads
 * decrypt while an admin thread changes the ring. The file itself (format,
 * checks, atomic writes) is keyring_file.c.
 *
 * Locking: kr->lock (a writer-preferring rwlock) guards the ring in memory;
 * encrypt/decrypt hold it shared while they use a key, and a change takes it
 * exclusive only to swap in the new ring. kr->write_mu serialises changes and
 * reloads in this process, and an flock on the file's directory serialises
 * them between processes. Every change re-reads the file under that flock and
 * applies itself to what it read, so a version another process added is never
 * lost or numbered twice. Lock order: reload_mu, write_mu, flock, lock.
 *
 * Key material lives in struct sp_kr_version (wiped when freed or replaced)
 * and in sp_keyring.master (wiped by sp_keyring_free).
 */
#include "keyring_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUTO_RELOAD_US 1000000

struct sp_keyring {
    pthread_rwlock_t lock;     /* ring */
    pthread_mutex_t write_mu;  /* one change or reload at a time in this process */
    pthread_mutex_t reload_mu; /* last_auto_reload_us, and one automatic reload at a time */
    int locks_ready;
    struct sp_kr_ring ring;
    char *path, *dir; /* owned */
    unsigned char master[SP_KEYRING_KEY_LEN];
    int has_master;
    int64_t last_auto_reload_us; /* sp_mono_us() of the last reload caused by decrypt */
};

enum kr_op {
    OP_OPEN = 1, /* create the file if absent; rewrap a plain file */
    OP_RELOAD,
    OP_ADD,
    OP_ENSURE, /* add versions until current >= arg */
    OP_RETIRE,
};

/* ---- locks: failures here are bugs in this file, not input ---- */

static void rd_lock(struct sp_keyring *kr)
{
    int rc = pthread_rwlock_rdlock(&kr->lock);
    SP_ASSERT(rc == 0);
}

static void wr_lock(struct sp_keyring *kr)
{
    int rc = pthread_rwlock_wrlock(&kr->lock);
    SP_ASSERT(rc == 0);
}

static void rw_unlock(struct sp_keyring *kr)
{
    int rc = pthread_rwlock_unlock(&kr->lock);
    SP_ASSERT(rc == 0);
}

static void mu_lock(pthread_mutex_t *mu)
{
    int rc = pthread_mutex_lock(mu);
    SP_ASSERT(rc == 0);
}

static void mu_unlock(pthread_mutex_t *mu)
{
    int rc = pthread_mutex_unlock(mu);
    SP_ASSERT(rc == 0);
}

static int init_locks(struct sp_keyring *kr)
{
    pthread_rwlockattr_t a;
    int rc;

    if (pthread_rwlockattr_init(&a) != 0)
        return -1;
    /* A key change must not wait behind an endless stream of decrypts. */
    rc = pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (rc == 0)
        rc = pthread_rwlock_init(&kr->lock, &a);
    (void)pthread_rwlockattr_destroy(&a);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&kr->write_mu, NULL) != 0) {
        (void)pthread_rwlock_destroy(&kr->lock);
        return -1;
    }
    if (pthread_mutex_init(&kr->reload_mu, NULL) != 0) {
        (void)pthread_mutex_destroy(&kr->write_mu);
        (void)pthread_rwlock_destroy(&kr->lock);
        return -1;
    }
    kr->locks_ready = 1;
    return 0;
}

/* ---- the ring in memory ---- */

/* Add a version with a new random key, numbered after every version the
 * ring has ever had, and make it current. */
static int ring_add_version(struct sp_kr_ring *r, int *new_version, struct sp_err *err)
{
    int top = r->n ? r->v[r->n - 1].version : 0;
    struct sp_kr_version *nv;

    if (top >= SP_KEYRING_MAX_VERSION || r->n >= SP_KR_MAX_ENTRIES)
        return sp_err_set(err, SP_E_CONFIG, "the key ring is full");
    nv = calloc(r->n + 1, sizeof(*nv));
    if (!nv)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    if (sp_random(nv[r->n].key, SP_KEYRING_KEY_LEN, err) < 0) {
        sp_free_wiped(nv, (r->n + 1) * sizeof(*nv));
        return -1;
    }
    nv[r->n].version = top + 1;
    nv[r->n].created_at = sp_now_ms();
    if (r->n)
        memcpy(nv, r->v, r->n * sizeof(*nv));
    sp_free_wiped(r->v, r->n * sizeof(*r->v));
    r->v = nv;
    r->n++;
    r->current = top + 1;
    if (new_version)
        *new_version = top + 1;
    return 0;
}

static int ring_retire(struct sp_kr_ring *r, int version, int *dirty, struct sp_err *err)
{
    struct sp_kr_version *v = sp_kr_ring_find(r, version);

    if (!v)
        return sp_err_set(err, SP_E_NOT_FOUND, "key version %d is not in the key ring", version);
    if (version == r->current)
        return sp_err_set(err, SP_E_CONFLICT, "key version %d is current and cannot be retired",
                          version);
    if (v->retired)
        return 0;
    sp_wipe(v->key, sizeof(v->key));
    v->retired = 1;
    v->retired_at = sp_now_ms();
    *dirty = 1;
    return 0;
}

/*
 * May the ring read from the file replace the one in memory? Not when the
 * file has lost a version that still has a key here, or holds another key
 * for it: records encrypted with it would become unreadable.
 */
static int check_compatible(const struct sp_kr_ring *mem, const struct sp_kr_ring *file,
                            const char *path, struct sp_err *err)
{
    for (size_t i = 0; i < mem->n; i++) {
        const struct sp_kr_version *m = &mem->v[i], *f;

        if (m->retired)
            continue;
        f = sp_kr_ring_find(file, m->version);
        if (!f)
            return sp_err_set(err, SP_E_CONFIG,
                              "%s no longer lists key version %d (replaced or rolled back?); "
                              "keeping the keys in memory",
                              path, m->version);
        if (!f->retired && !sp_ct_eq(f->key, sizeof(f->key), m->key, sizeof(m->key)))
            return sp_err_set(err, SP_E_CONFIG,
                              "%s holds a different key for version %d; keeping the keys in memory",
                              path, m->version);
    }
    return 0;
}

/* Swap r into kr (r is left empty) and wipe the old ring. */
static void install(struct sp_keyring *kr, struct sp_kr_ring *r)
{
    struct sp_kr_ring old;

    wr_lock(kr);
    old = kr->ring;
    kr->ring = *r;
    rw_unlock(kr);
    *r = (struct sp_kr_ring){0}; /* moved, not wiped: kr owns the keys now */
    sp_kr_ring_free(&old);
}

/*
 * Every change and reload: under write_mu and the directory's flock, read
 * the file, check it against memory, apply op, write it back if anything
 * changed, and install the result. err must not be NULL.
 */
static int change(struct sp_keyring *kr, enum kr_op op, int arg, int *result, struct sp_err *err)
{
    const unsigned char *master = kr->has_master ? kr->master : NULL;
    struct sp_kr_ring r = {0};
    struct sp_buf text;
    int dfd = -1, wrapped = 0, dirty = 0, rc = -1;

    sp_buf_init(&text, 0, 1);
    mu_lock(&kr->write_mu);
    if (sp_kr_lock_dir(kr->dir, &dfd, err) < 0)
        goto out;
    if (sp_kr_load(kr->path, master, &r, &wrapped, err) < 0) {
        if (op != OP_OPEN || err->code != SP_E_NOT_FOUND) {
            if (err->code == SP_E_NOT_FOUND)
                err->code = SP_E_CONFIG; /* SP_E_NOT_FOUND means "no such version" */
            goto out;
        }
        if (ring_add_version(&r, NULL, err) < 0)
            goto out;
        dirty = 1;
    } else if (check_compatible(&kr->ring, &r, kr->path, err) < 0) {
        goto out;
    }
    if (op == OP_ADD) {
        if (ring_add_version(&r, result, err) < 0)
            goto out;
        dirty = 1;
    } else if (op == OP_ENSURE) {
        if (arg - r.current > 100) {
            sp_err_set(err, SP_E_INTERNAL, "refusing to add %d key versions at once",
                       arg - r.current);
            goto out;
        }
        while (r.current < arg) {
            if (ring_add_version(&r, NULL, err) < 0)
                goto out;
            dirty = 1;
        }
        if (result)
            *result = r.current;
    } else if (op == OP_RETIRE && ring_retire(&r, arg, &dirty, err) < 0) {
        goto out;
    }
    /* A plain file found while a master key is configured is accepted and
     * rewritten wrapped, so that the keys stop lying on disk in the clear. */
    if (master && !wrapped)
        dirty = 1;
    if (dirty && (sp_kr_encode(&r, master, &text, err) < 0 ||
                  sp_kr_write(kr->path, kr->dir, dfd, text.data, text.len, err) < 0))
        goto out;
    install(kr, &r);
    rc = 0;
out:
    sp_kr_ring_free(&r);
    sp_buf_free(&text);
    if (dfd >= 0)
        close(dfd); /* releases the flock */
    mu_unlock(&kr->write_mu);
    return rc;
}

/* ---- public ---- */

static int decode_master(const char *b64, unsigned char *key, struct sp_err *err)
{
    unsigned char tmp[64];
    size_t n = 0, len = strlen(b64);
    int ok;

    ok = len <= sizeof(tmp) && sp_base64_decode(tmp, &n, b64, len) == 0 && n == SP_KEYRING_KEY_LEN;
    if (ok)
        memcpy(key, tmp, SP_KEYRING_KEY_LEN);
    sp_wipe(tmp, sizeof(tmp));
    return ok ? 0
              : sp_err_set(err, SP_E_CONFIG,
                           "keyring.master_key must be base64 of exactly %d bytes",
                           SP_KEYRING_KEY_LEN);
}

int sp_keyring_open(const char *path, const char *master_key_b64, int create,
                    struct sp_keyring **out, struct sp_err *err)
{
    struct sp_keyring *kr;
    struct sp_kr_ring r = {0};
    struct sp_err local;
    int wrapped = 0, rc;

    if (!err)
        err = &local;
    *out = NULL;
    sp_kr_jansson_init();
    if (!path)
        return sp_err_set(err, SP_E_CONFIG, "no key ring file configured");
    kr = calloc(1, sizeof(*kr));
    if (!kr || init_locks(kr) < 0) {
        free(kr);
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    }
    kr->path = strdup(path);
    if (!kr->path) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    if (sp_kr_split_path(path, &kr->dir, err) < 0)
        goto fail;
    if (master_key_b64 && decode_master(master_key_b64, kr->master, err) < 0)
        goto fail;
    kr->has_master = master_key_b64 != NULL;
    kr->last_auto_reload_us = sp_mono_us() - AUTO_RELOAD_US;

    rc = sp_kr_load(path, kr->has_master ? kr->master : NULL, &r, &wrapped, err);
    if (rc == 0 && (wrapped || !kr->has_master)) {
        install(kr, &r);
        *out = kr;
        return 0;
    }
    sp_kr_ring_free(&r);
    if (rc < 0 && err->code != SP_E_NOT_FOUND)
        goto fail;
    if (rc < 0 && !create) {
        sp_err_set(err, SP_E_CONFIG, "%s does not exist", path);
        goto fail;
    }
    /* Absent: create it. Plain under a master key: rewrap it. */
    if ((rc < 0 && sp_kr_make_dirs(kr->dir, err) < 0) || change(kr, OP_OPEN, 0, NULL, err) < 0)
        goto fail;
    *out = kr;
    return 0;
fail:
    sp_keyring_free(kr);
    return -1;
}

void sp_keyring_free(struct sp_keyring *kr)
{
    if (!kr)
        return;
    sp_kr_ring_free(&kr->ring);
    if (kr->locks_ready) {
        (void)pthread_mutex_destroy(&kr->reload_mu);
        (void)pthread_mutex_destroy(&kr->write_mu);
        (void)pthread_rwlock_destroy(&kr->lock);
    }
    free(kr->path);
    free(kr->dir);
    sp_free_wiped(kr, sizeof(*kr)); /* the master key */
}

int sp_keyring_current(struct sp_keyring *kr)
{
    int v;

    rd_lock(kr);
    v = kr->ring.current;
    rw_unlock(kr);
    return v;
}

int sp_keyring_encrypt(struct sp_keyring *kr, const void *aad, size_t aadlen, const void *pt,
                       size_t ptlen, struct sp_buf *out, struct sp_err *err)
{
    const struct sp_kr_version *v;
    size_t oldlen = out->len;
    int rc = -1;

    rd_lock(kr);
    v = sp_kr_ring_find(&kr->ring, kr->ring.current);
    if (!v || v->retired)
        sp_err_set(err, SP_E_INTERNAL, "the key ring has no current key");
    else if (sp_buf_printf(out, err, "%d:", v->version) == 0 &&
             sp_crypto_seal(v->key, aad, aadlen, pt, ptlen, out, err) == 0)
        rc = 0;
    rw_unlock(kr);
    if (rc < 0 && out->data) {
        out->len = oldlen;
        out->data[oldlen] = '\0';
    }
    return rc;
}

/* 0 decrypted, -1 failed (err set), 1 no key for version (*retired says
 * whether the ring knows it as retired). */
static int decrypt_with(struct sp_keyring *kr, int version, const void *aad, size_t aadlen,
                        const char *body, size_t blen, struct sp_buf *out, int *retired,
                        struct sp_err *err)
{
    const struct sp_kr_version *v;
    int rc;

    rd_lock(kr);
    v = sp_kr_ring_find(&kr->ring, version);
    if (!v || v->retired) {
        *retired = v != NULL;
        rc = 1;
    } else {
        rc = sp_crypto_open(v->key, aad, aadlen, body, blen, out, err);
    }
    rw_unlock(kr);
    return rc;
}

/* Reload for a version nobody here knows, at most once per AUTO_RELOAD_US.
 * A thread that finds a reload under way waits for it, then retries. */
static void auto_reload(struct sp_keyring *kr)
{
    struct sp_err e;
    int64_t now;

    mu_lock(&kr->reload_mu);
    now = sp_mono_us();
    if (now - kr->last_auto_reload_us >= AUTO_RELOAD_US) {
        kr->last_auto_reload_us = now;
        if (sp_keyring_reload(kr, &e) < 0)
            sp_log(SP_LOG_WARN, NULL, "key ring reload: %s", e.msg);
    }
    mu_unlock(&kr->reload_mu);
}

int sp_keyring_decrypt(struct sp_keyring *kr, const void *aad, size_t aadlen, const char *stored,
                       size_t len, struct sp_buf *out, struct sp_err *err)
{
    int version = sp_keyring_version_of(stored, len), retired = 0, rc;
    const char *body;
    size_t blen;

    if (version < 0)
        return sp_err_set(err, SP_E_INTERNAL, "encrypted value is malformed (no key version)");
    body = (const char *)memchr(stored, ':', len) + 1;
    blen = len - (size_t)(body - stored);
    rc = decrypt_with(kr, version, aad, aadlen, body, blen, out, &retired, err);
    if (rc == 1 && !retired) {
        auto_reload(kr);
        rc = decrypt_with(kr, version, aad, aadlen, body, blen, out, &retired, err);
    }
    if (rc == 1)
        return sp_err_set(err, SP_E_INTERNAL,
                          retired ? "key version %d has been retired"
                                  : "key version %d is not in the key ring",
                          version);
    return rc;
}

int sp_keyring_add_version(struct sp_keyring *kr, int *new_version, struct sp_err *err)
{
    struct sp_err local;

    return change(kr, OP_ADD, 0, new_version, err ? err : &local);
}

int sp_keyring_ensure_current(struct sp_keyring *kr, int version, int *current, struct sp_err *err)
{
    struct sp_err local;

    if (!err)
        err = &local;
    if (version < 1 || version > SP_KEYRING_MAX_VERSION)
        return sp_err_set(err, SP_E_INTERNAL, "key version %d is out of range", version);
    return change(kr, OP_ENSURE, version, current, err);
}

int sp_keyring_retire(struct sp_keyring *kr, int version, struct sp_err *err)
{
    struct sp_err local;

    return change(kr, OP_RETIRE, version, NULL, err ? err : &local);
}

int sp_keyring_reload(struct sp_keyring *kr, struct sp_err *err)
{
    struct sp_err local;

    return change(kr, OP_RELOAD, 0, NULL, err ? err : &local);
}

int sp_keyring_list(struct sp_keyring *kr, struct sp_keyring_version_info **out, size_t *n,
                    struct sp_err *err)
{
    struct sp_keyring_version_info *vi;

    rd_lock(kr);
    vi = calloc(kr->ring.n ? kr->ring.n : 1, sizeof(*vi));
    for (size_t i = 0; vi && i < kr->ring.n; i++) {
        const struct sp_kr_version *v = &kr->ring.v[i];
        vi[i].version = v->version;
        vi[i].created_at = v->created_at;
        vi[i].retired_at = v->retired_at;
        vi[i].retired = v->retired;
        vi[i].current = v->version == kr->ring.current;
    }
    *n = kr->ring.n;
    rw_unlock(kr);
    *out = vi;
    return vi ? 0 : sp_err_set(err, SP_E_INTERNAL, "out of memory");
}

static int version_status(const struct sp_keyring_version_info *v, int first, struct sp_buf *out,
                          struct sp_err *err)
{
    char created[40], retired[40];

    sp_time_format(created, sizeof(created), v->created_at);
    sp_time_format(retired, sizeof(retired), v->retired_at);
    return sp_buf_printf(out, err,
                         "%s{\"version\":%d,\"created_at\":\"%s\",\"retired\":%s,"
                         "\"retired_at\":%s%s%s,\"current\":%s}",
                         first ? "" : ",", v->version, created, v->retired ? "true" : "false",
                         v->retired_at ? "\"" : "", v->retired_at ? retired : "null",
                         v->retired_at ? "\"" : "", v->current ? "true" : "false");
}

int sp_keyring_status_json(struct sp_keyring *kr, struct sp_buf *out, struct sp_err *err)
{
    struct sp_keyring_version_info *vi = NULL;
    size_t n = 0, i, oldlen = out->len;
    int current = 0, rc = -1;

    if (sp_keyring_list(kr, &vi, &n, err) < 0)
        return -1;
    for (i = 0; i < n; i++)
        if (vi[i].current)
            current = vi[i].version;
    if (sp_buf_printf(out, err, "{\"current\":%d,\"wrapped\":%s,\"versions\":[", current,
                      kr->has_master ? "true" : "false") < 0)
        goto out;
    for (i = 0; i < n; i++)
        if (version_status(&vi[i], i == 0, out, err) < 0)
            goto out;
    rc = sp_buf_addstr(out, "]}", err);
out:
    free(vi);
    if (rc < 0 && out->data) {
        out->len = oldlen;
        out->data[oldlen] = '\0';
    }
    return rc;
}
