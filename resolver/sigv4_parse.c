/*
 * sigv4_parse.c - reading an SDK's SigV4 signature, from the Authorization
 * header or from a presigned URL's X-Amz-* query parameters, into struct
 * sp_sigv4_auth, so the proxy can re-sign the request with the real key.
 * Tolerant of spacing, strict about structure; a malformed input is -1 with
 * a message that names the defect but never quotes the input (the key id
 * may be a secret reference, the signature is the caller's).
 */
#include <string.h>

#include "sigv4_int.h"

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static int is_hex_lower_or_upper(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sp_sigv4_hexval((unsigned char)s[i]) < 0)
            return 0;
    return 1;
}

/* <key id>/<YYYYMMDD>/<region>/<service>/aws4_request, split from the
 * right so that the key id may hold anything but white space and ','. */
static int parse_credential(const char *v, size_t n, struct sp_sigv4_auth *out, struct sp_err *err)
{
    size_t end = n, cut[4];

    for (int k = 0; k < 4; k++) {
        while (end > 0 && v[end - 1] != '/')
            end--;
        if (end == 0)
            return sp_err_set(
                err, SP_E_BAD_REQUEST,
                "SigV4 credential is not <key>/<date>/<region>/<service>/aws4_request");
        cut[k] = --end; /* index of the '/' */
    }
    if (n - cut[0] - 1 != 12 || memcmp(v + cut[0] + 1, "aws4_request", 12) != 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 credential does not end in /aws4_request");
    if (!sp_sigv4_valid_name(v + cut[1] + 1, cut[0] - cut[1] - 1))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 credential service is malformed");
    if (!sp_sigv4_valid_name(v + cut[2] + 1, cut[1] - cut[2] - 1))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 credential region is malformed");
    if (!sp_sigv4_valid_date(v + cut[3] + 1, cut[2] - cut[3] - 1))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 credential date is not YYYYMMDD");
    if (cut[3] == 0 || cut[3] > SP_SIGV4_MAX_KEY_ID)
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 credential key id must be 1..%d bytes",
                          SP_SIGV4_MAX_KEY_ID);
    for (size_t i = 0; i < cut[3]; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] == 0x7f || v[i] == ',')
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "SigV4 credential key id holds a space, ',' or a control character");
    memcpy(out->key_id, v, cut[3]);
    out->key_id[cut[3]] = '\0';
    out->key_id_len = cut[3];
    memcpy(out->date, v + cut[3] + 1, 8);
    out->date[8] = '\0';
    memcpy(out->region, v + cut[2] + 1, cut[1] - cut[2] - 1);
    out->region[cut[1] - cut[2] - 1] = '\0';
    memcpy(out->service, v + cut[1] + 1, cut[0] - cut[1] - 1);
    out->service[cut[0] - cut[1] - 1] = '\0';
    return 0;
}

/* a;b;c: lower-case header-name tokens, none empty. */
static int parse_signed_headers(const char *v, size_t n, struct sp_sigv4_auth *out,
                                struct sp_err *err)
{
    size_t run = 0;

    if (n == 0 || n > SP_SIGV4_MAX_SIGNED)
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 SignedHeaders must be 1..%d bytes",
                          SP_SIGV4_MAX_SIGNED);
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)v[i] : ';';
        if (c == ';') {
            if (run == 0)
                return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 SignedHeaders has an empty name");
            run = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   (c != 0 && strchr("!#$%&'*+-.^_`|~", c))) {
            run++;
        } else {
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "SigV4 SignedHeaders holds a character other than lower-case "
                              "header-name characters and ';'");
        }
    }
    memcpy(out->signed_headers, v, n);
    out->signed_headers[n] = '\0';
    return 0;
}

static int parse_signature(const char *v, size_t n, struct sp_sigv4_auth *out, struct sp_err *err)
{
    if (n != SP_SIGV4_SIG_HEX_LEN || !is_hex_lower_or_upper(v, n))
        return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 Signature is not 64 hex digits");
    for (size_t i = 0; i < n; i++)
        out->signature[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] + 32 : v[i]);
    out->signature[n] = '\0';
    return 0;
}

