/*
 * text.h - the resolver's text engine (private to resolver/): finding secret
 * references in byte ranges (scan.c), substituting values encoded for the
 * place they land in (encode.c), and redacting values and their encoded
 * forms from logs and echoed responses (redact.c).
 *
 * Everything here is pure code over (ptr, len) byte ranges: no sockets, no
 * store, no event loop. Input is never assumed NUL-terminated.
 */
#ifndef SP_RESOLVER_TEXT_H
#define SP_RESOLVER_TEXT_H

#include <stddef.h>

#include "sp.h"

/* ---- finding references (scan.c) ---- */

/* The three spellings (DESIGN §2). $Secret{KEY} and $Token{KEY} are the same
 * thing and both come out as SP_TEXT_REF_NAMED. */
enum sp_text_ref_kind {
    SP_TEXT_REF_TOKEN = 1, /* $secret:<token>, token [A-Za-z0-9_-]{16,256} */
    SP_TEXT_REF_NAMED = 2, /* $Secret{KEY} or $Token{KEY}, KEY [A-Za-z0-9_-]{1,128} */
};

/* One reference found in a text. key points into the scanned text (the KEY
 * or token is plain [A-Za-z0-9_-] in every spelling, so it needs no
 * decoding): borrowed for as long as that text lives. */
struct sp_text_ref {
    size_t start; /* offset of the reference's first byte ('$' or '%') */
    size_t len;   /* length of the reference as it appears, percent forms included */
    enum sp_text_ref_kind kind;
    int percent;     /* 1 when any of $ { } : was percent-encoded */
    const char *key; /* the KEY or the token */
    size_t key_len;
};

/* Scan flags. Percent forms (%24 for $, %7B %7D for braces, %3A for the
 * colon, any hex case, any mix) count only where clients percent-encode:
 * URL path, query and form bodies. */
#define SP_TEXT_SCAN_PERCENT 1u

/* Find the first reference that starts at or after offset from in p[0..n).
 * Returns 1 and fills *ref, or 0 when there is none. Look-alikes
 * ($secretary, $Secret{bad key}, $Secret{}, an unterminated or over-long
 * KEY, a token outside 16..256 characters) are skipped. Never fails. */
int sp_text_scan(const char *p, size_t n, size_t from, unsigned flags, struct sp_text_ref *ref);

/* Cheap "is there any reference?": memchr-first, so a body without '$'
 * (and, with SP_TEXT_SCAN_PERCENT, without "%24") costs about a memchr. */
int sp_text_has_ref(const char *p, size_t n, unsigned flags);

/* ---- substitution (encode.c) ---- */

/* Where a reference sits decides how its value is encoded. */
enum sp_text_place {
    SP_TEXT_PATH = 1,      /* URL path: percent forms found; value percent-encoded */
    SP_TEXT_QUERY,         /* query string: as PATH (space is %20) */
    SP_TEXT_HEADER,        /* header value: raw; CR, LF or NUL refused */
    SP_TEXT_AUTHORIZATION, /* Authorization value: as HEADER, and inside a Basic credential */
    SP_TEXT_BODY_JSON,     /* JSON body: reference must be inside a string; JSON escaping */
    SP_TEXT_BODY_FORM,     /* x-www-form-urlencoded body: percent forms found; form encoding */
    SP_TEXT_BODY_RAW,      /* any other body (multipart included): raw bytes */
    SP_TEXT_PLAIN,         /* an already-decoded string (a /v1/fetch field): raw bytes */
};

/* Scan flags that go with a place (SP_TEXT_SCAN_PERCENT for PATH, QUERY and
 * BODY_FORM, else 0). */
unsigned sp_text_place_flags(enum sp_text_place place);

/* Resolve one reference: set *value and *vlen to its value and return 0, or fill
 * err and return -1, which aborts the whole substitution with that error.
 * The value is borrowed: it must stay valid until lookup is called again or
 * sp_text_subst returns. ref and ref->key are borrowed until lookup returns. */
