/*
 * bench_h1.c - a trivial HTTP/1.1 server answering every request with 200
 * and a small or 16 KiB body, on one thread and one event base, served
 * either by the proxy listener's own server side (proxy/h1.h) or by
 * libevent's evhttp, for comparing the two under wrk. Prints nothing but
 * its port; never fails on speed. Stops by itself after SECONDS.
 *
 *   bench_h1 h1|evhttp PORT SECONDS [BODY_BYTES, default 3]
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/h1.h"

static char *body;
static size_t body_len;

static void on_h1(struct sp_h1_req *req, void *arg)
{
    static const struct sp_h1_header h = {"Content-Type", 12, "text/plain", 10};

    sp_h1_reply(req, 200, NULL, &h, 1, body, body_len);
}

static void on_evhttp(struct evhttp_request *req, void *arg)
{
    struct evbuffer *b = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    if (b)
        evbuffer_add(b, body, body_len);
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    if (bev)
        bufferevent_set_max_single_write(bev, 1 << 20);
    return bev;
}

static int listen_on(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
        perror("bench_h1: listen");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    struct timeval stop = {0, 0};
    struct sp_h1_server *srv = NULL;
    struct evhttp *http = NULL;
    struct sp_err err;
    int fd;

    if (argc < 4 || (strcmp(argv[1], "h1") != 0 && strcmp(argv[1], "evhttp") != 0)) {
        (void)fprintf(stderr, "usage: bench_h1 h1|evhttp PORT SECONDS [BODY_BYTES]\n");
        return 2;
    }
    body_len = argc > 4 ? strtoul(argv[4], NULL, 10) : 3;
    body = malloc(body_len + 1);
    if (!body || !cfg)
        return 1;
    memset(body, 'x', body_len);
    if (body_len)
        body[body_len - 1] = '\n';
    /* As secretproxy runs (PERF-NOTES 4, 5). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base)
        return 1;
    fd = listen_on((int)strtol(argv[2], NULL, 10));
    if (strcmp(argv[1], "h1") == 0) {
        struct sp_h1_limits lim;
        sp_h1_limits_default(&lim);
        srv = sp_h1_server_new(base, fd, &lim, on_h1, NULL, &err);
        if (!srv) {
            (void)fprintf(stderr, "bench_h1: %s\n", err.msg);
            return 1;
        }
    } else {
        http = evhttp_new(base);
        if (!http || !evhttp_accept_socket_with_handle(http, fd))
            return 1;
        evhttp_set_bevcb(http, on_bev, NULL);
        evhttp_set_gencb(http, on_evhttp, NULL);
    }
    stop.tv_sec = strtol(argv[3], NULL, 10);
    event_base_loopexit(base, &stop);
    event_base_dispatch(base);
    sp_h1_server_free(srv);
    if (http)
        evhttp_free(http);
    event_base_free(base);
    free(body);
    return 0;
}
