/*
 * fuzz_text.c - the resolver's text engine: scanning for references,
 * substituting them in every place (path, query, header, Authorization
 * with Basic credentials, JSON, form, raw bodies), and redacting a value in
 * all its encoded forms, over arbitrary text. The first byte picks the
 * place, the next eight the value substituted and redacted.
 */
#include <stdint.h>
#include <string.h>

#include "resolver/text.h"

struct val {
    const unsigned char *p;
    size_t n;
};

static int lookup(void *ctx, const struct sp_text_ref *ref, const unsigned char **value,
                  size_t *vlen, struct sp_err *err)
{
    struct val *v = ctx;

    *value = v->p;
    *vlen = v->n;
    return 0;
}

/* Does the value stand in the redacted text? Each marker becomes a NUL
 * first: a value ending in '[' (or starting with ']') may otherwise be
 * formed by ordinary text next to a marker, which reveals nothing. */
static int survived(const struct sp_buf *red, const struct val *v)
{
    static const char mark[] = SP_REDACTED;
    struct sp_buf t;
    size_t i = 0;
    int hit;

    sp_buf_init(&t, 0, 0);
    while (i < red->len) {
        if (red->len - i >= sizeof(mark) - 1 &&
            memcmp(red->data + i, mark, sizeof(mark) - 1) == 0) {
            (void)sp_buf_add(&t, "", 1, NULL);
            i += sizeof(mark) - 1;
        } else {
            (void)sp_buf_add(&t, red->data + i++, 1, NULL);
        }
    }
    hit = t.len && memmem(t.data, t.len, v->p, v->n) != NULL;
    sp_buf_free(&t);
    return hit;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum sp_text_place place;
    struct sp_text_ref ref;
    struct sp_redactor *r;
    struct sp_buf out;
    struct sp_err err;
    struct val v;
    const char *in;
    size_t n, at = 0;

    if (size < 9)
        return 0;
    place = (enum sp_text_place)(data[0] % 8 + 1);
    v.p = data + 1;
    v.n = 8;
    in = (const char *)data + 9;
    n = size - 9;
    while (sp_text_scan(in, n, at, sp_text_place_flags(place), &ref)) {
        if (ref.start < at || ref.start + ref.len > n || ref.len == 0)
            __builtin_trap();
        at = ref.start + ref.len;
    }
    sp_buf_init(&out, 1 << 22, 1);
    (void)sp_text_subst(place, in, n, lookup, &v, &out, &err);
    r = sp_redactor_new();
    if (r && sp_redactor_add(r, v.p, v.n, &err) == 0) {
        struct sp_buf red;
        sp_buf_init(&red, 0, 0);
        if (sp_redactor_redact(r, out.data ? out.data : "", out.len, &red, &err) == 0 &&
            memchr(v.p, 0, v.n) == NULL && survived(&red, &v))
            __builtin_trap(); /* a value survived redaction */
        sp_buf_free(&red);
    }
    sp_redactor_free(r);
    sp_buf_free(&out);
    return 0;
}
