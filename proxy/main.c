/*
 * main.c - the secretproxy process: command line, configuration checks,
 * start-up (key ring, store, bootstrap key, scheduled rotation) and signals.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <malloc.h>
#include <pcre2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "metrics.h"
#include "proxy_int.h"
#include "conf.h"
#include "keyring.h"
#include "sp.h"
#include "store.h"

#define DEFAULT_CONF "conf/secretproxy.conf"
#define ROTATION_CHECK_MS (3600 * 1000)

extern char **environ;

struct app {
    const char *conf_path;
    struct sp_conf *conf;
    struct event_base *base;
    struct sp_keyring *kr;
    struct sp_store *store;
    struct sp_api *api;
    struct sp_worker *workers;
    struct sp_conf **retired; /* configurations workers may still read */
    size_t nretired;
    int nworkers;
    int stopping;
    struct event *stop_check;
    struct event *sigterm, *sigint, *sighup, *tick;
    int bootstrap_done;
    unsigned ticks;
    int rotating;
    int64_t last_rotation_check;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: secretproxy [-c FILE] [--check-config] [--print-config] [--sample-config]\n"
               "                   [--version]\n"
               "\n"
               "  -c, --config FILE   configuration file (default " DEFAULT_CONF ")\n"
               "      --check-config  validate the configuration and exit (0 = valid)\n"
               "      --print-config  print the effective configuration and exit\n"
               "      --sample-config print the commented sample configuration\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          this help\n"
               "\n"
               "Every key section.key can be set with SECRETPROXY_<SECTION>_<KEY>.\n");
}

/* Host patterns are exact names or PCRE2 patterns: all must compile. */
static int check_patterns(const char *key, const char *list, const char *where)
{
    char **items, *storage;
    size_t n = sp_conf_split_list(list, &items, &storage);
    int bad = 0;

    for (size_t i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)items[i], PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                       &code, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(code, msg, sizeof(msg));
            fprintf(stderr, "%s: %s: pattern '%s' does not compile: %s\n", where, key, items[i],
                    (const char *)msg);
            bad = 1;
        }
        pcre2_code_free(re);
    }
    free(items);
    free(storage);
    return bad;
}

static int check_readable(const char *key, const char *path, const char *where)
{
    if (!*path || access(path, R_OK) == 0)
        return 0;
    fprintf(stderr, "%s: %s: cannot read '%s': %s\n", where, key, path, strerror(errno));
    return 1;
}

