/*
 * test_upstream.c - the upstream client (proxy/upstream.h) against a real
 * HTTP and HTTPS server, tests/e2e/upstream_server.py, started as a child:
 * exact request framing and headers, bodies buffered and streamed, TLS with
 * and without the extra CA, pooling, concurrency, timeouts, network
 * failures, cancel, pause, the SSRF guard, reloads, and error messages that
 * never carry a URL path or query (every URL here holds "CANARY" there).
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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "proxy/upstream.h"
#include "proxy/upstream_int.h"
#include "testutil.h"

#define MIB (1024 * 1024)

/* ---- the test upstream ---- */

static struct server {
    pid_t pid;
    int in_fd; /* its stdin: closing it stops the server */
    int http_port, https_port;
    char ca_file[512];
    char record[256];
} srv = {.pid = -1, .in_fd = -1};

static int read_line(int fd, char *buf, size_t size, int ms)
{
    size_t len = 0;
    int64_t end = tu_now_ms() + ms;

    while (len + 1 < size && tu_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(fd, buf + len, 1);
        if (n <= 0)
            return -1;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return 0;
        }
        len++;
    }
    return -1;
}

static int server_start(void)
{
    const char *src = getenv("SP_SOURCE_DIR");
    char script[1024], line[4096];
    int out[2], in[2];
    json_t *j;

    if (!src || access("/usr/bin/python3", X_OK) != 0)
        return -1;
    snprintf(script, sizeof(script), "%s/tests/e2e/upstream_server.py", src);
    snprintf(srv.record, sizeof(srv.record), "/tmp/sp-upstream-rec.%d.jsonl", (int)getpid());
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
        return -1;
    srv.pid = fork();
    if (srv.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/usr/bin/python3", "python3", script, "--record", srv.record, "--exit-on-stdin-eof",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    srv.in_fd = in[1];
    if (srv.pid < 0 || read_line(out[0], line, sizeof(line), 30000) < 0) {
        close(out[0]);
        return -1;
    }
    close(out[0]);
    j = json_loads(line, 0, NULL);
    if (!j)
        return -1;
    srv.http_port = (int)json_integer_value(json_object_get(j, "http_port"));
    srv.https_port = (int)json_integer_value(json_object_get(j, "https_port"));
    snprintf(srv.ca_file, sizeof(srv.ca_file), "%s",
             json_string_value(json_object_get(j, "ca_file")));
    json_decref(j);
    return srv.http_port > 0 && srv.https_port > 0 ? 0 : -1;
}

static void server_stop(void)
{
    if (srv.in_fd >= 0)
        close(srv.in_fd);
    if (srv.pid > 0) {
        kill(srv.pid, SIGTERM);
        waitpid(srv.pid, NULL, 0);
    }
    unlink(srv.record);
    srv.pid = -1;
    srv.in_fd = -1;
}

/* ---- one client per test ---- */

struct env {
    struct event_base *base;
    struct sp_upstream *u;
    struct sp_upstream_opts o;
};

static void env_opts(struct env *e, int allow_private, const char *ca_file)
{
    memset(&e->o, 0, sizeof(e->o));
    e->o.connect_timeout_ms = 3000;
    e->o.timeout_ms = 20000;
    e->o.idle_timeout_ms = 60000;
    e->o.allow_private = allow_private;
    e->o.ca_file = ca_file;
}

static void env_start(struct env *e)
{
    struct sp_err err;

    sp_err_clear(&err);
    e->base = event_base_new();
    assert_non_null(e->base);
    e->u = sp_upstream_new(e->base, &e->o, &err);
    if (!e->u)
        fail_msg("sp_upstream_new: %s", err.msg);
}

static void env_init(struct env *e, int allow_private, const char *ca_file)
{
    env_opts(e, allow_private, ca_file);
    env_start(e);
}

static void env_free(struct env *e)
{
    sp_upstream_free(e->u);
    event_base_free(e->base);
}

/* ---- one exchange ---- */

struct res {
    struct env *e;
    struct sp_upstream_req *req;
    int head_calls, body_calls, done_calls, done;
    int status;
    int64_t content_length;
    char reason[64];
    struct sp_buf headers; /* "name: value\n" each */
    size_t n_headers;
    struct sp_buf body;
    int failed, head_sent;
    struct sp_err err;
    /* behaviour */
    int abort_on_head, cancel_on_body, pause_every;
    size_t since_pause;
    int paused;
    /* streamed upload */
    const unsigned char *up;
    size_t up_len, up_off, up_chunk;
    int up_wait; /* answer WAIT until up_ready */
    int up_ready;
    /* a follow-up request started from a callback */
    struct res *next;
    const char *next_url;
    int start_next_in_head;
};

static void res_init(struct res *r, struct env *e)
{
    memset(r, 0, sizeof(*r));
    r->e = e;
    sp_buf_init(&r->headers, 4 * MIB, 0);
    sp_buf_init(&r->body, 64 * MIB, 0);
    r->content_length = -2;
}

static void res_free(struct res *r)
{
    sp_buf_free(&r->headers);
    sp_buf_free(&r->body);
}

static struct sp_upstream_req *start_req(struct env *e, struct res *r, const char *method,
                                         const char *url, const struct sp_upstream_header *h,
                                         size_t nh, enum sp_upstream_body_kind kind,
                                         const void *body, size_t len, int64_t stream_size);

static int t_on_head(void *arg, const struct sp_upstream_head *h)
{
    struct res *r = arg;
    struct sp_err err;

    r->head_calls++;
    r->status = h->status;
    r->content_length = h->content_length;
    snprintf(r->reason, sizeof(r->reason), "%.*s", (int)h->reason_len, h->reason);
    r->n_headers = h->n_headers;
    for (size_t i = 0; i < h->n_headers; i++)
        assert_int_equal(sp_buf_printf(&r->headers, &err, "%.*s: %.*s\n",
                                       (int)h->headers[i].name_len, h->headers[i].name,
                                       (int)h->headers[i].value_len, h->headers[i].value),
                         0);
    if (r->start_next_in_head && r->next)
        start_req(r->e, r->next, "GET", r->next_url, NULL, 0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    return r->abort_on_head ? -1 : 0;
}

static int t_on_body(void *arg, const char *p, size_t n)
{
    struct res *r = arg;
    struct sp_err err;

    assert_false(r->paused); /* nothing while paused */
    r->body_calls++;
    assert_int_equal(sp_buf_add(&r->body, p, n, &err), 0);
    if (r->cancel_on_body) {
        sp_upstream_cancel(r->req);
        r->req = NULL;
        r->done = 1;
    } else if (r->pause_every) {
        r->since_pause += n;
        if (r->since_pause >= (size_t)r->pause_every) {
            r->since_pause = 0;
            r->paused = 1;
            sp_upstream_pause(r->req, 1);
        }
    }
    return 0;
}

static void t_on_done(void *arg, const struct sp_err *err, int head_sent)
{
    struct res *r = arg;

    r->done_calls++;
    r->done = 1;
    r->head_sent = head_sent;
    r->req = NULL;
    if (err) {
        r->failed = 1;
        r->err = *err;
    }
    if (!r->start_next_in_head && r->next)
        start_req(r->e, r->next, "GET", r->next_url, NULL, 0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
}

static ssize_t t_on_read(void *arg, char *buf, size_t len)
{
    struct res *r = arg;
    size_t n = r->up_len - r->up_off;

    if (r->up_wait && !r->up_ready)
        return SP_UPSTREAM_READ_WAIT;
    if (n > len)
        n = len;
    if (r->up_chunk && n > r->up_chunk)
        n = r->up_chunk;
    memcpy(buf, r->up + r->up_off, n);
    r->up_off += n;
    return (ssize_t)n;
}

static const struct sp_upstream_callbacks t_cb = {t_on_head, t_on_body, t_on_done};

static struct sp_upstream_req *start_req(struct env *e, struct res *r, const char *method,
                                         const char *url, const struct sp_upstream_header *h,
                                         size_t nh, enum sp_upstream_body_kind kind,
                                         const void *body, size_t len, int64_t stream_size)
{
    struct sp_upstream_request rq;
    struct sp_err err;

    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.method_len = strlen(method);
    rq.url = url;
    rq.url_len = strlen(url);
    rq.headers = h;
    rq.n_headers = nh;
    rq.body_kind = kind;
    rq.body = body;
    rq.body_len = len;
    if (kind == SP_UPSTREAM_BODY_STREAM) {
        r->up = body;
        r->up_len = len;
        rq.body_size = stream_size;
        rq.on_read = t_on_read;
    }
    sp_err_clear(&err);
    r->req = sp_upstream_start(e->u, &rq, &t_cb, r, &err);
    if (!r->req)
        fail_msg("sp_upstream_start(%s): %s", method, err.msg);
    return r->req;
}

static void run(struct env *e, struct res *r, int ms)
{
    if (!tu_run_until(e->base, &r->done, ms))
        fail_msg("no answer within %d ms", ms);
}

/* GET url, run to the end; r is initialised here. */
static void get(struct env *e, struct res *r, const char *url)
{
    res_init(r, e);
    start_req(e, r, "GET", url, NULL, 0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(e, r, 30000);
}

static void expect_error(const struct res *r, enum sp_err_code code, const char *host)
{
    assert_true(r->done);
    assert_int_equal(r->done_calls, 1);
    if (!r->failed)
        fail_msg("expected %s, got success (status %d)", sp_err_wire(code), r->status);
    if (r->err.code != code)
        fail_msg("expected %s, got %s: %s", sp_err_wire(code), sp_err_wire(r->err.code),
                 r->err.msg);
    if (getenv("SP_TEST_VERBOSE"))
        fprintf(stderr, "# %s: %s\n", sp_err_wire(r->err.code), r->err.msg);
    assert_null(strstr(r->err.msg, "CANARY"));
    assert_null(strstr(r->err.msg, "/"));
    if (host && !strstr(r->err.msg, host))
        fail_msg("message '%s' does not name host '%s'", r->err.msg, host);
}

static void expect_ok(const struct res *r, int status)
{
    assert_true(r->done);
    assert_int_equal(r->done_calls, 1);
    if (r->failed)
        fail_msg("failed: %s: %s", sp_err_wire(r->err.code), r->err.msg);
    assert_int_equal(r->head_calls, 1);
    assert_true(r->head_sent);
    assert_int_equal(r->status, status);
}

static json_t *echo_json(const struct res *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);

    if (!j)
        fail_msg("echo body is not JSON: %s", jerr.text);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    assert_non_null(s);
    return s;
}

/* The headers the upstream received, as "Name: value" lines, in order. */
static void expect_headers(json_t *j, const char *const *want)
{
    json_t *hs = json_object_get(j, "headers");
    size_t n = 0;

    for (; want[n]; n++) {
        json_t *h = json_array_get(hs, n);
        char line[512];
        if (!h)
            fail_msg("upstream got %zu headers, expected '%s' next", n, want[n]);
        snprintf(line, sizeof(line), "%s: %s", json_string_value(json_array_get(h, 0)),
                 json_string_value(json_array_get(h, 1)));
        if (strcmp(line, want[n]) != 0)
            fail_msg("header %zu: got '%s', expected '%s'", n, line, want[n]);
    }
    if (json_array_size(hs) != n)
        fail_msg("upstream got %zu headers, expected %zu", json_array_size(hs), n);
}

static const char *jheader(json_t *j, const char *name)
{
    json_t *hs = json_object_get(j, "headers");
    for (size_t i = 0; i < json_array_size(hs); i++) {
        json_t *h = json_array_get(hs, i);
        if (strcasecmp(json_string_value(json_array_get(h, 0)), name) == 0)
            return json_string_value(json_array_get(h, 1));
    }
    return NULL;
}

static unsigned char *echo_body(json_t *j, size_t *len)
{
    const char *b64 = jstr(j, "body_base64");
    unsigned char *out = malloc(sp_base64_dec_max(strlen(b64)) + 1);

    assert_non_null(out);
    assert_int_equal(sp_base64_decode(out, len, b64, strlen(b64)), 0);
    return out;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 31 + seed) ^ (i >> 8));
}

static char *url(const char *fmt, ...) SP_PRINTF(1, 2);
static char *url(const char *fmt, ...)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b, sizeof(bufs[0]), fmt, ap);
    va_end(ap);
    return b;
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* ---- tests ---- */

