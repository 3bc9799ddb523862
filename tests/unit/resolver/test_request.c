/*
 * test_request.c - resolving whole requests against a real Redis: every
 * place and spelling, the checks in order, all-or-nothing failures, one
 * round trip for many references, asserted context, and the redactor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "resolver.h"
#include "testutil.h"

struct fx {
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_conf *conf;
    struct sp_store *s;
    char *dir;
    char ws[64];
    char token[256];     /* a proxy key */
    char ctx_token[256]; /* a proxy + assert_context key */
    char tok_ref[128];   /* a $secret: token for STRIPE */
};

struct res {
    int done;
    struct sp_err err;
    struct sp_resolution *r;
};

static void on_meta(const struct sp_secret_meta *m, const struct sp_err *err, void *arg)
{
    *(int *)arg = err ? -1 : 1;
}

/* Upsert name with value and the rest of w, and wait for it. */
static void put_w(struct fx *f, const char *scope, const char *name, const char *value,
                  struct sp_secret_write *w)
{
    struct sp_err err;
    int done = 0;

    w->value = (const unsigned char *)value;
    w->value_len = strlen(value);
    w->has_value = 1;
    assert_int_equal(
        sp_store_secret_write(f->s, f->ws, scope, name, SP_WRITE_UPSERT, w, on_meta, &done, &err),
        0);
    assert_true(tu_run_until(f->base, &done, 5000));
    assert_int_equal(done, 1);
}

static void put(struct fx *f, const char *scope, const char *name, const char *value,
                const char *host, const char *env)
{
    struct sp_secret_write w;
    struct sp_strlist hosts = {(char **)&host, host ? 1 : 0}, envs = {(char **)&env, env ? 1 : 0};

    memset(&w, 0, sizeof(w));
    w.hosts = &hosts;
    w.envs = &envs;
    put_w(f, scope, name, value, &w);
}

static void on_key(const struct sp_key *k, const char *token, const struct sp_err *err, void *arg)
{
    char *out = arg;
    snprintf(out, 256, "%s", token ? token : "");
}

static void make_key(struct fx *f, unsigned perms, const char *env, char *out)
{
    struct sp_key k;
    struct sp_err err;

    memset(&k, 0, sizeof(k));
    snprintf(k.workspace, sizeof(k.workspace), "%s", f->ws);
    snprintf(k.name, sizeof(k.name), "test");
    snprintf(k.env, sizeof(k.env), "%s", env ? env : "");
    k.perms = perms;
    out[0] = '\0';
    assert_int_equal(sp_store_key_create(f->s, &k, NULL, on_key, out, &err), 0);
    for (int i = 0; i < 500 && !out[0]; i++)
        tu_run_for(f->base, 5);
    assert_true(out[0] != '\0');
}

static void on_token(const char *token, const struct sp_secret_meta *m, const struct sp_err *err,
                     void *arg)
{
    snprintf(arg, 128, "%s", token ? token : "-");
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[512], e1[300];
    char *env[] = {e1, NULL};
    struct sp_err err;
    static int seq;

    f->dir = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
    assert_int_equal(sp_keyring_open(path, NULL, 1, &f->kr, &err), 0);
    snprintf(e1, sizeof(e1), "SECRETPROXY_REDIS_URL=%s", tu_redis_url());
    f->conf = tu_conf(env);
    f->base = event_base_new();
    f->s = sp_store_new(f->base, f->conf, f->kr, &err);
    for (int i = 0; i < 300 && sp_store_state(f->s) != SP_STORE_READY; i++)
        tu_run_for(f->base, 10);
    snprintf(f->ws, sizeof(f->ws), "rq-%d-%d", (int)getpid(), seq++);
    put(f, "workspace", "STRIPE", "sk_CANARY&+ /=%\"\\x", "api.stripe.com", NULL);
    put(f, "workspace", "GH", "ghp_CANARY_gh", NULL, NULL);
    put(f, "workspace", "PROD", "prod_CANARY", NULL, "prod");
    put(f, "workspace", "CRLF", "a\r\nX-Injected: 1", NULL, NULL);
    put(f, "user:alice", "MINE", "alice_CANARY", NULL, NULL);
    make_key(f, SP_PERM_PROXY, "prod", f->token);
    make_key(f, SP_PERM_PROXY | SP_PERM_ASSERT_CONTEXT, "dev", f->ctx_token);
    f->tok_ref[0] = '\0';
    assert_int_equal(sp_store_token_mint(f->s, f->ws, "workspace", "STRIPE", NULL, 60000, on_token,
                                         f->tok_ref, &err),
                     0);
    for (int i = 0; i < 500 && !f->tok_ref[0]; i++)
        tu_run_for(f->base, 5);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sp_store_free(f->s);
    event_base_free(f->base);
    sp_keyring_free(f->kr);
    sp_conf_free(f->conf);
    tu_rmrf(f->dir);
    free(f);
    sp_resolver_thread_cleanup();
    return 0;
}

