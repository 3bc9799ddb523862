/*
 * test_sigv4_chunked.c - aws-chunked uploads: the signature chain against
 * S3's documented 65 KiB example (and its trailer variant), the re-writer
 * fed in every slicing (whole, byte by byte, cut at every offset around
 * the framing of the documented body, cut in three at every pair of
 * offsets of a small body), unsigned-trailer pass-through, and malformed
 * bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4_testutil.h"

#define DOC_SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define DOC_TSEED "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
static const char *const doc_sigs[] = {
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"};
static const char *const doc_tsigs[] = {
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"};
#define DOC_TRAILER_SIG "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
#define ZERO64 "0000000000000000000000000000000000000000000000000000000000000000"

static struct sp_sigv4_opts doc_opts(void)
{
    return opts_of("us-east-1", "s3", "20130524T000000Z");
}

/* The request of S3's "Transferring Payload in Multiple Chunks" example
 * (and of its trailer variant): signing it gives the seed signature. */
static void doc_seed(int trailer, char seed[65])
{
    struct sp_sigv4_header h[] = {
        hdr("Host", "s3.amazonaws.com"),
        hdr("x-amz-date", "20130524T000000Z"),
        hdr("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        hdr("Content-Encoding", "aws-chunked"),
        hdr("x-amz-decoded-content-length", "66560"),
        hdr("x-amz-content-sha256",
            trailer ? SP_SIGV4_STREAMING_PAYLOAD_TRAILER : SP_SIGV4_STREAMING_PAYLOAD),
        trailer ? hdr("x-amz-trailer", "x-amz-checksum-crc32c") : hdr("Content-Length", "66824"),
    };
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_request r =
        request_of("PUT", "/examplebucket/chunkObject.txt", NULL, h, SP_ARRAY_LEN(h));
    struct sp_sigv4_opts o = doc_opts();
    struct sp_sigv4_result out = {0};
    struct sp_err err;

    assert_int_equal(sp_sigv4_sign(&r, &c, &o, &out, &err), 0);
    memcpy(seed, out.signature, 65);
    sp_sigv4_result_free(&out);
}

/* The documented body, with the given signatures. */
static void doc_body(struct sp_buf *b, const char *const sigs[3], const char *trailer_sig)
{
    static char a[65536];

    memset(a, 'a', sizeof(a));
    sp_buf_init(b, 0, 0);
    assert_int_equal(sp_buf_printf(b, NULL, "10000;chunk-signature=%s\r\n", sigs[0]), 0);
    assert_int_equal(sp_buf_add(b, a, 65536, NULL), 0);
    assert_int_equal(sp_buf_printf(b, NULL, "\r\n400;chunk-signature=%s\r\n", sigs[1]), 0);
    assert_int_equal(sp_buf_add(b, a, 1024, NULL), 0);
    assert_int_equal(sp_buf_printf(b, NULL, "\r\n0;chunk-signature=%s\r\n", sigs[2]), 0);
    if (trailer_sig)
        assert_int_equal(sp_buf_printf(b, NULL,
                                       "x-amz-checksum-crc32c:sOO8/Q==\r\n"
                                       "x-amz-trailer-signature:%s\r\n",
                                       trailer_sig),
                         0);
    assert_int_equal(sp_buf_add(b, "\r\n", 2, NULL), 0);
}

static struct sp_sigv4_chunked *doc_rewriter(int trailer, size_t max_chunk)
{
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_opts o = doc_opts();
    struct sp_sigv4_chain *ch = sp_sigv4_chain_new(&c, &o, trailer ? DOC_TSEED : DOC_SEED, NULL);
    struct sp_sigv4_chunked *cw;

    assert_non_null(ch);
    cw = sp_sigv4_chunked_new(trailer ? SP_SIGV4_CHUNKED_SIGNED_TRAILER : SP_SIGV4_CHUNKED_SIGNED,
                              ch, max_chunk, NULL);
    assert_non_null(cw);
    return cw;
}

/* Feed in pieces cut at the given offsets (ascending, within len). */
static void feed_cut(struct sp_sigv4_chunked *cw, const struct sp_buf *in, const size_t *cuts,
                     size_t ncuts, struct sp_buf *out)
{
    size_t from = 0;
    struct sp_err err;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : in->len;
        if (sp_sigv4_chunked_feed(cw, in->data + from, to - from, out, &err) != 0)
            fail_msg("feed [%zu, %zu): %s", from, to, err.msg);
        from = to;
    }
    if (sp_sigv4_chunked_finish(cw, &err) != 0)
        fail_msg("finish: %s", err.msg);
}

