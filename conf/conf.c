/*
 * conf.c - the INI reader, environment overrides and value parsing, all
 * driven by SP_CONF_TABLE. The INI dialect: `[section]`, `key = value`,
 * `#` or `;` comments on their own lines, surrounding whitespace trimmed,
 * optional double quotes around a value. Every problem is collected with its
 * file and line so --check-config can report them all at once.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct sp_conf_desc descs[] = {
#define SP_CONF_X_DESC(sec, key, type, field, def, min, max, ch, rel, help)                        \
    {#sec, #key, type, def, min, max, ch, rel, help, offsetof(struct sp_conf, field)},
    SP_CONF_TABLE(SP_CONF_X_DESC)
#undef SP_CONF_X_DESC
};

#define NDESCS SP_ARRAY_LEN(descs)
#define MAX_LINE 8192

const struct sp_conf_desc *sp_conf_descs(size_t *count)
{
    *count = NDESCS;
    return descs;
}

static union sp_conf_val *slot(struct sp_conf *c, const struct sp_conf_desc *d)
{
    return (union sp_conf_val *)((char *)c + d->offset);
}

static int is_string_type(enum sp_conf_type t)
{
    return t != SP_CONF_INT && t != SP_CONF_BOOL && t != SP_CONF_DUR && t != SP_CONF_SIZE;
}

static void diag_add(struct sp_conf_diag *d, const char *where, int line, const char *fmt, ...)
    SP_PRINTF(4, 5);

static void diag_add(struct sp_conf_diag *d, const char *where, int line, const char *fmt, ...)
{
    char msg[512], full[768];
    char **n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: %s", where, line, msg);
    else
        snprintf(full, sizeof(full), "%s: %s", where, msg);
    if (!d)
        return;
    n = realloc(d->lines, (d->count + 1) * sizeof(*n));
    if (!n)
        return;
    d->lines = n;
    d->lines[d->count] = strdup(full);
    if (d->lines[d->count])
        d->count++;
}

void sp_conf_diag_free(struct sp_conf_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->count; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->count = 0;
}

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* A non-negative decimal (with optional fraction) times a unit suffix. */
static int parse_scaled(const char *s, const char *const *units, const int64_t *mult,
                        int64_t bare_mult, int64_t *out)
{
    char *end;
    double v;

    if (!*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    if (!*end) {
        v *= (double)bare_mult;
    } else {
        size_t i;
        for (i = 0; units[i]; i++)
            if (strcasecmp(end, units[i]) == 0)
                break;
        if (!units[i])
            return -1;
        v *= (double)mult[i];
    }
    if (v > 9.0e18)
        return -1;
    *out = (int64_t)(v + 0.5);
    return 0;
}

static int parse_duration(const char *s, int64_t *ms)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d", NULL};
    static const int64_t mult[] = {1, 1000, 60000, 3600000, 86400000};

    return parse_scaled(s, units, mult, 1000, ms);
}

static int parse_size(const char *s, int64_t *bytes)
{
    static const char *const units[] = {"b", "k", "kb", "m", "mb", "g", "gb", NULL};
    static const int64_t mult[] = {1, 1024, 1024, 1 << 20, 1 << 20, 1 << 30, 1 << 30};

    return parse_scaled(s, units, mult, 1, bytes);
}

