/* registry.c - the TTL service registry (see registry.h): two id maps, one expiry heap and
 * an index of service name -> systems. Every fallible step of a change (allocation) happens
 * before the registry is touched, so out of memory leaves it as it was. */
#include "model/registry.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"

/* Expiry times to the microsecond (they are printed in JSON, see host_now). */
static double round_us(double t) { return floor(t * 1e6 + 0.5) / 1e6; }

/* The systems holding one capability; order is unspecified (swap-remove). */
typedef struct cap_list {
    reg_entry **items;
    size_t count, cap;
} cap_list;

struct registry {
    uint64_t versions;   /* last version handed to an entry */
    hashmap *maps[2];    /* by kind: id -> reg_entry* */
    hashmap *caps;       /* service name -> cap_list* (never empty) */
    cap_list vis[2];     /* channels by visibility: [0] private, [1] public */
    heap expiry;         /* every entry, keyed by expires_at */
    reg_event_fn on_event;
    void *ud;
    int in_event;        /* > 0 while on_event runs: changes are refused (queries are fine) */
    int kept;            /* the listener kept the expired entry it was told of (registry_keep) */
    size_t expired_total;
    hashmap *subjects;   /* subject -> (void *)(entries held + 1), for max_per_subject */
    size_t max_entries, max_per_subject;
    reg_refusal refusal; /* why the last put failed */
    size_t refused_full, refused_subject; /* puts the limits refused */
};

const char *reg_event_name(reg_event ev)
{
    switch (ev) {
    case REG_REGISTERED:
        return "registered";
    case REG_REFRESHED:
        return "refreshed";
    case REG_REPLACED:
        return "replaced";
    case REG_EXPIRED:
        return "expired";
    case REG_DEREGISTERED:
        return "deregistered";
    }
    return "unknown";
}

const char *reg_kind_name(reg_kind k)
{
    switch (k) {
    case REG_CHANNEL:
        return "channel";
    case REG_SYSTEM:
        return "system";
    }
    return "unknown";
}

static hashmap *map_of(const registry *r, reg_kind kind)
{
    if (!r || (kind != REG_CHANNEL && kind != REG_SYSTEM))
        return NULL;
    return r->maps[kind];
}

static reg_entry *entry_of(heap_node *n)
{
    return (reg_entry *)((char *)n - offsetof(reg_entry, expiry));
}

static int is_live(const reg_entry *e, double now) { return e->expires_at > now; }

static void emit(registry *r, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    if (!r->on_event)
        return;
    r->in_event++;
    r->on_event(r->ud, ev, e, prev);
    r->in_event--;
}

/* Whether the entry belongs to this registrant (NULL, an operator's, matches only NULL). */
static int same_registrant(const reg_entry *e, const char *registrant)
{
    if (!e->registrant || !registrant)
        return e->registrant == registrant;
    return strcmp(e->registrant, registrant) == 0;
}

