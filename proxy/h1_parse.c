/*
 * h1_parse.c - the request side of HTTP/1.1 (RFC 9112) as pure functions
 * over bytes: where a head ends, what it says (parsed in place: spans into
 * the connection's buffer, NULs written after each piece, no allocation),
 * and chunked bodies. Strict where leniency lets two parsers disagree about
 * framing (request smuggling): CRLF only, no obs-fold, no whitespace before
 * a colon, one framing, one Host.
 */
#include "h1_int.h"

#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096

int h1_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* ---- the end of a head ---- */

void h1_scan_init(struct h1_scan *s, size_t at)
{
    s->start = s->line = s->pos = at;
    s->nfields = 0;
}

void h1_scan_shift(struct h1_scan *s, size_t by)
{
    s->start -= by;
    s->line -= by;
    s->pos -= by;
}

int h1_scan_head(struct h1_scan *s, const char *buf, size_t len, size_t max_head, size_t max_fields,
                 size_t *end, struct sp_err *err)
{
    while (s->pos < len) {
        const char *lf = memchr(buf + s->pos, '\n', len - s->pos);
        size_t at;

        if (!lf) {
            s->pos = len;
            break;
        }
        at = (size_t)(lf - buf);
        if (at == s->line || buf[at - 1] != '\r')
            return sp_err_set(err, SP_E_BAD_REQUEST, "A line ends in a bare LF (CRLF required)");
        s->pos = at + 1;
        if (at - 1 == s->line) {
            if (s->line == s->start) {
                /* An empty line before the request line: skipped. */
                s->start = s->line = s->pos;
                continue;
            }
            if (s->pos - s->start > max_head)
                break;
            *end = s->pos;
            return 1;
        }
        if (s->line != s->start && ++s->nfields > max_fields)
            return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "More than %zu header lines",
                              max_fields);
        s->line = s->pos;
    }
    if (s->pos - s->start > max_head)
        return sp_err_set(err, SP_E_HEADERS_TOO_LARGE,
                          "Request line and headers larger than %zu bytes", max_head);
    return 0;
}

/* ---- the head ---- */

static int parse_version(const char *v, size_t n, struct h1_info *info, struct sp_err *err)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '1' || v[7] == '0')) {
        info->version = v[7] == '1' ? 11 : 10;
        return 0;
    }
    if (n == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
        v[7] >= '0' && v[7] <= '9') {
        if (info->method_len == 3 && memcmp(info->method, "PRI", 3) == 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "HTTP/2 is not supported on this port: use HTTP/1.1");
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "HTTP version not supported (HTTP/1.1 and HTTP/1.0 are)");
    }
    return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed request line");
}

static int parse_request_line(char *p, size_t len, struct h1_info *info, size_t *next,
                              struct sp_err *err)
{
    const char *cr = memchr(p, '\r', len);
    size_t e = (size_t)(cr - p), i = 0, j;

    if (p[e + 1] != '\n')
        return sp_err_set(err, SP_E_BAD_REQUEST, "The request line holds a CR");
    while (i < e && h1_is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == e || p[i] != ' ')
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed request line");
    j = i + 1;
    /* The target: visible characters; bytes above 0x7f are let through. */
    while (j < e && (unsigned char)p[j] > 0x20 && p[j] != 0x7f)
        j++;
    if (j == i + 1)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed request line");
    if (j == e)
        return sp_err_set(err, SP_E_BAD_REQUEST, "HTTP/0.9 requests are not supported");
    if (p[j] != ' ')
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed request target");
    info->method = p;
    info->method_len = i;
    info->target = p + i + 1;
    info->target_len = j - i - 1;
    if (parse_version(p + j + 1, e - j - 1, info, err) < 0)
        return -1;
    p[i] = '\0';
    p[j] = '\0';
    info->is_head = i == 4 && memcmp(p, "HEAD", 4) == 0;
    *next = e + 2;
    return 0;
}

