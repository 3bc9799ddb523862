/*
 * sigv4_tool.c - signs requests described in JSON with resolver/sigv4, for
 * tests/e2e/test_sigv4_botocore.py, which compares the results with
 * botocore's. Reads one JSON object per line on stdin:
 *
 *   {"mode": "header"|"query", "method", "path", "query"?,
 *    "headers": [[name, value], ...], "body_b64"?, "payload_hash"?,
 *    "access_key_id", "secret_access_key", "session_token"?,
 *    "region", "service", "amz_date",
 *    "path_mode": "normalize"|"encode"|"as_is"? (default: by service),
 *    "signed_headers"?, "add_content_sha256"?, "token_unsigned"?, "expires"?}
 *
 * and writes one JSON object per line on stdout: {"ok": true,
 * "canonical_request", "string_to_sign", "signature", "signed_headers",
 * "authorization" | "query", "set_headers": [[name, value], ...]} or
 * {"ok": false, "error": <wire code>, "message"}. One signing-key cache (of
 * 4 entries, so that it also evicts) serves every line.
 *
 * Test tooling only: it prints the canonical request, which may hold secret
 * values; never point it at real credentials.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAX_HEADERS 256

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A string field, or its base64 form when the bytes are not UTF-8. */
static void put_bytes(json_t *o, const char *key, const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);

    if (!s) {
        char *b = malloc(sp_base64_enc_len(n) + 1), name[64];
        if (!b)
            return;
        sp_base64_encode(b, p, n);
        (void)snprintf(name, sizeof(name), "%s_b64", key);
        json_object_set_new(o, name, json_string(b));
        free(b);
        return;
    }
    json_object_set_new(o, key, s);
}

static enum sp_sigv4_path_mode path_mode(json_t *in, const char *service)
{
    const char *m = str(in, "path_mode");

    if (!m)
        return sp_sigv4_path_mode_for(service);
    if (strcmp(m, "as_is") == 0)
        return SP_SIGV4_PATH_AS_IS;
    if (strcmp(m, "encode") == 0)
        return SP_SIGV4_PATH_ENCODE;
    return SP_SIGV4_PATH_NORMALIZE;
}

/* The request, credentials and options a JSON line describes; strings
 * point into in, the body (decoded) is returned for the caller to free. */
static unsigned char *from_json(json_t *in, struct sp_sigv4_header *h, struct sp_sigv4_request *r,
                                struct sp_sigv4_creds *c, struct sp_sigv4_opts *o)
{
    json_t *hs = json_object_get(in, "headers");
    const char *b64 = str(in, "body_b64"), *q = str(in, "query"), *ph = str(in, "payload_hash");
    const char *mode = str(in, "mode");
    unsigned char *body = NULL;
    size_t blen = 0, nh = json_array_size(hs);