enum { P_CREDENTIAL = 1, P_SIGNED = 2, P_SIGNATURE = 4 };

static int auth_param(const char *name, size_t nlen, const char *v, size_t vlen, unsigned *seen,
                      struct sp_sigv4_auth *out, struct sp_err *err)
{
    static const struct {
        const char *name;
        unsigned bit;
    } params[] = {
        {"Credential", P_CREDENTIAL}, {"SignedHeaders", P_SIGNED}, {"Signature", P_SIGNATURE}};

    for (size_t i = 0; i < SP_ARRAY_LEN(params); i++) {
        if (nlen != strlen(params[i].name) || memcmp(name, params[i].name, nlen) != 0)
            continue;
        if (*seen & params[i].bit)
            return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 Authorization repeats %s",
                              params[i].name);
        *seen |= params[i].bit;
        if (params[i].bit == P_CREDENTIAL)
            return parse_credential(v, vlen, out, err);
        if (params[i].bit == P_SIGNED)
            return parse_signed_headers(v, vlen, out, err);
        return parse_signature(v, vlen, out, err);
    }
    return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 Authorization has an unknown parameter");
}

int sp_sigv4_parse_authorization(const char *s, size_t n, struct sp_sigv4_auth *out,
                                 struct sp_err *err)
{
    static const char alg[] = SP_SIGV4_ALGORITHM;
    size_t i = 0, alen = sizeof(alg) - 1;
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    while (i < n && is_ws(s[i]))
        i++;
    if (n - i < alen || memcmp(s + i, alg, alen) != 0 || n - i == alen || !is_ws(s[i + alen]))
        return sp_err_set(err, SP_E_BAD_REQUEST, "Authorization is not AWS4-HMAC-SHA256");
    i += alen;
    for (;;) {
        size_t name, nlen, val, vlen;

        while (i < n && is_ws(s[i]))
            i++;
        for (name = i; i < n && s[i] != '=' && s[i] != ',' && !is_ws(s[i]); i++)
            ;
        nlen = i - name;
        while (i < n && is_ws(s[i]))
            i++;
        if (nlen == 0 || i == n || s[i] != '=')
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "SigV4 Authorization parameter is not Name=value");
        for (i++; i < n && is_ws(s[i]); i++)
            ;
        for (val = i; i < n && s[i] != ',' && !is_ws(s[i]); i++)
            ;
        vlen = i - val;
        if (vlen == 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "SigV4 Authorization parameter is empty");
        if (auth_param(s + name, nlen, s + val, vlen, &seen, out, err) < 0)
            return -1;
        while (i < n && is_ws(s[i]))
            i++;
        if (i == n)
            break;
        if (s[i] != ',')
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "SigV4 Authorization parameters must be separated by ','");
        i++;
    }
    if (seen != (P_CREDENTIAL | P_SIGNED | P_SIGNATURE))
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "SigV4 Authorization lacks Credential, SignedHeaders or Signature");
    return 0;
}

/* ---- presigned URLs ---- */

enum {
    Q_ALGORITHM = 1,
    Q_CREDENTIAL = 2,
    Q_DATE = 4,
    Q_EXPIRES = 8,
    Q_SIGNED = 16,
    Q_SIGNATURE = 32,
    Q_TOKEN = 64
};

static int parse_expires(const char *v, size_t n, unsigned *out, struct sp_err *err)
{
    unsigned long x = 0;

    if (n == 0 || n > 6)
        return sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Expires must be 1..%d seconds",
                          SP_SIGV4_MAX_EXPIRES);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Expires is not a number");
        x = x * 10 + (unsigned long)(v[i] - '0');
    }
    if (x == 0 || x > SP_SIGV4_MAX_EXPIRES)
        return sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Expires must be 1..%d seconds",
                          SP_SIGV4_MAX_EXPIRES);
    *out = (unsigned)x;
    return 0;
}