/* Everything --check-config verifies beyond what the parser does. */
static int check_config(const struct sp_conf *c)
{
    char wb[160];
    struct sp_store_url url;
    struct sp_err err;
    int bad = 0;

    if (sp_store_url_parse(c->redis_url.s, &url, &err) < 0) {
        fprintf(stderr, "%s: %s\n", sp_conf_where(c, "redis", "url", wb, sizeof(wb)), err.msg);
        bad = 1;
    }
    sp_wipe(&url, sizeof(url));
    if (sp_keyring_check_file(c->keyring_file.s, &err) < 0) {
        fprintf(stderr, "%s: keyring.file: %s\n",
                sp_conf_where(c, "keyring", "file", wb, sizeof(wb)), err.msg);
        bad = 1;
    }
    if (c->keyring_master_key.s[0]) {
        unsigned char mk[64];
        size_t n = 0;
        const char *b = c->keyring_master_key.s;
        if (strlen(b) > 80 || sp_base64_decode(mk, &n, b, strlen(b)) < 0 || n != 32) {
            fprintf(stderr, "%s: keyring.master_key: must be base64 of exactly 32 bytes\n",
                    sp_conf_where(c, "keyring", "master_key", wb, sizeof(wb)));
            bad = 1;
        }
        sp_wipe(mk, sizeof(mk));
    }
    if (c->api_bootstrap_key.s[0] &&
        (strlen(c->api_bootstrap_key.s) < 16 || strlen(c->api_bootstrap_key.s) > 199)) {
        fprintf(stderr, "%s: api.bootstrap_key: must be 16-199 characters\n",
                sp_conf_where(c, "api", "bootstrap_key", wb, sizeof(wb)));
        bad = 1;
    }
    if (strcmp(c->proxy_listen.s, c->api_listen.s) == 0) {
        fprintf(stderr, "%s: proxy.listen and api.listen must differ\n",
                sp_conf_where(c, "proxy", "listen", wb, sizeof(wb)));
        bad = 1;
    }
    bad |= check_readable("upstream.ca_file", c->upstream_ca_file.s,
                          sp_conf_where(c, "upstream", "ca_file", wb, sizeof(wb)));
    bad |= check_patterns("upstream.upgrade_hosts", c->upstream_upgrade_hosts.s,
                          sp_conf_where(c, "upstream", "upgrade_hosts", wb, sizeof(wb)));
    bad |= check_patterns("connect.intercept_hosts", c->connect_intercept_hosts.s,
                          sp_conf_where(c, "connect", "intercept_hosts", wb, sizeof(wb)));
    bad |= check_patterns("connect.tunnel_hosts", c->connect_tunnel_hosts.s,
                          sp_conf_where(c, "connect", "tunnel_hosts", wb, sizeof(wb)));
    bad |= check_patterns("connect.refuse_hosts", c->connect_refuse_hosts.s,
                          sp_conf_where(c, "connect", "refuse_hosts", wb, sizeof(wb)));
    if (strcmp(c->log_file.s, "-") != 0) {
        FILE *f = fopen(c->log_file.s, "a");
        if (!f) {
            fprintf(stderr, "%s: log.file: cannot open '%s': %s\n",
                    sp_conf_where(c, "log", "file", wb, sizeof(wb)), c->log_file.s,
                    strerror(errno));
            bad = 1;
        } else {
            fclose(f);
        }
    }
    return bad;
}

static struct sp_conf *load_conf(const char *path)
{
    struct sp_conf_diag diag = {0};
    struct sp_conf *c = sp_conf_load(path, environ, &diag);

    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    sp_conf_diag_free(&diag);
    return c;
}

/* ---- start-up work that needs Redis ---- */

static void on_bootstrap(const struct sp_key *key, const char *token, const struct sp_err *err,
                         void *arg)
{
    struct app *a = arg;

    if (err) {
        sp_log(SP_LOG_WARN, NULL, "bootstrap key not stored yet: %s", err->msg);
        return;
    }
    a->bootstrap_done = 1;
    sp_log(SP_LOG_INFO, NULL, "bootstrap key ensured in workspace default");
}

static void ensure_bootstrap(struct app *a)
{
    struct sp_key k;
    struct sp_err err;

    if (a->bootstrap_done || !a->conf->api_bootstrap_key.s[0])
        return;
    memset(&k, 0, sizeof(k));
    snprintf(k.workspace, sizeof(k.workspace), "default");
    snprintf(k.name, sizeof(k.name), "bootstrap");
    k.perms = SP_PERM_ALL;
    if (sp_store_key_create(a->store, &k, a->conf->api_bootstrap_key.s, on_bootstrap, a, &err) < 0)
        sp_log(SP_LOG_WARN, NULL, "bootstrap key: %s", err.msg);
}

static void on_rotation(const struct sp_rotation_status *st, const struct sp_err *err, void *arg)
{
    struct app *a = arg;

    a->rotating = 0;
    if (err && err->code != SP_E_CONFLICT)
        sp_log(SP_LOG_ERROR, NULL, "key rotation: %s", err->msg);
}

static void maybe_rotate(struct app *a)
{
    struct sp_err err;
    int64_t now = sp_now_ms();

    if (a->rotating || now - a->last_rotation_check < ROTATION_CHECK_MS)
        return;
    if (sp_store_rotation_resume(a->store, a->conf->keyring_rotate_interval.i, on_rotation, a,
                                 &err) == 0) {
        a->rotating = 1;
        a->last_rotation_check = now;
    }
}

