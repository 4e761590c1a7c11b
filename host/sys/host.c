/* host.c - the host: the channel table and the registry the systems share, registry
 * maintenance, registry events fed into their channel, and tearing the systems down. It
 * runs on the runtime (rt) the app gives it; the loop, signals and services are the app's. */
#include "sys/host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "net/http_client.h"
#include "core/json.h"
#include "core/log.h"
#include "sys/keepalive.h"
#include "sys/regbackend.h"
#include "sys/store_sqlite.h"
#include "rt/stall.h"

void host_config_defaults(host_config *c)
{
    memset(c, 0, sizeof *c);
    c->ttl = 300;
    c->maintenance = 30;
    c->step_timeout = 10;
    c->memory_limit = HOST_MEMORY_LIMIT;
    c->max_message_size = HOST_MAX_MESSAGE;
    c->channel_bytes = HOST_CHANNEL_BYTES;
    c->max_read_bytes = HOST_MAX_READ_BYTES;
    c->log_level = LOG_INFO;
    c->registry_max_entries = 1000000;
    c->registry_max_per_subject = 10000;
    c->registry_max_ttl = 86400;
}

const char *sssn_id_problem(const char *id, size_t len)
{
    if (len == 0)
        return "must not be empty";
    if (len > SSSN_ID_MAX)
        return "is longer than " SSSN_ID_MAX_TEXT " bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return "contains a control character";
    return NULL;
}

void host_log(const host *h, int level, const char *system, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vlog(h->rt, level, system, fmt, ap);
    va_end(ap);
}

int host_entry_json(strbuf *b, const reg_entry *e)
{
    /* entry JSON is an object "{...}": splice expires_at in before the closing brace */
    const char *j = e->json;
    size_t n = e->json_len;
    while (n > 0 && j[n - 1] != '}')
        n--;
    if (n == 0)
        return strbuf_puts(b, "null");
    int empty = 1;
    for (size_t i = 1; i + 1 < n; i++)
        if (j[i] != ' ' && j[i] != '\n' && j[i] != '\t' && j[i] != '\r') {
            empty = 0;
            break;
        }
    if (strbuf_append(b, j, n - 1) < 0 || strbuf_puts(b, empty ? "\"expires_at\":" : ",\"expires_at\":") < 0 ||
        json_write_double(b, e->expires_at) < 0)
        return -1;
    return strbuf_putc(b, '}');
}

static int put_registrant(strbuf *b, const reg_entry *e)
{
    return e->registrant ? json_write_string(b, e->registrant, strlen(e->registrant)) : strbuf_puts(b, "null");
}

/* Registry events become messages on the "registry" channel:
 * {"event": "...", "kind": "channel"|"system", "id": "...", "registrant": "..."|null,
 *  "entry": {... , "expires_at": t}}
 * and for "replaced" also "previous": {the entry taken over}, "previous_registrant"; then
 * "subject" when an HTTP caller registered it and "private": true when the entry (or the one
 * it replaced) is private, so /registry/events can show each caller only what it may see. An event
 * that cannot be built whole (out of memory) is not written. `at` is the message's timestamp. */
static void write_event(host *h, reg_event ev, const reg_entry *e, const reg_entry *prev, double at)
{
    strbuf *b = &h->event_buf;
    strbuf_reset(b);
    int bad = strbuf_puts(b, "{\"event\":\"") < 0 || strbuf_puts(b, reg_event_name(ev)) < 0 ||
              strbuf_puts(b, "\",\"kind\":\"") < 0 || strbuf_puts(b, reg_kind_name(e->kind)) < 0 ||
              strbuf_puts(b, "\",\"id\":") < 0 || json_write_string(b, e->id, strlen(e->id)) < 0 ||
              strbuf_puts(b, ",\"registrant\":") < 0 || put_registrant(b, e) < 0 ||
              strbuf_puts(b, ",\"entry\":") < 0 || host_entry_json(b, e) < 0;
    if (!bad && prev)
        bad = strbuf_puts(b, ",\"previous\":") < 0 || host_entry_json(b, prev) < 0 ||
              strbuf_puts(b, ",\"previous_registrant\":") < 0 || put_registrant(b, prev) < 0;
    /* who may see it: the subject that registered it, and whether it is about a private entry */
    if (!bad && e->subject)
        bad = strbuf_puts(b, ",\"subject\":") < 0 || json_write_string(b, e->subject, strlen(e->subject)) < 0;
    if (!bad && (!e->is_public || (prev && !prev->is_public)))
        bad = strbuf_puts(b, ",\"private\":true") < 0;
    if (bad || strbuf_putc(b, '}') < 0)
        return;
    message_in in = {.sender_id = HOST_OWNER, .data_json = b->data, .data_len = b->len};
    channel_write(h->registry_events, &in, at, NULL);
}