static int parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < SP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int enum_ok(const char *choices, const char *s)
{
    size_t n = strlen(s);
    const char *p = choices;

    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

int sp_conf_parse_addr(const char *s, char *host, size_t hostsz, int *port, int *is_unix)
{
    const char *colon;
    int64_t p;
    size_t hlen;

    *is_unix = 0;
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || strlen(s + 5) >= hostsz || strlen(s + 5) > 107)
            return -1;
        memcpy(host, s + 5, strlen(s + 5) + 1);
        *port = 0;
        *is_unix = 1;
        return 0;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= hostsz)
            return -1;
        memcpy(host, s + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return -1;
        hlen = (size_t)(colon - s);
        if (hlen >= hostsz || memchr(s, ':', hlen))
            return -1;
        memcpy(host, s, hlen);
    }
    host[hlen] = '\0';
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_' || c == '*'))
            return -1;
    }
    if (parse_int(colon + 1, &p) < 0 || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* Parse text into the descriptor's slot; on failure describe why in why. */
static int set_value(struct sp_conf *c, const struct sp_conf_desc *d, const char *text, char *why,
                     size_t whysz)
{
    union sp_conf_val *v = slot(c, d);
    int64_t n = 0;
    char host[256];
    int port, is_unix;

    switch (d->type) {
    case SP_CONF_INT:
        if (parse_int(text, &n) < 0) {
            snprintf(why, whysz, "not an integer");
            return -1;
        }
        break;
    case SP_CONF_BOOL:
        if (parse_bool(text, &n) < 0) {
            snprintf(why, whysz, "not a boolean (true/false)");
            return -1;
        }
        break;
    case SP_CONF_DUR:
        if (parse_duration(text, &n) < 0) {
            snprintf(why, whysz, "not a duration (e.g. 1.5, 500ms, 30s, 5m, 2h, 90d)");
            return -1;
        }
        break;
    case SP_CONF_SIZE:
        if (parse_size(text, &n) < 0) {
            snprintf(why, whysz, "not a size (e.g. 1024, 64k, 10m, 1g)");
            return -1;
        }
        break;
    case SP_CONF_ADDR:
        if (sp_conf_parse_addr(text, host, sizeof(host), &port, &is_unix) < 0) {
            snprintf(why, whysz, "not an address (host:port, [v6]:port or unix:/path)");
            return -1;
        }
        break;
    case SP_CONF_ENUM:
        if (!enum_ok(d->choices, text)) {
            snprintf(why, whysz, "must be one of %s", d->choices);
            return -1;
        }
        break;
    default:
        break;
    }
    if (!is_string_type(d->type)) {
        if (d->type != SP_CONF_BOOL && (n < d->min || n > d->max)) {
            snprintf(why, whysz, "out of range [%lld, %lld]%s", (long long)d->min,
                     (long long)d->max, d->type == SP_CONF_DUR ? " ms" : "");
            return -1;
        }
        v->i = n;
        return 0;
    }
    char *copy = strdup(text);
    if (!copy) {
        snprintf(why, whysz, "out of memory");
        return -1;
    }
    if (d->type == SP_CONF_SECRET)
        sp_free_wiped_str(v->s);
    else
        free(v->s);
    v->s = copy;
    return 0;
}

static const struct sp_conf_desc *find_desc(const char *section, const char *key)
{
    for (size_t i = 0; i < NDESCS; i++)
        if (strcmp(descs[i].section, section) == 0 && strcmp(descs[i].key, key) == 0)
            return &descs[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < NDESCS; i++)
        if (strcmp(descs[i].section, section) == 0)
            return 1;
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Parse one INI line; section is updated on headers. */
static void parse_line(struct sp_conf *c, char *line, int lineno, const char *path, char *section,
                       size_t secsz, unsigned char *seen, struct sp_conf_diag *diag)
{
    char *p = trim(line), *eq, *key, *val, why[160];
    const struct sp_conf_desc *d;

    if (!*p || *p == '#' || *p == ';')
        return;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (!close || close[1] != '\0') {
            diag_add(diag, path, lineno, "malformed section header");
            return;
        }
        *close = '\0';
        p = trim(p + 1);
        if (!section_known(p))
            diag_add(diag, path, lineno, "unknown section [%s]", p);
        snprintf(section, secsz, "%s", p);
        return;
    }
    eq = strchr(p, '=');
    if (!eq) {
        diag_add(diag, path, lineno, "expected key = value");
        return;
    }
    *eq = '\0';
    key = trim(p);
    val = trim(eq + 1);
    if (!*section) {
        diag_add(diag, path, lineno, "key '%s' outside any section", key);
        return;
    }
    if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
        val[strlen(val) - 1] = '\0';
        val++;
    }
    d = find_desc(section, key);
    if (!d) {
        if (section_known(section))
            diag_add(diag, path, lineno, "unknown key '%s' in [%s]", key, section);
        return;
    }
    if (seen[d - descs]) {
        diag_add(diag, path, lineno, "duplicate key '%s.%s'", section, key);
        return;
    }
    seen[d - descs] = 1;
    if (set_value(c, d, val, why, sizeof(why)) < 0)
        diag_add(diag, path, lineno, "%s.%s: %s", section, key, why);
}

