/* regbackend.h - the registry backend: where the registry this host's systems use lives.
 * One struct of operations and state; the bindings (sssn.registry, the API's registry
 * routes) and the keep-alive policy (keepalive.h) reach the registry only through it.
 *
 * Implementations:
 *   local  (regbackend_local.c) model/registry.c in this process (the host's own).
 *   http   (regbackend_http.c)  another host's registry API (--registry URL), through
 *                               net/http_client on the loop, never blocking it.
 *   etcd   (regbackend_etcd.c)  an etcd cluster through its v3 JSON gateway: a lease per host
 *                               and TTL (renewed with one request a beat), refresh and
 *                               owner-checked delete as transactions comparing the key's
 *                               mod_revision, a watch on the prefix feeding the host's own
 *                               registry, which serves as `cache` (and writes the events
 *                               channel); queries answered from it while etcd is unreachable.
 *
 * Completion. Every operation takes done(ud, result) and runs it exactly once, unless it is
 * cancelled first: before the starting call returns when the backend can answer without
 * waiting (local: always), else later from the loop (never from inside the call that started
 * it). It returns a handle for cancel() while the answer is pending, NULL once done has run.
 * A cancelled operation's done never runs; what it asked for may still happen (a request
 * already sent). The arguments (fields, ids, strings) are read before the starting call
 * returns: nothing of them is kept. The result and everything it points to is valid during
 * done only. done may start other operations.
 *
 * Acknowledgement. A put or remove completes with RB_OK only once the backend committed it:
 * the entry is visible to every later query of any host using that registry (local: at once;
 * http: the other host answered 200; etcd: the transaction committed). A failure changed
 * nothing that the caller can rely on: after RB_UNREACHABLE a request may or may not have
 * reached the other side.
 *
 * Results: RB_OK, or RB_NOT_FOUND (no live entry with that id: get, remove), RB_NOT_OWNER (a
 * live entry of another registrant holds the id: a refresh put, an owner-checked remove;
 * holder and holder_endpoint say whose it is), RB_UNREACHABLE (no answer from the backend;
 * message says why), RB_BAD_REQUEST (the backend refused the arguments; message), RB_FAILED
 * (anything else: out of memory, a server error, an answer that makes no sense; message),
 * RB_LIMIT (the registry holds as many entries as it takes, in all or for the subject;
 * message), RB_FORBIDDEN (the credential does not permit it; message).
 *
 * Queries (get, find, counts) and events are answered from `cache` and `events` when the
 * backend keeps them in this process (local: the registry and its event channel; etcd: the
 * watched cache), at in-process speed with no operation at all; otherwise (http) through the
 * operations, which answer with the other side's JSON text.
 *
 * Events for the keep-alive: the backend tells its listener (on_event) of changes to
 * entries, at least every takeover (REG_REPLACED with previous_registrant) of an entry whose
 * previous registrant starts with the prefix given to watch(). local: every event, from
 * inside the registry's change (the listener must not start operations from there: it
 * schedules them), whether or not watch() was called. http: from one long-poll of
 * /registry/events?registrant_prefix= while watching, resumed after failures with backoff;
 * the events of one answer are coalesced to the last about each entry (the one that says
 * whose it is now). etcd: from the watch. */
#ifndef SSSN_REGBACKEND_H
#define SSSN_REGBACKEND_H

#include <stddef.h>

#include "model/channel.h"
#include "model/registry.h"
#include "rt/rt.h"

struct http_client;

typedef enum {
    RB_OK,
    RB_NOT_FOUND,
    RB_NOT_OWNER,
    RB_UNREACHABLE,
    RB_BAD_REQUEST,
    RB_LIMIT,
    RB_FORBIDDEN,
    RB_FAILED,
} rb_status;

/* "ok", "not_found", "not_owner", "unreachable", "bad_request", "limit", "forbidden", "failed" */
const char *rb_status_name(rb_status s);

typedef struct rb_result {
    rb_status status;
    /* RB_OK, put: the entry now held and its expiry; registered: 1 when a refresh put
     * registered the entry anew (absent or expired), 0 when it renewed it, -1 unknown */
    double expires_at;
    int registered;
    /* RB_OK: the entry (get, put) when it is in this process (local), else NULL */
    const reg_entry *entry;
    /* RB_OK: the answer's JSON text when it came from elsewhere (http), else NULL: the entry
     * with expires_at (get, put), an array of them (find), {"index": n, "events": [...]}
     * (events) */
    const char *json;
    size_t len;
    /* RB_OK, counts: entries held (live or not yet purged) and purged by expiry so far */
    size_t channels, systems, expired;
    /* RB_NOT_OWNER: who holds the entry (NULL: an operator) and where it serves it, or NULL */
    const char *holder, *holder_endpoint;
    /* errors: what went wrong, in words that can follow "sssn.registry:<call>: " */
    const char *message;
} rb_result;

