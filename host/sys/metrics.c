/* metrics.c - the host's counters as Prometheus text (GET /metrics). */
#include "sys/metrics.h"

#include "sys/regbackend.h"

#include "rt/stall.h"

#include "net/http_server.h"

/* The limits' refusals (issue 10): over every channel, live or retired, so none is forgotten. */
typedef struct refusals {
    unsigned long long large, full, by_bytes;
} refusals;

static void add_refusals(refusals *r, const channel *ch)
{
    r->large += ch->refused_large;
    r->full += ch->refused_full;
    r->by_bytes += ch->dropped_bytes;
}

static void host_limits_metrics(strbuf *b, const host *h)
{
    refusals r = {0, 0, 0};
    hashmap_iter it;
    void *v;
    hashmap_iter_init(h->channels, &it);
    while (hashmap_iter_next(h->channels, &it, NULL, &v))
        add_refusals(&r, v);
    for (size_t i = 0; i < h->nretired; i++)
        add_refusals(&r, h->retired[i]);
    strbuf_printf(b,
                  "# HELP sssn_messages_refused_total Writes refused: too_large (--max-message-size), busy (a work "
                  "queue full by count or bytes, or an owner at its --memory-limit).\n"
                  "# TYPE sssn_messages_refused_total counter\n"
                  "sssn_messages_refused_total{reason=\"too_large\"} %llu\n"
                  "sssn_messages_refused_total{reason=\"busy\"} %llu\n"
                  "# HELP sssn_channel_dropped_bytes_total Messages dropped to keep a channel within its byte budget.\n"
                  "# TYPE sssn_channel_dropped_bytes_total counter\nsssn_channel_dropped_bytes_total %llu\n"
                  "# HELP sssn_reads_cut_total HTTP reads cut short by --max-read-bytes (answered with more=true).\n"
                  "# TYPE sssn_reads_cut_total counter\nsssn_reads_cut_total %llu\n"
                  "# HELP sssn_memory_refusals_total Allocations refused by a system's --memory-limit.\n"
                  "# TYPE sssn_memory_refusals_total counter\nsssn_memory_refusals_total %llu\n",
                  r.large, r.full, r.by_bytes, (unsigned long long)h->reads_cut,
                  (unsigned long long)h->vmenv.memory_refusals);
    size_t full = 0, subject = 0;
    registry_refusals(h->reg, &full, &subject);
    strbuf_printf(b,
                  "# HELP sssn_registry_refused_total Registrations refused: full (--registry-max-entries), "
                  "subject (--registry-max-per-subject).\n"
                  "# TYPE sssn_registry_refused_total counter\n"
                  "sssn_registry_refused_total{reason=\"full\"} %zu\n"
                  "sssn_registry_refused_total{reason=\"subject\"} %zu\n",
                  full, subject);
}

/* An etcd registry's calls, failures and how far the cache is behind (nothing otherwise). */
static void host_etcd_metrics(strbuf *b, const host *h)
{
    regbackend_etcd_counts e;
    regbackend_etcd_stats(h->backend, &e);
    if (!e.is_etcd)
        return;
    strbuf_printf(b,
                  "# HELP sssn_etcd_requests_total Requests to etcd's gateway answered or given up on.\n"
                  "# TYPE sssn_etcd_requests_total counter\nsssn_etcd_requests_total %llu\n"
                  "# HELP sssn_etcd_failures_total Requests to etcd that got no answer or a 5xx (then tried on "
                  "the next member).\n"
                  "# TYPE sssn_etcd_failures_total counter\nsssn_etcd_failures_total %llu\n"
                  "# HELP sssn_etcd_reachable 1 when etcd answered the last request and the cache holds a full read.\n"
                  "# TYPE sssn_etcd_reachable gauge\nsssn_etcd_reachable %d\n"
                  "# HELP sssn_etcd_cache_lag_revisions Revisions etcd reported beyond what this host's cache has.\n"
                  "# TYPE sssn_etcd_cache_lag_revisions gauge\nsssn_etcd_cache_lag_revisions %llu\n",
                  e.requests, e.failures, e.reachable && e.synced, e.lag);
}

/* The loop's turns (rt/stall.h): how long each kept the loop from polling, from the moment the
 * poll returned to the next prepare. Nothing when the watcher could not be made. */
static void host_loop_metrics(strbuf *b, const host *h)
{
    const loop_stall *s = h->stall;
    if (!s)
        return;
    strbuf_printf(b,
                  "# HELP sssn_loop_turn_max_seconds The longest loop turn since start: busy time from the poll's "
                  "return to the next poll, in which no other request, timer or step is served.\n"
                  "# TYPE sssn_loop_turn_max_seconds gauge\nsssn_loop_turn_max_seconds %.9f\n"
                  "# HELP sssn_loop_turns_total Loop turns measured (one per return from the poll).\n"
                  "# TYPE sssn_loop_turns_total counter\nsssn_loop_turns_total %llu\n"
                  "# HELP sssn_loop_busy_seconds_total The loop turns' busy time summed (its rate is the share "
                  "of one core the loop spends working).\n"
                  "# TYPE sssn_loop_busy_seconds_total counter\nsssn_loop_busy_seconds_total %.9f\n"
                  "# HELP sssn_loop_slow_turns_total Loop turns whose busy time exceeded `over` seconds.\n"
                  "# TYPE sssn_loop_slow_turns_total counter\n",
                  s->max, (unsigned long long)s->turns, s->busy);
    for (int i = 0; i < STALL_NOVER; i++)
        strbuf_printf(b, "sssn_loop_slow_turns_total{over=\"%g\"} %llu\n", stall_over_bounds[i],
                      (unsigned long long)s->over[i]);
}

