/*
 * test_keyring.c - the versioned key ring and its file: creation with safe
 * modes, reopening, rotation and retirement, refusal of unsafe or damaged
 * files, master-key wrapping, reloads that pick up other processes' changes
 * (and keep working keys when the file goes bad), writers that never lose
 * each other's versions, and decrypts from many threads during rotation.
 *
 * Includes keyring.c to look at the keys in memory and at the reload clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/keyring.c"
#include "testutil.h"

#define CANARY "CANARY-keyring-93be01"
#define AAD "ws\0workspace\0NAME"
#define AADLEN (sizeof(AAD) - 1)
/* base64 of 32 bytes 0x01..0x20, and of 32 bytes 0xff */
#define MASTER "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define OTHER_MASTER "//////////////////////////////////////////8="

struct fx {
    char *dir;
    char path[300];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->dir = tu_tmpdir();
    assert_non_null(f->dir);
    snprintf(f->path, sizeof(f->path), "%s/keyring.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tu_rmrf(f->dir);
    free(f);
    return 0;
}

static struct sp_keyring *open_ok(const char *path, const char *master)
{
    struct sp_keyring *kr = NULL;
    struct sp_err err;

    if (sp_keyring_open(path, master, 1, &kr, &err) < 0)
        fail_msg("open %s: %s", path, err.msg);
    return kr;
}

/* Open must fail with SP_E_CONFIG and a message containing want (and the
 * path); returns nothing, leaves nothing open. */
static void open_fails(const char *path, const char *master, int create, const char *want)
{
    struct sp_keyring *kr = (struct sp_keyring *)1;
    struct sp_err err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(sp_keyring_open(path, master, create, &kr, &err), -1);
    assert_null(kr);
    assert_int_equal(err.code, SP_E_CONFIG);
    if (!strstr(err.msg, want))
        fail_msg("expected '%s' in: %s", want, err.msg);
}

static void encrypt(struct sp_keyring *kr, struct sp_buf *out)
{
    struct sp_err err;

    sp_buf_init(out, 0, 0);
    if (sp_keyring_encrypt(kr, AAD, AADLEN, CANARY, strlen(CANARY), out, &err) < 0)
        fail_msg("encrypt: %s", err.msg);
}

static int decrypts(struct sp_keyring *kr, const struct sp_buf *enc, struct sp_err *err)
{
    struct sp_buf out;
    int rc;

    sp_buf_init(&out, 0, 1);
    rc = sp_keyring_decrypt(kr, AAD, AADLEN, enc->data, enc->len, &out, err);
    if (rc == 0 && (out.len != strlen(CANARY) || memcmp(out.data, CANARY, out.len) != 0))
        rc = -2;
    sp_buf_free(&out);
    return rc;
}

static void assert_decrypts(struct sp_keyring *kr, const struct sp_buf *enc)
{
    struct sp_err err;

    if (decrypts(kr, enc, &err) != 0)
        fail_msg("decrypt: %s", err.msg);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *s = calloc(1, 1 << 20);
    size_t n;

    assert_non_null(fp);
    assert_non_null(s);
    n = fread(s, 1, (1 << 20) - 1, fp);
    s[n] = '\0';
    fclose(fp);
    return s;
}

static void spew(const char *path, const char *text, mode_t mode)
{
    FILE *fp;

    (void)unlink(path);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void copy_file(const char *from, const char *to)
{
    char *s = slurp(from);

    spew(to, s, 0600);
    free(s);
}

static unsigned file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

/* The base64 form in which key version v of kr would appear in a file. */
static void key_b64(struct sp_keyring *kr, int v, char *out)
{
    const struct sp_kr_version *kv = sp_kr_ring_find(&kr->ring, v);

    assert_non_null(kv);
    assert_false(kv->retired);
    sp_base64_encode(out, kv->key, 32);
}

/* ---- creation and reopening ---- */

static void test_create_makes_0600_file_in_0700_dirs(void **state)
{
    struct fx *f = *state;
    char path[500], sub[400], b64[64];
    struct sp_keyring *kr;
    json_t *j, *v;
    char *text;

    snprintf(sub, sizeof(sub), "%s/a/b", f->dir);
    snprintf(path, sizeof(path), "%s/keyring.json", sub);
    kr = open_ok(path, NULL);
    assert_int_equal(sp_keyring_current(kr), 1);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(file_mode(sub), 0700);
    snprintf(sub, sizeof(sub), "%s/a", f->dir);
    assert_int_equal(file_mode(sub), 0700);

    /* Plain form: format, current, versions with a 32-byte key. */
    text = slurp(path);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "format")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "current")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "versions")), 1);
    v = json_array_get(json_object_get(j, "versions"), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 1);
    assert_non_null(json_string_value(json_object_get(v, "created_at")));
    key_b64(kr, 1, b64);
    assert_string_equal(json_string_value(json_object_get(v, "key")), b64);
    json_decref(j);
    free(text);
    sp_keyring_free(kr);
    /* No temporary file is left behind. */
    snprintf(sub, sizeof(sub), "ls -A '%s/a/b' | grep -v '^keyring.json$' | grep -q .", f->dir);
    assert_int_not_equal(system(sub), 0);
}

