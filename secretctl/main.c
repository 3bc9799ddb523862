/*
 * main.c - secretctl's command line: the option and command tables, the
 * parser (options anywhere, "--opt V" or "--opt=V", "--" ends options),
 * help and usage, the API URL and key from flags or the environment, and
 * dispatch to the handlers in secrets.c, keys.c and groups.c.
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SP_VERSION
#define SP_VERSION "0"
#endif

#define DEFAULT_API "http://127.0.0.1:8081"

struct opt_def {
    const char *name;
    int has_arg;
};

static const struct opt_def opt_defs[OPT__COUNT] = {
    [OPT_API] = {"api", 1},
    [OPT_KEY] = {"key", 1},
    [OPT_JSON] = {"json", 0},
    [OPT_TIMEOUT] = {"timeout", 1},
    [OPT_VERBOSE] = {"verbose", 0},
    [OPT_HELP] = {"help", 0},
    [OPT_VERSION] = {"version", 0},
    [OPT_VALUE] = {"value", 1},
    [OPT_VALUE_FILE] = {"value-file", 1},
    [OPT_STRIP_NEWLINE] = {"strip-newline", 0},
    [OPT_SCOPE] = {"scope", 1},
    [OPT_WORKSPACE] = {"workspace", 1},
    [OPT_TYPE] = {"type", 1},
    [OPT_APPS] = {"apps", 1},
    [OPT_ENVS] = {"envs", 1},
    [OPT_HOSTS] = {"hosts", 1},
    [OPT_TTL] = {"ttl", 1},
    [OPT_EXPIRES_AT] = {"expires-at", 1},
    [OPT_DESCRIPTION] = {"description", 1},
    [OPT_REF_TTL] = {"ref-ttl", 1},
    [OPT_REVOKED] = {"revoked", 1},
    [OPT_LIMIT] = {"limit", 1},
    [OPT_CURSOR] = {"cursor", 1},
    [OPT_ALL] = {"all", 0},
    [OPT_NAME] = {"name", 1},
    [OPT_PERMISSIONS] = {"permissions", 1},
    [OPT_GROUP] = {"group", 1},
    [OPT_APP] = {"app", 1},
    [OPT_ENV] = {"env", 1},
    [OPT_USER] = {"user", 1},
    [OPT_FUNCTION] = {"function", 1},
};

#define BIT(o) ((uint64_t)1 << (o))
#define GLOBAL_OPTS                                                                                \
    (BIT(OPT_API) | BIT(OPT_KEY) | BIT(OPT_JSON) | BIT(OPT_TIMEOUT) | BIT(OPT_VERBOSE) |           \
     BIT(OPT_HELP) | BIT(OPT_VERSION))
#define WHERE (BIT(OPT_SCOPE) | BIT(OPT_WORKSPACE))
#define VALUE_OPTS (BIT(OPT_VALUE) | BIT(OPT_VALUE_FILE) | BIT(OPT_STRIP_NEWLINE))
#define META_OPTS                                                                                  \
    (BIT(OPT_TYPE) | BIT(OPT_APPS) | BIT(OPT_ENVS) | BIT(OPT_HOSTS) | BIT(OPT_TTL) |               \
     BIT(OPT_EXPIRES_AT) | BIT(OPT_DESCRIPTION) | BIT(OPT_REF_TTL))

struct ctl_cmd {
    const char *group;
    const char *name;
    int (*run)(struct ctl *c);
    int min_pos, max_pos; /* positional arguments after "group name" */
    uint64_t opts;        /* options besides the global ones */
    const char *synopsis;
    const char *help;
};

#define SECRET_FLAGS_HELP                                                                          \
    "  --value V            the value (visible in shell history and ps: prefer the next two)\n"    \
    "  --value-file F       read the value from file F\n"                                          \
    "  -                    read the value from standard input\n"                                  \
    "  --strip-newline      drop one trailing newline (LF or CRLF) from the value; without it\n"   \
    "                       a value read from a file or stdin is kept byte for byte\n"             \
    "  --type T             api, access, credential, api_key, bearer, oauth or aws\n"              \
    "  --apps a,b           apps that may use the secret (empty = all)\n"                          \
    "  --envs e,f           environments that may use it (empty = all)\n"                          \
    "  --hosts h,i          destination hosts or PCRE2 patterns (empty = any)\n"                   \
    "  --ttl N              expire N seconds from now\n"                                           \
    "  --expires-at T       expire at T (RFC 3339)\n"                                              \
    "  --description D      free text\n"                                                           \
    "  --ref-ttl N          lifetime in seconds of the returned $secret: reference\n"              \
    "  --scope S            workspace (default), user:<id>, function:<name>, group:<id>,\n"        \
    "                       key:<id>\n"                                                            \
    "  --workspace W        act in workspace W (root keys only)\n"                                 \
    "Values that are not valid UTF-8 (or hold NUL bytes) are sent as value_base64.\n"

