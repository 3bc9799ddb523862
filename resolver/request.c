/*
 * request.c - resolving a whole request: find every reference in every part
 * (path, query, headers, body, extra strings), authenticate the caller and
 * fetch every referenced secret in one store round trip, run the policy
 * checks, substitute each value encoded for where it lands, and build the
 * request's redactor. All or nothing: any failure fails the request and no
 * substituted part survives.
 */
#include "resolver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REFS 256

/* A distinct reference (kind + key) and, once resolved, its value. */
struct uref {
    enum sp_ref_kind kind;
    char *key; /* copy: [A-Za-z0-9_-] only */
    size_t key_len;
    struct sp_secret *secret; /* borrowed from the store's results while substituting */
    char name[129];
    char scope[140];
};

struct part {
    enum sp_text_place place;
    const char *p;
    size_t n;
    struct sp_buf out; /* substituted text when changed */
    int changed;
    int aws; /* must be exactly one reference to an aws secret */
};

struct sp_resolution {
    struct sp_store *s;
    sp_resolve_fn cb;
    void *arg;
    struct sp_resolve_opts opts;
    char host[256];
    char asserted_user[129], asserted_function[129], asserted_app[129], asserted_env[129];

    struct uref refs[MAX_REFS];
    size_t nrefs;
    struct part *parts; /* path, query, headers..., body, extras... */
    size_t cur_part;    /* the part being substituted */
    size_t nparts, first_header, nheaders, body, first_extra, nextra;

    struct sp_key key;
    int have_key;
    struct sp_caller caller;
    struct sp_redactor *redactor;
};

/* ---- collecting references ---- */

static int add_ref(struct sp_resolution *r, const struct sp_text_ref *t, struct sp_err *err)
{
    enum sp_ref_kind kind = t->kind == SP_TEXT_REF_TOKEN ? SP_REF_TOKEN : SP_REF_NAMED;

    for (size_t i = 0; i < r->nrefs; i++)
        if (r->refs[i].kind == kind && r->refs[i].key_len == t->key_len &&
            memcmp(r->refs[i].key, t->key, t->key_len) == 0)
            return 0;
    if (r->nrefs == MAX_REFS)
        return sp_err_set(err, SP_E_BAD_REQUEST, "More than %d distinct references in one request",
                          MAX_REFS);
    r->refs[r->nrefs].kind = kind;
    r->refs[r->nrefs].key = strndup(t->key, t->key_len);
    if (!r->refs[r->nrefs].key)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    r->refs[r->nrefs].key_len = t->key_len;
    r->nrefs++;
    return 0;
}

/* Scan one part. A Basic credential hides its references in base64, so
 * the Authorization place decodes before scanning. */
static int scan_part(struct sp_resolution *r, struct part *pt, struct sp_err *err)
{
    unsigned flags = sp_text_place_flags(pt->place);
    struct sp_text_ref t;
    size_t from = 0;

    if (!pt->n || !sp_text_place_has_ref(pt->place, pt->p, pt->n))
        return 0;
    if (pt->place == SP_TEXT_AUTHORIZATION) {
        /* Substitute with a collecting lookup: it sees every reference,
         * including those inside a Basic credential. */
        return 1;
    }
    while (sp_text_scan(pt->p, pt->n, from, flags, &t)) {
        if (add_ref(r, &t, err) < 0)
            return -1;
        from = t.start + t.len;
    }
    return 0;
}

static int collect_lookup(void *ctx, const struct sp_text_ref *ref, const unsigned char **value,
                          size_t *vlen, struct sp_err *err)
{
    static const unsigned char nothing[1] = {'x'};

    if (add_ref(ctx, ref, err) < 0)
        return -1;
    *value = nothing;
    *vlen = 1;
    return 0;
}

