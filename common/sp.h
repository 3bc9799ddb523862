/*
 * sp.h - the helpers every secretproxy module shares: the error table and
 * struct sp_err, wiping and constant-time comparison of secret bytes, a
 * growable byte buffer with a hard maximum, base64/hex codecs, time, random
 * bytes, and the JSON-lines logger.
 *
 * This is the bottom of the dependency graph: it uses only libc and mbedTLS.
 */
#ifndef SP_H
#define SP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define SP_MUSTCHECK __attribute__((warn_unused_result))
#define SP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* SP_ASSERT guards our own invariants only, never input from outside. */
#define SP_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            sp_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
void sp_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/*
 * The one table of error codes: enum name, HTTP status, wire string (the
 * value of the Secretproxy-Error header and of error.code in JSON bodies).
 * README.md lists the same wire strings; tests/unit/common/test_err.c checks.
 */
#define SP_ERR_TABLE(X)                                                                            \
    X(SP_E_OK, 200, "ok")                                                                          \
    X(SP_E_BAD_REQUEST, 400, "bad_request")                                                        \
    X(SP_E_REFERENCE_INVALID, 400, "reference_invalid")                                            \
    X(SP_E_USER_REQUIRED, 400, "user_required")                                                    \
    X(SP_E_SECRET_TYPE_MISMATCH, 400, "secret_type_mismatch")                                      \
    X(SP_E_UNAUTHORIZED, 401, "unauthorized")                                                      \
    X(SP_E_FORBIDDEN, 403, "forbidden")                                                            \
    X(SP_E_SECRET_SCOPE_MISMATCH, 403, "secret_scope_mismatch")                                    \
    X(SP_E_SECRET_ENV_MISMATCH, 403, "secret_env_mismatch")                                        \
    X(SP_E_SECRET_HOST_DENIED, 403, "secret_host_denied")                                          \
    X(SP_E_SECRET_EXPIRED, 403, "secret_expired")                                                  \
    X(SP_E_SECRET_REVOKED, 403, "secret_revoked")                                                  \
    X(SP_E_SECRET_UNSAFE_VALUE, 403, "secret_unsafe_value")                                        \
    X(SP_E_DESTINATION_DENIED, 403, "destination_denied")                                          \
    X(SP_E_NOT_FOUND, 404, "not_found")                                                            \
    X(SP_E_SECRET_NOT_FOUND, 404, "secret_not_found")                                              \
    X(SP_E_METHOD_NOT_ALLOWED, 405, "method_not_allowed")                                          \
    X(SP_E_PROXY_AUTH_REQUIRED, 407, "proxy_auth_required")                                        \
    X(SP_E_CONFLICT, 409, "conflict")                                                              \
    X(SP_E_SECRET_EXISTS, 409, "secret_exists")                                                    \
    X(SP_E_PAYLOAD_TOO_LARGE, 413, "payload_too_large")                                            \
    X(SP_E_HEADERS_TOO_LARGE, 431, "headers_too_large")                                            \
    X(SP_E_INTERNAL, 500, "internal_error")                                                        \
    X(SP_E_CONFIG, 500, "config_error")                                                            \
    X(SP_E_UPSTREAM_ERROR, 502, "upstream_error")                                                  \
    X(SP_E_STORE_UNAVAILABLE, 503, "store_unavailable")                                            \
    X(SP_E_UPSTREAM_TIMEOUT, 504, "upstream_timeout")

enum sp_err_code {
#define SP_X_ENUM(name, status, wire) name,
    SP_ERR_TABLE(SP_X_ENUM)
#undef SP_X_ENUM
        SP_E__COUNT
};

/* A failure: a code from the table and a message for humans. The message
 * names things (a secret's name, a host) but never holds a secret value. */
struct sp_err {
    enum sp_err_code code;
    char msg[200];
};

/* Fill err (which may be NULL) and return -1, so callers can write
 * `return sp_err_set(err, SP_E_BAD_REQUEST, "...")`. */
int sp_err_set(struct sp_err *err, enum sp_err_code code, const char *fmt, ...) SP_PRINTF(3, 4);
void sp_err_clear(struct sp_err *err);
int sp_err_http_status(enum sp_err_code code);
const char *sp_err_wire(enum sp_err_code code);
/* Code for a wire string (len bytes), or -1 if unknown. */
int sp_err_from_wire(const char *s, size_t len);

/* ---- secret bytes ---- */

/* Overwrite n bytes so the compiler cannot drop it (mbedtls_platform_zeroize). */
void sp_wipe(void *p, size_t n);
/* Wipe then free a NUL-terminated string or a buffer of n bytes. NULL ok. */
void sp_free_wiped(void *p, size_t n);
void sp_free_wiped_str(char *s);
/* Constant-time equality of two byte strings (time depends on lengths only). */
int sp_ct_eq(const void *a, size_t alen, const void *b, size_t blen);

/* ---- growable buffer with a maximum ---- */

/* A byte buffer that never grows past max (SP_E_PAYLOAD_TOO_LARGE) and keeps a
 * NUL after the data for convenience. Zero-initialise, set max, use, then
 * sp_buf_free(). When sensitive is set, every reallocation and the final free
 * wipe the old memory first. */
struct sp_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    int sensitive;
};