static const struct ctl_cmd cmds[] = {
    {"secrets", "set", ctl_secrets_set, 1, 2, WHERE | VALUE_OPTS | META_OPTS,
     "NAME [--value V | --value-file F | -] [--scope S] [--type T] [--apps a,b] [--envs e] "
     "[--hosts h] [--ttl N | --expires-at T] [--description D] [--ref-ttl N] [--strip-newline]",
     "Create or replace secret NAME (PUT /v1/secrets/NAME) and print its metadata and a\n"
     "$secret: reference. With no value option the value is read from standard input when\n"
     "it is not a terminal, else asked for without echo.\n" SECRET_FLAGS_HELP},
    {"secrets", "create", ctl_secrets_create, 1, 2, WHERE | VALUE_OPTS | META_OPTS,
     "NAME [same options as set]",
     "Create secret NAME (POST /v1/secrets); refused (exit 1, secret_exists) if it exists.\n"
     "The value is read as for `secrets set`.\n" SECRET_FLAGS_HELP},
    {"secrets", "get", ctl_secrets_get, 1, 1, WHERE | BIT(OPT_REF_TTL),
     "NAME [--scope S] [--workspace W] [--ref-ttl N]",
     "Print secret NAME's metadata and a fresh $secret: reference (never the value).\n"},
    {"secrets", "list", ctl_secrets_list, 0, 0,
     WHERE | BIT(OPT_LIMIT) | BIT(OPT_CURSOR) | BIT(OPT_ALL),
     "[--scope S] [--workspace W] [--limit N] [--cursor C] [--all]",
     "List secrets' metadata, one page (--limit, default 100) or every page (--all).\n"
     "Without --scope, every scope the key may use.\n"},
    {"secrets", "value", ctl_secrets_value, 1, 1, WHERE, "NAME [--scope S] [--workspace W]",
     "Print secret NAME's value exactly as stored: raw bytes, with no newline added unless\n"
     "standard output is a terminal. With --json: the API's {\"value\"} or {\"value_base64\"}.\n"
     "Needs the secrets:read_value permission.\n"},
    {"secrets", "update", ctl_secrets_update, 1, 2,
     WHERE | VALUE_OPTS | META_OPTS | BIT(OPT_REVOKED),
     "NAME [--value V | --value-file F | -] [--revoked true|false] [set's other options]",
     "Change the value and/or metadata of secret NAME (PATCH); only what is given changes.\n"
     "An empty list (--apps '') clears it. The value is read from standard input only with -.\n"
     "  --revoked BOOL       true or false\n" SECRET_FLAGS_HELP},
    {"secrets", "revoke", ctl_secrets_revoke, 1, 1, WHERE, "NAME [--scope S] [--workspace W]",
     "Revoke secret NAME: references to it stop working.\n"},
    {"secrets", "delete", ctl_secrets_delete, 1, 1, WHERE, "NAME [--scope S] [--workspace W]",
     "Delete secret NAME.\n"},
    {"secrets", "complete", ctl_secrets_complete, 1, 1, BIT(OPT_WORKSPACE), "NAME [--workspace W]",
     "Show NAME in every scope the key may use, most specific first. Values (when the key\n"
     "has secrets:read_value) are shown with --json only.\n"},
    {"keys", "create", ctl_keys_create, 0, 0,
     BIT(OPT_NAME) | BIT(OPT_PERMISSIONS) | BIT(OPT_GROUP) | BIT(OPT_APP) | BIT(OPT_ENV) |
         BIT(OPT_USER) | BIT(OPT_FUNCTION) | BIT(OPT_WORKSPACE),
     "--name N --permissions p1,p2 [--group G] [--app A] [--env E] [--user U] [--function F] "
     "[--workspace W]",
     "Create an API key and print its token once: it cannot be shown again.\n"
     "Permissions: proxy, secrets:read, secrets:write, secrets:read_value, keys:admin,\n"
     "assert_context, root (a key cannot grant what it lacks).\n"
     "--group G binds the key to group G, which must exist (`secretctl groups create G`).\n"},
    {"keys", "list", ctl_keys_list, 0, 0, BIT(OPT_WORKSPACE), "[--workspace W]",
     "List API keys (never their tokens).\n"},
    {"keys", "delete", ctl_keys_delete, 1, 1, BIT(OPT_WORKSPACE), "ID [--workspace W]",
     "Delete API key ID.\n"},
    {"keys", "rotate", ctl_keyring_rotate, 0, 0, 0, "",
     "Rotate the encryption key ring (re-encrypts every secret); the same as\n"
     "`secretctl keyring rotate` (root keys only). API keys: create a new one\n"
     "(`keys create`), delete the old (`keys delete`).\n"},
    {"groups", "create", ctl_groups_create, 1, 1,
     BIT(OPT_NAME) | BIT(OPT_DESCRIPTION) | BIT(OPT_WORKSPACE),
     "ID [--name N] [--description D] [--workspace W]",
     "Create group ID (POST /v1/groups) for API keys to be bound to (keys create --group).\n"
     "Refused (exit 1, conflict) if it exists. Needs the keys:admin permission.\n"
     "  ID                   [A-Za-z0-9_-], 1 to 128 characters\n"
     "  --name N             1 to 128 printable characters (default: the ID)\n"
     "  --description D      free text, at most 1024 bytes\n"
     "  --workspace W        act in workspace W (root keys only)\n"},
    {"groups", "list", ctl_groups_list, 0, 0, BIT(OPT_WORKSPACE), "[--workspace W]",
     "List the workspace's groups. Needs the keys:admin permission.\n"},
    {"groups", "delete", ctl_groups_delete, 1, 1, BIT(OPT_WORKSPACE), "ID [--workspace W]",
     "Delete group ID. Refused (exit 1, conflict) while an API key is bound to it:\n"
     "delete those keys first. Needs the keys:admin permission.\n"},
    {"keyring", "rotate", ctl_keyring_rotate, 0, 0, 0, "",
     "Start an online rotation of the encryption key ring: a new key version, and every\n"
     "secret re-encrypted in the background (root keys only). API keys: create a new one\n"
     "(`keys create`), delete the old (`keys delete`).\n"},
    {"keyring", "status", ctl_keyring_status, 0, 0, 0, "",
     "Show the key ring's versions and any rotation in progress (root keys only).\n"},
};

