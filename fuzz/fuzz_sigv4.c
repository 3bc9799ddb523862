/*
 * fuzz_sigv4.c - parsing an SDK's SigV4 signature (Authorization header and
 * presigned query) and the aws-chunked body re-writer, signed and unsigned
 * modes, fed in pieces. The first byte picks the piece size and the mode.
 */
#include <stdint.h>
#include <string.h>

#include "resolver/sigv4.h"

static void chunked(enum sp_sigv4_chunked_mode mode, const char *p, size_t n, size_t step)
{
    static const struct sp_sigv4_creds c = {"AKIDEXAMPLE", 11, "secret", 6, NULL, 0};
    struct sp_sigv4_opts o;
    struct sp_sigv4_chain *chain = NULL;
    struct sp_sigv4_chunked *ck;
    struct sp_buf out;
    struct sp_err err;
    size_t at = 0;

    memset(&o, 0, sizeof(o));
    o.region = "us-east-1";
    o.service = "s3";
    o.amz_date = "20150830T123600Z";
    if (mode != SP_SIGV4_CHUNKED_UNSIGNED_TRAILER) {
        chain = sp_sigv4_chain_new(&c, &o,
                                   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
                                   "abcdef",
                                   &err);
        if (!chain)
            return;
    }
    ck = sp_sigv4_chunked_new(mode, chain, 1 << 16, &err);
    if (!ck)
        return;
    sp_buf_init(&out, 1 << 22, 0);
    while (at < n) {
        size_t k = n - at < step ? n - at : step;
        if (sp_sigv4_chunked_feed(ck, p + at, k, &out, &err) < 0)
            break;
        at += k;
    }
    if (at == n && sp_sigv4_chunked_finish(ck, &err) == 0 &&
        mode != SP_SIGV4_CHUNKED_UNSIGNED_TRAILER && out.len != n)
        __builtin_trap(); /* re-signing must keep the length */
    sp_sigv4_chunked_free(ck);
    sp_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_sigv4_auth a;
    struct sp_err err;
    const char *p = (const char *)data + 1;
    size_t n = size ? size - 1 : 0;

    if (size < 1)
        return 0;
    (void)sp_sigv4_parse_authorization(p, n, &a, &err);
    (void)sp_sigv4_parse_presigned(p, n, &a, &err);
    chunked((enum sp_sigv4_chunked_mode)(data[0] % 3 + 1), p, n, (size_t)(data[0] >> 2) + 1);
    return 0;
}
