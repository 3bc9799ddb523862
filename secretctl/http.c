/*
 * http.c - secretctl's HTTP client: one libcurl easy handle, one request at
 * a time. It owns URL building (percent-encoding), the request options that
 * keep the API key and values safe (bearer auth through libcurl, never a
 * proxy from the environment, no redirects, timeouts, a response size
 * limit, wiped buffers), and turning failures into messages and exit codes.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_S 5L

void ctl_resp_free(struct ctl_resp *r)
{
    json_decref(r->json);
    r->json = NULL;
    sp_buf_free(&r->body);
}

/* ---- URLs ---- */

static int encode(struct sp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '~';
        /* '.' is encoded too, so "." and ".." can never become dot segments. */
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (sp_buf_add(b, keep ? (const char *)p : esc, keep ? 1 : 3, NULL) < 0)
            return -1;
    }
    return 0;
}

int ctl_path_add(struct sp_buf *b, const char *seg)
{
    if (sp_buf_addstr(b, "/", NULL) < 0)
        return -1;
    return encode(b, seg);
}

int ctl_query_add(struct sp_buf *b, const char *name, const char *value)
{
    if (!value)
        return 0;
    if (sp_buf_addstr(b, memchr(b->data ? b->data : "", '?', b->len) ? "&" : "?", NULL) < 0 ||
        encode(b, name) < 0 || sp_buf_addstr(b, "=", NULL) < 0)
        return -1;
    return encode(b, value);
}

/* The URL as it may be shown: without any user:password@ part. */
static void shown_url(const char *url, char *out, size_t outsz)
{
    const char *auth = strstr(url, "://"), *end, *at;

    if (!auth) {
        snprintf(out, outsz, "%s", url);
        return;
    }
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(out, outsz, "%s", url);
        return;
    }
    snprintf(out, outsz, "%.*s%s", (int)(auth - url), url, at + 1);
}

/* ---- callbacks ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct ctl_resp *r = arg;

    if (sp_buf_add(&r->body, p, size * n, NULL) < 0) {
        r->too_big = 1;
        return 0;
    }
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    static const char name[] = "secretproxy-request-id:";
    struct ctl_resp *r = arg;
    size_t len = size * n, i = sizeof(name) - 1, o = 0;

    if (len < i || strncasecmp(p, name, i) != 0)
        return len;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    for (; i < len && o + 1 < sizeof(r->request_id); i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            break;
        r->request_id[o++] = c;
    }
    r->request_id[o] = '\0';
    return len;
}

/* ---- failures ---- */

/* Replace control characters so a server message cannot drive the terminal. */
static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* A failure of ours (no server error object): stderr, and with --json an
 * error object on stdout too so scripts always get JSON. */
static int local_failure(struct ctl *c, const char *code, const char *msg)
{
    fprintf(stderr, "secretctl: %s\n", msg);
    if (c->json) {
        json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
        if (j)
            (void)ctl_print_json(j);
        json_decref(j);
    }
    return CTL_EXIT_REFUSED;
}

static int transport_failure(struct ctl *c, CURLcode e, const char *errbuf, const char *url,
                             const struct ctl_resp *r)
{
    char shown[512], msg[900];

    shown_url(url, shown, sizeof(shown));
    if (r->too_big) {
        snprintf(msg, sizeof(msg), "the answer from %s is larger than %zu MiB", shown,
                 CTL_RESP_MAX >> 20);
        return local_failure(c, "response_too_large", msg);
    }
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(e);
    const char *code = "unreachable";
    if (e == CURLE_OPERATION_TIMEDOUT && r->status == 0) {
        code = "timeout";
        snprintf(msg, sizeof(msg), "no answer from the API at %s within %ld s: %s", shown,
                 c->timeout_s, why);
    } else if (e == CURLE_COULDNT_RESOLVE_HOST || e == CURLE_COULDNT_CONNECT ||
               e == CURLE_UNSUPPORTED_PROTOCOL || e == CURLE_URL_MALFORMAT ||
               e == CURLE_SSL_CONNECT_ERROR || e == CURLE_PEER_FAILED_VERIFICATION) {
        snprintf(msg, sizeof(msg), "cannot reach the API at %s: %s", shown, why);
    } else {
        code = "transport_error";
        snprintf(msg, sizeof(msg), "the request to %s failed: %s", shown, why);
    }
    clean(msg);
    return local_failure(c, code, msg);
}