static void on_store_ready(void *arg)
{
    struct app *a = arg;

    ensure_bootstrap(a);
    maybe_rotate(a);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;

    /* Another process may have rotated: pick up its version within 5 s
     * (keyring.retire_grace waits longer than this). One small file read. */
    if (++a->ticks % 5 == 0) {
        struct sp_err err;
        if (sp_keyring_reload(a->kr, &err) < 0)
            sp_log(SP_LOG_WARN, NULL, "key ring reload: %s", err.msg);
    }
    if (sp_store_state(a->store) != SP_STORE_READY)
        return;
    ensure_bootstrap(a);
    maybe_rotate(a);
}

/* ---- signals ---- */

static void on_stop_check(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;

    if (sp_workers_done(a->workers, a->nworkers))
        event_base_loopbreak(a->base);
}

/* First SIGTERM/SIGINT: drain (listeners close, requests in flight finish
 * up to upstream.timeout, then exit 0). A second one: exit at once. */
static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    struct timeval tick = {0, 50000};

    if (a->stopping) {
        sp_log(SP_LOG_WARN, NULL, "signal %d again: exiting now", (int)sig);
        _exit(0);
    }
    a->stopping = 1;
    sp_log(SP_LOG_INFO, NULL, "signal %d: draining", (int)sig);
    sp_api_stop_accepting(a->api);
    sp_workers_stop(a->workers, a->nworkers);
    a->stop_check = event_new(a->base, -1, EV_PERSIST, on_stop_check, a);
    if (!a->stop_check || event_add(a->stop_check, &tick) < 0)
        event_base_loopbreak(a->base);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    struct sp_conf *c = load_conf(a->conf_path);
    enum sp_log_level lvl = SP_LOG_INFO;
    struct sp_err err;

    if (!c || check_config(c)) {
        sp_log(SP_LOG_ERROR, NULL, "SIGHUP: configuration invalid, keeping the running one");
        sp_conf_free(c);
        return;
    }
    (void)sp_log_level_parse(c->log_level.s, &lvl);
    if (sp_log_open(c->log_file.s, lvl, &err) < 0)
        sp_log(SP_LOG_ERROR, NULL, "SIGHUP: %s", err.msg);
    {
        struct sp_conf **r = realloc(a->retired, (a->nretired + 1) * sizeof(*r));
        if (!r) {
            sp_log(SP_LOG_ERROR, NULL, "SIGHUP: out of memory, keeping the running configuration");
            sp_conf_free(c);
            return;
        }
        a->retired = r;
    }
    sp_store_reconfigure(a->store, c);
    sp_api_set_conf(a->api, c);
    sp_workers_reconfigure(a->workers, a->nworkers, c);
    /* Workers switch on their own threads: keep the old one until exit. */
    a->retired[a->nretired++] = a->conf;
    a->conf = c;
    sp_log(SP_LOG_INFO, NULL, "configuration reloaded");
}

