/*
 * test_sigv4.c - the SigV4 signer: the aws-c-auth test suite byte for byte
 * (canonical request, string to sign, signature, signed request, in header
 * and query form), the AWS documentation's S3 examples, the signed-header
 * selection, S3 versus other paths, query canonicalisation, the
 * signing-key cache, the parsers of an SDK's signature, and malformed
 * input. aws-chunked is in test_sigv4_chunked.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4_testutil.h"

/* ---- the aws-c-auth test suite ---- */

struct vcase {
    char *request;
    size_t request_len;
    json_t *ctx;
    /* the parsed request */
    char method[16];
    const char *target;
    size_t target_len;
    const char *head; /* raw header lines, each ending "\n" */
    size_t head_len;
    const char *body;
    size_t body_len;
    struct sp_sigv4_header h[32];
    char *values[32];
    size_t nh;
    char amz_date[17];
};

static void parse_request_txt(struct vcase *v)
{
    char *r = v->request, *end = r + v->request_len, *eol = memchr(r, '\n', v->request_len);
    char *sep = strstr(r, "\n\n"), *sp1, *sp2, *line;

    assert_non_null(eol);
    sp1 = memchr(r, ' ', (size_t)(eol - r));
    for (sp2 = eol; sp2 > sp1 && *sp2 != ' '; sp2--)
        ;
    memcpy(v->method, r, (size_t)(sp1 - r));
    v->target = sp1 + 1;
    v->target_len = (size_t)(sp2 - sp1 - 1);
    v->head = eol + 1;
    v->head_len = sep ? (size_t)(sep + 1 - v->head) : (size_t)(end - v->head);
    v->body = sep ? sep + 2 : end;
    v->body_len = (size_t)(end - v->body);
    for (line = eol + 1; line < v->head + v->head_len;) {
        char *nl = memchr(line, '\n', (size_t)(v->head + v->head_len - line)), *colon;
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(v->head + v->head_len - line);

        if (line[0] == ' ' || line[0] == '\t') { /* obs-fold: part of the previous value */
            char *prev = v->values[v->nh - 1];
            size_t pl = strlen(prev);
            prev = realloc(prev, pl + ll + 2);
            prev[pl] = '\n';
            memcpy(prev + pl + 1, line, ll);
            prev[pl + 1 + ll] = '\0';
            v->values[v->nh - 1] = prev;
        } else {
            colon = memchr(line, ':', ll);
            assert_non_null(colon);
            v->h[v->nh].name = line;
            v->h[v->nh].name_len = (size_t)(colon - line);
            v->values[v->nh] = strndup(colon + 1, ll - (size_t)(colon + 1 - line));
            v->nh++;
        }
        line += ll + 1;
    }
    for (size_t i = 0; i < v->nh; i++) {
        v->h[i].value = v->values[i];
        v->h[i].value_len = strlen(v->values[i]);
    }
}

static void load_case(const char *dir, struct vcase *v)
{
    char path[1600];
    json_error_t jerr;
    const char *ts;
    size_t k = 0;

    memset(v, 0, sizeof(*v));
    snprintf(path, sizeof(path), "%s/request.txt", dir);
    v->request = read_file(path, &v->request_len);
    assert_non_null(v->request);
    snprintf(path, sizeof(path), "%s/context.json", dir);
    v->ctx = json_load_file(path, 0, &jerr);
    assert_non_null(v->ctx);
    ts = json_string_value(json_object_get(v->ctx, "timestamp"));
    for (const char *p = ts; *p && k < 16; p++)
        if (*p != '-' && *p != ':')
            v->amz_date[k++] = *p;
    parse_request_txt(v);
}

static void free_case(struct vcase *v)
{
    for (size_t i = 0; i < v->nh; i++)
        free(v->values[i]);
    json_decref(v->ctx);
    free(v->request);
}

static void expect_file(const char *dir, const char *name, const char *got, size_t glen)
{
    char path[1600];
    size_t wlen = 0;
    char *want;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    want = read_file(path, &wlen);
    assert_non_null(want);
    assert_text(path, got, glen, want, wlen);
    free(want);
}

