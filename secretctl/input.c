/*
 * input.c - where a secret's value comes from (--value, --value-file,
 * standard input, a prompt without echo), byte for byte into a wiped
 * buffer; and the small parsers for numeric and list options.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Read fd to its end into out (sensitive, max CTL_VALUE_MAX + 1), reading
 * straight into the buffer so no other copy of the value is made. */
static int read_all(int fd, struct sp_buf *out, const char *what)
{
    for (;;) {
        size_t extra = out->max - out->len;
        ssize_t n;

        if (out->len > CTL_VALUE_MAX) {
            fprintf(stderr, "secretctl: the value from %s is larger than %zu KiB\n", what,
                    CTL_VALUE_MAX >> 10);
            return CTL_EXIT_REFUSED;
        }
        if (extra > 65536)
            extra = 65536;
        if (sp_buf_reserve(out, extra, NULL) < 0) {
            fputs("secretctl: out of memory\n", stderr);
            return CTL_EXIT_REFUSED;
        }
        n = read(fd, out->data + out->len, extra);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "secretctl: cannot read %s: %s\n", what, strerror(errno));
            return CTL_EXIT_REFUSED;
        }
        if (n == 0)
            return CTL_EXIT_OK;
        out->len += (size_t)n;
        out->data[out->len] = '\0';
    }
}

static int read_file(const char *path, struct sp_buf *out)
{
    int fd, rc;

    if (strcmp(path, "-") == 0)
        return read_all(STDIN_FILENO, out, "standard input");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "secretctl: cannot open %s: %s\n", path, strerror(errno));
        return CTL_EXIT_REFUSED;
    }
    rc = read_all(fd, out, path);
    close(fd);
    return rc;
}

/* The terminal's settings while a prompt has echo off, so that Ctrl-C
 * still gives the user a terminal that echoes. */
static struct termios saved_tty;

static void on_prompt_signal(int sig)
{
    (void)tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Read one line from the terminal into out; the line's newline included. */
static int read_line(struct sp_buf *out)
{
    for (;;) {
        size_t room = out->max - out->len;
        ssize_t n;

        if (room > 4096)
            room = 4096;
        if (room == 0 || sp_buf_reserve(out, room, NULL) < 0)
            return -1;
        /* A canonical terminal returns at most one line per read. */
        n = read(STDIN_FILENO, out->data + out->len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        out->len += (size_t)n;
        out->data[out->len] = '\0';
        if (n == 0 || out->data[out->len - 1] == '\n')
            return 0;
    }
}

/* A terminal: ask without echo; the Enter that ends the line is not part
 * of the value. */
static int prompt(const struct ctl *c, struct sp_buf *out)
{
    struct termios quiet;
    void (*old_int)(int), (*old_term)(int);
    int rc;

    if (tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
        fprintf(stderr, "secretctl: cannot read the terminal: %s\n", strerror(errno));
        return CTL_EXIT_REFUSED;
    }
    quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    old_int = signal(SIGINT, on_prompt_signal);
    old_term = signal(SIGTERM, on_prompt_signal);
    /* Echo is off before the prompt shows, so nothing typed is echoed. */
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
        fprintf(stderr, "secretctl: cannot turn off the terminal's echo: %s\n", strerror(errno));
        rc = -2;
    } else {
        fprintf(stderr, "Value for %s (not echoed): ", c->pos[0]);
        fflush(stderr);
        rc = read_line(out);
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        fputc('\n', stderr);
    }
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (rc == -1)
        fputs("secretctl: cannot read the value from the terminal\n", stderr);
    if (rc < 0)
        return CTL_EXIT_REFUSED;
    if (out->len > 0 && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    return CTL_EXIT_OK;
}

static void strip_newline(struct sp_buf *v)
{
    if (v->len > 0 && v->data[v->len - 1] == '\n') {
        v->data[--v->len] = '\0';
        if (v->len > 0 && v->data[v->len - 1] == '\r')
            v->data[--v->len] = '\0';
    }
}

int ctl_read_value(struct ctl *c, int required, struct sp_buf *out, int *given)
{
    int dash = c->npos > 1 && strcmp(c->pos[1], "-") == 0;
    int nsrc = (c->opt[OPT_VALUE] != NULL) + (c->opt[OPT_VALUE_FILE] != NULL) + dash;
    int rc = CTL_EXIT_OK;

    sp_buf_init(out, CTL_VALUE_MAX + 1, 1);
    *given = 0;
    if (c->npos > 1 && !dash)
        return ctl_usage_error(c,
                               "unexpected argument '%s' (use - to read the value from "
                               "standard input)",
                               c->pos[1]);
    if (nsrc > 1)
        return ctl_usage_error(c, "give only one of --value, --value-file and -");
    if (nsrc == 0 && c->opt[OPT_STRIP_NEWLINE] && !required)
        return ctl_usage_error(c, "--strip-newline applies to a value, and none is given");
    if (c->opt[OPT_VALUE]) {
        if (sp_buf_addstr(out, c->value, NULL) < 0)
            rc = CTL_EXIT_REFUSED;
    } else if (c->opt[OPT_VALUE_FILE]) {
        rc = read_file(c->opt[OPT_VALUE_FILE], out);
    } else if (dash) {
        rc = read_all(STDIN_FILENO, out, "standard input");
    } else if (!required) {
        return CTL_EXIT_OK;
    } else if (!isatty(STDIN_FILENO)) {
        rc = read_all(STDIN_FILENO, out, "standard input");
        /* Most likely a script that forgot the value, not an empty secret. */
        if (rc == CTL_EXIT_OK && out->len == 0)
            return ctl_usage_error(c, "no value: standard input was empty (for an empty value "
                                      "say --value '' or -)");
    } else {
        rc = prompt(c, out);
    }
    if (rc != CTL_EXIT_OK)
        return rc;
    if (c->opt[OPT_STRIP_NEWLINE])
        strip_newline(out);
    *given = 1;
    return CTL_EXIT_OK;
}

int ctl_is_text(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int ctl_parse_int(const struct ctl *c, const char *flag, const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno == ERANGE)
        return ctl_usage_error(c, "%s needs a whole number, not '%s'", flag, s);
    return CTL_EXIT_OK;
}

json_t *ctl_split_list(const char *s)
{
    json_t *arr = json_array();

    while (arr && *s) {
        size_t n = strcspn(s, ","), a = 0, b = n;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (b > a) {
            json_t *item = json_stringn(s + a, b - a);
            if (!item || json_array_append_new(arr, item) < 0) {
                json_decref(arr);
                return NULL;
            }
        }
        s += n;
        if (*s == ',')
            s++;
    }
    return arr;
}

int ctl_put_text(const struct ctl *c, json_t *o, const char *field, const char *flag, const char *s,
                 int as_list)
{
    json_t *v;

    if (!s)
        return CTL_EXIT_OK;
    if (!ctl_is_text(s, strlen(s)))
        return ctl_usage_error(c, "%s is not valid UTF-8", flag);
    v = as_list ? ctl_split_list(s) : json_string(s);
    if (!v || json_object_set_new(o, field, v) < 0) {
        (void)fputs("secretctl: out of memory\n", stderr);
        return CTL_EXIT_REFUSED;
    }
    return CTL_EXIT_OK;
}