static int collect(struct sp_resolution *r, struct sp_err *err)
{
    for (size_t i = 0; i < r->nparts; i++) {
        int rc = scan_part(r, &r->parts[i], err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            struct sp_buf scratch;
            sp_buf_init(&scratch, 0, 1);
            rc = sp_text_subst(r->parts[i].place, r->parts[i].p, r->parts[i].n, collect_lookup, r,
                               &scratch, err);
            sp_buf_free(&scratch);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- after the store answered ---- */

static struct uref *find_ref(struct sp_resolution *r, const struct sp_text_ref *t)
{
    enum sp_ref_kind kind = t->kind == SP_TEXT_REF_TOKEN ? SP_REF_TOKEN : SP_REF_NAMED;

    for (size_t i = 0; i < r->nrefs; i++)
        if (r->refs[i].kind == kind && r->refs[i].key_len == t->key_len &&
            memcmp(r->refs[i].key, t->key, t->key_len) == 0)
            return &r->refs[i];
    return NULL;
}

static int subst_lookup(void *ctx, const struct sp_text_ref *ref, const unsigned char **value,
                        size_t *vlen, struct sp_err *err)
{
    struct sp_resolution *r = ctx;
    struct uref *u = find_ref(r, ref);

    if (!u || !u->secret)
        return sp_err_set(err, SP_E_INTERNAL, "reference was not resolved");
    /* An aws secret is a key pair as JSON: substituted anywhere but as the
     * access key id of a signature to re-sign, it would send the secret
     * access key upstream. */
    if (u->secret->meta.type == SP_SECRET_AWS && !r->parts[r->cur_part].aws)
        return sp_err_set(err, SP_E_SECRET_TYPE_MISMATCH,
                          "Secret '%s' has type aws: it can only stand as the access key id of "
                          "an AWS SigV4 signature (Credential=$Secret{%s}/...), which the proxy "
                          "signs again",
                          u->name, u->name);
    *value = u->secret->value;
    *vlen = u->secret->value_len;
    return 0;
}

static const char *pick(const char *asserted, const char *bound, const char *dflt)
{
    if (asserted && *asserted)
        return asserted;
    if (bound && *bound)
        return bound;
    return dflt && *dflt ? dflt : NULL;
}

/* The caller's effective context from its key, asserted headers and the
 * configured defaults. */
static int settle_caller(struct sp_resolution *r, const struct sp_key *k, struct sp_err *err)
{
    int asserting =
        r->asserted_user[0] || r->asserted_function[0] || r->asserted_app[0] || r->asserted_env[0];

    r->key = *k;
    r->have_key = 1;
    unsigned missing = r->opts.required_perms & ~k->perms;

    if (missing)
        return sp_err_set(err, SP_E_FORBIDDEN, "This API key lacks the '%s' permission",
                          sp_perm_name(missing & (0u - missing)));
    if (asserting && !(k->perms & SP_PERM_ASSERT_CONTEXT))
        return sp_err_set(err, SP_E_FORBIDDEN,
                          "Secretproxy-App/Env/User/Function need the assert_context permission");
    memset(&r->caller, 0, sizeof(r->caller));
    r->caller.workspace = r->key.workspace;
    r->caller.key_id = r->key.id;
    r->caller.group = r->key.group[0] ? r->key.group : NULL;
    r->caller.user = pick(r->asserted_user, r->key.user, NULL);
    r->caller.function = pick(r->asserted_function, r->key.function, NULL);
    r->caller.app = pick(r->asserted_app, r->key.app, r->opts.default_app);
    r->caller.env = pick(r->asserted_env, r->key.env, r->opts.default_env);
    return 0;
}

/* An extra that re-signs SigV4 must name a secret of type aws. */
static int check_aws_extras(struct sp_resolution *r, struct sp_err *err)
{
    for (size_t i = r->first_extra; i < r->first_extra + r->nextra; i++) {
        struct sp_text_ref t;
        const struct uref *u;
        if (!r->parts[i].aws || !sp_text_scan(r->parts[i].p, r->parts[i].n, 0, 0, &t))
            continue;
        u = find_ref(r, &t);
        if (u && u->secret && u->secret->meta.type != SP_SECRET_AWS)
            return sp_err_set(err, SP_E_SECRET_TYPE_MISMATCH,
                              "Secret '%s' has type %s: re-signing an AWS SigV4 request needs a "
                              "secret of type aws holding {\"access_key_id\", "
                              "\"secret_access_key\", \"session_token\"?}",
                              u->name, sp_secret_type_name(u->secret->meta.type));
    }
    return 0;
}

static int check_and_substitute(struct sp_resolution *r, struct sp_ref_result *results,
                                size_t count, struct sp_err *err)
{
    for (size_t i = 0; i < count; i++) {
        struct uref *u = &r->refs[i];
        if (!results[i].secret) {
            *err = results[i].err;
            return -1;
        }
        u->secret = results[i].secret;
        snprintf(u->name, sizeof(u->name), "%s", u->secret->meta.name);
        snprintf(u->scope, sizeof(u->scope), "%s", u->secret->meta.scope);
        if (sp_resolver_check(&u->secret->meta, &r->caller, r->host[0] ? r->host : NULL,
                              r->opts.empty_hosts_any, err) < 0)
            return -1;
        if (sp_redactor_add(r->redactor, u->secret->value, u->secret->value_len, err) < 0)
            return -1;
    }
    if (check_aws_extras(r, err) < 0)
        return -1;
    for (size_t i = 0; i < r->nparts; i++) {
        struct part *pt = &r->parts[i];
        int n;
        if (!pt->n || !sp_text_place_has_ref(pt->place, pt->p, pt->n))
            continue;
        sp_buf_init(&pt->out, i == r->body ? r->opts.max_body : 0, 1);
        r->cur_part = i;
        n = sp_text_subst(pt->place, pt->p, pt->n, subst_lookup, r, &pt->out, err);
        if (n < 0)
            return -1;
        pt->changed = n > 0;
    }
    return 0;
}

static void on_resolved(const struct sp_key *key, struct sp_ref_result *results, size_t count,
                        const struct sp_err *err, void *arg)
{
    struct sp_resolution *r = arg;
    struct sp_err e;

    if (err) {
        r->cb(r, err, r->arg);
        return;
    }
    if (settle_caller(r, key, &e) < 0 || check_and_substitute(r, results, count, &e) < 0) {
        /* Nothing half-substituted survives a failure. */
        for (size_t i = 0; i < r->nparts; i++) {
            sp_buf_free(&r->parts[i].out);
            r->parts[i].changed = 0;
        }
        for (size_t i = 0; i < r->nrefs; i++)
            r->refs[i].secret = NULL;
        r->cb(r, &e, r->arg);
        return;
    }
    /* The store frees the secrets after this returns: drop the pointers. */
    for (size_t i = 0; i < r->nrefs; i++)
        r->refs[i].secret = NULL;
    r->cb(r, NULL, r->arg);
}

/* ---- entry ---- */

static void copy_asserted(char *dst, size_t sz, const char *src)
{
    snprintf(dst, sz, "%s", src ? src : "");
}

static enum sp_text_place body_place(const char *ct)
{
    size_t n;

    if (!ct)
        return SP_TEXT_BODY_RAW;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; ");
    if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
        (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0))
        return SP_TEXT_BODY_JSON;
    if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return SP_TEXT_BODY_FORM;
    return SP_TEXT_BODY_RAW;
}

static int build_parts(struct sp_resolution *r, const struct sp_rrequest *q, struct sp_err *err)
{
    size_t n = 0;

    r->nparts = 3 + q->nheaders + q->nextra;
    r->parts = calloc(r->nparts, sizeof(*r->parts));
    if (!r->parts)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    r->parts[n++] = (struct part){SP_TEXT_PATH, q->path, q->path_len, {0}, 0, 0};
    r->parts[n++] = (struct part){SP_TEXT_QUERY, q->query, q->query_len, {0}, 0, 0};
    r->first_header = n;
    r->nheaders = q->nheaders;
    for (size_t i = 0; i < q->nheaders; i++) {
        const struct sp_rheader *h = &q->headers[i];
        enum sp_text_place pl = h->name_len == 13 && strncasecmp(h->name, "Authorization", 13) == 0
                                    ? SP_TEXT_AUTHORIZATION
                                    : SP_TEXT_HEADER;
        r->parts[n++] = (struct part){pl, h->value, h->value_len, {0}, 0, 0};
    }
    r->body = n;
    r->parts[n++] = (struct part){body_place(q->content_type), q->body, q->body_len, {0}, 0, 0};
    r->first_extra = n;
    r->nextra = q->nextra;
    for (size_t i = 0; i < q->nextra; i++) {
        int aws = q->extra_aws && q->extra_aws[i];
        struct sp_text_ref t;
        if (aws && !(sp_text_scan(q->extra[i], q->extra_len[i], 0, 0, &t) && t.start == 0 &&
                     t.len == q->extra_len[i]))
            return sp_err_set(err, SP_E_BAD_REQUEST,
                              "The access key id of a SigV4 signature must be exactly one "
                              "secret reference");
        r->parts[n++] = (struct part){SP_TEXT_PLAIN, q->extra[i], q->extra_len[i], {0}, 0, aws};
    }
    return 0;
}

int sp_resolver_run(struct sp_store *s, const char *key_token, size_t key_token_len,
                    const struct sp_caller *asserted, const struct sp_rrequest *q,
                    const struct sp_resolve_opts *opts, sp_resolve_fn cb, void *arg,
                    struct sp_err *err)
{
    struct sp_resolution *r = calloc(1, sizeof(*r));
    struct sp_ref refs[MAX_REFS];
    struct sp_caller ctx;

    if (!r)
        return sp_err_set(err, SP_E_INTERNAL, "out of memory");
    r->s = s;
    r->cb = cb;
    r->arg = arg;
    r->opts = *opts;
    snprintf(r->host, sizeof(r->host), "%s", q->host ? q->host : "");
    if (asserted) {
        copy_asserted(r->asserted_user, sizeof(r->asserted_user), asserted->user);
        copy_asserted(r->asserted_function, sizeof(r->asserted_function), asserted->function);
        copy_asserted(r->asserted_app, sizeof(r->asserted_app), asserted->app);
        copy_asserted(r->asserted_env, sizeof(r->asserted_env), asserted->env);
    }
    r->redactor = sp_redactor_new();
    if (!r->redactor) {
        sp_err_set(err, SP_E_INTERNAL, "out of memory");
        goto fail;
    }
    if (build_parts(r, q, err) < 0 || collect(r, err) < 0)
        goto fail;
    for (size_t i = 0; i < r->nrefs; i++) {
        refs[i].kind = r->refs[i].kind;
        refs[i].text = r->refs[i].key;
        refs[i].len = r->refs[i].key_len;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.user = r->asserted_user[0] ? r->asserted_user : NULL;
    ctx.function = r->asserted_function[0] ? r->asserted_function : NULL;
    if (sp_store_resolve(s, key_token, key_token_len, &ctx, refs, r->nrefs, on_resolved, r, err) <
        0)
        goto fail;
    return 0;
fail:
    sp_resolution_free(r);
    return -1;
}

void sp_resolution_free(struct sp_resolution *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrefs; i++)
        sp_free_wiped(r->refs[i].key, r->refs[i].key_len);
    for (size_t i = 0; r->parts && i < r->nparts; i++)
        sp_buf_free(&r->parts[i].out);
    free(r->parts);
    sp_redactor_free(r->redactor);
    sp_wipe(r, sizeof(*r));
    free(r);
}

/* ---- results ---- */

static const struct sp_buf *part_out(const struct sp_resolution *r, size_t i)
{
    return i < r->nparts && r->parts[i].changed ? &r->parts[i].out : NULL;
}

const struct sp_buf *sp_resolution_path(const struct sp_resolution *r)
{
    return part_out(r, 0);
}

const struct sp_buf *sp_resolution_query(const struct sp_resolution *r)
{
    return part_out(r, 1);
}

const struct sp_buf *sp_resolution_header(const struct sp_resolution *r, size_t i)
{
    return i < r->nheaders ? part_out(r, r->first_header + i) : NULL;
}

const struct sp_buf *sp_resolution_body(const struct sp_resolution *r)
{
    return part_out(r, r->body);
}

const struct sp_buf *sp_resolution_extra(const struct sp_resolution *r, size_t i)
{
    return i < r->nextra ? part_out(r, r->first_extra + i) : NULL;
}

const struct sp_key *sp_resolution_key(const struct sp_resolution *r)
{
    return r->have_key ? &r->key : NULL;
}

const struct sp_caller *sp_resolution_caller(const struct sp_resolution *r)
{
    return r->have_key ? &r->caller : NULL;
}

struct sp_redactor *sp_resolution_redactor(struct sp_resolution *r)
{
    return r->redactor;
}

size_t sp_resolution_refs(const struct sp_resolution *r)
{
    return r->nrefs;
}

int sp_resolution_ref(const struct sp_resolution *r, size_t i, const char **name,
                      const char **scope)
{
    if (i >= r->nrefs)
        return -1;
    /* Before resolution (or for a failed one) only the reference itself is
     * known: a named reference's key, never a token. */
    *name = r->refs[i].name[0]                ? r->refs[i].name
            : r->refs[i].kind == SP_REF_NAMED ? r->refs[i].key
                                              : "$secret";
    *scope = r->refs[i].scope[0] ? r->refs[i].scope : "";
    return 0;
}