/* Sign one case in one mode and compare all four files. */
static void run_case(const char *dir, struct vcase *v, enum sp_sigv4_mode mode)
{
    json_t *cr = json_object_get(v->ctx, "credentials");
    const char *token = json_string_value(json_object_get(cr, "token"));
    struct sp_sigv4_creds c =
        creds_of(json_string_value(json_object_get(cr, "access_key_id")),
                 json_string_value(json_object_get(cr, "secret_access_key")), token);
    struct sp_sigv4_opts o =
        opts_of(json_string_value(json_object_get(v->ctx, "region")),
                json_string_value(json_object_get(v->ctx, "service")), v->amz_date);
    const char *q = memchr(v->target, '?', v->target_len);
    size_t plen = q ? (size_t)(q - v->target) : v->target_len;
    struct sp_sigv4_request r;
    struct sp_sigv4_result out = {0};
    struct sp_buf sreq;
    struct sp_err err;
    const char *pfx = mode == SP_SIGV4_MODE_HEADER ? "header" : "query";
    char name[64];

    memset(&r, 0, sizeof(r));
    r.method = v->method;
    r.method_len = strlen(v->method);
    r.path = v->target;
    r.path_len = plen;
    r.query = q ? q + 1 : NULL;
    r.query_len = q ? v->target_len - plen - 1 : 0;
    r.headers = v->h;
    r.n_headers = v->nh;
    r.body = v->body;
    r.body_len = v->body_len;
    o.mode = mode;
    o.path_mode = json_is_true(json_object_get(v->ctx, "normalize")) ? SP_SIGV4_PATH_NORMALIZE
                                                                     : SP_SIGV4_PATH_ENCODE;
    o.add_content_sha256 =
        mode == SP_SIGV4_MODE_HEADER && json_is_true(json_object_get(v->ctx, "sign_body"));
    o.token_unsigned = json_is_true(json_object_get(v->ctx, "omit_session_token"));
    o.expires = (unsigned)json_integer_value(json_object_get(v->ctx, "expiration_in_seconds"));
    if (sp_sigv4_sign(&r, &c, &o, &out, &err) != 0)
        fail_msg("%s (%s): %s", dir, pfx, err.msg);

    snprintf(name, sizeof(name), "%s-canonical-request.txt", pfx);
    expect_file(dir, name, out.canonical_request.data, out.canonical_request.len);
    snprintf(name, sizeof(name), "%s-string-to-sign.txt", pfx);
    expect_file(dir, name, out.string_to_sign.data, out.string_to_sign.len);
    snprintf(name, sizeof(name), "%s-signature.txt", pfx);
    expect_file(dir, name, out.signature, strlen(out.signature));

    /* The signed request: the request with the signer's additions. */
    sp_buf_init(&sreq, 0, 0);
    if (mode == SP_SIGV4_MODE_HEADER)
        assert_int_equal(sp_buf_printf(&sreq, NULL, "%s %.*s HTTP/1.1\n", v->method,
                                       (int)v->target_len, v->target),
                         0);
    else
        assert_int_equal(sp_buf_printf(&sreq, NULL, "%s %.*s?%s HTTP/1.1\n", v->method, (int)plen,
                                       v->target, out.query.data),
                         0);
    assert_int_equal(sp_buf_add(&sreq, v->head, v->head_len, NULL), 0);
    for (size_t i = 0; i < out.n_set; i++)
        assert_int_equal(sp_buf_printf(&sreq, NULL, "%.*s:%.*s\n", (int)out.set[i].name_len,
                                       out.set[i].name, (int)out.set[i].value_len,
                                       out.set[i].value),
                         0);
    assert_int_equal(sp_buf_add(&sreq, "\n", 1, NULL), 0);
    assert_int_equal(sp_buf_add(&sreq, v->body, v->body_len, NULL), 0);
    snprintf(name, sizeof(name), "%s-signed-request.txt", pfx);
    expect_file(dir, name, sreq.data, sreq.len);
    sp_buf_free(&sreq);
    sp_sigv4_result_free(&out);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void aws_c_auth_suite_matches_byte_for_byte(void **state)
{
    const char *shared = getenv("SP_SHARED_DIR");
    char base[1024], dir[1280], *names[128];
    size_t n = 0;
    struct dirent *de;
    DIR *d;

    assert_non_null(shared);
    snprintf(base, sizeof(base), "%s/testdata/aws-sigv4", shared);
    d = opendir(base);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL && n < SP_ARRAY_LEN(names))
        if (de->d_name[0] != '.' && strcmp(de->d_name, "README.md") != 0)
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    assert_true(n >= 38);
    for (size_t i = 0; i < n; i++) {
        struct vcase v;

        snprintf(dir, sizeof(dir), "%s/%s", base, names[i]);
        load_case(dir, &v);
        run_case(dir, &v, SP_SIGV4_MODE_HEADER);
        run_case(dir, &v, SP_SIGV4_MODE_QUERY);
        free_case(&v);
        free(names[i]);
    }
    print_message("[ sigv4    ] %zu aws-c-auth cases, header and query form, byte for byte\n", n);
}