typedef void (*rb_done_fn)(void *ud, const rb_result *r);

/* An event as the listener sees it. */
typedef struct rb_event {
    reg_event ev;
    reg_kind kind;
    const char *id;
    const char *registrant;          /* the entry's registrant now (NULL: an operator) */
    const char *endpoint;            /* the entry's endpoint now, or NULL */
    const char *previous_registrant; /* REG_REPLACED: whose it was (NULL: an operator's) */
} rb_event;

typedef void (*rb_event_fn)(void *ud, const rb_event *ev);

/* A query of entries: channels (visibility -1 any, 0 private, 1 public; name a substring or
 * NULL) or systems (capability or NULL); a page of them: ids after `after` (NULL: from the
 * first), at most `limit` (0: the most the backend gives). */
typedef struct rb_query {
    reg_kind kind;
    int visibility;
    const char *name;
    const char *capability;
    const char *after;
    size_t limit;
} rb_query;

/* Events after index (at most limit; 0 for 1000), waiting up to `wait` seconds for the first
 * when there is none yet; only those about the entries of registrant, or of registrants
 * starting with registrant_prefix, or taking one over from them (when given). An index
 * beyond the newest event (a registry that restarted) is answered at once with the current
 * index. */
typedef struct rb_events_query {
    unsigned long long index;
    unsigned limit;
    double wait;
    const char *registrant, *registrant_prefix;
} rb_events_query;

typedef struct regbackend regbackend;
typedef struct rb_call rb_call;

typedef struct regbackend_ops {
    /* Registers f (its registrant: f->registrant, NULL an operator) for ttl seconds. refresh:
     * only renew the registrant's own entry or register it when absent or expired; never take
     * another's over (RB_NOT_OWNER). Without refresh it takes over a live entry of another. */
    rb_call *(*put)(regbackend *b, reg_kind kind, const reg_fields *f, double ttl, int refresh,
                    rb_done_fn done, void *ud);
    /* Removes the live entry; with a registrant only its own (RB_NOT_OWNER otherwise), NULL
     * (an operator) whatever is there. RB_NOT_FOUND when there is none. */
    rb_call *(*remove)(regbackend *b, reg_kind kind, const char *id, const char *registrant,
                       rb_done_fn done, void *ud);
    /* Without a cache: one entry (RB_NOT_FOUND), a query, the counts, events. May be NULL
     * when the backend has `cache` and `events`. */
    rb_call *(*get)(regbackend *b, reg_kind kind, const char *id, rb_done_fn done, void *ud);
    rb_call *(*find)(regbackend *b, const rb_query *q, rb_done_fn done, void *ud);
    rb_call *(*counts)(regbackend *b, rb_done_fn done, void *ud);
    rb_call *(*events)(regbackend *b, const rb_events_query *q, rb_done_fn done, void *ud);
    /* Purges expired entries now; how many went (0 where the backend purges by itself). */
    size_t (*maintain)(regbackend *b);
    /* Starts (prefix) or stops (NULL) telling on_event of takeovers from registrants starting
     * with prefix (the string is copied). */
    void (*watch)(regbackend *b, const char *prefix);
    void (*cancel)(regbackend *b, rb_call *call);
    /* Cancels what is pending (no done runs) and frees the backend. */
    void (*free)(regbackend *b);
    /* May be NULL. A clean stop, after the systems stopped: gives back what the backend holds
     * for this host (etcd: revokes its leases, so what is left on them goes at once), raising
     * *unfinished for each request under way and lowering it when it is answered. */
    void (*shutdown)(regbackend *b, unsigned *unfinished);
    /* May be NULL (a cache that is always current). Completes with RB_OK once the cache holds
     * what the registry held when the backend started (etcd: its first full read), at once
     * when it does; RB_UNREACHABLE when that read failed (the cache answers as it is). */
    rb_call *(*ready)(regbackend *b, rb_done_fn done, void *ud);
    /* May be NULL. For a backend whose cache is the host's registry: each of its events (e,
     * prev as reg_event_fn gets them), from inside the registry's change (nothing here may
     * change the registry or start operations at once: it schedules them). */
    void (*cache_event)(regbackend *b, reg_event ev, const reg_entry *e, const reg_entry *prev);
} regbackend_ops;