void host_metrics_text(strbuf *b, const host *h)
{
    unsigned long long writes = 0, reads = 0, dropped = 0;
    hashmap_iter it;
    void *v;
    hashmap_iter_init(h->channels, &it);
    while (hashmap_iter_next(h->channels, &it, NULL, &v)) {
        const channel *ch = v;
        writes += ch->writes;
        reads += ch->reads;
        dropped += ch->dropped;
    }
    strbuf_printf(b,
                  "# HELP sssn_systems Systems running in this host.\n# TYPE sssn_systems gauge\nsssn_systems %zu\n"
                  "# HELP sssn_steps_total Steps run.\n# TYPE sssn_steps_total counter\nsssn_steps_total %llu\n"
                  "# HELP sssn_step_errors_total Errors in setup or step.\n# TYPE sssn_step_errors_total counter\n"
                  "sssn_step_errors_total %llu\n"
                  "# HELP sssn_overruns_total Ticks merged because a step ran long.\n# TYPE sssn_overruns_total counter\n"
                  "sssn_overruns_total %llu\n"
                  "# HELP sssn_channels Channels in this host.\n# TYPE sssn_channels gauge\nsssn_channels %zu\n"
                  "# HELP sssn_channel_writes_total Messages written to live channels.\n"
                  "# TYPE sssn_channel_writes_total counter\nsssn_channel_writes_total %llu\n"
                  "# HELP sssn_channel_reads_total Messages read from live channels.\n"
                  "# TYPE sssn_channel_reads_total counter\nsssn_channel_reads_total %llu\n"
                  "# HELP sssn_channel_dropped_total Messages dropped by capacity or retention.\n"
                  "# TYPE sssn_channel_dropped_total counter\nsssn_channel_dropped_total %llu\n"
                  "# HELP sssn_registry_entries Registry entries held.\n# TYPE sssn_registry_entries gauge\n"
                  "sssn_registry_entries{kind=\"channel\"} %zu\nsssn_registry_entries{kind=\"system\"} %zu\n"
                  "# HELP sssn_registry_expired_total Registry entries purged by expiry.\n"
                  "# TYPE sssn_registry_expired_total counter\nsssn_registry_expired_total %zu\n",
                  h->nrunning, (unsigned long long)h->steps, (unsigned long long)h->step_errors,
                  (unsigned long long)h->overruns, hashmap_count(h->channels), writes, reads, dropped,
                  registry_count(h->reg, REG_CHANNEL), registry_count(h->reg, REG_SYSTEM),
                  registry_expired_total(h->reg));
    host_limits_metrics(b, h);
    host_etcd_metrics(b, h);
    host_loop_metrics(b, h);
    static const double bounds[] = {0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1};
    strbuf_puts(b, "# HELP sssn_tick_lateness_seconds How late steps start after their slot.\n"
                   "# TYPE sssn_tick_lateness_seconds histogram\n");
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        strbuf_printf(b, "sssn_tick_lateness_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
                      (unsigned long long)host_lateness_at_most(h, bounds[i]));
    strbuf_printf(b, "sssn_tick_lateness_seconds_bucket{le=\"+Inf\"} %llu\nsssn_tick_lateness_seconds_sum %.9g\n"
                     "sssn_tick_lateness_seconds_count %llu\n",
                  (unsigned long long)h->lateness_count, h->lateness_sum, (unsigned long long)h->lateness_count);
    if (h->http_stats) {
        const http_stats *st = h->http_stats;
        strbuf_printf(b, "# HELP sssn_http_requests_total HTTP requests answered, by status class.\n"
                         "# TYPE sssn_http_requests_total counter\n");
        for (int c = 2; c <= 5; c++)
            strbuf_printf(b, "sssn_http_requests_total{status=\"%dxx\"} %llu\n", c, st->by_class[c]);
        strbuf_printf(b, "# HELP sssn_http_connections Open HTTP connections.\n# TYPE sssn_http_connections gauge\n"
                         "sssn_http_connections %llu\n", st->open_connections);
        strbuf_printf(b, "# HELP sssn_http_connections_rejected_total Connections closed at accept, over a limit.\n"
                         "# TYPE sssn_http_connections_rejected_total counter\n"
                         "sssn_http_connections_rejected_total{limit=\"max_connections\"} %llu\n"
                         "sssn_http_connections_rejected_total{limit=\"per_address\"} %llu\n"
                         "# HELP sssn_http_request_timeouts_total Requests not received within --request-timeout (408).\n"
                         "# TYPE sssn_http_request_timeouts_total counter\nsssn_http_request_timeouts_total %llu\n"
                         "# HELP sssn_http_output_paused_total Times a connection stopped reading: its unsent output was at the bound.\n"
                         "# TYPE sssn_http_output_paused_total counter\nsssn_http_output_paused_total %llu\n"
                         "# HELP sssn_http_tls_errors_total TLS connections ended by a failed handshake or record.\n"
                         "# TYPE sssn_http_tls_errors_total counter\nsssn_http_tls_errors_total %llu\n",
                      st->rejected_total, st->rejected_per_address, st->request_timeouts, st->output_paused,
                      st->tls_errors);
    }
}
