/*
 * ctl.h - what secretctl's files share: the parsed command line, the HTTP
 * client (http.c), value input (input.c), human and JSON output (output.c)
 * and the command handlers (secrets.c, keys.c, groups.c). Private to
 * secretctl/.
 *
 * secretctl talks to the secrets API over HTTP only; it links sp_common,
 * libcurl and jansson, never the store, resolver or proxy modules.
 *
 * Exit status: CTL_EXIT_OK, CTL_EXIT_REFUSED (the server refused, or could
 * not be reached, or a local I/O error), CTL_EXIT_USAGE (bad command line).
 * Every handler returns one of them and has already printed the reason.
 */
#ifndef SP_SECRETCTL_CTL_H
#define SP_SECRETCTL_CTL_H

#include <curl/curl.h>
#include <jansson.h>

#include "sp.h"

enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_REFUSED = 1,
    CTL_EXIT_USAGE = 2,
};

/* Every option secretctl knows. Which command takes which is in main.c. */
enum ctl_opt {
    OPT_API = 0,
    OPT_KEY,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
    OPT_VALUE,
    OPT_VALUE_FILE,
    OPT_STRIP_NEWLINE,
    OPT_SCOPE,
    OPT_WORKSPACE,
    OPT_TYPE,
    OPT_APPS,
    OPT_ENVS,
    OPT_HOSTS,
    OPT_TTL,
    OPT_EXPIRES_AT,
    OPT_DESCRIPTION,
    OPT_REF_TTL,
    OPT_REVOKED,
    OPT_LIMIT,
    OPT_CURSOR,
    OPT_ALL,
    OPT_NAME,
    OPT_PERMISSIONS,
    OPT_GROUP,
    OPT_APP,
    OPT_ENV,
    OPT_USER,
    OPT_FUNCTION,
    OPT__COUNT
};

#define CTL_MAX_POS 4
/* Response bodies larger than this are refused (memory guard). */
#define CTL_RESP_MAX ((size_t)16 << 20)
/* Values larger than this are not even read; the server's own limit is
 * 64 KiB and it says so itself, this only guards memory. */
#define CTL_VALUE_MAX ((size_t)1 << 20)

struct ctl_cmd;

/* One run of secretctl. Strings in opt[] and pos[] are borrowed from argv
 * (or the environment) for the life of the process, except key and value,
 * which main.c copies to the heap (wiped and freed by ctl_free) and blanks
 * in argv so `ps` does not show them. */
struct ctl {
    const struct ctl_cmd *cmd;
    const char *opt[OPT__COUNT]; /* NULL = not given; "" for flags without a value */
    const char *pos[CTL_MAX_POS];
    int npos;

    const char *api; /* base URL, no trailing slash handling needed by callers */
    char *key;       /* the API key; heap, wiped on free */
    char *value;     /* --value's bytes; heap, wiped on free */
    int json;
    int verbose;
    long timeout_s;
    CURL *curl;
};

/* ---- main.c ---- */

/* Print "secretctl: <msg>" and the current command's usage line on stderr;
 * returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl *c, const char *fmt, ...) SP_PRINTF(2, 3);

/* ---- http.c ---- */

/* A response: status, raw body (sensitive: it may hold a value; at most
 * CTL_RESP_MAX), the parsed JSON (NULL when the body is empty), and the
 * Secretproxy-Request-Id header. Release with ctl_resp_free. */
struct ctl_resp {
    long status;
    struct sp_buf body;
    json_t *json;
    char request_id[64];
    int too_big;
};

void ctl_resp_free(struct ctl_resp *r);

/* Append one path segment or one query parameter to b, percent-encoding
 * everything but [A-Za-z0-9_~-]. A NULL value adds nothing. */
SP_MUSTCHECK int ctl_path_add(struct sp_buf *b, const char *seg);
SP_MUSTCHECK int ctl_query_add(struct sp_buf *b, const char *name, const char *value);

