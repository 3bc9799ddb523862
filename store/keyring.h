/*
 * keyring.h - (private to store/) encryption of secret values at rest and the
 * versioned key ring that holds the AES-256 keys.
 *
 * Stored form of a value: "VERSION:" followed by base64(IV || ciphertext ||
 * tag), AES-256-GCM with a fresh random 12-byte IV and a 16-byte tag; the
 * caller's record identity is the additional authenticated data, so a
 * ciphertext moved onto another record does not decrypt.
 *
 * crypto.c owns the AES-256-GCM sealing and the stored form's prefix;
 * keyring.c owns the key ring (in memory and in its file) and its locking.
 * Every function is thread-safe unless its comment says otherwise.
 */
#ifndef SP_KEYRING_H
#define SP_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

#define SP_KEYRING_KEY_LEN 32
#define SP_KEYRING_IV_LEN 12
#define SP_KEYRING_TAG_LEN 16
/* Versions are 1..SP_KEYRING_MAX_VERSION: at most 9 decimal digits. */
#define SP_KEYRING_MAX_VERSION 999999999
/* Additional authenticated data of a key ring file wrapped by a master key. */
#define SP_KEYRING_WRAP_AAD "secretproxy-keyring-v1"

struct sp_keyring;

/* One version of the key ring, as reported by sp_keyring_list(). */
struct sp_keyring_version_info {
    int version;
    int64_t created_at; /* ms since the epoch */
    int64_t retired_at; /* ms since the epoch; 0 while the version is live */
    int retired;        /* key material has been wiped and dropped */
    int current;        /* the version that encrypts new values */
};

/* ---- AES-256-GCM (crypto.c) ---- */

/*
 * Encrypt pt[0..ptlen) under key (SP_KEYRING_KEY_LEN bytes) with a fresh
 * random IV and aad[0..aadlen) as additional authenticated data, and append
 * base64(IV || ciphertext || tag) to out (NUL-terminated, no prefix). aad and
 * pt may be NULL when their length is 0. Everything is borrowed. On failure
 * out is left as it was.
 */
SP_MUSTCHECK int sp_crypto_seal(const unsigned char *key, const void *aad, size_t aadlen,
                                const void *pt, size_t ptlen, struct sp_buf *out,
                                struct sp_err *err);
/*
 * Reverse sp_crypto_seal: decode b64[0..len), check the tag against key and
 * aad, and append the plaintext to out, which should be a sensitive sp_buf.
 * Fails (SP_E_INTERNAL, out left as it was, nothing of the value in the
 * message) on malformed base64, input shorter than IV + tag, a wrong key or
 * aad, tampered bytes, or when out's maximum is too small.
 */
SP_MUSTCHECK int sp_crypto_open(const unsigned char *key, const void *aad, size_t aadlen,
                                const char *b64, size_t len, struct sp_buf *out,
                                struct sp_err *err);
/*
 * The key version of a stored value stored[0..len) ("VERSION:..."): a
 * decimal 1..SP_KEYRING_MAX_VERSION without leading zeros followed by ':'.
 * Returns -1 when there is no such prefix. Reads nothing past len.
 */
SP_MUSTCHECK int sp_keyring_version_of(const char *stored, size_t len);

/* ---- the key ring (keyring.c) ---- */

/*
 * Open the key ring file at path (borrowed; copied). The file must be a
 * regular file (not a symbolic link) that neither group nor others may access;
 * it is refused otherwise with a message naming the path and its mode.
 *
 * When the file is absent and create is non-zero, missing directories are
 * created 0700 and a new key ring with one random version is written 0600.
 * master_key_b64, when not NULL, is base64 of exactly 32 bytes: the file is
 * then kept wrapped (encrypted) with it; a plain file found while a master key
 * is configured is accepted and rewritten wrapped. A wrapped file cannot be
 * opened without the right master key.
 *
 * On success *out is a new key ring owned by the caller (sp_keyring_free).
 * Errors: SP_E_CONFIG for everything about the file or the master key,
 * SP_E_INTERNAL for lack of memory or randomness.
 *
 * Also installs, once per process, a jansson free function that wipes
 * memory before freeing it (the key ring is JSON), so call it at start-up
 * before other threads use jansson.
 */
SP_MUSTCHECK int sp_keyring_open(const char *path, const char *master_key_b64, int create,
                                 struct sp_keyring **out, struct sp_err *err);