    memset(r, 0, sizeof(*r));
    memset(c, 0, sizeof(*c));
    memset(o, 0, sizeof(*o));
    if (nh > MAX_HEADERS)
        nh = MAX_HEADERS;
    for (size_t i = 0; i < nh; i++) {
        json_t *pair = json_array_get(hs, i);
        h[i].name = json_string_value(json_array_get(pair, 0));
        h[i].name_len = json_string_length(json_array_get(pair, 0));
        h[i].value = json_string_value(json_array_get(pair, 1));
        h[i].value_len = json_string_length(json_array_get(pair, 1));
    }
    if (b64) {
        body = malloc(sp_base64_dec_max(strlen(b64)) + 1);
        if (!body || sp_base64_decode(body, &blen, b64, strlen(b64)) < 0)
            blen = 0;
    }
    r->method = str(in, "method");
    r->method_len = r->method ? strlen(r->method) : 0;
    r->path = str(in, "path");
    r->path_len = json_string_length(json_object_get(in, "path"));
    r->query = q;
    r->query_len = q ? strlen(q) : 0;
    r->headers = h;
    r->n_headers = nh;
    r->body = body;
    r->body_len = blen;
    r->payload_hash = ph;
    r->payload_hash_len = ph ? strlen(ph) : 0;
    c->access_key_id = str(in, "access_key_id");
    c->access_key_id_len = c->access_key_id ? strlen(c->access_key_id) : 0;
    c->secret_key = str(in, "secret_access_key");
    c->secret_key_len = c->secret_key ? strlen(c->secret_key) : 0;
    c->session_token = str(in, "session_token");
    c->session_token_len = c->session_token ? strlen(c->session_token) : 0;
    o->mode = mode && strcmp(mode, "query") == 0 ? SP_SIGV4_MODE_QUERY : SP_SIGV4_MODE_HEADER;
    o->region = str(in, "region");
    o->service = str(in, "service");
    o->amz_date = str(in, "amz_date");
    o->path_mode = path_mode(in, o->service);
    o->signed_headers = str(in, "signed_headers");
    o->signed_headers_len = o->signed_headers ? strlen(o->signed_headers) : 0;
    o->add_content_sha256 = json_is_true(json_object_get(in, "add_content_sha256"));
    o->token_unsigned = json_is_true(json_object_get(in, "token_unsigned"));
    o->expires = (unsigned)json_integer_value(json_object_get(in, "expires"));
    return body;
}

static json_t *sign_one(json_t *in, struct sp_sigv4_key_cache *cache)
{
    struct sp_sigv4_header h[MAX_HEADERS];
    struct sp_sigv4_request r;
    struct sp_sigv4_creds c;
    struct sp_sigv4_opts o;
    struct sp_sigv4_result out = {0};
    struct sp_err err = {0};
    json_t *res = json_object(), *set;
    unsigned char *body = from_json(in, h, &r, &c, &o);

    o.cache = cache;
    if (sp_sigv4_sign(&r, &c, &o, &out, &err) < 0) {
        json_object_set_new(res, "ok", json_false());
        json_object_set_new(res, "error", json_string(sp_err_wire(err.code)));
        json_object_set_new(res, "message", json_string(err.msg));
        free(body);
        return res;
    }
    json_object_set_new(res, "ok", json_true());
    put_bytes(res, "canonical_request", out.canonical_request.data, out.canonical_request.len);
    put_bytes(res, "string_to_sign", out.string_to_sign.data, out.string_to_sign.len);
    json_object_set_new(res, "signature", json_string(out.signature));
    json_object_set_new(res, "signed_headers", json_string(out.signed_headers.data));
    if (o.mode == SP_SIGV4_MODE_QUERY)
        put_bytes(res, "query", out.query.data, out.query.len);
    else
        json_object_set_new(res, "authorization", json_string(out.authorization.data));
    set = json_array();
    for (size_t i = 0; i < out.n_set; i++)
        json_array_append_new(set, json_pack("[s#s#]", out.set[i].name, out.set[i].name_len,
                                             out.set[i].value, out.set[i].value_len));
    json_object_set_new(res, "set_headers", set);
    sp_sigv4_result_free(&out);
    free(body);
    return res;
}

int main(void)
{
    struct sp_sigv4_key_cache *cache;
    struct sp_err err;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;

    cache = sp_sigv4_key_cache_new(4, &err);
    if (!cache) {
        (void)fprintf(stderr, "sigv4_tool: %s\n", err.msg);
        return 1;
    }
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t jerr;
        json_t *in, *res;
        char *text;

        if (n == 1 && line[0] == '\n')
            continue;
        in = json_loadb(line, (size_t)n, 0, &jerr);
        if (!in) {
            (void)fprintf(stderr, "sigv4_tool: bad JSON: %s\n", jerr.text);
            status = 1;
            break;
        }
        res = sign_one(in, cache);
        text = json_dumps(res, JSON_COMPACT);
        if (!text || puts(text) == EOF)
            status = 1;
        free(text);
        json_decref(res);
        json_decref(in);
        if (status)
            break;
    }
    free(line);
    sp_sigv4_key_cache_free(cache);
    return status;
}
