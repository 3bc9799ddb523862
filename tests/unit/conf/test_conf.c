/* test_conf.c - defaults, the INI reader, environment overrides, every kind
 * of bad input, and the sample config / README staying in sync with the
 * descriptor table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "testutil.h"

static char *write_tmp(const char *text)
{
    char tmpl[] = "/tmp/sp-conf.XXXXXX";
    int fd = mkstemp(tmpl);
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return strdup(tmpl);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

static void defaults_match_the_spec(void **state)
{
    struct sp_conf_diag d = {0};
    char *env[] = {NULL};
    struct sp_conf *c = sp_conf_load(NULL, env, &d);

    assert_non_null(c);
    assert_string_equal(c->proxy_listen.s, "127.0.0.1:8080");
    assert_string_equal(c->api_listen.s, "127.0.0.1:8081");
    assert_string_equal(c->redis_url.s, "redis://127.0.0.1:6379/0");
    assert_string_equal(c->keyring_file.s, ".secretproxy/keyring.json");
    assert_int_equal(c->upstream_allow_private.i, 0);
    assert_int_equal(c->upstream_connect_timeout.i, 5000);
    assert_int_equal(c->upstream_timeout.i, 30000);
    assert_int_equal(c->upstream_idle_timeout.i, 60000);
    assert_string_equal(c->connect_default.s, "tunnel");
    assert_string_equal(c->connect_ca_cert.s, ".secretproxy/ca.pem");
    assert_string_equal(c->connect_ca_key.s, ".secretproxy/ca.key");
    assert_string_equal(c->log_file.s, "-");
    assert_int_equal(c->secrets_ref_ttl.i, 300000);
    assert_int_equal(c->keyring_rotate_interval.i, 90LL * 86400 * 1000);
    sp_conf_free(c);
}

static void file_and_environment_are_read(void **state)
{
    char *path = write_tmp("# comment\n; another\n[proxy]\nlisten = 0.0.0.0:9000\n"
                           "max_body_size = 2m\n\n[upstream]\n  timeout = 1.5  \n"
                           "upgrade_hosts = \"api.example.com, .*\\.amazonaws\\.com\"\n"
                           "allow_private = yes\n");
    char *env[] = {"SECRETPROXY_PROXY_LISTEN=127.0.0.1:18080", "SECRETPROXY_LOG_LEVEL=debug",
                   "SECRETPROXY_API_URL=http://ignored", "OTHER=1", NULL};
    struct sp_conf_diag d = {0};
    struct sp_conf *c = sp_conf_load(path, env, &d);
    char **items, *storage;
    size_t n;

    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.lines[i]);
    assert_non_null(c);
    assert_string_equal(c->proxy_listen.s, "127.0.0.1:18080"); /* env wins */
    assert_int_equal(c->proxy_max_body_size.i, 2 << 20);
    assert_int_equal(c->upstream_timeout.i, 1500);
    assert_int_equal(c->upstream_allow_private.i, 1);
    assert_string_equal(c->log_level.s, "debug");
    n = sp_conf_split_list(c->upstream_upgrade_hosts.s, &items, &storage);
    assert_int_equal(n, 2);
    assert_string_equal(items[0], "api.example.com");
    assert_string_equal(items[1], ".*\\.amazonaws\\.com");
    free(items);
    free(storage);
    /* Messages about a value name where it came from. */
    {
        char where[160];
        assert_string_equal(sp_conf_where(c, "proxy", "listen", where, sizeof(where)),
                            "environment (SECRETPROXY_PROXY_LISTEN)");
        assert_string_equal(sp_conf_where(c, "upstream", "timeout", where, sizeof(where)), path);
    }
    sp_conf_free(c);
    unlink(path);
    free(path);
}