struct regbackend {
    const regbackend_ops *ops;
    const char *name;        /* "local", "http" (later "etcd") */
    const char *where;       /* said after an entry in log lines ("at <url>"), NULL in-process */
    int immediate;           /* every put and remove completes before it returns (local) */
    registry *cache;         /* answers queries in this process, or NULL: through the ops */
    channel *events;         /* the registry's events as a channel here, or NULL: ops->events */
    rt *rt;
    rb_event_fn on_event;    /* the listener (the keep-alive), or NULL */
    void *on_event_ud;
};

/* Calls through the ops; each is a plain forward (see the ops for what they do). */
static inline rb_call *rb_put(regbackend *b, reg_kind kind, const reg_fields *f, double ttl, int refresh,
                              rb_done_fn done, void *ud)
{
    return b->ops->put(b, kind, f, ttl, refresh, done, ud);
}
static inline rb_call *rb_remove(regbackend *b, reg_kind kind, const char *id, const char *registrant,
                                 rb_done_fn done, void *ud)
{
    return b->ops->remove(b, kind, id, registrant, done, ud);
}
static inline void rb_cancel(regbackend *b, rb_call *call)
{
    if (call)
        b->ops->cancel(b, call);
}
void regbackend_free(regbackend *b); /* NULL is fine */
void regbackend_shutdown(regbackend *b, unsigned *unfinished); /* ops->shutdown; NULL is fine */

/* Makes fn(ud, event) the listener. */
void regbackend_listen(regbackend *b, rb_event_fn fn, void *ud);

/* The host's registry's event callback passes each event on here (to ops->cache_event);
 * nothing for NULL or a backend without a cache of that registry. */
void regbackend_cache_event(regbackend *b, reg_event ev, const reg_entry *e, const reg_entry *prev);

/* The local backend over reg (which the caller owns and frees after the backend) and its
 * event channel (may be NULL). The registry's event callback must pass each event on to
 * regbackend_cache_event. NULL when out of memory. */
regbackend *regbackend_local_new(rt *r, registry *reg, channel *events);
/* Sets the registry's limits (registry_set_limits; 0: none) and says them in refusals. */
void regbackend_local_limits(regbackend *b, size_t max_entries, size_t max_per_subject);

/* The etcd backend (regbackend_etcd.c): the registry in the etcd cluster at url
 * (etcd://HOST:PORT[,HOST:PORT...], or etcd+https://... verified as every https peer),
 * under prefix (NULL: "/sssn"), through the client c (the caller's, freed after the
 * backend), logging in as auth's user when given (a token from /v3/auth/authenticate, sent
 * with every request and fetched again when etcd refuses it). cache is the host's registry and events its event channel: the backend keeps
 * them current from etcd's watch (the registry's event callback must pass each event on to
 * regbackend_cache_event); the caller owns both and frees them after the backend. NULL with
 * err saying why (a malformed url, memory). */
typedef struct regbackend_etcd_auth {
    const char *user, *password; /* etcd's auth (both copied), or NULL: none */
} regbackend_etcd_auth;
regbackend *regbackend_etcd_new(rt *r, struct http_client *c, registry *cache, channel *events, const char *url,
                                const char *prefix, const regbackend_etcd_auth *auth, char *err, size_t errlen);
/* Splits an etcd url into its members' base URLs (http://HOST:PORT; malloc'd, as the
 * array): 0, or -1 with err. */
int regbackend_etcd_parse(const char *url, char ***members, size_t *n, char *err, size_t errlen);

/* What /health and /metrics say of an etcd backend (all 0 for another kind). */
typedef struct regbackend_etcd_counts {
    int is_etcd;
    int reachable;        /* the last request was answered */
    int synced;           /* the cache holds a full read and the watch goes on from it */
    unsigned long long requests, failures;
    unsigned long long lag; /* revisions the newest answer reported beyond what the cache has */
} regbackend_etcd_counts;
void regbackend_etcd_stats(const regbackend *b, regbackend_etcd_counts *out);
/* 1 when queries are answered from a cache that may be behind: an etcd registry unreachable,
 * or not read in full yet. 0 for NULL and other kinds. */
int regbackend_stale(const regbackend *b);

/* The http backend: the registry of the host at url (http://host:port, no path), through the
 * client c (the caller's, freed after the backend). bearer (may be NULL; copied) is sent as
 * "Authorization: Bearer <bearer>" with every request, the watch's long-poll too. One log
 * line each time it becomes unreachable or reachable again (not one per call). NULL when out
 * of memory. */
regbackend *regbackend_http_new(rt *r, struct http_client *c, const char *url, const char *bearer);

/* Seconds an http backend call may take (a long-poll: its wait and this). */
#define RB_HTTP_TIMEOUT 10.0
/* Seconds the watch's long-poll waits on the other side. */
#define RB_HTTP_WATCH_WAIT 30

#endif
