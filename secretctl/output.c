/*
 * output.c - what secretctl prints on stdout: JSON for scripts, aligned
 * tables and "key: value" blocks for people. Output is built in a wiped
 * buffer and written with write(2): it may hold a reference or a token, so
 * it never goes through printf. Control characters from the server are
 * shown as '?' so metadata cannot drive the terminal.
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ctl_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;

    /* Whatever stdio holds goes first, so the order on screen is kept. */
    if (fd == STDOUT_FILENO && fflush(stdout) != 0)
        return CTL_EXIT_REFUSED;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (fd == STDOUT_FILENO)
                fprintf(stderr, "secretctl: cannot write the output: %s\n", strerror(errno));
            return CTL_EXIT_REFUSED;
        }
        s += w;
        n -= (size_t)w;
    }
    return CTL_EXIT_OK;
}

static int on_dump(const char *p, size_t n, void *arg)
{
    return sp_buf_add(arg, p, n, NULL);
}

static int flush_buf(struct sp_buf *b)
{
    int rc = b->len ? ctl_write_all(STDOUT_FILENO, b->data, b->len) : CTL_EXIT_OK;

    sp_buf_free(b);
    return rc;
}

int ctl_print_json(const json_t *j)
{
    struct sp_buf b;

    sp_buf_init(&b, 0, 1);
    if (json_dump_callback(j, on_dump, &b, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
        sp_buf_addstr(&b, "\n", NULL) < 0) {
        sp_buf_free(&b);
        fputs("secretctl: out of memory\n", stderr);
        return CTL_EXIT_REFUSED;
    }
    return flush_buf(&b);
}

/* ---- text of one field ---- */

static int add_clean(struct sp_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char out = (char)((c < 0x20 || c == 0x7f) ? (unsigned char)'?' : c);
        if (sp_buf_add(b, &out, 1, NULL) < 0)
            return -1;
    }
    return 0;
}

/* The human form of a JSON value: "-" for null and empty, yes/no, lists
 * joined with sep, nested objects as compact JSON. */
static int field_text(struct sp_buf *b, const json_t *v, const char *sep)
{
    char num[48];
    size_t i;
    const json_t *item;

    if (!v)
        return sp_buf_addstr(b, "-", NULL);
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (json_string_length(v) == 0)
            return sp_buf_addstr(b, "-", NULL);
        return add_clean(b, json_string_value(v), json_string_length(v));
    case JSON_TRUE:
        return sp_buf_addstr(b, "yes", NULL);
    case JSON_FALSE:
        return sp_buf_addstr(b, "no", NULL);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return sp_buf_addstr(b, num, NULL);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        return sp_buf_addstr(b, num, NULL);
    case JSON_ARRAY:
        if (json_array_size(v) == 0)
            return sp_buf_addstr(b, "-", NULL);
        json_array_foreach(v, i, item)
        {
            if ((i && sp_buf_addstr(b, sep, NULL) < 0) || field_text(b, item, sep) < 0)
                return -1;
        }
        return 0;
    case JSON_OBJECT: {
        struct sp_buf j;
        int rc;
        sp_buf_init(&j, 0, 1);
        rc = json_dump_callback(v, on_dump, &j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (rc == 0)
            rc = add_clean(b, j.data ? j.data : "", j.len);
        sp_buf_free(&j);
        return rc;
    }
    default:
        return sp_buf_addstr(b, "-", NULL);
    }
}

/* Display width: code points, not bytes. */
static size_t width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static int pad(struct sp_buf *b, size_t n)
{
    while (n-- > 0)
        if (sp_buf_add(b, " ", 1, NULL) < 0)
            return -1;
    return 0;
}

/* ---- tables ---- */