static int parse_field(char *p, size_t len, size_t *at, struct sp_h1_header *h, struct sp_err *err)
{
    size_t ls = *at, n = ls, v, ve, le;
    const char *cr = memchr(p + ls, '\r', len - ls);

    le = (size_t)(cr - p);
    if (p[le + 1] != '\n')
        return sp_err_set(err, SP_E_BAD_REQUEST, "A header line holds a CR");
    if (p[ls] == ' ' || p[ls] == '\t')
        return sp_err_set(err, SP_E_BAD_REQUEST,
                          "A header line starts with whitespace (obs-fold is not accepted)");
    while (n < le && h1_is_tchar((unsigned char)p[n]))
        n++;
    if (n == ls || n == le || p[n] != ':')
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed header name");
    v = n + 1;
    while (v < le && (p[v] == ' ' || p[v] == '\t'))
        v++;
    ve = le;
    while (ve > v && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    for (size_t k = v; k < ve; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return sp_err_set(err, SP_E_BAD_REQUEST, "A header value holds %s",
                              c == 0 ? "NUL" : "a control character");
    }
    p[n] = '\0';
    p[ve] = '\0';
    *h = (struct sp_h1_header){p + ls, n - ls, p + v, ve - v};
    *at = le + 2;
    return 0;
}

static int parse_content_length(const char *v, size_t n, struct h1_info *info, struct sp_err *err)
{
    int64_t cl = 0;

    if (n == 0)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed Content-Length");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed Content-Length");
        /* Saturate: any value this large is over every limit. */
        cl = cl > (INT64_MAX - 9) / 10 ? INT64_MAX : cl * 10 + (v[i] - '0');
    }
    if (info->content_length >= 0 && info->content_length != cl)
        return sp_err_set(err, SP_E_BAD_REQUEST, "Conflicting Content-Length headers");
    info->content_length = cl;
    return 0;
}

/* The tokens of a Connection header we act on. */
static void connection_tokens(const char *v, size_t n, int *close, int *keepalive)
{
    size_t i = 0;

    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (sp_eq_ci(v + s, e - s, "close"))
            *close = 1;
        else if (sp_eq_ci(v + s, e - s, "keep-alive"))
            *keepalive = 1;
    }
}

static int check_framing(int te, int te_chunked, int hosts, size_t max_body, struct h1_info *info,
                         struct sp_err *err)
{
    if (te) {
        if (info->version == 10)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
        if (info->content_length >= 0)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "Both Content-Length and "
                              "Transfer-Encoding: refused (request "
                              "smuggling)");
        if (te > 1 || !te_chunked)
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "Transfer-Encoding other than chunked is not supported");
        info->chunked = 1;
    }
    if ((info->version == 11 && hosts != 1) || hosts > 1)
        return sp_err_set(err, SP_E_BAD_REQUEST, "%s",
                          hosts ? "More than one Host header"
                                : "An HTTP/1.1 request needs a "
                                  "Host header");
    if (info->content_length > 0 && (uint64_t)info->content_length > max_body)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "Request body larger than %zu bytes",
                          max_body);
    return 0;
}

static int check_fields(const struct sp_h1_header *h, size_t n, size_t max_body,
                        struct h1_info *info, struct sp_err *err)
{
    int hosts = 0, te = 0, te_chunked = 1, close = 0, keepalive = 0;

    for (size_t i = 0; i < n; i++) {
        const char *v = h[i].value;
        size_t vn = h[i].value_len;
        if (sp_eq_ci(h[i].name, h[i].name_len, "host")) {
            hosts++;
        } else if (sp_eq_ci(h[i].name, h[i].name_len, "content-length")) {
            if (parse_content_length(v, vn, info, err) < 0)
                return -1;
        } else if (sp_eq_ci(h[i].name, h[i].name_len, "transfer-encoding")) {
            te++;
            te_chunked = te_chunked && sp_eq_ci(v, vn, "chunked");
        } else if (sp_eq_ci(h[i].name, h[i].name_len, "connection")) {
            connection_tokens(v, vn, &close, &keepalive);
        } else if (sp_eq_ci(h[i].name, h[i].name_len, "expect") && info->version == 11) {
            /* HTTP/1.0 expectations are ignored (RFC 9110 §10.1.1). */
            if (sp_eq_ci(v, vn, "100-continue"))
                info->expect_continue = 1;
            else
                info->expect_other = 1;
        }
    }
    info->keepalive = info->version == 11 ? !close : keepalive && !close;
    return check_framing(te, te_chunked, hosts, max_body, info, err);
}

int h1_parse_head(char *p, size_t len, struct sp_h1_header *h, size_t nfields, size_t max_body,
                  struct h1_info *info, struct sp_err *err)
{
    size_t at = 0;

    memset(info, 0, sizeof(*info));
    info->content_length = -1;
    if (parse_request_line(p, len, info, &at, err) < 0)
        return -1;
    for (size_t i = 0; i < nfields; i++)
        if (parse_field(p, len, &at, &h[i], err) < 0)
            return -1;
    return check_fields(h, nfields, max_body, info, err);
}

/* ---- chunked bodies ---- */

enum chunk_state {
    CS_SIZE0 = 1, /* the first digit of a size */
    CS_SIZE,      /* more digits, or what ends them */
    CS_EXT,       /* extensions (ignored) up to CR */
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER, /* the start of a trailer line, or of the final CRLF */
    CS_TRAILER_LINE,
    CS_TRAILER_LF,
    CS_END_LF,
    CS_DONE,
};

