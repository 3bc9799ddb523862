/*
 * sigv4_chunked.c - aws-chunked uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD
 * and its trailer variants): the chain of chunk signatures seeded by the
 * request's own signature, and an incremental parser that re-signs an SDK's
 * chunked body slice by slice as it streams through the proxy.
 */
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4_int.h"

#define LINE_MAX_LEN 4096
#define TRAILERS_MAX (16 * 1024)
#define MAX_TRAILERS 64
#define DEFAULT_MAX_CHUNK ((size_t)8 << 20)
#define SIG_PREFIX "chunk-signature="
#define TRAILER_SIG "x-amz-trailer-signature"

/* ---- the signature chain ---- */

struct sp_sigv4_chain {
    mbedtls_md_context_t hmac; /* keyed once with the signing key, reset per message */
    mbedtls_sha256_context chunk;
    char amz_date[SP_SIGV4_AMZ_DATE_LEN + 1];
    char scope[16 + 2 * SP_SIGV4_MAX_NAME + 16];
    char prev[SP_SIGV4_SIG_HEX_LEN + 1];
};

static int lower_hex64(const char *s, char out[SP_SIGV4_SIG_HEX_LEN + 1])
{
    if (!s || strnlen(s, SP_SIGV4_SIG_HEX_LEN + 1) != SP_SIGV4_SIG_HEX_LEN)
        return -1;
    for (size_t i = 0; i < SP_SIGV4_SIG_HEX_LEN; i++) {
        if (sp_sigv4_hexval((unsigned char)s[i]) < 0)
            return -1;
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] + 32 : s[i]);
    }
    out[SP_SIGV4_SIG_HEX_LEN] = '\0';
    return 0;
}

struct sp_sigv4_chain *sp_sigv4_chain_new(const struct sp_sigv4_creds *creds,
                                          const struct sp_sigv4_opts *opts,
                                          const char *seed_signature, struct sp_err *err)
{
    struct sp_sigv4_chain *ch;
    uint8_t key[SP_SIGV4_KEY_LEN];
    char date[9];
    int rc;

    ch = calloc(1, sizeof(*ch));
    if (!ch) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    mbedtls_md_init(&ch->hmac);
    mbedtls_sha256_init(&ch->chunk);
    if (lower_hex64(seed_signature, ch->prev) < 0) {
        sp_err_set(err, SP_E_BAD_REQUEST, "seed signature is not 64 hex digits");
        goto fail;
    }
    if (sp_sigv4_scope(opts, ch->scope, sizeof(ch->scope), err) < 0)
        goto fail;
    memcpy(ch->amz_date, opts->amz_date, SP_SIGV4_AMZ_DATE_LEN + 1);
    memcpy(date, opts->amz_date, 8);
    date[8] = '\0';
    if (sp_sigv4_signing_key(opts->cache, creds, date, opts->region, opts->service, key, err) < 0)
        goto fail;
    rc = mbedtls_md_setup(&ch->hmac, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (rc == 0)
        rc = mbedtls_md_hmac_starts(&ch->hmac, key, sizeof(key));
    sp_wipe(key, sizeof(key));
    if (rc != 0 || mbedtls_sha256_starts_ret(&ch->chunk, 0) != 0) {
        sp_err_set(err, SP_E_INTERNAL, "HMAC-SHA256 setup failed");
        goto fail;
    }
    return ch;
fail:
    sp_sigv4_chain_free(ch);
    return NULL;
}

void sp_sigv4_chain_free(struct sp_sigv4_chain *ch)
{
    if (!ch)
        return;
    mbedtls_md_free(&ch->hmac); /* zeroizes the keyed HMAC pads */
    mbedtls_sha256_free(&ch->chunk);
    sp_wipe(ch, sizeof(*ch));
    free(ch);
}

void sp_sigv4_chain_update(struct sp_sigv4_chain *ch, const void *data, size_t len)
{
    if (len)
        (void)mbedtls_sha256_update_ret(&ch->chunk, data, len); /* cannot fail in software */
}

/* HMAC(signing key, "<kind>\n<date>\n<scope>\n<prev>\n<tail>") into sig. */
static int chain_sign(struct sp_sigv4_chain *ch, const char *kind, const char *tail,
                      char sig[SP_SIGV4_SIG_HEX_LEN + 1], struct sp_err *err)
{
    unsigned char mac[32];
    const char *parts[] = {kind, "\n", ch->amz_date, "\n", ch->scope, "\n", ch->prev, "\n", tail};
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < SP_ARRAY_LEN(parts); i++)
        rc = mbedtls_md_hmac_update(&ch->hmac, (const unsigned char *)parts[i], strlen(parts[i]));
    if (rc == 0)
        rc = mbedtls_md_hmac_finish(&ch->hmac, mac);
    if (rc == 0)
        rc = mbedtls_md_hmac_reset(&ch->hmac);
    if (rc != 0)
        return sp_err_set(err, SP_E_INTERNAL, "HMAC-SHA256 failed");
    sp_hex_encode(sig, mac, sizeof(mac));
    return 0;
}

