/*
 * test_crypto.c - AES-256-GCM at rest: the published GCM known answers,
 * round trips of every size and byte value, the stored form
 * "VERSION:base64(IV || ciphertext || tag)", clean failures on every kind of
 * tampering, and IVs that never repeat.
 *
 * Includes crypto.c to reach gcm_seal_iv/gcm_open_iv, the only functions
 * that take an explicit IV.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/crypto.c"
#include "testutil.h"

#define CANARY "CANARY-crypto-51d2e8"

static size_t unhex(unsigned char *out, const char *hex)
{
    size_t n = strlen(hex) / 2;

    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        out[i] = (unsigned char)b;
    }
    return n;
}

/*
 * McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases
 * 13-16: the AES-256 cases with a 96-bit IV (17 and 18 use 64- and 480-bit
 * IVs, which the stored form never does). The same vectors are in mbedTLS's
 * gcm.c self test and NIST's gcmEncryptExtIV256 style.
 */
static const struct kat {
    const char *name, *key, *iv, *pt, *aad, *ct, *tag;
} kats[] = {
    {"TC13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"TC14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"TC15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"TC16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_gcm_known_answers_aes256_96bit_iv(void **state)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(kats); i++) {
        unsigned char key[32] = {0}, iv[12] = {0}, pt[64] = {0}, aad[32] = {0}, ct[64] = {0},
                      tag[16] = {0};
        unsigned char got[64], gtag[16], back[64];
        size_t ptlen, aadlen;

        assert_int_equal(unhex(key, kats[i].key), 32);
        assert_int_equal(unhex(iv, kats[i].iv), 12);
        ptlen = unhex(pt, kats[i].pt);
        aadlen = unhex(aad, kats[i].aad);
        assert_int_equal(unhex(ct, kats[i].ct), ptlen);
        assert_int_equal(unhex(tag, kats[i].tag), 16);

        assert_int_equal(gcm_seal_iv(key, iv, aad, aadlen, pt, ptlen, got, gtag), 0);
        if (memcmp(got, ct, ptlen) != 0 || memcmp(gtag, tag, 16) != 0)
            fail_msg("%s: encryption does not match the published answer", kats[i].name);
        assert_int_equal(gcm_open_iv(key, iv, aad, aadlen, ct, ptlen, tag, back), 0);
        assert_memory_equal(back, pt, ptlen);
        /* The published tag with one bit changed must not verify. */
        tag[15] ^= 1;
        assert_int_equal(gcm_open_iv(key, iv, aad, aadlen, ct, ptlen, tag, back), -1);
    }
}

static void random_key(unsigned char *key)
{
    struct sp_err err;

    assert_int_equal(sp_random(key, 32, &err), 0);
}

static void round_trip(const unsigned char *key, const void *pt, size_t ptlen)
{
    static const char aad[] = "ws\0workspace\0NAME";
    struct sp_buf enc, dec;
    struct sp_err err;
    size_t rawlen = 0;
    unsigned char *raw;

    sp_buf_init(&enc, 0, 0);
    sp_buf_init(&dec, 1 << 20, 1);
    assert_int_equal(sp_crypto_seal(key, aad, sizeof(aad) - 1, pt, ptlen, &enc, &err), 0);
    assert_int_equal(strlen(enc.data), enc.len);
    /* base64(IV || ciphertext || tag), nothing else. */
    raw = malloc(sp_base64_dec_max(enc.len));
    assert_non_null(raw);
    assert_int_equal(sp_base64_decode(raw, &rawlen, enc.data, enc.len), 0);
    assert_int_equal(rawlen, 12 + ptlen + 16);
    if (ptlen >= 16)
        assert_memory_not_equal(raw + 12, pt, 16);
    free(raw);
    assert_int_equal(sp_crypto_open(key, aad, sizeof(aad) - 1, enc.data, enc.len, &dec, &err), 0);
    assert_int_equal(dec.len, ptlen);
    if (ptlen)
        assert_memory_equal(dec.data, pt, ptlen);
    assert_int_equal(dec.data[dec.len], '\0');
    sp_buf_free(&enc);
    sp_buf_free(&dec);
}

