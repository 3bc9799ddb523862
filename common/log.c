/* log.c - the JSON-lines logger. Every line passes through the caller's
 * redactor before it is written; one write(2) per line so lines from worker
 * threads never interleave. */
#include "sp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_fd = 2;
static int log_owned;
static enum sp_log_level log_level = SP_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int sp_log_level_parse(const char *s, enum sp_log_level *out)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum sp_log_level)i;
            return 0;
        }
    }
    return -1;
}

int sp_log_open(const char *path, enum sp_log_level level, struct sp_err *err)
{
    int fd = 2, owned = 0, old;

    if (strcmp(path, "-") != 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            return sp_err_set(err, SP_E_CONFIG, "cannot open log file '%s': %s", path,
                              strerror(errno));
        owned = 1;
    }
    pthread_mutex_lock(&log_lock);
    old = log_owned ? log_fd : -1;
    log_fd = fd;
    log_owned = owned;
    log_level = level;
    pthread_mutex_unlock(&log_lock);
    if (old >= 0)
        close(old);
    return 0;
}

void sp_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_owned)
        close(log_fd);
    log_fd = 2;
    log_owned = 0;
    pthread_mutex_unlock(&log_lock);
}

void sp_log_set_level(enum sp_log_level level)
{
    log_level = level;
}

int sp_log_enabled(enum sp_log_level level)
{
    return level >= log_level;
}

static void write_line(const char *p, size_t n)
{
    pthread_mutex_lock(&log_lock);
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&log_lock);
}

void sp_log_line(const struct sp_log_ctx *ctx, const char *json, size_t len)
{
    struct sp_buf out;

    sp_buf_init(&out, 0, 0);
    if (ctx && ctx->redact) {
        if (ctx->redact(ctx->redact_ctx, json, len, &out) < 0)
            goto fail;
    } else if (sp_buf_add(&out, json, len, NULL) < 0) {
        goto fail;
    }
    if (sp_buf_add(&out, "\n", 1, NULL) < 0)
        goto fail;
    write_line(out.data, out.len);
fail:
    sp_buf_free(&out);
}

void sp_log(enum sp_log_level level, const struct sp_log_ctx *ctx, const char *fmt, ...)
{
    char ts[40], msg[2048];
    struct sp_buf line;
    va_list ap;
    int n;

    if (!sp_log_enabled(level))
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    sp_time_format(ts, sizeof(ts), sp_now_ms());
    sp_buf_init(&line, 0, 0);
    if (sp_buf_printf(&line, NULL, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]) < 0)
        goto fail;
    if (ctx && ctx->request_id &&
        (sp_buf_addstr(&line, ",\"request_id\":\"", NULL) < 0 ||
         sp_json_escape(&line, ctx->request_id, strlen(ctx->request_id), NULL) < 0 ||
         sp_buf_addstr(&line, "\"", NULL) < 0))
        goto fail;
    if (sp_buf_addstr(&line, ",\"msg\":\"", NULL) < 0 ||
        sp_json_escape(&line, msg, (size_t)n, NULL) < 0 || sp_buf_addstr(&line, "\"}", NULL) < 0)
        goto fail;
    sp_log_line(ctx, line.data, line.len);
fail:
    sp_buf_free(&line);
    sp_wipe(msg, sizeof(msg));
}
