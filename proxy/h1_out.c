/*
 * h1_out.c - the proxy listener's way out: answers queued in segments
 * (pooled per server, wiped when written) and sent with one sendmsg() per
 * flush, and status lines and headers serialised into them.
 */
#include "h1_int.h"
#include "http_err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SEG_SIZE 16384   /* output segment */
#define SEG_POOL_MAX 128 /* idle output segments kept per server */
#define IOV_N 64         /* segments per sendmsg() */
#define REASON_MAX 128

/* ---- output: segments wiped when written ---- */

static struct h1_seg *seg_new(struct sp_h1_server *srv, size_t need)
{
    struct h1_seg *s;

    if (need <= SEG_SIZE && srv && srv->segs) {
        s = srv->segs;
        srv->segs = s->next;
        srv->nsegs--;
    } else {
        size_t cap = need > SEG_SIZE ? need : SEG_SIZE;
        s = malloc(sizeof(*s) + cap);
        if (!s)
            return NULL;
        s->cap = cap;
    }
    s->next = NULL;
    s->len = s->off = 0;
    return s;
}

static void seg_free(struct sp_h1_server *srv, struct h1_seg *s)
{
    sp_wipe(s->data, s->len);
    if (srv && s->cap == SEG_SIZE && srv->nsegs < SEG_POOL_MAX) {
        s->next = srv->segs;
        srv->segs = s;
        srv->nsegs++;
    } else {
        free(s);
    }
}

/* n contiguous bytes at the end of the output; h1_out_commit() makes them count. */
char *h1_out_reserve(struct h1_conn *c, size_t n)
{
    struct h1_seg *t = c->out_tail;

    if (!t || t->cap - t->len < n) {
        struct h1_seg *s = seg_new(c->srv, n);
        if (!s)
            return NULL;
        if (t)
            t->next = s;
        else
            c->out_head = s;
        c->out_tail = t = s;
    }
    return t->data + t->len;
}

void h1_out_commit(struct h1_conn *c, size_t n)
{
    c->out_tail->len += n;
    c->out_len += n;
}

int h1_out_add(struct h1_conn *c, const void *p, size_t n)
{
    char *w = h1_out_reserve(c, n);

    if (!w)
        return -1;
    memcpy(w, p, n);
    h1_out_commit(c, n);
    return 0;
}

static void out_consume(struct h1_conn *c, size_t n)
{
    c->out_len -= n;
    while (c->out_head) {
        struct h1_seg *s = c->out_head;
        size_t left = s->len - s->off;
        if (n < left || (n == 0 && left)) {
            s->off += n;
            break;
        }
        n -= left;
        c->out_head = s->next;
        if (!c->out_head)
            c->out_tail = NULL;
        seg_free(c->srv, s);
    }
}

void h1_out_free(struct h1_conn *c)
{
    while (c->out_head) {
        struct h1_seg *s = c->out_head;
        c->out_head = s->next;
        seg_free(c->srv, s);
    }
    c->out_tail = NULL;
    c->out_len = 0;
}

/* Write what the socket takes: 0, or -1 when the connection failed. */
int h1_out_flush(struct h1_conn *c)
{
    while (c->out_head) {
        struct iovec iov[IOV_N];
        struct msghdr m;
        size_t total = 0;
        int k = 0;
        ssize_t n;

        for (struct h1_seg *s = c->out_head; s && k < IOV_N; s = s->next) {
            if (s->len == s->off)
                continue;
            iov[k].iov_base = s->data + s->off;
            iov[k++].iov_len = s->len - s->off;
            total += s->len - s->off;
        }
        if (k == 0) {
            out_consume(c, 0);
            break;
        }
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)k;
        n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        out_consume(c, (size_t)n);
        if ((size_t)n < total)
            break;
    }
    return 0;
}

void h1_schedule_flush(struct h1_conn *c)
{
    if (c->fd < 0 || c->flush_queued || c->write_armed)
        return;
    /* Flush later in this loop pass: answers queued by several calls go
     * out in one sendmsg, and no epoll_ctl is needed unless the socket
     * pushes back. Not event_active(ev_write): libevent re-adds an
     * activated EV_PERSIST event that once had a timeout. */
    c->flush_queued = 1;
    event_active(c->ev_flush, EV_WRITE, 1);
}

/* ---- writing a head ---- */