/* An expired entry whose event is not written yet, and when it was purged (the timestamp its
 * event gets, as when it was written at once). */
struct host_expired {
    const reg_entry *e;
    double at;
};

/* Purged entries per loop turn whose events are written when nobody reads: bounds the turn. */
#define EXPIRED_PER_TURN 1000

/* Writes up to `limit` of the deferred "expired" events (0: all), oldest first. */
static void flush_expired(host *h, size_t limit)
{
    size_t n = h->expired_count;
    if (limit && n > limit)
        n = limit;
    for (size_t i = 0; i < n; i++) {
        struct host_expired *x = &h->expired[h->expired_first];
        h->expired_first = (h->expired_first + 1) % h->expired_cap;
        h->expired_count--;
        write_event(h, REG_EXPIRED, x->e, NULL, x->at);
        registry_entry_free(x->e);
    }
    if (!h->expired_count)
        h->expired_first = 0;
}

void host_registry_events_sync(host *h)
{
    if (h->expired_count)
        flush_expired(h, 0);
}

static void before_events_read(channel *ch, void *ud)
{
    (void)ch;
    host_registry_events_sync(ud);
}

/* From the loop: a bounded step of the deferred events, so long-poll waiters on the channel
 * wake (its watchers run on the first write) and the kept entries go without a reader. */
static void on_expired_flush(rt *r, deferred *d)
{
    host *h = d->data;
    flush_expired(h, EXPIRED_PER_TURN);
    if (h->expired_count)
        defer(r, d);
}

/* Queues an expired entry's event; 0, or -1 when out of memory (the caller writes it now). */
static int defer_expired(host *h, const reg_entry *e)
{
    if (h->expired_count == h->expired_cap) {
        size_t cap = h->expired_cap ? h->expired_cap * 2 : 1024;
        struct host_expired *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < h->expired_count; i++) /* unroll the ring */
            q[i] = h->expired[(h->expired_first + i) % h->expired_cap];
        free(h->expired);
        h->expired = q;
        h->expired_first = 0;
        h->expired_cap = cap;
    }
    h->expired[(h->expired_first + h->expired_count) % h->expired_cap] = (struct host_expired){e, host_now(h)};
    h->expired_count++;
    registry_keep(h->reg);
    defer(h->rt, &h->expired_flush);
    return 0;
}

/* The local backend's listener (the keep-alive) hears of each event first: a takeover makes a
 * system retry. An "expired" event is written later (defer_expired); any other is written at
 * once, after those still deferred, so the channel holds the events in the order they
 * happened. */
static void on_registry_event(void *ud, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    host *h = ud;
    regbackend_cache_event(h->backend, ev, e, prev);
    if (!h->registry_events)
        return;
    if (ev == REG_EXPIRED && defer_expired(h, e) == 0)
        return;
    host_registry_events_sync(h);
    write_event(h, ev, e, prev, host_now(h));
}

static size_t lateness_bucket(double us)
{
    if (us < 0)
        us = 0;
    if (us < 1000)
        return (size_t)us;
    size_t b = 1000 + (size_t)((us - 1000) / 50);
    return b < LATENESS_BUCKETS ? b : LATENESS_BUCKETS - 1;
}

static double bucket_us(size_t b) { return b < 1000 ? (double)b : 1000 + (double)(b - 1000) * 50; }

void host_record_lateness(host *h, double seconds)
{
    h->lateness[lateness_bucket(seconds * 1e6)]++;
    h->lateness_count++;
    h->lateness_sum += seconds > 0 ? seconds : 0;
}

double host_lateness_percentile(const host *h, double p)
{
    if (!h->lateness_count)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->lateness_count);
    uint64_t seen = 0;
    for (size_t b = 0; b < LATENESS_BUCKETS; b++) {
        seen += h->lateness[b];
        if (seen > rank)
            return bucket_us(b) / 1e6;
    }
    return bucket_us(LATENESS_BUCKETS - 1) / 1e6;
}

uint64_t host_lateness_at_most(const host *h, double seconds)
{
    /* the fine buckets' edges are whole microseconds below 1 ms and multiples of 50 us above,
     * so every bound the histogram uses falls on an edge */
    double us = seconds * 1e6;
    uint64_t n = 0;
    for (size_t b = 0; b < LATENESS_BUCKETS - 1 && bucket_us(b + 1) <= us + 1e-6; b++)
        n += h->lateness[b];
    return n;
}

void host_lateness_reset(host *h)
{
    memset(h->lateness, 0, sizeof h->lateness);
    h->lateness_count = 0;
    h->lateness_sum = 0;
}

