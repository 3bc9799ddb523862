/*
 * keyring_file.c - the key ring file: its JSON format, plain or wrapped by a
 * master key, the checks before it is trusted (a regular file, not a symbolic
 * link, no group or world access), atomic and durable rewrites, the directory
 * lock that serialises writers across processes, and --check-config.
 *
 * Plain:
 *   {"format":1,"current":2,"versions":[
 *     {"version":1,"created_at":"<RFC 3339>","retired":true,"retired_at":"..."},
 *     {"version":2,"created_at":"<RFC 3339>","key":"<base64 of 32 bytes>"}]}
 * Wrapped by keyring.master_key:
 *   {"format":1,"wrapped":"<base64(IV || ciphertext || tag)>"}
 * where the ciphertext is the plain form sealed by sp_crypto_seal under the
 * master key with SP_KEYRING_WRAP_AAD as additional data.
 *
 * The file's text is only held in sensitive sp_bufs; jansson's copies of it
 * are scrubbed before they are freed, and jansson's free wipes as well.
 */
#include "keyring_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT 1
/* Far more than SP_KR_MAX_ENTRIES versions need, wrapped or not. */
#define FILE_MAX ((size_t)4 << 20)
#define KEY_B64_MAX 48
#define TMP_INFIX ".tmp-"

/* ---- jansson and key material ---- */

/*
 * jansson copies every string it parses or is given (its lexer keeps more
 * copies) and frees them with free(). This free wipes first, so the key
 * strings of the file do not stay behind in freed memory. It is installed for
 * the whole process; malloc_usable_size makes it correct for blocks that
 * were allocated before it was installed.
 */
static void wipe_free(void *p)
{
    if (p)
        sp_free_wiped(p, malloc_usable_size(p));
}

static void install_jansson_wipe(void)
{
    json_set_alloc_funcs(malloc, wipe_free);
}

static pthread_once_t jansson_once = PTHREAD_ONCE_INIT;

void sp_kr_jansson_init(void)
{
    (void)pthread_once(&jansson_once, install_jansson_wipe);
}

/* Wipe every string in j, before json_decref: a second line of defence in
 * case someone replaces jansson's free function. */
static void scrub(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_string(j)) {
        sp_wipe((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            scrub(v);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            scrub(v);
        }
    }
}

static void scrub_decref(json_t *j)
{
    if (j) {
        scrub(j);
        json_decref(j);
    }
}

void sp_kr_ring_free(struct sp_kr_ring *r)
{
    sp_free_wiped(r->v, r->n * sizeof(*r->v));
    r->v = NULL;
    r->n = 0;
    r->current = 0;
}

