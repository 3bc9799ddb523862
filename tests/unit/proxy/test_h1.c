/*
 * test_h1.c - the proxy listener's HTTP/1.1 server (proxy/h1.h) over real
 * sockets on 127.0.0.1: the server runs on an event base driven by this
 * thread between the client's non-blocking writes and reads. Covers
 * keep-alive, pipelining, chunked and Content-Length bodies in pieces,
 * 100-continue, every refusal (status, Secretproxy-Error, JSON body, close),
 * the limits at and over their boundary, timeouts, clients that vanish,
 * streamed answers, back-pressure, draining, random input, and streamed
 * request bodies (delivery, pause, 100-continue, errors, close rules).
 */
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
#include "proxy/h1_int.h"
#include "proxy/http_err.h"
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
static char pat(size_t i)
{
    return (char)((i >> 8) ^ (i * 31));
}

static void on_gone(struct sp_h1_req *req, void *arg)
{
    A.gone_calls++;
}

static void on_drain(struct sp_h1_req *req, void *arg)
{
    A.drain_calls++;
}

static void on_reject(void *arg, const struct sp_h1_rejection *r)
{
    A.rejects++;
    A.last_reject_status = r->status;
    assert_non_null(r->request_id);
    assert_non_null(r->err);
}

static void echo(struct sp_h1_req *req)
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

static int on_stream(const struct sp_h1_req *req, void *arg)
{
    A.stream_asked++;
    return sp_h1_req_header(req, "X-Stream") != NULL;
}

static void on_body(struct sp_h1_req *req, const char *p, size_t n, int last, void *arg)
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

static void on_request(struct sp_h1_req *req, void *arg)
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

static void pump_once(void)
{
    event_base_loop(A.base, EVLOOP_NONBLOCK);
}

static void pump(int ms)
{
    int64_t end = tu_now_ms() + ms;

    do {
        pump_once();
        usleep(500);
    } while (tu_now_ms() < end);
}

static int listen_any(int *port)
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

static void server_start(const struct sp_h1_limits *lim)
{
    struct sp_err err;
    int fd = listen_any(&A.port);

    assert_true(fd >= 0);
    A.srv = sp_h1_server_new(A.base, fd, lim, on_request, NULL, &err);
    assert_non_null(A.srv);
    sp_h1_server_on_reject(A.srv, on_reject, NULL);
}

static void test_limits(struct sp_h1_limits *lim)
{
    sp_h1_limits_default(lim);
    lim->idle_timeout_ms = 5000;
    lim->read_timeout_ms = 5000;
    lim->write_timeout_ms = 5000;
}

static int setup(void **state)
{
    struct sp_h1_limits lim;

    memset(&A, 0, sizeof(A));
    A.base = event_base_new();
    A.mode = APP_ECHO;
    test_limits(&lim);
    server_start(&lim);
    return 0;
}

static int teardown(void **state)
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
static void restart(const struct sp_h1_limits *lim)
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

static struct client *cl_open(void)
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

