/* metrics.c - counters, histograms and gauges in Prometheus text format. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

static const int statuses[] = {200, 201, 202, 204, 400, 401, 403, 404, 405,
                               407, 409, 413, 431, 500, 502, 503, 504};
#define NSTATUS (SP_ARRAY_LEN(statuses) + 1) /* + "other" */

static const int64_t buckets_us[] = {500,     1000,    2500,    5000,     10000,
                                     25000,   50000,   100000,  250000,   500000,
                                     1000000, 2500000, 5000000, 10000000, 30000000};
#define NBUCKET (SP_ARRAY_LEN(buckets_us) + 1) /* + +Inf */

struct hist {
    atomic_uint_fast64_t b[NBUCKET];
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
};

#define MAX_GAUGES 32

static struct {
    pthread_mutex_t lock; /* registration only */
    const char *routes[SP_METRICS_MAX_ROUTES];
    int nroutes;
    atomic_uint_fast64_t requests[SP_METRICS_MAX_ROUTES][NSTATUS];
    struct hist durations[SP_METRICS_MAX_ROUTES];
    atomic_uint_fast64_t denials[SP_E__COUNT];
    struct hist store, upstream;
    atomic_uint_fast64_t upstream_conns[2]; /* new, reused */
    const char *gauge_names[MAX_GAUGES];
    int gauge_counter[MAX_GAUGES]; /* rendered as a counter */
    atomic_int_fast64_t gauges[MAX_GAUGES];
    int ngauges;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER};

int sp_metrics_route(const char *name)
{
    int i;

    pthread_mutex_lock(&m.lock);
    for (i = 0; i < m.nroutes; i++)
        if (strcmp(m.routes[i], name) == 0)
            break;
    if (i == m.nroutes) {
        if (m.nroutes == SP_METRICS_MAX_ROUTES)
            i = -1;
        else
            m.routes[m.nroutes++] = name;
    }
    pthread_mutex_unlock(&m.lock);
    return i;
}

static void observe(struct hist *h, int64_t us)
{
    size_t i = 0;

    while (i < SP_ARRAY_LEN(buckets_us) && us > buckets_us[i])
        i++;
    atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(us > 0 ? us : 0), memory_order_relaxed);
}

void sp_metrics_request(int route, int status, int64_t duration_us)
{
    size_t s = 0;

    if (route < 0 || route >= m.nroutes)
        return;
    while (s < SP_ARRAY_LEN(statuses) && statuses[s] != status)
        s++;
    atomic_fetch_add_explicit(&m.requests[route][s], 1, memory_order_relaxed);
    observe(&m.durations[route], duration_us);
}

void sp_metrics_denial(enum sp_err_code code)
{
    if ((unsigned)code < SP_E__COUNT)
        atomic_fetch_add_explicit(&m.denials[code], 1, memory_order_relaxed);
}

void sp_metrics_store_latency(int64_t us)
{
    observe(&m.store, us);
}

void sp_metrics_upstream_latency(int64_t us)
{
    observe(&m.upstream, us);
}

void sp_metrics_upstream_connection(int reused)
{
    atomic_fetch_add_explicit(&m.upstream_conns[reused ? 1 : 0], 1, memory_order_relaxed);
}

/* The slot of a named series, registered on first use (-1 when full). */
static int series(const char *name, int counter)
{
    int i;

    pthread_mutex_lock(&m.lock);
    for (i = 0; i < m.ngauges; i++)
        if (strcmp(m.gauge_names[i], name) == 0)
            break;
    if (i == m.ngauges && m.ngauges < MAX_GAUGES) {
        m.gauge_names[m.ngauges] = name;
        m.gauge_counter[m.ngauges++] = counter;
    }
    pthread_mutex_unlock(&m.lock);
    return i < MAX_GAUGES ? i : -1;
}

void sp_metrics_set_gauge(const char *name, int64_t value)
{
    int i = series(name, 0);

    if (i >= 0)
        atomic_store_explicit(&m.gauges[i], value, memory_order_relaxed);
}

void sp_metrics_add(const char *name, int counter, int64_t delta)
{
    int i = series(name, counter);

    if (i >= 0 && delta)
        atomic_fetch_add_explicit(&m.gauges[i], delta, memory_order_relaxed);
}