static void chunk_chain_matches_the_aws_example(void **state)
{
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_opts o = doc_opts();
    struct sp_sigv4_chain *ch;
    char seed[65], sig[65];
    static char a[65536];
    struct sp_err err;

    memset(a, 'a', sizeof(a));
    doc_seed(0, seed);
    assert_string_equal(seed, DOC_SEED);
    doc_seed(1, seed);
    assert_string_equal(seed, DOC_TSEED);

    ch = sp_sigv4_chain_new(&c, &o, DOC_SEED, &err);
    assert_non_null(ch);
    for (size_t i = 0; i < 65536; i += 1000) /* incrementally, in odd pieces */
        sp_sigv4_chain_update(ch, a + i, i + 1000 > 65536 ? 65536 - i : 1000);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, sig, &err), 0);
    assert_string_equal(sig, doc_sigs[0]);
    sp_sigv4_chain_update(ch, a, 1024);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, sig, &err), 0);
    assert_string_equal(sig, doc_sigs[1]);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, sig, &err), 0);
    assert_string_equal(sig, doc_sigs[2]);
    sp_sigv4_chain_free(ch);
    assert_null(sp_sigv4_chain_new(&c, &o, "abc", &err));
    assert_int_equal(err.code, SP_E_BAD_REQUEST);
}

static void chunked_rewriter_resigns_the_aws_example_at_every_boundary(void **state)
{
    const char *dummy[] = {ZERO64, ZERO64, ZERO64};
    struct sp_buf in, want, out;
    size_t marks[8], nm = 0, cuts[2];

    for (int trailer = 0; trailer <= 1; trailer++) {
        doc_body(&in, dummy, trailer ? ZERO64 : NULL);
        doc_body(&want, trailer ? doc_tsigs : doc_sigs, trailer ? DOC_TRAILER_SIG : NULL);
        assert_int_equal(in.len, want.len);
        if (!trailer)
            assert_int_equal(in.len, 66824); /* the documented Content-Length */

        /* Whole, then one byte at a time. */
        for (int mode = 0; mode < 2; mode++) {
            struct sp_sigv4_chunked *cw = doc_rewriter(trailer, 0);
            sp_buf_init(&out, 0, 0);
            if (mode == 0) {
                feed_cut(cw, &in, NULL, 0, &out);
            } else {
                for (size_t i = 0; i < in.len; i++)
                    assert_int_equal(sp_sigv4_chunked_feed(cw, in.data + i, 1, &out, NULL), 0);
                assert_int_equal(sp_sigv4_chunked_finish(cw, NULL), 0);
            }
            assert_text("re-signed body", out.data, out.len, want.data, want.len);
            sp_buf_free(&out);
            sp_sigv4_chunked_free(cw);
        }

        /* Cut in two at every offset around each piece of framing (the data
         * runs between are plain copies), and in three around pairs. */
        nm = 0;
        marks[nm++] = 0;
        marks[nm++] = 86 + 65536;                 /* end of chunk 1's data */
        marks[nm++] = 86 + 65536 + 2 + 84 + 1024; /* end of chunk 2's data */
        marks[nm++] = in.len - 200;               /* final chunk and trailers */
        for (size_t m = 0; m < nm; m++)
            for (size_t i = marks[m]; i < marks[m] + 200 && i <= in.len; i++) {
                struct sp_sigv4_chunked *cw = doc_rewriter(trailer, 0);
                cuts[0] = i;
                sp_buf_init(&out, 0, 0);
                feed_cut(cw, &in, cuts, 1, &out);
                assert_text("re-signed body", out.data, out.len, want.data, want.len);
                sp_buf_free(&out);
                sp_sigv4_chunked_free(cw);
            }
        sp_buf_free(&in);
        sp_buf_free(&want);
    }
}

/* A small body, signed-trailer mode, cut in three at every pair of
 * offsets: the output never depends on how the input was sliced. */
#define SMALL_BODY                                                                                 \
    "7;chunk-signature=%s\r\nabc\r\nde\r\n3;chunk-signature=%s\r\nxyz\r\n"                         \
    "0;chunk-signature=%s\r\nX-Amz-Checksum-Crc32:  AAAAAA== \r\n"                                 \
    "x-amz-trailer-signature:%s\r\n\r\n"