static void on_done(struct sp_resolution *r, const struct sp_err *err, void *arg)
{
    struct res *x = arg;
    x->done = 1;
    x->r = r;
    x->err.code = err ? err->code : SP_E_OK;
    if (err)
        snprintf(x->err.msg, sizeof(x->err.msg), "%s", err->msg);
}

static struct res run(struct fx *f, const char *key, const struct sp_rrequest *q,
                      const struct sp_caller *asserted)
{
    struct sp_resolve_opts o = {SP_PERM_PROXY, 1, NULL, NULL, 1 << 20};
    struct res x;
    struct sp_err err;

    memset(&x, 0, sizeof(x));
    if (sp_resolver_run(f->s, key, strlen(key), asserted, q, &o, on_done, &x, &err) < 0) {
        x.err = err;
        return x;
    }
    assert_true(tu_run_until(f->base, &x.done, 5000));
    return x;
}

static int buf_is(const struct sp_buf *b, const char *want)
{
    if (!b || b->len != strlen(want) || memcmp(b->data, want, b->len) != 0) {
        fprintf(stderr, "got '%.*s'\nwant '%s'\n", b ? (int)b->len : 6, b ? b->data : "(null)",
                want);
        return 0;
    }
    return 1;
}

static void every_place_gets_its_encoding(void **state)
{
    struct fx *f = *state;
    char basic[200], auth[300], tokhdr[200];
    struct sp_rheader h[4];
    const char *path = "/v1/charges/%24Secret%7bGH%7d/x";
    const char *query = "key=$Secret%7BSTRIPE%7D&a=1";
    const char *body = "{\"token\":\"$Token{GH}\",\"n\":1}";
    struct sp_rrequest q;
    struct res x;

    sp_base64_encode(basic, "user:$Secret{GH}", 16);
    snprintf(auth, sizeof(auth), "Basic %s", basic);
    snprintf(tokhdr, sizeof(tokhdr), "Bearer $secret:%s", f->tok_ref);
    h[0] = (struct sp_rheader){"Authorization", 13, auth, strlen(auth)};
    h[1] = (struct sp_rheader){"X-Api-Key", 9, tokhdr, strlen(tokhdr)};
    h[2] = (struct sp_rheader){"X-Plain", 7, "nothing here", 12};
    h[3] = (struct sp_rheader){"X-Lookalike", 11, "$secretary $Secret{bad key}", 27};
    memset(&q, 0, sizeof(q));
    q.host = "api.stripe.com";
    q.path = path, q.path_len = strlen(path);
    q.query = query, q.query_len = strlen(query);
    q.headers = h, q.nheaders = 4;
    q.body = body, q.body_len = strlen(body);
    q.content_type = "application/json; charset=utf-8";
    x = run(f, f->token, &q, NULL);
    if (x.err.code)
        fail_msg("resolution failed: %s", x.err.msg);
    assert_true(buf_is(sp_resolution_path(x.r), "/v1/charges/ghp_CANARY_gh/x"));
    assert_true(buf_is(sp_resolution_query(x.r), "key=sk_CANARY%26%2B%20%2F%3D%25%22%5Cx&a=1"));
    {
        char want[200], enc[100];
        sp_base64_encode(enc, "user:ghp_CANARY_gh", 18);
        snprintf(want, sizeof(want), "Basic %s", enc);
        assert_true(buf_is(sp_resolution_header(x.r, 0), want));
    }
    assert_true(buf_is(sp_resolution_header(x.r, 1), "Bearer sk_CANARY&+ /=%\"\\x"));
    assert_null(sp_resolution_header(x.r, 2));
    assert_null(sp_resolution_header(x.r, 3));
    assert_true(buf_is(sp_resolution_body(x.r), "{\"token\":\"ghp_CANARY_gh\",\"n\":1}"));
    assert_string_equal(sp_resolution_key(x.r)->workspace, f->ws);
    assert_string_equal(sp_resolution_caller(x.r)->env, "prod");
    assert_int_equal(sp_resolution_refs(x.r), 3);
    {
        struct sp_buf out;
        const char *line = "{\"msg\":\"echo sk_CANARY&+ /=%\\\"\\\\x and Z2hwX0NBTkFSWV9naA==\"}";
        sp_buf_init(&out, 0, 0);
        assert_int_equal(
            sp_redactor_redact(sp_resolution_redactor(x.r), line, strlen(line), &out, NULL), 0);
        assert_null(strstr(out.data, "CANARY"));
        assert_null(strstr(out.data, "Z2hwX0NBTkFSWV9naA"));
        sp_buf_free(&out);
    }
    sp_resolution_free(x.r);

    /* A form body: form encoding. */
    body = "a=$Secret%7BSTRIPE%7D&b=2";
    q.body = body, q.body_len = strlen(body);
    q.content_type = "application/x-www-form-urlencoded";
    q.nheaders = 0, q.query = NULL, q.query_len = 0, q.path = "/", q.path_len = 1;
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_OK);
    assert_true(buf_is(sp_resolution_body(x.r), "a=sk_CANARY%26%2B+%2F%3D%25%22%5Cx&b=2"));
    sp_resolution_free(x.r);
}