static void test_get_sends_exactly_the_given_headers(void **state)
{
    struct sp_upstream_header h[] = {H("Host", "api.example.test"),
                                     H("X-One", "1"),
                                     H("X-Empty", ""),
                                     H("X-Dup", "a"),
                                     H("x-dup", "b  b"),
                                     H("Authorization", "Bearer CANARY"),
                                     H("Content-Length", "99"),
                                     H("Transfer-Encoding", "chunked")};
    const char *const want[] = {
        "Host: api.example.test",       "X-One: 1", "X-Empty: ", "X-Dup: a", "x-dup: b  b",
        "Authorization: Bearer CANARY", NULL};
    struct env e;
    struct res r;
    json_t *j;

    env_init(&e, 1, NULL);
    res_init(&r, &e);
    start_req(&e, &r, "GET",
              url("http://127.0.0.1:%d/echo/a/../b/./c%%2e?q=CANARY%%41&x=/../y&e=", srv.http_port),
              h, SP_ARRAY_LEN(h), SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &r, 10000);
    expect_ok(&r, 200);
    assert_string_equal(r.reason, "OK");
    assert_int_equal(r.content_length, (int64_t)r.body.len);
    assert_non_null(strstr(r.headers.data, "Content-Type: application/json\n"));
    j = echo_json(&r);
    assert_string_equal(jstr(j, "method"), "GET");
    assert_string_equal(jstr(j, "target"), "/echo/a/../b/./c%2e?q=CANARY%41&x=/../y&e=");
    expect_headers(j, want); /* no User-Agent, Accept, Expect, Content-Length */
    json_decref(j);
    res_free(&r);
    env_free(&e);
}

