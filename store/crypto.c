/*
 * crypto.c - AES-256-GCM for the store: the sealed form base64(IV ||
 * ciphertext || tag) used for secret values (behind the "VERSION:" prefix
 * that keyring.c adds) and for a key ring file wrapped by a master key, and
 * the parser of that prefix. Stateless: keys are passed in by the caller.
 */
#include "keyring.h"

#include <mbedtls/gcm.h>
#include <stdlib.h>
#include <string.h>

/* Larger inputs are refused before any size arithmetic can overflow; values
 * are at most 64 KiB and key ring files 1 MiB. */
#define SEAL_MAX_PLAINTEXT ((size_t)16 << 20)

/* mbedTLS wants a non-NULL pointer for empty input in some versions. */
static const unsigned char empty_input[1];

/*
 * AES-256-GCM with an explicit 96-bit IV: ct receives ptlen bytes, tag 16.
 * Static so that nothing but sp_crypto_seal (which draws a fresh IV) can
 * choose an IV; the known-answer tests include this file to reach it.
 */
static int gcm_seal_iv(const unsigned char *key, const unsigned char *iv, const void *aad,
                       size_t aadlen, const void *pt, size_t ptlen, unsigned char *ct,
                       unsigned char *tag)
{
    mbedtls_gcm_context gcm;
    int rc;

    mbedtls_gcm_init(&gcm);
    rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, SP_KEYRING_KEY_LEN * 8);
    if (rc == 0)
        rc = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, ptlen, iv, SP_KEYRING_IV_LEN,
                                       aadlen ? aad : NULL, aadlen, ptlen ? pt : empty_input, ct,
                                       SP_KEYRING_TAG_LEN, tag);
    mbedtls_gcm_free(&gcm); /* zeroizes the expanded key */
    return rc == 0 ? 0 : -1;
}

/* The inverse: pt receives ctlen bytes when the tag matches (compared in
 * constant time by mbedTLS), and is wiped otherwise. */
static int gcm_open_iv(const unsigned char *key, const unsigned char *iv, const void *aad,
                       size_t aadlen, const unsigned char *ct, size_t ctlen,
                       const unsigned char *tag, unsigned char *pt)
{
    mbedtls_gcm_context gcm;
    int rc;

    mbedtls_gcm_init(&gcm);
    rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, SP_KEYRING_KEY_LEN * 8);
    if (rc == 0)
        rc =
            mbedtls_gcm_auth_decrypt(&gcm, ctlen, iv, SP_KEYRING_IV_LEN, aadlen ? aad : NULL,
                                     aadlen, tag, SP_KEYRING_TAG_LEN, ctlen ? ct : empty_input, pt);
    mbedtls_gcm_free(&gcm);
    if (rc != 0) {
        sp_wipe(pt, ctlen);
        return -1;
    }
    return 0;
}

int sp_crypto_seal(const unsigned char *key, const void *aad, size_t aadlen, const void *pt,
                   size_t ptlen, struct sp_buf *out, struct sp_err *err)
{
    unsigned char *raw = NULL;
    size_t rawlen;

    if (ptlen > SEAL_MAX_PLAINTEXT)
        return sp_err_set(err, SP_E_INTERNAL, "value too large to encrypt");
    rawlen = SP_KEYRING_IV_LEN + ptlen + SP_KEYRING_TAG_LEN;
    /* Holds only IV, ciphertext and tag: nothing to wipe. */
    raw = malloc(rawlen);
    if (!raw)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    if (sp_random(raw, SP_KEYRING_IV_LEN, err) < 0)
        goto fail;
    if (gcm_seal_iv(key, raw, aad, aadlen, pt, ptlen, raw + SP_KEYRING_IV_LEN,
                    raw + SP_KEYRING_IV_LEN + ptlen) < 0) {
        sp_err_set(err, SP_E_INTERNAL, "encryption failed");
        goto fail;
    }
    if (sp_buf_reserve(out, sp_base64_enc_len(rawlen), err) < 0)
        goto fail;
    out->len += sp_base64_encode(out->data + out->len, raw, rawlen);
    free(raw);
    return 0;
fail:
    free(raw);
    return -1;
}

int sp_crypto_open(const unsigned char *key, const void *aad, size_t aadlen, const char *b64,
                   size_t len, struct sp_buf *out, struct sp_err *err)
{
    unsigned char *raw = NULL, *dst;
    size_t rawlen = 0, ctlen;
    struct sp_err e;

    if (len > sp_base64_enc_len(SEAL_MAX_PLAINTEXT + SP_KEYRING_IV_LEN + SP_KEYRING_TAG_LEN))
        return sp_err_set(err, SP_E_INTERNAL, "encrypted value is malformed (too long)");
    raw = malloc(sp_base64_dec_max(len));
    if (!raw)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    if (sp_base64_decode(raw, &rawlen, b64, len) < 0) {
        sp_err_set(err, SP_E_INTERNAL, "encrypted value is malformed (bad base64)");
        goto fail;
    }
    if (rawlen < SP_KEYRING_IV_LEN + SP_KEYRING_TAG_LEN) {
        sp_err_set(err, SP_E_INTERNAL, "encrypted value is malformed (too short)");
        goto fail;
    }
    ctlen = rawlen - SP_KEYRING_IV_LEN - SP_KEYRING_TAG_LEN;
    if (sp_buf_reserve(out, ctlen, &e) < 0) {
        sp_err_set(err, SP_E_INTERNAL, "cannot hold the decrypted value: %s", e.msg);
        goto fail;
    }
    dst = (unsigned char *)out->data + out->len;
    if (gcm_open_iv(key, raw, aad, aadlen, raw + SP_KEYRING_IV_LEN, ctlen,
                    raw + SP_KEYRING_IV_LEN + ctlen, dst) < 0) {
        sp_err_set(err, SP_E_INTERNAL,
                   "decryption failed: wrong key or record identity, or the data was altered");
        goto fail;
    }
    out->len += ctlen;
    out->data[out->len] = '\0';
    free(raw);
    return 0;
fail:
    free(raw);
    return -1;
}

int sp_keyring_version_of(const char *stored, size_t len)
{
    int v = 0;
    size_t i;

    if (!stored || len < 2 || stored[0] < '1' || stored[0] > '9')
        return -1;
    /* At most 9 digits, so v cannot overflow; a 10th digit fails the colon
     * test below. */
    for (i = 0; i < len && i < 9 && stored[i] >= '0' && stored[i] <= '9'; i++)
        v = v * 10 + (stored[i] - '0');
    if (i >= len || stored[i] != ':')
        return -1;
    return v;
}