static int http_failure(struct ctl *c, const struct ctl_resp *r)
{
    const json_t *e = json_object_get(r->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char line[600];

    if (!code) {
        snprintf(line, sizeof(line), "HTTP %ld from the API (not a secretproxy error)", r->status);
        return local_failure(c, "http_error", line);
    }
    snprintf(line, sizeof(line), "%s: %s", code, msg ? msg : "");
    clean(line);
    fprintf(stderr, "secretctl: %s\n", line);
    if (c->verbose && r->request_id[0])
        fprintf(stderr, "secretctl: request id %s\n", r->request_id);
    if (c->json)
        (void)ctl_print_json(r->json);
    return CTL_EXIT_REFUSED;
}

/* ---- the request ---- */

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK)                                             \
            goto fail;                                                                             \
    } while (0)

static int set_options(struct ctl *c, const char *method, const char *url,
                       const struct sp_buf *body, struct curl_slist *hdrs, struct ctl_resp *r,
                       char *errbuf)
{
    CURL *h = c->curl;
    long connect_s = c->timeout_s < CONNECT_TIMEOUT_S ? c->timeout_s : CONNECT_TIMEOUT_S;

    curl_easy_reset(h);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* The API itself never goes through HTTP_PROXY/HTTPS_PROXY/ALL_PROXY. */
    SET(CURLOPT_PROXY, "");
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_CONNECTTIMEOUT, connect_s);
    SET(CURLOPT_TIMEOUT, c->timeout_s);
    SET(CURLOPT_USERAGENT, "secretctl/" SP_VERSION);
    /* libcurl adds the Authorization header itself, from this copy. */
    SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    SET(CURLOPT_XOAUTH2_BEARER, c->key);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    if (body) {
        /* Borrowed, not copied (CURLOPT_COPYPOSTFIELDS would copy a value). */
        SET(CURLOPT_POSTFIELDS, body->data);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    } else if (strcmp(method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDS, "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        SET(CURLOPT_CUSTOMREQUEST, method);
    return 0;
fail:
    return -1;
}

#undef SET

static int finish_response(struct ctl *c, struct ctl_resp *r)
{
    json_error_t je;

    if (r->body.len > 0) {
        r->json = json_loadb(r->body.data, r->body.len, JSON_ALLOW_NUL, &je);
        if (r->json && !json_is_object(r->json)) {
            json_decref(r->json);
            r->json = NULL;
        }
    }
    if (r->status < 200 || r->status > 299)
        return http_failure(c, r);
    if (!r->json && r->body.len > 0) {
        char msg[120];
        snprintf(msg, sizeof(msg),
                 "the API answered HTTP %ld with a body that is not a JSON object", r->status);
        return local_failure(c, "bad_response", msg);
    }
    if (!r->json && !(r->json = json_object()))
        return local_failure(c, "internal", "out of memory");
    return CTL_EXIT_OK;
}

int ctl_call(struct ctl *c, const char *method, const char *path, const struct sp_buf *body,
             struct ctl_resp *r)
{
    /* "Expect:" stops libcurl waiting for a 100 Continue on larger bodies. */
    static const char *const lines[] = {"Accept: application/json",
                                        "Expect:", "Content-Type: application/json"};
    struct sp_buf url;
    struct curl_slist *hdrs = NULL, *t;
    char errbuf[CURL_ERROR_SIZE] = "", shown[512];
    size_t baselen = strlen(c->api);
    int64_t t0 = sp_mono_us();
    CURLcode e;
    int rc;

    sp_buf_init(&r->body, CTL_RESP_MAX, 1);
    sp_buf_init(&url, 0, 0);
    while (baselen > 0 && c->api[baselen - 1] == '/')
        baselen--;
    if (sp_buf_add(&url, c->api, baselen, NULL) < 0 || sp_buf_addstr(&url, path, NULL) < 0) {
        rc = local_failure(c, "internal", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < (body ? 3u : 2u); i++) {
        if (!(t = curl_slist_append(hdrs, lines[i]))) {
            rc = local_failure(c, "internal", "out of memory");
            goto out;
        }
        hdrs = t;
    }
    if (set_options(c, method, url.data, body, hdrs, r, errbuf) < 0) {
        rc = local_failure(c, "internal", "libcurl refused an option");
        goto out;
    }
    shown_url(url.data, shown, sizeof(shown));
    if (c->verbose)
        fprintf(stderr, "secretctl: > %s %s\n", method, shown);
    e = curl_easy_perform(c->curl);
    if (e != CURLE_OK) {
        rc = transport_failure(c, e, errbuf, url.data, r);
        goto out;
    }
    if (curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status) != CURLE_OK)
        r->status = 0;
    if (c->verbose)
        fprintf(stderr, "secretctl: < %ld (%.1f ms%s%s)\n", r->status,
                (double)(sp_mono_us() - t0) / 1000.0, r->request_id[0] ? ", request id " : "",
                r->request_id);
    rc = finish_response(c, r);
out:
    /* Drop the handle's pointers to our buffers; the connection stays cached. */
    curl_easy_reset(c->curl);
    curl_slist_free_all(hdrs);
    sp_buf_free(&url);
    return rc;
}
