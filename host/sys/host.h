/* host.h - the host: one libev loop, its systems, the channel table, the registry, the clock.
 * Everything the runtime knows hangs off one struct host passed explicitly; there is no
 * global state. The host owns channels (freed at host_free) and systems. */
#ifndef SSSN_HOST_H
#define SSSN_HOST_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "model/channel.h"
#include "core/hashmap.h"
#include "core/heap.h"
#include "model/registry.h"
#include "core/strbuf.h"
#include "rt/timer.h"

struct sssn_system;

typedef struct host_config {
    double ttl;            /* default registration TTL, seconds */
    double maintenance;    /* registry maintenance interval, seconds */
    size_t memory_limit;   /* bytes of Lua heap per system, 0 = unlimited */
    double step_timeout;   /* seconds a step may run without yielding before the watchdog interrupts it */
    double duration;       /* stop after this many seconds, 0 = run until signalled */
    int log_level;
    const char *lua_dir;   /* directory holding the sssn Lua module (sssn/init.lua) */
    int test_mode;         /* `sssn-host test`: test clock and sssn.testing available */
    double started_at;     /* wall time main() began (start-up measurements) */
    int capture_log;       /* `sssn-host test`: log lines go to a buffer the specs read, not stderr */
} host_config;

void host_config_defaults(host_config *c);

/* Bytes an id may have at most: system, channel and registry entry ids, and the reader names
 * HTTP tokens give. Longer ones are refused with an error naming the id. */
#define SSSN_ID_MAX 256
#define SSSN_ID_MAX_TEXT "256"

/* Owner name of channels the host itself runs (the registry's event channel). */
#define HOST_OWNER "sssn-host"

/* Tick lateness histogram: 1 us buckets below 1 ms, then 50 us buckets up to ~100 ms. */
#define LATENESS_BUCKETS 3000
#define REGISTRY_CHANNEL_ID "registry"

typedef struct host {
    struct ev_loop *loop;
    host_config cfg;

    /* clock and timers (timer.c) */
    int manual_clock;
    double manual_now;
    double clock_offset;       /* wall minus monotonic time at start (timer.c) */
    heap timers;
    ev_timer timer_watcher;
    deferred *defer_head, *defer_tail;
    ev_idle defer_watcher;

    hashmap *channels;         /* id -> channel*, live channels */
    hashmap *bytecode;         /* sssn module name -> its stripped bytecode (system.c) */
    channel **retired;         /* channels of stopped owners, freed at host_free */
    size_t nretired, capretired;
    registry *reg;
    channel *registry_events;  /* the registry's events, readable as a channel */
    host_timer maintenance_timer;

    struct sssn_system *systems; /* every system ever started, newest first */
    size_t nrunning;

    struct api *api;           /* the HTTP API when --listen, else NULL */
    struct http_client *http;  /* outgoing requests, made on first use */
    struct repl *repl;         /* the interactive prompt, when there is one */
    int sigint_consumed;       /* a Ctrl-C already interrupted the prompt's running chunk */
    unsigned detached;         /* tasks that must finish before exit (deregistering remotely) */
    char instance_id[17];      /* random per run: lets remote readers notice a restart */
    char *endpoint;            /* URL other hosts reach this one at, or NULL */
    char *registry_url;        /* --registry: systems use this remote registry */

    ev_signal sigint_watcher, sigterm_watcher;
    ev_timer duration_watcher;
    int stopping;

    strbuf *log_capture;       /* with cfg.capture_log: the log since the runner last took it */
    strbuf scratch;            /* reusable buffer for encoding message content */
    strbuf event_buf;          /* reusable buffer for registry event messages */

    /* counters */
    uint64_t steps, step_errors, overruns;
    /* how late steps start after their slot, microseconds (see host_lateness_*) */
    uint64_t lateness[LATENESS_BUCKETS];
    uint64_t lateness_count;
} host;

host *host_new(const host_config *cfg);  /* NULL when out of memory */
void host_free(host *h);                 /* stops every system, frees everything */

/* Runs the loop until every system stopped, a signal, or the duration passed. */
void host_run(host *h);
/* Catches SIGINT/SIGTERM from now on (host_run does it too): one that arrives while systems
 * start (setup already ran) stops them cleanly once the loop runs, instead of killing the
 * process or, when the shell ignored SIGINT for a background job, being lost. */
void host_catch_signals(host *h);
/* Whether SIGINT/SIGTERM arrived and the loop has not handled it yet (a step is running). */
int host_signal_arrived(int interruptible);
void host_stop_all(host *h, const char *why);
/* A log line (see log.h), to stderr or, with cfg.capture_log, to h->log_capture (which keeps
 * at most HOST_LOG_CAPTURE_MAX bytes between two takes). */
void host_log(const host *h, int level, const char *system, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define HOST_LOG_CAPTURE_MAX (1u << 20)

/* Channel table. */
channel *host_channel(const host *h, const char *id);
int host_add_channel(host *h, channel *ch);      /* 0, or -1 when the id is taken / out of memory */
void host_retire_channel(host *h, channel *ch);  /* stop it, drop it from the table */

void host_record_lateness(host *h, double seconds);
double host_lateness_percentile(const host *h, double p); /* seconds; 0 when no samples */
void host_lateness_reset(host *h);

/* Registry maintenance now (also runs on its timer). */
void host_registry_maintain(host *h);

/* Appends the entry's JSON with "expires_at" spliced in. 0, or -1 when out of memory. */
int host_entry_json(strbuf *b, const reg_entry *e);

#endif