static const char global_help[] =
    "Global options (anywhere on the line):\n"
    "  --api URL       the secrets API (default $SECRETPROXY_API_URL, else " DEFAULT_API ")\n"
    "  --key KEY       the API key (default $SECRETPROXY_API_KEY; prefer the variable:\n"
    "                  a flag shows in shell history)\n"
    "  --json          machine output: JSON on stdout (also the error object on failure)\n"
    "  --timeout N     give up after N seconds (default 30; connecting: at most 5)\n"
    "  --verbose       print each request's method, URL, status and request id on stderr\n"
    "  --help, --version\n"
    "Exit status: 0 success, 1 refused by the server or unreachable, 2 bad usage.\n";

static void print_cmd_usage(FILE *f, const struct ctl_cmd *cmd)
{
    fprintf(f, "usage: secretctl %s %s%s%s\n", cmd->group, cmd->name, cmd->synopsis[0] ? " " : "",
            cmd->synopsis);
}

static void print_main_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: secretctl [--api URL] [--key KEY] [--json] %s COMMAND [ARGS]\n",
            group ? group : "{secrets|keys|groups|keyring}");
    fprintf(f, "commands:\n");
    for (size_t i = 0; i < SP_ARRAY_LEN(cmds); i++)
        if (!group || strcmp(group, cmds[i].group) == 0)
            fprintf(f, "  %-7s %-*s%s\n", cmds[i].group, cmds[i].synopsis[0] ? 9 : 0, cmds[i].name,
                    cmds[i].synopsis);
}

int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;

    fputs("secretctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c && c->cmd) {
        print_cmd_usage(stderr, c->cmd);
        fprintf(stderr, "Run 'secretctl %s %s --help' for details.\n", c->cmd->group, c->cmd->name);
    } else {
        print_main_usage(stderr, NULL);
    }
    return CTL_EXIT_USAGE;
}

/* ---- parsing ---- */

struct parsed {
    const char *pos[8];
    int npos;
    const char *opt[OPT__COUNT];
    const char *bad_opt; /* first unknown option */
    int dup_opt;         /* an option given twice (index), or -1 */
    int missing_arg;     /* an option without its value (index), or -1 */
    int too_many;
    int oom;
};