static void test_missing_file_without_create_fails(void **state)
{
    struct fx *f = *state;
    struct stat st;

    open_fails(f->path, NULL, 0, "does not exist");
    assert_int_equal(stat(f->path, &st), -1);
}

static void test_reopen_rotate_and_decrypt_old_versions(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    struct sp_buf e1, e2, e3;
    struct sp_err err;
    int v = 0;

    encrypt(kr, &e1);
    assert_int_equal(sp_keyring_add_version(kr, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(sp_keyring_current(kr), 2);
    encrypt(kr, &e2);
    assert_int_equal(sp_keyring_version_of(e2.data, e2.len), 2);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
    encrypt(kr, &e3);
    assert_int_equal(sp_keyring_version_of(e3.data, e3.len), 3);
    assert_decrypts(kr, &e1);
    sp_keyring_free(kr);
    assert_int_equal(file_mode(f->path), 0600);

    kr = open_ok(f->path, NULL);
    assert_int_equal(sp_keyring_current(kr), 3);
    assert_decrypts(kr, &e1);
    assert_decrypts(kr, &e2);
    assert_decrypts(kr, &e3);
    sp_keyring_free(kr);
    sp_buf_free(&e1);
    sp_buf_free(&e2);
    sp_buf_free(&e3);
}

static void test_retire_drops_the_key(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    struct sp_keyring_version_info *vi;
    struct sp_buf e1, e2;
    struct sp_err err;
    char b64[64], *text;
    size_t n;

    encrypt(kr, &e1);
    key_b64(kr, 1, b64);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
    encrypt(kr, &e2);

    assert_int_equal(sp_keyring_retire(kr, 2, &err), -1);
    assert_int_equal(err.code, SP_E_CONFLICT);
    assert_int_equal(sp_keyring_retire(kr, 9, &err), -1);
    assert_int_equal(err.code, SP_E_NOT_FOUND);
    assert_int_equal(sp_keyring_retire(kr, 1, &err), 0);
    assert_int_equal(sp_keyring_retire(kr, 1, &err), 0); /* again: fine */

    assert_int_equal(decrypts(kr, &e1, &err), -1);
    assert_int_equal(err.code, SP_E_INTERNAL);
    assert_non_null(strstr(err.msg, "retired"));
    assert_decrypts(kr, &e2);
    /* Wiped in memory and gone from the file. */
    {
        static const unsigned char zero[32];
        const struct sp_kr_version *kv = sp_kr_ring_find(&kr->ring, 1);
        assert_non_null(kv);
        assert_memory_equal(kv->key, zero, 32);
    }
    text = slurp(f->path);
    assert_null(strstr(text, b64));
    assert_non_null(strstr(text, "\"retired\": true"));
    free(text);
    sp_keyring_free(kr);

    kr = open_ok(f->path, NULL);
    assert_int_equal(sp_keyring_list(kr, &vi, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vi[0].version, 1);
    assert_true(vi[0].retired);
    assert_true(vi[0].retired_at > 0);
    assert_false(vi[0].current);
    assert_int_equal(vi[1].version, 2);
    assert_false(vi[1].retired);
    assert_true(vi[1].current);
    assert_true(vi[1].created_at > 1600000000000LL);
    free(vi);
    assert_int_equal(decrypts(kr, &e1, &err), -1);
    /* Numbers are never reused after a retirement. */
    assert_int_equal(sp_keyring_retire(kr, 1, &err), 0);
    {
        int v;
        assert_int_equal(sp_keyring_add_version(kr, &v, &err), 0);
        assert_int_equal(v, 3);
    }
    sp_keyring_free(kr);
    sp_buf_free(&e1);
    sp_buf_free(&e2);
}

static void test_status_json(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    struct sp_buf b;
    struct sp_err err;
    json_t *j, *vs;

    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
    assert_int_equal(sp_keyring_retire(kr, 1, &err), 0);
    sp_buf_init(&b, 0, 0);
    assert_int_equal(sp_keyring_status_json(kr, &b, &err), 0);
    j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "current")), 2);
    assert_true(json_is_false(json_object_get(j, "wrapped")));
    vs = json_object_get(j, "versions");
    assert_int_equal(json_array_size(vs), 2);
    assert_true(json_is_true(json_object_get(json_array_get(vs, 0), "retired")));
    assert_non_null(json_string_value(json_object_get(json_array_get(vs, 0), "retired_at")));
    assert_true(json_is_false(json_object_get(json_array_get(vs, 0), "current")));
    assert_true(json_is_null(json_object_get(json_array_get(vs, 1), "retired_at")));
    assert_true(json_is_true(json_object_get(json_array_get(vs, 1), "current")));
    assert_null(strstr(b.data, "key\""));
    json_decref(j);
    sp_buf_free(&b);
    sp_keyring_free(kr);
}