int sp_sigv4_chain_finish_chunk(struct sp_sigv4_chain *ch, char sig[SP_SIGV4_SIG_HEX_LEN + 1],
                                struct sp_err *err)
{
    unsigned char d[32];
    char tail[2 * SP_SIGV4_SIG_HEX_LEN + 2];

    if (mbedtls_sha256_finish_ret(&ch->chunk, d) != 0 ||
        mbedtls_sha256_starts_ret(&ch->chunk, 0) != 0)
        return sp_err_set(err, SP_E_INTERNAL, "SHA-256 failed");
    memcpy(tail, SP_SIGV4_EMPTY_SHA256 "\n", SP_SIGV4_SIG_HEX_LEN + 1);
    sp_hex_encode(tail + SP_SIGV4_SIG_HEX_LEN + 1, d, sizeof(d));
    if (chain_sign(ch, "AWS4-HMAC-SHA256-PAYLOAD", tail, sig, err) < 0)
        return -1;
    memcpy(ch->prev, sig, SP_SIGV4_SIG_HEX_LEN + 1);
    return 0;
}

int sp_sigv4_chain_sign_trailer(struct sp_sigv4_chain *ch, const char *canonical, size_t len,
                                char sig[SP_SIGV4_SIG_HEX_LEN + 1], struct sp_err *err)
{
    char hash[SP_SIGV4_SIG_HEX_LEN + 1];

    sp_sigv4_sha256_hex(canonical, len, hash);
    return chain_sign(ch, "AWS4-HMAC-SHA256-TRAILER", hash, sig, err);
}

int sp_sigv4_chunked_mode_for(const char *h, size_t len, enum sp_sigv4_chunked_mode *mode)
{
    static const struct {
        const char *value;
        enum sp_sigv4_chunked_mode mode;
    } modes[] = {{SP_SIGV4_STREAMING_PAYLOAD, SP_SIGV4_CHUNKED_SIGNED},
                 {SP_SIGV4_STREAMING_PAYLOAD_TRAILER, SP_SIGV4_CHUNKED_SIGNED_TRAILER},
                 {SP_SIGV4_STREAMING_UNSIGNED_TRAILER, SP_SIGV4_CHUNKED_UNSIGNED_TRAILER}};

    for (size_t i = 0; h && i < SP_ARRAY_LEN(modes); i++)
        if (len == strlen(modes[i].value) && memcmp(h, modes[i].value, len) == 0) {
            *mode = modes[i].mode;
            return 0;
        }
    return -1;
}

/* ---- the re-writer ---- */

enum chunked_state {
    ST_LINE = 1, /* collecting a chunk header line */
    ST_DATA,     /* inside a chunk's data */
    ST_DATA_CR,  /* expecting the CR after the data */
    ST_DATA_LF,  /* expecting its LF */
    ST_TRAILER,  /* collecting the trailer section up to the blank line */
    ST_DONE,
    ST_FAILED,
};

