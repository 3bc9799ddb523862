/*
 * encode.c - substituting secret values for references, each encoded for the
 * place it lands in (DESIGN §2): percent encoding in URLs, raw and checked in
 * headers (and inside Basic credentials), JSON escaping inside JSON strings,
 * form encoding in form bodies, raw elsewhere. Also the matching decoders.
 *
 * Every buffer that may hold a value is in sensitive mode and wiped.
 */
#include "text.h"

#include <string.h>
#include <strings.h>

static const char hexup[] = "0123456789ABCDEF";

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-encode v into out; space becomes '+' when plus is set. */
static int pct_encode(struct sp_buf *out, const unsigned char *v, size_t n, int plus,
                      struct sp_err *err)
{
    char *w;

    if (n > SIZE_MAX / 3)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "value too large");
    if (sp_buf_reserve(out, 3 * n, err) < 0)
        return -1;
    w = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        if (unreserved(c)) {
            *w++ = (char)c;
        } else if (plus && c == ' ') {
            *w++ = '+';
        } else {
            *w++ = '%';
            *w++ = hexup[c >> 4];
            *w++ = hexup[c & 15];
        }
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int sp_text_pct_encode(struct sp_buf *out, const unsigned char *v, size_t n, struct sp_err *err)
{
    return pct_encode(out, v, n, 0, err);
}

int sp_text_form_encode(struct sp_buf *out, const unsigned char *v, size_t n, struct sp_err *err)
{
    return pct_encode(out, v, n, 1, err);
}

int sp_text_pct_decode(struct sp_buf *out, const char *in, size_t n, int plus_is_space,
                       struct sp_err *err)
{
    char *w;

    if (sp_buf_reserve(out, n, err) < 0)
        return -1;
    w = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int hi, lo;

