/*
 * test_h1.c - the proxy listener's HTTP/1.1 server (proxy/h1.h) over real
 * sockets on 127.0.0.1: the server runs on an event base driven by this
 * thread between the client's non-blocking writes and reads (fixture and
 * client in h1_testutil.h). Covers the parser directly, keep-alive,
 * pipelining, chunked and Content-Length bodies in pieces, 100-continue,
 * every refusal (status, Secretproxy-Error, JSON body, close), the limits at
 * and over their boundary, timeouts, clients that vanish, streamed answers,
 * back-pressure, draining, random input and the error format. Streamed
 * request bodies are in test_h1_stream.c.
 */
#include "h1_testutil.h"

#include "proxy/h1_int.h"
#include "proxy/http_err.h"

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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