/* ---- AWS documentation examples ---- */

/* "Examples of how to derive a signing key for Signature Version 4". */
static void signing_key_matches_the_aws_example(void **state)
{
    struct sp_sigv4_creds c = creds_of("AKID", SECRET, NULL);
    uint8_t key[32];
    char hex[65];
    struct sp_err err;

    assert_int_equal(sp_sigv4_signing_key(NULL, &c, "20120215", "us-east-1", "iam", key, &err), 0);
    sp_hex_encode(hex, key, 32);
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    assert_int_equal(sp_sigv4_signing_key(NULL, &c, "2012021", "us-east-1", "iam", key, &err), -1);
    assert_int_equal(sp_sigv4_signing_key(NULL, &c, "20120215", "US-EAST-1", "iam", key, &err), -1);
}

/* S3 "Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk", GET Object, and the presigned-URL example. */
static void s3_get_object_and_presigned_url_match_the_aws_examples(void **state)
{
    struct sp_sigv4_header h[] = {
        hdr("Host", "examplebucket.s3.amazonaws.com"),
        hdr("Range", "bytes=0-9"),
        hdr("x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        hdr("x-amz-date", "20130524T000000Z"),
    };
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_request r = request_of("GET", "/test.txt", NULL, h, 4);
    struct sp_sigv4_opts o = opts_of("us-east-1", "s3", "20130524T000000Z");
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_string_equal(
        out.authorization.data,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
        "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    sp_sigv4_result_free(&out);

    r = request_of("GET", "/test.txt", NULL, h, 1);
    r.payload_hash = SP_SIGV4_UNSIGNED_PAYLOAD;
    r.payload_hash_len = strlen(SP_SIGV4_UNSIGNED_PAYLOAD);
    o.mode = SP_SIGV4_MODE_QUERY;
    o.expires = 86400;
    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_string_equal(out.signature,
                        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    assert_string_equal(out.query.data,
                        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%"
                        "2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-"
                        "Amz-SignedHeaders=host&X-Amz-Expires=86400&X-Amz-Signature="
                        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    assert_int_equal(out.n_set, 0);
    sp_sigv4_result_free(&out);
}

/* ---- headers, paths, queries ---- */

static int sign_simple(struct sp_sigv4_request *r, const char *service, const char *list,
                       struct sp_sigv4_result *out, struct sp_err *err)
{
    struct sp_sigv4_creds c = creds_of(AKID, SECRET, NULL);
    struct sp_sigv4_opts o = opts_of("us-east-1", service, "20150830T123600Z");

    o.signed_headers = list;
    o.signed_headers_len = list ? strlen(list) : 0;
    return sp_sigv4_sign(r, &c, &o, out, err);
}

/* The canonical request's second line. */
static char *creq_line(const struct sp_sigv4_result *out, int n)
{
    static char line[512];
    const char *p = out->canonical_request.data, *e;

    for (int i = 0; i < n; i++)
        p = strchr(p, '\n') + 1;
    e = strchr(p, '\n');
    snprintf(line, sizeof(line), "%.*s", (int)(e - p), p);
    return line;
}

static void sign_all_skips_hop_by_hop_and_botocore_skipped_headers(void **state)
{
    struct sp_sigv4_header h[] = {
        hdr("Host", "example.amazonaws.com"),  hdr("User-Agent", "sdk/1"),
        hdr("Connection", "keep-alive"),       hdr("X-Amzn-Trace-Id", "Root=1"),
        hdr("Expect", "100-continue"),         hdr("Authorization", "AWS4-HMAC-SHA256 old"),
        hdr("X-Amz-Date", "20000101T000000Z"), hdr("X-Amz-Security-Token", "sdk-dummy"),
        hdr("X-Custom", "  a \t b  "),         hdr("x-custom", "c"),
    };
    struct sp_sigv4_request r = request_of("get", "/", NULL, h, SP_ARRAY_LEN(h));
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    assert_int_equal(sign_simple(&r, "service", NULL, &out, &err), 0);
    assert_string_equal(out.signed_headers.data, "host;x-amz-date;x-custom");
    assert_non_null(strstr(out.canonical_request.data, "GET\n/\n\nhost:example.amazonaws.com\n"
                                                       "x-amz-date:20150830T123600Z\n"
                                                       "x-custom:a b,c\n\n"));
    /* The SDK's stand-in token is dropped, not signed, and must be removed. */
    assert_int_equal(out.n_set, 2);
    assert_string_equal(out.set[0].name, "X-Amz-Date");
    assert_string_equal(out.set[1].name, "Authorization");
    assert_true(sp_sigv4_result_replaces(&out, "x-amz-security-token", 20));
    assert_true(sp_sigv4_result_replaces(&out, "AUTHORIZATION", 13));
    assert_false(sp_sigv4_result_replaces(&out, "x-amz-content-sha256", 20));
    sp_sigv4_result_free(&out);
}

static void caller_chosen_header_list_is_respected(void **state)
{
    struct sp_sigv4_header h[] = {
        hdr("Host", "example.amazonaws.com"),
        hdr("Content-Type", "text/plain"),
        hdr("X-Changed", "by-proxy"),
        hdr("X-Not-Signed", "x"),
        hdr("User-Agent", "ua"),
    };
    struct sp_sigv4_request r = request_of("PUT", "/k", NULL, h, SP_ARRAY_LEN(h));
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    /* An SDK's list (any case, spaces, x-amz-date and a stand-in token) plus
     * a header the proxy changed; User-Agent is signed because it is listed. */
    assert_int_equal(sign_simple(&r, "execute-api",
                                 " Content-Type;host ;x-amz-date;"
                                 "x-amz-security-token;user-agent;X-Changed",
                                 &out, &err),
                     0);
    assert_string_equal(out.signed_headers.data,
                        "content-type;host;user-agent;x-amz-date;x-changed");
    assert_null(strstr(out.canonical_request.data, "x-not-signed"));
    sp_sigv4_result_free(&out);

    /* Host is always signed. */
    assert_int_equal(sign_simple(&r, "execute-api", "content-type", &out, &err), 0);
    assert_string_equal(out.signed_headers.data, "content-type;host;x-amz-date");
    sp_sigv4_result_free(&out);

    /* A listed header the request does not have is an error. */
    assert_int_equal(sign_simple(&r, "execute-api", "host;x-missing", &out, &err), -1);
    assert_int_equal(err.code, SP_E_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "x-missing"));
    assert_null(out.canonical_request.data);
    assert_int_equal(sign_simple(&r, "execute-api", "host;;x", &out, &err), -1);
    assert_int_equal(sign_simple(&r, "execute-api", "host;a b", &out, &err), -1);
}

static void session_token_is_signed_set_and_replaces_the_sdks(void **state)
{
    struct sp_sigv4_header h[] = {hdr("Host", "sts.amazonaws.com"),
                                  hdr("X-Amz-Security-Token", "$Secret{DUMMY}")};
    struct sp_sigv4_creds c = creds_of(AKID, SECRET, "real/token+=");
    struct sp_sigv4_request r = request_of("POST", "/", "Action=GetCallerIdentity", h, 2);
    struct sp_sigv4_opts o = opts_of("us-east-1", "sts", "20150830T123600Z");
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_string_equal(out.signed_headers.data, "host;x-amz-date;x-amz-security-token");
    assert_non_null(strstr(out.canonical_request.data, "x-amz-security-token:real/token+=\n"));
    assert_null(strstr(out.canonical_request.data, "DUMMY"));
    assert_string_equal(out.set[0].name, "X-Amz-Security-Token");
    assert_string_equal(out.set[0].value, "real/token+=");
    sp_sigv4_result_free(&out);

    o.mode = SP_SIGV4_MODE_QUERY;
    o.expires = 60;
    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_non_null(strstr(out.query.data, "&X-Amz-Security-Token=real%2Ftoken%2B%3D&"));
    assert_true(out.canonical_request.sensitive && out.query.sensitive);
    sp_sigv4_result_free(&out);
}

static void s3_paths_are_kept_and_other_services_normalised_and_double_encoded(void **state)
{
    struct sp_sigv4_header h[] = {hdr("Host", "h")};
    struct sp_sigv4_request r = request_of("GET", "/a/./b/../c//d%20e~+$", NULL, h, 1);
    struct sp_sigv4_result out = {0};
    struct sp_err err;
    struct sp_sigv4_creds c = creds_of(AKID, SECRET, NULL);
    struct sp_sigv4_opts o = opts_of("us-east-1", "s3", "20150830T123600Z");

    assert_int_equal(sp_sigv4_path_mode_for("s3"), SP_SIGV4_PATH_AS_IS);
    assert_int_equal(sp_sigv4_path_mode_for("s3-object-lambda"), SP_SIGV4_PATH_AS_IS);
    assert_int_equal(sp_sigv4_path_mode_for("execute-api"), SP_SIGV4_PATH_NORMALIZE);
    assert_int_equal(sign_simple(&r, "s3", NULL, &out, &err), 0);
    assert_string_equal(creq_line(&out, 1), "/a/./b/../c//d%20e~+$");
    sp_sigv4_result_free(&out);
    assert_int_equal(sign_simple(&r, "execute-api", NULL, &out, &err), 0);
    assert_string_equal(creq_line(&out, 1), "/a/c/d%2520e~%2B%24");
    sp_sigv4_result_free(&out);
    o.path_mode = SP_SIGV4_PATH_ENCODE;
    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_string_equal(creq_line(&out, 1), "/a/./b/../c//d%2520e~%2B%24");
    sp_sigv4_result_free(&out);

    r = request_of("GET", "", NULL, h, 1);
    assert_int_equal(sign_simple(&r, "s3", NULL, &out, &err), 0);
    assert_string_equal(creq_line(&out, 1), "/");
    sp_sigv4_result_free(&out);
    r = request_of("GET", "/../..//", NULL, h, 1);
    assert_int_equal(sign_simple(&r, "lambda", NULL, &out, &err), 0);
    assert_string_equal(creq_line(&out, 1), "/");
    sp_sigv4_result_free(&out);
    r = request_of("GET", "relative", NULL, h, 1);
    assert_int_equal(sign_simple(&r, "lambda", NULL, &out, &err), -1);
}

static void query_is_decoded_reencoded_and_sorted(void **state)
{
    struct sp_sigv4_header h[] = {hdr("Host", "h")};
    struct sp_sigv4_request r =
        request_of("GET", "/", "b=2&a=%7e&a=&&A=1&c&%e1%88%b4=x+y&d=%2B%20!*'()&b=1&", h, 1);
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    assert_int_equal(sign_simple(&r, "s3", NULL, &out, &err), 0);
    assert_string_equal(creq_line(&out, 2), "%E1%88%B4=x%2By&A=1&a=&a=~&b=1&b=2&c=&"
                                            "d=%2B%20%21%2A%27%28%29");
    sp_sigv4_result_free(&out);
    r = request_of("GET", "/", "a=%zz", h, 1);
    assert_int_equal(sign_simple(&r, "s3", NULL, &out, &err), -1);
    assert_int_equal(err.code, SP_E_BAD_REQUEST);
    r = request_of("GET", "/", "a=%4", h, 1);
    assert_int_equal(sign_simple(&r, "s3", NULL, &out, &err), -1);
}

/* Re-signing an SDK's presigned URL: its X-Amz-* parameters are replaced,
 * the others kept as they were, and the parser reads the result back. */
static void presigned_url_round_trips_through_the_parser(void **state)
{
    struct sp_sigv4_header h[] = {hdr("Host", "examplebucket.s3.amazonaws.com")};
    const char *sdk = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%24Secret%7BAWS_PROD%7D%"
                      "2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-"
                      "Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF&"
                      "X-Amz-Security-Token=dummy&versionId=3";
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_request r = request_of("GET", "/test.txt", sdk, h, 1);
    struct sp_sigv4_opts o = opts_of("us-east-1", "s3", "20130524T000000Z");
    struct sp_sigv4_result out = {0}, clean = {0};
    struct sp_sigv4_auth a;
    struct sp_err err;

    assert_int_equal(sp_sigv4_parse_presigned(sdk, strlen(sdk), &a, &err), 0);
    assert_string_equal(a.key_id, "$Secret{AWS_PROD}");
    assert_string_equal(a.date, "20130524");
    assert_string_equal(a.region, "us-east-1");
    assert_string_equal(a.service, "s3");
    assert_string_equal(a.amz_date, "20130524T000000Z");
    assert_int_equal(a.expires, 86400);
    assert_string_equal(a.signed_headers, "host");
    assert_string_equal(a.signature,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_true(a.presigned && a.has_token);

    r.payload_hash = SP_SIGV4_UNSIGNED_PAYLOAD;
    r.payload_hash_len = strlen(SP_SIGV4_UNSIGNED_PAYLOAD);
    o.mode = SP_SIGV4_MODE_QUERY;
    o.expires = a.expires;
    o.signed_headers = a.signed_headers;
    o.signed_headers_len = strlen(a.signed_headers);
    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    assert_int_equal(strncmp(out.query.data, "versionId=3&X-Amz-Algorithm=", 28), 0);
    r.query = "versionId=3";
    r.query_len = strlen(r.query);
    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &clean, &err), 0);
    assert_string_equal(out.query.data, clean.query.data);
    assert_string_equal(out.canonical_request.data, clean.canonical_request.data);
    assert_int_equal(sp_sigv4_parse_presigned(out.query.data, out.query.len, &a, &err), 0);
    assert_string_equal(a.key_id, DOC_AKID);
    assert_string_equal(a.signature, out.signature);
    assert_false(a.has_token);
    sp_sigv4_result_free(&out);
    sp_sigv4_result_free(&clean);
}

/* ---- the signing-key cache ---- */

static void key_cache_hits_evicts_and_tells_secrets_apart(void **state)
{
    struct sp_err err;
    struct sp_sigv4_key_cache *kc = sp_sigv4_key_cache_new(2, &err);
    struct sp_sigv4_creds a = creds_of(AKID, SECRET, NULL), b = creds_of(AKID, "other", NULL);
    uint8_t k1[32], k2[32], plain[32];
    uint64_t hits, misses;

    assert_non_null(kc);
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150830", "us-east-1", "s3", k1, &err), 0);
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150830", "us-east-1", "s3", k2, &err), 0);
    assert_int_equal(sp_sigv4_signing_key(NULL, &a, "20150830", "us-east-1", "s3", plain, &err), 0);
    assert_memory_equal(k1, plain, 32);
    assert_memory_equal(k2, plain, 32);
    sp_sigv4_key_cache_stats(kc, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    /* Same scope, another secret: its own entry, its own key. */
    assert_int_equal(sp_sigv4_signing_key(kc, &b, "20150830", "us-east-1", "s3", k2, &err), 0);
    assert_memory_not_equal(k1, k2, 32);
    /* A third scope evicts the least recently used (a's). */
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150831", "us-east-1", "s3", k2, &err), 0);
    assert_int_equal(sp_sigv4_signing_key(kc, &b, "20150830", "us-east-1", "s3", k2, &err), 0);
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150830", "us-east-1", "s3", k1, &err), 0);
    assert_memory_equal(k1, plain, 32);
    sp_sigv4_key_cache_stats(kc, &hits, &misses);
    assert_int_equal(hits, 2);
    assert_int_equal(misses, 4);
    /* Region and service are part of the key. */
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150830", "us-east-2", "s3", k2, &err), 0);
    assert_memory_not_equal(k1, k2, 32);
    assert_int_equal(sp_sigv4_signing_key(kc, &a, "20150830", "us-east-1", "sts", k2, &err), 0);
    assert_memory_not_equal(k1, k2, 32);
    sp_sigv4_key_cache_free(kc);
    sp_sigv4_key_cache_free(NULL);
    assert_null(sp_sigv4_key_cache_new(100000, &err));
}

static void signing_through_the_cache_gives_the_same_signature(void **state)
{
    struct sp_err err;
    struct sp_sigv4_key_cache *kc = sp_sigv4_key_cache_new(0, &err);
    struct sp_sigv4_header h[] = {hdr("Host", "example.amazonaws.com")};
    struct sp_sigv4_request r = request_of("GET", "/", NULL, h, 1);
    struct sp_sigv4_creds c = creds_of(AKID, SECRET, NULL);
    struct sp_sigv4_opts o = opts_of("us-east-1", "service", "20150830T123600Z");
    struct sp_sigv4_result out = {0};

    o.cache = kc;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
        /* get-vanilla from the test suite */
        assert_string_equal(out.signature,
                            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        sp_sigv4_result_free(&out);
    }
    sp_sigv4_key_cache_free(kc);
}

/* ---- parsing an SDK's Authorization header ---- */

static void authorization_parser_accepts_sdk_forms_and_references(void **state)
{
    static const struct {
        const char *value, *key_id;
    } good[] = {
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
         "SignedHeaders=content-type;host;x-amz-date, "
         "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
         "AKIDEXAMPLE"},
        {"  AWS4-HMAC-SHA256\tCredential = $Secret{AWS_PROD}/20150830/us-east-1/iam/aws4_request"
         " ,SignedHeaders=content-type;host;x-amz-date,Signature="
         "5D672D79C15B13162D9279B0855CFBA6789A8EDB4C82C400E06B5924A6F2B5D7  ",
         "$Secret{AWS_PROD}"},
        {"AWS4-HMAC-SHA256 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2"
         "b5d7,SignedHeaders=content-type;host;x-amz-date,Credential=$secret:Zm9vYmFyYmF6cXV4cXV1"
         "eA/20150830/us-east-1/iam/aws4_request",
         "$secret:Zm9vYmFyYmF6cXV4cXV1eA"},
        {"AWS4-HMAC-SHA256 Credential=%24Secret%7BAWS_PROD%7D/20150830/us-east-1/iam/aws4_request, "
         "SignedHeaders=content-type;host;x-amz-date, "
         "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
         "%24Secret%7BAWS_PROD%7D"},
    };
    struct sp_sigv4_auth a;
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(good); i++) {
        if (sp_sigv4_parse_authorization(good[i].value, strlen(good[i].value), &a, &err) != 0)
            fail_msg("case %zu: %s", i, err.msg);
        assert_string_equal(a.key_id, good[i].key_id);
        assert_int_equal(a.key_id_len, strlen(good[i].key_id));
        assert_string_equal(a.date, "20150830");
        assert_string_equal(a.region, "us-east-1");
        assert_string_equal(a.service, "iam");
        assert_string_equal(a.signed_headers, "content-type;host;x-amz-date");
        assert_string_equal(a.signature,
                            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
        assert_false(a.presigned);
    }
}

#define SIG64 "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
#define CRED "Credential=SECRETKEYREF/20150830/us-east-1/iam/aws4_request"

static void authorization_parser_refuses_malformed_input(void **state)
{
    static const char *const bad[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA1 " CRED ", SignedHeaders=host, Signature=" SIG64,
        "aws4-hmac-sha256 " CRED ", SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256" CRED ", SignedHeaders=host, Signature=" SIG64,
        "Bearer " CRED,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host",
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host, Signature=" SIG64 ",",
        "AWS4-HMAC-SHA256 " CRED ",, SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED " SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", " CRED ", SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host, Signature=" SIG64 ", Extra=1",
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;;x-amz-date, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=Host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;, Signature=" SIG64,
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host, Signature=" SIG64 "0",
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host, Signature=5d67",
        "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host, Signature=z"
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d",
        "AWS4-HMAC-SHA256 Credential=SECRETKEYREF/20150830/us-east-1/iam/aws4_reques, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=SECRETKEYREF/2015083/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=SECRETKEYREF/20150830/US-EAST-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=SECRETKEYREF/20150830/us-east-1//aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=SECRETKEYREF, SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 =x, SignedHeaders=host, Signature=" SIG64,
        "AWS4-HMAC-SHA256 Credential=SECRET\x01KEYREF/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=" SIG64,
    };
    struct sp_sigv4_auth a;
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        sp_err_clear(&err);
        if (sp_sigv4_parse_authorization(bad[i], strlen(bad[i]), &a, &err) != -1)
            fail_msg("case %zu was accepted: %s", i, bad[i]);
        assert_int_equal(err.code, SP_E_BAD_REQUEST);
        assert_true(err.msg[0] != '\0');
        assert_null(strstr(err.msg, "SECRETKEYREF"));
    }
    /* Length-limited: nothing past len is read. */
    assert_int_equal(sp_sigv4_parse_authorization("AWS4-HMAC-SHA256 " CRED, 10, &a, &err), -1);
}

static void presigned_parser_refuses_malformed_queries(void **state)
{
#define PQ(alg, cred, date, exp, sh, sig)                                                          \
    "X-Amz-Algorithm=" alg "&X-Amz-Credential=" cred "&X-Amz-Date=" date "&X-Amz-Expires=" exp     \
    "&X-Amz-SignedHeaders=" sh "&X-Amz-Signature=" sig
#define GOODCRED "SECRETKEYREF%2F20150830%2Fus-east-1%2Fs3%2Faws4_request"
    static const char *const bad[] = {
        "",
        "a=b",
        PQ("AWS4-HMAC-SHA1", GOODCRED, "20150830T123600Z", "60", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", "SECRETKEYREF", "20150830T123600Z", "60", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830", "60", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150831T123600Z", "60", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "0", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "604801", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "-1", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "1e3", "host", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "60", "host%3B", SIG64),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "60", "host", "abc"),
        PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "60", "host", SIG64) "&X-Amz-Date=1",
        PQ("AWS4-HMAC-SHA256", GOODCRED "%", "20150830T123600Z", "60", "host", SIG64),
        "X-Amz-Credential=" GOODCRED "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&"
        "X-Amz-SignedHeaders=host&X-Amz-Signature=" SIG64,
    };
    const char *good = PQ("AWS4-HMAC-SHA256", GOODCRED, "20150830T123600Z", "604800",
                          "host%3Bx-amz-meta-a", SIG64) "&&x=%zz";
    struct sp_sigv4_auth a;
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        if (sp_sigv4_parse_presigned(bad[i], strlen(bad[i]), &a, &err) != -1)
            fail_msg("case %zu was accepted: %s", i, bad[i]);
        assert_int_equal(err.code, SP_E_BAD_REQUEST);
        assert_null(strstr(err.msg, "SECRETKEYREF"));
    }
    /* Other parameters are not ours to judge, even malformed ones. */
    assert_int_equal(sp_sigv4_parse_presigned(good, strlen(good), &a, &err), 0);
    assert_int_equal(a.expires, 604800);
    assert_string_equal(a.signed_headers, "host;x-amz-meta-a");
    assert_int_equal(sp_sigv4_parse_presigned(NULL, 0, &a, &err), -1);
}

