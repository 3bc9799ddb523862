/*
 * metrics.h - process-wide counters and histograms, rendered as Prometheus
 * text on /metrics. Updates are relaxed atomics: any thread, no locks.
 * Labels come from fixed tables (route names, error codes), never from
 * request data, so no secret can become a label.
 */
#ifndef SP_PROXY_METRICS_H
#define SP_PROXY_METRICS_H

#include <stdint.h>

#include "sp.h"

#define SP_METRICS_MAX_ROUTES 32

/* Register a route name once at start (index returned, -1 if full). */
int sp_metrics_route(const char *name);
/* One finished request on route (index) with HTTP status and duration. */
void sp_metrics_request(int route, int status, int64_t duration_us);
/* A refusal, counted by error code. */
void sp_metrics_denial(enum sp_err_code code);
/* One store round trip's latency. */
void sp_metrics_store_latency(int64_t us);
/* One upstream exchange's latency (request sent to answer complete). */
void sp_metrics_upstream_latency(int64_t us);
/* An upstream answer's head arrived over a new or a pooled connection. */
void sp_metrics_upstream_connection(int reused);
/* Gauges set by whoever knows them. */
void sp_metrics_set_gauge(const char *name, int64_t value);
/* Add delta to a process-wide series that several threads feed: a counter
 * (name ends in _total) or a gauge summed over workers. name must be a
 * string literal (kept, never copied). */
void sp_metrics_add(const char *name, int counter, int64_t delta);

/* Render everything in Prometheus text format into out. */
SP_MUSTCHECK int sp_metrics_render(struct sp_buf *out, struct sp_err *err);

#endif