/* ---- refusing unsafe and damaged files ---- */

static void test_refuses_group_or_world_accessible_file(void **state)
{
    struct fx *f = *state;
    static const struct {
        mode_t mode;
        const char *text;
    } modes[] = {{0644, "0644"}, {0640, "0640"}, {0604, "0604"}, {0660, "0660"}, {0666, "0666"}};
    struct sp_err err;

    sp_keyring_free(open_ok(f->path, NULL));
    for (size_t i = 0; i < SP_ARRAY_LEN(modes); i++) {
        assert_int_equal(chmod(f->path, modes[i].mode), 0);
        open_fails(f->path, NULL, 1, modes[i].text);
        open_fails(f->path, NULL, 1, f->path);
        assert_int_equal(sp_keyring_check_file(f->path, &err), -1);
        assert_non_null(strstr(err.msg, modes[i].text));
        /* Not "fixed" behind the operator's back. */
        assert_int_equal(file_mode(f->path), modes[i].mode);
    }
    assert_int_equal(chmod(f->path, 0600), 0);
    sp_keyring_free(open_ok(f->path, NULL));
    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
}

static void test_refuses_symlink_directory_and_fifo(void **state)
{
    struct fx *f = *state;
    char real[400], link[400], dir[400], fifo[400];
    struct sp_err err;

    snprintf(real, sizeof(real), "%s/real.json", f->dir);
    snprintf(link, sizeof(link), "%s/link.json", f->dir);
    snprintf(dir, sizeof(dir), "%s/dir.json", f->dir);
    snprintf(fifo, sizeof(fifo), "%s/fifo.json", f->dir);
    sp_keyring_free(open_ok(real, NULL));
    assert_int_equal(symlink(real, link), 0);
    open_fails(link, NULL, 1, "symbolic link");
    assert_int_equal(sp_keyring_check_file(link, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
    /* A dangling link is not "absent, create it" either. */
    assert_int_equal(unlink(real), 0);
    open_fails(link, NULL, 1, "symbolic link");

    assert_int_equal(mkdir(dir, 0700), 0);
    open_fails(dir, NULL, 1, "not a regular file");
    assert_int_equal(sp_keyring_check_file(dir, &err), -1);

    assert_int_equal(mkfifo(fifo, 0600), 0);
    open_fails(fifo, NULL, 1, "not a regular file"); /* and does not hang */
}

static void test_refuses_corrupted_files(void **state)
{
    struct fx *f = *state;
    /* A key-like string near each defect: no message may quote it. */
    static const char *const bad[] = {
        "{not json SECRETKEYTEXT",
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"SECRETKEYTEXT",
        "",
        "[1,2,3]",
        "\"SECRETKEYTEXT\"",
        "{\"format\":2,\"current\":1,\"versions\":[]}",
        "{\"format\":1,\"versions\":[]}",
        "{\"format\":1,\"current\":1,\"versions\":[]}",
        "{\"format\":1,\"current\":1,\"versions\":{}}",
        /* key of 31 bytes */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"}]}",
        /* key not base64 */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"SECRETKEYTEXT!!!SECRETKEYTEXT!!!SECRETKEYTEXT!!\"}]}",
        /* no created_at */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,"
        "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* current names a retired version */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"retired\":true}]}",
        /* current names no version */
        "{\"format\":1,\"current\":2,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* a version twice */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"},"
        "{\"version\":1,\"created_at\":\"2024-01-01T00:00:00Z\","
        "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* retired but still holding a key */
        "{\"format\":1,\"current\":2,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"retired\":true,"
        "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"},{\"version\":2,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* duplicate member */
        "{\"format\":1,\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* version 0 */
        "{\"format\":1,\"current\":1,\"versions\":[{\"version\":0,\"created_at\":"
        "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
        /* wrapped, but not base64 of anything plausible */
        "{\"format\":1,\"wrapped\":\"AAAA\"}",
    };
    struct sp_keyring *kr = (struct sp_keyring *)1;
    struct sp_err err;

    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        spew(f->path, bad[i], 0600);
        memset(&err, 0, sizeof(err));
        if (sp_keyring_open(f->path, NULL, 1, &kr, &err) != -1)
            fail_msg("case %zu was accepted", i);
        assert_null(kr);
        assert_int_equal(err.code, SP_E_CONFIG);
        assert_non_null(strstr(err.msg, f->path));
        assert_null(strstr(err.msg, "SECRETKEYTEXT"));
        assert_int_equal(sp_keyring_check_file(f->path, &err), -1);
        assert_null(strstr(err.msg, "SECRETKEYTEXT"));
        /* The damaged file is left for the operator, not replaced. */
        {
            char *text = slurp(f->path);
            assert_string_equal(text, bad[i]);
            free(text);
        }
    }
    /* A minimal hand-written ring is fine. */
    spew(f->path,
         "{\"format\":1,\"current\":1,\"versions\":[{\"version\":1,\"created_at\":"
         "\"2024-01-01T00:00:00Z\",\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}",
         0600);
    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
    kr = open_ok(f->path, NULL);
    assert_int_equal(sp_keyring_current(kr), 1);
    sp_keyring_free(kr);
}