/* Each bad input is reported with file:line and makes loading fail. */
static void every_bad_input_is_reported(void **state)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"[proxy]\nlisten = nowhere\n", ":2: proxy.listen: not an address"},
        {"[proxy]\nlisten = 1.2.3.4:99999\n", ":2: proxy.listen: not an address"},
        {"[proxy]\nworkers = many\n", ":2: proxy.workers: not an integer"},
        {"[proxy]\nworkers = 1000\n", ":2: proxy.workers: out of range"},
        {"[proxy]\nmax_body_size = -1\n", ":2: proxy.max_body_size: not a size"},
        {"[upstream]\ntimeout = 3 weeks\n", ":2: upstream.timeout: not a duration"},
        {"[upstream]\nallow_private = maybe\n", ":2: upstream.allow_private: not a boolean"},
        {"[connect]\ndefault = open\n", ":2: connect.default: must be one of"},
        {"[proxy]\nlisen = 1.2.3.4:80\n", ":2: unknown key 'lisen' in [proxy]"},
        {"[proxyy]\n", ":1: unknown section [proxyy]"},
        {"listen = 1.2.3.4:80\n", ":1: key 'listen' outside any section"},
        {"[proxy\n", ":1: malformed section header"},
        {"[proxy]\njust words\n", ":2: expected key = value"},
        {"[proxy]\nworkers = 1\nworkers = 2\n", ":3: duplicate key 'proxy.workers'"},
    };

    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        char *path = write_tmp(cases[i].text);
        char *env[] = {NULL};
        struct sp_conf_diag d = {0};
        struct sp_conf *c = sp_conf_load(path, env, &d);
        int found = 0;

        assert_null(c);
        for (size_t j = 0; j < d.count; j++)
            if (strstr(d.lines[j], cases[i].expect) && strncmp(d.lines[j], path, strlen(path)) == 0)
                found = 1;
        if (!found)
            fail_msg("case %zu: expected '%s', got '%s'", i, cases[i].expect,
                     d.count ? d.lines[0] : "(nothing)");
        sp_conf_diag_free(&d);
        unlink(path);
        free(path);
    }
}

static void missing_file_and_bad_environment_fail(void **state)
{
    char *env[] = {"SECRETPROXY_PROXY_WORKERS=lots", "SECRETPROXY_PROXY_NOPE=1", NULL};
    char *none[] = {NULL};
    struct sp_conf_diag d = {0};

    assert_null(sp_conf_load("/nonexistent/secretproxy.conf", none, &d));
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.lines[0], "cannot read"));
    sp_conf_diag_free(&d);
    assert_null(sp_conf_load(NULL, env, &d));
    assert_int_equal(d.count, 2);
    assert_non_null(strstr(d.lines[0], "SECRETPROXY_PROXY_WORKERS: not an integer"));
    assert_non_null(strstr(d.lines[1], "unknown setting SECRETPROXY_PROXY_NOPE"));
    sp_conf_diag_free(&d);
}

static void addresses_parse(void **state)
{
    char host[256];
    int port, is_unix;

    assert_int_equal(sp_conf_parse_addr("127.0.0.1:8080", host, sizeof(host), &port, &is_unix), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(sp_conf_parse_addr("[::1]:80", host, sizeof(host), &port, &is_unix), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(sp_conf_parse_addr("unix:/run/sp.sock", host, sizeof(host), &port, &is_unix),
                     0);
    assert_true(is_unix);
    assert_int_equal(sp_conf_parse_addr("::1:80", host, sizeof(host), &port, &is_unix), -1);
    assert_int_equal(sp_conf_parse_addr(":80", host, sizeof(host), &port, &is_unix), -1);
    assert_int_equal(sp_conf_parse_addr("host:0", host, sizeof(host), &port, &is_unix), -1);
}

/* conf/secretproxy.conf is exactly what --sample-config prints, it loads
 * cleanly, and the README names every key. */
static void sample_config_and_readme_are_in_sync(void **state)
{
    const char *src = getenv("SP_SOURCE_DIR");
    char path[1024], *sample, *readme;
    struct sp_buf out;
    size_t n;
    const struct sp_conf_desc *d = sp_conf_descs(&n);
    char *env[] = {NULL};
    struct sp_conf_diag diag = {0};
    struct sp_conf *c;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/conf/secretproxy.conf", src);
    sample = read_file(path);
    assert_non_null(sample);
    sp_buf_init(&out, 0, 0);
    assert_int_equal(sp_conf_sample(&out, NULL), 0);
    if (strcmp(sample, out.data) != 0)
        fail_msg("conf/secretproxy.conf differs from `secretproxy --sample-config`; regenerate it");
    c = sp_conf_load(path, env, &diag);
    assert_non_null(c);
    sp_conf_free(c);
    snprintf(path, sizeof(path), "%s/README.md", src);
    readme = read_file(path);
    assert_non_null(readme);
    for (size_t i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof(key), "`%s.%s`", d[i].section, d[i].key);
        if (!strstr(readme, key))
            fail_msg("README.md does not document %s", key);
    }
    free(readme);
    free(sample);
    sp_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_the_spec),
        cmocka_unit_test(file_and_environment_are_read),
        cmocka_unit_test(every_bad_input_is_reported),
        cmocka_unit_test(missing_file_and_bad_environment_fail),
        cmocka_unit_test(addresses_parse),
        cmocka_unit_test(sample_config_and_readme_are_in_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