void h1_chunked_init(struct h1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CS_SIZE0;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int size_byte(struct h1_chunked *c, unsigned char ch, size_t room, size_t max_body,
                     struct sp_err *err)
{
    int d = hex_value(ch);

    if (d >= 0) {
        /* Leading zeros do not count; 16 significant digits fill 64 bits. */
        if (c->size && ++c->digits >= 16)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Chunk size too long");
        c->size = c->size * 16 + (uint64_t)d;
        if (c->size > room)
            return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "Request body larger than %zu bytes",
                              max_body);
        c->state = CS_SIZE;
    } else if (c->state == CS_SIZE0) {
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed chunk size");
    } else if (ch == ';' || ch == ' ' || ch == '\t') {
        c->state = CS_EXT;
    } else if (ch == '\r') {
        c->state = CS_SIZE_LF;
    } else {
        return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed chunk size");
    }
    return 0;
}

/* One byte of framing (anything but chunk data). 1: the body is complete. */
static int framing_byte(struct h1_chunked *c, unsigned char ch, size_t room, size_t max_body,
                        struct sp_err *err)
{
    switch (c->state) {
    case CS_SIZE0:
    case CS_SIZE:
        return size_byte(c, ch, room, max_body, err);
    case CS_EXT:
        if (ch == '\r')
            c->state = CS_SIZE_LF;
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed chunk extension");
        return 0;
    case CS_SIZE_LF:
        if (ch != '\n')
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed chunk size line");
        c->line = 0;
        c->state = c->size ? CS_DATA : CS_TRAILER;
        return 0;
    case CS_DATA_CR:
        if (ch != '\r')
            return sp_err_set(err, SP_E_BAD_REQUEST, "Chunk data longer than its size");
        c->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (ch != '\n')
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed chunk");
        c->state = CS_SIZE0;
        c->digits = 0;
        return 0;
    case CS_TRAILER:
        c->state = ch == '\r' ? CS_END_LF : CS_TRAILER_LINE;
        return ch == '\n' || ch == 0 ? sp_err_set(err, SP_E_BAD_REQUEST, "Malformed trailer") : 0;
    case CS_TRAILER_LINE:
        if (ch == '\r')
            c->state = CS_TRAILER_LF;
        return ch == '\n' || ch == 0 ? sp_err_set(err, SP_E_BAD_REQUEST, "Malformed trailer") : 0;
    case CS_TRAILER_LF:
    case CS_END_LF:
        if (ch != '\n')
            return sp_err_set(err, SP_E_BAD_REQUEST, "Malformed trailer");
        c->state = c->state == CS_END_LF ? CS_DONE : CS_TRAILER;
        return c->state == CS_DONE;
    default:
        return sp_err_set(err, SP_E_INTERNAL, "chunked decoder misused");
    }
}

int h1_chunked_next(struct h1_chunked *c, const char *p, size_t n, size_t *used, size_t *dlen,
                    size_t max_body, size_t max_trailer, struct sp_err *err)
{
    size_t i = 0;

    while (i < n) {
        int rc;
        if (c->state == CS_DATA) {
            size_t k = c->size < n - i ? (size_t)c->size : n - i;
            c->size -= k;
            c->total += k;
            if (c->size == 0)
                c->state = CS_DATA_CR;
            *used = i;
            *dlen = k;
            return 2;
        }
        if (c->state >= CS_TRAILER) {
            if (++c->trailers > max_trailer)
                return sp_err_set(err, SP_E_HEADERS_TOO_LARGE, "Trailers larger than %zu bytes",
                                  max_trailer);
        } else if (c->state <= CS_SIZE_LF && ++c->line > CHUNK_LINE_MAX) {
            return sp_err_set(err, SP_E_BAD_REQUEST, "Chunk size line longer than %d bytes",
                              CHUNK_LINE_MAX);
        }
        rc = framing_byte(c, (unsigned char)p[i], max_body - (size_t)c->total, max_body, err);
        i++;
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *used = i;
            return 1;
        }
    }
    *used = n;
    return 0;
}

int h1_chunked_feed(struct h1_chunked *c, const char *p, size_t n, size_t *used,
                    struct sp_buf *body, size_t max_body, size_t max_trailer, struct sp_err *err)
{
    size_t at = 0, u, d;

    for (;;) {
        int rc = h1_chunked_next(c, p + at, n - at, &u, &d, max_body, max_trailer, err);
        if (rc < 0)
            return -1;
        if (rc != 2) {
            *used = at + u;
            return rc;
        }
        if (sp_buf_add(body, p + at + u, d, err) < 0)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        at += u + d;
    }
}