/* ---- master key ---- */

static void test_master_key_wraps_the_file(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, MASTER);
    struct sp_buf e1, e2, st;
    struct sp_err err;
    char k1[64], k2[64], *text;
    json_t *j;

    encrypt(kr, &e1);
    key_b64(kr, 1, k1);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
    encrypt(kr, &e2);
    key_b64(kr, 2, k2);
    assert_int_equal(file_mode(f->path), 0600);

    text = slurp(f->path);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "format")), 1);
    assert_non_null(json_string_value(json_object_get(j, "wrapped")));
    json_decref(j);
    assert_null(strstr(text, k1));
    assert_null(strstr(text, k2));
    assert_null(strstr(text, "versions"));
    assert_null(strstr(text, "created_at"));
    free(text);
    sp_buf_init(&st, 0, 0);
    assert_int_equal(sp_keyring_status_json(kr, &st, &err), 0);
    assert_non_null(strstr(st.data, "\"wrapped\":true"));
    sp_buf_free(&st);
    sp_keyring_free(kr);

    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
    kr = open_ok(f->path, MASTER);
    assert_int_equal(sp_keyring_current(kr), 2);
    assert_decrypts(kr, &e1);
    assert_decrypts(kr, &e2);
    sp_keyring_free(kr);

    open_fails(f->path, NULL, 1, "master_key");
    open_fails(f->path, OTHER_MASTER, 1, "wrong keyring.master_key");
    open_fails(f->path, "not base64!", 1, "exactly 32 bytes");
    open_fails(f->path, "AAAA", 1, "exactly 32 bytes");
    /* 31 bytes */
    open_fails(f->path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 1, "exactly 32 bytes");
    sp_buf_free(&e1);
    sp_buf_free(&e2);
}