static void chunked_rewriter_output_is_independent_of_slicing(void **state)
{
    struct sp_sigv4_creds c = creds_of(DOC_AKID, DOC_SECRET, NULL);
    struct sp_sigv4_opts o = doc_opts();
    struct sp_sigv4_chain *ch = sp_sigv4_chain_new(&c, &o, DOC_SEED, NULL);
    char s1[65], s2[65], s3[65], ts[65];
    struct sp_buf in, want, out;
    size_t cuts[2];

    /* The expected body, from the chain API directly. */
    sp_sigv4_chain_update(ch, "abc\r\nde", 7);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, s1, NULL), 0);
    sp_sigv4_chain_update(ch, "xyz", 3);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, s2, NULL), 0);
    assert_int_equal(sp_sigv4_chain_finish_chunk(ch, s3, NULL), 0);
    assert_int_equal(
        sp_sigv4_chain_sign_trailer(ch, "x-amz-checksum-crc32:AAAAAA==\n", 30, ts, NULL), 0);
    sp_sigv4_chain_free(ch);
    sp_buf_init(&in, 0, 0);
    sp_buf_init(&want, 0, 0);
    assert_int_equal(sp_buf_printf(&in, NULL, SMALL_BODY, ZERO64, ZERO64, ZERO64, ZERO64), 0);
    assert_int_equal(sp_buf_printf(&want, NULL, SMALL_BODY, s1, s2, s3, ts), 0);

    for (size_t i = 0; i <= in.len; i++)
        for (size_t j = i; j <= in.len; j++) {
            struct sp_sigv4_chunked *cw;

            ch = sp_sigv4_chain_new(&c, &o, DOC_SEED, NULL);
            cw = sp_sigv4_chunked_new(SP_SIGV4_CHUNKED_SIGNED_TRAILER, ch, 64, NULL);
            cuts[0] = i;
            cuts[1] = j;
            sp_buf_init(&out, 0, 0);
            feed_cut(cw, &in, cuts, 2, &out);
            assert_text("re-signed body", out.data, out.len, want.data, want.len);
            sp_buf_free(&out);
            sp_sigv4_chunked_free(cw);
        }
    sp_buf_free(&in);
    sp_buf_free(&want);
}

static void unsigned_trailer_bodies_pass_through_unchanged(void **state)
{
    const char *body = "3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\n"
                       "x-amz-checksum-crc32:NSRBwg==\r\n\r\n";
    struct sp_buf in, out;
    size_t cuts[1];
    struct sp_err err;

    sp_buf_init(&in, 0, 0);
    assert_int_equal(sp_buf_addstr(&in, body, NULL), 0);
    for (size_t i = 0; i <= in.len; i++) {
        struct sp_sigv4_chunked *cw =
            sp_sigv4_chunked_new(SP_SIGV4_CHUNKED_UNSIGNED_TRAILER, NULL, 0, &err);
        cuts[0] = i;
        sp_buf_init(&out, 0, 0);
        feed_cut(cw, &in, cuts, 1, &out);
        assert_text("passed-through body", out.data, out.len, in.data, in.len);
        sp_buf_free(&out);
        sp_sigv4_chunked_free(cw);
    }
    sp_buf_free(&in);
}

static void chunked_modes_and_constructor_checks(void **state)
{
    enum sp_sigv4_chunked_mode m;
    struct sp_err err;

    assert_int_equal(sp_sigv4_chunked_mode_for(SP_SIGV4_STREAMING_PAYLOAD, 34, &m), 0);
    assert_int_equal(m, SP_SIGV4_CHUNKED_SIGNED);
    assert_int_equal(sp_sigv4_chunked_mode_for(SP_SIGV4_STREAMING_PAYLOAD_TRAILER, 42, &m), 0);
    assert_int_equal(m, SP_SIGV4_CHUNKED_SIGNED_TRAILER);
    assert_int_equal(sp_sigv4_chunked_mode_for(SP_SIGV4_STREAMING_UNSIGNED_TRAILER, 34, &m), 0);
    assert_int_equal(m, SP_SIGV4_CHUNKED_UNSIGNED_TRAILER);
    assert_int_equal(sp_sigv4_chunked_mode_for("UNSIGNED-PAYLOAD", 16, &m), -1);
    assert_int_equal(sp_sigv4_chunked_mode_for("STREAMING-AWS4-HMAC-SHA256-PAYLOA", 33, &m), -1);
    assert_null(sp_sigv4_chunked_new(SP_SIGV4_CHUNKED_SIGNED, NULL, 0, &err));
    assert_null(sp_sigv4_chunked_new((enum sp_sigv4_chunked_mode)9, NULL, 0, &err));
}

