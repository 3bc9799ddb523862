/*
 * bench_sigv4.c - SigV4 signatures per second: a small request (with and
 * without the signing-key cache), a presigned URL, a 1 MiB body (hashing
 * dominates), and aws-chunked re-signing throughput. Prints figures; never
 * fails on speed.
 *
 *   bench_sigv4 [seconds per figure, default 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

static double seconds = 1.0;

typedef int (*bench_fn)(void *arg);

/* Run fn until the time is up; returns calls per second. */
static double rate(bench_fn fn, void *arg)
{
    int64_t start = sp_mono_us(), now;
    long n = 0;

    do {
        for (int i = 0; i < 16; i++)
            if (fn(arg) != 0) {
                (void)fprintf(stderr, "bench_sigv4: signing failed\n");
                exit(1);
            }
        n += 16;
        now = sp_mono_us();
    } while (now - start < (int64_t)(seconds * 1e6));
    return (double)n * 1e6 / (double)(now - start);
}

struct job {
    struct sp_sigv4_request req;
    struct sp_sigv4_creds creds;
    struct sp_sigv4_opts opts;
};

static int sign_once(void *arg)
{
    struct job *j = arg;
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    if (sp_sigv4_sign(&j->req, &j->creds, &j->opts, &out, &err) != 0)
        return -1;
    sp_sigv4_result_free(&out);
    return 0;
}

struct chunk_job {
    struct sp_sigv4_creds creds;
    struct sp_sigv4_opts opts;
    const char *body;
    size_t len;
    struct sp_buf out;
};

static int rechunk_once(void *arg)
{
    struct chunk_job *j = arg;
    struct sp_sigv4_chain *ch = sp_sigv4_chain_new(
        &j->creds, &j->opts, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        NULL);
    struct sp_sigv4_chunked *c = sp_sigv4_chunked_new(SP_SIGV4_CHUNKED_SIGNED, ch, 0, NULL);
    int rc;

    if (!c)
        return -1;
    sp_buf_reset(&j->out);
    rc = sp_sigv4_chunked_feed(c, j->body, j->len, &j->out, NULL);
    if (rc == 0)
        rc = sp_sigv4_chunked_finish(c, NULL);
    sp_sigv4_chunked_free(c);
    return rc;
}

/* 1 MiB of data in 64 KiB signed chunks, as SDKs send it. */
static char *chunked_body(size_t *len)
{
    const char *sig = "0000000000000000000000000000000000000000000000000000000000000000";
    struct sp_buf b;
    static char data[65536];

    memset(data, 'x', sizeof(data));
    sp_buf_init(&b, 0, 0);
    for (int i = 0; i < 16; i++)
        if (sp_buf_printf(&b, NULL, "10000;chunk-signature=%s\r\n", sig) < 0 ||
            sp_buf_add(&b, data, sizeof(data), NULL) < 0 || sp_buf_add(&b, "\r\n", 2, NULL) < 0)
            exit(1);
    if (sp_buf_printf(&b, NULL, "0;chunk-signature=%s\r\n\r\n", sig) < 0)
        exit(1);
    return sp_buf_steal(&b, len);
}

int main(int argc, char **argv)
{
    struct sp_sigv4_header h[] = {
        {"Host", 4, "examplebucket.s3.amazonaws.com", 30},
        {"Content-Type", 12, "application/json", 16},
        {"X-Amz-Target", 12, "DynamoDB_20120810.GetItem", 25},
        {"User-Agent", 10, "aws-sdk-go-v2/1.24.0 os/linux", 29},
    };
    struct sp_err err;
    struct sp_sigv4_key_cache *cache = sp_sigv4_key_cache_new(0, &err);
    struct job j;
    struct chunk_job cj;
    char *big = malloc(1 << 20);
    double r;

    if (argc > 1)
        seconds = atof(argv[1]) > 0 ? atof(argv[1]) : 1.0;
    if (!cache || !big) {
        free(big);
        sp_sigv4_key_cache_free(cache);
        return 1;
    }
    memset(big, 'b', 1 << 20);
    memset(&j, 0, sizeof(j));
    j.req.method = "POST";
    j.req.method_len = 4;
    j.req.path = "/bucket/some/key.txt";
    j.req.path_len = strlen(j.req.path);
    j.req.query = "partNumber=1&uploadId=abc";
    j.req.query_len = strlen(j.req.query);
    j.req.headers = h;
    j.req.n_headers = SP_ARRAY_LEN(h);
    j.req.body = "{\"TableName\":\"t\",\"Key\":{\"id\":{\"S\":\"1\"}}}";
    j.req.body_len = strlen(j.req.body);
    j.creds = (struct sp_sigv4_creds){
        "AKIAIOSFODNN7EXAMPLE", 20, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40, NULL, 0};
    j.opts.region = "us-east-1";
    j.opts.service = "s3";
    j.opts.amz_date = "20130524T000000Z";
    j.opts.path_mode = SP_SIGV4_PATH_AS_IS;
    j.opts.add_content_sha256 = 1;

    r = rate(sign_once, &j);
    printf("small request, no key cache:      %10.0f signatures/s\n", r);
    j.opts.cache = cache;
    r = rate(sign_once, &j);
    printf("small request, key cache:         %10.0f signatures/s\n", r);
    j.opts.mode = SP_SIGV4_MODE_QUERY;
    j.opts.expires = 3600;
    r = rate(sign_once, &j);
    printf("presigned URL, key cache:         %10.0f signatures/s\n", r);
    j.opts.mode = SP_SIGV4_MODE_HEADER;
    j.req.body = big;
    j.req.body_len = 1 << 20;
    r = rate(sign_once, &j);
    printf("1 MiB body, key cache:            %10.0f signatures/s (%.0f MiB/s)\n", r, r);

    memset(&cj, 0, sizeof(cj));
    cj.creds = j.creds;
    cj.opts = j.opts;
    cj.body = chunked_body(&cj.len);
    sp_buf_init(&cj.out, 0, 0);
    r = rate(rechunk_once, &cj);
    printf("aws-chunked re-sign, 1 MiB body:  %10.0f bodies/s (%.0f MiB/s, 17 chunks each)\n", r,
           r * (double)cj.len / (1 << 20));
    sp_buf_free(&cj.out);
    free((void *)cj.body);
    free(big);
    sp_sigv4_key_cache_free(cache);
    return 0;
}