static void test_plain_file_is_rewrapped_under_a_master_key(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    struct sp_buf e1;
    char k1[64], *text;

    encrypt(kr, &e1);
    key_b64(kr, 1, k1);
    sp_keyring_free(kr);
    text = slurp(f->path);
    assert_non_null(strstr(text, k1));
    free(text);

    kr = open_ok(f->path, MASTER);
    assert_decrypts(kr, &e1);
    sp_keyring_free(kr);
    text = slurp(f->path);
    assert_null(strstr(text, k1));
    assert_non_null(strstr(text, "\"wrapped\""));
    free(text);
    assert_int_equal(file_mode(f->path), 0600);
    open_fails(f->path, NULL, 1, "master_key");
    kr = open_ok(f->path, MASTER);
    assert_decrypts(kr, &e1);
    sp_keyring_free(kr);
    sp_buf_free(&e1);
}

static void test_tampered_wrapped_file_is_refused(void **state)
{
    struct fx *f = *state;
    char *text, *w;

    sp_keyring_free(open_ok(f->path, MASTER));
    text = slurp(f->path);
    w = strstr(text, "\"wrapped\"");
    assert_non_null(w);
    w = strchr(w + 9, '"');
    assert_non_null(w);
    w[5] = w[5] == 'A' ? 'B' : 'A';
    spew(f->path, text, 0600);
    free(text);
    open_fails(f->path, MASTER, 1, "wrong keyring.master_key or a damaged file");
}

/* ---- reloads and several writers ---- */

static void test_reload_picks_up_another_handles_changes(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *a = open_ok(f->path, NULL), *b = open_ok(f->path, NULL);
    struct sp_buf e1, e2;
    struct sp_err err;
    int v;

    encrypt(a, &e1);
    assert_int_equal(sp_keyring_add_version(b, &v, &err), 0);
    assert_int_equal(v, 2);
    encrypt(b, &e2);
    assert_int_equal(sp_keyring_version_of(e2.data, e2.len), 2);
    assert_int_equal(sp_keyring_current(a), 1);
    /* A version a has never seen: a reloads once, then decrypts. */
    assert_decrypts(a, &e2);
    assert_int_equal(sp_keyring_current(a), 2);

    /* Explicit reload. */
    assert_int_equal(sp_keyring_add_version(b, &v, &err), 0);
    assert_int_equal(sp_keyring_reload(a, &err), 0);
    assert_int_equal(sp_keyring_current(a), 3);
    /* A retirement by b reaches a by reload, and wipes a's copy. */
    assert_int_equal(sp_keyring_retire(b, 1, &err), 0);
    assert_decrypts(a, &e1);
    assert_int_equal(sp_keyring_reload(a, &err), 0);
    assert_int_equal(decrypts(a, &e1, &err), -1);
    assert_non_null(strstr(err.msg, "retired"));
    assert_decrypts(a, &e2);
    sp_keyring_free(a);
    sp_keyring_free(b);
    sp_buf_free(&e1);
    sp_buf_free(&e2);
}

static void test_automatic_reload_is_rate_limited(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *a = open_ok(f->path, NULL), *b = open_ok(f->path, NULL);
    struct sp_buf e2, e3;
    struct sp_err err;
    char junk[128];
    int64_t before;

    /* An unknown version makes a reload... */
    snprintf(junk, sizeof(junk), "77:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==");
    before = a->last_auto_reload_us;
    {
        struct sp_buf out;
        sp_buf_init(&out, 0, 1);
        assert_int_equal(sp_keyring_decrypt(a, AAD, AADLEN, junk, strlen(junk), &out, &err), -1);
        assert_non_null(strstr(err.msg, "version 77"));
        assert_int_equal(sp_keyring_decrypt(a, AAD, AADLEN, junk, strlen(junk), &out, &err), -1);
        sp_buf_free(&out);
    }
    assert_true(a->last_auto_reload_us > before);
    before = a->last_auto_reload_us;
    /* ... and for the next second, no other: b's new version stays unknown. */
    assert_int_equal(sp_keyring_add_version(b, NULL, &err), 0);
    encrypt(b, &e2);
    assert_int_equal(decrypts(a, &e2, &err), -1);
    assert_non_null(strstr(err.msg, "not in the key ring"));
    assert_int_equal(a->last_auto_reload_us, before);
    /* A second later, it is picked up. */
    a->last_auto_reload_us -= AUTO_RELOAD_US;
    assert_decrypts(a, &e2);
    /* An explicit reload is never rate-limited. */
    assert_int_equal(sp_keyring_add_version(b, NULL, &err), 0);
    encrypt(b, &e3);
    assert_int_equal(sp_keyring_reload(a, &err), 0);
    assert_decrypts(a, &e3);
    sp_keyring_free(a);
    sp_keyring_free(b);
    sp_buf_free(&e2);
    sp_buf_free(&e3);
}