static void failures_are_all_or_nothing_and_ordered(void **state)
{
    struct fx *f = *state;
    struct sp_rheader h[2];
    struct sp_rrequest q;
    struct res x;

    memset(&q, 0, sizeof(q));
    q.host = "evil.example";
    q.path = "/", q.path_len = 1;
    h[0] = (struct sp_rheader){"X-A", 3, "$Secret{GH}", 11};
    h[1] = (struct sp_rheader){"X-B", 3, "$Secret{STRIPE}", 15};
    q.headers = h, q.nheaders = 2;
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_HOST_DENIED);
    assert_string_equal(x.err.msg, "Secret 'STRIPE' may not be sent to host 'evil.example'");
    assert_null(sp_resolution_header(x.r, 0)); /* GH was fine, but nothing survives */
    sp_resolution_free(x.r);

    h[1] = (struct sp_rheader){"X-B", 3, "$Secret{NOPE}", 13};
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_NOT_FOUND);
    assert_string_equal(x.err.msg, "Secret 'NOPE' not found");
    sp_resolution_free(x.r);

    h[1] = (struct sp_rheader){"X-B", 3, "$secret:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 51};
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_REFERENCE_INVALID);
    sp_resolution_free(x.r);

    h[1] = (struct sp_rheader){"X-B", 3, "$Secret{CRLF}", 13};
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_UNSAFE_VALUE);
    assert_null(strstr(x.err.msg, "Injected"));
    sp_resolution_free(x.r);

    /* env: the key is bound to prod; the dev key is not allowed PROD. */
    h[1] = (struct sp_rheader){"X-B", 3, "$Secret{PROD}", 13};
    x = run(f, f->ctx_token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_ENV_MISMATCH);
    assert_string_equal(x.err.msg, "Secret 'PROD' is not available in environment 'dev'");
    sp_resolution_free(x.r);

    /* A reference outside any JSON string. */
    q.nheaders = 0;
    q.body = "{\"a\": $Secret{GH}}", q.body_len = 18;
    q.content_type = "application/json";
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_REFERENCE_INVALID);
    sp_resolution_free(x.r);

    /* A wrong key never resolves anything. */
    q.body = NULL, q.body_len = 0;
    x = run(f, "sp.nobody.nothing.x", &q, NULL);
    assert_int_equal(x.err.code, SP_E_PROXY_AUTH_REQUIRED);
    assert_null(sp_resolution_key(x.r));
    sp_resolution_free(x.r);
}