static int find_opt(const char *name, size_t n)
{
    for (int i = 0; i < OPT__COUNT; i++)
        if (strlen(opt_defs[i].name) == n && strncmp(opt_defs[i].name, name, n) == 0)
            return i;
    return -1;
}

/* Copy a sensitive argument to the heap and blank it in argv, so that it
 * shows neither in `ps` nor in /proc/PID/cmdline from now on. */
static char *take_secret_arg(char *arg)
{
    char *copy;

    if (!arg)
        return NULL;
    copy = strdup(arg);

    sp_wipe(arg, strlen(arg));
    return copy;
}

/* One "--name[=value]" at argv[*i]. */
static void parse_long(struct parsed *p, struct ctl *c, int argc, char **argv, int *i)
{
    char *a = argv[*i] + 2, *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    int o = find_opt(a, n);
    char *val = NULL;

    if (o < 0) {
        if (!p->bad_opt)
            p->bad_opt = argv[*i];
        return;
    }
    if (opt_defs[o].has_arg) {
        if (eq)
            val = eq + 1;
        else if (*i + 1 < argc)
            val = argv[++*i];
        else {
            p->missing_arg = o;
            return;
        }
    } else if (eq) {
        if (!p->bad_opt)
            p->bad_opt = argv[*i];
        return;
    }
    if (p->opt[o])
        p->dup_opt = o;
    if (o == OPT_KEY || o == OPT_VALUE) {
        char **dst = o == OPT_KEY ? &c->key : &c->value;
        sp_free_wiped_str(*dst);
        *dst = take_secret_arg(val);
        if (!*dst)
            p->oom = 1;
        p->opt[o] = *dst ? *dst : "";
        return;
    }
    p->opt[o] = val ? val : "";
}

static void parse_argv(struct parsed *p, struct ctl *c, int argc, char **argv)
{
    int only_pos = 0;

    memset(p, 0, sizeof(*p));
    p->dup_opt = p->missing_arg = -1;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
        } else if (!only_pos && strncmp(a, "--", 2) == 0) {
            parse_long(p, c, argc, argv, &i);
        } else if (!only_pos && strcmp(a, "-h") == 0) {
            p->opt[OPT_HELP] = "";
        } else if (!only_pos && a[0] == '-' && a[1] != '\0') {
            if (!p->bad_opt)
                p->bad_opt = a;
        } else if (p->npos < (int)SP_ARRAY_LEN(p->pos)) {
            p->pos[p->npos++] = a;
        } else {
            p->too_many = 1;
        }
    }
}