static void test_reload_keeps_working_keys_when_the_file_goes_bad(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL), *other;
    char other_path[400];
    struct sp_buf e1, e;
    struct sp_err err;

    encrypt(kr, &e1);
    /* Unparseable. */
    spew(f->path, "{garbage", 0600);
    assert_int_equal(sp_keyring_reload(kr, &err), -1);
    assert_int_equal(err.code, SP_E_CONFIG);
    assert_decrypts(kr, &e1);
    encrypt(kr, &e);
    sp_buf_free(&e);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), -1);
    /* Too open. */
    spew(f->path, "{}", 0644);
    assert_int_equal(sp_keyring_reload(kr, &err), -1);
    assert_non_null(strstr(err.msg, "0644"));
    assert_decrypts(kr, &e1);
    /* Gone. */
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(sp_keyring_reload(kr, &err), -1);
    assert_int_equal(err.code, SP_E_CONFIG);
    assert_decrypts(kr, &e1);
    /* Replaced by another ring: its version 1 is another key. */
    snprintf(other_path, sizeof(other_path), "%s/other.json", f->dir);
    other = open_ok(other_path, NULL);
    sp_keyring_free(other);
    copy_file(other_path, f->path);
    assert_int_equal(sp_keyring_reload(kr, &err), -1);
    assert_non_null(strstr(err.msg, "different key"));
    assert_decrypts(kr, &e1);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), -1);
    assert_int_equal(sp_keyring_current(kr), 1);
    sp_keyring_free(kr);
    sp_buf_free(&e1);
}

static void test_two_writers_never_lose_a_version(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *a = open_ok(f->path, NULL), *b = open_ok(f->path, NULL), *c;
    struct sp_buf enc[7];
    struct sp_err err;
    int v;

    encrypt(a, &enc[0]);
    for (int i = 1; i <= 6; i++) {
        struct sp_keyring *w = i % 2 ? a : b;
        /* Neither has reloaded: each change re-reads the file under the lock. */
        assert_int_equal(sp_keyring_add_version(w, &v, &err), 0);
        assert_int_equal(v, i + 1);
        encrypt(w, &enc[i]);
        assert_int_equal(sp_keyring_version_of(enc[i].data, enc[i].len), i + 1);
    }
    c = open_ok(f->path, NULL);
    assert_int_equal(sp_keyring_current(c), 7);
    for (int i = 0; i < 7; i++) {
        assert_decrypts(a, &enc[i]);
        assert_decrypts(b, &enc[i]);
        assert_decrypts(c, &enc[i]);
        sp_buf_free(&enc[i]);
    }
    sp_keyring_free(a);
    sp_keyring_free(b);
    sp_keyring_free(c);
}

/* Writers in separate processes, at the same time: the directory lock and
 * the re-read under it give every new version its own number. */
static void test_processes_adding_at_once_get_distinct_versions(void **state)
{
    enum { PROCS = 4, ADDS = 5 };
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    int fds[2], seen[PROCS * ADDS + 2] = {0}, v, status;
    pid_t pids[PROCS];
    struct sp_err err;

    sp_keyring_free(kr);
    assert_int_equal(pipe(fds), 0);
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            struct sp_keyring *c = NULL;
            int bad = sp_keyring_open(f->path, NULL, 0, &c, &err) < 0;
            for (int i = 0; !bad && i < ADDS; i++)
                bad = sp_keyring_add_version(c, &v, &err) < 0 ||
                      write(fds[1], &v, sizeof(v)) != (ssize_t)sizeof(v);
            sp_keyring_free(c);
            _exit(bad);
        }
    }
    close(fds[1]);
    while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
        assert_true(v >= 2 && v <= PROCS * ADDS + 1);
        assert_int_equal(seen[v], 0);
        seen[v] = 1;
    }
    close(fds[0]);
    for (int p = 0; p < PROCS; p++) {
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (v = 2; v <= PROCS * ADDS + 1; v++)
        assert_int_equal(seen[v], 1);
    kr = open_ok(f->path, NULL);
    assert_int_equal(sp_keyring_current(kr), PROCS * ADDS + 1);
    for (v = 1; v <= PROCS * ADDS + 1; v++)
        assert_non_null(sp_kr_ring_find(&kr->ring, v));
    sp_keyring_free(kr);
}