/* Revocation and expiry after a token was minted take effect at once. */
static void revoke_and_expiry_after_minting(void **state)
{
    struct fx *f = *state;
    char hv[160];
    struct sp_rheader h = {"X-A", 3, hv, 0};
    struct sp_secret_write w;
    struct sp_rrequest q;
    struct sp_err err;
    struct res x;
    int done = 0;

    snprintf(hv, sizeof(hv), "$secret:%s", f->tok_ref);
    h.value_len = strlen(hv);
    memset(&q, 0, sizeof(q));
    q.host = "api.stripe.com", q.path = "/", q.path_len = 1, q.headers = &h, q.nheaders = 1;
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_OK);
    sp_resolution_free(x.r);

    memset(&w, 0, sizeof(w));
    w.has_revoked = 1;
    w.revoked = 1;
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "STRIPE", SP_WRITE_UPDATE, &w,
                                           on_meta, &done, &err),
                     0);
    assert_true(tu_run_until(f->base, &done, 5000));
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_REVOKED);
    assert_string_equal(x.err.msg, "Secret 'STRIPE' has been revoked");
    sp_resolution_free(x.r);

    memset(&w, 0, sizeof(w));
    w.has_revoked = 1;
    w.has_expires = 1;
    w.expires_at = sp_now_ms() + 300;
    done = 0;
    assert_int_equal(sp_store_secret_write(f->s, f->ws, "workspace", "STRIPE", SP_WRITE_UPDATE, &w,
                                           on_meta, &done, &err),
                     0);
    assert_true(tu_run_until(f->base, &done, 5000));
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_OK);
    sp_resolution_free(x.r);
    usleep(400 * 1000);
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_EXPIRED);
    sp_resolution_free(x.r);
}

static void asserted_context_needs_the_permission(void **state)
{
    struct fx *f = *state;
    struct sp_caller as = {NULL, NULL, NULL, NULL, "alice", NULL, NULL};
    struct sp_rheader h = {"X-A", 3, "$Secret{MINE}", 13};
    struct sp_rrequest q;
    struct res x;

    memset(&q, 0, sizeof(q));
    q.host = "x.example", q.path = "/", q.path_len = 1, q.headers = &h, q.nheaders = 1;
    x = run(f, f->token, &q, &as);
    assert_int_equal(x.err.code, SP_E_FORBIDDEN);
    sp_resolution_free(x.r);
    x = run(f, f->ctx_token, &q, &as);
    assert_int_equal(x.err.code, SP_E_OK);
    assert_true(buf_is(sp_resolution_header(x.r, 0), "alice_CANARY"));
    assert_string_equal(sp_resolution_caller(x.r)->user, "alice");
    sp_resolution_free(x.r);
    /* Without the asserted user, the user scope is not searched. */
    x = run(f, f->ctx_token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_SECRET_NOT_FOUND);
    sp_resolution_free(x.r);
}

