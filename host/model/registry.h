/* registry.h - the TTL service registry: channels and system descriptors with expiry.
 * Pure data structure: no event loop, no Lua, no JSON parsing. Time is passed in.
 * Each entry stores the JSON text of its info (without expires_at) plus the fields queries
 * need. Liveness is strict: an entry is live while expires_at > now; no query returns an
 * entry that is not live, purged or not. Point lookups are O(1) (hash), capability lookups
 * O(matches) (index of service name -> systems), expiry is a heap so purging costs
 * O(expired * log n).
 * Ownership: each entry belongs to its registrant (a string, "<host instance>/<system id>" in
 * the host), or to no one (NULL: an operator's). A register takes a live entry over from
 * another registrant (REG_REPLACED); a refresh or a removal by a registrant changes only its
 * own entry and says when a live entry belongs to another. NULL acts as an operator for
 * removal (removes whatever is there). */
#ifndef SSSN_REGISTRY_H
#define SSSN_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "core/heap.h"

typedef enum { REG_CHANNEL = 0, REG_SYSTEM = 1 } reg_kind;

/* Longest entry id and registrant accepted, in bytes (longer ones are refused). */
#define REG_ID_MAX 256
#define REG_REGISTRANT_MAX 512

typedef enum {
    REG_REGISTERED,   /* new entry (or replacing one that had expired) */
    REG_REFRESHED,    /* a live entry registered again by its own registrant: content and expiry renewed */
    REG_REPLACED,     /* a live entry taken over by another registrant (the event carries both) */
    REG_EXPIRED,      /* removed because its TTL passed */
    REG_DEREGISTERED, /* removed on request */
} reg_event;

/* "registered", "refreshed", "replaced", "expired", "deregistered" */
const char *reg_event_name(reg_event ev);
const char *reg_kind_name(reg_kind k);    /* "channel", "system" */

typedef struct reg_entry {
    reg_kind kind;
    char *id;
    char *json;          /* JSON object text of the info, as given, without expires_at */
    size_t json_len;
    char *name_lower;    /* channel name (or system name) lowercased, for substring search */
    int is_public;       /* channels: visibility */
    char **caps;         /* systems: service names (capabilities), distinct */
    size_t ncaps;
    size_t *cap_pos;     /* internal: position of this entry in each capability's list */
    size_t vis_pos;      /* internal: channels: position in the list of their visibility */
    char *registrant;    /* who registered it ("<host instance>/<system id>"), NULL: an operator */
    char *subject;       /* the authenticated subject that registered it over HTTP, NULL: this
                          * host's own systems or an operator (who owns it, for authorisation) */
    char *endpoint;      /* where the registrant serves it (the info's endpoint), or NULL */
    double ttl;          /* seconds */
    double registered_at;
    uint64_t version;    /* changes whenever content or expiry changes (for callers' caches) */
    double expires_at;
    heap_node expiry;    /* internal */
} reg_entry;

/* What a caller registers. Strings are copied. */
typedef struct reg_fields {
    const char *id;          /* required, non-empty */
    const char *name;        /* NULL -> "" */
    int is_public;
    const char *const *caps; /* systems; duplicates are stored once */
    size_t ncaps;
    const char *json;        /* required: JSON object text */
    size_t json_len;
    const char *registrant;  /* NULL when registered from outside any system (an operator) */
    const char *endpoint;    /* NULL when none */
    const char *subject;     /* the caller's subject (HTTP), or NULL (this host's own) */
} reg_fields;

/* prev is the entry taken over for REG_REPLACED (e is the new one), NULL for other events. */
typedef void (*reg_event_fn)(void *ud, reg_event ev, const reg_entry *e, const reg_entry *prev);

typedef struct registry registry;

/* on_event (may be NULL) is called synchronously for every event, after the change;
 * for REG_EXPIRED / REG_DEREGISTERED the entry, and for REG_REPLACED prev, is freed after the
 * call returns. Changes from inside the callback are refused; queries are fine. */
registry *registry_new(reg_event_fn on_event, void *ud);

/* From inside on_event for REG_EXPIRED: the listener keeps the entry (it is not freed after
 * the call; it is unlinked from the registry and never changes again) and frees it later with
 * registry_entry_free. Lets the listener describe the expiry later than it happened (the
 * host renders expired events when their channel is read). */
void registry_keep(registry *r);
void registry_entry_free(const reg_entry *e);
void registry_free(registry *r);

/* Bounds on what the registry holds: entries in all (both kinds, live or not yet purged) and
 * entries per subject (those with a subject; this host's own have none). 0: no bound. A put
 * that would pass one first purges what has expired, then is refused (registry_refusal). */
void registry_set_limits(registry *r, size_t max_entries, size_t max_per_subject);

