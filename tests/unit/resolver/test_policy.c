/* test_policy.c - the checks in DESIGN §3's order and host binding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "resolver.h"

static struct sp_strlist list(char **items, size_t n)
{
    struct sp_strlist l = {items, n};
    return l;
}

static void hosts_match_exactly_or_by_anchored_pattern(void **state)
{
    assert_true(sp_resolver_host_matches("api.stripe.com", "API.Stripe.com", 14));
    /* A plain name is not a regex: '.' is a dot. */
    assert_false(sp_resolver_host_matches("api.stripe.com", "apixstripe.com", 14));
    assert_false(sp_resolver_host_matches("stripe.com", "evil-stripe.com", 15));
    assert_true(sp_resolver_host_matches(".*\\.stripe\\.com", "api.stripe.com", 14));
    /* Anchored both ends. */
    assert_false(sp_resolver_host_matches(".*\\.stripe\\.com", "api.stripe.com.evil", 19));
    assert_false(sp_resolver_host_matches("api\\.stripe\\.com", "xapi.stripe.com", 15));
    assert_true(sp_resolver_host_matches("(api|files)\\.example\\.com", "FILES.example.com", 17));
    /* A broken pattern matches nothing. */
    assert_false(sp_resolver_host_matches("(unclosed", "(unclosed", 9));
    for (int i = 0; i < 1000; i++) /* the per-thread cache stays correct */
        assert_true(sp_resolver_host_matches(".*\\.stripe\\.com", "a.stripe.com", 12));
}

static void empty_hosts_follow_the_setting(void **state)
{
    struct sp_strlist none = list(NULL, 0);

    assert_true(sp_resolver_hosts_allow(&none, "x.com", 5, 1));
    assert_false(sp_resolver_hosts_allow(&none, "x.com", 5, 0));
}

static void checks_run_in_the_documented_order(void **state)
{
    char *apps[] = {"billing"}, *envs[] = {"prod"}, *hosts[] = {"api.stripe.com"};
    struct sp_secret_meta m;
    struct sp_caller ctx = {"ws", NULL, NULL, NULL, NULL, "billing", "prod"};
    struct sp_err err;

    memset(&m, 0, sizeof(m));
    snprintf(m.name, sizeof(m.name), "STRIPE_KEY");
    m.apps = list(apps, 1);
    m.envs = list(envs, 1);
    m.hosts = list(hosts, 1);
    assert_int_equal(sp_resolver_check(&m, &ctx, "api.stripe.com", 1, &err), 0);

    assert_int_equal(sp_resolver_check(&m, &ctx, "evil.example", 1, &err), -1);
    assert_int_equal(err.code, SP_E_SECRET_HOST_DENIED);
    assert_string_equal(err.msg, "Secret 'STRIPE_KEY' may not be sent to host 'evil.example'");

    ctx.env = "dev"; /* env is checked before host */
    assert_int_equal(sp_resolver_check(&m, &ctx, "evil.example", 1, &err), -1);
    assert_string_equal(err.msg, "Secret 'STRIPE_KEY' is not available in environment 'dev'");
    assert_int_equal(err.code, SP_E_SECRET_ENV_MISMATCH);

    ctx.app = "other_app"; /* app before env */
    assert_int_equal(sp_resolver_check(&m, &ctx, "evil.example", 1, &err), -1);
    assert_string_equal(err.msg, "Secret 'STRIPE_KEY' is not accessible by app 'other_app'");
    assert_int_equal(err.code, SP_E_SECRET_SCOPE_MISMATCH);

    m.expires_at = sp_now_ms() - 1; /* expiry before app */
    assert_int_equal(sp_resolver_check(&m, &ctx, "evil.example", 1, &err), -1);
    assert_string_equal(err.msg, "Secret 'STRIPE_KEY' has expired");
    assert_int_equal(err.code, SP_E_SECRET_EXPIRED);

    m.revoked = 1; /* revocation first */
    assert_int_equal(sp_resolver_check(&m, &ctx, "evil.example", 1, &err), -1);
    assert_string_equal(err.msg, "Secret 'STRIPE_KEY' has been revoked");
    assert_int_equal(err.code, SP_E_SECRET_REVOKED);

    /* A caller without an app or env is refused by non-empty lists. */
    memset(&m.revoked, 0, sizeof(m.revoked));
    m.expires_at = 0;
    ctx.app = NULL;
    assert_int_equal(sp_resolver_check(&m, &ctx, NULL, 1, &err), -1);
    assert_int_equal(err.code, SP_E_SECRET_SCOPE_MISMATCH);
    sp_resolver_thread_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hosts_match_exactly_or_by_anchored_pattern),
        cmocka_unit_test(empty_hosts_follow_the_setting),
        cmocka_unit_test(checks_run_in_the_documented_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