/* Several processes resuming the same rotation to version 2 all end at 2. */
static void test_ensure_current_adds_only_what_is_missing(void **state)
{
    enum { PROCS = 4 };
    struct fx *f = *state;
    struct sp_keyring *a = open_ok(f->path, NULL), *b = open_ok(f->path, NULL);
    struct sp_keyring_version_info *vi;
    struct sp_err err;
    pid_t pids[PROCS];
    int cur = 0, status;
    size_t n;

    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            struct sp_keyring *c = NULL;
            int bad = sp_keyring_open(f->path, NULL, 0, &c, &err) < 0 ||
                      sp_keyring_ensure_current(c, 2, &cur, &err) < 0 || cur != 2;
            sp_keyring_free(c);
            _exit(bad);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* b has not reloaded: it still reaches 2, not 3. */
    assert_int_equal(sp_keyring_current(b), 1);
    assert_int_equal(sp_keyring_ensure_current(b, 2, &cur, &err), 0);
    assert_int_equal(cur, 2);
    assert_int_equal(sp_keyring_current(b), 2);
    assert_int_equal(sp_keyring_ensure_current(a, 1, &cur, &err), 0);
    assert_int_equal(cur, 2);
    assert_int_equal(sp_keyring_list(a, &vi, &n, &err), 0);
    assert_int_equal(n, 2);
    free(vi);
    assert_int_equal(sp_keyring_ensure_current(a, 4, NULL, &err), 0);
    assert_int_equal(sp_keyring_current(a), 4);
    assert_int_equal(sp_keyring_ensure_current(a, 1000, NULL, &err), -1);
    assert_int_equal(sp_keyring_ensure_current(a, 0, NULL, &err), -1);
    assert_int_equal(sp_keyring_current(a), 4);
    sp_keyring_free(a);
    sp_keyring_free(b);
}

static void test_stale_temporary_files_are_removed(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    char stale[400], other[400];
    struct sp_err err;
    struct stat st;

    snprintf(stale, sizeof(stale), "%s/.keyring.json.tmp-AbC123", f->dir);
    snprintf(other, sizeof(other), "%s/.unrelated.tmp-AbC123", f->dir);
    spew(stale, "{\"left\":\"by a killed writer\"}", 0600);
    spew(other, "x", 0600);
    assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
    assert_int_equal(stat(stale, &st), -1);
    assert_int_equal(stat(other, &st), 0);
    sp_keyring_free(kr);
}

/* ---- threads ---- */

struct worker {
    struct sp_keyring *kr;
    const struct sp_buf *old; /* encrypted with version 1 */
    int *stop;
    int id, rounds, failures, top_version;
};

static void *decrypt_loop(void *arg)
{
    struct worker *w = arg;
    char value[64];
    struct sp_err err;

    for (w->rounds = 0; !__atomic_load_n(w->stop, __ATOMIC_SEQ_CST) || w->rounds < 200;
         w->rounds++) {
        struct sp_buf enc, out;
        int n = snprintf(value, sizeof(value), "value-%d-%d", w->id, w->rounds), v;

        sp_buf_init(&enc, 0, 0);
        sp_buf_init(&out, 0, 1);
        if (sp_keyring_encrypt(w->kr, AAD, AADLEN, value, (size_t)n, &enc, &err) < 0 ||
            sp_keyring_decrypt(w->kr, AAD, AADLEN, enc.data, enc.len, &out, &err) < 0 ||
            out.len != (size_t)n || memcmp(out.data, value, out.len) != 0)
            w->failures++;
        v = sp_keyring_version_of(enc.data, enc.len);
        if (v > w->top_version)
            w->top_version = v;
        sp_buf_reset(&out);
        if (sp_keyring_decrypt(w->kr, AAD, AADLEN, w->old->data, w->old->len, &out, &err) < 0 ||
            out.len != strlen(CANARY))
            w->failures++;
        (void)sp_keyring_current(w->kr);
        sp_buf_free(&enc);
        sp_buf_free(&out);
    }
    return NULL;
}

