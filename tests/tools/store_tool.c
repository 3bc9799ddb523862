/*
 * store_tool.c - drives the store from the command line for black-box tests
 * that must kill a process in the middle of its work (key rotation).
 *
 *   store_tool URL KEYRING seed WS N PREFIX     upsert S0..S<N-1> = PREFIX-<i>
 *   store_tool URL KEYRING rotate               start or resume a rotation
 *   store_tool URL KEYRING verify WS N PREFIX   every S<i> decrypts to PREFIX-<i>
 *
 * Exit 0 on success, 1 on failure (message on stderr).
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "store.h"

struct tool {
    struct event_base *base;
    struct sp_store *s;
    const char *ws, *prefix;
    long n, next, inflight, failed, done_ok;
    int finished;
};

static void on_written(const struct sp_secret_meta *m, const struct sp_err *err, void *arg);

static void pump_seed(struct tool *t)
{
    while (t->inflight < 100 && t->next < t->n) {
        char name[32], value[200];
        struct sp_secret_write w;
        struct sp_err err;

        snprintf(name, sizeof(name), "S%ld", t->next);
        snprintf(value, sizeof(value), "%s-%ld", t->prefix, t->next);
        memset(&w, 0, sizeof(w));
        w.value = (const unsigned char *)value;
        w.value_len = strlen(value);
        w.has_value = 1;
        if (sp_store_secret_write(t->s, t->ws, "workspace", name, SP_WRITE_UPSERT, &w, on_written,
                                  t, &err) < 0) {
            fprintf(stderr, "seed: %s\n", err.msg);
            t->failed++;
            t->finished = 1;
            return;
        }
        t->next++;
        t->inflight++;
    }
    if (t->inflight == 0)
        t->finished = 1;
}

static void on_written(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    struct tool *t = arg;

    t->inflight--;
    if (err) {
        fprintf(stderr, "seed: %s\n", err->msg);
        t->failed++;
    }
    pump_seed(t);
}

static void on_read(struct sp_secret *sec, const struct sp_err *err, void *arg);

static void pump_verify(struct tool *t)
{
    while (t->inflight < 100 && t->next < t->n) {
        char name[32];
        struct sp_err err;

        snprintf(name, sizeof(name), "S%ld", t->next);
        if (sp_store_secret_get(t->s, t->ws, "workspace", name, on_read, t, &err) < 0) {
            fprintf(stderr, "verify: cannot read %s: %s\n", name, err.msg);
            t->failed++;
            t->finished = 1;
            return;
        }
        t->next++;
        t->inflight++;
    }
    if (t->inflight == 0)
        t->finished = 1;
}

static void on_read(struct sp_secret *sec, const struct sp_err *err, void *arg)
{
    struct tool *t = arg;
    char want[200];

    t->inflight--;
    if (err) {
        fprintf(stderr, "verify: %s\n", err->msg);
        t->failed++;
    } else {
        long i = strtol(sec->meta.name + 1, NULL, 10);
        snprintf(want, sizeof(want), "%s-%ld", t->prefix, i);
        if (sec->value_len != strlen(want) || memcmp(sec->value, want, sec->value_len) != 0) {
            fprintf(stderr, "verify: %s has the wrong value\n", sec->meta.name);
            t->failed++;
        } else {
            t->done_ok++;
        }
        sp_secret_free(sec);
    }
    pump_verify(t);
}

static void on_rotated(const struct sp_rotation_status *st, const struct sp_err *err, void *arg)
{
    struct tool *t = arg;

    if (err) {
        fprintf(stderr, "rotate: %s\n", err->msg);
        t->failed++;
    } else {
        printf("rotated to version %d, %llu re-encrypted\n", st ? st->target_version : 0,
               st ? (unsigned long long)st->reencrypted : 0ULL);
    }
    t->finished = 1;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct tool *t = arg;

    if (t->finished)
        event_base_loopbreak(t->base);
}

int main(int argc, char **argv)
{
    char e1[400], e2[64];
    char *env[] = {e1, e2, NULL};
    struct sp_conf_diag d = {0};
    struct sp_conf *c;
    struct sp_keyring *kr;
    struct sp_err err;
    struct tool t;
    struct event *tick;
    struct timeval ms10 = {0, 10000};
    const char *cmd;
    int waited = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: store_tool URL KEYRING seed|rotate|verify ...\n");
        return 2;
    }
    cmd = argv[3];
    snprintf(e1, sizeof(e1), "SECRETPROXY_REDIS_URL=%s", argv[1]);
    /* Tests rotate in one process: no other process needs time to reload. */
    snprintf(e2, sizeof(e2), "SECRETPROXY_KEYRING_RETIRE_GRACE=%s",
             getenv("SECRETPROXY_KEYRING_RETIRE_GRACE") ? getenv("SECRETPROXY_KEYRING_RETIRE_GRACE")
                                                        : "0");
    c = sp_conf_load(NULL, env, &d);
    if (!c || sp_keyring_open(argv[2], NULL, 1, &kr, &err) < 0) {
        fprintf(stderr, "store_tool: cannot open config or key ring\n");
        return 1;
    }
    memset(&t, 0, sizeof(t));
    t.base = event_base_new();
    t.s = sp_store_new(t.base, c, kr, &err);
    tick = event_new(t.base, -1, EV_PERSIST, on_tick, &t);
    evtimer_add(tick, &ms10);
    while (sp_store_state(t.s) != SP_STORE_READY && waited++ < 500) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(t.base, &tv);
        event_base_dispatch(t.base);
    }
    if (sp_store_state(t.s) != SP_STORE_READY) {
        fprintf(stderr, "store_tool: Redis not reachable\n");
        return 1;
    }
    if ((strcmp(cmd, "seed") == 0 || strcmp(cmd, "verify") == 0) && argc == 7) {
        t.ws = argv[4];
        t.n = strtol(argv[5], NULL, 10);
        t.prefix = argv[6];
        if (cmd[0] == 's')
            pump_seed(&t);
        else
            pump_verify(&t);
    } else if (strcmp(cmd, "rotate") == 0) {
        if (sp_store_rotation_start(t.s, on_rotated, &t, &err) < 0) {
            fprintf(stderr, "rotate: %s\n", err.msg);
            return 1;
        }
    } else {
        fprintf(stderr, "store_tool: bad command\n");
        return 2;
    }
    if (!t.finished)
        event_base_dispatch(t.base);
    if (strcmp(cmd, "verify") == 0)
        printf("%ld verified, %ld failed\n", t.done_ok, t.failed);
    event_free(tick);
    sp_store_free(t.s);
    event_base_free(t.base);
    sp_keyring_free(kr);
    sp_conf_free(c);
    return t.failed ? 1 : 0;
}
