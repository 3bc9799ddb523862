/*
 * sigv4_testutil.h - helpers shared by test_sigv4.c and test_sigv4_chunked.c:
 * the example credentials, building requests and options, reading files,
 * and comparing texts with a readable failure. Include after <cmocka.h>.
 */
#ifndef SP_TEST_SIGV4_UTIL_H
#define SP_TEST_SIGV4_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DOC_AKID "AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (len)
        *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static inline struct sp_sigv4_header hdr(const char *name, const char *value)
{
    struct sp_sigv4_header h = {name, strlen(name), value, strlen(value)};
    return h;
}

static inline struct sp_sigv4_creds creds_of(const char *akid, const char *secret,
                                             const char *token)
{
    struct sp_sigv4_creds c = {akid,           strlen(akid), secret,
                               strlen(secret), token,        token ? strlen(token) : 0};
    return c;
}

static inline struct sp_sigv4_request request_of(const char *method, const char *path,
                                                 const char *query, const struct sp_sigv4_header *h,
                                                 size_t n)
{
    struct sp_sigv4_request r;

    memset(&r, 0, sizeof(r));
    r.method = method;
    r.method_len = strlen(method);
    r.path = path;
    r.path_len = strlen(path);
    r.query = query;
    r.query_len = query ? strlen(query) : 0;
    r.headers = h;
    r.n_headers = n;
    return r;
}

static inline struct sp_sigv4_opts opts_of(const char *region, const char *service,
                                           const char *date)
{
    struct sp_sigv4_opts o;

    memset(&o, 0, sizeof(o));
    o.region = region;
    o.service = service;
    o.amz_date = date;
    o.path_mode = sp_sigv4_path_mode_for(service);
    return o;
}

/* Compare, and on a mismatch print both so a failure explains itself. */
static inline void assert_text(const char *what, const char *got, size_t glen, const char *want,
                               size_t wlen)
{
    if (glen != wlen || memcmp(got, want, glen) != 0) {
        print_error("%s differs:\n--- got (%zu)\n%.*s\n--- want (%zu)\n%.*s\n", what, glen,
                    (int)glen, got, wlen, (int)wlen, want);
        fail();
    }
}

#endif