static void test_host_comes_from_the_url_when_not_given(void **state)
{
    struct env e;
    struct res r;
    json_t *j;
    char host[64];
    const char *const want[] = {host, NULL};

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d", srv.http_port);
    j = echo_json(&r);
    expect_headers(j, want);
    json_decref(j);
    res_free(&r);
    env_free(&e);
}

enum mode { BUFFERED, STREAM_SIZED, STREAM_CHUNKED };

static void one_body(struct env *e, const char *method, size_t size, enum mode m,
                     const unsigned char *data)
{
    struct sp_upstream_header h[] = {H("X-Test", "body")};
    struct res r;
    json_t *j;
    unsigned char *got;
    size_t got_len;
    const char *cl, *te;

    res_init(&r, e);
    r.up_chunk = 7777; /* several on_read calls */
    if (m == BUFFERED)
        start_req(e, &r, method, url("http://127.0.0.1:%d/echo", srv.http_port), h, 1,
                  SP_UPSTREAM_BODY_BUFFER, data, size, 0);
    else
        start_req(e, &r, method, url("http://127.0.0.1:%d/echo", srv.http_port), h, 1,
                  SP_UPSTREAM_BODY_STREAM, data, size, m == STREAM_SIZED ? (int64_t)size : -1);
    run(e, &r, 60000);
    expect_ok(&r, 200);
    j = echo_json(&r);
    assert_string_equal(jstr(j, "method"), method);
    got = echo_body(j, &got_len);
    if (got_len != size || memcmp(got, data, size) != 0)
        fail_msg("%s %zu bytes mode %d: upstream got %zu bytes", method, size, m, got_len);
    free(got);
    cl = jheader(j, "Content-Length");
    te = jheader(j, "Transfer-Encoding");
    if (m == STREAM_CHUNKED) {
        assert_null(cl);
        assert_non_null(te);
        assert_string_equal(te, "chunked");
    } else {
        assert_null(te);
        assert_non_null(cl);
        assert_int_equal(strtoull(cl, NULL, 10), size);
    }
    assert_null(jheader(j, "Expect"));
    assert_null(jheader(j, "Content-Type"));
    assert_null(jheader(j, "Accept"));
    assert_null(jheader(j, "User-Agent"));
    json_decref(j);
    res_free(&r);
}

static void test_bodies_buffered_and_streamed(void **state)
{
    static const char *const methods[] = {"POST", "PUT", "GET"};
    static const size_t sizes[] = {0, 1, 64 * 1024, 5 * MIB};
    unsigned char *data = malloc(5 * MIB);
    struct env e;

    assert_non_null(data);
    fill(data, 5 * MIB, 7);
    env_init(&e, 1, NULL);
    for (size_t mi = 0; mi < SP_ARRAY_LEN(methods); mi++)
        for (size_t si = 0; si < SP_ARRAY_LEN(sizes); si++)
            for (int m = BUFFERED; m <= STREAM_CHUNKED; m++)
                one_body(&e, methods[mi], sizes[si], (enum mode)m, data);
    env_free(&e);
    free(data);
}