static void load_file(struct sp_conf *c, const char *path, struct sp_conf_diag *diag)
{
    unsigned char seen[NDESCS];
    char line[MAX_LINE], section[64] = "";
    int lineno = 0;
    FILE *f;

    f = fopen(path, "re");
    if (!f) {
        diag_add(diag, path, 0, "cannot read: %s", strerror(errno));
        return;
    }
    memset(seen, 0, sizeof(seen));
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            diag_add(diag, path, lineno, "line longer than %d bytes", MAX_LINE - 2);
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        parse_line(c, line, lineno, path, section, sizeof(section), seen, diag);
    }
    if (ferror(f))
        diag_add(diag, path, 0, "read error");
    fclose(f);
    sp_wipe(line, sizeof(line));
}

/* SECRETPROXY_<SECTION>_<KEY>, upper case. Unknown SECRETPROXY_ variables
 * that look like config keys are reported so typos do not pass silently. */
static void load_env(struct sp_conf *c, char **env, struct sp_conf_diag *diag)
{
    static const char prefix[] = "SECRETPROXY_";

    for (; env && *env; env++) {
        const char *e = *env, *eq = strchr(e, '=');
        char name[128], why[160];
        int found = 0;

        if (!eq || strncmp(e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        for (size_t i = 0; i < NDESCS; i++) {
            const struct sp_conf_desc *d = &descs[i];
            size_t k = 0;
            for (const char *s = d->section; *s && k < sizeof(name) - 1; s++)
                name[k++] = (char)toupper((unsigned char)*s);
            name[k++] = '_';
            for (const char *s = d->key; *s && k < sizeof(name) - 1; s++)
                name[k++] = (char)toupper((unsigned char)*s);
            name[k] = '\0';
            if (strlen(e + sizeof(prefix) - 1) >= k + 1 &&
                strncmp(e + sizeof(prefix) - 1, name, k) == 0 && e[sizeof(prefix) - 1 + k] == '=') {
                found = 1;
                if (set_value(c, d, eq + 1, why, sizeof(why)) < 0)
                    diag_add(diag, "environment", 0, "%s%s: %s", prefix, name, why);
                else if (i < sizeof(c->from_env))
                    c->from_env[i] = 1;
                break;
            }
        }
        /* Other programs' variables (SECRETPROXY_API_URL for secretctl) share
         * the prefix, so only flag names whose section we know. */
        if (!found) {
            const char *rest = e + sizeof(prefix) - 1;
            for (size_t i = 0; i < NDESCS; i++) {
                size_t sl = strlen(descs[i].section);
                if (strncasecmp(rest, descs[i].section, sl) == 0 && rest[sl] == '_' &&
                    strncmp(rest, "API_URL=", 8) != 0 && strncmp(rest, "API_KEY=", 8) != 0) {
                    diag_add(diag, "environment", 0, "unknown setting %.*s", (int)(eq - e), e);
                    break;
                }
            }
        }
    }
}

const char *sp_conf_where(const struct sp_conf *c, const char *section, const char *key, char *buf,
                          size_t n)
{
    for (size_t i = 0; i < NDESCS && i < sizeof(c->from_env); i++) {
        if (strcmp(descs[i].section, section) != 0 || strcmp(descs[i].key, key) != 0)
            continue;
        if (c->from_env[i]) {
            size_t k = (size_t)snprintf(buf, n, "environment (SECRETPROXY_");
            for (const char *s = section; *s && k + 1 < n; s++)
                buf[k++] = (char)toupper((unsigned char)*s);
            if (k + 1 < n)
                buf[k++] = '_';
            for (const char *s = key; *s && k + 1 < n; s++)
                buf[k++] = (char)toupper((unsigned char)*s);
            snprintf(buf + k, n - k, ")");
            return buf;
        }
        break;
    }
    snprintf(buf, n, "%s", c->path ? c->path : "built-in default");
    return buf;
}

void sp_conf_free(struct sp_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NDESCS; i++) {
        if (!is_string_type(descs[i].type))
            continue;
        if (descs[i].type == SP_CONF_SECRET)
            sp_free_wiped_str(slot(c, &descs[i])->s);
        else
            free(slot(c, &descs[i])->s);
    }
    free(c->path);
    free(c);
}

struct sp_conf *sp_conf_load(const char *path, char **environ_, struct sp_conf_diag *diag)
{
    struct sp_conf *c = calloc(1, sizeof(*c));
    size_t before = diag ? diag->count : 0;
    char why[160];

    if (!c) {
        diag_add(diag, "secretproxy", 0, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < NDESCS; i++) {
        if (set_value(c, &descs[i], descs[i].def, why, sizeof(why)) < 0) {
            diag_add(diag, "built-in default", 0, "%s.%s: %s", descs[i].section, descs[i].key, why);
        }
    }
    if (path) {
        c->path = strdup(path);
        load_file(c, path, diag);
    }
    load_env(c, environ_, diag);
    if (!diag || diag->count == before)
        return c;
    sp_conf_free(c);
    return NULL;
}

int sp_conf_print(const struct sp_conf *c, struct sp_buf *out, struct sp_err *err)
{
    const char *cur = "";

    for (size_t i = 0; i < NDESCS; i++) {
        const struct sp_conf_desc *d = &descs[i];
        const union sp_conf_val *v = (const union sp_conf_val *)((const char *)c + d->offset);
        int rc;

        if (strcmp(cur, d->section) != 0 &&
            sp_buf_printf(out, err, "%s[%s]\n", i ? "\n" : "", d->section) < 0)
            return -1;
        cur = d->section;
        if (d->type == SP_CONF_SECRET)
            rc = sp_buf_printf(out, err, "%s = %s\n", d->key, *v->s ? "(set)" : "");
        else if (is_string_type(d->type))
            rc = sp_buf_printf(out, err, "%s = %s\n", d->key, v->s);
        else if (d->type == SP_CONF_BOOL)
            rc = sp_buf_printf(out, err, "%s = %s\n", d->key, v->i ? "true" : "false");
        else if (d->type == SP_CONF_DUR)
            rc = sp_buf_printf(out, err, "%s = %lldms\n", d->key, (long long)v->i);
        else
            rc = sp_buf_printf(out, err, "%s = %lld\n", d->key, (long long)v->i);
        if (rc < 0)
            return -1;
    }
    return 0;
}

size_t sp_conf_split_list(const char *list, char ***items, char **storage)
{
    size_t n = 0, cap = 0;
    char *copy, *p, **arr = NULL;

    *items = NULL;
    *storage = NULL;
    if (!list || !*list)
        return 0;
    copy = strdup(list);
    if (!copy)
        return 0;
    p = copy;
    while (p) {
        char *comma = strchr(p, ',');
        char *item;
        if (comma)
            *comma = '\0';
        item = trim(p);
        if (*item) {
            if (n == cap) {
                char **na = realloc(arr, (cap ? cap * 2 : 4) * sizeof(*na));
                if (!na)
                    break;
                arr = na;
                cap = cap ? cap * 2 : 4;
            }
            arr[n++] = item;
        }
        p = comma ? comma + 1 : NULL;
    }
    *items = arr;
    *storage = copy;
    return n;
}

int sp_conf_sample(struct sp_buf *out, struct sp_err *err)
{
    const char *cur = "";

    if (sp_buf_addstr(
            out,
            "# secretproxy configuration. Every key is shown commented out with its\n"
            "# default; uncomment to change it. Each key section.key can also be set\n"
            "# with the environment variable SECRETPROXY_<SECTION>_<KEY>, which wins\n"
            "# over this file. Durations: 1.5, 500ms, 30s, 5m, 2h, 90d (bare = seconds).\n"
            "# Sizes: 1024, 64k, 10m, 1g. Lists: comma-separated host names or PCRE2\n"
            "# patterns, matched case-insensitively against the whole host name.\n"
            "# Keys marked (reload) take effect on SIGHUP; the rest need a restart.\n"
            "# Check a file with: secretproxy -c FILE --check-config\n"
            "# This file is generated by secretproxy --sample-config.\n",
            err) < 0)
        return -1;
    for (size_t i = 0; i < NDESCS; i++) {
        const struct sp_conf_desc *d = &descs[i];
        if (strcmp(cur, d->section) != 0 && sp_buf_printf(out, err, "\n[%s]\n", d->section) < 0)
            return -1;
        cur = d->section;
        if (sp_buf_printf(out, err, "\n# %s%s\n", d->help, d->reloadable ? " (reload)" : "") < 0)
            return -1;
        if (d->type == SP_CONF_ENUM && sp_buf_printf(out, err, "# one of: %s\n", d->choices) < 0)
            return -1;
        if (sp_buf_printf(out, err, "#%s = %s\n", d->key, d->def) < 0)
            return -1;
    }
    return 0;
}