typedef enum {
    REG_REFUSED_NOTHING,    /* the last put succeeded */
    REG_REFUSED_INVALID,    /* fields or ttl invalid, or a change from inside on_event */
    REG_REFUSED_MEMORY,     /* out of memory */
    REG_REFUSED_FULL,       /* max_entries reached */
    REG_REFUSED_SUBJECT,    /* the subject holds max_per_subject entries */
} reg_refusal;
/* Why the last registry_put or registry_refresh failed. */
reg_refusal registry_refusal(const registry *r);
/* Puts refused by the limits since creation: max_entries and max_per_subject. */
void registry_refusals(const registry *r, size_t *full, size_t *subject);
/* Entries held for subject (live or not yet purged). */
size_t registry_subject_count(const registry *r, const char *subject);

/* Registers or replaces (never duplicates) an entry with expires_at = now + ttl (ttl > 0).
 * A live entry of the same registrant is renewed (REG_REFRESHED); a live entry of another
 * registrant is taken over (REG_REPLACED, with the previous content); when an expired but
 * unpurged entry was there, emits REG_EXPIRED for it and then REG_REGISTERED. Registering
 * again exactly what a live entry holds (a heartbeat) allocates nothing. Returns the entry, or
 * NULL (nothing changed) when out of memory or fields are invalid (empty id or one longer than
 * REG_ID_MAX, registrant longer than REG_REGISTRANT_MAX, ttl <= 0, missing json). */
const reg_entry *registry_put(registry *r, reg_kind kind, const reg_fields *f, double ttl, double now);

/* What registry_refresh did. */
typedef enum {
    REG_REFRESH_FAILED,     /* invalid fields or out of memory: nothing changed */
    REG_REFRESH_NOT_OWNER,  /* a live entry of another registrant holds the id: nothing changed */
    REG_REFRESH_RENEWED,    /* the registrant's own live entry: renewed (REG_REFRESHED) */
    REG_REFRESH_REGISTERED, /* absent or expired (purged or not): registered anew */
} reg_refresh_result;

/* A keep-alive: registry_put, except that a live entry of another registrant (f->registrant
 * compared as a string, NULL matching NULL) is left as it is. *out (out may be NULL) is the
 * entry now held: the refreshed one, or for REG_REFRESH_NOT_OWNER the other registrant's;
 * NULL on failure. The heartbeat path (same fields) allocates nothing. */
reg_refresh_result registry_refresh(registry *r, reg_kind kind, const reg_fields *f, double ttl,
                                    double now, const reg_entry **out);

/* Removes a live entry; emits REG_DEREGISTERED. With registrant != NULL only the
 * registrant's own entry is removed; with NULL (an operator) whatever is there. Returns 1 when
 * removed, 0 when absent or expired (an expired one is purged, REG_EXPIRED), -1 when a live
 * entry belongs to another registrant (nothing changed). */
int registry_remove(registry *r, reg_kind kind, const char *id, const char *registrant, double now);

const reg_entry *registry_get(const registry *r, reg_kind kind, const char *id, double now);

typedef struct reg_list {
    const reg_entry **items; /* malloc'd; free with reg_list_free */
    size_t count;
} reg_list;
void reg_list_free(reg_list *l);

/* Live channels, sorted by id. visibility: -1 any, 0 private, 1 public (found through the
 * index of channels by visibility: the cost grows with the channels of that visibility, not
 * with all). name_substr: NULL or a case-insensitive substring of the name. Returns 0, or -1
 * when out of memory. */
int registry_find_channels(const registry *r, int visibility, const char *name_substr, double now,
                           reg_list *out);
/* Live systems, sorted by id; capability NULL -> all, else systems with a service of exactly
 * that name (found through the index). Returns 0, or -1 when out of memory. */
int registry_find_systems(const registry *r, const char *capability, double now, reg_list *out);

/* One page of a listing: the entries with an id after `after` (NULL: from the first) that
 * `keep` accepts (NULL: all), at most `limit` of them (0: all), the lowest ids first. A page
 * costs a pass over the matches and O(matches * log limit), not a sort of them all. */
typedef struct reg_page {
    const char *after;
    size_t limit;
    int (*keep)(const reg_entry *e, void *ud);
    void *keep_ud;
} reg_page;
int registry_find_channels_page(const registry *r, int visibility, const char *name_substr, double now,
                                const reg_page *page, reg_list *out);
int registry_find_systems_page(const registry *r, const char *capability, double now, const reg_page *page,
                               reg_list *out);

/* Purges every entry with expires_at <= now, emitting REG_EXPIRED for each; returns how many. */
size_t registry_maintain(registry *r, double now);

size_t registry_count(const registry *r, reg_kind kind); /* entries held, live or not yet purged */
size_t registry_expired_total(const registry *r);        /* entries purged by expiry since creation */

#endif
