/*
 * h1_testutil.h - shared by the unit tests of the proxy listener's HTTP/1.1
 * server (test_h1.c, test_h1_stream.c): the server under test on 127.0.0.1
 * with its echo/hold owner and streamed-body callback, setup and teardown,
 * event-loop driving, and a non-blocking socket client that sends, reads
 * and parses answers and checks the product's error answers. Header-only,
 * like testutil.h, so each test program stays one file.
 */
#ifndef SP_H1_TESTUTIL_H
#define SP_H1_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/h1.h"
#include "testutil.h"

/* ---- the server under test ---- */

enum app_mode {
    APP_ECHO = 1, /* answer at once with what was received */
    APP_HOLD,     /* keep the request for the test to answer */
};

static struct app {
    struct event_base *base;
    struct sp_h1_server *srv;
    int port;
    enum app_mode mode;
    struct sp_h1_req *held;
    int nreq, gone_calls, drain_calls, rejects, last_reject_status;
    char last_target[512];
    /* Streamed request bodies (requests with an X-Stream header). */
    int stream_asked, autostart, body_calls, body_last;
    char *sbody; /* the first SBODY_CAP bytes delivered */
    size_t slen, pause_at;
    int pattern_bad; /* a delivered byte differs from pat() */
} A;

#define SBODY_CAP (4u << 20)

/* The byte at offset i of a patterned body. */
static inline char pat(size_t i)
{
    return (char)((i >> 8) ^ (i * 31));
}

static inline void on_gone(struct sp_h1_req *req, void *arg)
{
    A.gone_calls++;
}

static inline void on_drain(struct sp_h1_req *req, void *arg)
{
    A.drain_calls++;
}

static inline void on_reject(void *arg, const struct sp_h1_rejection *r)
{
    A.rejects++;
    A.last_reject_status = r->status;
    assert_non_null(r->request_id);
    assert_non_null(r->err);
}

static inline void echo(struct sp_h1_req *req)
{
    char head[1024], seq[16];
    size_t blen, n;
    const char *body = sp_h1_req_body(req, &blen);
    const char *target = sp_h1_req_target(req, NULL);
    char *out;
    struct sp_h1_header h[2] = {{"X-Seq", 5, seq, 0}, {"Content-Type", 12, "text/plain", 10}};

    snprintf(seq, sizeof(seq), "%d", A.nreq);
    h[0].value_len = strlen(seq);
    sp_h1_req_headers(req, &n);
    snprintf(head, sizeof(head), "M=%s T=%s V=%d H=%zu B=%zu\n", sp_h1_req_method(req), target,
             sp_h1_req_version(req), n, blen);
    out = malloc(strlen(head) + blen + 1);
    assert_non_null(out);
    memcpy(out, head, strlen(head));
    if (blen)
        memcpy(out + strlen(head), body, blen);
    sp_h1_reply(req, 200, NULL, h, 2, out, strlen(head) + blen);
    free(out);
}

static inline void on_body(struct sp_h1_req *req, const char *p, size_t n, int last, void *arg)
{
    assert_int_equal(A.body_last, 0); /* nothing after the last */
    assert_ptr_equal(req, A.held);
    if (A.slen + n <= SBODY_CAP)
        memcpy(A.sbody + A.slen, p, n);
    for (size_t i = 0; i < n; i++)
        A.pattern_bad += p[i] != pat(A.slen + i);
    A.slen += n;
    A.body_calls++;
    A.body_last += last;
    if (A.pause_at && A.slen >= A.pause_at) {
        A.pause_at = 0;
        sp_h1_req_body_pause(req, 1);
    }
}

static inline void on_request(struct sp_h1_req *req, void *arg)
{
    A.nreq++;
    snprintf(A.last_target, sizeof(A.last_target), "%s", sp_h1_req_target(req, NULL));
    if (sp_h1_req_streamed(req)) {
        size_t blen;
        assert_null(sp_h1_req_body(req, &blen));
        assert_int_equal(blen, 0);
        assert_null(A.held);
        A.held = req;
        assert_int_equal(sp_h1_req_on_gone(req, on_gone, NULL), 0);
        if (A.autostart)
            sp_h1_req_body_start(req, on_body, NULL);
        return;
    }
    if (A.mode == APP_HOLD) {
        assert_null(A.held);
        A.held = req;
        assert_int_equal(sp_h1_req_on_gone(req, on_gone, NULL), 0);
        return;
    }
    echo(req);
}