static void malformed_chunked_bodies_fail(void **state)
{
    static const struct {
        int mode; /* 1 signed, 2 signed trailer, 3 unsigned */
        const char *body;
        int at_finish; /* the feed succeeds, finish fails */
    } bad[] = {
        {1, "zz;chunk-signature=" ZERO64 "\r\n", 0},
        {1, ";chunk-signature=" ZERO64 "\r\n", 0},
        {1, "3;chunk-signature=" ZERO64 "0\r\n", 0},
        {1, "3;chunk-signature=00\r\n", 0},
        {1, "3;chunk-signatur=" ZERO64 "0\r\n", 0},
        {1, "3;chunk-signature=" ZERO64 "\n", 0},
        {1, "3;chunk-signature=" ZERO64 "\r\n", 1},
        {1,
         "3;chunk-signature=g000000000000000000000000000000000000000000000000000000000000000\r\n",
         0},
        {1, "3\r\nabc\r\n0\r\n\r\n", 0},
        {1, "3;chunk-signature=" ZERO64 "\r\nabcX\r\n", 0},
        {1, "3;chunk-signature=" ZERO64 "\r\nabc\r\r", 0},
        {1, "401;chunk-signature=" ZERO64 "\r\n", 0},
        {1, "00000000000000001;chunk-signature=" ZERO64 "\r\n", 0},
        {1, "0;chunk-signature=" ZERO64 "\r\n\r\nx", 0},
        {1, "0;chunk-signature=" ZERO64 "\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", 0},
        {1, "0;chunk-signature=" ZERO64 "\r\n", 1},
        {1, "0;chunk-signature=" ZERO64 "\r\n\r", 1},
        {2, "0;chunk-signature=" ZERO64 "\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", 0},
        {2, "0;chunk-signature=" ZERO64 "\r\nx-amz-trailer-signature:abc\r\n\r\n", 0},
        {2, "0;chunk-signature=" ZERO64 "\r\nx-amz-trailer-signature:" ZERO64 "\r\na:b\r\n\r\n", 0},
        {2, "0;chunk-signature=" ZERO64 "\r\nbad name:b\r\n\r\n", 0},
        {2, "0;chunk-signature=" ZERO64 "\r\nnocolon\r\n\r\n", 0},
        {3, "3x\r\nabc\r\n0\r\n\r\n", 0},
        {3, "3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n", 1},
        {3, "", 1},
    };
    struct sp_buf out;
    struct sp_err err;
    char longline[5000];

    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        struct sp_sigv4_chunked *cw;
        size_t len = strlen(bad[i].body);
        int rc;

        if (bad[i].mode == 3)
            cw = sp_sigv4_chunked_new(SP_SIGV4_CHUNKED_UNSIGNED_TRAILER, NULL, 1024, &err);
        else
            cw = doc_rewriter(bad[i].mode == 2, 1024);
        sp_buf_init(&out, 0, 0);
        rc = sp_sigv4_chunked_feed(cw, bad[i].body, len, &out, &err);
        if (bad[i].at_finish) {
            if (rc != 0)
                fail_msg("case %zu: feed failed: %s", i, err.msg);
            rc = sp_sigv4_chunked_finish(cw, &err);
        }
        if (rc != -1)
            fail_msg("case %zu was accepted", i);
        assert_int_equal(err.code, strncmp(bad[i].body, "401;", 4) == 0 ? SP_E_PAYLOAD_TOO_LARGE
                                                                        : SP_E_BAD_REQUEST);
        /* Once failed, always failed. */
        if (!bad[i].at_finish)
            assert_int_equal(sp_sigv4_chunked_feed(cw, "0", 1, &out, &err), -1);
        sp_buf_free(&out);
        sp_sigv4_chunked_free(cw);
    }
    memset(longline, '1', sizeof(longline));
    {
        struct sp_sigv4_chunked *cw = doc_rewriter(0, 0);
        sp_buf_init(&out, 0, 0);
        assert_int_equal(sp_sigv4_chunked_feed(cw, longline, sizeof(longline), &out, &err), -1);
        sp_buf_free(&out);
        sp_sigv4_chunked_free(cw);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunk_chain_matches_the_aws_example),
        cmocka_unit_test(chunked_rewriter_resigns_the_aws_example_at_every_boundary),
        cmocka_unit_test(chunked_rewriter_output_is_independent_of_slicing),
        cmocka_unit_test(unsigned_trailer_bodies_pass_through_unchanged),
        cmocka_unit_test(chunked_modes_and_constructor_checks),
        cmocka_unit_test(malformed_chunked_bodies_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