void sp_buf_init(struct sp_buf *b, size_t max, int sensitive);
SP_MUSTCHECK int sp_buf_reserve(struct sp_buf *b, size_t extra, struct sp_err *err);
SP_MUSTCHECK int sp_buf_add(struct sp_buf *b, const void *p, size_t n, struct sp_err *err);
SP_MUSTCHECK int sp_buf_addstr(struct sp_buf *b, const char *s, struct sp_err *err);
SP_MUSTCHECK int sp_buf_printf(struct sp_buf *b, struct sp_err *err, const char *fmt, ...)
    SP_PRINTF(3, 4);
void sp_buf_reset(struct sp_buf *b);
/* Hand the data to the caller (free with free(), or sp_free_wiped if
 * sensitive) and leave b empty. Never NULL for a successful buffer. */
char *sp_buf_steal(struct sp_buf *b, size_t *len);
void sp_buf_free(struct sp_buf *b);

/* ---- codecs ---- */

/* Standard base64 with padding. Output is NUL-terminated; out must hold
 * sp_base64_enc_len(n) + 1 bytes. Returns the length written. */
size_t sp_base64_enc_len(size_t n);
size_t sp_base64_encode(char *out, const void *in, size_t n);
/* Decode standard or URL-safe base64, padding optional, no whitespace.
 * out must hold sp_base64_dec_max(n) bytes. Returns 0 and *outlen, or -1 on
 * malformed input. */
size_t sp_base64_dec_max(size_t n);
SP_MUSTCHECK int sp_base64_decode(void *out, size_t *outlen, const char *in, size_t n);
/* Lower-case hex; out must hold 2n + 1 bytes. */
void sp_hex_encode(char *out, const void *in, size_t n);

/* ---- names ---- */

/* True when s[0..n) matches [A-Za-z0-9_-]{1,128}: secret names, keys of
 * references, workspace/group/user/function ids. */
int sp_valid_name(const char *s, size_t n);
/* Is s[0..n) the NUL-terminated lit, ASCII case ignored (header names,
 * tokens)? */
int sp_eq_ci(const char *s, size_t n, const char *lit);

/* ---- time and randomness ---- */

/* Wall clock in milliseconds since the epoch, and a monotonic clock in
 * microseconds. */
int64_t sp_now_ms(void);
int64_t sp_mono_us(void);
/* Format ms-since-epoch as RFC 3339 UTC with millisecond precision into out
 * (at least 32 bytes). Parse RFC 3339 (Z or +hh:mm offsets, optional
 * fraction) into ms; -1 on malformed input. */
void sp_time_format(char *out, size_t outsz, int64_t ms);
SP_MUSTCHECK int sp_time_parse(const char *s, int64_t *ms);

/* Fill buf with n bytes from a CTR-DRBG seeded from the system entropy
 * source. Thread-safe (one DRBG per thread). */
SP_MUSTCHECK int sp_random(void *buf, size_t n, struct sp_err *err);
/* A fresh URL-safe token of `bytes` random bytes, base64url without padding,
 * into out (at least 4 * bytes / 3 + 4). */
SP_MUSTCHECK int sp_random_token(char *out, size_t outsz, size_t bytes, struct sp_err *err);

/* ---- logging ---- */

enum sp_log_level {
    SP_LOG_DEBUG = 0,
    SP_LOG_INFO = 1,
    SP_LOG_WARN = 2,
    SP_LOG_ERROR = 3,
};

/* A redaction hook: rewrite text[0..len) into out with every secret value
 * replaced. A request's redactor is passed with each log call. */
typedef int (*sp_redact_fn)(void *ctx, const char *text, size_t len, struct sp_buf *out);

struct sp_log_ctx {
    const char *request_id; /* may be NULL */
    sp_redact_fn redact;    /* may be NULL */
    void *redact_ctx;
};

/* Open the log: path "-" is stderr. Replaces the previous sink (SIGHUP
 * reopen). Returns -1 and err if the file cannot be opened. */
SP_MUSTCHECK int sp_log_open(const char *path, enum sp_log_level level, struct sp_err *err);
void sp_log_close(void);
void sp_log_set_level(enum sp_log_level level);
int sp_log_enabled(enum sp_log_level level);
int sp_log_level_parse(const char *s, enum sp_log_level *out);
/* One JSON line {"ts","level","request_id"?,"msg"}; the message is formatted,
 * passed through ctx->redact, then JSON-escaped. Never pass a secret value
 * as an argument: the redactor is a second line of defence, not the first. */
void sp_log(enum sp_log_level level, const struct sp_log_ctx *ctx, const char *fmt, ...)
    SP_PRINTF(3, 4);
/* Write an already-built JSON object line (no trailing newline needed);
 * passed through ctx->redact when set. Used for access and audit lines. */
void sp_log_line(const struct sp_log_ctx *ctx, const char *json, size_t len);

/* JSON-escape s[0..n) into b (no surrounding quotes). */
SP_MUSTCHECK int sp_json_escape(struct sp_buf *b, const char *s, size_t n, struct sp_err *err);

/* Process hardening: no core dumps (RLIMIT_CORE 0, PR_SET_DUMPABLE 0). */
void sp_harden_process(void);

#endif