typedef int (*sp_text_lookup_fn)(void *ctx, const struct sp_text_ref *ref,
                                 const unsigned char **value, size_t *vlen, struct sp_err *err);

/* Append in[0..n) to out with every reference replaced by its value encoded
 * for place. in must not point into out. Values are inserted as they are,
 * never scanned again: a value that looks like a reference stays literal.
 * out is switched to sensitive mode (it holds secrets) and keeps its max.
 * Returns the number of references replaced (0: out got an exact copy of the
 * input; call sp_text_has_ref first to skip that copy), or -1 with err, in
 * which case out is wiped back to its length on entry. Any failure of one
 * reference fails the whole text: nothing half-resolved is ever returned.
 * Errors: the lookup's own; SP_E_SECRET_UNSAFE_VALUE for CR, LF or NUL in a
 * header value; SP_E_REFERENCE_INVALID for a reference outside any JSON
 * string in a JSON body; SP_E_PAYLOAD_TOO_LARGE past out->max; SP_E_INTERNAL
 * when out of memory.
 *
 * SP_TEXT_BODY_JSON: a reference counts as inside a string when an odd
 * number of unescaped '"' precede it (a light tracker, not a parser: the
 * rest of the JSON is not validated). The value is escaped as
 * sp_json_escape does ('"', '\\', control characters); bytes >= 0x80 pass
 * through as they are, so a value that is not UTF-8 makes the body invalid
 * JSON rather than being altered. References written with JSON escapes
 * (\u0024Secret{K}) are not recognised.
 *
 * SP_TEXT_AUTHORIZATION: references written in the header text are replaced
 * raw (so "Basic $Secret{X}" takes X's value as the whole, already-encoded
 * credential, and "Bearer $Secret{X}" works as in any header). Otherwise,
 * when the value is "Basic <base64>" and the decoded "user:password" holds
 * references, they are replaced raw inside it and the credential is
 * re-encoded (standard base64, padded); any byte is allowed there. The
 * scheme, blanks and anything after the credential are kept as they were. */
SP_MUSTCHECK int sp_text_subst(enum sp_text_place place, const char *in, size_t n,
                               sp_text_lookup_fn lookup, void *ctx, struct sp_buf *out,
                               struct sp_err *err);

/* Like sp_text_has_ref, for a place: also looks inside a Basic credential. */
int sp_text_place_has_ref(enum sp_text_place place, const char *p, size_t n);

/* ---- encoders and decoders (encode.c); each appends to out ---- */

/* Percent-encode, keeping only RFC 3986 unreserved characters (upper hex). */
SP_MUSTCHECK int sp_text_pct_encode(struct sp_buf *out, const unsigned char *v, size_t n,
                                    struct sp_err *err);
/* Form-encode: space becomes '+', everything else but unreserved is %XX. */
SP_MUSTCHECK int sp_text_form_encode(struct sp_buf *out, const unsigned char *v, size_t n,
                                     struct sp_err *err);
/* Percent-decode; with plus_is_space '+' becomes a space (form bodies). A
 * '%' not followed by two hex digits is copied as it is. */
SP_MUSTCHECK int sp_text_pct_decode(struct sp_buf *out, const char *in, size_t n, int plus_is_space,
                                    struct sp_err *err);
/* Undo JSON string escaping (the text between the quotes): \uXXXX becomes
 * UTF-8 (surrogate pairs joined), other bytes are copied as they are.
 * SP_E_BAD_REQUEST on a malformed escape. */
SP_MUSTCHECK int sp_text_json_unescape(struct sp_buf *out, const char *in, size_t n,
                                       struct sp_err *err);

/* ---- redaction (redact.c) ---- */

/* The text that replaces every occurrence of a value or of one of its forms. */
#define SP_REDACTED "[REDACTED]"