static int run(struct app *a)
{
    enum sp_log_level lvl = SP_LOG_INFO;
    struct timeval one = {1, 0};
    struct sp_err err;
    int rc = 1;

    (void)sp_log_level_parse(a->conf->log_level.s, &lvl);
    if (sp_log_open(a->conf->log_file.s, lvl, &err) < 0) {
        fprintf(stderr, "secretproxy: %s\n", err.msg);
        return 1;
    }
    if (sp_keyring_open(a->conf->keyring_file.s,
                        a->conf->keyring_master_key.s[0] ? a->conf->keyring_master_key.s : NULL, 1,
                        &a->kr, &err) < 0) {
        sp_log(SP_LOG_ERROR, NULL, "key ring: %s", err.msg);
        return 1;
    }
    sp_store_set_bootstrap(a->conf->api_bootstrap_key.s);
    sp_store_set_latency_hook(sp_metrics_store_latency);
    /* Worker loops are told to drain from this thread. */
    if (evthread_use_pthreads() < 0)
        goto fail;
    a->base = event_base_new();
    if (!a->base)
        goto fail;
    a->store = sp_store_new(a->base, a->conf, a->kr, &err);
    if (!a->store) {
        sp_log(SP_LOG_ERROR, NULL, "store: %s", err.msg);
        goto fail;
    }
    sp_store_on_ready(a->store, on_store_ready, a);
    a->api = sp_api_new(a->base, a->conf, a->store, a->kr, &err);
    if (!a->api) {
        sp_log(SP_LOG_ERROR, NULL, "%s", err.msg);
        goto fail;
    }
    a->sigterm = evsignal_new(a->base, SIGTERM, on_sigterm, a);
    a->sigint = evsignal_new(a->base, SIGINT, on_sigterm, a);
    a->sighup = evsignal_new(a->base, SIGHUP, on_sighup, a);
    a->tick = event_new(a->base, -1, EV_PERSIST, on_tick, a);
    if (!a->sigterm || !a->sigint || !a->sighup || !a->tick)
        goto fail;
    evsignal_add(a->sigterm, NULL);
    evsignal_add(a->sigint, NULL);
    evsignal_add(a->sighup, NULL);
    evtimer_add(a->tick, &one);
    a->last_rotation_check = -ROTATION_CHECK_MS;
    a->nworkers = (int)a->conf->proxy_workers.i;
    if (a->nworkers <= 0)
        a->nworkers =
            (int)sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1;
    a->workers = sp_workers_start(a->nworkers, a->conf, a->kr, &err);
    if (!a->workers) {
        sp_log(SP_LOG_ERROR, NULL, "%s", err.msg);
        goto fail;
    }
    sp_log(SP_LOG_INFO, NULL,
           "secretproxy %s started: proxy %s (%d workers), api %s, key ring version %d", SP_VERSION,
           a->conf->proxy_listen.s, a->nworkers, a->conf->api_listen.s, sp_keyring_current(a->kr));
    event_base_dispatch(a->base);
    rc = 0;
fail:
    sp_workers_stop(a->workers, a->nworkers);
    sp_workers_free(a->workers, a->nworkers);
    if (a->stop_check)
        event_free(a->stop_check);
    if (a->tick)
        event_free(a->tick);
    if (a->sigterm)
        event_free(a->sigterm);
    if (a->sigint)
        event_free(a->sigint);
    if (a->sighup)
        event_free(a->sighup);
    /* The store first: its pending callbacks answer API requests while
     * the listener still owns their connections. */
    sp_store_free(a->store);
    sp_api_free(a->api);
    if (a->base)
        event_base_free(a->base);
    sp_keyring_free(a->kr);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"print-config", no_argument, NULL, 'p'},
                                         {"sample-config", no_argument, NULL, 's'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct app a;
    int ch, check = 0, print = 0, rc;

    memset(&a, 0, sizeof(a));
    a.conf_path = DEFAULT_CONF;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a.conf_path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'p':
            print = 1;
            break;
        case 's': {
            struct sp_buf out;
            sp_buf_init(&out, 0, 0);
            rc = sp_conf_sample(&out, NULL);
            if (rc == 0)
                fputs(out.data, stdout);
            sp_buf_free(&out);
            return rc ? 1 : 0;
        }
        case 'V':
            printf("secretproxy %s\n", SP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    sp_harden_process();
    /* PERF-NOTES: fewer heap trims and mmaps with 64 KiB buffers. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    signal(SIGPIPE, SIG_IGN);

    a.conf = load_conf(a.conf_path);
    if (!a.conf)
        return 1;
    if (check || print) {
        rc = check_config(a.conf) ? 1 : 0;
        if (print && rc == 0) {
            struct sp_buf out;
            sp_buf_init(&out, 0, 0);
            if (sp_conf_print(a.conf, &out, NULL) == 0)
                fputs(out.data, stdout);
            sp_buf_free(&out);
        } else if (rc == 0) {
            printf("%s: configuration is valid\n", a.conf_path);
        }
        sp_conf_free(a.conf);
        return rc;
    }
    rc = run(&a);
    sp_conf_free(a.conf);
    for (size_t i = 0; i < a.nretired; i++)
        sp_conf_free(a.retired[i]);
    free(a.retired);
    sp_log_close();
    return rc;
}
