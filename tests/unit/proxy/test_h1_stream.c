/*
 * test_h1_stream.c - streamed request bodies in the proxy listener's HTTP/1.1
 * server (proxy/h1.h: sp_h1_server_on_stream, sp_h1_req_body_start,
 * sp_h1_req_body_pause) over real sockets on 127.0.0.1, with the fixture and
 * client of h1_testutil.h: delivery in order by Content-Length and chunked,
 * pause and resume, 100-continue, refusals before the start, clients that
 * vanish, bad chunks, the stream limit, timeouts, early answers and the
 * close rules, and requests the owner declines to stream.
 */
#include "h1_testutil.h"

/* ---- streamed request bodies ---- */

static int on_stream(const struct sp_h1_req *req, void *arg)
{
    A.stream_asked++;
    return sp_h1_req_header(req, "X-Stream") != NULL;
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