regbackend *host_backend(host *h)
{
    if (h->backend)
        return h->backend;
    if (h->registry_url) {
        if (!h->http && !(h->http = http_client_new(h->rt)))
            return NULL;
        if (strncmp(h->registry_url, "etcd", 4) == 0) {
            char err[512];
            regbackend_etcd_auth auth = {.user = h->cfg.etcd_user, .password = h->etcd_password};
            h->backend = regbackend_etcd_new(h->rt, h->http, h->reg, h->registry_events, h->registry_url,
                                             h->cfg.etcd_prefix, &auth, err, sizeof err);
            if (!h->backend)
                host_log(h, LOG_ERROR, NULL, "cannot use the etcd registry: %s", err);
            else
                host_log(h, LOG_INFO, NULL, "registry: etcd at %s (prefix %s)", strstr(h->registry_url, "://") + 3,
                         h->cfg.etcd_prefix ? h->cfg.etcd_prefix : "/sssn");
        } else {
            h->backend = regbackend_http_new(h->rt, h->http, h->registry_url, h->credential);
        }
    } else {
        h->backend = regbackend_local_new(h->rt, h->reg, h->registry_events);
        if (h->backend)
            regbackend_local_limits(h->backend, h->cfg.registry_max_entries, h->cfg.registry_max_per_subject);
    }
    if (h->backend)
        keepalive_use(h->keepalive, h->backend);
    return h->backend;
}

void host_registry_maintain(host *h)
{
    size_t n = registry_maintain(h->reg, host_now(h));
    if (n)
        host_log(h, LOG_DEBUG, NULL, "registry maintenance purged %zu expired entr%s", n, n == 1 ? "y" : "ies");
}

static void on_maintenance(rt *r, rt_timer *t)
{
    (void)r;
    host *h = t->data;
    host_registry_maintain(h);
    timer_start(h->rt, t, host_now(h) + h->cfg.maintenance);
}

/* The host's limits on a channel's log and messages. */
static void limit_channel(const host *h, channel *ch)
{
    if (h->cfg.channel_bytes && (!ch->max_bytes || ch->max_bytes > h->cfg.channel_bytes))
        ch->max_bytes = h->cfg.channel_bytes;
    ch->max_message = h->cfg.max_message_size;
}

/* The small-block pool of the host's Lua states. Sanitizer builds go without it, so that
 * AddressSanitizer sees every Lua block freed and reused (use after free in a binding). */
static pool *host_pool_new(void)
{
#ifdef SSSN_NO_POOL
    return NULL;
#else
    return pool_new();
#endif
}

host *host_new(const host_config *cfg, rt *r)
{
    host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cfg = *cfg;
    h->rt = r;
    h->stall = stall_new(r);
    timer_init(&h->maintenance_timer, on_maintenance, h);
    h->channels = hashmap_new();
    h->bytecode = hashmap_new();
    h->vmenv = (vm_env){.rt = r, .lua_dir = cfg->lua_dir, .bytecode = h->bytecode,
                        .pool = host_pool_new(), .watchdog_limit = cfg->step_timeout, .ud = h};
    h->reg = registry_new(on_registry_event, h);
    channel_config rc = {.id = REGISTRY_CHANNEL_ID, .name = "Service Registry events",
                         .description = "registered, refreshed, expired and deregistered entries",
                         .is_public = 1, .kind = CHANNEL_BROADCAST, .capacity = 10000};
    h->registry_events = channel_new(&rc);
    if (!h->channels || !h->reg || !h->registry_events) {
        host_free(h);
        return NULL;
    }
    h->registry_events->owner = strdup(HOST_OWNER);
    h->registry_events->before_read = before_events_read;
    h->registry_events->before_read_ud = h;
    defer_init(&h->expired_flush, on_expired_flush, h);
    limit_channel(h, h->registry_events);
    hashmap_put(h->channels, REGISTRY_CHANNEL_ID, h->registry_events);
    if (h->cfg.maintenance > 0)
        timer_start(h->rt, &h->maintenance_timer, host_now(h) + h->cfg.maintenance);

    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        uint64_t x = (uint64_t)(ev_time() * 1e6) ^ (uint64_t)(uintptr_t)h;
        memcpy(rnd, &x, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(h->instance_id + 2 * i, 3, "%02x", rnd[i]);
    if (!(h->keepalive = keepalive_new(r, h->instance_id, &h->detached))) {
        host_free(h);
        return NULL;
    }
    return h;
}


channel *host_channel(const host *h, const char *id) { return hashmap_get(h->channels, id); }

int host_add_channel(host *h, channel *ch)
{
    if (hashmap_get(h->channels, ch->id))
        return -1;
    limit_channel(h, ch);
    return hashmap_put(h->channels, ch->id, ch);
}

/* The file of a durable channel: its id with bytes outside [A-Za-z0-9._-] as %XX (and a
 * leading '.' too, so no id names a hidden or a relative path). */
static int durable_path(const char *dir, const char *id, char *out, size_t n)
{
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "%s/", dir);
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == '_' || *p == '-' || (*p == '.' && p != (const unsigned char *)id);
        if (plain)
            strbuf_putc(&b, (char)*p);
        else
            strbuf_printf(&b, "%%%02X", *p);
    }
    strbuf_puts(&b, ".sqlite");
    int ok = !strbuf_failed(&b) && b.data && b.len < n;
    if (ok)
        memcpy(out, b.data, b.len + 1);
    strbuf_free(&b);
    return ok ? 0 : -1;
}