/* method path (already encoded, starting with "/") on c->api, with body
 * (JSON, may be NULL; borrowed) as the request body. Returns CTL_EXIT_OK for
 * a 2xx answer with a JSON body in r; otherwise prints the reason
 * ("secretctl: <code>: <message>", or why the API could not be reached) on
 * stderr, with --json also the server's error object on stdout, and returns
 * CTL_EXIT_REFUSED. r must be zeroed by the caller and freed with
 * ctl_resp_free in every case. */
int ctl_call(struct ctl *c, const char *method, const char *path, const struct sp_buf *body,
             struct ctl_resp *r);

/* ---- input.c ---- */

/* The value for set/create/update from --value, --value-file F, "-" (stdin)
 * or, when required and none is given, standard input if it is not a
 * terminal, else a prompt that does not echo. out is initialised here as a
 * sensitive buffer (the caller sp_buf_free()s it); *given says whether a
 * value was given at all (update takes none). --strip-newline removes one
 * trailing LF or CRLF. */
int ctl_read_value(struct ctl *c, int required, struct sp_buf *out, int *given);
/* Strict UTF-8 without NUL bytes: may travel as a JSON string. */
int ctl_is_text(const char *p, size_t n);
/* A non-negative decimal integer option; prints a usage error otherwise. */
int ctl_parse_int(const struct ctl *c, const char *flag, const char *s, long long *out);
/* Split a comma-separated list ("a, b,,c" -> ["a","b","c"]; "" -> []). */
json_t *ctl_split_list(const char *s);
/* Set o[field] from a flag's text s (NULL = not given: nothing to do): a
 * JSON string, or with as_list the comma-separated list. A usage error if
 * s is not UTF-8 (JSON cannot carry it). Returns a CTL_EXIT_* code. */
int ctl_put_text(const struct ctl *c, json_t *o, const char *field, const char *flag, const char *s,
                 int as_list);

/* ---- output.c ---- */

/* Write all n bytes to fd (values and tokens go this way, never printf). */
int ctl_write_all(int fd, const void *p, size_t n);
/* Print j on stdout as indented JSON and a newline; CTL_EXIT_REFUSED if
 * stdout fails. The serialisation buffer is wiped. */
int ctl_print_json(const json_t *j);

/* A column of a table: its heading and the field of each row object. */
struct ctl_col {
    const char *head;
    const char *field;
};
/* Print rows (a JSON array of objects) as an aligned table on stdout. */
int ctl_print_table(const json_t *rows, const struct ctl_col *cols, size_t ncols);
/* Print obj as "key: value" lines, aligned: the fields in order[] first
 * (NULL-terminated; absent ones skipped), then any others; nested objects
 * become "parent.key". extra_key/extra_val (may be NULL) add one more
 * line at the end. */
int ctl_print_object(const json_t *obj, const char *const *order, const char *extra_key,
                     const char *extra_val);

/* ---- secrets.c, keys.c, groups.c: the commands; each returns an exit status ---- */

int ctl_secrets_set(struct ctl *c);
int ctl_secrets_create(struct ctl *c);
int ctl_secrets_get(struct ctl *c);
int ctl_secrets_list(struct ctl *c);
int ctl_secrets_value(struct ctl *c);
int ctl_secrets_update(struct ctl *c);
int ctl_secrets_revoke(struct ctl *c);
int ctl_secrets_delete(struct ctl *c);
int ctl_secrets_complete(struct ctl *c);
int ctl_keys_create(struct ctl *c);
int ctl_keys_list(struct ctl *c);
int ctl_keys_delete(struct ctl *c);
int ctl_groups_create(struct ctl *c);
int ctl_groups_list(struct ctl *c);
int ctl_groups_delete(struct ctl *c);
int ctl_keyring_rotate(struct ctl *c);
int ctl_keyring_status(struct ctl *c);

#endif