static void test_round_trip_lengths_0_1_64k(void **state)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 255, 4096, 65535, 65536};
    unsigned char key[32], *pt = malloc(65536);

    assert_non_null(pt);
    random_key(key);
    for (size_t i = 0; i < 65536; i++)
        pt[i] = (unsigned char)(i * 131 + 7);
    for (size_t i = 0; i < SP_ARRAY_LEN(lens); i++)
        round_trip(key, pt, lens[i]);
    round_trip(key, NULL, 0);
    free(pt);
}

static void test_round_trip_every_byte_value(void **state)
{
    unsigned char key[32], all[256];

    random_key(key);
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    round_trip(key, all, sizeof(all));
    for (int i = 0; i < 256; i++)
        round_trip(key, &all[i], 1);
}

static void test_round_trip_without_aad(void **state)
{
    unsigned char key[32];
    struct sp_buf enc, dec;
    struct sp_err err;

    random_key(key);
    sp_buf_init(&enc, 0, 0);
    sp_buf_init(&dec, 0, 1);
    assert_int_equal(sp_crypto_seal(key, NULL, 0, "abc", 3, &enc, &err), 0);
    assert_int_equal(sp_crypto_open(key, NULL, 0, enc.data, enc.len, &dec, &err), 0);
    assert_string_equal(dec.data, "abc");
    assert_int_equal(sp_crypto_open(key, "x", 1, enc.data, enc.len, &dec, &err), -1);
    sp_buf_free(&enc);
    sp_buf_free(&dec);
}

static int cmp_iv(const void *a, const void *b)
{
    return memcmp(a, b, 12);
}

static void test_iv_never_repeats_over_100k_encryptions(void **state)
{
    enum { N = 100000 };
    unsigned char key[32], (*ivs)[12] = malloc((size_t)N * 12), raw[64];
    struct sp_buf enc;
    struct sp_err err;
    size_t rawlen;

    assert_non_null(ivs);
    random_key(key);
    sp_buf_init(&enc, 0, 0);
    for (int i = 0; i < N; i++) {
        sp_buf_reset(&enc);
        assert_int_equal(sp_crypto_seal(key, "a", 1, "same value", 10, &enc, &err), 0);
        assert_int_equal(sp_base64_decode(raw, &rawlen, enc.data, enc.len), 0);
        assert_int_equal(rawlen, 12 + 10 + 16);
        memcpy(ivs[i], raw, 12);
    }
    qsort(ivs, N, 12, cmp_iv);
    for (int i = 1; i < N; i++)
        if (memcmp(ivs[i], ivs[i - 1], 12) == 0)
            fail_msg("IV repeated after %d encryptions", N);
    sp_buf_free(&enc);
    free(ivs);
}

static void test_version_of_parses_only_the_prefix(void **state)
{
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"1:abc", 1},
        {"12:", 12},
        {"999999999:x", 999999999},
        {"1000000000:x", -1},
        {"0:abc", -1},
        {"01:abc", -1},
        {":abc", -1},
        {"abc", -1},
        {"1", -1},
        {"", -1},
        {"-1:abc", -1},
        {"+1:abc", -1},
        {" 1:abc", -1},
        {"1 :abc", -1},
        {"12345678901234567890:x", -1},
    };

    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++)
        assert_int_equal(sp_keyring_version_of(cases[i].s, strlen(cases[i].s)), cases[i].want);
    /* Never reads past len. */
    assert_int_equal(sp_keyring_version_of("12:", 2), -1);
    assert_int_equal(sp_keyring_version_of("12:", 3), 12);
    assert_int_equal(sp_keyring_version_of(NULL, 0), -1);
}

/* ---- through a key ring ---- */

struct fx {
    char *dir;
    struct sp_keyring *kr;
    struct sp_buf enc; /* CANARY encrypted for record identity "ws\0workspace\0A" */
};

static const char AAD_A[] = "ws\0workspace\0A";

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[256];
    struct sp_err err;

    assert_non_null(f);
    f->dir = tu_tmpdir();
    assert_non_null(f->dir);
    snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
    assert_int_equal(sp_keyring_open(path, NULL, 1, &f->kr, &err), 0);
    sp_buf_init(&f->enc, 0, 0);
    assert_int_equal(
        sp_keyring_encrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, CANARY, strlen(CANARY), &f->enc, &err),
        0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sp_buf_free(&f->enc);
    sp_keyring_free(f->kr);
    tu_rmrf(f->dir);
    free(f);
    return 0;
}