struct sp_sigv4_chunked {
    enum sp_sigv4_chunked_mode mode;
    enum chunked_state st;
    struct sp_sigv4_chain *chain; /* NULL in the unsigned mode */
    size_t max_chunk;
    char line[LINE_MAX_LEN + 2];
    size_t line_len;
    size_t sig_off;        /* where the 64 hex digits sit in line (signed modes) */
    uint64_t remaining;    /* data bytes left in the current chunk */
    struct sp_buf chunk;   /* the current chunk's data, held until it is signed */
    struct sp_buf trailer; /* the trailer section, raw, without the blank line */
    size_t trailer_sig;    /* offset of the trailer signature's hex + 1 (0: none) */
    size_t n_trailers;
};

struct sp_sigv4_chunked *sp_sigv4_chunked_new(enum sp_sigv4_chunked_mode mode,
                                              struct sp_sigv4_chain *chain, size_t max_chunk,
                                              struct sp_err *err)
{
    struct sp_sigv4_chunked *c;
    int is_signed = mode == SP_SIGV4_CHUNKED_SIGNED || mode == SP_SIGV4_CHUNKED_SIGNED_TRAILER;

    if ((!is_signed && mode != SP_SIGV4_CHUNKED_UNSIGNED_TRAILER) || is_signed != (chain != NULL)) {
        sp_sigv4_chain_free(chain);
        sp_err_set(err, SP_E_INTERNAL, "aws-chunked mode and signature chain do not match");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        sp_sigv4_chain_free(chain);
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    c->mode = mode;
    c->st = ST_LINE;
    c->chain = chain;
    c->max_chunk = max_chunk ? max_chunk : DEFAULT_MAX_CHUNK;
    /* Body bytes may be substituted secrets: wiped when released. */
    sp_buf_init(&c->chunk, c->max_chunk, 1);
    sp_buf_init(&c->trailer, TRAILERS_MAX, 1);
    return c;
}

void sp_sigv4_chunked_free(struct sp_sigv4_chunked *c)
{
    if (!c)
        return;
    sp_sigv4_chain_free(c->chain);
    sp_buf_free(&c->chunk);
    sp_buf_free(&c->trailer);
    sp_wipe(c, sizeof(*c));
    free(c);
}

static int fail(struct sp_sigv4_chunked *c, struct sp_err *err, enum sp_err_code code,
                const char *msg)
{
    c->st = ST_FAILED;
    return sp_err_set(err, code, "aws-chunked body: %s", msg);
}

/* "<hex size>[;chunk-signature=<64 hex>]" (signed modes: exactly that) or
 * "<hex size>[;ext]" (unsigned). Sets remaining and sig_off. */
static int parse_chunk_line(struct sp_sigv4_chunked *c, struct sp_err *err)
{
    const char *l = c->line;
    size_t n = c->line_len, i = 0;
    uint64_t size = 0;

    for (; i < n && sp_sigv4_hexval((unsigned char)l[i]) >= 0; i++) {
        size = size * 16 + (uint64_t)sp_sigv4_hexval((unsigned char)l[i]);
        if (size > c->max_chunk)
            return fail(c, err, SP_E_PAYLOAD_TOO_LARGE, "a chunk is larger than allowed");
    }
    if (i == 0 || i > 16)
        return fail(c, err, SP_E_BAD_REQUEST, "chunk size is not hexadecimal");
    if (c->mode == SP_SIGV4_CHUNKED_UNSIGNED_TRAILER) {
        if (i < n && l[i] != ';')
            return fail(c, err, SP_E_BAD_REQUEST, "junk after the chunk size");
    } else {
        size_t pl = strlen(SIG_PREFIX);
        if (n - i != 1 + pl + SP_SIGV4_SIG_HEX_LEN || l[i] != ';' ||
            memcmp(l + i + 1, SIG_PREFIX, pl) != 0)
            return fail(c, err, SP_E_BAD_REQUEST,
                        "chunk header is not <size>;chunk-signature=<signature>");
        c->sig_off = i + 1 + pl;
        for (size_t k = 0; k < SP_SIGV4_SIG_HEX_LEN; k++)
            if (sp_sigv4_hexval((unsigned char)l[c->sig_off + k]) < 0)
                return fail(c, err, SP_E_BAD_REQUEST, "chunk signature is not hexadecimal");
    }
    c->remaining = size;
    return 0;
}

/* Write the held chunk: header line with its new signature, data, CRLF. */
static int emit_chunk(struct sp_sigv4_chunked *c, struct sp_buf *out, int with_data,
                      struct sp_err *err)
{
    char sig[SP_SIGV4_SIG_HEX_LEN + 1];

