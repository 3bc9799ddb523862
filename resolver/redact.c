/*
 * redact.c - the redactor: replaces every occurrence of a request's secret
 * values, and of the forms they take when encoded (percent, form, JSON,
 * base64 at any alignment), by [REDACTED] in log lines, error messages and
 * echoed response bodies (DESIGN §8).
 *
 * One Aho-Corasick automaton over all forms of all values makes matching
 * linear in the input whatever the values are: each input byte costs one
 * transition (amortised over failure links) and one lookup of the longest
 * form ending there. Matches are merged into intervals (overlapping ones
 * become one [REDACTED]); a stream releases bytes once no future match can
 * start before them, so it holds back at most longest-form - 1 bytes. The
 * one-shot call is the stream fed once, so both give the same output.
 *
 * The trie's labels are the forms themselves: the node array, the scratch
 * buffers, the copies of the values and a stream's held-back bytes are all
 * wiped before they are freed.
 */
#include "text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NO_LIMIT 0

/* ---- the automaton ---- */

struct ac_node {
    uint32_t child;    /* first child, 0 = none (the root is never a child) */
    uint32_t sibling;  /* next child of the same parent */
    uint32_t fail;     /* longest proper suffix that is a trie node */
    uint32_t out : 24; /* length of the longest form that ends here, 0 = none */
    uint32_t label : 8;
};

/* Matching folds ASCII case and the base64url alphabet ('-' is '+', '_'
 * is '/'), so one pattern covers upper- and lower-case hex in percent and
 * \u escapes and both base64 alphabets. The cost is harmless
 * over-redaction of text that equals a form but for case. */
static unsigned char fold(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c | 0x20);
    return c == '-' ? '+' : c == '_' ? '/' : c;
}

/* Immutable once built; shared by the redactor and its open streams. */
struct ac {
    int refs;
    uint32_t nnodes;
    uint32_t maxlen;         /* longest form */
    uint32_t cap;            /* nodes allocated (exactly what the forms need) */
    struct ac_node *nodes;   /* wiped before free */
    uint32_t root_next[256]; /* the root's full row, by raw byte: 0 = stay */
    unsigned char fold[256]; /* fold() as a table, for the hot loop */
};

static struct ac_node *nodes_of(const struct ac *a)
{
    return a->nodes;
}

static void ac_unref(struct ac *a)
{
    if (!a || --a->refs > 0)
        return;
    sp_free_wiped(a->nodes, (size_t)a->nnodes * sizeof(*a->nodes));
    sp_wipe(a, sizeof(*a));
    free(a);
}

/* The array is sized by the counting pass: running out is our bug. */
static uint32_t ac_new_node(struct ac *a, unsigned char label)
{
    struct ac_node nd = {0, 0, 0, 0, label};

    SP_ASSERT(a->nnodes < a->cap);
    a->nodes[a->nnodes] = nd;
    return a->nnodes++;
}

/* Insert one form. Duplicates end on the same node: nothing to dedupe. */
static int ac_insert(struct ac *a, const unsigned char *f, size_t n, struct sp_err *err)
{
    uint32_t s = 0, ch;

    if (n == 0)
        return 0;
    if (n >= 1u << 24)
        return sp_err_set(err, SP_E_INTERNAL, "redaction pattern too long");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = fold(f[i]);
        if (s == 0) {
            ch = a->root_next[c];
        } else {
            for (ch = nodes_of(a)[s].child; ch && nodes_of(a)[ch].label != c;)
                ch = nodes_of(a)[ch].sibling;
        }
        if (ch == 0) {
            ch = ac_new_node(a, c);
            nodes_of(a)[ch].sibling = nodes_of(a)[s].child;
            nodes_of(a)[s].child = ch;
            if (s == 0)
                a->root_next[c] = ch;
        }
        s = ch;
    }
    nodes_of(a)[s].out = (uint32_t)n;
    if (n > a->maxlen)
        a->maxlen = (uint32_t)n;
    return 0;
}