static const struct ctl_cmd *find_cmd(const char *group, const char *name, int *group_known)
{
    *group_known = 0;
    for (size_t i = 0; i < SP_ARRAY_LEN(cmds); i++) {
        if (strcmp(cmds[i].group, group) != 0)
            continue;
        *group_known = 1;
        if (name && strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    }
    return NULL;
}

static int show_help(const struct ctl_cmd *cmd, const char *group)
{
    if (cmd) {
        print_cmd_usage(stdout, cmd);
        fputs(cmd->help, stdout);
    } else {
        fputs("secretctl - manage secretproxy secrets, API keys, groups and the key ring over "
              "its secrets API.\n",
              stdout);
        print_main_usage(stdout, group);
        fputs("Run 'secretctl GROUP COMMAND --help' for a command's options.\n", stdout);
    }
    fputs(global_help, stdout);
    return CTL_EXIT_OK;
}

/* Resolve the command and check every option against it. Returns -1 to go
 * on, or an exit status (help, version and usage errors end here). */
static int resolve(struct ctl *c, struct parsed *p)
{
    const char *group, *name;
    int skip = 0, known;

    if (p->npos > 0 && strcmp(p->pos[0], "help") == 0) {
        skip = 1;
        p->opt[OPT_HELP] = "";
    }
    if (p->oom) {
        fputs("secretctl: out of memory\n", stderr);
        return CTL_EXIT_REFUSED;
    }
    if (p->opt[OPT_VERSION] && !p->opt[OPT_HELP]) {
        fputs("secretctl " SP_VERSION "\n", stdout);
        return CTL_EXIT_OK;
    }
    group = p->npos > skip ? p->pos[skip] : NULL;
    name = p->npos > skip + 1 ? p->pos[skip + 1] : NULL;
    if (!group)
        return p->opt[OPT_HELP] ? show_help(NULL, NULL)
                                : ctl_usage_error(c, "a command is required");
    c->cmd = find_cmd(group, name, &known);
    if (!known)
        return ctl_usage_error(c, "unknown command '%s'", group);
    if (!c->cmd && (name || !p->opt[OPT_HELP])) {
        if (name)
            fprintf(stderr, "secretctl: unknown command '%s %s'\n", group, name);
        else
            fprintf(stderr, "secretctl: '%s' needs a command\n", group);
        print_main_usage(stderr, group);
        return CTL_EXIT_USAGE;
    }
    if (p->opt[OPT_HELP])
        return show_help(c->cmd, group);
    if (p->bad_opt)
        return ctl_usage_error(c, "unknown option '%s'", p->bad_opt);
    if (p->missing_arg >= 0)
        return ctl_usage_error(c, "--%s needs a value", opt_defs[p->missing_arg].name);
    if (p->dup_opt >= 0)
        return ctl_usage_error(c, "--%s given more than once", opt_defs[p->dup_opt].name);
    for (int o = 0; o < OPT__COUNT; o++)
        if (p->opt[o] && !((GLOBAL_OPTS | c->cmd->opts) & BIT(o)))
            return ctl_usage_error(c, "'%s %s' takes no --%s", group, name, opt_defs[o].name);
    if (p->too_many || p->npos - skip - 2 > c->cmd->max_pos)
        return ctl_usage_error(c, "too many arguments");
    if (p->npos - skip - 2 < c->cmd->min_pos)
        return ctl_usage_error(c, "missing argument");
    c->npos = p->npos - skip - 2;
    for (int i = 0; i < c->npos; i++)
        c->pos[i] = p->pos[skip + 2 + i];
    memcpy(c->opt, p->opt, sizeof(c->opt));
    return -1;
}

/* --api/--key/--timeout and their environment variables. */
static int setup(struct ctl *c)
{
    const char *env;
    long long t;

    c->json = c->opt[OPT_JSON] != NULL;
    c->verbose = c->opt[OPT_VERBOSE] != NULL;
    c->api = c->opt[OPT_API];
    if (!c->api && (env = getenv("SECRETPROXY_API_URL")) && *env)
        c->api = env;
    if (!c->api)
        c->api = DEFAULT_API;
    if (!*c->api)
        return ctl_usage_error(c, "--api needs a URL");
    if (!c->key && (env = getenv("SECRETPROXY_API_KEY")) && *env)
        c->key = strdup(env);
    if (!c->key || !*c->key)
        return ctl_usage_error(c, "no API key: set SECRETPROXY_API_KEY or use --key");
    c->timeout_s = 30;
    if (c->opt[OPT_TIMEOUT]) {
        if (ctl_parse_int(c, "--timeout", c->opt[OPT_TIMEOUT], &t) != 0)
            return CTL_EXIT_USAGE;
        if (t < 1 || t > 86400)
            return ctl_usage_error(c, "--timeout must be 1 to 86400 seconds");
        c->timeout_s = (long)t;
    }
    return -1;
}

/* jansson's memory is wiped on free: parsed responses and built request
 * bodies may hold values. The size is kept in a header before the block. */
#define HDR 16

static void *wiping_malloc(size_t n)
{
    unsigned char *p;

    if (n > SIZE_MAX - HDR)
        return NULL;
    p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof(n));
    return p + HDR;
}

static void wiping_free(void *ptr)
{
    unsigned char *p = ptr;
    size_t n;

    if (!p)
        return;
    p -= HDR;
    memcpy(&n, p, sizeof(n));
    sp_free_wiped(p, n + HDR);
}

int main(int argc, char **argv)
{
    struct ctl c;
    struct parsed p;
    int rc;

    memset(&c, 0, sizeof(c));
    json_set_alloc_funcs(wiping_malloc, wiping_free);
    parse_argv(&p, &c, argc, argv);
    rc = resolve(&c, &p);
    if (rc < 0)
        rc = setup(&c);
    if (rc >= 0 || !c.cmd)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c.curl = curl_easy_init())) {
        fputs("secretctl: cannot initialise libcurl\n", stderr);
        rc = CTL_EXIT_REFUSED;
        goto out;
    }
    rc = c.cmd->run(&c);
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
out:
    sp_free_wiped_str(c.key);
    sp_free_wiped_str(c.value);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_REFUSED;
    return rc;
}