int ctl_print_table(const json_t *rows, const struct ctl_col *cols, size_t ncols)
{
    size_t nrows = json_array_size(rows), w[16] = {0}, r, k;
    char **cell = calloc((nrows + 1) * ncols, sizeof(*cell));
    struct sp_buf out, t;
    int rc = -1;

    sp_buf_init(&out, 0, 1);
    sp_buf_init(&t, 0, 1);
    if (!cell || ncols > SP_ARRAY_LEN(w))
        goto out;
    for (k = 0; k < ncols; k++)
        if (!(cell[k] = strdup(cols[k].head)))
            goto out;
    for (r = 0; r < nrows; r++) {
        for (k = 0; k < ncols; k++) {
            const json_t *v = json_object_get(json_array_get(rows, r), cols[k].field);
            if (field_text(&t, v, ",") < 0 || !(cell[(r + 1) * ncols + k] = sp_buf_steal(&t, NULL)))
                goto out;
        }
    }
    for (r = 0; r <= nrows; r++)
        for (k = 0; k < ncols; k++)
            if (width(cell[r * ncols + k]) > w[k])
                w[k] = width(cell[r * ncols + k]);
    for (r = 0; r <= nrows; r++) {
        for (k = 0; k < ncols; k++) {
            const char *s = cell[r * ncols + k];
            if (sp_buf_addstr(&out, s, NULL) < 0 ||
                (k + 1 < ncols && pad(&out, w[k] - width(s) + 2) < 0))
                goto out;
        }
        if (sp_buf_addstr(&out, "\n", NULL) < 0)
            goto out;
    }
    rc = flush_buf(&out);
out:
    if (rc < 0) {
        fputs("secretctl: out of memory\n", stderr);
        rc = CTL_EXIT_REFUSED;
    }
    for (r = 0; cell && r < (nrows + 1) * ncols; r++)
        sp_free_wiped_str(cell[r]);
    free(cell);
    sp_buf_free(&t);
    sp_buf_free(&out);
    return rc;
}

/* ---- key: value blocks ---- */

struct lines {
    char *key[64];
    char *val[64];
    size_t n;
};

static int add_line(struct lines *l, const char *prefix, const char *key, const json_t *v,
                    const char *raw)
{
    struct sp_buf k, t;

    if (l->n >= SP_ARRAY_LEN(l->key))
        return 0; /* more fields than a person reads: --json has them all */
    sp_buf_init(&k, 0, 0);
    sp_buf_init(&t, 0, 1);
    if (sp_buf_addstr(&k, prefix, NULL) < 0 || add_clean(&k, key, strlen(key)) < 0 ||
        (raw ? add_clean(&t, raw, strlen(raw)) : field_text(&t, v, ", ")) < 0) {
        sp_buf_free(&k);
        sp_buf_free(&t);
        return -1;
    }
    l->key[l->n] = sp_buf_steal(&k, NULL);
    l->val[l->n++] = sp_buf_steal(&t, NULL);
    return 0;
}

static int in_list(const char *const *order, const char *k)
{
    for (; order && *order; order++)
        if (strcmp(*order, k) == 0)
            return 1;
    return 0;
}

static int add_object(struct lines *l, const char *prefix, const json_t *obj,
                      const char *const *order)
{
    const char *k;
    const json_t *v;
    char sub[160];

    for (const char *const *o = order; o && *o; o++)
        if ((v = json_object_get(obj, *o)) && add_line(l, prefix, *o, v, NULL) < 0)
            return -1;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (in_list(order, k))
            continue;
        if (json_is_object(v) && json_object_size(v) > 0) {
            snprintf(sub, sizeof(sub), "%s%.60s.", prefix, k);
            if (add_object(l, sub, v, NULL) < 0)
                return -1;
        } else if (add_line(l, prefix, k, v, NULL) < 0) {
            return -1;
        }
    }
    return 0;
}

int ctl_print_object(const json_t *obj, const char *const *order, const char *extra_key,
                     const char *extra_val)
{
    struct lines l;
    struct sp_buf out;
    size_t w = 0, i;
    int rc = -1;

    memset(&l, 0, sizeof(l));
    sp_buf_init(&out, 0, 1);
    if (add_object(&l, "", obj, order) < 0 ||
        (extra_key && add_line(&l, "", extra_key, NULL, extra_val) < 0))
        goto out;
    for (i = 0; i < l.n; i++)
        if (width(l.key[i]) > w)
            w = width(l.key[i]);
    for (i = 0; i < l.n; i++)
        if (sp_buf_addstr(&out, l.key[i], NULL) < 0 || sp_buf_addstr(&out, ":", NULL) < 0 ||
            pad(&out, w - width(l.key[i]) + 1) < 0 || sp_buf_addstr(&out, l.val[i], NULL) < 0 ||
            sp_buf_addstr(&out, "\n", NULL) < 0)
            goto out;
    rc = flush_buf(&out);
out:
    if (rc < 0) {
        fputs("secretctl: out of memory\n", stderr);
        rc = CTL_EXIT_REFUSED;
    }
    for (i = 0; i < l.n; i++) {
        free(l.key[i]);
        sp_free_wiped_str(l.val[i]);
    }
    sp_buf_free(&out);
    return rc;
}