static uint32_t ac_step(const struct ac *a, const struct ac_node *nd, uint32_t s, unsigned char c)
{
    while (s != 0) {
        for (uint32_t ch = nd[s].child; ch; ch = nd[ch].sibling) {
            if (nd[ch].label == c)
                return ch;
        }
        s = nd[s].fail;
    }
    return a->root_next[c];
}

/* Failure links and longest outputs, breadth first (a node's failure target
 * is shallower, so it is complete when the node is reached); then the
 * root's row is extended to raw bytes, so the hot loop needs no folding
 * while it stays at the root. */
static int ac_link(struct ac *a, struct sp_err *err)
{
    struct ac_node *nd = nodes_of(a);
    uint32_t *queue = malloc((size_t)a->nnodes * sizeof(*queue));
    size_t head = 0, tail = 0;

    if (!queue)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    for (uint32_t ch = nd[0].child; ch; ch = nd[ch].sibling)
        queue[tail++] = ch;
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t v = nd[u].child; v; v = nd[v].sibling) {
            nd[v].fail = ac_step(a, nd, nd[u].fail, nd[v].label);
            if (nd[v].out == 0)
                nd[v].out = nd[nd[v].fail].out;
            queue[tail++] = v;
        }
    }
    free(queue);
    for (int c = 0; c < 256; c++) {
        a->fold[c] = fold((unsigned char)c);
        a->root_next[c] = a->root_next[a->fold[c]];
    }
    return 0;
}

/* ---- the forms of a value ---- */

static const char hexlo[] = "0123456789abcdef", hexup[] = "0123456789ABCDEF";
/* Lower-case hex in percent forms, upper-case in \u escapes and the
 * base64url alphabet need no forms of their own: matching folds them. */

enum pct_mode {
    PCT_UNRESERVED = 1, /* RFC 3986: keep A-Z a-z 0-9 - . _ ~, space %20 */
    PCT_FORM,           /* as UNRESERVED, space '+' */
    PCT_RESERVED_ONLY,  /* encode only gen-delims, sub-delims and '%' */
    PCT_URI_COMPONENT,  /* JavaScript encodeURIComponent: also keep ! ' ( ) * */
};

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int pct_keeps(enum pct_mode mode, unsigned char c)
{
    switch (c) {
    case ':':
    case '/':
    case '?':
    case '#':
    case '[':
    case ']':
    case '@':
    case '$':
    case '&':
    case '+':
    case ',':
    case ';':
    case '=':
    case '%':
        return 0;
    case '!':
    case '\'':
    case '(':
    case ')':
    case '*':
        return mode == PCT_URI_COMPONENT;
    default:
        return mode == PCT_RESERVED_ONLY || is_unreserved(c);
    }
}

/* Writers put a form straight into the scratch buffer, which the caller
 * has sized for the worst case; each returns the new end. */
static char *put_pct(char *w, const unsigned char *v, size_t n, enum pct_mode mode)
{
    for (size_t i = 0; i < n; i++) {
        if (pct_keeps(mode, v[i])) {
            *w++ = (char)v[i];
        } else if (mode == PCT_FORM && v[i] == ' ') {
            *w++ = '+';
        } else {
            *w++ = '%';
            *w++ = hexup[v[i] >> 4];
            *w++ = hexup[v[i] & 15];
        }
    }
    return w;
}

enum json_flags {
    JSON_SLASH = 1,  /* '/' as "\/" (PHP) */
    JSON_CTRL_U = 2, /* every control character and DEL as \u00XX */
    JSON_ASCII = 4,  /* non-ASCII as \uXXXX (Python's ensure_ascii) */
    JSON_HTML = 8,   /* < > & U+2028 U+2029 as \u escapes (Go) */
};

static char *put_u(char *w, unsigned long cp, unsigned flags)
{
    *w++ = '\\';
    *w++ = 'u';
    for (int shift = 12; shift >= 0; shift -= 4)
        *w++ = hexlo[(cp >> shift) & 15];
    return w;
}

