/* host.h - the host: the systems, the channel table and the registry they share, on the
 * runtime (rt) below it. Passed explicitly; no global state. The host owns channels (freed
 * at host_free) and systems; the loop, signals and services belong to the app above. */
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
#include "rt/rt.h"
#include "rt/timer.h"
#include "vm/vm.h"

struct sssn_system;

typedef struct host_config {
    double ttl;            /* default registration TTL, seconds */
    double maintenance;    /* registry maintenance interval, seconds */
    size_t memory_limit;   /* bytes per system: its Lua heap and the logs of the channels it owns;
                            * 0 = unlimited (default HOST_MEMORY_LIMIT) */
    size_t max_message_size; /* bytes a message may have at most (default HOST_MAX_MESSAGE) */
    size_t channel_bytes;  /* byte budget of each channel's log (default HOST_CHANNEL_BYTES) */
    size_t max_read_bytes; /* bytes an HTTP read answers at most (default HOST_MAX_READ_BYTES);
                            * at least max_message_size */
    double step_timeout;   /* seconds a step may run without yielding before the watchdog interrupts it */
    double duration;       /* stop after this many seconds, 0 = run until signalled */
    int log_level;
    const char *lua_dir;   /* directory holding the sssn Lua module (sssn/init.lua) */
    int test_mode;         /* `sssn-host test`: test clock and sssn.testing available */
    double started_at;     /* wall time main() began (start-up measurements) */
    int capture_log;       /* `sssn-host test`: log lines go to a buffer the specs read, not stderr */
    size_t registry_max_entries;     /* entries the registry holds at most (0: no bound) */
    size_t registry_max_per_subject; /* entries one HTTP subject may hold (0: no bound) */
    double registry_max_ttl;         /* longest TTL an HTTP registration may ask for, seconds */
    const char *etcd_prefix;         /* --etcd-prefix: the keys of an etcd registry (NULL: /sssn) */
    const char *etcd_user;           /* --etcd-user: etcd's auth (with host.etcd_password), or NULL */
    const char *data_dir;            /* --data-dir: durable channels' files (NULL: none allowed) */
    int sync_normal;                 /* --sync normal: fsync at checkpoints only (default: full) */
} host_config;

void host_config_defaults(host_config *c);

/* The limits' defaults (issue 10): see README, Command line. */
#define HOST_MEMORY_LIMIT ((size_t)64 << 20)
#define HOST_MAX_MESSAGE ((size_t)1 << 20)
#define HOST_CHANNEL_BYTES ((size_t)64 << 20)
#define HOST_MAX_READ_BYTES ((size_t)8 << 20)

/* Bytes an id may have at most: system, channel and registry entry ids, and the reader names
 * HTTP tokens give. Longer ones are refused with an error naming the id. */
#define SSSN_ID_MAX 256
#define SSSN_ID_MAX_TEXT "256"

/* What is wrong with an id of len bytes (empty, longer than SSSN_ID_MAX, control
 * characters), or NULL when it is fine. */
const char *sssn_id_problem(const char *id, size_t len);

/* Owner name of channels the host itself runs (the registry's event channel). */
#define HOST_OWNER "sssn-host"

/* Tick lateness histogram: 1 us buckets below 1 ms, then 50 us buckets up to ~100 ms. */
#define LATENESS_BUCKETS 3000
#define REGISTRY_CHANNEL_ID "registry"