static void test_concurrent_decrypt_while_adding_versions(void **state)
{
    struct fx *f = *state;
    struct sp_keyring *kr = open_ok(f->path, NULL);
    struct worker w[4];
    pthread_t t[4];
    int stop = 0;
    struct sp_buf old;
    struct sp_err err;
    int top = 0;

    encrypt(kr, &old);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.kr = kr, .old = &old, .stop = &stop, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, decrypt_loop, &w[i]), 0);
    }
    /* This thread is the admin thread. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sp_keyring_add_version(kr, NULL, &err), 0);
        usleep(2000);
    }
    usleep(50000); /* let the workers use the last version */
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
        assert_true(w[i].rounds >= 200);
        if (w[i].top_version > top)
            top = w[i].top_version;
    }
    assert_int_equal(sp_keyring_current(kr), 11);
    assert_int_equal(top, 11); /* the workers saw the new versions */
    sp_keyring_free(kr);
    sp_buf_free(&old);
}

/* ---- --check-config ---- */

static void test_check_file(void **state)
{
    struct fx *f = *state;
    char p[400], q[400];
    struct sp_err err;
    struct stat st;

    /* Absent, creatable (also through missing directories): fine, and
     * nothing is created. */
    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
    snprintf(p, sizeof(p), "%s/x/y/keyring.json", f->dir);
    assert_int_equal(sp_keyring_check_file(p, &err), 0);
    assert_int_equal(stat(f->path, &st), -1);
    snprintf(q, sizeof(q), "%s/x", f->dir);
    assert_int_equal(stat(q, &st), -1);
    /* Absent below a regular file: cannot be created. */
    snprintf(q, sizeof(q), "%s/plain", f->dir);
    spew(q, "x", 0600);
    snprintf(p, sizeof(p), "%s/plain/keyring.json", f->dir);
    assert_int_equal(sp_keyring_check_file(p, &err), -1);
    assert_int_equal(err.code, SP_E_CONFIG);
    snprintf(p, sizeof(p), "%s/", f->dir);
    assert_int_equal(sp_keyring_check_file(p, &err), -1);
    /* Present and good, plain and wrapped. */
    sp_keyring_free(open_ok(f->path, NULL));
    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
    sp_keyring_free(open_ok(f->path, MASTER));
    assert_int_equal(sp_keyring_check_file(f->path, &err), 0);
    /* The e2e case: {"format":1} with mode 0644. */
    spew(f->path, "{\"format\":1}", 0644);
    assert_int_equal(sp_keyring_check_file(f->path, &err), -1);
    assert_non_null(strstr(err.msg, "0644"));
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(sp_keyring_check_file(f->path, &err), -1);
}

static void test_free_null(void **state)
{
    sp_keyring_free(NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_makes_0600_file_in_0700_dirs),
        T(test_missing_file_without_create_fails),
        T(test_reopen_rotate_and_decrypt_old_versions),
        T(test_retire_drops_the_key),
        T(test_status_json),
        T(test_refuses_group_or_world_accessible_file),
        T(test_refuses_symlink_directory_and_fifo),
        T(test_refuses_corrupted_files),
        T(test_master_key_wraps_the_file),
        T(test_plain_file_is_rewrapped_under_a_master_key),
        T(test_tampered_wrapped_file_is_refused),
        T(test_reload_picks_up_another_handles_changes),
        T(test_automatic_reload_is_rate_limited),
        T(test_reload_keeps_working_keys_when_the_file_goes_bad),
        T(test_two_writers_never_lose_a_version),
        T(test_processes_adding_at_once_get_distinct_versions),
        T(test_ensure_current_adds_only_what_is_missing),
        T(test_stale_temporary_files_are_removed),
        T(test_concurrent_decrypt_while_adding_versions),
        T(test_check_file),
        cmocka_unit_test(test_free_null),
    };
#undef T

    /* Tests set file modes themselves; a restrictive umask must not hide a
     * too-open mode from the code under test, nor a permissive one widen
     * what it creates. */
    umask(022);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