        if (c == '%' && i + 2 < n && (hi = hexval((unsigned char)in[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)in[i + 2])) >= 0) {
            *w++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *w++ = plus_is_space && c == '+' ? ' ' : (char)c;
        }
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* Four hex digits at in[i..i+4) as a number, or -1. */
static long hex4(const char *in, size_t n, size_t i)
{
    long v = 0;

    if (i + 4 > n)
        return -1;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval((unsigned char)in[i + k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_put(unsigned char *w, unsigned long cp)
{
    if (cp < 0x80) {
        w[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (unsigned char)(0xC0 | cp >> 6);
        w[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (unsigned char)(0xE0 | cp >> 12);
        w[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (unsigned char)(0xF0 | cp >> 18);
    w[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape starting at in[i] == '\\'; writes the bytes to w, sets *used to
 * the escape's length. Returns the bytes written, or -1 if malformed. */
static long json_unescape_one(const char *in, size_t n, size_t i, unsigned char *w, size_t *used)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k;
    long cp, lo;

    if (i + 1 >= n)
        return -1;
    if (in[i + 1] != 'u') {
        k = in[i + 1] ? strchr(from, in[i + 1]) : NULL;
        if (!k)
            return -1;
        w[0] = (unsigned char)to[k - from];
        *used = 2;
        return 1;
    }
    cp = hex4(in, n, i + 2);
    if (cp < 0)
        return -1;
    *used = 6;
    if (cp >= 0xD800 && cp < 0xDC00) {
        if (i + 7 < n && in[i + 6] == '\\' && in[i + 7] == 'u' &&
            (lo = hex4(in, n, i + 8)) >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *used = 12;
        } else {
            return -1;
        }
    } else if (cp >= 0xDC00 && cp < 0xE000) {
        return -1;
    }
    return (long)utf8_put(w, (unsigned long)cp);
}

int sp_text_json_unescape(struct sp_buf *out, const char *in, size_t n, struct sp_err *err)
{
    unsigned char *w;

    /* No escape produces more bytes than it reads. */
    if (sp_buf_reserve(out, n, err) < 0)
        return -1;
    w = (unsigned char *)out->data + out->len;
    for (size_t i = 0; i < n;) {
        size_t used;
        long k;

        if (in[i] != '\\') {
            *w++ = (unsigned char)in[i++];
            continue;
        }
        k = json_unescape_one(in, n, i, w, &used);
        if (k < 0) {
            out->data[out->len] = '\0';
            return sp_err_set(err, SP_E_BAD_REQUEST, "malformed JSON escape at byte %zu", i);
        }
        w += k;
        i += used;
    }
    out->len = (size_t)(w - (unsigned char *)out->data);
    out->data[out->len] = '\0';
    return 0;
}

unsigned sp_text_place_flags(enum sp_text_place place)
{
    switch (place) {
    case SP_TEXT_PATH:
    case SP_TEXT_QUERY:
    case SP_TEXT_BODY_FORM:
        return SP_TEXT_SCAN_PERCENT;
    default:
        return 0;
    }
}

/* The per-place value check, before anything is written. Only headers refuse
 * values today; URL places percent-encode every byte that could break out. */
static int check_value(enum sp_text_place place, const struct sp_text_ref *ref,
                       const unsigned char *v, size_t n, struct sp_err *err)
{
    if (place != SP_TEXT_HEADER && place != SP_TEXT_AUTHORIZATION)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '\r' && v[i] != '\n' && v[i] != '\0')
            continue;
        if (ref->kind == SP_TEXT_REF_NAMED)
            return sp_err_set(err, SP_E_SECRET_UNSAFE_VALUE,
                              "Secret '%.*s' has a value that is not allowed in a header",
                              (int)ref->key_len, ref->key);
        return sp_err_set(err, SP_E_SECRET_UNSAFE_VALUE,
                          "The secret behind a $secret: reference has a value that is not "
                          "allowed in a header");
    }
    return 0;
}

static int add_value(enum sp_text_place place, struct sp_buf *out, const unsigned char *v, size_t n,
                     struct sp_err *err)
{
    switch (place) {
    case SP_TEXT_PATH:
    case SP_TEXT_QUERY:
        return pct_encode(out, v, n, 0, err);
    case SP_TEXT_BODY_FORM:
        return pct_encode(out, v, n, 1, err);
    case SP_TEXT_BODY_JSON:
        return sp_json_escape(out, (const char *)v, n, err);
    default:
        return sp_buf_add(out, v, n, err);
    }
}

/* Where a JSON text's string state is known up to: in a string or not. A
 * light tracker, not a parser: it only needs to tell inside from outside. */
struct json_state {
    size_t pos;
    int in_str;
};

/* Move st over p[st->pos..target): every '"' toggles, except one escaped by
 * an odd run of backslashes inside a string. Each byte is seen at most
 * twice (memchr, then the backslash run before one quote). */
static void json_advance(const char *p, struct json_state *st, size_t target)
{
    while (st->pos < target) {
        const char *q = memchr(p + st->pos, '"', target - st->pos);
        size_t k, bs = 0;

        if (!q) {
            st->pos = target;
            return;
        }
        k = (size_t)(q - p);
        if (st->in_str) {
            while (bs < k && p[k - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                st->in_str = 0;
        } else {
            st->in_str = 1;
        }
        st->pos = k + 1;
    }
}

static int json_outside(const struct sp_text_ref *ref, struct sp_err *err)
{
    if (ref->kind == SP_TEXT_REF_NAMED)
        return sp_err_set(err, SP_E_REFERENCE_INVALID,
                          "Reference to '%.*s' in the JSON body is not inside a string; "
                          "write it inside quotes",
                          (int)ref->key_len, ref->key);
    return sp_err_set(err, SP_E_REFERENCE_INVALID,
                      "A $secret: reference in the JSON body is not inside a string; "
                      "write it inside quotes");
}

/* The loop shared by every place: copy, look up, check, encode. */
static int subst_text(enum sp_text_place place, const char *in, size_t n, sp_text_lookup_fn lookup,
                      void *ctx, struct sp_buf *out, struct sp_err *err)
{
    struct json_state js = {0, 0};
    struct sp_text_ref ref;
    unsigned flags = sp_text_place_flags(place);
    size_t last = 0;
    int count = 0;

    while (sp_text_scan(in, n, last, flags, &ref)) {
        const unsigned char *v = NULL;
        size_t vlen = 0;

        if (place == SP_TEXT_BODY_JSON) {
            json_advance(in, &js, ref.start);
            if (!js.in_str)
                return json_outside(&ref, err);
            js.pos = ref.start + ref.len;
        }
        if (sp_buf_add(out, in + last, ref.start - last, err) < 0)
            return -1;
        if (lookup(ctx, &ref, &v, &vlen, err) < 0)
            return -1;
        if (check_value(place, &ref, v, vlen, err) < 0 || add_value(place, out, v, vlen, err) < 0)
            return -1;
        last = ref.start + ref.len;
        if (count < INT32_MAX)
            count++;
    }
    if (sp_buf_add(out, in + last, n - last, err) < 0)
        return -1;
    return count;
}

/* Where the base64 credential of "Basic <cred>" sits in an Authorization
 * value: sets [*cs, *ce) and returns 1, or 0 if the value is not Basic. */
static int basic_credential(const char *in, size_t n, size_t *cs, size_t *ce)
{
    size_t i = 0, e = n;

    while (i < n && (in[i] == ' ' || in[i] == '\t'))
        i++;
    if (n - i < 6 || strncasecmp(in + i, "Basic", 5) != 0 ||
        (in[i + 5] != ' ' && in[i + 5] != '\t'))
        return 0;
    i += 5;
    while (i < n && (in[i] == ' ' || in[i] == '\t'))
        i++;
    while (e > i && (in[e - 1] == ' ' || in[e - 1] == '\t'))
        e--;
    if (e == i)
        return 0;
    *cs = i;
    *ce = e;
    return 1;
}

/* Decode a Basic credential into dec (sensitive). Returns 1 when it decodes
 * and holds a reference, 0 otherwise, -1 on error. */
static int basic_decode(const char *cred, size_t clen, struct sp_buf *dec, struct sp_err *err)
{
    size_t dlen = 0;

    if (sp_buf_reserve(dec, sp_base64_dec_max(clen), err) < 0)
        return -1;
    if (sp_base64_decode(dec->data, &dlen, cred, clen) < 0)
        return 0;
    dec->len = dlen;
    dec->data[dlen] = '\0';
    return sp_text_has_ref(dec->data, dec->len, 0);
}

/* Authorization: raw substitution when the header text shows a reference;
 * else substitution inside a Basic credential, re-encoded. */
static int subst_authorization(const char *in, size_t n, sp_text_lookup_fn lookup, void *ctx,
                               struct sp_buf *out, struct sp_err *err)
{
    struct sp_buf dec, inner;
    size_t cs, ce, elen;
    int found, count = -1;

    if (sp_text_has_ref(in, n, 0) || !basic_credential(in, n, &cs, &ce))
        return subst_text(SP_TEXT_AUTHORIZATION, in, n, lookup, ctx, out, err);
    sp_buf_init(&dec, 0, 1);
    sp_buf_init(&inner, out->max, 1);
    found = basic_decode(in + cs, ce - cs, &dec, err);
    if (found <= 0) {
        count = found < 0 ? -1 : subst_text(SP_TEXT_AUTHORIZATION, in, n, lookup, ctx, out, err);
        goto done;
    }
    count = subst_text(SP_TEXT_PLAIN, dec.data, dec.len, lookup, ctx, &inner, err);
    if (count < 0)
        goto done;
    elen = sp_base64_enc_len(inner.len);
    if (sp_buf_add(out, in, cs, err) < 0 || sp_buf_reserve(out, elen, err) < 0)
        goto fail;
    out->len += sp_base64_encode(out->data + out->len, inner.data, inner.len);
    if (sp_buf_add(out, in + ce, n - ce, err) < 0)
        goto fail;
    goto done;
fail:
    count = -1;
done:
    sp_buf_free(&dec);
    sp_buf_free(&inner);
    return count;
}

int sp_text_subst(enum sp_text_place place, const char *in, size_t n, sp_text_lookup_fn lookup,
                  void *ctx, struct sp_buf *out, struct sp_err *err)
{
    size_t start = out->len;
    int count;

    out->sensitive = 1;
    if (place == SP_TEXT_AUTHORIZATION)
        count = subst_authorization(in, n, lookup, ctx, out, err);
    else
        count = subst_text(place, in, n, lookup, ctx, out, err);
    if (count < 0 && out->data) {
        sp_wipe(out->data + start, out->cap - start);
        out->len = start;
    }
    return count;
}

int sp_text_place_has_ref(enum sp_text_place place, const char *p, size_t n)
{
    struct sp_buf dec;
    size_t cs, ce;
    int found;

    if (sp_text_has_ref(p, n, sp_text_place_flags(place)))
        return 1;
    if (place != SP_TEXT_AUTHORIZATION || !basic_credential(p, n, &cs, &ce))
        return 0;
    sp_buf_init(&dec, 0, 1);
    found = basic_decode(p + cs, ce - cs, &dec, NULL);
    sp_buf_free(&dec);
    /* Out of memory: say yes, so the caller resolves and fails there. */
    return found != 0;
}
