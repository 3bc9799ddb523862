/*
 * testutil.h - shared by the C unit tests: drive an event loop until a
 * condition holds, find the test Redis, start a private redis-server for
 * tests that must stop and restart it, and make temporary directories.
 * Header-only so each test program stays one file.
 */
#ifndef SP_TESTUTIL_H
#define SP_TESTUTIL_H

#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"

static inline void tu_nop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

static inline int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run base until *flag becomes non-zero or ms elapse; returns *flag. Wakes
 * as soon as any event ran, so a reply is seen without delay. */
static inline int tu_run_until(struct event_base *base, volatile int *flag, int ms)
{
    struct event *tick = evtimer_new(base, tu_nop, NULL);
    struct timeval tv = {0, 10000};
    int64_t end = tu_now_ms() + ms;

    while (!*flag && tu_now_ms() < end) {
        evtimer_add(tick, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return *flag;
}

/* Run base for ms milliseconds regardless. */
static inline void tu_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static inline const char *tu_redis_url(void)
{
    return getenv("SP_TEST_REDIS_URL");
}

static inline int tu_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Start redis-server on port (no persistence) with extra arguments (a
 * NULL-terminated list, or NULL); returns its pid or -1. */
static inline pid_t tu_redis_start(int port, const char *const *extra)
{
    char p[16], cmd[256];
    const char *argv[32] = {"redis-server", "--port",     p,        "--bind",
                            "127.0.0.1",    "--save",     "",       "--appendonly",
                            "no",           "--loglevel", "warning"};
    pid_t pid;
    int n = 11;

    for (; extra && *extra && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    snprintf(p, sizeof(p), "%d", port);
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(cmd, sizeof(cmd), "redis-cli -p %d ping >/dev/null 2>&1", port);
        if (system(cmd) == 0)
            return pid;
        usleep(25000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static inline void tu_redis_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* A fresh temporary directory; caller removes it with tu_rmrf. */
static inline char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/sp-unit.XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tu_rmrf(char *dir)
{
    char cmd[512];
    if (!dir)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

/* A configuration from the built-in defaults and env (NULL-terminated
 * "SECRETPROXY_<SECTION>_<KEY>=value" strings); its problems are printed
 * and NULL is returned. */
static inline struct sp_conf *tu_conf(char **env)
{
    struct sp_conf_diag d = {0};
    struct sp_conf *c = sp_conf_load(NULL, env, &d);

    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.lines[i]);
    sp_conf_diag_free(&d);
    return c;
}

#endif
