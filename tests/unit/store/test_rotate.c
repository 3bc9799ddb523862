/*
 * test_rotate.c - key rotation online: while a rotation re-encrypts every
 * record, other connections keep writing; afterwards every record decrypts
 * to its latest value, all at the new key version, and the old version is
 * retired. (Killing the rotating process is tests/e2e/test_rotation_kill.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "store.h"
#include "testutil.h"

#define N 2000
#define CANARY "CANARY-rotate-4b1e"

struct fx {
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_conf *conf;
    struct sp_store *s, *writer;
    char *dir;
    char ws[2][64];
    int gen[2][N]; /* latest generation written per record */
    int inflight, errors;
};

static struct sp_conf *conf_for(const char *url)
{
    char e1[300];
    char *env[] = {e1, "SECRETPROXY_KEYRING_RETIRE_GRACE=300ms", NULL};

    snprintf(e1, sizeof(e1), "SECRETPROXY_REDIS_URL=%s", url);
    return tu_conf(env);
}

static void on_written(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct fx *f = arg;
    f->inflight--;
    if (err) {
        fprintf(stderr, "write: %s\n", err->msg);
        f->errors++;
    }
}

static void write_one(struct fx *f, struct sp_store *s, int w, int i, int gen)
{
    char name[16], value[64];
    struct sp_secret_write sw;
    struct sp_err err;

    snprintf(name, sizeof(name), "R%d", i);
    snprintf(value, sizeof(value), "%s-%d-%d-%d", CANARY, w, i, gen);
    memset(&sw, 0, sizeof(sw));
    sw.value = (const unsigned char *)value;
    sw.value_len = strlen(value);
    sw.has_value = 1;
    assert_int_equal(sp_store_secret_write(s, f->ws[w], "workspace", name, SP_WRITE_UPSERT, &sw,
                                           on_written, f, &err),
                     0);
    f->gen[w][i] = gen;
    f->inflight++;
}

static void drain(struct fx *f)
{
    for (int t = 0; t < 2000 && f->inflight > 0; t++)
        tu_run_for(f->base, 5);
    assert_int_equal(f->inflight, 0);
}

struct rot_res {
    int done;
    struct sp_err err;
    struct sp_rotation_status st;
};

static void on_rotated(const struct sp_rotation_status *st, const struct sp_err *err, void *arg)
{
    struct rot_res *r = arg;
    r->done = 1;
    r->err.code = err ? err->code : SP_E_OK;
    if (err)
        snprintf(r->err.msg, sizeof(r->err.msg), "%s", err->msg);
    if (st)
        r->st = *st;
}

struct check {
    int done, bad, version;
    char want[64];
};

static void on_check(struct sp_secret *s, const struct sp_err *err, void *arg)
{
    struct check *c = arg;
    c->done = 1;
    if (err || s->value_len != strlen(c->want) || memcmp(s->value, c->want, s->value_len) != 0)
        c->bad = 1;
    if (s) {
        c->version = s->meta.key_version;
        sp_secret_free(s);
    }
}

static void rotation_with_concurrent_writers_loses_nothing(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[512];
    struct sp_err err;
    struct rot_res r;
    int v0, rounds = 0, port = tu_free_port();
    pid_t pid = tu_redis_start(port, NULL);
    char url[64];

    /* Rotation covers every workspace in Redis, so it gets a Redis of its
     * own: other tests' records use other key rings. */
    assert_true(pid > 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    f->dir = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
    assert_int_equal(sp_keyring_open(path, NULL, 1, &f->kr, &err), 0);
    f->base = event_base_new();
    f->conf = conf_for(url);
    f->s = sp_store_new(f->base, f->conf, f->kr, &err);
    f->writer = sp_store_new(f->base, f->conf, f->kr, &err);
    for (int t = 0; t < 300 && (sp_store_state(f->s) != SP_STORE_READY ||
                                sp_store_state(f->writer) != SP_STORE_READY);
         t++)
        tu_run_for(f->base, 10);
    for (int w = 0; w < 2; w++) {
        snprintf(f->ws[w], sizeof(f->ws[w]), "rot-%d-%d", (int)getpid(), w);
        for (int i = 0; i < N; i++)
            write_one(f, f->s, w, i, 0);
    }
    drain(f);
    v0 = sp_keyring_current(f->kr);

    memset(&r, 0, sizeof(r));
    assert_int_equal(sp_store_rotation_start(f->s, on_rotated, &r, &err), 0);
    /* Keep writing random records on another connection until it ends. */
    srand(42);
    while (!r.done && rounds < 200000) {
        for (int k = 0; k < 10; k++) {
            int w = rand() % 2, i = rand() % N;
            write_one(f, f->writer, w, i, f->gen[w][i] + 1);
            rounds++;
        }
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        while (f->inflight > 200 && !r.done)
            event_base_loop(f->base, EVLOOP_ONCE);
    }
    assert_true(tu_run_until(f->base, &r.done, 30000));
    drain(f);
    if (r.err.code != SP_E_OK)
        fail_msg("rotation failed: %s", r.err.msg);
    assert_int_equal(f->errors, 0);
    assert_int_equal(r.st.target_version, v0 + 1);
    assert_int_equal(sp_keyring_current(f->kr), v0 + 1);
    assert_true(rounds > 100); /* writes really overlapped the rotation */

    for (int w = 0; w < 2; w++)
        for (int i = 0; i < N; i++) {
            struct check c;
            char name[16];
            memset(&c, 0, sizeof(c));
            snprintf(name, sizeof(name), "R%d", i);
            snprintf(c.want, sizeof(c.want), "%s-%d-%d-%d", CANARY, w, i, f->gen[w][i]);
            assert_int_equal(
                sp_store_secret_get(f->s, f->ws[w], "workspace", name, on_check, &c, &err), 0);
            assert_true(tu_run_until(f->base, &c.done, 5000));
            if (c.bad)
                fail_msg("%s/%s lost its latest value", f->ws[w], name);
            assert_int_equal(c.version, v0 + 1);
        }
    /* The old key is gone from the ring: it can no longer decrypt. */
    {
        struct sp_buf enc, out;
        sp_buf_init(&enc, 0, 0);
        sp_buf_init(&out, 0, 1);
        assert_int_equal(sp_keyring_encrypt(f->kr, "a", 1, "x", 1, &enc, &err), 0);
        assert_int_equal(sp_keyring_version_of(enc.data, enc.len), v0 + 1);
        enc.data[0] = (char)('0' + v0); /* pretend it was written with v0 */
        assert_int_equal(sp_keyring_decrypt(f->kr, "a", 1, enc.data, enc.len, &out, &err), -1);
        sp_buf_free(&enc);
        sp_buf_free(&out);
    }
    sp_store_free(f->s);
    sp_store_free(f->writer);
    event_base_free(f->base);
    sp_keyring_free(f->kr);
    sp_conf_free(f->conf);
    tu_rmrf(f->dir);
    free(f);
    tu_redis_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rotation_with_concurrent_writers_loses_nothing),
    };
    if (!tu_redis_url()) {
        printf("SP_TEST_REDIS_URL is not set: run through scripts/test.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