static int same_text(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* ---- entries ---- */

static char *copy_text(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

static void entry_free(reg_entry *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->json);
    free(e->name_lower);
    for (size_t i = 0; i < e->ncaps; i++)
        free(e->caps[i]);
    free(e->caps);
    free(e->cap_pos);
    free(e->registrant);
    free(e->endpoint);
    free(e->subject);
    free(e);
}

/* ---- entries per subject ---- */

static size_t subject_count(const registry *r, const char *subject)
{
    uintptr_t v = subject ? (uintptr_t)hashmap_get(r->subjects, subject) : 0;
    return v ? (size_t)(v - 1) : 0;
}

/* Makes sure subject has a counter, so counting it later allocates nothing; -1 when out of
 * memory. */
static int subject_reserve(registry *r, const char *subject)
{
    if (!subject || hashmap_get(r->subjects, subject))
        return 0;
    return hashmap_put(r->subjects, subject, (void *)(uintptr_t)1);
}

/* Counts one entry more (+1) or less (-1) for subject; a counter at zero goes. */
static void subject_add(registry *r, const char *subject, int delta)
{
    if (!subject)
        return;
    uintptr_t v = (uintptr_t)hashmap_get(r->subjects, subject);
    if (!v)
        return; /* reserved before every +1: cannot happen */
    v = delta > 0 ? v + 1 : v - 1;
    if (v <= 1)
        hashmap_remove(r->subjects, subject);
    else
        hashmap_put(r->subjects, subject, (void *)v); /* the key exists: no allocation */
}

/* Copies the capabilities of f into e, each distinct name once. */
static int entry_set_caps(reg_entry *e, const reg_fields *f)
{
    if (f->ncaps == 0)
        return 0;
    e->caps = calloc(f->ncaps, sizeof *e->caps);
    e->cap_pos = calloc(f->ncaps, sizeof *e->cap_pos);
    if (!e->caps || !e->cap_pos)
        return -1;
    for (size_t i = 0; i < f->ncaps; i++) {
        size_t j = 0;
        while (j < e->ncaps && strcmp(e->caps[j], f->caps[i]) != 0)
            j++;
        if (j < e->ncaps)
            continue; /* duplicate */
        e->caps[e->ncaps] = copy_text(f->caps[i], strlen(f->caps[i]));
        if (!e->caps[e->ncaps])
            return -1;
        e->ncaps++;
    }
    return 0;
}

/* A new, unlinked entry holding copies of f; NULL when out of memory. */
static reg_entry *entry_new(reg_kind kind, const reg_fields *f, double ttl, double now)
{
    static const heap_node unlinked = HEAP_NODE_INIT;
    reg_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->kind = kind;
    e->expiry = unlinked;
    e->is_public = f->is_public != 0;
    e->ttl = ttl;
    e->registered_at = now;
    e->expires_at = round_us(now + ttl);
    e->json_len = f->json_len ? f->json_len : strlen(f->json);
    const char *name = f->name ? f->name : "";
    e->id = copy_text(f->id, strlen(f->id));
    e->json = copy_text(f->json, e->json_len);
    e->name_lower = copy_text(name, strlen(name));
    if (!e->id || !e->json || !e->name_lower)
        goto fail;
    for (char *p = e->name_lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (f->registrant && !(e->registrant = copy_text(f->registrant, strlen(f->registrant))))
        goto fail;
    if (f->endpoint && !(e->endpoint = copy_text(f->endpoint, strlen(f->endpoint))))
        goto fail;
    if (f->subject && !(e->subject = copy_text(f->subject, strlen(f->subject))))
        goto fail;
    if (kind == REG_SYSTEM && entry_set_caps(e, f) != 0)
        goto fail;
    return e;
fail:
    entry_free(e);
    return NULL;
}

/* Exchanges everything but the heap nodes (a and b have the same kind and id), so a takes
 * b's content in place. */
static void entry_swap_content(reg_entry *a, reg_entry *b)
{
    reg_entry t = *a;
    heap_node keep_a = a->expiry, keep_b = b->expiry;
    *a = *b;
    *b = t;
    a->expiry = keep_a;
    b->expiry = keep_b;
}

/* ---- capability index ---- */

/* Frees the lists of these capabilities that hold no entry. */
static void index_drop_empty(registry *r, char *const *caps, size_t ncaps)
{
    for (size_t i = 0; i < ncaps; i++) {
        cap_list *l = hashmap_get(r->caps, caps[i]);
        if (l && l->count == 0) {
            hashmap_remove(r->caps, caps[i]);
            free(l->items);
            free(l);
        }
    }
}

/* Makes room for one more item in the list of every capability of e, creating missing lists.
 * On failure the index holds the same entries as before (empty lists created here are
 * dropped; capacity grown here is kept). */
static int list_reserve(cap_list *l)
{
    if (l->count < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 4;
    reg_entry **items = realloc(l->items, cap * sizeof *items);
    if (!items)
        return -1;
    l->items = items;
    l->cap = cap;
    return 0;
}

static int index_reserve(registry *r, const reg_entry *e)
{
    if (e->kind == REG_CHANNEL && list_reserve(&r->vis[e->is_public]) != 0)
        return -1;
    for (size_t i = 0; i < e->ncaps; i++) {
        cap_list *l = hashmap_get(r->caps, e->caps[i]);
        if (!l) {
            l = calloc(1, sizeof *l);
            if (!l)
                goto fail;
            if (hashmap_put(r->caps, e->caps[i], l) != 0) {
                free(l);
                goto fail;
            }
        }
        if (l->count == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 4;
            reg_entry **items = realloc(l->items, cap * sizeof *items);
            if (!items)
                goto fail;
            l->items = items;
            l->cap = cap;
        }
    }
    return 0;
fail:
    index_drop_empty(r, e->caps, e->ncaps);
    return -1;
}

/* Appends e to the list of each of its capabilities; index_reserve must have succeeded. */
static void index_add(registry *r, reg_entry *e)
{
    if (e->kind == REG_CHANNEL) {
        cap_list *v = &r->vis[e->is_public];
        e->vis_pos = v->count;
        v->items[v->count++] = e;
    }
    for (size_t i = 0; i < e->ncaps; i++) {
        cap_list *l = hashmap_get(r->caps, e->caps[i]);
        e->cap_pos[i] = l->count;
        l->items[l->count++] = e;
    }
}

/* Swap-removes e from the list of each of its capabilities; empty lists stay until
 * index_drop_empty, so a replacement can reuse them without allocating. */
static void index_unlink(registry *r, reg_entry *e)
{
    if (e->kind == REG_CHANNEL) {
        cap_list *v = &r->vis[e->is_public];
        reg_entry *last = v->items[--v->count];
        v->items[e->vis_pos] = last;
        last->vis_pos = e->vis_pos;
    }
    for (size_t i = 0; i < e->ncaps; i++) {
        cap_list *l = hashmap_get(r->caps, e->caps[i]);
        size_t pos = e->cap_pos[i];
        reg_entry *last = l->items[--l->count];
        if (last == e)
            continue;
        l->items[pos] = last;
        for (size_t j = 0; j < last->ncaps; j++) {
            if (strcmp(last->caps[j], e->caps[i]) == 0) {
                last->cap_pos[j] = pos;
                break;
            }
        }
    }
}

/* Takes e out of its map, the heap and the index; the caller reports and frees it. */
static void entry_unlink(registry *r, reg_entry *e)
{
    subject_add(r, e->subject, -1);
    hashmap_remove(r->maps[e->kind], e->id);
    heap_remove(&r->expiry, &e->expiry);
    index_unlink(r, e);
    index_drop_empty(r, e->caps, e->ncaps);
}

/* Reports an unlinked entry as expired and frees it, unless the listener kept it. */
static void emit_expired(registry *r, reg_entry *e)
{
    r->expired_total++;
    r->kept = 0;
    emit(r, REG_EXPIRED, e, NULL);
    if (!r->kept)
        entry_free(e);
    r->kept = 0;
}

void registry_keep(registry *r)
{
    if (r && r->in_event)
        r->kept = 1;
}

void registry_entry_free(const reg_entry *e) { entry_free((reg_entry *)e); }

static void purge_expired(registry *r, reg_entry *e)
{
    entry_unlink(r, e);
    emit_expired(r, e);
}

/* ---- lifecycle ---- */

registry *registry_new(reg_event_fn on_event, void *ud)
{
    registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->maps[REG_CHANNEL] = hashmap_new();
    r->maps[REG_SYSTEM] = hashmap_new();
    r->caps = hashmap_new();
    r->subjects = hashmap_new();
    if (!r->maps[REG_CHANNEL] || !r->maps[REG_SYSTEM] || !r->caps || !r->subjects) {
        hashmap_free(r->maps[REG_CHANNEL]);
        hashmap_free(r->maps[REG_SYSTEM]);
        hashmap_free(r->caps);
        hashmap_free(r->subjects);
        free(r);
        return NULL;
    }
    heap_init(&r->expiry);
    r->on_event = on_event;
    r->ud = ud;
    return r;
}

void registry_free(registry *r)
{
    if (!r)
        return;
    heap_free(&r->expiry); /* first: it marks the nodes, which live in the entries */
    hashmap_iter it;
    void *v;
    for (int k = 0; k < 2; k++) {
        hashmap_iter_init(r->maps[k], &it);
        while (hashmap_iter_next(r->maps[k], &it, NULL, &v))
            entry_free(v);
        hashmap_free(r->maps[k]);
    }
    hashmap_iter_init(r->caps, &it);
    while (hashmap_iter_next(r->caps, &it, NULL, &v)) {
        cap_list *l = v;
        free(l->items);
        free(l);
    }
    hashmap_free(r->caps);
    hashmap_free(r->subjects);
    free(r->vis[0].items);
    free(r->vis[1].items);
    free(r);
}

void registry_set_limits(registry *r, size_t max_entries, size_t max_per_subject)
{
    r->max_entries = max_entries;
    r->max_per_subject = max_per_subject;
}

reg_refusal registry_refusal(const registry *r) { return r->refusal; }

void registry_refusals(const registry *r, size_t *full, size_t *subject)
{
    *full = r->refused_full;
    *subject = r->refused_subject;
}

size_t registry_subject_count(const registry *r, const char *subject) { return subject_count(r, subject); }

/* Whether a put of f may add what it adds under the limits (purging what has expired when a
 * limit is reached); sets r->refusal when not. */
static int within_limits(registry *r, reg_kind kind, const reg_fields *f, double now)
{
    for (int purged = 0;; purged = 1) {
        const reg_entry *old = hashmap_get(r->maps[kind], f->id);
        size_t held = hashmap_count(r->maps[REG_CHANNEL]) + hashmap_count(r->maps[REG_SYSTEM]);
        int full = !old && r->max_entries && held >= r->max_entries;
        int subject_full = f->subject && r->max_per_subject && (!old || !same_text(old->subject, f->subject)) &&
                           subject_count(r, f->subject) >= r->max_per_subject;
        if (!full && !subject_full)
            return 1;
        if (purged) {
            r->refusal = full ? REG_REFUSED_FULL : REG_REFUSED_SUBJECT;
            if (full)
                r->refused_full++;
            else
                r->refused_subject++;
            return 0;
        }
        registry_maintain(r, now);
    }
}

/* ---- changes ---- */

static int fields_valid(reg_kind kind, const reg_fields *f, double ttl, double now)
{
    if (!f || !f->id || !f->id[0] || strlen(f->id) > REG_ID_MAX || !f->json)
        return 0;
    if (f->registrant && strlen(f->registrant) > REG_REGISTRANT_MAX)
        return 0;
    if (!(ttl > 0) || !isfinite(ttl) || !isfinite(now + ttl))
        return 0;
    if (kind == REG_SYSTEM && f->ncaps > 0) {
        if (!f->caps)
            return 0;
        for (size_t i = 0; i < f->ncaps; i++) {
            if (!f->caps[i])
                return 0;
        }
    }
    return 1;
}

/* Whether f would store exactly what e holds (JSON, name, visibility, capabilities,
 * registrant, endpoint). */
static int same_fields(const reg_entry *e, const reg_fields *f, size_t json_len)
{
    if (e->json_len != json_len || memcmp(e->json, f->json, json_len) != 0 || e->is_public != f->is_public)
        return 0;
    if (!same_registrant(e, f->registrant) || !same_text(e->endpoint, f->endpoint) ||
        !same_text(e->subject, f->subject))
        return 0;
    const char *name = f->name ? f->name : "";
    size_t i = 0;
    for (; name[i]; i++)
        if (e->name_lower[i] != (char)tolower((unsigned char)name[i]))
            return 0;
    if (e->name_lower[i])
        return 0;
    if (e->ncaps != f->ncaps)
        return 0;
    for (size_t c = 0; c < f->ncaps; c++)
        if (strcmp(e->caps[c], f->caps[c]) != 0)
            return 0;
    return 1;
}

const reg_entry *registry_put(registry *r, reg_kind kind, const reg_fields *f, double ttl,
                              double now)
{
    hashmap *map = map_of(r, kind);
    if (!map || r->in_event || !fields_valid(kind, f, ttl, now)) {
        if (r)
            r->refusal = REG_REFUSED_INVALID;
        return NULL;
    }
    r->refusal = REG_REFUSED_NOTHING;
    /* A heartbeat re-registers the same thing: same JSON (which holds every field the
     * indexes use) and registrant. Then only the expiry moves, with nothing to allocate. */
    reg_entry *same = hashmap_get(map, f->id);
    size_t json_len = f->json_len ? f->json_len : strlen(f->json);
    if (same && is_live(same, now) && same_fields(same, f, json_len)) {
        same->ttl = ttl;
        same->expires_at = round_us(now + ttl);
        same->version = ++r->versions;
        heap_update(&r->expiry, &same->expiry, same->expires_at);
        emit(r, REG_REFRESHED, same, NULL);
        return same;
    }
    if (!within_limits(r, kind, f, now))
        return NULL;
    r->refusal = REG_REFUSED_MEMORY; /* until it succeeds */
    reg_entry *n = entry_new(kind, f, ttl, now);
    if (!n)
        return NULL;
    if (subject_reserve(r, n->subject) != 0 || index_reserve(r, n) != 0) {
        if (n->subject && subject_count(r, n->subject) == 0)
            hashmap_remove(r->subjects, n->subject);
        entry_free(n);
        return NULL;
    }
    reg_entry *old = hashmap_get(map, n->id);
    if (!old) {
        if (heap_push(&r->expiry, &n->expiry, n->expires_at) != 0)
            goto fail;
        if (hashmap_put(map, n->id, n) != 0) {
            heap_remove(&r->expiry, &n->expiry);
            goto fail;
        }
        index_add(r, n);
        subject_add(r, n->subject, +1);
        n->version = ++r->versions;
        r->refusal = REG_REFUSED_NOTHING;
        emit(r, REG_REGISTERED, n, NULL);
        return n;
    }

    /* Replace in place: old keeps its map slot and heap node and takes n's content; n is left
     * holding the previous content, unlinked, to be reported (if expired) and freed. */
    int was_live = is_live(old, now), taken_over = was_live && !same_registrant(old, f->registrant);
    index_unlink(r, old);
    entry_swap_content(old, n);
    index_add(r, old);
    index_drop_empty(r, n->caps, n->ncaps);
    subject_add(r, old->subject, +1);
    subject_add(r, n->subject, -1);
    r->refusal = REG_REFUSED_NOTHING;
    old->version = ++r->versions;
    if (taken_over) {
        /* a new registration (registered_at now); n, unlinked, shows what it took over */
        heap_update(&r->expiry, &old->expiry, old->expires_at);
        emit(r, REG_REPLACED, old, n);
        entry_free(n);
        return old;
    }
    if (was_live) {
        old->registered_at = n->registered_at; /* first registration of this live entry */
        heap_update(&r->expiry, &old->expiry, old->expires_at);
        entry_free(n);
        emit(r, REG_REFRESHED, old, NULL);
        return old;
    }
    /* The previous entry had expired: report it first, while the new content is held but not
     * yet live (queries see neither), then make the new one live and report it. */
    double expires_at = old->expires_at;
    old->expires_at = n->expires_at;
    emit_expired(r, n);
    old->expires_at = expires_at;
    heap_update(&r->expiry, &old->expiry, old->expires_at);
    emit(r, REG_REGISTERED, old, NULL);
    return old;
fail:
    index_drop_empty(r, n->caps, n->ncaps);
    if (n->subject && subject_count(r, n->subject) == 0)
        hashmap_remove(r->subjects, n->subject);
    entry_free(n);
    return NULL;
}

reg_refresh_result registry_refresh(registry *r, reg_kind kind, const reg_fields *f, double ttl,
                                    double now, const reg_entry **out)
{
    const reg_entry *dummy;
    if (!out)
        out = &dummy;
    *out = NULL;
    hashmap *map = map_of(r, kind);
    if (!map || r->in_event || !fields_valid(kind, f, ttl, now)) {
        if (r)
            r->refusal = REG_REFUSED_INVALID;
        return REG_REFRESH_FAILED;
    }
    const reg_entry *e = hashmap_get(map, f->id);
    int live = e && is_live(e, now);
    if (live && !same_registrant(e, f->registrant)) {
        *out = e;
        return REG_REFRESH_NOT_OWNER;
    }
    *out = registry_put(r, kind, f, ttl, now);
    if (!*out)
        return REG_REFRESH_FAILED;
    return live ? REG_REFRESH_RENEWED : REG_REFRESH_REGISTERED;
}

int registry_remove(registry *r, reg_kind kind, const char *id, const char *registrant, double now)
{
    hashmap *map = map_of(r, kind);
    if (!map || !id || r->in_event)
        return 0;
    reg_entry *e = hashmap_get(map, id);
    if (!e)
        return 0;
    if (!is_live(e, now)) {
        purge_expired(r, e);
        return 0;
    }
    if (registrant && !same_registrant(e, registrant))
        return -1;
    entry_unlink(r, e);
    emit(r, REG_DEREGISTERED, e, NULL);
    entry_free(e);
    return 1;
}

size_t registry_maintain(registry *r, double now)
{
    if (!r || r->in_event)
        return 0;
    size_t n = 0;
    heap_node *top;
    while ((top = heap_peek(&r->expiry)) && top->key <= now) {
        purge_expired(r, entry_of(top));
        n++;
    }
    return n;
}

/* ---- queries ---- */

const reg_entry *registry_get(const registry *r, reg_kind kind, const char *id, double now)
{
    hashmap *map = map_of(r, kind);
    if (!map || !id)
        return NULL;
    const reg_entry *e = hashmap_get(map, id);
    return e && is_live(e, now) ? e : NULL;
}

void reg_list_free(reg_list *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int by_id(const void *a, const void *b)
{
    const reg_entry *x = *(const reg_entry *const *)a;
    const reg_entry *y = *(const reg_entry *const *)b;
    return strcmp(x->id, y->id);
}

/* Room for up to n results; 0, or -1 when out of memory. */
static int list_alloc(reg_list *out, size_t n)
{
    out->items = NULL;
    out->count = 0;
    if (n == 0)
        return 0;
    out->items = malloc(n * sizeof *out->items);
    return out->items ? 0 : -1;
}

static void list_sort(reg_list *out)
{
    if (out->count > 1)
        qsort(out->items, out->count, sizeof *out->items, by_id);
}

/* Whether e belongs on the page (past `after`, accepted by `keep`). */
static int on_page(const reg_entry *e, const reg_page *page)
{
    if (!page)
        return 1;
    if (page->after && strcmp(e->id, page->after) <= 0)
        return 0;
    return !page->keep || page->keep(e, page->keep_ud);
}

/* Sifts item i down the max-heap (by id) of n items. */
static void sift_down(const reg_entry **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && strcmp(h[l]->id, h[m]->id) > 0)
            m = l;
        if (l + 1 < n && strcmp(h[l + 1]->id, h[m]->id) > 0)
            m = l + 1;
        if (m == i)
            return;
        const reg_entry *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Keeps the `limit` lowest ids of out (a max-heap of the best so far), then sorts them. */
static void list_finish(reg_list *out, const reg_page *page)
{
    size_t limit = page ? page->limit : 0;
    if (limit && out->count > limit) {
        const reg_entry **h = out->items;
        for (size_t i = limit / 2 + 1; i-- > 0;)
            sift_down(h, limit, i);
        for (size_t i = limit; i < out->count; i++) {
            if (strcmp(h[i]->id, h[0]->id) < 0) {
                h[0] = h[i];
                sift_down(h, limit, 0);
            }
        }
        out->count = limit;
    }
    list_sort(out);
}

int registry_find_channels(const registry *r, int visibility, const char *name_substr, double now,
                           reg_list *out)
{
    return registry_find_channels_page(r, visibility, name_substr, now, NULL, out);
}

int registry_find_systems(const registry *r, const char *capability, double now, reg_list *out)
{
    return registry_find_systems_page(r, capability, now, NULL, out);
}

int registry_find_channels_page(const registry *r, int visibility, const char *name_substr, double now,
                                const reg_page *page, reg_list *out)
{
    if (!out)
        return -1;
    out->items = NULL;
    out->count = 0;
    if (!r)
        return -1;
    char *needle = NULL;
    if (name_substr && name_substr[0]) {
        needle = copy_text(name_substr, strlen(name_substr));
        if (!needle)
            return -1;
        for (char *p = needle; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    const hashmap *map = r->maps[REG_CHANNEL];
    const cap_list *vis = visibility >= 0 ? &r->vis[visibility != 0] : NULL;
    if (list_alloc(out, vis ? vis->count : hashmap_count(map)) != 0) {
        free(needle);
        return -1;
    }
    if (vis) { /* the channels of that visibility only */
        for (size_t i = 0; i < vis->count; i++) {
            const reg_entry *e = vis->items[i];
            if (is_live(e, now) && (!needle || strstr(e->name_lower, needle)) && on_page(e, page))
                out->items[out->count++] = e;
        }
        free(needle);
        list_finish(out, page);
        return 0;
    }
    hashmap_iter it;
    void *v;
    hashmap_iter_init(map, &it);
    while (hashmap_iter_next(map, &it, NULL, &v)) {
        const reg_entry *e = v;
        if (!is_live(e, now))
            continue;
        if (needle && !strstr(e->name_lower, needle))
            continue;
        if (on_page(e, page))
            out->items[out->count++] = e;
    }
    free(needle);
    list_finish(out, page);
    return 0;
}

int registry_find_systems_page(const registry *r, const char *capability, double now, const reg_page *page,
                               reg_list *out)
{
    if (!out)
        return -1;
    out->items = NULL;
    out->count = 0;
    if (!r)
        return -1;
    if (!capability) {
        const hashmap *map = r->maps[REG_SYSTEM];
        if (list_alloc(out, hashmap_count(map)) != 0)
            return -1;
        hashmap_iter it;
        void *v;
        hashmap_iter_init(map, &it);
        while (hashmap_iter_next(map, &it, NULL, &v)) {
            const reg_entry *e = v;
            if (is_live(e, now) && on_page(e, page))
                out->items[out->count++] = e;
        }
    } else {
        const cap_list *l = hashmap_get(r->caps, capability);
        if (!l)
            return 0;
        if (list_alloc(out, l->count) != 0)
            return -1;
        for (size_t i = 0; i < l->count; i++) {
            if (is_live(l->items[i], now) && on_page(l->items[i], page))
                out->items[out->count++] = l->items[i];
        }
    }
    list_finish(out, page);
    return 0;
}

size_t registry_count(const registry *r, reg_kind kind)
{
    hashmap *map = map_of(r, kind);
    return map ? hashmap_count(map) : 0;
}

size_t registry_expired_total(const registry *r) { return r ? r->expired_total : 0; }
