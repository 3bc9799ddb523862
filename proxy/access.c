/*
 * access.c - the one access line of a proxied request (forward proxy and
 * POST /v1/fetch): JSON with the caller, destination, decision, code,
 * sizes, timings and the references used by name and scope, written
 * through the request's redactor; for a request that used secrets, the
 * same event (redacted again) goes to its workspace's audit stream.
 */
#include "proxy_int.h"

#include <string.h>

static int append_path(struct sp_buf *b, const char *p, size_t n)
{
    struct sp_text_ref ref;
    size_t at = 0;

    if (!p)
        return 0;
    while (sp_text_scan(p, n, at, SP_TEXT_SCAN_PERCENT, &ref)) {
        size_t keep = ref.kind == SP_TEXT_REF_TOKEN ? (size_t)(ref.key - p) : ref.start + ref.len;
        if (sp_json_escape(b, p + at, keep - at, NULL) < 0)
            return -1;
        if (ref.kind == SP_TEXT_REF_TOKEN && sp_buf_addstr(b, SP_REDACTED, NULL) < 0)
            return -1;
        at = ref.start + ref.len;
    }
    return sp_json_escape(b, p + at, n - at, NULL);
}

void sp_access_log(struct sp_worker *w, const struct sp_access *a)
{
    struct sp_buf b;
    char ts[40];
    const struct sp_key *k = a->res ? sp_resolution_key(a->res) : NULL;
    size_t nrefs = a->res ? sp_resolution_refs(a->res) : 0;
    struct sp_redactor *red = a->res ? sp_resolution_redactor(a->res) : NULL;
    struct sp_log_ctx ctx = {a->rid, red ? sp_redactor_log_hook : NULL, red};
    const struct sp_target *t = a->target;

    sp_buf_init(&b, 0, 0);
    sp_time_format(ts, sizeof(ts), sp_now_ms());
    if (sp_buf_printf(&b, NULL,
                      "{\"ts\":\"%s\",\"type\":\"%s\",\"request_id\":\"%s\",\"method\":\"%s\","
                      "\"host\":\"%s\",\"port\":%d,\"scheme\":\"%s\",\"path\":\"",
                      ts, a->type, a->rid, a->method, t->host, t->port,
                      t->https ? "https" : "http") < 0 ||
        append_path(&b, t->path, t->path_len) < 0 ||
        sp_buf_printf(&b, NULL,
                      "\",\"status\":%d,\"code\":\"%s\",\"decision\":\"%s\",\"bytes_in\":%zu,"
                      "\"bytes_out\":%llu,\"duration_ms\":%.3f,\"store_ms\":%.3f,"
                      "\"upstream_ms\":%.3f",
                      a->status, sp_err_wire(a->code), a->code == SP_E_OK ? "allow" : "deny",
                      a->bytes_in, (unsigned long long)a->bytes_out,
                      (double)(sp_mono_us() - a->t0_us) / 1000.0, (double)a->store_us / 1000.0,
                      (double)a->upstream_us / 1000.0) < 0)
        goto out;
    if (k && sp_buf_printf(&b, NULL, ",\"caller\":{\"key_id\":\"%s\",\"workspace\":\"%s\"}", k->id,
                           k->workspace) < 0)
        goto out;
    if (sp_buf_addstr(&b, ",\"refs\":[", NULL) < 0)
        goto out;
    for (size_t i = 0; i < nrefs; i++) {
        const char *name, *scope;
        if (sp_resolution_ref(a->res, i, &name, &scope) == 0 &&
            sp_buf_printf(&b, NULL, "%s{\"name\":\"%s\",\"scope\":\"%s\"}", i ? "," : "", name,
                          scope) < 0)
            goto out;
    }
    if (sp_buf_addstr(&b, "]}", NULL) < 0)
        goto out;
    if (w->conf->log_access.i)
        sp_log_line(&ctx, b.data, b.len);
    /* Requests that used secrets are audit events of their workspace. */
    if (k && nrefs && w->conf->log_audit_stream_maxlen.i > 0) {
        struct sp_buf clean;
        sp_buf_init(&clean, 0, 0);
        if (red && sp_redactor_redact(red, b.data, b.len, &clean, NULL) == 0)
            sp_store_audit(w->store, k->workspace, clean.data, clean.len,
                           (long)w->conf->log_audit_stream_maxlen.i);
        sp_buf_free(&clean);
    }
out:
    sp_buf_free(&b);
}
