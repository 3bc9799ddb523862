/*
 * upstream_global.c - what the upstream client sets up once per process:
 * libcurl's initialisation with wiping allocators, the system CA bundle's
 * location, and the trusted CA bundle built from it and upstream.ca_file.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "upstream_int.h"

#define CA_MAX_BYTES (16 * 1024 * 1024)

/*
 * libcurl copies URLs, header lines and bodies into its own buffers and
 * frees them without wiping. These allocators make every free (and every
 * move by realloc) overwrite the whole block first. Cost: one memset of
 * each freed block (the 64 KiB read buffer dominates), about 1 us of CPU on
 * a ~37 us small request. OpenSSL's own buffers are not covered.
 */
static void wipe_free(void *p)
{
    if (p) {
        sp_wipe(p, malloc_usable_size(p));
        free(p);
    }
}

static void *wipe_realloc(void *p, size_t n)
{
    size_t have;
    void *q;

    if (!p)
        return malloc(n);
    have = malloc_usable_size(p);
    if (n <= have && n > 0)
        return p;
    q = malloc(n ? n : 1);
    if (!q)
        return NULL;
    memcpy(q, p, have < n ? have : n);
    wipe_free(p);
    return q;
}

static char *wipe_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;
static char *g_system_ca; /* the HTTP library's default CA bundle path */

static void global_init(void)
{
    static const char *const fallback[] = {"/etc/ssl/certs/ca-certificates.crt",
                                           "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"};
    char *path = NULL;
    CURL *e;

    g_init_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc,
                                     wipe_strdup, calloc);
    if (g_init_rc != CURLE_OK)
        return;
    e = curl_easy_init();
    if (e && curl_easy_getinfo(e, CURLINFO_CAINFO, &path) == CURLE_OK && path)
        g_system_ca = strdup(path);
    curl_easy_cleanup(e);
    for (size_t i = 0; !g_system_ca && i < SP_ARRAY_LEN(fallback); i++)
        if (access(fallback[i], R_OK) == 0)
            g_system_ca = strdup(fallback[i]);
}

int up_global_init(struct sp_err *err)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return sp_err_set(err, SP_E_INTERNAL, "HTTP library initialisation failed: %s",
                          curl_easy_strerror(g_init_rc));
    return 0;
}

/* ---- the CA bundle ---- */

/* Append the PEM file at path to b. */
static int read_pem(const char *path, struct sp_buf *b, struct sp_err *err)
{
    size_t start = b->len;
    char chunk[16384];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return sp_err_set(err, SP_E_CONFIG, "CA bundle '%s' cannot be read: %s", path,
                          strerror(errno));
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || sp_buf_add(b, chunk, (size_t)n, err) < 0) {
            if (n < 0)
                sp_err_set(err, SP_E_CONFIG, "CA bundle '%s' cannot be read: %s", path,
                           strerror(errno));
            close(fd);
            return -1;
        }
    }
    close(fd);
    if (!b->data || !strstr(b->data + start, "-----BEGIN CERTIFICATE-----"))
        return sp_err_set(err, SP_E_CONFIG, "CA bundle '%s' holds no PEM certificate", path);
    return 0;
}

/*
 * Hand the bundle to curl as a file when possible: curl caches the trust
 * store it builds from a CA file, per connection pool, while a blob is
 * parsed again for every new TLS connection (~20 ms of CPU for the Debian
 * bundle, stalling the worker's loop) and compared byte by byte at every
 * connection reuse (~15 us). The file is an anonymous memory file reached
 * through /proc/self/fd, so nothing lands on disk; without memfd or /proc
 * the blob is used.
 */
static void ca_publish(struct up_ca *ca)
{
    size_t off = 0;

    ca->fd = memfd_create("secretproxy-ca", MFD_CLOEXEC);
    if (ca->fd < 0)
        return;
    while (off < ca->len) {
        ssize_t n = write(ca->fd, ca->data + off, ca->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    snprintf(ca->path, sizeof(ca->path), "/proc/self/fd/%d", ca->fd);
    if (access(ca->path, R_OK) == 0)
        return;
fail:
    close(ca->fd);
    ca->fd = -1;
    ca->path[0] = '\0';
}

/* System bundle + ca_file as one PEM bundle (NULL when ca_file is unset:
 * the library then loads the system bundle itself, and caches it). */
int up_ca_load(const char *ca_file, struct up_ca **out, struct sp_err *err)
{
    struct sp_buf b;
    struct up_ca *ca;

    *out = NULL;
    if (!ca_file || !ca_file[0])
        return 0;
    sp_buf_init(&b, CA_MAX_BYTES, 0);
    if (g_system_ca && (read_pem(g_system_ca, &b, err) < 0 || sp_buf_add(&b, "\n", 1, err) < 0))
        goto fail;
    if (read_pem(ca_file, &b, err) < 0)
        goto fail;
    ca = malloc(sizeof(*ca) + b.len);
    if (!ca) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    ca->refs = 1;
    ca->len = b.len;
    memcpy(ca->data, b.data, b.len);
    sp_buf_free(&b);
    ca_publish(ca);
    *out = ca;
    return 0;
fail:
    sp_buf_free(&b);
    return -1;
}

struct up_ca *up_ca_ref(struct up_ca *ca)
{
    if (ca)
        ca->refs++;
    return ca;
}

void up_ca_unref(struct up_ca *ca)
{
    if (ca && --ca->refs == 0) {
        if (ca->fd >= 0)
            close(ca->fd);
        free(ca);
    }
}

int up_ca_same(const struct up_ca *a, const struct up_ca *b)
{
    if (!a || !b)
        return a == b;
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}