/* Length of the UTF-8 sequence at v[i..n) and its code point, or 0. */
static size_t utf8_next(const unsigned char *v, size_t n, size_t i, unsigned long *cp)
{
    size_t len = v[i] >= 0xF0 ? 4 : v[i] >= 0xE0 ? 3 : v[i] >= 0xC0 ? 2 : 0;
    static const unsigned long min[5] = {0, 0, 0x80, 0x800, 0x10000};

    if (len == 0 || v[i] > 0xF4 || n - i < len)
        return 0;
    *cp = v[i] & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((v[i + k] & 0xC0) != 0x80)
            return 0;
        *cp = *cp << 6 | (v[i + k] & 0x3F);
    }
    if (*cp < min[len] || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp < 0xE000))
        return 0;
    return len;
}

/* One UTF-8 sequence of a JSON form with JSON_ASCII or JSON_HTML; sets
 * *used, or returns NULL when v is not UTF-8 there (form skipped). */
static char *put_json_utf8(char *w, const unsigned char *v, size_t n, size_t i, unsigned flags,
                           size_t *used)
{
    unsigned long cp;
    size_t len = utf8_next(v, n, i, &cp);

    *used = len;
    if (len == 0)
        return NULL;
    if (!(flags & JSON_ASCII) && cp != 0x2028 && cp != 0x2029) {
        memcpy(w, v + i, len);
        return w + len;
    }
    if (cp < 0x10000)
        return put_u(w, cp, flags);
    w = put_u(w, 0xD800 + ((cp - 0x10000) >> 10), flags);
    return put_u(w, 0xDC00 + ((cp - 0x10000) & 0x3FF), flags);
}

/* A JSON-escaped form (at most 6 bytes per input byte), or NULL when it
 * does not apply to v. */
static char *put_json(char *w, const unsigned char *v, size_t n, unsigned flags)
{
    static const char shorts[] = "\b\f\n\r\t", letters[] = "bfnrt";

    for (size_t i = 0; i < n;) {
        unsigned char c = v[i];
        const char *k = c && c < 0x20 ? strchr(shorts, c) : NULL;
        size_t used = 1;

        if (c == '"' || c == '\\' || (c == '/' && (flags & JSON_SLASH))) {
            *w++ = '\\';
            *w++ = (char)c;
        } else if (k && !(flags & JSON_CTRL_U)) {
            *w++ = '\\';
            *w++ = letters[k - shorts];
        } else if (c < 0x20 || (c == 0x7F && (flags & JSON_CTRL_U)) ||
                   ((flags & JSON_HTML) && (c == '<' || c == '>' || c == '&'))) {
            w = put_u(w, c, flags);
        } else if (c >= 0x80 && (flags & (JSON_ASCII | JSON_HTML))) {
            if (!(w = put_json_utf8(w, v, n, i, flags, &used)))
                return NULL;
        } else {
            *w++ = (char)c;
        }
        i += used;
    }
    return w;
}

/* Forms are made twice: once to count their bytes, so the node array is
 * allocated once at its final size (no copies of secret-derived bytes left
 * behind by growth, few page faults), then to insert them. */
struct builder {
    struct ac *a;
    int counting;
    size_t total;       /* bytes of all forms, when counting */
    struct sp_buf form; /* scratch, sensitive */
    struct sp_buf tmp;  /* scratch, sensitive */
};

/* Room for a form of up to max bytes; returns where to write. */
static char *form_begin(struct builder *b, size_t max, struct sp_err *err)
{
    sp_wipe(b->form.data, b->form.len);
    b->form.len = 0;
    if (sp_buf_reserve(&b->form, max, err) < 0)
        return NULL;
    return b->form.data;
}

/* Count or insert the form that ends at end (NULL: none), then wipe it.
 * Forms shorter than min_len are dropped. */
static int form_end(struct builder *b, const char *end, size_t min_len, struct sp_err *err)
{
    size_t len = end ? (size_t)(end - b->form.data) : 0;
    int rc = 0;

    if (len >= min_len && len > 0) {
        if (b->counting)
            b->total += len;
        else
            rc = ac_insert(b->a, (const unsigned char *)b->form.data, len, err);
    }
    sp_wipe(b->form.data, len);
    return rc;
}