static inline void pump_once(void)
{
    event_base_loop(A.base, EVLOOP_NONBLOCK);
}

static inline void pump(int ms)
{
    int64_t end = tu_now_ms() + ms;

    do {
        pump_once();
        usleep(500);
    } while (tu_now_ms() < end);
}

static inline int listen_any(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static inline void server_start(const struct sp_h1_limits *lim)
{
    struct sp_err err;
    int fd = listen_any(&A.port);

    assert_true(fd >= 0);
    A.srv = sp_h1_server_new(A.base, fd, lim, on_request, NULL, &err);
    assert_non_null(A.srv);
    sp_h1_server_on_reject(A.srv, on_reject, NULL);
}

static inline void test_limits(struct sp_h1_limits *lim)
{
    sp_h1_limits_default(lim);
    lim->idle_timeout_ms = 5000;
    lim->read_timeout_ms = 5000;
    lim->write_timeout_ms = 5000;
}

static inline int setup(void **state)
{
    struct sp_h1_limits lim;

    memset(&A, 0, sizeof(A));
    A.base = event_base_new();
    A.mode = APP_ECHO;
    test_limits(&lim);
    server_start(&lim);
    return 0;
}

static inline int teardown(void **state)
{
    sp_h1_server_free(A.srv);
    if (A.held) {
        /* Still owned after the server went: the finishing call frees it. */
        sp_h1_reply_end(A.held);
        A.held = NULL;
    }
    pump(5);
    event_base_free(A.base);
    free(A.sbody);
    return 0;
}

/* Restart the server with other limits. */
static inline void restart(const struct sp_h1_limits *lim)
{
    sp_h1_server_free(A.srv);
    server_start(lim);
}

/* ---- the client ---- */

struct client {
    int fd;
    char *buf;
    size_t len, cap;
    int eof, reset;
};

static inline struct client *cl_open(void)
{
    struct client *c = calloc(1, sizeof(*c));
    struct sockaddr_in a;

    assert_non_null(c);
    c->cap = 8 << 20;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)A.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    pump(2); /* accepted */
    return c;
}

static inline void cl_close(struct client *c, int rst)
{
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

static inline void cl_send(struct client *c, const void *p, size_t n)
{
    const char *s = p;
    int64_t end = tu_now_ms() + 5000;

    while (n && tu_now_ms() < end) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k > 0) {
            s += k;
            n -= (size_t)k;
        } else if (k < 0 && errno != EAGAIN) {
            break;
        }
        pump_once();
    }
    pump_once();
}

static inline void cl_sends(struct client *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Take what the socket has; 1 if anything changed. */
static inline int cl_recv(struct client *c)
{
    ssize_t k;

    if (c->eof)
        return 0;
    if (c->len == c->cap)
        return 0;
    k = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (k > 0) {
        c->len += (size_t)k;
        return 1;
    }
    if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        c->eof = 1;
        c->reset = k < 0;
        return 1;
    }
    return 0;
}

struct resp {
    int status;
    char head[16384];
    char *body;
    size_t blen;
};

