/*
 * fuzz_h1.c - the proxy listener's request parser (proxy/h1_parse.c): the
 * head scanner fed in pieces, the in-place head parser, and both chunked
 * decoders (copying and streaming) over what follows the head. The first
 * byte picks the piece size, so splits are fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/h1_int.h"

static void chunked(const char *p, size_t n, size_t step)
{
    struct h1_chunked c;
    struct sp_buf body;
    struct sp_err err;
    size_t at = 0, used;

    h1_chunked_init(&c);
    sp_buf_init(&body, 1 << 20, 0);
    while (at < n) {
        size_t k = n - at < step ? n - at : step;
        int rc = h1_chunked_feed(&c, p + at, k, &used, &body, 1 << 20, 4096, &err);
        if (rc != 0)
            break;
        at += k;
    }
    sp_buf_free(&body);
    h1_chunked_init(&c);
    at = 0;
    while (at < n) {
        size_t dlen = 0;
        int rc = h1_chunked_next(&c, p + at, n - at, &used, &dlen, 1 << 20, 4096, &err);
        if (rc < 0 || rc == 1 || (rc == 2 && used + dlen == 0))
            break;
        at += rc == 2 ? used + dlen : n - at;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_h1_header h[64];
    struct h1_scan s;
    struct h1_info info;
    struct sp_err err;
    size_t step, len, end = 0;
    char *buf;
    int rc = 0;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 64 + 1;
    buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    len = size - 1;
    h1_scan_init(&s, 0);
    for (size_t have = step < len ? step : len;; have = have + step < len ? have + step : len) {
        rc = h1_scan_head(&s, buf, have, 4096, 64, &end, &err);
        if (rc != 0 || have == len)
            break;
    }
    if (rc == 1 && s.nfields <= 64 &&
        h1_parse_head(buf + s.start, end - s.start, h, s.nfields, 1 << 20, &info, &err) == 0)
        chunked(buf + end, len - end, step);
    free(buf);
    return 0;
}