    if (c->chain) {
        if (sp_sigv4_chain_finish_chunk(c->chain, sig, err) < 0) {
            c->st = ST_FAILED;
            return -1;
        }
        memcpy(c->line + c->sig_off, sig, SP_SIGV4_SIG_HEX_LEN);
    }
    if (sp_buf_add(out, c->line, c->line_len, err) < 0 || sp_buf_add(out, "\r\n", 2, err) < 0 ||
        (with_data && (sp_buf_add(out, c->chunk.data, c->chunk.len, err) < 0 ||
                       sp_buf_add(out, "\r\n", 2, err) < 0))) {
        c->st = ST_FAILED;
        return -1;
    }
    sp_buf_reset(&c->chunk);
    c->line_len = 0;
    return 0;
}

/* A complete chunk header line is in c->line. */
static int on_chunk_line(struct sp_sigv4_chunked *c, struct sp_buf *out, struct sp_err *err)
{
    if (parse_chunk_line(c, err) < 0)
        return -1;
    if (c->remaining == 0) { /* the final chunk: its signature covers no data */
        c->st = ST_TRAILER;
        return emit_chunk(c, out, 0, err);
    }
    c->st = ST_DATA;
    if (!c->chain) /* unsigned: nothing to wait for */
        return emit_chunk(c, out, 0, err);
    if (sp_buf_reserve(&c->chunk, (size_t)c->remaining, err) < 0) { /* one allocation */
        c->st = ST_FAILED;
        return -1;
    }
    return 0;
}

static int on_data(struct sp_sigv4_chunked *c, const char *p, size_t n, struct sp_buf *out,
                   struct sp_err *err)
{
    int rc;

    if (c->chain) {
        sp_sigv4_chain_update(c->chain, p, n);
        rc = sp_buf_add(&c->chunk, p, n, err);
    } else {
        rc = sp_buf_add(out, p, n, err);
    }
    if (rc < 0)
        c->st = ST_FAILED;
    c->remaining -= n;
    if (c->remaining == 0 && rc == 0)
        c->st = ST_DATA_CR;
    return rc;
}

/* Move input up to and including the next LF into c->line. 1: a whole
 * line (CRLF stripped) is there; 0: more input needed; -1: malformed. */
static int collect_line(struct sp_sigv4_chunked *c, const char **p, size_t *n, struct sp_err *err)
{
    const char *nl = memchr(*p, '\n', *n);
    size_t take = nl ? (size_t)(nl - *p) + 1 : *n;

    if (c->line_len + take > sizeof(c->line))
        return fail(c, err, SP_E_BAD_REQUEST, "a chunk header or trailer line is too long");
    memcpy(c->line + c->line_len, *p, take);
    c->line_len += take;
    *p += take;
    *n -= take;
    if (!nl)
        return 0;
    if (c->line_len < 2 || c->line[c->line_len - 2] != '\r')
        return fail(c, err, SP_E_BAD_REQUEST, "a line does not end in CRLF");
    c->line_len -= 2;
    if (memchr(c->line, '\r', c->line_len))
        return fail(c, err, SP_E_BAD_REQUEST, "a stray CR inside a line");
    return 1;
}

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int lc(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

struct trailer_ref {
    const char *name, *value;
    size_t name_len, value_len, idx;
};

static int cmp_names(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++)
        if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
            return lc((unsigned char)a[i]) - lc((unsigned char)b[i]);
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static int cmp_trailer(const void *x, const void *y)
{
    const struct trailer_ref *a = x, *b = y;
    int r = cmp_names(a->name, a->name_len, b->name, b->name_len);

    return r ? r : a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Split c->trailer ("name: value\r\n"..., checked by on_trailer_line) into
 * refs with trimmed values, the signature line left out. */
static size_t split_trailers(const struct sp_sigv4_chunked *c, struct trailer_ref *t)
{
    const char *base = c->trailer.data, *p = base, *end = base + c->trailer.len;
    size_t n = 0;

    while (p < end && n < MAX_TRAILERS) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p)), *v = colon + 1, *ve = eol;
        size_t sig = c->trailer_sig - 1;

        while (v < ve && is_ws(*v))
            v++;
        while (ve > v && is_ws(ve[-1]))
            ve--;
        if (sig < (size_t)(p - base) || sig > (size_t)(eol - base)) {
            t[n] = (struct trailer_ref){p, v, (size_t)(colon - p), (size_t)(ve - v), n};
            n++;
        }
        p = eol + 2;
    }
    return n;
}