/* Decrypting s must fail cleanly: -1, SP_E_INTERNAL, out untouched, and no
 * byte of the value in the message. */
static void expect_fail(struct fx *f, const void *aad, size_t aadlen, const char *s, size_t len)
{
    struct sp_buf out;
    struct sp_err err;

    sp_buf_init(&out, 0, 1);
    assert_int_equal(sp_buf_add(&out, "keep", 4, &err), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(sp_keyring_decrypt(f->kr, aad, aadlen, s, len, &out, &err), -1);
    assert_int_equal(err.code, SP_E_INTERNAL);
    assert_true(err.msg[0] != '\0');
    assert_null(strstr(err.msg, CANARY));
    assert_null(strstr(err.msg, "CANARY"));
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    sp_buf_free(&out);
}

static void expect_ok(struct fx *f, const char *s, size_t len)
{
    struct sp_buf out;
    struct sp_err err;

    sp_buf_init(&out, 0, 1);
    assert_int_equal(sp_keyring_decrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, s, len, &out, &err), 0);
    assert_int_equal(out.len, strlen(CANARY));
    assert_memory_equal(out.data, CANARY, out.len);
    sp_buf_free(&out);
}

static void test_stored_form_is_version_colon_base64(void **state)
{
    struct fx *f = *state;
    unsigned char raw[128];
    size_t rawlen;

    assert_true(f->enc.len > 2);
    assert_memory_equal(f->enc.data, "1:", 2);
    assert_int_equal(sp_keyring_version_of(f->enc.data, f->enc.len), 1);
    assert_null(strstr(f->enc.data, CANARY));
    assert_int_equal(sp_base64_decode(raw, &rawlen, f->enc.data + 2, f->enc.len - 2), 0);
    assert_int_equal(rawlen, 12 + strlen(CANARY) + 16);
    expect_ok(f, f->enc.data, f->enc.len);
}

/* Decode the stored form, flip one bit at raw offset off, re-encode. */
static void flip_and_expect_fail(struct fx *f, size_t off)
{
    unsigned char raw[128];
    char b64[200];
    size_t rawlen, n;

    assert_int_equal(sp_base64_decode(raw, &rawlen, f->enc.data + 2, f->enc.len - 2), 0);
    assert_true(off < rawlen);
    raw[off] ^= 0x01;
    memcpy(b64, "1:", 2);
    n = sp_base64_encode(b64 + 2, raw, rawlen);
    expect_fail(f, AAD_A, sizeof(AAD_A) - 1, b64, n + 2);
    raw[off] ^= 0x01;
    n = sp_base64_encode(b64 + 2, raw, rawlen);
    expect_ok(f, b64, n + 2);
}

static void test_tampered_iv_ciphertext_or_tag_fails(void **state)
{
    struct fx *f = *state;
    size_t ctlen = strlen(CANARY);

    flip_and_expect_fail(f, 0);                   /* IV */
    flip_and_expect_fail(f, 11);                  /* IV */
    flip_and_expect_fail(f, 12);                  /* ciphertext */
    flip_and_expect_fail(f, 12 + ctlen - 1);      /* ciphertext */
    flip_and_expect_fail(f, 12 + ctlen);          /* tag */
    flip_and_expect_fail(f, 12 + ctlen + 16 - 1); /* tag */
}

static void test_other_record_identity_fails(void **state)
{
    struct fx *f = *state;
    static const char other_name[] = "ws\0workspace\0B";
    static const char other_scope[] = "ws\0user:1\0A";
    static const char other_ws[] = "wt\0workspace\0A";
    static const char shifted[] = "ws\0workspac\0eA";

    expect_fail(f, other_name, sizeof(other_name) - 1, f->enc.data, f->enc.len);
    expect_fail(f, other_scope, sizeof(other_scope) - 1, f->enc.data, f->enc.len);
    expect_fail(f, other_ws, sizeof(other_ws) - 1, f->enc.data, f->enc.len);
    expect_fail(f, shifted, sizeof(shifted) - 1, f->enc.data, f->enc.len);
    expect_fail(f, AAD_A, sizeof(AAD_A) - 2, f->enc.data, f->enc.len);
    expect_fail(f, NULL, 0, f->enc.data, f->enc.len);
}