/* Wipe every key and free the ring. NULL is fine. No other thread may still
 * use kr. */
void sp_keyring_free(struct sp_keyring *kr);

/* The version new values are encrypted with (>= 1). */
int sp_keyring_current(struct sp_keyring *kr);

/*
 * Encrypt pt[0..ptlen) with the current version and append the stored form
 * "VERSION:base64(IV || ciphertext || tag)" to out (a plain sp_buf is fine:
 * nothing in it is secret). aad is the record's identity. All borrowed; out
 * is left as it was on failure (SP_E_INTERNAL, or out's SP_E_PAYLOAD_TOO_LARGE).
 */
SP_MUSTCHECK int sp_keyring_encrypt(struct sp_keyring *kr, const void *aad, size_t aadlen,
                                    const void *pt, size_t ptlen, struct sp_buf *out,
                                    struct sp_err *err);
/*
 * Decrypt the stored form stored[0..len) written for the same aad and append
 * the plaintext to out, which the caller initialised with sensitive = 1 and
 * frees with sp_buf_free (that wipes it). Fails with SP_E_INTERNAL, out left
 * as it was, on malformed input, a retired or unknown version, a bad tag or a
 * different aad; the message never holds value bytes. A version the ring
 * does not know (another process may have rotated) makes it reload the file
 * first, at most once per second per key ring.
 */
SP_MUSTCHECK int sp_keyring_decrypt(struct sp_keyring *kr, const void *aad, size_t aadlen,
                                    const char *stored, size_t len, struct sp_buf *out,
                                    struct sp_err *err);

/*
 * Add a version with a new random key and make it current; the file is
 * rewritten (atomically, under a lock shared with other processes, after
 * re-reading it so that versions they added are kept) before this returns.
 * *new_version (may be NULL) gets the new number.
 */
SP_MUSTCHECK int sp_keyring_add_version(struct sp_keyring *kr, int *new_version,
                                        struct sp_err *err);
/*
 * Make the current version at least version, adding versions (as
 * sp_keyring_add_version does) only as far as needed, in one step under the
 * file's lock: two processes resuming the same rotation to version N both end
 * at N, where "reload, then add while current < N" could reach N + 1.
 * *current (may be NULL) gets the resulting current version, which is larger
 * than version when the file already was.
 */
SP_MUSTCHECK int sp_keyring_ensure_current(struct sp_keyring *kr, int version, int *current,
                                           struct sp_err *err);
/*
 * Wipe and drop the key of a non-current version, which stays listed as
 * retired; persisted like sp_keyring_add_version. The caller guarantees that
 * no record still uses it. Retiring a retired version succeeds. Errors:
 * SP_E_NOT_FOUND (no such version), SP_E_CONFLICT (it is current), and the
 * file errors of sp_keyring_open.
 */
SP_MUSTCHECK int sp_keyring_retire(struct sp_keyring *kr, int version, struct sp_err *err);
/*
 * Re-read the file (another process may have added or retired versions).
 * When the file is unreadable or invalid, or has lost a version this ring
 * holds, or holds a different key for it, the keys in memory stay in use and
 * the error is returned.
 */
SP_MUSTCHECK int sp_keyring_reload(struct sp_keyring *kr, struct sp_err *err);

/*
 * Every version, oldest first, for status pages: *out is a new array of *n
 * entries that the caller frees with free(). Holds no key material.
 */
SP_MUSTCHECK int sp_keyring_list(struct sp_keyring *kr, struct sp_keyring_version_info **out,
                                 size_t *n, struct sp_err *err);
/*
 * Append the status as a JSON object to out (the body of GET /v1/keyring):
 * {"current":N,"wrapped":bool,"versions":[{"version":N,"created_at":"RFC
 * 3339","retired":bool,"retired_at":"RFC 3339"|null,"current":bool},...]}.
 */
SP_MUSTCHECK int sp_keyring_status_json(struct sp_keyring *kr, struct sp_buf *out,
                                        struct sp_err *err);

/*
 * For --check-config, without side effects: an absent file passes when it
 * could be created (its nearest existing ancestor is a writable directory);
 * an existing one must pass the type and mode checks of sp_keyring_open and
 * be a well-formed key ring (a wrapped one is checked only for its outer
 * shape, since no master key is given). SP_E_CONFIG with a message naming the
 * path otherwise.
 */
SP_MUSTCHECK int sp_keyring_check_file(const char *path, struct sp_err *err);

#endif
