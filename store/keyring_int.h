/*
 * keyring_int.h - what keyring.c (the key ring in memory, its locking and
 * its API) and keyring_file.c (the key ring file: format, checks, atomic
 * writes) share, and nobody else sees. The sp_kr_ prefix marks it.
 */
#ifndef SP_KEYRING_INT_H
#define SP_KEYRING_INT_H

#include "keyring.h"

struct sp_kr_version {
    int version;
    int retired;
    int64_t created_at, retired_at;        /* ms since the epoch; retired_at 0 if unknown */
    unsigned char key[SP_KEYRING_KEY_LEN]; /* all zero once retired */
};

/* A whole key ring: what one file holds. Zero-initialise; sp_kr_ring_free. */
struct sp_kr_ring {
    struct sp_kr_version *v; /* n entries, ascending versions; owned, wiped when freed */
    size_t n;
    int current;
};

#define SP_KR_MAX_ENTRIES 10000

/* Wipe and free r's entries and leave it empty. */
void sp_kr_ring_free(struct sp_kr_ring *r);
/* The entry for version, or NULL; borrowed from r. */
struct sp_kr_version *sp_kr_ring_find(const struct sp_kr_ring *r, int version);

/* Make jansson wipe what it frees, process-wide, once (see keyring_file.c). */
void sp_kr_jansson_init(void);

/*
 * Read and parse the file at path into out (empty). master (32 bytes) may be
 * NULL; a wrapped file then fails. *wrapped says which form the file had.
 * SP_E_NOT_FOUND when the file does not exist, SP_E_CONFIG for every other
 * problem (symbolic link, not a regular file, group/world access, bad JSON,
 * wrong master key), SP_E_INTERNAL when out of memory.
 */
SP_MUSTCHECK int sp_kr_load(const char *path, const unsigned char *master, struct sp_kr_ring *out,
                            int *wrapped, struct sp_err *err);
/* The file text for r, appended to out (a sensitive sp_buf), wrapped with
 * master unless it is NULL. */
SP_MUSTCHECK int sp_kr_encode(const struct sp_kr_ring *r, const unsigned char *master,
                              struct sp_buf *out, struct sp_err *err);

/* The directory part of path, newly allocated into *dir (free()). */
SP_MUSTCHECK int sp_kr_split_path(const char *path, char **dir, struct sp_err *err);
/* mkdir -p, each created directory 0700. */
SP_MUSTCHECK int sp_kr_make_dirs(const char *dir, struct sp_err *err);
/* Open dir and take an exclusive flock on it: *dfd, which the caller closes
 * to release the lock. Every writer of the file holds it. */
SP_MUSTCHECK int sp_kr_lock_dir(const char *dir, int *dfd, struct sp_err *err);
/* Replace path (in dir, whose locked fd is dfd) with data[0..len) atomically
 * and durably: temporary 0600 file, fsync, rename, fsync of the directory. */
SP_MUSTCHECK int sp_kr_write(const char *path, const char *dir, int dfd, const char *data,
                             size_t len, struct sp_err *err);

#endif