static void test_streamed_body_waits_for_data(void **state)
{
    unsigned char data[10000];
    struct env e;
    struct res r;
    json_t *j;
    unsigned char *got;
    size_t got_len;

    fill(data, sizeof(data), 3);
    env_init(&e, 1, NULL);
    res_init(&r, &e);
    r.up_wait = 1;
    start_req(&e, &r, "POST", url("http://127.0.0.1:%d/echo", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_STREAM, data, sizeof(data), -1);
    tu_run_for(e.base, 200);
    assert_false(r.done);
    r.up_ready = 1;
    sp_upstream_resume_upload(r.req);
    run(&e, &r, 10000);
    expect_ok(&r, 200);
    j = echo_json(&r);
    got = echo_body(j, &got_len);
    assert_int_equal(got_len, sizeof(data));
    assert_memory_equal(got, data, sizeof(data));
    free(got);
    json_decref(j);
    res_free(&r);
    env_free(&e);
}

static void test_https_with_the_extra_ca(void **state)
{
    struct env e;
    struct res r;
    json_t *j;

    env_init(&e, 1, srv.ca_file);
    get(&e, &r, url("https://localhost:%d/echo?CANARY", srv.https_port));
    expect_ok(&r, 200);
    j = echo_json(&r);
    assert_true(json_is_true(json_object_get(j, "tls")));
    json_decref(j);
    res_free(&r);
    get(&e, &r, url("https://127.0.0.1:%d/echo", srv.https_port));
    expect_ok(&r, 200);
    res_free(&r);
    /* The system bundle is still trusted: only the test CA was added. */
    assert_non_null(e.u->ca);
    assert_true(e.u->ca->len > 10000);
    assert_true(e.u->ca->fd >= 0); /* handed over as a cacheable file here */
    /* Where memfd or /proc is missing, the same bundle goes as a blob. */
    close(e.u->ca->fd);
    e.u->ca->fd = -1;
    get(&e, &r, url("https://localhost:%d/echo", srv.https_port));
    expect_ok(&r, 200);
    res_free(&r);
    env_free(&e);
}

static void test_https_without_the_ca_fails_naming_the_host(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("https://localhost:%d/echo/CANARY?k=CANARY", srv.https_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "localhost");
    assert_false(r.head_sent);
    res_free(&r);
    env_free(&e);
}

static void test_tls_checks_the_host_name(void **state)
{
    struct env e;
    struct res r;

    /* The certificate names 127.0.0.1, ::1 and localhost; the IPv4-mapped
     * address reaches the same listener under a name it does not hold. */
    env_init(&e, 1, srv.ca_file);
    get(&e, &r, url("https://[::ffff:127.0.0.1]:%d/echo?CANARY", srv.https_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "::ffff:127.0.0.1");
    res_free(&r);
    env_free(&e);
}

static void test_environment_proxy_is_ignored(void **state)
{
    static const char *const vars[] = {"http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                       "all_proxy"};
    struct env e;
    struct res r;

    for (size_t i = 0; i < SP_ARRAY_LEN(vars); i++)
        setenv(vars[i], "http://127.0.0.1:9", 1);
    env_init(&e, 1, srv.ca_file);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    res_free(&r);
    get(&e, &r, url("https://localhost:%d/echo", srv.https_port));
    expect_ok(&r, 200);
    res_free(&r);
    env_free(&e);
    for (size_t i = 0; i < SP_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
}

static long conn_id_of(struct env *e, int port)
{
    struct res r;
    json_t *j;
    long id;

    get(e, &r, url("http://127.0.0.1:%d/echo", port));
    expect_ok(&r, 200);
    j = echo_json(&r);
    id = (long)json_integer_value(json_object_get(j, "conn_id"));
    json_decref(j);
    res_free(&r);
    return id;
}

static int64_t cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static void tls_request(struct env *e)
{
    struct res r;

    get(e, &r, url("https://localhost:%d/status/200", srv.https_port));
    expect_ok(&r, 200);
    res_free(&r);
}

/* New TLS connections, one per request: the trust store must not be
 * rebuilt for each (it would stall the worker's loop). */
static void test_new_tls_connections_are_cheap(void **state)
{
    struct env e;
    int64_t t0, c0, per_conn;
    int n = 20;

    env_opts(&e, 1, srv.ca_file);
    e.o.idle_timeout_ms = 0; /* never reuse */
    env_start(&e);
    tls_request(&e); /* the first one may load the store */
    t0 = sp_mono_us();
    c0 = cpu_us();
    for (int i = 0; i < n; i++)
        tls_request(&e);
    per_conn = (cpu_us() - c0) / n;
    fprintf(stderr, "# new TLS connection: %.1f ms wall, %.1f ms client CPU\n",
            (double)(sp_mono_us() - t0) / n / 1000.0, (double)per_conn / 1000.0);
    /* Rebuilding the store from the Debian bundle alone costs ~20 ms. */
    assert_true(per_conn < 15000);
    env_free(&e);
}

static void test_idle_connections_expire(void **state)
{
    struct env e;
    long a, b;

    env_opts(&e, 1, NULL);
    e.o.idle_timeout_ms = 1000;
    env_start(&e);
    a = conn_id_of(&e, srv.http_port);
    assert_int_equal(conn_id_of(&e, srv.http_port), a);
    tu_run_for(e.base, 2100);
    b = conn_id_of(&e, srv.http_port);
    assert_int_not_equal(b, a);
    env_free(&e);
    env_opts(&e, 1, NULL);
    e.o.idle_timeout_ms = 0; /* never reuse */
    env_start(&e);
    a = conn_id_of(&e, srv.http_port);
    assert_int_not_equal(conn_id_of(&e, srv.http_port), a);
    env_free(&e);
}

static void test_connection_reused_across_20_requests(void **state)
{
    static const char *const schemes[] = {"http", "https"};
    struct env e;

    env_init(&e, 1, srv.ca_file);
    for (size_t s = 0; s < 2; s++) {
        int port = s ? srv.https_port : srv.http_port;
        long conn = -1, client_port = -1;
        for (int i = 0; i < 20; i++) {
            struct res r;
            json_t *j;
            get(&e, &r, url("%s://127.0.0.1:%d/echo?i=%d", schemes[s], port, i));
            expect_ok(&r, 200);
            j = echo_json(&r);
            if (i == 0) {
                conn = (long)json_integer_value(json_object_get(j, "conn_id"));
                client_port = (long)json_integer_value(json_object_get(j, "client_port"));
            }
            assert_int_equal(json_integer_value(json_object_get(j, "conn_id")), conn);
            assert_int_equal(json_integer_value(json_object_get(j, "client_port")), client_port);
            assert_int_equal(json_integer_value(json_object_get(j, "conn_seq")), i + 1);
            json_decref(j);
            res_free(&r);
        }
    }
    env_free(&e);
}

static void test_200_concurrent_requests_on_one_base(void **state)
{
    enum { N = 200 };
    struct res *rs = calloc(N, sizeof(*rs));
    struct env e;
    int64_t end;

    assert_non_null(rs);
    env_init(&e, 1, NULL);
    for (int i = 0; i < N; i++) {
        res_init(&rs[i], &e);
        start_req(&e, &rs[i], "GET", url("http://127.0.0.1:%d/echo?n=%d", srv.http_port, i), NULL,
                  0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    }
    end = tu_now_ms() + 60000;
    for (int i = 0; i < N; i++) {
        int left = (int)(end - tu_now_ms());
        char want[32];
        json_t *j;
        run(&e, &rs[i], left > 0 ? left : 1);
        expect_ok(&rs[i], 200);
        j = echo_json(&rs[i]);
        snprintf(want, sizeof(want), "/echo?n=%d", i);
        assert_string_equal(jstr(j, "target"), want);
        json_decref(j);
        res_free(&rs[i]);
    }
    env_free(&e);
    free(rs);
}

/* A listener whose accept queue is full: new SYNs are dropped, so a
 * connect hangs. fds receives the listener and the queue fillers. */
static int blackhole(int fds[4])
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fds[0] >= 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fds[0], 0), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
    for (int i = 1; i < 4; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fds[i] >= 0);
        (void)connect(fds[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(50000);
    return ntohs(a.sin_port);
}

static void test_connect_timeout(void **state)
{
    int fds[4], port = blackhole(fds);
    struct env e;
    struct res r;
    int64_t t0;

    env_opts(&e, 1, NULL);
    e.o.connect_timeout_ms = 300;
    env_start(&e);
    t0 = tu_now_ms();
    get(&e, &r, url("http://127.0.0.1:%d/CANARY?CANARY", port));
    expect_error(&r, SP_E_UPSTREAM_TIMEOUT, "127.0.0.1");
    assert_non_null(strstr(r.err.msg, "connecting"));
    assert_true(tu_now_ms() - t0 < 3000);
    res_free(&r);
    env_free(&e);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
}

static void test_tls_handshake_counts_as_connect(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    struct env e;
    struct res r;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0); /* never accepted, never answers */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    env_opts(&e, 1, NULL);
    e.o.connect_timeout_ms = 300;
    env_start(&e);
    get(&e, &r, url("https://127.0.0.1:%d/CANARY", port));
    expect_error(&r, SP_E_UPSTREAM_TIMEOUT, "127.0.0.1");
    res_free(&r);
    env_free(&e);
    close(fd);
}

static void test_total_timeout(void **state)
{
    struct env e;
    struct res r;

    env_opts(&e, 1, NULL);
    e.o.timeout_ms = 400;
    env_start(&e);
    get(&e, &r, url("http://127.0.0.1:%d/slow?ms=3000&CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_TIMEOUT, "127.0.0.1");
    assert_false(r.head_sent);
    res_free(&r);
    /* Mid-body: the head went out, so the flag says so. */
    get(&e, &r, url("http://127.0.0.1:%d/drip?chunks=100&ms=50&CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_TIMEOUT, "127.0.0.1");
    assert_true(r.head_sent);
    assert_int_equal(r.head_calls, 1);
    res_free(&r);
    env_free(&e);
}

static void test_refused_port(void **state)
{
    int port = tu_free_port();
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/CANARY?q=CANARY", port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    assert_false(r.head_sent);
    res_free(&r);
    get(&e, &r, url("http://no-such-host.invalid:%d/CANARY", port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "no-such-host.invalid");
    res_free(&r);
    env_free(&e);
}

static void test_close_mid_body_after_head(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/close-mid?CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    assert_int_equal(r.head_calls, 1);
    assert_true(r.head_sent);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 1000);
    assert_int_equal(r.body.len, 10);
    res_free(&r);
    env_free(&e);
}

static void test_reset_before_answer(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/reset?CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    assert_false(r.head_sent);
    assert_int_equal(r.head_calls, 0);
    res_free(&r);
    env_free(&e);
}

static void test_redirect_not_followed(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r,
        url("http://127.0.0.1:%d/redirect?to=http://127.0.0.1:%d/echo", srv.http_port,
            srv.http_port));
    expect_ok(&r, 302);
    assert_non_null(strstr(r.headers.data, "Location: http://127.0.0.1:"));
    assert_int_equal(r.body.len, 0);
    res_free(&r);
    env_free(&e);
}

static void test_body_is_transfer_decoded_not_content_decoded(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/gzip", srv.http_port));
    expect_ok(&r, 200);
    assert_non_null(strstr(r.headers.data, "Content-Encoding: gzip\n"));
    assert_true(r.body.len > 2);
    assert_int_equal((unsigned char)r.body.data[0], 0x1f);
    assert_int_equal((unsigned char)r.body.data[1], 0x8b);
    assert_int_equal(r.content_length, (int64_t)r.body.len);
    res_free(&r);
    get(&e, &r, url("http://127.0.0.1:%d/drip?chunks=5&ms=30&size=6", srv.http_port));
    expect_ok(&r, 200);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(r.body.len, 30);
    assert_true(r.body_calls >= 2);
    assert_memory_equal(r.body.data, "00000\n00001\n00002\n00003\n00004\n", 30);
    res_free(&r);
    env_free(&e);
}

static void test_head_and_bodyless_statuses(void **state)
{
    static const int codes[] = {204, 304, 404, 503};
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    res_init(&r, &e);
    start_req(&e, &r, "HEAD", url("http://127.0.0.1:%d/big?bytes=1000", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &r, 5000);
    expect_ok(&r, 200);
    assert_int_equal(r.content_length, 1000);
    assert_int_equal(r.body.len, 0);
    res_free(&r);
    for (size_t i = 0; i < SP_ARRAY_LEN(codes); i++) {
        get(&e, &r, url("http://127.0.0.1:%d/status/%d", srv.http_port, codes[i]));
        expect_ok(&r, codes[i]);
        if (codes[i] == 204 || codes[i] == 304)
            assert_int_equal(r.body.len, 0);
        else
            assert_true(r.body.len > 0);
        res_free(&r);
    }
    env_free(&e);
}

static void test_cancel_frees_everything(void **state)
{
    struct env e;
    struct res r, r2, r3, many[5];

    env_init(&e, 1, NULL);
    /* From inside on_body, mid-body. */
    res_init(&r, &e);
    r.cancel_on_body = 1;
    start_req(&e, &r, "GET", url("http://127.0.0.1:%d/drip?chunks=100&ms=10", srv.http_port), NULL,
              0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &r, 5000);
    tu_run_for(e.base, 200);
    assert_int_equal(r.done_calls, 0);
    assert_int_equal(r.body_calls, 1);
    /* From outside any callback, while waiting for the head. */
    res_init(&r2, &e);
    start_req(&e, &r2, "GET", url("http://127.0.0.1:%d/slow?ms=2000", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    tu_run_for(e.base, 100);
    sp_upstream_cancel(r2.req);
    /* Before the loop ever ran. */
    res_init(&r3, &e);
    start_req(&e, &r3, "POST", url("http://127.0.0.1:%d/echo", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_BUFFER, "x", 1, 0);
    sp_upstream_cancel(r3.req);
    tu_run_for(e.base, 200);
    assert_int_equal(r2.done_calls + r2.head_calls + r3.done_calls + r3.head_calls, 0);
    /* The client itself goes away with requests in flight. */
    for (int i = 0; i < 5; i++) {
        res_init(&many[i], &e);
        start_req(&e, &many[i], "GET", url("http://127.0.0.1:%d/slow?ms=1000", srv.http_port), NULL,
                  0, SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    }
    tu_run_for(e.base, 50);
    env_free(&e);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(many[i].done_calls, 0);
        res_free(&many[i]);
    }
    res_free(&r);
    res_free(&r2);
    res_free(&r3);
}

static void test_on_head_abort(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    res_init(&r, &e);
    r.abort_on_head = 1;
    start_req(&e, &r, "GET", url("http://127.0.0.1:%d/big?bytes=100000", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &r, 5000);
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    assert_true(r.head_sent);
    assert_int_equal(r.body_calls, 0);
    res_free(&r);
    env_free(&e);
}

static void test_pause_and_resume(void **state)
{
    const size_t size = 4 * MIB;
    struct env e;
    struct res r;
    unsigned char *want = malloc(size);
    int rounds = 0;

    assert_non_null(want);
    for (size_t i = 0; i < size; i++)
        want[i] = (unsigned char)(i % 251);
    env_init(&e, 1, NULL);
    res_init(&r, &e);
    r.pause_every = 256 * 1024;
    start_req(&e, &r, "GET", url("http://127.0.0.1:%d/big?bytes=%zu", srv.http_port, size), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    while (!r.done) {
        int calls;
        assert_true(tu_run_until(e.base, &r.paused, 10000) || r.done);
        if (r.done)
            break;
        calls = r.body_calls;
        tu_run_for(e.base, rounds == 0 ? 300 : 5); /* stays paused */
        assert_int_equal(r.body_calls, calls);
        assert_false(r.done);
        r.paused = 0;
        sp_upstream_pause(r.req, 0);
        rounds++;
    }
    expect_ok(&r, 200);
    assert_true(rounds >= 8);
    assert_int_equal(r.body.len, size);
    assert_memory_equal(r.body.data, want, size);
    res_free(&r);
    env_free(&e);
    free(want);
}

static void test_start_from_callbacks(void **state)
{
    struct env e;
    struct res a, b, c, d;

    env_init(&e, 1, NULL);
    res_init(&a, &e);
    res_init(&b, &e);
    a.next = &b; /* from on_done */
    a.next_url = url("http://127.0.0.1:%d/echo?from=done", srv.http_port);
    start_req(&e, &a, "GET", url("http://127.0.0.1:%d/echo", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &b, 10000);
    expect_ok(&a, 200);
    expect_ok(&b, 200);
    res_init(&c, &e);
    res_init(&d, &e);
    c.next = &d; /* from on_head, inside curl */
    c.start_next_in_head = 1;
    c.next_url = url("http://127.0.0.1:%d/echo?from=head", srv.http_port);
    start_req(&e, &c, "GET", url("http://127.0.0.1:%d/echo", srv.http_port), NULL, 0,
              SP_UPSTREAM_BODY_NONE, NULL, 0, 0);
    run(&e, &c, 10000);
    run(&e, &d, 10000);
    expect_ok(&c, 200);
    expect_ok(&d, 200);
    res_free(&a);
    res_free(&b);
    res_free(&c);
    res_free(&d);
    env_free(&e);
}

static void expect_denied(struct env *e, const char *u, const char *host, const char *why)
{
    struct res r;

    get(e, &r, u);
    expect_error(&r, SP_E_DESTINATION_DENIED, host);
    if (why && !strstr(r.err.msg, why))
        fail_msg("'%s' does not say '%s'", r.err.msg, why);
    res_free(&r);
}

static void test_ssrf_guard_refuses_private_destinations(void **state)
{
    struct env e;
    int p = srv.http_port;

    env_init(&e, 0, NULL);
    expect_denied(&e, url("http://127.0.0.1:%d/echo?CANARY", p), "127.0.0.1", "loopback");
    expect_denied(&e, url("http://169.254.169.254/latest/meta-data/CANARY"), "169.254.169.254",
                  "link-local");
    expect_denied(&e, url("http://[::1]:%d/CANARY", p), "[::1]", "loopback");
    expect_denied(&e, url("http://localhost:%d/CANARY", p), "localhost", "loopback");
    expect_denied(&e, url("http://[::ffff:127.0.0.1]:%d/CANARY", p), "::ffff:127.0.0.1",
                  "loopback");
    expect_denied(&e, url("http://10.1.2.3/CANARY"), "10.1.2.3", "private");
    expect_denied(&e, url("http://192.168.0.1/CANARY"), "192.168.0.1", "private");
    expect_denied(&e, url("http://100.64.0.1/CANARY"), "100.64.0.1", "CGNAT");
    expect_denied(&e, url("http://0.0.0.0:%d/CANARY", p), "0.0.0.0", "unspecified");
    expect_denied(&e, url("http://[fe80::1]/CANARY"), "[fe80::1]", "link-local");
    env_free(&e);
}

static void test_ssrf_guard_allows_private_when_configured(void **state)
{
    struct env e;
    struct res r;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    res_free(&r);
    get(&e, &r, url("http://localhost:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    res_free(&r);
    get(&e, &r, url("http://[::1]:%d/CANARY", tu_free_port()));
    assert_true(r.failed);
    assert_int_not_equal(r.err.code, SP_E_DESTINATION_DENIED);
    res_free(&r);
    env_free(&e);
}

static void test_ssrf_guard_always_refuses_own_listeners(void **state)
{
    struct env e;
    struct res r;
    char own[64], wild[64];

    snprintf(own, sizeof(own), "127.0.0.1:%d", srv.http_port);
    snprintf(wild, sizeof(wild), "0.0.0.0:%d", srv.http_port);
    env_opts(&e, 1, NULL);
    e.o.own_addrs[0] = own;
    e.o.n_own_addrs = 1;
    env_start(&e);
    expect_denied(&e, url("http://127.0.0.1:%d/echo?CANARY", srv.http_port), "127.0.0.1", "own");
    expect_denied(&e, url("http://localhost:%d/echo", srv.http_port), "localhost", "own");
    expect_denied(&e, url("http://0.0.0.0:%d/echo", srv.http_port), "0.0.0.0", "own");
    get(&e, &r, url("https://127.0.0.1:%d/echo", srv.https_port)); /* other port */
    assert_true(r.failed); /* no CA for it here, but not refused by the guard */
    assert_int_not_equal(r.err.code, SP_E_DESTINATION_DENIED);
    res_free(&r);
    env_free(&e);

    env_opts(&e, 1, NULL);
    e.o.own_addrs[0] = wild;
    e.o.own_addrs[1] = "unix:/tmp/sp.sock";
    e.o.n_own_addrs = 2;
    env_start(&e);
    expect_denied(&e, url("http://127.0.0.1:%d/echo", srv.http_port), "127.0.0.1", "own");
    get(&e, &r, url("https://127.0.0.1:%d/echo", srv.https_port)); /* other port: allowed */
    assert_int_not_equal(r.err.code, SP_E_DESTINATION_DENIED);
    res_free(&r);
    env_free(&e);
}

static int classify(struct up_guard *g, const char *ip)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    const char *why = NULL;

    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(80);
        return up_guard_check(g, (struct sockaddr *)&a4, sizeof(a4), &why);
    }
    assert_int_equal(inet_pton(AF_INET6, ip, &a6.sin6_addr), 1);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(80);
    return up_guard_check(g, (struct sockaddr *)&a6, sizeof(a6), &why);
}

static void test_ssrf_address_classes(void **state)
{
    static const char *const denied[] = {"127.0.0.1",
                                         "127.255.255.254",
                                         "10.0.0.1",
                                         "172.16.0.1",
                                         "172.31.255.255",
                                         "192.168.1.1",
                                         "169.254.169.254",
                                         "100.64.0.1",
                                         "100.127.255.255",
                                         "0.0.0.0",
                                         "0.1.2.3",
                                         "224.0.0.1",
                                         "239.255.255.255",
                                         "255.255.255.255",
                                         "240.0.0.1",
                                         "::",
                                         "::1",
                                         "fc00::1",
                                         "fd12:3456::1",
                                         "fe80::1",
                                         "febf::1",
                                         "fec0::1",
                                         "ff02::1",
                                         "::ffff:127.0.0.1",
                                         "::ffff:10.0.0.1",
                                         "::ffff:169.254.169.254",
                                         "::127.0.0.1",
                                         "64:ff9b::a9fe:a9fe",
                                         "2002:7f00:1::1",
                                         "2002:c0a8:101::1"};
    static const char *const allowed[] = {"8.8.8.8",        "172.15.255.255",   "172.32.0.1",
                                          "100.63.255.255", "100.128.0.1",      "169.253.1.1",
                                          "192.169.0.1",    "223.255.255.255",  "2606:4700::1111",
                                          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
                                          "fbff::1",        "fe7f::1"};
    struct sp_upstream_opts o;
    struct up_guard *g;
    struct sp_err err;

    memset(&o, 0, sizeof(o));
    assert_int_equal(up_guard_new(&g, &o, &err), 0);
    for (size_t i = 0; i < SP_ARRAY_LEN(denied); i++)
        if (classify(g, denied[i]) != -1)
            fail_msg("%s should be refused", denied[i]);
    for (size_t i = 0; i < SP_ARRAY_LEN(allowed); i++)
        if (classify(g, allowed[i]) != 0)
            fail_msg("%s should be allowed", allowed[i]);
    up_guard_free(g);
    o.allow_private = 1;
    assert_int_equal(up_guard_new(&g, &o, &err), 0);
    for (size_t i = 0; i < SP_ARRAY_LEN(denied); i++)
        assert_int_equal(classify(g, denied[i]), 0);
    up_guard_free(g);
    o.own_addrs[0] = "not an address";
    o.n_own_addrs = 1;
    assert_int_equal(up_guard_new(&g, &o, &err), -1);
    assert_int_equal(err.code, SP_E_CONFIG);
}

static void test_reload_stops_reusing_connections_dialled_under_old_rules(void **state)
{
    struct env e;
    struct res r;
    struct sp_err err;
    json_t *j;
    long conn;

    env_init(&e, 1, NULL);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    j = echo_json(&r);
    conn = (long)json_integer_value(json_object_get(j, "conn_id"));
    json_decref(j);
    res_free(&r);
    e.o.allow_private = 0;
    assert_int_equal(sp_upstream_set_opts(e.u, &e.o, &err), 0);
    expect_denied(&e, url("http://127.0.0.1:%d/echo", srv.http_port), "127.0.0.1", "loopback");
    e.o.allow_private = 1;
    assert_int_equal(sp_upstream_set_opts(e.u, &e.o, &err), 0);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    j = echo_json(&r);
    assert_int_not_equal(json_integer_value(json_object_get(j, "conn_id")), conn);
    json_decref(j);
    res_free(&r);
    /* A failed reload keeps the old settings. */
    e.o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(sp_upstream_set_opts(e.u, &e.o, &err), -1);
    assert_int_equal(err.code, SP_E_CONFIG);
    get(&e, &r, url("http://127.0.0.1:%d/echo", srv.http_port));
    expect_ok(&r, 200);
    res_free(&r);
    env_free(&e);
}

static void test_response_head_limits(void **state)
{
    struct env e;
    struct res r;

    env_opts(&e, 1, NULL);
    e.o.max_headers = 20;
    e.o.max_header_size = 8192;
    env_start(&e);
    get(&e, &r, url("http://127.0.0.1:%d/headers?n=19&size=10", srv.http_port));
    expect_ok(&r, 200);
    assert_int_equal(r.n_headers, 20);
    res_free(&r);
    get(&e, &r, url("http://127.0.0.1:%d/headers?n=20&size=10&CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    assert_false(r.head_sent);
    res_free(&r);
    get(&e, &r, url("http://127.0.0.1:%d/headers?n=3&size=4000&CANARY", srv.http_port));
    expect_error(&r, SP_E_UPSTREAM_ERROR, "127.0.0.1");
    res_free(&r);
    env_free(&e);
}

static void expect_bad(struct env *e, const char *method, const char *u,
                       const struct sp_upstream_header *h, size_t nh,
                       enum sp_upstream_body_kind kind)
{
    struct sp_upstream_request rq;
    struct sp_err err;
    struct res r;

    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.method_len = strlen(method);
    rq.url = u;
    rq.url_len = strlen(u);
    rq.headers = h;
    rq.n_headers = nh;
    rq.body_kind = kind;
    rq.body = "x";
    rq.body_len = 1;
    res_init(&r, e);
    sp_err_clear(&err);
    assert_null(sp_upstream_start(e->u, &rq, &t_cb, &r, &err));
    if (err.code != SP_E_BAD_REQUEST)
        fail_msg("%s %s: got %s", method, u, sp_err_wire(err.code));
    assert_null(strstr(err.msg, "CANARY"));
    res_free(&r);
}

static void test_refuses_what_it_will_not_send(void **state)
{
    struct sp_upstream_header crlf[] = {H("X-A", "ok\r\nX-Injected: CANARY")};
    struct sp_upstream_header nul[] = {{"X-A", 3, "a\0CANARY", 8}};
    struct sp_upstream_header badname[] = {H("X A", "CANARY")};
    struct env e;

    env_init(&e, 1, NULL);
    expect_bad(&e, "GE T", "http://127.0.0.1/CANARY", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "CONNECT", "http://127.0.0.1/CANARY", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "ftp://127.0.0.1/CANARY", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http://user:CANARY@127.0.0.1/", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http://127.0.0.1/CANARY x", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http:///CANARY", NULL, 0, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http://127.0.0.1/", crlf, 1, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http://127.0.0.1/", nul, 1, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "GET", "http://127.0.0.1/", badname, 1, SP_UPSTREAM_BODY_NONE);
    expect_bad(&e, "HEAD", "http://127.0.0.1/", NULL, 0, SP_UPSTREAM_BODY_BUFFER);
    env_free(&e);
}

static void test_opts_from_conf(void **state)
{
    struct sp_conf_diag d = {0};
    char *env[] = {"SECRETPROXY_UPSTREAM_ALLOW_PRIVATE=true", "SECRETPROXY_UPSTREAM_TIMEOUT=7s",
                   "SECRETPROXY_API_LISTEN=0.0.0.0:18081", NULL};
    struct sp_conf *c = sp_conf_load(NULL, env, &d);
    struct sp_upstream_opts o;
    struct event_base *base = event_base_new();
    struct sp_upstream *u;
    struct sp_err err;

    assert_non_null(c);
    sp_upstream_opts_from_conf(&o, c);
    assert_int_equal(o.connect_timeout_ms, 5000);
    assert_int_equal(o.timeout_ms, 7000);
    assert_int_equal(o.idle_timeout_ms, 60000);
    assert_int_equal(o.allow_private, 1);
    assert_int_equal(o.n_own_addrs, 2);
    assert_string_equal(o.own_addrs[0], "127.0.0.1:8080");
    assert_string_equal(o.own_addrs[1], "0.0.0.0:18081");
    u = sp_upstream_new(base, &o, &err);
    assert_non_null(u);
    sp_upstream_free(u);
    event_base_free(base);
    sp_conf_free(c);
}

/* 10,000 small sequential requests over one pooled connection (fewer by
 * default; SP_UPSTREAM_BENCH_N sets the count). */
static void test_sequential_throughput(void **state)
{
    const char *n_env = getenv("SP_UPSTREAM_BENCH_N");
    int n = n_env ? atoi(n_env) : 500;
    int tls = getenv("SP_UPSTREAM_BENCH_TLS") != NULL; /* https with the extra CA */
    struct env e;
    struct res r;
    json_t *j;
    long before, after;
    int64_t t0, t1, c0, c1;

    env_init(&e, 1, tls ? srv.ca_file : NULL);
    get(&e, &r,
        url("%s://127.0.0.1:%d/connections", tls ? "https" : "http",
            tls ? srv.https_port : srv.http_port));
    j = echo_json(&r);
    before = (long)json_integer_value(json_object_get(j, "accepted"));
    json_decref(j);
    res_free(&r);
    t0 = sp_mono_us();
    c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        get(&e, &r,
            url("%s://127.0.0.1:%d/status/200", tls ? "https" : "http",
                tls ? srv.https_port : srv.http_port));
        expect_ok(&r, 200);
        res_free(&r);
    }
    t1 = sp_mono_us();
    c1 = cpu_us();
    get(&e, &r,
        url("%s://127.0.0.1:%d/connections", tls ? "https" : "http",
            tls ? srv.https_port : srv.http_port));
    j = echo_json(&r);
    after = (long)json_integer_value(json_object_get(j, "accepted"));
    json_decref(j);
    res_free(&r);
    assert_int_equal(after, before); /* every request on the pooled connection */
    fprintf(stderr,
            "# %d sequential %s requests: %.0f req/s, %.1f us/req, client CPU %.1f us/req\n", n,
            tls ? "https" : "http", n * 1e6 / (double)(t1 - t0), (double)(t1 - t0) / n,
            (double)(c1 - c0) / n);
    env_free(&e);
}

static int group_setup(void **state)
{
    return server_start();
}

/* After each test: the server still runs and our own descriptors are still
 * ours (a stray close() in the client would show here). */
static int check_server(void **state)
{
    struct stat st;

    if (fstat(srv.in_fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        fprintf(stderr, "the server's stdin pipe (fd %d) was closed by someone\n", srv.in_fd);
        return -1;
    }
    if (waitpid(srv.pid, NULL, WNOHANG) != 0) {
        fprintf(stderr, "the test upstream died\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    server_stop();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_get_sends_exactly_the_given_headers, check_server),
        cmocka_unit_test_teardown(test_host_comes_from_the_url_when_not_given, check_server),
        cmocka_unit_test_teardown(test_bodies_buffered_and_streamed, check_server),
        cmocka_unit_test_teardown(test_streamed_body_waits_for_data, check_server),
        cmocka_unit_test_teardown(test_https_with_the_extra_ca, check_server),
        cmocka_unit_test_teardown(test_https_without_the_ca_fails_naming_the_host, check_server),
        cmocka_unit_test_teardown(test_tls_checks_the_host_name, check_server),
        cmocka_unit_test_teardown(test_environment_proxy_is_ignored, check_server),
        cmocka_unit_test_teardown(test_idle_connections_expire, check_server),
        cmocka_unit_test_teardown(test_new_tls_connections_are_cheap, check_server),
        cmocka_unit_test_teardown(test_connection_reused_across_20_requests, check_server),
        cmocka_unit_test_teardown(test_200_concurrent_requests_on_one_base, check_server),
        cmocka_unit_test_teardown(test_connect_timeout, check_server),
        cmocka_unit_test_teardown(test_tls_handshake_counts_as_connect, check_server),
        cmocka_unit_test_teardown(test_total_timeout, check_server),
        cmocka_unit_test_teardown(test_refused_port, check_server),
        cmocka_unit_test_teardown(test_close_mid_body_after_head, check_server),
        cmocka_unit_test_teardown(test_reset_before_answer, check_server),
        cmocka_unit_test_teardown(test_redirect_not_followed, check_server),
        cmocka_unit_test_teardown(test_body_is_transfer_decoded_not_content_decoded, check_server),
        cmocka_unit_test_teardown(test_head_and_bodyless_statuses, check_server),
        cmocka_unit_test_teardown(test_cancel_frees_everything, check_server),
        cmocka_unit_test_teardown(test_on_head_abort, check_server),
        cmocka_unit_test_teardown(test_pause_and_resume, check_server),
        cmocka_unit_test_teardown(test_start_from_callbacks, check_server),
        cmocka_unit_test_teardown(test_ssrf_guard_refuses_private_destinations, check_server),
        cmocka_unit_test_teardown(test_ssrf_guard_allows_private_when_configured, check_server),
        cmocka_unit_test_teardown(test_ssrf_guard_always_refuses_own_listeners, check_server),
        cmocka_unit_test_teardown(test_ssrf_address_classes, check_server),
        cmocka_unit_test_teardown(test_reload_stops_reusing_connections_dialled_under_old_rules,
                                  check_server),
        cmocka_unit_test_teardown(test_response_head_limits, check_server),
        cmocka_unit_test_teardown(test_refuses_what_it_will_not_send, check_server),
        cmocka_unit_test_teardown(test_opts_from_conf, check_server),
        cmocka_unit_test_teardown(test_sequential_throughput, check_server),
    };

    signal(SIGPIPE, SIG_IGN);
    if (!getenv("SP_SOURCE_DIR") || access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "skipped: needs SP_SOURCE_DIR and /usr/bin/python3\n");
        return 77;
    }
    if (getenv("SP_TEST_FILTER")) /* e.g. SP_TEST_FILTER='*throughput*' */
        cmocka_set_test_filter(getenv("SP_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