/* Canonical trailers: "name:value\n" with lower-case names, sorted,
 * repeated names joined with ',' (as canonical headers). */
static int canonical_trailers(const struct trailer_ref *t, size_t n, struct sp_buf *canon,
                              struct sp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int same =
            i > 0 && cmp_names(t[i - 1].name, t[i - 1].name_len, t[i].name, t[i].name_len) == 0;
        if (same) {
            if (sp_buf_add(canon, ",", 1, err) < 0)
                return -1;
        } else {
            if (i > 0 && sp_buf_add(canon, "\n", 1, err) < 0)
                return -1;
            for (size_t k = 0; k < t[i].name_len; k++) {
                char ch = (char)lc((unsigned char)t[i].name[k]);
                if (sp_buf_add(canon, &ch, 1, err) < 0)
                    return -1;
            }
            if (sp_buf_add(canon, ":", 1, err) < 0)
                return -1;
        }
        if (sp_buf_add(canon, t[i].value, t[i].value_len, err) < 0)
            return -1;
    }
    return n ? sp_buf_add(canon, "\n", 1, err) : sp_buf_reserve(canon, 0, err);
}

/* Sign the trailers; the new signature replaces the SDK's in place. */
static int sign_trailers(struct sp_sigv4_chunked *c, struct sp_err *err)
{
    struct trailer_ref t[MAX_TRAILERS];
    struct sp_buf canon;
    char sig[SP_SIGV4_SIG_HEX_LEN + 1];
    size_t n = split_trailers(c, t);
    int rc;

    qsort(t, n, sizeof(t[0]), cmp_trailer);
    sp_buf_init(&canon, TRAILERS_MAX, 1);
    rc = canonical_trailers(t, n, &canon, err);
    if (rc == 0)
        rc = sp_sigv4_chain_sign_trailer(c->chain, canon.data, canon.len, sig, err);
    if (rc == 0)
        memcpy(c->trailer.data + c->trailer_sig - 1, sig, SP_SIGV4_SIG_HEX_LEN);
    sp_buf_free(&canon);
    return rc;
}

/* The blank line: the trailers (re-signed) and the end of the body. */
static int end_of_body(struct sp_sigv4_chunked *c, struct sp_buf *out, struct sp_err *err)
{
    if (c->mode == SP_SIGV4_CHUNKED_SIGNED_TRAILER) {
        if (!c->trailer_sig)
            return fail(c, err, SP_E_BAD_REQUEST, "no x-amz-trailer-signature");
        if (sign_trailers(c, err) < 0) {
            c->st = ST_FAILED;
            return -1;
        }
    }
    if ((c->trailer.len && sp_buf_add(out, c->trailer.data, c->trailer.len, err) < 0) ||
        sp_buf_add(out, "\r\n", 2, err) < 0) {
        c->st = ST_FAILED;
        return -1;
    }
    c->st = ST_DONE;
    return 0;
}

static int valid_field_name(const char *l, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)l[i] <= 0x20 || (unsigned char)l[i] >= 0x7f ||
            strchr("\"(),/:;<=>?@[\\]{}", l[i]))
            return 0;
    return 1;
}