/* ---- every malformed signing input fails cleanly ---- */

static void malformed_signing_inputs_fail_without_leaking(void **state)
{
    struct sp_sigv4_header h[] = {hdr("Host", "h"), hdr("X-Ok", "v")};
    struct sp_sigv4_header badname[] = {hdr("Host", "h"), hdr("Bad Name", "v")};
    struct sp_sigv4_header nohost[] = {hdr("X-Ok", "v")};
    struct sp_sigv4_header twosha[] = {hdr("Host", "h"), hdr("X-Amz-Content-Sha256", "a"),
                                       hdr("x-amz-content-sha256", "b")};
    struct sp_sigv4_creds c = creds_of(AKID, "TOPSECRETVALUE", NULL);
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    for (int i = 0; i < 16; i++) {
        struct sp_sigv4_request r = request_of("GET", "/", "a=1", h, 2);
        struct sp_sigv4_opts o = opts_of("us-east-1", "s3", "20150830T123600Z");
        struct sp_sigv4_creds cc = c;

        switch (i) {
        case 0:
            o.amz_date = "20150830T123600";
            break;
        case 1:
            o.amz_date = "2015-08-30T12:36:00Z";
            break;
        case 2:
            o.region = "us east 1";
            break;
        case 3:
            o.service = "";
            break;
        case 4:
            r.headers = badname;
            break;
        case 5:
            r.headers = nohost;
            r.n_headers = 1;
            break;
        case 6:
            r.query = "a=%G0";
            r.query_len = 5;
            break;
        case 7:
            r.method = "GE T";
            r.method_len = 4;
            break;
        case 8:
            cc = creds_of("AK/ID", "TOPSECRETVALUE", NULL);
            break;
        case 9:
            cc = creds_of(AKID, "TOPSECRETVALUE", "tok en");
            break;
        case 10:
            cc = creds_of(AKID, "", NULL);
            break;
        case 11:
            o.mode = SP_SIGV4_MODE_QUERY;
            o.expires = 0;
            break;
        case 12:
            o.mode = SP_SIGV4_MODE_QUERY;
            o.expires = 604801;
            break;
        case 13:
            r.payload_hash = "bad hash";
            r.payload_hash_len = 8;
            break;
        case 14:
            r.headers = twosha;
            r.n_headers = 3;
            break;
        case 15:
            r.path = "/a?b";
            r.path_len = 4;
            break;
        }
        sp_err_clear(&err);
        if (sp_sigv4_sign(&r, &cc, &o, &out, &err) != -1)
            fail_msg("case %d was signed", i);
        assert_int_equal(err.code, SP_E_BAD_REQUEST);
        assert_null(strstr(err.msg, "TOPSECRETVALUE"));
        assert_null(out.canonical_request.data);
        assert_null(out.authorization.data);
        assert_null(out.token.data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aws_c_auth_suite_matches_byte_for_byte),
        cmocka_unit_test(signing_key_matches_the_aws_example),
        cmocka_unit_test(s3_get_object_and_presigned_url_match_the_aws_examples),
        cmocka_unit_test(sign_all_skips_hop_by_hop_and_botocore_skipped_headers),
        cmocka_unit_test(caller_chosen_header_list_is_respected),
        cmocka_unit_test(session_token_is_signed_set_and_replaces_the_sdks),
        cmocka_unit_test(s3_paths_are_kept_and_other_services_normalised_and_double_encoded),
        cmocka_unit_test(query_is_decoded_reencoded_and_sorted),
        cmocka_unit_test(presigned_url_round_trips_through_the_parser),
        cmocka_unit_test(key_cache_hits_evicts_and_tells_secrets_apart),
        cmocka_unit_test(signing_through_the_cache_gives_the_same_signature),
        cmocka_unit_test(authorization_parser_accepts_sdk_forms_and_references),
        cmocka_unit_test(authorization_parser_refuses_malformed_input),
        cmocka_unit_test(presigned_parser_refuses_malformed_queries),
        cmocka_unit_test(malformed_signing_inputs_fail_without_leaking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