static int add_text_forms(struct builder *b, const unsigned char *v, size_t n, struct sp_err *err)
{
    static const enum pct_mode modes[] = {PCT_UNRESERVED, PCT_FORM, PCT_RESERVED_ONLY,
                                          PCT_URI_COMPONENT};
    static const unsigned json_variants[] = {0, JSON_SLASH, JSON_CTRL_U, JSON_ASCII, JSON_HTML};
    char *w;

    if (n > SIZE_MAX / 6)
        return sp_err_set(err, SP_E_INTERNAL, "value too large");
    if (!(w = form_begin(b, n, err)))
        return -1;
    memcpy(w, v, n);
    if (form_end(b, w + n, 1, err) < 0)
        return -1;
    for (size_t m = 0; m < SP_ARRAY_LEN(modes); m++) {
        if (!(w = form_begin(b, 3 * n, err)) || form_end(b, put_pct(w, v, n, modes[m]), 1, err) < 0)
            return -1;
    }
    for (size_t j = 0; j < SP_ARRAY_LEN(json_variants); j++) {
        if (!(w = form_begin(b, 6 * n, err)) ||
            form_end(b, put_json(w, v, n, json_variants[j]), 1, err) < 0)
            return -1;
    }
    return 0;
}

/* Add enc[from..to), and with "\/" for JSON writers that escape '/' (the
 * URL-safe alphabet is folded into the standard one). Forms under 4
 * characters are skipped: they would redact common text for little gain. */
static int add_b64_slice(struct builder *b, const char *enc, size_t from, size_t to,
                         struct sp_err *err)
{
    size_t len = to - from;
    char *w;

    if (to < from + 4)
        return 0;
    if (!(w = form_begin(b, 2 * len, err)))
        return -1;
    memcpy(w, enc + from, len);
    if (form_end(b, w + len, 4, err) < 0)
        return -1;
    if (!memchr(enc + from, '/', len))
        return 0;
    if (!(w = form_begin(b, 2 * len, err)))
        return -1;
    for (size_t i = from; i < to; i++) {
        if (enc[i] == '/')
            *w++ = '\\';
        *w++ = enc[i];
    }
    return form_end(b, w, 4, err);
}

/* The base64 forms of v at byte alignment k: base64 of (k filler bytes, v),
 * without the leading characters that depend on the filler (2 for k = 1,
 * 3 for k = 2) and cut three ways at the end: only characters that depend
 * on v alone (v followed by more data: a prefix of the others), and v last
 * unpadded and padded. */
static int add_b64_forms(struct builder *b, const unsigned char *v, size_t n, size_t k,
                         struct sp_err *err)
{
    static const size_t head[3] = {0, 2, 3};
    size_t t = n + k, g = t / 3, r = t % 3, elen = sp_base64_enc_len(t);
    size_t mid = 4 * g + r, unpadded = 4 * g + (r ? r + 1 : 0);
    const char *enc;

    sp_wipe(b->tmp.data, b->tmp.len);
    b->tmp.len = 0;
    if (sp_buf_reserve(&b->tmp, t + elen + 1, err) < 0)
        return -1;
    b->tmp.len = t + elen + 1;
    memset(b->tmp.data, 0, k);
    memcpy(b->tmp.data + k, v, n);
    enc = b->tmp.data + t;
    sp_base64_encode(b->tmp.data + t, b->tmp.data, t);
    if (add_b64_slice(b, enc, head[k], mid, err) < 0)
        return -1;
    if (unpadded != mid && add_b64_slice(b, enc, head[k], unpadded, err) < 0)
        return -1;
    if (elen != unpadded && add_b64_slice(b, enc, head[k], elen, err) < 0)
        return -1;
    return 0;
}

