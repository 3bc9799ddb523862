/* buf.c - struct sp_buf: a growable byte buffer with a hard maximum and an
 * optional wipe-on-free mode for buffers that carry secret bytes. */
#include "sp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sp_buf_init(struct sp_buf *b, size_t max, int sensitive)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->sensitive = sensitive;
}

int sp_buf_reserve(struct sp_buf *b, size_t extra, struct sp_err *err)
{
    size_t need, ncap;
    char *p;

    if (extra > SIZE_MAX - b->len - 1)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "buffer size overflow");
    need = b->len + extra + 1;
    if (b->max && need - 1 > b->max)
        return sp_err_set(err, SP_E_PAYLOAD_TOO_LARGE, "more than %zu bytes", b->max);
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (b->sensitive) {
        /* realloc may leave a copy behind: allocate, copy, wipe, free. */
        p = malloc(ncap);
        if (!p)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
        if (b->data) {
            memcpy(p, b->data, b->len + 1);
            sp_free_wiped(b->data, b->cap);
        }
    } else {
        p = realloc(b->data, ncap);
        if (!p)
            return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int sp_buf_add(struct sp_buf *b, const void *p, size_t n, struct sp_err *err)
{
    if (sp_buf_reserve(b, n, err) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sp_buf_addstr(struct sp_buf *b, const char *s, struct sp_err *err)
{
    return sp_buf_add(b, s, strlen(s), err);
}

int sp_buf_printf(struct sp_buf *b, struct sp_err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return sp_err_set(err, SP_E_INTERNAL, "format error");
    if (sp_buf_reserve(b, (size_t)n, err) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sp_buf_reset(struct sp_buf *b)
{
    if (b->data && b->sensitive)
        sp_wipe(b->data, b->cap);
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *sp_buf_steal(struct sp_buf *b, size_t *len)
{
    char *p;

    if (!b->data && sp_buf_reserve(b, 0, NULL) < 0)
        return NULL;
    p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void sp_buf_free(struct sp_buf *b)
{
    if (b->sensitive)
        sp_free_wiped(b->data, b->cap);
    else
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