struct sp_kr_version *sp_kr_ring_find(const struct sp_kr_ring *r, int version)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].version == version)
            return &r->v[mid];
        if (r->v[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- JSON ---- */

static int int_field(json_t *obj, const char *name, long long min, long long max, long long *out)
{
    json_t *j = json_object_get(obj, name);

    if (!json_is_integer(j) || json_integer_value(j) < min || json_integer_value(j) > max)
        return -1;
    *out = json_integer_value(j);
    return 0;
}

static int time_field(json_t *obj, const char *name, int64_t *out)
{
    const char *s = json_string_value(json_object_get(obj, name));

    return s && sp_time_parse(s, out) == 0 ? 0 : -1;
}

static int parse_key(json_t *j, unsigned char *key)
{
    unsigned char tmp[KEY_B64_MAX];
    const char *s = json_string_value(j);
    size_t n = 0;
    int ok;

    ok = s && json_string_length(j) <= KEY_B64_MAX &&
         sp_base64_decode(tmp, &n, s, json_string_length(j)) == 0 && n == SP_KEYRING_KEY_LEN;
    if (ok)
        memcpy(key, tmp, SP_KEYRING_KEY_LEN);
    sp_wipe(tmp, sizeof(tmp));
    return ok ? 0 : -1;
}

static int parse_version(json_t *j, size_t idx, struct sp_kr_version *v, const char *path,
                         struct sp_err *err)
{
    json_t *retired = json_object_get(j, "retired"), *key = json_object_get(j, "key");
    long long ver;

    if (!json_is_object(j) || int_field(j, "version", 1, SP_KEYRING_MAX_VERSION, &ver) < 0 ||
        time_field(j, "created_at", &v->created_at) < 0)
        return sp_err_set(err, SP_E_CONFIG,
                          "%s: versions[%zu] needs \"version\" (1-%d) and \"created_at\" "
                          "(RFC 3339)",
                          path, idx, SP_KEYRING_MAX_VERSION);
    v->version = (int)ver;
    if (retired && !json_is_boolean(retired))
        return sp_err_set(err, SP_E_CONFIG, "%s: version %d: \"retired\" must be true or false",
                          path, v->version);
    v->retired = json_is_true(retired);
    if (v->retired) {
        if (key)
            return sp_err_set(err, SP_E_CONFIG, "%s: version %d is retired but still has a key",
                              path, v->version);
        if (json_object_get(j, "retired_at") && time_field(j, "retired_at", &v->retired_at) < 0)
            return sp_err_set(err, SP_E_CONFIG, "%s: version %d: bad \"retired_at\"", path,
                              v->version);
        return 0;
    }
    if (parse_key(key, v->key) < 0)
        return sp_err_set(err, SP_E_CONFIG,
                          "%s: version %d needs \"key\": base64 of exactly %d bytes", path,
                          v->version, SP_KEYRING_KEY_LEN);
    return 0;
}

static int cmp_version(const void *a, const void *b)
{
    const struct sp_kr_version *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

/* Fill out (empty) from a plain key ring object; out is empty on failure. */
static int parse_ring(json_t *root, const char *path, struct sp_kr_ring *out, struct sp_err *err)
{
    json_t *vers = json_object_get(root, "versions");
    const struct sp_kr_version *cv;
    long long fmt, cur;
    size_t i, n = json_array_size(vers);

    if (int_field(root, "format", FORMAT, FORMAT, &fmt) < 0)
        return sp_err_set(err, SP_E_CONFIG, "%s: \"format\" must be %d", path, FORMAT);
    if (int_field(root, "current", 1, SP_KEYRING_MAX_VERSION, &cur) < 0)
        return sp_err_set(err, SP_E_CONFIG, "%s: \"current\" must be a version number", path);
    if (!json_is_array(vers) || n == 0 || n > SP_KR_MAX_ENTRIES)
        return sp_err_set(err, SP_E_CONFIG, "%s: \"versions\" must be an array of 1-%d entries",
                          path, SP_KR_MAX_ENTRIES);
    out->v = calloc(n, sizeof(*out->v));
    if (!out->v)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    out->n = n;
    for (i = 0; i < n; i++)
        if (parse_version(json_array_get(vers, i), i, &out->v[i], path, err) < 0)
            goto fail;
    qsort(out->v, n, sizeof(*out->v), cmp_version);
    for (i = 1; i < n; i++)
        if (out->v[i].version == out->v[i - 1].version) {
            sp_err_set(err, SP_E_CONFIG, "%s: version %d is listed twice", path, out->v[i].version);
            goto fail;
        }
    cv = sp_kr_ring_find(out, (int)cur);
    if (!cv || cv->retired) {
        sp_err_set(err, SP_E_CONFIG, "%s: \"current\" (%lld) must name a version with a key", path,
                   cur);
        goto fail;
    }
    out->current = (int)cur;
    return 0;
fail:
    sp_kr_ring_free(out);
    return -1;
}

/* Parse text as a JSON object. jansson's error text can quote the file, so
 * only the position goes into the message. */
static json_t *load_json(const char *text, size_t len, const char *path, struct sp_err *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!j)
        sp_err_set(err, SP_E_CONFIG, "%s is not valid JSON (line %d, column %d)", path, jerr.line,
                   jerr.column);
    else if (!json_is_object(j)) {
        scrub_decref(j);
        j = NULL;
        sp_err_set(err, SP_E_CONFIG, "%s: a key ring is a JSON object", path);
    }
    sp_wipe(&jerr, sizeof(jerr));
    return j;
}

/* The outer shape of a wrapped file, which is all that can be checked
 * without the master key. */
static int check_wrapped(json_t *root, const char *path, struct sp_err *err)
{
    json_t *w = json_object_get(root, "wrapped");
    long long fmt;

    if (int_field(root, "format", FORMAT, FORMAT, &fmt) < 0 || !json_is_string(w) ||
        json_object_size(root) != 2 ||
        json_string_length(w) < sp_base64_enc_len(SP_KEYRING_IV_LEN + SP_KEYRING_TAG_LEN + 2))
        return sp_err_set(err, SP_E_CONFIG,
                          "%s: a wrapped key ring is {\"format\":%d,\"wrapped\":\"<base64>\"}",
                          path, FORMAT);
    return 0;
}

/* Decode the file's text into out (empty); *wrapped tells which form it had.
 * master may be NULL. */
static int decode_text(const char *path, const unsigned char *master, const char *text, size_t len,
                       struct sp_kr_ring *out, int *wrapped, struct sp_err *err)
{
    json_t *root, *inner = NULL, *w;
    struct sp_buf plain;
    struct sp_err e;
    int rc = -1;

    sp_buf_init(&plain, FILE_MAX, 1);
    root = load_json(text, len, path, err);
    if (!root)
        return -1;
    w = json_object_get(root, "wrapped");
    *wrapped = w != NULL;
    if (!w) {
        rc = parse_ring(root, path, out, err);
        goto done;
    }
    if (check_wrapped(root, path, err) < 0)
        goto done;
    if (!master) {
        sp_err_set(err, SP_E_CONFIG,
                   "%s is wrapped by a master key: set keyring.master_key to open it", path);
        goto done;
    }
    if (sp_crypto_open(master, SP_KEYRING_WRAP_AAD, strlen(SP_KEYRING_WRAP_AAD),
                       json_string_value(w), json_string_length(w), &plain, &e) < 0) {
        sp_err_set(err, SP_E_CONFIG,
                   "%s: cannot unwrap the key ring: wrong keyring.master_key or a damaged file",
                   path);
        goto done;
    }
    inner = load_json(plain.data, plain.len, path, err);
    if (!inner)
        goto done;
    if (json_object_get(inner, "wrapped"))
        sp_err_set(err, SP_E_CONFIG, "%s: a wrapped key ring wraps another one", path);
    else
        rc = parse_ring(inner, path, out, err);
done:
    scrub_decref(inner);
    scrub_decref(root);
    sp_buf_free(&plain);
    return rc;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    return sp_buf_add(data, buf, size, NULL);
}

static json_t *version_json(const struct sp_kr_version *v)
{
    char when[40], b64[SP_KEYRING_KEY_LEN * 2];
    json_t *o = json_object();
    int bad;

    sp_time_format(when, sizeof(when), v->created_at);
    bad = !o || json_object_set_new(o, "version", json_integer(v->version)) < 0 ||
          json_object_set_new(o, "created_at", json_string(when)) < 0;
    if (!bad && v->retired) {
        bad = json_object_set_new(o, "retired", json_true()) < 0;
        if (!bad && v->retired_at) {
            sp_time_format(when, sizeof(when), v->retired_at);
            bad = json_object_set_new(o, "retired_at", json_string(when)) < 0;
        }
    } else if (!bad) {
        sp_base64_encode(b64, v->key, SP_KEYRING_KEY_LEN);
        bad = json_object_set_new(o, "key", json_string(b64)) < 0;
        sp_wipe(b64, sizeof(b64));
    }
    if (bad) {
        scrub_decref(o);
        return NULL;
    }
    return o;
}

/* The file's text for r into out (a sensitive buffer), wrapped when master
 * is not NULL. json_dump_callback writes straight into our buffer, so no
 * unwiped copy of the text is left anywhere. */
int sp_kr_encode(const struct sp_kr_ring *r, const unsigned char *master, struct sp_buf *out,
                 struct sp_err *err)
{
    json_t *root = json_object(), *arr = json_array();
    struct sp_buf plain;
    int rc = -1;

    sp_buf_init(&plain, FILE_MAX, 1);
    if (!root || !arr) {
        json_decref(arr);
        goto oom;
    }
    /* set_new takes arr even when it fails. */
    if (json_object_set_new(root, "format", json_integer(FORMAT)) < 0 ||
        json_object_set_new(root, "current", json_integer(r->current)) < 0 ||
        json_object_set_new(root, "versions", arr) < 0)
        goto oom;
    for (size_t i = 0; i < r->n; i++)
        if (json_array_append_new(arr, version_json(&r->v[i])) < 0)
            goto oom;
    if (json_dump_callback(root, dump_cb, &plain, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
        sp_buf_add(&plain, "\n", 1, NULL) < 0)
        goto oom;
    if (!master)
        rc = sp_buf_add(out, plain.data, plain.len, err);
    else if (sp_buf_printf(out, err, "{\"format\":%d,\"wrapped\":\"", FORMAT) == 0 &&
             sp_crypto_seal(master, SP_KEYRING_WRAP_AAD, strlen(SP_KEYRING_WRAP_AAD), plain.data,
                            plain.len, out, err) == 0)
        rc = sp_buf_addstr(out, "\"}\n", err);
    goto done;
oom:
    sp_err_set(err, SP_E_INTERNAL, "out of memory (or key ring too large) writing the key ring");
done:
    scrub_decref(root);
    sp_buf_free(&plain);
    return rc;
}

/* ---- the file ---- */

/*
 * Read path into out (initialised here as a sensitive buffer; the caller
 * frees it). Only a regular file that group and others cannot access is
 * read. SP_E_NOT_FOUND when it does not exist, SP_E_CONFIG otherwise.
 */
static int read_file(const char *path, struct sp_buf *out, struct sp_err *err)
{
    struct stat st;
    ssize_t n;
    int fd;

    sp_buf_init(out, FILE_MAX + 1, 1);
    /* O_NOFOLLOW refuses a symbolic link; O_NONBLOCK keeps a FIFO from
     * blocking the open so that fstat can refuse it. */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return sp_err_set(err, SP_E_NOT_FOUND, "%s does not exist", path);
    if (fd < 0 && errno == ELOOP)
        return sp_err_set(err, SP_E_CONFIG, "%s is a symbolic link: refused (name the file itself)",
                          path);
    if (fd < 0)
        return sp_err_set(err, SP_E_CONFIG, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        sp_err_set(err, SP_E_CONFIG, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        sp_err_set(err, SP_E_CONFIG, "%s is not a regular file", path);
        goto fail;
    }
    if (st.st_mode & 077) {
        sp_err_set(err, SP_E_CONFIG,
                   "%s has mode %04o: a key ring must not be accessible by group or others "
                   "(chmod 600 it)",
                   path, (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    while (out->len <= FILE_MAX) {
        size_t want = FILE_MAX + 1 - out->len;
        if (want > 65536)
            want = 65536;
        if (sp_buf_reserve(out, want, err) < 0)
            goto fail;
        n = read(fd, out->data + out->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sp_err_set(err, SP_E_CONFIG, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
        out->data[out->len] = '\0';
    }
    if (out->len > FILE_MAX) {
        sp_err_set(err, SP_E_CONFIG, "%s is larger than %zu bytes", path, FILE_MAX);
        goto fail;
    }
    close(fd);
    return 0;
fail:
    close(fd);
    return -1;
}

int sp_kr_load(const char *path, const unsigned char *master, struct sp_kr_ring *out, int *wrapped,
               struct sp_err *err)
{
    struct sp_buf text;
    int rc = -1;

    if (read_file(path, &text, err) == 0)
        rc = decode_text(path, master, text.data, text.len, out, wrapped, err);
    sp_buf_free(&text);
    return rc;
}

/* The directory part of path ("." or "/" when that is all), newly allocated. */
int sp_kr_split_path(const char *path, char **dir, struct sp_err *err)
{
    const char *slash = strrchr(path, '/');

    if (!*path || (slash && !slash[1]))
        return sp_err_set(err, SP_E_CONFIG, "key ring path '%s' does not name a file", path);
    if (!slash)
        *dir = strdup(".");
    else if (slash == path)
        *dir = strdup("/");
    else
        *dir = strndup(path, (size_t)(slash - path));
    return *dir ? 0 : sp_err_set(err, SP_E_INTERNAL, "out of memory");
}

/* mkdir -p with mode 0700 for each directory created. */
int sp_kr_make_dirs(const char *dir, struct sp_err *err)
{
    char *p = strdup(dir);
    struct stat st;
    int rc = -1;

    if (!p)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            sp_err_set(err, SP_E_CONFIG, "cannot create directory %s: %s", p, strerror(errno));
            goto out;
        }
        *s = c;
        if (!c)
            break;
    }
    if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sp_err_set(err, SP_E_CONFIG, "%s is not a directory", p);
        goto out;
    }
    rc = 0;
out:
    free(p);
    return rc;
}

/* Open and flock the key ring's directory; *dfd also serves to fsync it. */
int sp_kr_lock_dir(const char *dir, int *dfd, struct sp_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return sp_err_set(err, SP_E_CONFIG, "cannot open directory %s: %s", dir, strerror(errno));
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            sp_err_set(err, SP_E_CONFIG, "cannot lock directory %s: %s", dir, strerror(errno));
            close(fd);
            return -1;
        }
    }
    *dfd = fd;
    return 0;
}

/* Remove temporary files that a killed writer left (they may hold keys).
 * Every writer holds the directory's flock, as the caller does now, so none
 * of them is in use. */
static void remove_stale_tmp(const char *dir, int dfd, const char *base)
{
    size_t blen = strlen(base);
    struct dirent *de;
    DIR *d;
    int fd = dup(dfd);

    if (fd < 0 || !(d = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (n[0] == '.' && strncmp(n + 1, base, blen) == 0 &&
            strncmp(n + 1 + blen, TMP_INFIX, strlen(TMP_INFIX)) == 0 && unlinkat(dfd, n, 0) == 0)
            sp_log(SP_LOG_WARN, NULL, "removed a stale temporary key ring file in %s", dir);
    }
    closedir(d);
}

/* Replace the file with data: a 0600 temporary file in the same directory,
 * fsync, rename over the file, fsync the directory. When only that last
 * fsync fails the new file is in place but may not survive a crash; the
 * caller reports the error and keeps its old ring, and the next change or
 * reload reads the file again. */
int sp_kr_write(const char *path, const char *dir, int dfd, const char *data, size_t len,
                struct sp_err *err)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t tlen = strlen(dir) + strlen(base) + 16, off = 0;
    char *tmp = malloc(tlen);
    int fd = -1;

    if (len > FILE_MAX) {
        free(tmp);
        return sp_err_set(err, SP_E_CONFIG, "the key ring would exceed %zu bytes", FILE_MAX);
    }
    if (!tmp)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    remove_stale_tmp(dir, dfd, base);
    (void)snprintf(tmp, tlen, "%s/.%s" TMP_INFIX "XXXXXX", dir, base); /* fits by tlen */
    fd = mkostemp(tmp, O_CLOEXEC);                                     /* 0600 */
    if (fd < 0) {
        sp_err_set(err, SP_E_CONFIG, "cannot create a file in %s: %s", dir, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, 0600) < 0)
        goto io_fail;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto io_fail;
        off += (size_t)n;
    }
    if (fsync(fd) < 0)
        goto io_fail;
    if (close(fd) < 0) {
        fd = -1;
        goto io_fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto io_fail;
    free(tmp);
    if (fsync(dfd) < 0)
        return sp_err_set(err, SP_E_CONFIG, "cannot sync directory %s: %s", dir, strerror(errno));
    return 0;
io_fail:
    sp_err_set(err, SP_E_CONFIG, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    (void)unlink(tmp);
    free(tmp);
    return -1;
}

/* An absent file can be created when its nearest existing ancestor is a
 * directory we may write. */
static int check_creatable(const char *dir, const char *path, struct sp_err *err)
{
    char *p = strdup(dir), *s;
    struct stat st;
    int rc = -1;

    while (p && stat(p, &st) < 0) {
        if (errno != ENOENT) {
            sp_err_set(err, SP_E_CONFIG, "cannot create %s: %s: %s", path, p, strerror(errno));
            goto out;
        }
        s = strrchr(p, '/');
        if (!s && strcmp(p, ".") == 0) {
            sp_err_set(err, SP_E_CONFIG, "cannot create %s: the working directory is gone", path);
            goto out;
        }
        if (s == p)
            s[1] = '\0';
        else if (s)
            *s = '\0';
        else {
            free(p);
            p = strdup(".");
        }
    }
    if (!p)
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
    else if (!S_ISDIR(st.st_mode))
        sp_err_set(err, SP_E_CONFIG, "cannot create %s: %s is not a directory", path, p);
    else if (access(p, W_OK | X_OK) < 0)
        sp_err_set(err, SP_E_CONFIG, "cannot create %s: directory %s is not writable", path, p);
    else
        rc = 0;
out:
    free(p);
    return rc;
}

int sp_keyring_check_file(const char *path, struct sp_err *err)
{
    struct sp_kr_ring r = {0};
    struct sp_buf text;
    struct sp_err local;
    json_t *root = NULL;
    char *dir = NULL;
    int rc = -1;

    if (!err)
        err = &local;
    sp_kr_jansson_init();
    if (!path)
        return sp_err_set(err, SP_E_CONFIG, "no key ring file configured");
    if (sp_kr_split_path(path, &dir, err) < 0 || !dir)
        return -1;
    if (read_file(path, &text, err) < 0) {
        if (err->code == SP_E_NOT_FOUND)
            rc = check_creatable(dir, path, err);
        goto out;
    }
    root = load_json(text.data, text.len, path, err);
    if (root)
        rc = json_object_get(root, "wrapped") ? check_wrapped(root, path, err)
                                              : parse_ring(root, path, &r, err);
out:
    scrub_decref(root);
    sp_kr_ring_free(&r);
    sp_buf_free(&text);
    free(dir);
    return rc;
}