static void on_durable_commit(void *data, uint64_t csn, int err)
{
    (void)csn;
    (void)err; /* the store logs a failure; what it committed before that is visible still */
    channel_committed(data);
}

channel *host_new_durable_channel(host *h, const channel_config *cfg, char *err, size_t errlen)
{
    if (!h->cfg.data_dir) {
        snprintf(err, errlen, "it is durable, but the host has no --data-dir (start sssn-host with --data-dir DIR)");
        return NULL;
    }
    char path[4096];
    store_config scfg;
    if (durable_path(h->cfg.data_dir, cfg->id, path, sizeof path) < 0 || channel_store_config(cfg, &scfg) < 0) {
        snprintf(err, errlen, "its id makes no file name under --data-dir %s", h->cfg.data_dir);
        return NULL;
    }
    char why[512];
    store *st = store_sqlite_open(h->rt, path, channel_kind_name(cfg->kind), &scfg,
                                  h->cfg.sync_normal ? STORE_SYNC_NORMAL : STORE_SYNC_FULL, why, sizeof why);
    if (!st) {
        snprintf(err, errlen, "cannot open its file %s: %s", path, why);
        return NULL;
    }
    channel *ch = channel_new_with_store(cfg, st); /* takes st, and frees it when it fails */
    if (!ch) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    store_sqlite_on_commit(st, on_durable_commit, ch);
    return ch;
}

void host_retire_channel(host *h, channel *ch)
{
    if (store_is_sqlite(ch->store))
        store_sqlite_close(ch->store);
    channel_stop(ch);
    channel_set_account(ch, NULL, NULL); /* the owner's state may go before the channel */
    if (hashmap_get(h->channels, ch->id) == ch)
        hashmap_remove(h->channels, ch->id);
    /* other systems may still hold the pointer (connections): keep it until host_free */
    if (h->nretired == h->capretired) {
        size_t cap = h->capretired ? h->capretired * 2 : 16;
        channel **r = realloc(h->retired, cap * sizeof *r);
        if (!r)
            return; /* leaks one stopped channel rather than risking a dangling pointer */
        h->retired = r;
        h->capretired = cap;
    }
    h->retired[h->nretired++] = ch;
}

void host_free(host *h)
{
    if (!h)
        return;
    h->stopping = 1;
    stall_free(h->stall);
    if (h->channels) {
        hashmap_iter it;
        void *v;
        hashmap_iter_init(h->channels, &it);
        while (hashmap_iter_next(h->channels, &it, NULL, &v))
            channel_free(v);
        hashmap_free(h->channels);
    }
    /* after every state (their tasks may still be waiting on requests and cancel them) and
     * every system (their registrations): what the keep-alive still does, then the backend */
    keepalive_free(h->keepalive);
    regbackend_free(h->backend);
    h->backend = NULL;
    http_client_free(h->http);
    h->http = NULL;
    for (size_t i = 0; i < h->nretired; i++)
        channel_free(h->retired[i]);
    vm_bytecode_free(h->bytecode);
    pool_free(h->vmenv.pool); /* after every state is closed */
    free(h->retired);
    /* the events nobody read: the entries go without them */
    defer_cancel(h->rt, &h->expired_flush);
    for (; h->expired_count; h->expired_count--) {
        registry_entry_free(h->expired[h->expired_first].e);
        h->expired_first = (h->expired_first + 1) % h->expired_cap;
    }
    free(h->expired);
    registry_free(h->reg);
    timer_stop(h->rt, &h->maintenance_timer);
    free(h->endpoint);
    free(h->registry_url);
    if (h->etcd_password) {
        explicit_bzero(h->etcd_password, strlen(h->etcd_password));
        free(h->etcd_password);
    }
    if (h->credential) {
        explicit_bzero(h->credential, strlen(h->credential));
        free(h->credential);
    }
    strbuf_free(&h->scratch);
    strbuf_free(&h->event_buf);
    strbuf_free(&h->reg_buf);
    free(h);
}