static void twenty_references_one_round_trip(void **state)
{
    struct fx *f = *state;
    struct sp_rheader h[20];
    char names[20][16], vals[20][40];
    struct sp_rrequest q;
    uint64_t before;
    struct res x;

    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(names[i], sizeof(names[i]), "N%d", i);
        snprintf(v, sizeof(v), "val-%d", i);
        put(f, "workspace", names[i], v, NULL, NULL);
        snprintf(vals[i], sizeof(vals[i]), "$Secret{N%d}", i);
        h[i] = (struct sp_rheader){"X-V", 3, vals[i], strlen(vals[i])};
    }
    memset(&q, 0, sizeof(q));
    q.host = "x.example", q.path = "/", q.path_len = 1, q.headers = h, q.nheaders = 20;
    x = run(f, f->token, &q, NULL); /* warm the script cache */
    sp_resolution_free(x.r);
    before = sp_store_roundtrips(f->s);
    x = run(f, f->token, &q, NULL);
    assert_int_equal(x.err.code, SP_E_OK);
    assert_int_equal(sp_store_roundtrips(f->s) - before, 1);
    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(v, sizeof(v), "val-%d", i);
        assert_true(buf_is(sp_resolution_header(x.r, (size_t)i), v));
    }
    sp_resolution_free(x.r);
}

/* An extra flagged aws (the access key id of an SDK's SigV4 signature)
 * must be exactly one reference to a secret of type aws. */
static void aws_extras_need_an_aws_secret(void **state)
{
    struct fx *f = *state;
    static const unsigned char aws = 1;
    const char *json = "{\"access_key_id\":\"AKIACANARY\",\"secret_access_key\":\"sk/CANARY\"}";
    const char *ids[] = {"$Secret{AWS}", "$Secret{GH}", "x$Secret{AWS}", "$Secret{AWS}$Secret{GH}"};
    enum sp_err_code want[] = {SP_E_OK, SP_E_SECRET_TYPE_MISMATCH, SP_E_BAD_REQUEST,
                               SP_E_BAD_REQUEST};
    struct sp_secret_write w;

    memset(&w, 0, sizeof(w));
    w.has_type = 1;
    w.type = SP_SECRET_AWS;
    put_w(f, "workspace", "AWS", json, &w);
    for (size_t i = 0; i < SP_ARRAY_LEN(ids); i++) {
        size_t len = strlen(ids[i]);
        struct sp_rrequest q;
        struct res x;
        memset(&q, 0, sizeof(q));
        q.host = "s3.amazonaws.com", q.path = "/", q.path_len = 1;
        q.extra = &ids[i], q.extra_len = &len, q.nextra = 1, q.extra_aws = &aws;
        x = run(f, f->token, &q, NULL);
        assert_int_equal(x.err.code, want[i]);
        if (want[i] == SP_E_OK)
            assert_true(buf_is(sp_resolution_extra(x.r, 0), json));
        if (want[i] == SP_E_SECRET_TYPE_MISMATCH)
            assert_non_null(strstr(x.err.msg, "'GH' has type api"));
        sp_resolution_free(x.r);
    }
    /* Anywhere else an aws secret would send its secret key: refused. */
    {
        struct sp_rheader h = {"X-Api-Key", 9, "$Secret{AWS}", 12};
        const char *query = "AWSAccessKeyId=%24Secret%7BAWS%7D";
        struct sp_rrequest q;
        struct res x;
        memset(&q, 0, sizeof(q));
        q.host = "s3.amazonaws.com", q.path = "/", q.path_len = 1;
        q.headers = &h, q.nheaders = 1;
        x = run(f, f->token, &q, NULL);
        assert_int_equal(x.err.code, SP_E_SECRET_TYPE_MISMATCH);
        assert_null(sp_resolution_header(x.r, 0));
        sp_resolution_free(x.r);
        q.nheaders = 0;
        q.query = query, q.query_len = strlen(query);
        x = run(f, f->token, &q, NULL);
        assert_int_equal(x.err.code, SP_E_SECRET_TYPE_MISMATCH);
        sp_resolution_free(x.r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_place_gets_its_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(failures_are_all_or_nothing_and_ordered, setup, teardown),
        cmocka_unit_test_setup_teardown(asserted_context_needs_the_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(revoke_and_expiry_after_minting, setup, teardown),
        cmocka_unit_test_setup_teardown(twenty_references_one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(aws_extras_need_an_aws_secret, setup, teardown),
    };
    if (!tu_redis_url()) {
        printf("SP_TEST_REDIS_URL is not set: run through scripts/test.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