typedef struct host {
    rt *rt;                    /* the loop, the clock, timers, the log: the app's, below us */
    host_config cfg;
    struct loop_stall *stall;  /* the loop's turn busy times (rt/stall.h) for /metrics; NULL if out of memory */

    hashmap *channels;         /* id -> channel*, live channels */
    hashmap *bytecode;         /* sssn module name -> its stripped bytecode (system.c) */
    channel **retired;         /* channels of stopped owners, freed at host_free */
    size_t nretired, capretired;
    registry *reg;
    channel *registry_events;  /* the registry's events, readable as a channel */
    rt_timer maintenance_timer;

    struct sssn_system *systems; /* every system ever started, newest first */
    size_t nrunning;

    struct http_client *http;  /* outgoing requests, made on first use */
    const struct http_stats *http_stats; /* the HTTP API's counters while it serves, else NULL */
    unsigned detached;         /* tasks that must finish before exit (deregistering remotely) */
    char instance_id[17];      /* random per run: lets remote readers notice a restart */
    char *endpoint;            /* URL other hosts reach this one at, or NULL */
    char *registry_url;        /* --registry: systems use this remote registry */
    char *etcd_password;       /* --etcd-password-file (wiped at host_free), or NULL */
    char *credential;          /* --token-file: the Bearer of every request this host makes to
                                * other hosts (registry, remote channels), or NULL; kept in C,
                                * never handed to Lua; wiped at host_free */

    int stopping;              /* host_stop_all ran: the app's loop ends */
    clock_listener clock_shift; /* the systems' (system.c): schedules move with the test clock */
    vm_env vmenv;              /* what the host's Lua states share (vm/vm.h) */
    /* where the systems' registry is (regbackend.h): the local one over `reg`, or another
     * host's with --registry; made on first use (host_backend) */
    struct regbackend *backend;
    struct keepalive *keepalive; /* the keep-alive and ownership policy over it (keepalive.h) */

    /* "expired" events not yet in the registry channel: a purge keeps the expired entries
     * (registry_keep) and their events are rendered when the channel is read (its
     * before_read), before any later registry event, or a bounded number per loop turn */
    struct host_expired *expired;
    size_t expired_first, expired_count, expired_cap;
    deferred expired_flush;

    strbuf scratch;            /* reusable buffer for encoding message content */
    strbuf event_buf;          /* reusable buffer for registry event messages */
    strbuf reg_buf;            /* reusable buffer for the JSON of a registration (reg_put) */

    /* counters */
    uint64_t steps, step_errors, overruns;
    uint64_t reads_cut;        /* HTTP reads cut short by max_read_bytes */
    /* how late steps start after their slot, microseconds (see host_lateness_*) */
    uint64_t lateness[LATENESS_BUCKETS];
    uint64_t lateness_count;
    double lateness_sum;       /* seconds, for the histogram's _sum */
} host;

/* The host runs on r (the app's); NULL when out of memory. */
host *host_new(const host_config *cfg, rt *r);
void host_free(host *h); /* frees the channels and the registry (systems_free_all first), not r */

/* A log line (see core/log.h) through the runtime's log. */
void host_log(const host *h, int level, const char *system, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline double host_now(const host *h) { return rt_now(h->rt); }

/* Channel table. */
channel *host_channel(const host *h, const char *id);
/* 0, or -1 when the id is taken / out of memory. The channel gets the host's limits: its
 * max_bytes at most channel_bytes (a lower one it has is kept), max_message_size. */
int host_add_channel(host *h, channel *ch);
/* Stop it, drop it from the table, and take its log off its owner's memory account; a durable
 * one commits what is open and closes its file (a new channel of that id may open it). */
void host_retire_channel(host *h, channel *ch);
/* A durable channel for cfg, its log in a file under --data-dir (sys/store_sqlite.h) loaded;
 * what it commits becomes visible to readers (channel_committed). NULL with the reason in err
 * (no --data-dir, a file it cannot open, out of memory). */
channel *host_new_durable_channel(host *h, const channel_config *cfg, char *err, size_t errlen);

void host_record_lateness(host *h, double seconds);
double host_lateness_percentile(const host *h, double p); /* seconds; 0 when no samples */
void host_lateness_reset(host *h);
/* Steps that started at most `seconds` late (seconds at most 0.1, a multiple of 50 us above 1 ms). */
uint64_t host_lateness_at_most(const host *h, double seconds);

/* The registry backend the systems and the API use: on the first call, the local one (this
 * host's registry) or, when registry_url is set by then, the http one to that host. NULL when
 * out of memory. */
struct regbackend *host_backend(host *h);

/* Registry maintenance now (also runs on its timer). */
void host_registry_maintain(host *h);

/* Writes the "expired" events a purge left to be rendered into the registry channel, all of
 * them (the channel's before_read does this: a reader sees every event in order). */
void host_registry_events_sync(host *h);

/* Appends the entry's JSON with "expires_at" spliced in. 0, or -1 when out of memory. */
int host_entry_json(strbuf *b, const reg_entry *e);

#endif