static int render_hist(struct sp_buf *out, const char *name, const char *labels, struct hist *h,
                       struct sp_err *err)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < NBUCKET; i++) {
        char le[32];
        cum += atomic_load_explicit(&h->b[i], memory_order_relaxed);
        if (i < SP_ARRAY_LEN(buckets_us))
            snprintf(le, sizeof(le), "%g", (double)buckets_us[i] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        if (sp_buf_printf(out, err, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels,
                          *labels ? "," : "", le, (unsigned long long)cum) < 0)
            return -1;
    }
    /* No labels: no braces (Prometheus accepts both, many parsers only one). */
    return sp_buf_printf(out, err, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name,
                         *labels ? "{" : "", labels, *labels ? "}" : "",
                         (double)atomic_load(&h->sum_us) / 1e6, name, *labels ? "{" : "", labels,
                         *labels ? "}" : "", (unsigned long long)atomic_load(&h->count));
}

int sp_metrics_render(struct sp_buf *out, struct sp_err *err)
{
    int nroutes = m.nroutes, ngauges = m.ngauges;

    if (sp_buf_addstr(out,
                      "# HELP secretproxy_requests_total Requests by route and status.\n"
                      "# TYPE secretproxy_requests_total counter\n",
                      err) < 0)
        return -1;
    for (int r = 0; r < nroutes; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&m.requests[r][s], memory_order_relaxed);
            char st[16];
            if (!v)
                continue;
            if (s < SP_ARRAY_LEN(statuses))
                snprintf(st, sizeof(st), "%d", statuses[s]);
            else
                snprintf(st, sizeof(st), "other");
            if (sp_buf_printf(out, err,
                              "secretproxy_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                              m.routes[r], st, (unsigned long long)v) < 0)
                return -1;
        }
    if (sp_buf_addstr(out,
                      "# HELP secretproxy_request_duration_seconds Request latency by route.\n"
                      "# TYPE secretproxy_request_duration_seconds histogram\n",
                      err) < 0)
        return -1;
    for (int r = 0; r < nroutes; r++) {
        char labels[96];
        if (!atomic_load(&m.durations[r].count))
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\"", m.routes[r]);
        if (render_hist(out, "secretproxy_request_duration_seconds", labels, &m.durations[r], err) <
            0)
            return -1;
    }
    if (sp_buf_addstr(out,
                      "# HELP secretproxy_denials_total Refusals by error code.\n"
                      "# TYPE secretproxy_denials_total counter\n",
                      err) < 0)
        return -1;
    for (int c = 1; c < SP_E__COUNT; c++) {
        uint64_t v = atomic_load_explicit(&m.denials[c], memory_order_relaxed);
        if (v && sp_buf_printf(out, err, "secretproxy_denials_total{code=\"%s\"} %llu\n",
                               sp_err_wire((enum sp_err_code)c), (unsigned long long)v) < 0)
            return -1;
    }
    if (sp_buf_addstr(out,
                      "# HELP secretproxy_store_latency_seconds Redis round-trip latency.\n"
                      "# TYPE secretproxy_store_latency_seconds histogram\n",
                      err) < 0 ||
        render_hist(out, "secretproxy_store_latency_seconds", "", &m.store, err) < 0)
        return -1;
    if (sp_buf_addstr(out,
                      "# HELP secretproxy_upstream_latency_seconds Upstream exchange latency.\n"
                      "# TYPE secretproxy_upstream_latency_seconds histogram\n",
                      err) < 0 ||
        render_hist(out, "secretproxy_upstream_latency_seconds", "", &m.upstream, err) < 0 ||
        sp_buf_printf(out, err,
                      "# HELP secretproxy_upstream_exchanges_total Upstream answers by "
                      "connection: new or reused from the pool.\n"
                      "# TYPE secretproxy_upstream_exchanges_total counter\n"
                      "secretproxy_upstream_exchanges_total{connection=\"new\"} %llu\n"
                      "secretproxy_upstream_exchanges_total{connection=\"reused\"} %llu\n",
                      (unsigned long long)atomic_load(&m.upstream_conns[0]),
                      (unsigned long long)atomic_load(&m.upstream_conns[1])) < 0)
        return -1;
    for (int g = 0; g < ngauges; g++) {
        if (sp_buf_printf(out, err, "# TYPE secretproxy_%s %s\nsecretproxy_%s %lld\n",
                          m.gauge_names[g], m.gauge_counter[g] ? "counter" : "gauge",
                          m.gauge_names[g], (long long)atomic_load(&m.gauges[g])) < 0)
            return -1;
    }
    return 0;
}