static void cl_close(struct client *c, int rst)
{
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

static void cl_send(struct client *c, const void *p, size_t n)
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

static void cl_sends(struct client *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Take what the socket has; 1 if anything changed. */
static int cl_recv(struct client *c)
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

static const char *resp_header(const struct resp *r, const char *name)
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

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parse one answer from c->buf: 1 done (consumed), 0 more needed. */
static int parse_resp(struct client *c, struct resp *r, int head_req)
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

static int read_resp_ex(struct client *c, struct resp *r, int head_req, int ms)
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

static int read_resp(struct client *c, struct resp *r)
{
    return read_resp_ex(c, r, 0, 5000);
}

/* Has the server closed (EOF or reset) within ms? Data before is dropped. */
static int wait_closed(struct client *c, int ms)
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
static void expect_error(struct client *c, int status, const char *code)
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

static void expect_echo(struct client *c, const char *first_line, const char *body)
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
static void refused(const char *req, size_t n, int status, const char *code)
{
    struct client *c = cl_open();

    cl_send(c, req, n);
    expect_error(c, status, code);
    cl_close(c, 0);
}

#define REFUSED(req, status, code) refused((req), sizeof(req) - 1, (status), (code))

/* ---- the parser, directly ---- */

static int parse_one(const char *text, struct h1_info *info, struct sp_h1_header *h,
                     struct sp_err *err)
{
    static char buf[8192];
    struct h1_scan s;
    size_t n = strlen(text), end;
    int rc;

    memcpy(buf, text, n);
    h1_scan_init(&s, 0);
    rc = h1_scan_head(&s, buf, n, 4096, 50, &end, err);
    if (rc <= 0)
        return rc == 0 ? -2 : -1;
    return h1_parse_head(buf + s.start, end - s.start, h, s.nfields, 1000, info, err);
}

static void test_parser_direct(void **state)
{
    struct h1_info info;
    struct sp_h1_header h[50];
    struct sp_err err;
    struct h1_chunked ch;
    struct sp_buf body;
    size_t used;
    const char *chunked = "4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    assert_int_equal(
        parse_one("\r\nGET /a?b HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\nx-a:\r\n\r\n", &info, h, &err),
        0);
    assert_string_equal(info.method, "GET");
    assert_string_equal(info.target, "/a?b");
    assert_int_equal(info.version, 11);
    assert_true(info.keepalive);
    assert_string_equal(h[1].name, "X-A");
    assert_string_equal(h[1].value, "v");
    assert_int_equal(h[2].value_len, 0);
    assert_int_equal(parse_one("GET / HTTP/1.1\r\nHost: h\r\n", &info, h, &err), -2);
    assert_int_equal(parse_one("GET / HTTP/1.1\r\nHost: h\n\r\n", &info, h, &err), -1);
    assert_int_equal(
        parse_one("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n", &info, h, &err),
        -1);
    assert_int_equal(err.code, SP_E_PAYLOAD_TOO_LARGE);
    assert_int_equal(parse_one("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
                               "99999999999999999999999999\r\n\r\n",
                               &info, h, &err),
                     -1);
    assert_int_equal(err.code, SP_E_PAYLOAD_TOO_LARGE);
    assert_int_equal(
        parse_one("GET / HTTP/1.0\r\nConnection: Keep-Alive, foo\r\n\r\n", &info, h, &err), 0);
    assert_true(info.keepalive);

    sp_buf_init(&body, 0, 1);
    h1_chunked_init(&ch);
    assert_int_equal(h1_chunked_feed(&ch, chunked, strlen(chunked), &used, &body, 100, 100, &err),
                     1);
    assert_string_equal(chunked + used, "NEXT");
    assert_int_equal(body.len, 9);
    assert_memory_equal(body.data, "wikipedia", 9);
    sp_buf_free(&body);
    /* Byte by byte, the same. */
    sp_buf_init(&body, 0, 1);
    h1_chunked_init(&ch);
    for (size_t i = 0, n = strlen(chunked) - 4; i < n; i++)
        assert_int_equal(h1_chunked_feed(&ch, chunked + i, 1, &used, &body, 100, 100, &err),
                         i + 1 == n ? 1 : 0);
    assert_int_equal(body.len, 9);
    sp_buf_free(&body);
    /* A size past the limit is refused before its data. */
    sp_buf_init(&body, 0, 1);
    h1_chunked_init(&ch);
    assert_int_equal(h1_chunked_feed(&ch, "65\r\n", 4, &used, &body, 100, 100, &err), -1);
    assert_int_equal(err.code, SP_E_PAYLOAD_TOO_LARGE);
    h1_chunked_init(&ch);
    assert_int_equal(
        h1_chunked_feed(&ch, "fffffffffffffffffffff\r\n", 23, &used, &body, (size_t)-1, 100, &err),
        -1);
    sp_buf_free(&body);
}

/* Random bytes and mutations of good heads: never a crash (ASan). */
static void test_parser_fuzz(void **state)
{
    static const char *seeds[] = {
        "GET http://a/b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    };
    static const char *chunk_seed = "a;x=\"y\"\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
    char buf[512];
    struct sp_h1_header h[64];
    struct h1_info info;
    struct sp_err err;

    srand(1234);
    for (int it = 0; it < 20000; it++) {
        const char *seed = seeds[it % 2];
        size_t n = strlen(seed), end, used;
        struct h1_scan s;
        struct h1_chunked ch;
        struct sp_buf body;
        memcpy(buf, seed, n);
        for (int k = rand() % 4; k >= 0; k--) {
            static const char pick[] = "\r\n\0 \t:,;aZ0\x7f\x80";
            buf[rand() % n] = rand() % 3 ? pick[rand() % (sizeof(pick) - 1)] : (char)rand();
        }
        if (it % 7 == 0)
            for (size_t k = 0; k < n; k++)
                buf[k] = (char)rand();
        h1_scan_init(&s, 0);
        if (h1_scan_head(&s, buf, n, 400, 60, &end, &err) == 1)
            (void)h1_parse_head(buf + s.start, end - s.start, h, s.nfields, 100, &info, &err);
        n = strlen(chunk_seed);
        memcpy(buf, chunk_seed, n);
        buf[rand() % n] = (char)rand();
        sp_buf_init(&body, 0, 1);
        h1_chunked_init(&ch);
        for (size_t at = 0; at < n;) {
            size_t step = 1 + (size_t)rand() % 5;
            if (step > n - at)
                step = n - at;
            if (h1_chunked_feed(&ch, buf + at, step, &used, &body, 50, 50, &err) != 0)
                break;
            at += step;
        }
        sp_buf_free(&body);
    }
}

/* ---- requests over sockets ---- */

static void test_simple_get(void **state)
{
    struct client *c = cl_open();
    struct resp r;

    cl_sends(c, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n");
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Content-Type"), "text/plain");
    assert_string_equal(resp_header(&r, "X-Seq"), "1");
    assert_null(resp_header(&r, "Connection"));
    assert_string_equal(r.body, "M=GET T=/hello?x=1 V=11 H=2 B=0\n");
    resp_free(&r);
    assert_int_equal(sp_h1_server_connections(A.srv), 1);
    cl_close(c, 0);
    pump(20);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

static void test_keepalive_20(void **state)
{
    struct client *c = cl_open();

    for (int i = 0; i < 20; i++) {
        char req[128], line[128];
        snprintf(req, sizeof(req), "GET http://h/%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        snprintf(line, sizeof(line), "M=GET T=http://h/%d V=11 H=1 B=0", i);
        cl_sends(c, req);
        expect_echo(c, line, "");
    }
    assert_int_equal(A.nreq, 20);
    assert_int_equal(sp_h1_server_connections(A.srv), 1);
    cl_close(c, 0);
}

static void test_pipelining(void **state)
{
    struct client *c = cl_open();
    const char *reqs = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                       "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                       "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"
                       "HEAD /4 HTTP/1.1\r\nHost: h\r\n\r\n"
                       "GET /5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    struct resp r;

    cl_sends(c, reqs);
    expect_echo(c, "M=GET T=/1 V=11 H=1 B=0", "");
    expect_echo(c, "M=POST T=/2 V=11 H=2 B=5", "hello");
    expect_echo(c, "M=POST T=/3 V=11 H=2 B=3", "abc");
    assert_int_equal(read_resp_ex(c, &r, 1, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "X-Seq"), "4");
    assert_non_null(resp_header(&r, "Content-Length"));
    resp_free(&r);
    assert_int_equal(read_resp(c, &r), 0);
    assert_string_equal(resp_header(&r, "X-Seq"), "5");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    assert_true(wait_closed(c, 3000));
    assert_int_equal(c->len, 0);
    cl_close(c, 0);
}

static void test_chunked_body_pieces(void **state)
{
    const char *head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
    const char *body = "5;name=value\r\nhello\r\n1\r\n \r\n0000000005\r\nworld\r\n0\r\n"
                       "X-Trailer: 1\r\nY: 2\r\n\r\n";
    struct client *c = cl_open();

    /* In a few writes. */
    cl_sends(c, head);
    pump(5);
    cl_send(c, body, 10);
    pump(5);
    cl_send(c, body + 10, 20);
    pump(5);
    cl_sends(c, body + 30);
    expect_echo(c, "M=POST T=/c V=11 H=2 B=11", "hello world");
    /* One byte at a time, head included. */
    for (const char *p = head; *p; p++)
        cl_send(c, p, 1);
    for (const char *p = body; *p; p++)
        cl_send(c, p, 1);
    expect_echo(c, "M=POST T=/c V=11 H=2 B=11", "hello world");
    cl_close(c, 0);
}

static void test_content_length_pieces(void **state)
{
    struct client *c = cl_open();
    char big[200000];

    cl_sends(c, "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01");
    pump(5);
    cl_sends(c, "2345");
    pump(5);
    cl_sends(c, "6789");
    expect_echo(c, "M=PUT T=/p V=11 H=2 B=10", "0123456789");
    /* A body larger than the input buffer goes straight to its own. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    cl_sends(c, "PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n");
    cl_send(c, big, sizeof(big));
    {
        struct resp r;
        assert_int_equal(read_resp(c, &r), 0);
        assert_int_equal(r.blen, strlen("M=PUT T=/big V=11 H=2 B=200000\n") + sizeof(big));
        assert_memory_equal(r.body + r.blen - sizeof(big), big, sizeof(big));
        resp_free(&r);
    }
    cl_close(c, 0);
}

static void test_expect_continue(void **state)
{
    struct client *c = cl_open();
    struct resp r;

    cl_sends(c, "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 100);
    resp_free(&r);
    assert_int_equal(A.nreq, 0);
    cl_sends(c, "data");
    expect_echo(c, "M=POST T=/e V=11 H=3 B=4", "data");
    /* Body sent with the head: no 100 needed. */
    cl_sends(c,
             "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
    expect_echo(c, "M=POST T=/e V=11 H=3 B=1", "x");
    cl_close(c, 0);
    REFUSED("POST /e HTTP/1.1\r\nHost: h\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417,
            "bad_request");
}

static void test_refusals(void **state)
{
    REFUSED("GET / HTTP/1.1\nHost: h\n\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX(: z\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400, "bad_request");
    /* framing */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
            "0\r\n\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 40\r\n\r\nhello", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
            "bad_request");
    REFUSED("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n"
            "\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello world\r\n"
            "0\r\n\r\n",
            400, "bad_request");
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n", 400,
            "bad_request");
    /* request lines and versions */
    REFUSED("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request");
    REFUSED("GET /\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET / http/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    REFUSED("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    /* Host */
    REFUSED("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "bad_request");
    REFUSED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request");
    assert_true(A.rejects >= 36);
    assert_int_equal(A.nreq, 0);
}

static void test_head_limits(void **state)
{
    struct sp_h1_limits lim;
    char req[2048];
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    struct client *c;

    test_limits(&lim);
    lim.max_head_bytes = 1024;
    lim.max_headers = 5;
    restart(&lim);
    /* Exactly 1024 bytes of head: accepted. */
    memset(req, 'p', sizeof(req));
    memcpy(req, pre, strlen(pre));
    memcpy(req + 1024 - 4, "\r\n\r\n", 4);
    c = cl_open();
    cl_send(c, req, 1024);
    expect_echo(c, "M=GET T=/ V=11 H=2 B=0", NULL);
    /* One more: 431. */
    memset(req, 'p', sizeof(req));
    memcpy(req, pre, strlen(pre));
    memcpy(req + 1025 - 4, "\r\n\r\n", 4);
    cl_send(c, req, 1025);
    expect_error(c, 431, "headers_too_large");
    cl_close(c, 0);
    /* Incomplete and already too long: 431 without waiting for the end. */
    memset(req, 'p', sizeof(req));
    memcpy(req, pre, strlen(pre));
    c = cl_open();
    cl_send(c, req, 1100);
    expect_error(c, 431, "headers_too_large");
    cl_close(c, 0);
    /* Five header lines are fine, six are not. */
    c = cl_open();
    cl_sends(c, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    expect_echo(c, "M=GET T=/ V=11 H=5 B=0", NULL);
    cl_sends(c, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    expect_error(c, 431, "headers_too_large");
    cl_close(c, 0);
    /* Heads larger than the 64 KiB input buffer. */
    lim.max_head_bytes = 200000;
    lim.max_headers = 100;
    restart(&lim);
    {
        size_t n = 150000;
        char *big = malloc(n);
        memset(big, 'q', n);
        memcpy(big, pre, strlen(pre));
        memcpy(big + n - 4, "\r\n\r\n", 4);
        c = cl_open();
        cl_send(c, big, n);
        expect_echo(c, "M=GET T=/ V=11 H=2 B=0", NULL);
        cl_close(c, 0);
        free(big);
    }
}

static void test_body_limits(void **state)
{
    struct sp_h1_limits lim;
    char body[1001];
    char chunked[2048];
    struct client *c;
    int n;

    test_limits(&lim);
    lim.max_body = 1000;
    restart(&lim);
    memset(body, 'b', sizeof(body));
    c = cl_open();
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n");
    cl_send(c, body, 1000);
    expect_echo(c, "M=POST T=/ V=11 H=2 B=1000", NULL);
    /* Over: 413 at once, before any of the body is sent. */
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
    /* Chunked: exactly the limit in two chunks, then one byte over. */
    n = snprintf(chunked, sizeof(chunked),
                 "POST / HTTP/1.1\r\nHost: h\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n1f4\r\n");
    memset(chunked + n, 'c', 500);
    n += 500;
    n += snprintf(chunked + n, sizeof(chunked) - (size_t)n, "\r\n1f4\r\n");
    c = cl_open();
    cl_send(c, chunked, (size_t)n);
    cl_send(c, body, 500);
    cl_sends(c, "\r\n0\r\n\r\n");
    expect_echo(c, "M=POST T=/ V=11 H=2 B=1000", NULL);
    cl_send(c, chunked, (size_t)n);
    cl_send(c, body, 500);
    cl_sends(c, "\r\n1\r\n");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
    /* The client keeps sending its large body: the answer still arrives. */
    c = cl_open();
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    {
        char junk[100000];
        memset(junk, 'j', sizeof(junk));
        cl_send(c, junk, sizeof(junk));
    }
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
}

static void test_max_connections(void **state)
{
    struct sp_h1_limits lim;
    struct client *a, *b, *c;

    test_limits(&lim);
    lim.max_connections = 2;
    restart(&lim);
    a = cl_open();
    b = cl_open();
    assert_int_equal(sp_h1_server_connections(A.srv), 2);
    c = cl_open();
    expect_error(c, 503, "store_unavailable");
    cl_close(c, 0);
    assert_int_equal(sp_h1_server_connections(A.srv), 2);
    assert_int_equal(A.last_reject_status, 503);
    /* The two still work; once one closes there is room again. */
    cl_sends(a, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(a, "M=GET T=/a V=11 H=1 B=0", "");
    cl_close(b, 0);
    pump(20);
    assert_int_equal(sp_h1_server_connections(A.srv), 1);
    c = cl_open();
    cl_sends(c, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(c, "M=GET T=/c V=11 H=1 B=0", "");
    cl_close(c, 0);
    cl_close(a, 0);
}

static void test_idle_timeout(void **state)
{
    struct sp_h1_limits lim;
    struct client *c;
    int64_t t0;

    test_limits(&lim);
    lim.idle_timeout_ms = 200;
    restart(&lim);
    c = cl_open();
    cl_sends(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(c, "M=GET T=/ V=11 H=1 B=0", "");
    t0 = tu_now_ms();
    assert_true(wait_closed(c, 3000));
    assert_true(tu_now_ms() - t0 >= 150);
    assert_int_equal(c->len, 0); /* quietly: no answer */
    cl_close(c, 0);
    /* A connection that never sends anything. */
    c = cl_open();
    assert_true(wait_closed(c, 3000));
    assert_int_equal(c->len, 0);
    cl_close(c, 0);
    pump(5);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

static void test_read_timeout(void **state)
{
    struct sp_h1_limits lim;
    struct client *c;

    test_limits(&lim);
    lim.read_timeout_ms = 200;
    restart(&lim);
    /* A head trickling in. */
    c = cl_open();
    cl_sends(c, "GET / HTTP/1.1\r\nHost: h\r\n");
    pump(100);
    cl_sends(c, "X: 1\r\n");
    expect_error(c, 408, "bad_request");
    cl_close(c, 0);
    /* A body that does not come. */
    c = cl_open();
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345");
    expect_error(c, 408, "bad_request");
    cl_close(c, 0);
    assert_int_equal(A.nreq, 0);
}

static void test_client_gone_mid_body(void **state)
{
    struct client *c = cl_open();

    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789");
    pump(10);
    cl_close(c, 0);
    pump(20);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
    c = cl_open();
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n0123");
    pump(10);
    cl_close(c, 1);
    pump(20);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
    assert_int_equal(A.nreq, 0);
}

static struct sp_h1_req *wait_held(void)
{
    int64_t end = tu_now_ms() + 3000;

    while (!A.held && tu_now_ms() < end)
        pump(1);
    assert_non_null(A.held);
    return A.held;
}

static void test_client_gone_while_served(void **state)
{
    struct client *c;
    struct sp_h1_req *req;
    struct sp_err err;
    size_t blen;

    A.mode = APP_HOLD;
    /* Gone before any answer: told once, the request stays readable. */
    c = cl_open();
    cl_sends(c, "POST /g HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    req = wait_held();
    cl_close(c, 0);
    pump(20);
    assert_int_equal(A.gone_calls, 1);
    assert_true(sp_h1_req_gone(req));
    assert_string_equal(sp_h1_req_target(req, NULL), "/g");
    assert_memory_equal(sp_h1_req_body(req, &blen), "abc", 3);
    assert_int_equal(sp_h1_req_on_gone(req, on_gone, NULL), -1);
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, -1, &err), -1);
    sp_err_set(&err, SP_E_UPSTREAM_ERROR, "x");
    sp_h1_reply_error(req, NULL, &err, NULL, 0);
    A.held = NULL;
    pump(10);
    assert_int_equal(A.gone_calls, 1);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
    /* Gone in the middle of a streamed answer (reset). */
    c = cl_open();
    cl_sends(c, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 200, "OK", NULL, 0, -1, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "part", 4), 0);
    pump(10);
    cl_close(c, 1);
    pump(20);
    assert_int_equal(A.gone_calls, 2);
    assert_int_equal(sp_h1_reply_chunk(req, "more", 4), -1);
    assert_int_equal(sp_h1_req_unsent(req), 0);
    sp_h1_reply_end(req);
    A.held = NULL;
    pump(10);
    assert_int_equal(A.gone_calls, 2);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

static void test_stream_unknown_length(void **state)
{
    struct client *c;
    struct sp_h1_req *req;
    struct sp_err err;
    struct sp_h1_header h = {"X-Up", 4, "1", 1};
    struct resp r;

    A.mode = APP_HOLD;
    /* HTTP/1.1: chunked, and the connection stays. */
    c = cl_open();
    cl_sends(c, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 201, NULL, &h, 1, -1, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "hello ", 6), 0);
    pump(5);
    assert_int_equal(sp_h1_reply_chunk(req, "", 0), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "world", 5), 0);
    A.held = NULL;
    sp_h1_reply_end(req);
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(resp_header(&r, "Transfer-Encoding"), "chunked");
    assert_string_equal(resp_header(&r, "X-Up"), "1");
    assert_null(resp_header(&r, "Content-Length"));
    assert_int_equal(r.blen, 11);
    assert_memory_equal(r.body, "hello world", 11);
    resp_free(&r);
    /* Same connection, a known length. */
    cl_sends(c, "GET /k HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, 4, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "abcde", 5), -1); /* past Content-Length */
    A.held = NULL;
    sp_h1_reply_end(req); /* broken: aborted */
    assert_true(wait_closed(c, 3000));
    cl_close(c, 0);
    /* HTTP/1.0: close-delimited. */
    c = cl_open();
    cl_sends(c, "GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, -1, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "ten bytes!", 10), 0);
    A.held = NULL;
    sp_h1_reply_end(req);
    assert_true(wait_closed(c, 3000));
    assert_int_equal(parse_resp(c, &r, 0), 1);
    assert_null(resp_header(&r, "Transfer-Encoding"));
    assert_null(resp_header(&r, "Content-Length"));
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_int_equal(r.blen, 10);
    resp_free(&r);
    cl_close(c, 0);
}

static void test_stream_short_aborts(void **state)
{
    struct client *c = cl_open();
    struct sp_h1_req *req;
    struct sp_err err;

    A.mode = APP_HOLD;
    cl_sends(c, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, 100, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "only ten b", 10), 0);
    pump(10);
    A.held = NULL;
    sp_h1_reply_end(req); /* 90 bytes short: reset */
    assert_true(wait_closed(c, 3000));
    assert_int_equal(A.gone_calls, 0);
    cl_close(c, 0);
    /* An answer whose header would inject a line is refused, never sent. */
    c = cl_open();
    cl_sends(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    {
        struct sp_h1_header bad = {"X", 1, "a\r\nInjected: 1", 14};
        assert_int_equal(sp_h1_reply_start(req, 200, NULL, &bad, 1, -1, &err), -1);
        A.held = NULL;
        sp_h1_reply(req, 200, NULL, &bad, 1, "x", 1);
    }
    assert_true(wait_closed(c, 3000));
    assert_null(memmem(c->buf, c->len, "Injected", 8));
    cl_close(c, 0);
}

static void test_backpressure(void **state)
{
    struct client *c = cl_open();
    struct sp_h1_req *req;
    struct sp_err err;
    static char chunk[256 * 1024];
    size_t sent = 0, got = 0;
    struct resp r;

    A.mode = APP_HOLD;
    memset(chunk, 'z', sizeof(chunk));
    cl_sends(c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, -1, &err), 0);
    sp_h1_req_on_drain(req, 65536, on_drain, NULL);
    /* The client reads nothing: output backs up in our queue. */
    while (sp_h1_req_unsent(req) <= 2 << 20 && sent < (64u << 20)) {
        assert_int_equal(sp_h1_reply_chunk(req, chunk, sizeof(chunk)), 0);
        sent += sizeof(chunk);
        pump(2);
    }
    assert_true(sp_h1_req_unsent(req) > 2 << 20);
    /* Until now the socket took some and the queue drained (each time
     * counted); from here it is full and nothing drains while unread. */
    A.drain_calls = 0;
    pump(50);
    assert_int_equal(A.drain_calls, 0);
    assert_true(sp_h1_req_unsent(req) > 2 << 20);
    /* The client reads: the queue drains, the owner hears it once. */
    while (A.drain_calls == 0) {
        pump_once();
        if (cl_recv(c)) {
            got += c->len;
            c->len = 0;
        }
    }
    assert_int_equal(A.drain_calls, 1);
    assert_true(sp_h1_req_unsent(req) <= 65536);
    A.held = NULL;
    sp_h1_reply_end(req);
    /* Read the rest (counting, keeping only a tail) up to the last chunk. */
    {
        int64_t end = tu_now_ms() + 10000;
        while (tu_now_ms() < end) {
            pump_once();
            if (!cl_recv(c) && c->len >= 5 && memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) == 0)
                break;
            if (c->len > c->cap / 2) {
                got += c->len - 8;
                memmove(c->buf, c->buf + c->len - 8, 8);
                c->len = 8;
            }
        }
        got += c->len;
    }
    /* Chunk framing adds a little; the body is all there. */
    assert_true(got >= sent);
    assert_true(got < sent + 4096 + sent / 1000);
    c->len = 0;
    A.mode = APP_ECHO;
    cl_sends(c, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(c, 0);
}

/* A client that stops reading: after write_timeout_ms without progress
 * the connection is closed and the owner told, once. */
static void test_write_timeout(void **state)
{
    struct sp_h1_limits lim;
    struct client *c;
    struct sp_h1_req *req;
    struct sp_err err;
    static char chunk[256 * 1024];
    const struct sockaddr_in *peer;
    socklen_t plen;
    int64_t t0;

    test_limits(&lim);
    lim.write_timeout_ms = 200;
    restart(&lim);
    A.mode = APP_HOLD;
    c = cl_open();
    cl_sends(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    peer = (const struct sockaddr_in *)sp_h1_req_peer(req, &plen);
    assert_int_equal(plen, sizeof(*peer));
    assert_int_equal(ntohl(peer->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, -1, &err), 0);
    while (sp_h1_req_unsent(req) < (4u << 20)) {
        assert_int_equal(sp_h1_reply_chunk(req, chunk, sizeof(chunk)), 0);
        pump(1);
    }
    t0 = tu_now_ms();
    while (!A.gone_calls && tu_now_ms() - t0 < 3000)
        pump(5);
    assert_int_equal(A.gone_calls, 1);
    assert_true(tu_now_ms() - t0 >= 150);
    assert_int_equal(sp_h1_reply_chunk(req, "x", 1), -1);
    A.held = NULL;
    sp_h1_reply_end(req);
    pump(10);
    assert_int_equal(A.gone_calls, 1);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
    cl_close(c, 0);
}

static void test_http10_keepalive(void **state)
{
    struct client *c = cl_open();
    struct resp r;

    cl_sends(c, "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(read_resp(c, &r), 0);
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    resp_free(&r);
    cl_sends(c, "GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect_echo(c, "M=GET T=/2 V=10 H=1 B=0", "");
    /* Without keep-alive: answered, then closed. */
    cl_sends(c, "GET /3 HTTP/1.0\r\n\r\n");
    assert_int_equal(read_resp(c, &r), 0);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    assert_true(wait_closed(c, 3000));
    cl_close(c, 0);
}

static void test_owner_error_closes(void **state)
{
    struct client *c = cl_open();
    struct sp_h1_req *req;
    struct sp_err err;
    struct sp_h1_header pa = {"Proxy-Authenticate", 18, "Basic realm=\"secretproxy\"", 25};
    struct resp r;

    A.mode = APP_HOLD;
    /* 407 keeps the connection... */
    cl_sends(c, "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
    req = wait_held();
    sp_err_set(&err, SP_E_PROXY_AUTH_REQUIRED, "Proxy authentication required");
    A.held = NULL;
    sp_h1_reply_error(req, "rid-1", &err, &pa, 1);
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 407);
    assert_string_equal(resp_header(&r, "Proxy-Authenticate"), "Basic realm=\"secretproxy\"");
    assert_string_equal(resp_header(&r, "Secretproxy-Request-Id"), "rid-1");
    assert_string_equal(resp_header(&r, "Secretproxy-Error"), "proxy_auth_required");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"proxy_auth_required\",\"message\":\"Proxy "
                                "authentication required\",\"request_id\":\"rid-1\"}}\n");
    assert_null(resp_header(&r, "Connection"));
    resp_free(&r);
    /* ... a 400 closes it. */
    cl_sends(c, "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
    req = wait_held();
    sp_err_set(&err, SP_E_BAD_REQUEST, "Malformed \"target\"");
    A.held = NULL;
    sp_h1_reply_error(req, NULL, &err, NULL, 0);
    expect_error(c, 400, "bad_request");
    cl_close(c, 0);
}

static void test_head_and_nobody(void **state)
{
    struct client *c = cl_open();
    struct resp r;
    struct sp_h1_req *req;

    cl_sends(c, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(read_resp_ex(c, &r, 1, 3000), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(resp_header(&r, "Content-Length"));
    resp_free(&r);
    A.mode = APP_HOLD;
    cl_sends(c, "GET /n HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    A.held = NULL;
    sp_h1_reply(req, 204, NULL, NULL, 0, "ignored", 7);
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 204);
    assert_null(resp_header(&r, "Content-Length"));
    resp_free(&r);
    A.mode = APP_ECHO;
    cl_sends(c, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(c, "M=GET T=/after V=11 H=1 B=0", "");
    cl_close(c, 0);
}

static void test_drain_and_free(void **state)
{
    struct client *idle = cl_open(), *busy = cl_open(), *c;
    struct sp_h1_req *req;
    struct resp r;

    A.mode = APP_HOLD;
    cl_sends(busy, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    req = wait_held();
    sp_h1_server_stop_accepting(A.srv);
    assert_true(wait_closed(idle, 3000));
    assert_int_equal(sp_h1_server_connections(A.srv), 1);
    /* New connections are refused by the kernel now. */
    {
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)A.port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), -1);
        close(fd);
    }
    A.held = NULL;
    sp_h1_reply(req, 200, NULL, NULL, 0, "bye", 3);
    assert_int_equal(read_resp(busy, &r), 0);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    assert_true(wait_closed(busy, 3000));
    cl_close(idle, 0);
    cl_close(busy, 0);
    /* Freeing the server while a request is held: gone once, then the
     * owner's finishing call after the free (teardown) frees it. */
    {
        struct sp_h1_limits lim;
        test_limits(&lim);
        restart(&lim);
    }
    c = cl_open();
    cl_sends(c, "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
    wait_held();
    sp_h1_server_free(A.srv);
    A.srv = NULL;
    assert_int_equal(A.gone_calls, 1);
    assert_true(sp_h1_req_gone(A.held));
    assert_true(wait_closed(c, 3000));
    cl_close(c, 0);
}

static void test_set_limits(void **state)
{
    struct sp_h1_limits lim;
    struct client *c = cl_open();

    test_limits(&lim);
    lim.max_body = 3;
    sp_h1_server_set_limits(A.srv, &lim);
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
}

/* Random splits of good requests, and random bytes: answers right, or a
 * refusal, never a crash or a leak (ASan). */
static void test_socket_fuzz(void **state)
{
    const char *reqs = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                       "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                       "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3;e\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                       "\r\nGET /4 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t n = strlen(reqs);

    srand(42);
    for (int it = 0; it < 60; it++) {
        struct client *c = cl_open();
        size_t at = 0;
        while (at < n) {
            size_t step = 1 + (size_t)rand() % (it % 3 == 0 ? 3 : 40);
            if (step > n - at)
                step = n - at;
            cl_send(c, reqs + at, step);
            at += step;
        }
        expect_echo(c, "M=GET T=/1 V=11 H=1 B=0", "");
        expect_echo(c, "M=POST T=/2 V=11 H=2 B=5", "hello");
        expect_echo(c, "M=POST T=/3 V=11 H=2 B=5", "abcde");
        expect_echo(c, "M=GET T=/4 V=11 H=1 B=0", "");
        cl_close(c, it % 2);
    }
    for (int it = 0; it < 200; it++) {
        struct client *c = cl_open();
        char junk[700];
        size_t k = (size_t)rand() % sizeof(junk);
        for (size_t i = 0; i < k; i++)
            junk[i] = (char)rand();
        if (it % 2) /* a valid start, garbage after */
            memcpy(junk, "POST / HTTP/1.1\r\nHost: h\r\n", k < 26 ? k : 26);
        cl_send(c, junk, k);
        pump(1);
        cl_close(c, it % 3 == 0);
    }
    pump(50);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

/* ---- streamed request bodies ---- */

#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int64_t end_ = tu_now_ms() + 5000;                                                         \
        while (!(cond) && tu_now_ms() < end_)                                                      \
            pump(1);                                                                               \
    } while (0)

/* Offer requests to on_stream (streamed if they carry X-Stream); autostart:
 * start delivery in on_request. After restart() too. */
static void stream_on(int autostart)
{
    sp_h1_server_on_stream(A.srv, on_stream, NULL);
    A.autostart = autostart;
    if (!A.sbody)
        A.sbody = malloc(SBODY_CAP);
    assert_non_null(A.sbody);
}

static void stream_reset(void)
{
    A.slen = 0;
    A.body_calls = A.body_last = A.pattern_bad = 0;
}

static char *pattern(size_t n)
{
    char *p = malloc(n);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i);
    return p;
}

/* Answer the held request 200 and read it: keep-alive unless want_close. */
static void answer_ok(struct client *c, int want_close)
{
    struct resp r;

    sp_h1_reply(A.held, 200, NULL, NULL, 0, "ok", 2);
    A.held = NULL;
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 200);
    if (want_close)
        assert_string_equal(resp_header(&r, "Connection"), "close");
    else
        assert_null(resp_header(&r, "Connection"));
    resp_free(&r);
}

/* Send what the socket takes within ms, pumping the server: bytes sent. */
static size_t cl_push(struct client *c, const char *p, size_t n, int ms)
{
    int64_t end = tu_now_ms() + ms;
    size_t sent = 0;

    while (sent < n && tu_now_ms() < end) {
        ssize_t k = send(c->fd, p + sent, n - sent, MSG_NOSIGNAL);
        if (k > 0)
            sent += (size_t)k;
        else if (k < 0 && errno != EAGAIN)
            break;
        else
            usleep(200);
        pump_once();
    }
    return sent;
}

static void test_stream_content_length(void **state)
{
    struct sp_h1_limits lim;
    struct client *c;
    size_t big = 3u << 20;
    char *body = pattern(big), head[256];

    test_limits(&lim);
    lim.max_body = 1000; /* for buffered bodies only */
    restart(&lim);
    stream_on(1);
    c = cl_open();
    /* Many small writes: in order, complete, last once. */
    cl_sends(c, "PUT /s HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 5000\r\n\r\n");
    wait_held();
    for (size_t at = 0; at < 5000; at += 100) {
        cl_send(c, body + at, 100);
        pump(1);
    }
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, 5000);
    assert_int_equal(A.body_last, 1);
    assert_int_equal(A.pattern_bad, 0);
    assert_true(A.body_calls > 10);
    answer_ok(c, 0);
    /* One big write, over max_body; then keep-alive on the same connection. */
    stream_reset();
    snprintf(head, sizeof(head),
             "PUT /b HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: %zu\r\n\r\n", big);
    cl_sends(c, head);
    cl_send(c, body, big);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, big);
    assert_int_equal(A.body_last, 1);
    assert_int_equal(A.pattern_bad, 0);
    answer_ok(c, 0);
    cl_sends(c, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(c, "M=GET T=/after V=11 H=1 B=0", "");
    assert_int_equal(A.stream_asked, 2); /* never for a request without a body */
    cl_close(c, 0);
    free(body);
}

static void test_stream_chunked(void **state)
{
    const char *head =
        "POST /c HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *body = "5;name=value\r\nhello\r\n1\r\n \r\n0000000005\r\nworld\r\n0\r\n"
                       "X-Trailer: 1\r\nY: 2\r\n\r\n";
    struct client *c;

    stream_on(1);
    c = cl_open();
    /* In a few writes. */
    cl_sends(c, head);
    cl_send(c, body, 10);
    pump(5);
    cl_sends(c, body + 10);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, 11);
    assert_memory_equal(A.sbody, "hello world", 11);
    answer_ok(c, 0);
    /* One byte at a time. */
    stream_reset();
    cl_sends(c, head);
    for (const char *p = body; *p; p++)
        cl_send(c, p, 1);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, 11);
    assert_memory_equal(A.sbody, "hello world", 11);
    assert_int_equal(A.body_last, 1);
    answer_ok(c, 0);
    /* A pipelined request waits for the body and the answer to end. */
    stream_reset();
    cl_sends(c, "POST /c HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_FOR(A.body_last);
    pump(20);
    assert_int_equal(A.nreq, 3);
    assert_memory_equal(A.sbody, "abc", 3);
    answer_ok(c, 0);
    expect_echo(c, "M=GET T=/next V=11 H=1 B=0", "");
    cl_close(c, 0);
}

/* The answer is still written while the body is paused. */
static void answer_while_paused(struct client *c, struct sp_h1_req *req)
{
    struct sp_err err;

    assert_int_equal(sp_h1_reply_start(req, 200, NULL, NULL, 0, -1, &err), 0);
    assert_int_equal(sp_h1_reply_chunk(req, "early", 5), 0);
    pump(20);
    while (cl_recv(c))
        ;
    assert_non_null(memmem(c->buf, c->len, "early", 5));
    c->len = 0;
}

static void test_stream_pause_resume(void **state)
{
    size_t total = 16u << 20, sent, k;
    char *body = pattern(total), head[256];
    struct sp_h1_req *req;
    struct client *c;
    int small = 65536;

    stream_on(0);
    c = cl_open();
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    snprintf(head, sizeof(head),
             "PUT /p HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: %zu\r\n\r\n", total);
    cl_sends(c, head);
    req = wait_held();
    /* Paused from the start: nothing delivered, the client's sends block. */
    sp_h1_req_body_pause(req, 1);
    sp_h1_req_body_start(req, on_body, NULL);
    sent = cl_push(c, body, total, 300);
    assert_true(sent < total);
    assert_int_equal(A.slen, 0);
    sp_h1_req_body_pause(req, 0);
    assert_int_equal(A.slen, 0); /* never from inside the call */
    sent += cl_push(c, body + sent, total - sent, 20000);
    assert_int_equal(sent, total);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, total);
    assert_int_equal(A.pattern_bad, 0);
    answer_ok(c, 0);
    /* Paused from the body callback mid-way: reading stops there. */
    stream_reset();
    A.pause_at = 1u << 20;
    cl_sends(c, head);
    req = wait_held();
    sp_h1_req_body_start(req, on_body, NULL);
    sent = cl_push(c, body, total, 500);
    k = A.slen;
    assert_true(k >= 1u << 20 && k < total);
    pump(200);
    assert_int_equal(A.slen, k);
    assert_true(sent < total);
    answer_while_paused(c, req);
    sp_h1_req_body_pause(req, 0);
    sent += cl_push(c, body + sent, total - sent, 20000);
    assert_int_equal(sent, total);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, total);
    assert_int_equal(A.pattern_bad, 0);
    /* Its head went out before the body ended: Connection: close. */
    sp_h1_reply_end(req);
    A.held = NULL;
    assert_true(wait_closed(c, 3000));
    assert_int_equal(A.gone_calls, 0);
    cl_close(c, 0);
    free(body);
}

static void test_stream_expect_continue(void **state)
{
    struct sp_h1_req *req;
    struct client *c;
    struct resp r;

    stream_on(0);
    c = cl_open();
    cl_sends(c, "POST /e HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nExpect: 100-continue\r\n"
                "Content-Length: 4\r\n\r\n");
    req = wait_held();
    pump(100);
    cl_recv(c);
    assert_int_equal(c->len, 0); /* no 100 before the owner starts the body */
    sp_h1_req_body_start(req, on_body, NULL);
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 100);
    resp_free(&r);
    cl_sends(c, "data");
    WAIT_FOR(A.body_last);
    assert_memory_equal(A.sbody, "data", 4);
    answer_ok(c, 0);
    cl_close(c, 0);
}

static void test_stream_refused_before_start(void **state)
{
    struct sp_h1_header h = {"Proxy-Authenticate", 18, "Basic realm=\"p\"", 15};
    static char junk[100000];
    struct sp_err err;
    struct client *c;
    struct resp r;

    stream_on(0);
    /* Expecting 100: the refusal instead, never the invitation, then close. */
    c = cl_open();
    cl_sends(c, "PUT /r HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nExpect: 100-continue\r\n"
                "Content-Length: 100000\r\n\r\n");
    wait_held();
    sp_h1_reply(A.held, 407, NULL, &h, 1, "auth", 4);
    A.held = NULL;
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 407);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    assert_true(wait_closed(c, 3000));
    cl_close(c, 0);
    /* The body sent anyway: dropped unread, the answer arrives, then close. */
    c = cl_open();
    cl_sends(c, "PUT /r HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 100000\r\n\r\n");
    wait_held();
    memset(junk, 'j', sizeof(junk));
    cl_send(c, junk, sizeof(junk));
    sp_err_set(&err, SP_E_PROXY_AUTH_REQUIRED, "Proxy authentication required");
    sp_h1_reply_error(A.held, NULL, &err, &h, 1);
    A.held = NULL;
    expect_error(c, 407, "proxy_auth_required");
    cl_close(c, 0);
    assert_int_equal(A.body_calls, 0);
    assert_int_equal(A.gone_calls, 0);
    pump(20);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

static void test_stream_client_gone(void **state)
{
    struct sp_err err;
    struct client *c;

    stream_on(1);
    for (int rst = 0; rst < 2; rst++) {
        stream_reset();
        c = cl_open();
        cl_sends(c, rst ? "POST / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n64\r\n0123456789"
                        : "POST / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 100\r\n"
                          "\r\n0123456789");
        WAIT_FOR(A.slen == 10);
        cl_close(c, rst);
        WAIT_FOR(A.gone_calls == rst + 1);
        pump(20);
        assert_int_equal(A.gone_calls, rst + 1);
        assert_int_equal(A.body_last, 0);
        assert_true(sp_h1_req_gone(A.held));
        assert_int_equal(sp_h1_reply_start(A.held, 200, NULL, NULL, 0, -1, &err), -1);
        sp_h1_reply_end(A.held);
        A.held = NULL;
        pump(10);
        assert_int_equal(sp_h1_server_connections(A.srv), 0);
    }
}

static void test_stream_bad_chunk(void **state)
{
    const char *head = "POST / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    struct sp_err err;
    struct client *c;
    struct resp r;

    stream_on(1);
    /* No answer started: our 400, the owner told once; its abort does not
     * cut that answer short. */
    c = cl_open();
    cl_sends(c, head);
    WAIT_FOR(A.slen == 5);
    cl_sends(c, "zz\r\n");
    WAIT_FOR(A.gone_calls == 1);
    assert_true(sp_h1_req_gone(A.held));
    assert_int_equal(sp_h1_reply_start(A.held, 200, NULL, NULL, 0, -1, &err), -1);
    sp_h1_reply_abort(A.held);
    A.held = NULL;
    expect_error(c, 400, "bad_request");
    cl_close(c, 0);
    assert_int_equal(A.body_last, 0);
    assert_int_equal(A.last_reject_status, 400);
    /* The owner's answer started: no answer of ours, only the close. */
    stream_reset();
    c = cl_open();
    cl_sends(c, head);
    WAIT_FOR(A.slen == 5);
    assert_int_equal(sp_h1_reply_start(A.held, 200, NULL, NULL, 0, -1, &err), 0);
    assert_int_equal(read_resp_ex(c, &r, 0, 300), -1); /* head only: chunked, unfinished */
    cl_sends(c, "5\r\nhello!!\r\n");
    WAIT_FOR(A.gone_calls == 2);
    assert_int_equal(A.body_last, 0);
    assert_int_equal(A.slen, 10);
    sp_h1_reply_end(A.held);
    A.held = NULL;
    assert_true(wait_closed(c, 3000));
    cl_close(c, 0);
    pump(10);
    assert_int_equal(sp_h1_server_connections(A.srv), 0);
}

static void test_stream_limit(void **state)
{
    struct sp_h1_limits lim;
    struct client *c;
    char buf[1100];
    int n;

    test_limits(&lim);
    lim.max_body = 10;
    lim.max_stream_body = 1000;
    restart(&lim);
    stream_on(1);
    memset(buf, 's', sizeof(buf));
    /* At the limit: fine. */
    c = cl_open();
    cl_sends(c, "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 1000\r\n\r\n");
    cl_send(c, buf, 1000);
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, 1000);
    answer_ok(c, 0);
    /* A Content-Length over it: refused before the owner sees the request. */
    cl_sends(c, "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 1001\r\n\r\n");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
    assert_int_equal(A.nreq, 1);
    /* Chunks that pass it: 413 mid-stream, the owner told once. */
    stream_reset();
    c = cl_open();
    n = snprintf(buf, sizeof(buf),
                 "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    cl_send(c, buf, (size_t)n);
    for (int i = 0; i < 2; i++) {
        memset(buf, 'x', 500);
        cl_sends(c, "1f4\r\n");
        cl_send(c, buf, 500);
        cl_sends(c, "\r\n");
    }
    cl_sends(c, "1\r\n");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
    assert_int_equal(A.slen, 1000);
    assert_int_equal(A.gone_calls, 1);
    assert_int_equal(A.body_last, 0);
    sp_h1_reply_end(A.held);
    A.held = NULL;
}

static void test_stream_timeout(void **state)
{
    struct sp_h1_limits lim;
    struct sp_h1_req *req;
    struct client *c;

    test_limits(&lim);
    lim.read_timeout_ms = 200;
    restart(&lim);
    stream_on(0);
    c = cl_open();
    cl_sends(c, "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 10\r\n\r\n");
    req = wait_held();
    pump(300); /* not started: the owner's time, no timeout */
    sp_h1_req_body_start(req, on_body, NULL);
    /* Inactivity, not a deadline: 450 ms in all, never 200 ms idle. */
    cl_sends(c, "123");
    pump(150);
    cl_sends(c, "456");
    pump(150);
    cl_sends(c, "7");
    pump(150);
    /* Paused for longer than the timeout: the client is not to blame. */
    sp_h1_req_body_pause(req, 1);
    pump(500);
    assert_int_equal(A.gone_calls, 0);
    sp_h1_req_body_pause(req, 0);
    pump(100);
    cl_sends(c, "890");
    WAIT_FOR(A.body_last);
    assert_int_equal(A.slen, 10);
    answer_ok(c, 0);
    /* A body that stops: 408, the owner told once. */
    stream_reset();
    A.autostart = 1;
    cl_sends(c, "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 10\r\n\r\n12345");
    expect_error(c, 408, "bad_request");
    cl_close(c, 0);
    assert_int_equal(A.slen, 5);
    assert_int_equal(A.gone_calls, 1);
    assert_int_equal(A.body_last, 0);
    sp_h1_reply_end(A.held);
    A.held = NULL;
}

static void test_stream_early_answer(void **state)
{
    static char more[50000];
    struct client *c;
    struct resp r;

    stream_on(1);
    c = cl_open();
    cl_sends(c, "PUT / HTTP/1.1\r\nHost: h\r\nX-Stream: 1\r\nContent-Length: 100000\r\n\r\n"
                "0123456789");
    WAIT_FOR(A.slen == 10);
    sp_h1_reply(A.held, 403, NULL, NULL, 0, "no", 2);
    A.held = NULL;
    memset(more, 'm', sizeof(more));
    cl_send(c, more, sizeof(more)); /* read and dropped, no body call */
    assert_int_equal(read_resp(c, &r), 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    assert_true(wait_closed(c, 3000));
    assert_int_equal(A.slen, 10);
    assert_int_equal(A.body_last, 0);
    assert_int_equal(A.gone_calls, 0);
    cl_close(c, 0);
}

static void test_stream_declined(void **state)
{
    struct client *c;

    stream_on(1);
    c = cl_open();
    cl_sends(c, "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                "POST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\n\r\n"
                "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_echo(c, "M=POST T=/1 V=11 H=2 B=5", "hello");
    expect_echo(c, "M=POST T=/2 V=11 H=2 B=3", "abc");
    expect_echo(c, "M=GET T=/3 V=11 H=1 B=0", "");
    assert_int_equal(A.stream_asked, 2);
    assert_int_equal(A.body_calls, 0);
    /* Buffered bodies keep their own limit. */
    cl_sends(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20000000\r\n\r\n");
    expect_error(c, 413, "payload_too_large");
    cl_close(c, 0);
}

static void test_error_format(void **state)
{
    struct sp_http_error e;
    struct sp_err err;

    sp_err_set(&err, SP_E_SECRET_NOT_FOUND, "Secret 'A\"B' not found");
    assert_int_equal(sp_http_error_build(&e, &err, 0, "R1"), 0);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.reason, "Not Found");
    assert_int_equal(e.nfields, 4);
    assert_string_equal(e.fields[2].name, "Secretproxy-Error");
    assert_string_equal(e.fields[2].value, "secret_not_found");
    assert_string_equal(e.body.data, "{\"error\":{\"code\":\"secret_not_found\",\"message\":"
                                     "\"Secret 'A\\\"B' not found\",\"request_id\":\"R1\"}}\n");
    sp_http_error_free(&e);
    assert_int_equal(sp_http_error_build(&e, &err, 408, NULL), 0);
    assert_int_equal(e.status, 408);
    assert_int_equal(e.nfields, 3);
    sp_http_error_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_direct),
        cmocka_unit_test(test_parser_fuzz),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test_setup_teardown(test_simple_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_20, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_length_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_while_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_unknown_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_short_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_error_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_and_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_bad_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_early_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_declined, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