/* The fields the module writes itself. */
static int framing_field(const char *name, size_t n)
{
    return sp_eq_ci(name, n, "content-length") || sp_eq_ci(name, n, "transfer-encoding") ||
           sp_eq_ci(name, n, "connection") || sp_eq_ci(name, n, "keep-alive");
}

int h1_fields_ok(const struct sp_h1_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name_len || (h[i].value_len && !h[i].value))
            return 0;
        for (size_t k = 0; k < h[i].name_len; k++)
            if (!h1_is_tchar((unsigned char)h[i].name[k]))
                return 0;
        for (size_t k = 0; k < h[i].value_len; k++)
            if (h[i].value[k] == '\r' || h[i].value[k] == '\n' || h[i].value[k] == '\0')
                return 0;
    }
    return 1;
}

size_t h1_fmt_u64(char *out, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t h1_head_size(const struct h1_head *hd)
{
    size_t sz = sizeof("HTTP/1.1 200 \r\n") - 1 + hd->reason_len + 2;
    char digits[24];

    for (int j = 0; j < 2; j++)
        for (size_t i = 0; i < hd->n[j]; i++)
            if (!framing_field(hd->h[j][i].name, hd->h[j][i].name_len))
                sz += hd->h[j][i].name_len + 2 + hd->h[j][i].value_len + 2;
    if (hd->content_length >= 0)
        sz += sizeof("Content-Length: \r\n") - 1 +
              h1_fmt_u64(digits, (uint64_t)hd->content_length, 10);
    if (hd->chunked)
        sz += sizeof("Transfer-Encoding: chunked\r\n") - 1;
    if (hd->connection == CONN_CLOSE)
        sz += sizeof("Connection: close\r\n") - 1;
    else if (hd->connection == CONN_KEEPALIVE)
        sz += sizeof("Connection: keep-alive\r\n") - 1;
    return sz;
}

static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

char *h1_head_write(const struct h1_head *hd, char *w)
{
    char status[3] = {(char)('0' + hd->status / 100), (char)('0' + hd->status / 10 % 10),
                      (char)('0' + hd->status % 10)};

    w = PUT_LIT(w, "HTTP/1.1 ");
    w = put(w, status, 3);
    w = put(w, " ", 1);
    w = put(w, hd->reason, hd->reason_len);
    w = PUT_LIT(w, "\r\n");
    for (int j = 0; j < 2; j++) {
        for (size_t i = 0; i < hd->n[j]; i++) {
            const struct sp_h1_header *f = &hd->h[j][i];
            if (framing_field(f->name, f->name_len))
                continue;
            w = put(w, f->name, f->name_len);
            w = PUT_LIT(w, ": ");
            w = put(w, f->value, f->value_len);
            w = PUT_LIT(w, "\r\n");
        }
    }
    if (hd->content_length >= 0) {
        w = PUT_LIT(w, "Content-Length: ");
        w += h1_fmt_u64(w, (uint64_t)hd->content_length, 10);
        w = PUT_LIT(w, "\r\n");
    }
    if (hd->chunked)
        w = PUT_LIT(w, "Transfer-Encoding: chunked\r\n");
    if (hd->connection == CONN_CLOSE)
        w = PUT_LIT(w, "Connection: close\r\n");
    else if (hd->connection == CONN_KEEPALIVE)
        w = PUT_LIT(w, "Connection: keep-alive\r\n");
    return PUT_LIT(w, "\r\n");
}

void h1_head_reason(struct h1_head *hd, const char *reason)
{
    size_t n = reason ? strnlen(reason, REASON_MAX + 1) : 0;

    if (!n || n > REASON_MAX || strpbrk(reason, "\r\n"))
        reason = sp_http_status_reason(hd->status), n = strlen(reason);
    hd->reason = reason;
    hd->reason_len = n;
}

/* The error answer as a head (Connection: close) into hd, fields in f. */
void h1_error_head(struct h1_head *hd, struct sp_h1_header *f, const struct sp_http_error *e)
{
    memset(hd, 0, sizeof(*hd));
    for (size_t i = 0; i < e->nfields; i++)
        f[i] = (struct sp_h1_header){e->fields[i].name, strlen(e->fields[i].name),
                                     e->fields[i].value, strlen(e->fields[i].value)};
    hd->status = e->status;
    h1_head_reason(hd, e->reason);
    hd->h[0] = f;
    hd->n[0] = e->nfields;
    hd->content_length = (int64_t)e->body.len;
    hd->connection = CONN_CLOSE;
}