static void test_truncated_fails(void **state)
{
    struct fx *f = *state;

    for (size_t len = 0; len < f->enc.len; len++)
        expect_fail(f, AAD_A, sizeof(AAD_A) - 1, f->enc.data, len);
}

static void test_bad_base64_and_prefix_fail(void **state)
{
    struct fx *f = *state;
    const char *body = f->enc.data + 2;
    char buf[256];
    int n;

    static const char *const bad[] = {
        "1:!!!!",
        "1:",
        "1:AAAA",
        "1:A",
        "1:@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "1: ",
        "1:\n",
        "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++)
        expect_fail(f, AAD_A, sizeof(AAD_A) - 1, bad[i], strlen(bad[i]));
    /* A good body behind a bad prefix. */
    static const char *const prefixes[] = {
        "", ":", "0:", "01:", "x:", "1;", " 1:", "-1:", "1000000000:"};
    for (size_t i = 0; i < SP_ARRAY_LEN(prefixes); i++) {
        n = snprintf(buf, sizeof(buf), "%s%s", prefixes[i], body);
        expect_fail(f, AAD_A, sizeof(AAD_A) - 1, buf, (size_t)n);
    }
    /* A character inserted into the body. */
    n = snprintf(buf, sizeof(buf), "1:%.4s*%s", body, body + 4);
    expect_fail(f, AAD_A, sizeof(AAD_A) - 1, buf, (size_t)n);
}

static void test_unknown_version_fails(void **state)
{
    struct fx *f = *state;
    char buf[256];
    struct sp_buf out;
    struct sp_err err;
    int n = snprintf(buf, sizeof(buf), "7%s", f->enc.data + 1);

    expect_fail(f, AAD_A, sizeof(AAD_A) - 1, buf, (size_t)n);
    sp_buf_init(&out, 0, 1);
    assert_int_equal(
        sp_keyring_decrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, buf, (size_t)n, &out, &err), -1);
    assert_non_null(strstr(err.msg, "version 7"));
    sp_buf_free(&out);
}

static void test_decrypt_respects_out_max(void **state)
{
    struct fx *f = *state;
    struct sp_buf out;
    struct sp_err err;

    sp_buf_init(&out, strlen(CANARY) - 1, 1);
    assert_int_equal(
        sp_keyring_decrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, f->enc.data, f->enc.len, &out, &err),
        -1);
    assert_int_equal(err.code, SP_E_INTERNAL);
    assert_int_equal(out.len, 0);
    sp_buf_free(&out);
    /* Appends after what is there. */
    sp_buf_init(&out, 0, 1);
    assert_int_equal(sp_buf_add(&out, "x=", 2, &err), 0);
    assert_int_equal(
        sp_keyring_decrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, f->enc.data, f->enc.len, &out, &err),
        0);
    assert_string_equal(out.data, "x=" CANARY);
    sp_buf_free(&out);
}

static void test_encrypt_appends_and_values_differ(void **state)
{
    struct fx *f = *state;
    struct sp_buf a;
    struct sp_err err;

    sp_buf_init(&a, 0, 0);
    assert_int_equal(sp_buf_add(&a, "v=", 2, &err), 0);
    assert_int_equal(
        sp_keyring_encrypt(f->kr, AAD_A, sizeof(AAD_A) - 1, CANARY, strlen(CANARY), &a, &err), 0);
    assert_memory_equal(a.data, "v=1:", 4);
    /* Same value, same identity, fresh IV: a different ciphertext. */
    assert_int_not_equal(strcmp(a.data + 2, f->enc.data), 0);
    expect_ok(f, a.data + 2, a.len - 2);
    sp_buf_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_known_answers_aes256_96bit_iv),
        cmocka_unit_test(test_round_trip_lengths_0_1_64k),
        cmocka_unit_test(test_round_trip_every_byte_value),
        cmocka_unit_test(test_round_trip_without_aad),
        cmocka_unit_test(test_iv_never_repeats_over_100k_encryptions),
        cmocka_unit_test(test_version_of_parses_only_the_prefix),
        cmocka_unit_test_setup_teardown(test_stored_form_is_version_colon_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_iv_ciphertext_or_tag_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_record_identity_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_base64_and_prefix_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_version_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decrypt_respects_out_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypt_appends_and_values_differ, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