/* A per-request set of values to hide. Each value is copied; adding one
 * registers it and its forms: raw; percent-encoded (unreserved kept, space
 * as %20 and as '+'; only reserved characters encoded; encodeURIComponent's
 * set); JSON-escaped (as sp_json_escape, with "\/", with \u00XX for every
 * control character and DEL, non-ASCII as \uXXXX like Python's
 * ensure_ascii, and < > & as \u escapes like Go); base64, padded and
 * unpadded, at the three byte alignments (so base64("user:" + value) is
 * caught), cut to the characters that do not depend on the neighbouring
 * bytes, and with "\/" for '/'. Matching folds ASCII case and maps '-' to
 * '+' and '_' to '/', so every hex case and the base64url alphabet are
 * covered too (text equal to a form but for case is redacted as well).
 *
 * Short values are a weak point: base64 forms shorter than 4 characters are
 * skipped (they would redact common text), so most base64 forms of a 1-2
 * byte value are not looked for, and its raw, percent and JSON forms cause
 * false positives on ordinary text. An empty value is ignored.
 *
 * Matching is linear in the input (Aho-Corasick over every form of every
 * value, amortised O(1) per byte); overlapping matches become one
 * [REDACTED], adjacent ones stay two. Memory is about 16 bytes per byte of
 * form, roughly 0.5 KiB per byte of value (a 64 KiB value costs ~30 MiB,
 * ~100 ms to build); a 40-byte value costs ~20 KiB and ~5 us. All memory
 * that holds values or forms is wiped when freed. Not thread-safe: one
 * request, one thread. */
struct sp_redactor;
/* A streaming redaction (a response body). */
struct sp_redact_stream;

/* NULL when out of memory. Free with sp_redactor_free (NULL ok), which
 * wipes every value and pattern. */
struct sp_redactor *sp_redactor_new(void);
void sp_redactor_free(struct sp_redactor *r);
/* Copy value[0..len) into r. Adding a value already present is a no-op.
 * Streams already open keep redacting with the values they started with.
 * SP_E_INTERNAL when out of memory. */
SP_MUSTCHECK int sp_redactor_add(struct sp_redactor *r, const void *value, size_t len,
                                 struct sp_err *err);
/* Number of distinct values added. */
size_t sp_redactor_count(const struct sp_redactor *r);

/* One-shot: append text[0..len) to out with every match replaced. With no
 * values, out gets an exact copy. On -1 out is restored to its length on
 * entry. */
SP_MUSTCHECK int sp_redactor_redact(struct sp_redactor *r, const char *text, size_t len,
                                    struct sp_buf *out, struct sp_err *err);
/* sp_redact_fn for struct sp_log_ctx: ctx is a struct sp_redactor *.
 * Returns -1 only when out of memory, and sp_log then drops the line. */
int sp_redactor_log_hook(void *ctx, const char *text, size_t len, struct sp_buf *out);

/* Start a stream over r's current values (the stream keeps its own reference
 * to them: it may outlive r). NULL with err when out of memory. */
struct sp_redact_stream *sp_redact_stream_new(struct sp_redactor *r, struct sp_err *err);
/* Feed a chunk; append to out what is safe to release. A match split across
 * chunks is still caught: the stream holds back at most (longest form - 1)
 * bytes (none when the redactor had no values). On -1, out is restored to
 * its length on entry and the stream should be dropped. */
SP_MUSTCHECK int sp_redact_stream_feed(struct sp_redact_stream *s, const char *p, size_t n,
                                       struct sp_buf *out, struct sp_err *err);
/* End of input: append everything held back. The stream may then be fed
 * again as a new input. */
SP_MUSTCHECK int sp_redact_stream_finish(struct sp_redact_stream *s, struct sp_buf *out,
                                         struct sp_err *err);
/* Bytes currently held back (at most the longest form - 1). */
size_t sp_redact_stream_pending(const struct sp_redact_stream *s);
/* NULL ok; wipes what was held back. */
void sp_redact_stream_free(struct sp_redact_stream *s);

#endif