static int add_value_forms(struct builder *b, const unsigned char *v, size_t n, struct sp_err *err)
{
    if (add_text_forms(b, v, n, err) < 0)
        return -1;
    for (size_t k = 0; k < 3; k++) {
        if (add_b64_forms(b, v, n, k, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- the redactor ---- */

struct value {
    unsigned char *p;
    size_t n;
};

struct sp_redactor {
    struct value *vals;
    size_t nvals, cap;
    struct ac *ac; /* built from vals; NULL until needed or after an add */
};

struct sp_redactor *sp_redactor_new(void)
{
    return calloc(1, sizeof(struct sp_redactor));
}

void sp_redactor_free(struct sp_redactor *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nvals; i++)
        sp_free_wiped(r->vals[i].p, r->vals[i].n);
    free(r->vals);
    ac_unref(r->ac);
    free(r);
}

size_t sp_redactor_count(const struct sp_redactor *r)
{
    return r ? r->nvals : 0;
}

int sp_redactor_add(struct sp_redactor *r, const void *value, size_t len, struct sp_err *err)
{
    unsigned char *copy;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < r->nvals; i++) {
        if (sp_ct_eq(r->vals[i].p, r->vals[i].n, value, len))
            return 0;
    }
    if (r->nvals == r->cap) {
        size_t ncap = r->cap ? 2 * r->cap : 4;
        struct value *nv = realloc(r->vals, ncap * sizeof(*nv));
        if (!nv)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        r->vals = nv;
        r->cap = ncap;
    }
    copy = malloc(len);
    if (!copy)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    memcpy(copy, value, len);
    r->vals[r->nvals].p = copy;
    r->vals[r->nvals].n = len;
    r->nvals++;
    ac_unref(r->ac);
    r->ac = NULL;
    return 0;
}

static int add_all_forms(struct builder *b, const struct sp_redactor *r, struct sp_err *err)
{
    for (size_t i = 0; i < r->nvals; i++) {
        if (add_value_forms(b, r->vals[i].p, r->vals[i].n, err) < 0)
            return -1;
    }
    return 0;
}

/* The automaton for r's current values (built on first use after an add),
 * or NULL with *rc = 0 when r has none; NULL with *rc = -1 on error. */
static struct ac *redactor_ac(struct sp_redactor *r, int *rc, struct sp_err *err)
{
    struct builder b;

    *rc = 0;
    if (r->ac || r->nvals == 0)
        return r->ac;
    memset(&b, 0, sizeof(b));
    b.a = calloc(1, sizeof(*b.a));
    if (!b.a)
        goto oom;
    b.a->refs = 1;
    sp_buf_init(&b.form, NO_LIMIT, 1);
    sp_buf_init(&b.tmp, NO_LIMIT, 1);
    b.counting = 1;
    if (add_all_forms(&b, r, err) < 0)
        goto fail;
    if (b.total >= UINT32_MAX) {
        sp_err_set(err, SP_E_INTERNAL, "too many redaction patterns");
        goto fail;
    }
    b.a->cap = (uint32_t)b.total + 1;
    b.a->nodes = malloc((size_t)b.a->cap * sizeof(struct ac_node));
    if (!b.a->nodes)
        goto oom;
    ac_new_node(b.a, 0);
    b.counting = 0;
    if (add_all_forms(&b, r, err) < 0)
        goto fail;
    if (ac_link(b.a, err) < 0)
        goto fail;
    sp_buf_free(&b.form);
    sp_buf_free(&b.tmp);
    r->ac = b.a;
    return r->ac;
oom:
    sp_err_set(err, SP_E_INTERNAL, "out of memory");
fail:
    sp_buf_free(&b.form);
    sp_buf_free(&b.tmp);
    ac_unref(b.a);
    *rc = -1;
    return NULL;
}

/* ---- streams ---- */

struct interval {
    uint64_t s, e; /* absolute offsets [s, e) */
    int started;   /* its [REDACTED] is already written */
};

struct sp_redact_stream {
    struct ac *ac;       /* NULL: no values, everything passes */
    uint32_t state;      /* automaton state after the last byte fed */
    uint64_t pos;        /* absolute offset of the next byte fed */
    uint64_t out_pos;    /* absolute offset of the first byte not released */
    struct sp_buf hold;  /* bytes [out_pos, pos), sensitive */
    struct interval *iv; /* pending matches, disjoint and sorted: [ihead, niv) */
    size_t ihead, niv, icap;
};

static void stream_init(struct sp_redact_stream *s, struct ac *a)
{
    memset(s, 0, sizeof(*s));
    s->ac = a;
    if (a)
        a->refs++;
    sp_buf_init(&s->hold, NO_LIMIT, 1);
}

static void stream_clear(struct sp_redact_stream *s)
{
    sp_buf_free(&s->hold);
    free(s->iv);
    ac_unref(s->ac);
    sp_wipe(s, sizeof(*s));
}

struct sp_redact_stream *sp_redact_stream_new(struct sp_redactor *r, struct sp_err *err)
{
    struct sp_redact_stream *s;
    int rc;
    struct ac *a = redactor_ac(r, &rc, err);

    if (rc < 0)
        return NULL;
    s = malloc(sizeof(*s));
    if (!s) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        return NULL;
    }
    stream_init(s, a);
    return s;
}

void sp_redact_stream_free(struct sp_redact_stream *s)
{
    if (!s)
        return;
    stream_clear(s);
    free(s);
}

size_t sp_redact_stream_pending(const struct sp_redact_stream *s)
{
    return s->hold.len;
}

/* Record a match [st, e): merge it with the pending intervals it overlaps
 * (matches arrive by increasing end, so those are at the tail). */
static int add_match(struct sp_redact_stream *s, uint64_t st, uint64_t e, struct sp_err *err)
{
    int started = 0;

    while (s->niv > s->ihead && s->iv[s->niv - 1].e > st) {
        s->niv--;
        if (s->iv[s->niv].s < st)
            st = s->iv[s->niv].s;
        started = s->iv[s->niv].started;
    }
    if (s->niv == s->icap) {
        size_t ncap = s->icap ? 2 * s->icap : 16;
        struct interval *n = realloc(s->iv, ncap * sizeof(*n));
        if (!n)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        s->iv = n;
        s->icap = ncap;
    }
    s->iv[s->niv].s = st;
    s->iv[s->niv].e = e;
    s->iv[s->niv].started = started;
    s->niv++;
    return 0;
}

/* Run the automaton over a chunk that starts at absolute offset base. */
static int run_ac(struct sp_redact_stream *s, const unsigned char *p, size_t n, struct sp_err *err)
{
    const struct ac *a = s->ac;
    const struct ac_node *nd = nodes_of(a);
    uint32_t st = s->state;
    uint64_t base = s->pos;

    for (size_t i = 0; i < n; i++) {
        if (st == 0) {
            /* The common case: most bytes start no form. */
            while (i < n && a->root_next[p[i]] == 0)
                i++;
            if (i == n)
                break;
            st = a->root_next[p[i]];
        } else {
            st = ac_step(a, nd, st, a->fold[p[i]]);
        }
        if (nd[st].out && add_match(s, base + i + 1 - nd[st].out, base + i + 1, err) < 0)
            return -1;
    }
    s->state = st;
    s->pos = base + n;
    return 0;
}

/* The bytes not yet released: the held-back ones then the new chunk. */
struct window {
    uint64_t base; /* absolute offset of hold[0] */
    const char *hold;
    size_t hlen;
    const char *chunk;
    size_t clen;
};

static int emit_raw(const struct window *w, uint64_t from, uint64_t to, struct sp_buf *out,
                    struct sp_err *err)
{
    size_t a = (size_t)(from - w->base), b = (size_t)(to - w->base);

    if (a < w->hlen) {
        size_t m = b < w->hlen ? b : w->hlen;
        if (sp_buf_add(out, w->hold + a, m - a, err) < 0)
            return -1;
        a = m;
    }
    if (a < b && sp_buf_add(out, w->chunk + (a - w->hlen), b - a, err) < 0)
        return -1;
    return 0;
}

/* Release [out_pos, f): raw bytes, and one [REDACTED] per interval. */
static int release(struct sp_redact_stream *s, const struct window *w, uint64_t f,
                   struct sp_buf *out, struct sp_err *err)
{
    while (s->out_pos < f) {
        struct interval *v = s->ihead < s->niv ? &s->iv[s->ihead] : NULL;

        if (v && v->s <= s->out_pos) {
            if (!v->started && sp_buf_add(out, SP_REDACTED, sizeof(SP_REDACTED) - 1, err) < 0)
                return -1;
            v->started = 1;
            if (v->e <= f) {
                s->out_pos = v->e;
                s->ihead++;
            } else {
                s->out_pos = f;
            }
        } else {
            uint64_t stop = v && v->s < f ? v->s : f;
            if (emit_raw(w, s->out_pos, stop, out, err) < 0)
                return -1;
            s->out_pos = stop;
        }
    }
    if (s->ihead == s->niv) {
        s->ihead = s->niv = 0;
    } else if (s->iv && s->ihead > s->niv / 2) {
        memmove(s->iv, s->iv + s->ihead, (s->niv - s->ihead) * sizeof(*s->iv));
        s->niv -= s->ihead;
        s->ihead = 0;
    }
    return 0;
}

/* Keep [out_pos, pos) in hold for the next round. */
static int keep_tail(struct sp_redact_stream *s, const struct window *w, struct sp_err *err)
{
    size_t a = (size_t)(s->out_pos - w->base), keep = (size_t)(s->pos - s->out_pos);

    if (keep == 0) {
        sp_buf_reset(&s->hold);
        return 0;
    }
    if (a < w->hlen && s->hold.data) {
        size_t from_hold = w->hlen - a;
        memmove(s->hold.data, s->hold.data + a, from_hold);
        sp_wipe(s->hold.data + from_hold, w->hlen - from_hold);
        s->hold.len = from_hold;
        return sp_buf_add(&s->hold, w->chunk, w->clen, err);
    }
    sp_buf_reset(&s->hold);
    return sp_buf_add(&s->hold, w->chunk + (a - w->hlen), keep, err);
}

static int stream_feed(struct sp_redact_stream *s, const char *p, size_t n, int final,
                       struct sp_buf *out, struct sp_err *err)
{
    struct window w = {s->out_pos, s->hold.data, s->hold.len, p, n};
    uint64_t f;

    if (!s->ac)
        return sp_buf_add(out, p, n, err);
    if (run_ac(s, (const unsigned char *)p, n, err) < 0)
        return -1;
    f = s->pos + 1 >= s->out_pos + s->ac->maxlen ? s->pos + 1 - s->ac->maxlen : s->out_pos;
    if (final)
        f = s->pos;
    if (release(s, &w, f, out, err) < 0 || keep_tail(s, &w, err) < 0)
        return -1;
    if (final) {
        s->state = 0;
        s->ihead = s->niv = 0;
    }
    return 0;
}

/* Wrap a step that appends to out: on failure wipe what it added. */
static int restore_on_fail(int rc, struct sp_buf *out, size_t start)
{
    if (rc < 0 && out->data && out->len > start) {
        sp_wipe(out->data + start, out->len - start);
        out->len = start;
    }
    return rc;
}

int sp_redact_stream_feed(struct sp_redact_stream *s, const char *p, size_t n, struct sp_buf *out,
                          struct sp_err *err)
{
    size_t start = out->len;

    return restore_on_fail(stream_feed(s, p, n, 0, out, err), out, start);
}

int sp_redact_stream_finish(struct sp_redact_stream *s, struct sp_buf *out, struct sp_err *err)
{
    size_t start = out->len;

    return restore_on_fail(stream_feed(s, "", 0, 1, out, err), out, start);
}

int sp_redactor_redact(struct sp_redactor *r, const char *text, size_t len, struct sp_buf *out,
                       struct sp_err *err)
{
    struct sp_redact_stream s;
    size_t start = out->len;
    int rc;
    struct ac *a = redactor_ac(r, &rc, err);

    if (rc < 0)
        return -1;
    stream_init(&s, a);
    rc = stream_feed(&s, text, len, 1, out, err);
    stream_clear(&s);
    return restore_on_fail(rc, out, start);
}

int sp_redactor_log_hook(void *ctx, const char *text, size_t len, struct sp_buf *out)
{
    return sp_redactor_redact(ctx, text, len, out, NULL);
}