static int query_param(unsigned bit, const char *v, size_t n, struct sp_sigv4_auth *out,
                       struct sp_err *err)
{
    switch (bit) {
    case Q_ALGORITHM:
        if (n != strlen(SP_SIGV4_ALGORITHM) || memcmp(v, SP_SIGV4_ALGORITHM, n) != 0)
            return sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Algorithm is not AWS4-HMAC-SHA256");
        return 0;
    case Q_CREDENTIAL:
        return parse_credential(v, n, out, err);
    case Q_DATE:
        if (!sp_sigv4_valid_amz_date(v, n))
            return sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Date is not YYYYMMDDTHHMMSSZ");
        memcpy(out->amz_date, v, n);
        out->amz_date[n] = '\0';
        return 0;
    case Q_EXPIRES:
        return parse_expires(v, n, &out->expires, err);
    case Q_SIGNED:
        return parse_signed_headers(v, n, out, err);
    case Q_SIGNATURE:
        return parse_signature(v, n, out, err);
    default: /* Q_TOKEN: its value is not ours to keep */
        out->has_token = 1;
        return 0;
    }
}

static unsigned query_bit(const struct sp_buf *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } params[] = {{"X-Amz-Algorithm", Q_ALGORITHM},
                  {"X-Amz-Credential", Q_CREDENTIAL},
                  {"X-Amz-Date", Q_DATE},
                  {"X-Amz-Expires", Q_EXPIRES},
                  {"X-Amz-SignedHeaders", Q_SIGNED},
                  {"X-Amz-Signature", Q_SIGNATURE},
                  {"X-Amz-Security-Token", Q_TOKEN}};

    for (size_t i = 0; i < SP_ARRAY_LEN(params); i++)
        if (name->len == strlen(params[i].name) &&
            memcmp(name->data, params[i].name, name->len) == 0)
            return params[i].bit;
    return 0;
}

static int presigned_piece(const char *piece, size_t plen, unsigned *seen, struct sp_buf *name,
                           struct sp_buf *val, struct sp_sigv4_auth *out, struct sp_err *err)
{
    const char *eq = memchr(piece, '=', plen);
    size_t nlen = eq ? (size_t)(eq - piece) : plen;
    unsigned bit;
    int rc;

    sp_buf_reset(name);
    if (sp_sigv4_pct_decode(piece, nlen, name, NULL) < 0)
        return 0; /* not a name of ours: other parameters are not judged here */
    bit = query_bit(name);
    if (!bit)
        return 0;
    if (*seen & bit)
        return sp_err_set(err, SP_E_BAD_REQUEST, "presigned URL repeats %s", name->data);
    *seen |= bit;
    sp_buf_reset(val);
    if (sp_sigv4_pct_decode(eq ? eq + 1 : "", eq ? plen - nlen - 1 : 0, val, err) < 0)
        return -1;
    rc = query_param(bit, val->data, val->len, out, err);
    sp_buf_reset(val); /* the token, when it was one, leaves no copy */
    return rc;
}

int sp_sigv4_parse_presigned(const char *q, size_t n, struct sp_sigv4_auth *out, struct sp_err *err)
{
    struct sp_buf name, val;
    unsigned seen = 0,
             need = Q_ALGORITHM | Q_CREDENTIAL | Q_DATE | Q_EXPIRES | Q_SIGNED | Q_SIGNATURE;
    size_t i = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->presigned = 1;
    sp_buf_init(&name, 1024, 0);
    sp_buf_init(&val, 64 * 1024, 1);
    while (q && i < n) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t plen = amp ? (size_t)(amp - (q + i)) : n - i;

        if (plen && presigned_piece(q + i, plen, &seen, &name, &val, out, err) < 0)
            goto out;
        i += plen + 1;
    }
    if ((seen & need) != need) {
        sp_err_set(err, SP_E_BAD_REQUEST,
                   "presigned URL lacks one of X-Amz-Algorithm, -Credential, -Date, -Expires, "
                   "-SignedHeaders, -Signature");
        goto out;
    }
    if (memcmp(out->amz_date, out->date, 8) != 0) {
        sp_err_set(err, SP_E_BAD_REQUEST, "X-Amz-Date is not the credential's date");
        goto out;
    }
    rc = 0;
out:
    sp_buf_free(&name);
    sp_buf_free(&val);
    return rc;
}