/* One trailer line (in c->line), or the blank line that ends the body. */
static int on_trailer_line(struct sp_sigv4_chunked *c, struct sp_buf *out, struct sp_err *err)
{
    const char *l = c->line, *colon = memchr(l, ':', c->line_len);
    size_t nlen = colon ? (size_t)(colon - l) : 0, v, ve;

    if (c->line_len == 0)
        return end_of_body(c, out, err);
    if (c->mode == SP_SIGV4_CHUNKED_SIGNED)
        return fail(c, err, SP_E_BAD_REQUEST, "trailers in a body announced without them");
    if (!valid_field_name(l, nlen) || c->trailer_sig)
        return fail(c, err, SP_E_BAD_REQUEST, "malformed trailer, or one after the signature");
    if (++c->n_trailers > MAX_TRAILERS)
        return fail(c, err, SP_E_HEADERS_TOO_LARGE, "too many trailers");
    for (v = nlen + 1; v < c->line_len && is_ws(l[v]); v++)
        ;
    for (ve = c->line_len; ve > v && is_ws(l[ve - 1]); ve--)
        ;
    if (c->mode == SP_SIGV4_CHUNKED_SIGNED_TRAILER &&
        cmp_names(l, nlen, TRAILER_SIG, strlen(TRAILER_SIG)) == 0) {
        if (ve - v != SP_SIGV4_SIG_HEX_LEN)
            return fail(c, err, SP_E_BAD_REQUEST, "trailer signature is not 64 hex digits");
        for (size_t k = v; k < ve; k++)
            if (sp_sigv4_hexval((unsigned char)l[k]) < 0)
                return fail(c, err, SP_E_BAD_REQUEST, "trailer signature is not hexadecimal");
        c->trailer_sig = c->trailer.len + v + 1;
    }
    if (sp_buf_add(&c->trailer, l, c->line_len, err) < 0 ||
        sp_buf_add(&c->trailer, "\r\n", 2, err) < 0) {
        c->st = ST_FAILED;
        return -1;
    }
    c->line_len = 0;
    return 0;
}

/* The CRLF after a chunk's data: the held chunk goes out, re-signed. */
static int on_data_end(struct sp_sigv4_chunked *c, struct sp_buf *out, struct sp_err *err)
{
    c->st = ST_LINE;
    if (c->chain)
        return emit_chunk(c, out, 1, err);
    if (sp_buf_add(out, "\r\n", 2, err) < 0) {
        c->st = ST_FAILED;
        return -1;
    }
    return 0;
}

int sp_sigv4_chunked_feed(struct sp_sigv4_chunked *c, const void *in, size_t len,
                          struct sp_buf *out, struct sp_err *err)
{
    const char *p = in;
    size_t n = len;
    int r = 0;

    if (c->st == ST_FAILED)
        return sp_err_set(err, SP_E_BAD_REQUEST, "aws-chunked body: already failed");
    while (n > 0 && r >= 0) {
        size_t k;

        switch (c->st) {
        case ST_LINE:
        case ST_TRAILER:
            r = collect_line(c, &p, &n, err);
            if (r > 0)
                r = c->st == ST_LINE ? on_chunk_line(c, out, err) : on_trailer_line(c, out, err);
            break;
        case ST_DATA:
            k = n < c->remaining ? n : (size_t)c->remaining;
            r = on_data(c, p, k, out, err);
            p += k;
            n -= k;
            break;
        case ST_DATA_CR:
        case ST_DATA_LF:
            if (*p != (c->st == ST_DATA_CR ? '\r' : '\n'))
                return fail(c, err, SP_E_BAD_REQUEST, "chunk data is not followed by CRLF");
            p++;
            n--;
            if (c->st == ST_DATA_CR)
                c->st = ST_DATA_LF;
            else
                r = on_data_end(c, out, err);
            break;
        case ST_DONE:
            return fail(c, err, SP_E_BAD_REQUEST, "data after the end of the body");
        default:
            return sp_err_set(err, SP_E_BAD_REQUEST, "aws-chunked body: already failed");
        }
    }
    return r < 0 ? -1 : 0;
}

int sp_sigv4_chunked_finish(const struct sp_sigv4_chunked *c, struct sp_err *err)
{
    if (c->st == ST_DONE)
        return 0;
    return sp_err_set(err, SP_E_BAD_REQUEST, "aws-chunked body ends before its final chunk");
}