static inline const char *resp_header(const struct resp *r, const char *name)
{
    static char v[4096];
    const char *p = strstr(r->head, "\r\n");
    size_t n = strlen(name);

    while (p && p[2] != '\r') {
        const char *line = p + 2, *e = strstr(line, "\r\n");
        if ((size_t)(e - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *s = line + n + 1;
            while (*s == ' ')
                s++;
            snprintf(v, sizeof(v), "%.*s", (int)(e - s), s);
            return v;
        }
        p = e;
    }
    return NULL;
}

static inline void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parse one answer from c->buf: 1 done (consumed), 0 more needed. */
static inline int parse_resp(struct client *c, struct resp *r, int head_req)
{
    char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
    size_t hl, need;
    const char *v;

    if (!e)
        return 0;
    hl = (size_t)(e - c->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    r->body = NULL;
    r->blen = 0;
    if (r->status < 200 || head_req || r->status == 204 || r->status == 304) {
        need = 0;
    } else if ((v = resp_header(r, "Content-Length"))) {
        need = (size_t)strtoull(v, NULL, 10);
    } else if ((v = resp_header(r, "Transfer-Encoding"))) {
        /* De-chunk. */
        size_t at = hl;
        assert_string_equal(v, "chunked");
        r->body = malloc(c->len + 1);
        for (;;) {
            char *le = memmem(c->buf + at, c->len - at, "\r\n", 2);
            size_t sz;
            if (!le)
                goto more;
            sz = (size_t)strtoull(c->buf + at, NULL, 16);
            if ((size_t)(le - c->buf) + 2 + sz + 2 > c->len)
                goto more;
            memcpy(r->body + r->blen, le + 2, sz);
            r->blen += sz;
            at = (size_t)(le - c->buf) + 2 + sz + 2;
            if (sz == 0)
                break;
        }
        memmove(c->buf, c->buf + at, c->len - at);
        c->len -= at;
        return 1;
    more:
        resp_free(r);
        return 0;
    } else {
        /* Close-delimited. */
        if (!c->eof)
            return 0;
        need = c->len - hl;
    }
    if (c->len < hl + need)
        return 0;
    r->body = malloc(need + 1);
    memcpy(r->body, c->buf + hl, need);
    r->body[need] = '\0';
    r->blen = need;
    memmove(c->buf, c->buf + hl + need, c->len - hl - need);
    c->len -= hl + need;
    return 1;
}

static inline int read_resp_ex(struct client *c, struct resp *r, int head_req, int ms)
{
    int64_t end = tu_now_ms() + ms;

    for (;;) {
        if (parse_resp(c, r, head_req))
            return 0;
        if (c->eof || tu_now_ms() > end)
            return -1;
        pump_once();
        if (!cl_recv(c)) {
            struct pollfd p = {c->fd, POLLIN, 0};
            poll(&p, 1, 1);
        }
    }
}

static inline int read_resp(struct client *c, struct resp *r)
{
    return read_resp_ex(c, r, 0, 5000);
}

/* Has the server closed (EOF or reset) within ms? Data before is dropped. */
static inline int wait_closed(struct client *c, int ms)
{
    int64_t end = tu_now_ms() + ms;

    while (!c->eof && tu_now_ms() < end) {
        pump_once();
        if (!cl_recv(c)) {
            struct pollfd p = {c->fd, POLLIN, 0};
            poll(&p, 1, 1);
        }
        if (c->len > c->cap / 2)
            c->len = 0;
    }
    return c->eof;
}

/* The product's error answer: status, header, JSON body, and a close. */
static inline void expect_error(struct client *c, int status, const char *code)
{
    struct resp r;
    json_t *j;
    json_error_t je;
    const char *rid;

    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, status);
    assert_non_null(resp_header(&r, "Secretproxy-Error"));
    assert_string_equal(resp_header(&r, "Secretproxy-Error"), code);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    rid = resp_header(&r, "Secretproxy-Request-Id");
    assert_non_null(rid);
    j = json_loadb(r.body, r.blen, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        code);
    assert_true(strlen(json_string_value(json_object_get(json_object_get(j, "error"), "message"))) >
                0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "error"), "request_id")), rid);
    json_decref(j);
    resp_free(&r);
    assert_true(wait_closed(c, 3000));
}

static inline void expect_echo(struct client *c, const char *first_line, const char *body)
{
    struct resp r;
    char *nl;

    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 200);
    nl = memchr(r.body, '\n', r.blen);
    assert_non_null(nl);
    *nl = '\0';
    assert_string_equal(r.body, first_line);
    if (body) {
        assert_int_equal(r.blen - (size_t)(nl + 1 - r.body), strlen(body));
        assert_memory_equal(nl + 1, body, strlen(body));
    }
    resp_free(&r);
}

/* One request, one refusal: the product's error and a closed connection. */
static inline void refused(const char *req, size_t n, int status, const char *code)
{
    struct client *c = cl_open();

    cl_send(c, req, n);
    expect_error(c, status, code);
    cl_close(c, 0);
}

#define REFUSED(req, status, code) refused((req), sizeof(req) - 1, (status), (code))

static inline struct sp_h1_req *wait_held(void)
{
    int64_t end = tu_now_ms() + 3000;

    while (!A.held && tu_now_ms() < end)
        pump(1);
    assert_non_null(A.held);
    return A.held;
}

#endif
