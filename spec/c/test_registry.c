/* test_registry.c - unit tests for the TTL service registry (host/model/registry.c).
 * Time is passed in explicitly, so expiry is tested with plain numbers, no sleeps.
 * Every change is checked through the event callback as well as through the queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/registry.h"

#define REC_MAX 64

/* Records the events a registry emits, and what the registry showed while each ran. */
typedef struct rec {
    registry *r;
    double now;                 /* the time queries in the callback use */
    size_t n[5];                /* events by type */
    size_t len;                 /* events logged below (the first REC_MAX) */
    reg_event ev[REC_MAX];
    reg_kind kind[REC_MAX];
    char id[REC_MAX][32];
    char json[REC_MAX][32];
    char registrant[REC_MAX][32]; /* "" for none */
    char prev_json[REC_MAX][32];  /* REG_REPLACED: what was taken over ("" otherwise) */
    char prev_registrant[REC_MAX][32];
    int has_prev[REC_MAX];
    int visible[REC_MAX];       /* registry_get found the id during the callback */
    size_t count[REC_MAX];      /* registry_count of the kind during the callback */
    int refused[REC_MAX];       /* a mutation tried from the callback was refused */
    int try_mutate;
} rec;

static void on_event(void *ud, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    rec *c = ud;
    c->n[ev]++;
    if (c->len >= REC_MAX)
        return;
    size_t i = c->len++;
    c->ev[i] = ev;
    c->kind[i] = e->kind;
    snprintf(c->id[i], sizeof c->id[i], "%s", e->id);
    snprintf(c->json[i], sizeof c->json[i], "%.*s", (int)e->json_len, e->json);
    snprintf(c->registrant[i], sizeof c->registrant[i], "%s", e->registrant ? e->registrant : "");
    c->has_prev[i] = prev != NULL;
    c->prev_json[i][0] = c->prev_registrant[i][0] = '\0';
    if (prev) {
        snprintf(c->prev_json[i], sizeof c->prev_json[i], "%.*s", (int)prev->json_len, prev->json);
        snprintf(c->prev_registrant[i], sizeof c->prev_registrant[i], "%s",
                 prev->registrant ? prev->registrant : "");
    }
    c->visible[i] = registry_get(c->r, e->kind, e->id, c->now) != NULL;
    c->count[i] = registry_count(c->r, e->kind);
    if (c->try_mutate) {
        reg_fields f = {.id = "intruder", .json = "{}"};
        c->refused[i] = registry_put(c->r, REG_CHANNEL, &f, 5, c->now) == NULL &&
                        registry_remove(c->r, e->kind, e->id, NULL, c->now) == 0 &&
                        registry_refresh(c->r, REG_CHANNEL, &f, 5, c->now, NULL) == REG_REFRESH_FAILED &&
                        registry_maintain(c->r, c->now + 1e9) == 0;
    }
}

static registry *new_reg(rec *c)
{
    memset(c, 0, sizeof *c);
    c->r = registry_new(on_event, c);
    return c->r;
}

static const reg_entry *put_channel(registry *r, const char *id, const char *name, int is_public,
                                    double ttl, double now)
{
    reg_fields f = {.id = id, .name = name, .is_public = is_public, .json = "{\"c\":1}",
                    .json_len = 7};
    return registry_put(r, REG_CHANNEL, &f, ttl, now);
}

static const reg_entry *put_system(registry *r, const char *id, const char *const *caps,
                                   size_t ncaps, const char *registrant, double ttl, double now)
{
    reg_fields f = {.id = id, .name = id, .caps = caps, .ncaps = ncaps, .json = "{\"s\":1}",
                    .json_len = 7, .registrant = registrant};
    return registry_put(r, REG_SYSTEM, &f, ttl, now);
}

/* The ids of a list joined with ',' (for comparing results in one CHECK). */
static const char *ids(const reg_list *l, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", l->items[i]->id);
    return buf;
}

static const char *find_sys(const registry *r, const char *cap, double now, char *buf, size_t size)
{
    reg_list l;
    if (registry_find_systems(r, cap, now, &l) != 0)
        return "(error)";
    ids(&l, buf, size);
    reg_list_free(&l);
    return buf;
}

static const char *find_ch(const registry *r, int vis, const char *name, double now, char *buf,
                           size_t size)
{
    reg_list l;
    if (registry_find_channels(r, vis, name, now, &l) != 0)
        return "(error)";
    ids(&l, buf, size);
    reg_list_free(&l);
    return buf;
}

static void test_names(void)
{
    CHECK(strcmp(reg_event_name(REG_REGISTERED), "registered") == 0);
    CHECK(strcmp(reg_event_name(REG_REFRESHED), "refreshed") == 0);
    CHECK(strcmp(reg_event_name(REG_REPLACED), "replaced") == 0);
    CHECK(strcmp(reg_event_name(REG_EXPIRED), "expired") == 0);
    CHECK(strcmp(reg_event_name(REG_DEREGISTERED), "deregistered") == 0);
    CHECK(strcmp(reg_kind_name(REG_CHANNEL), "channel") == 0);
    CHECK(strcmp(reg_kind_name(REG_SYSTEM), "system") == 0);
}

static void test_register_and_get(void)
{
    rec c;
    registry *r = new_reg(&c);
    char id[] = "temperature-feed", name[] = "Temperature Feed", json[] = "{\"id\":1}XYZ";
    char registrant[] = "host-1/sensor-1", endpoint[] = "http://127.0.0.1:7400";
    reg_fields f = {.id = id, .name = name, .is_public = 1, .json = json, .json_len = 8,
                    .registrant = registrant, .endpoint = endpoint};
    c.now = 100;
    const reg_entry *e = registry_put(r, REG_CHANNEL, &f, 30, 100);
    CHECK(e != NULL);
    /* the strings are copies */
    id[0] = name[0] = json[0] = registrant[0] = endpoint[0] = 'X';
    e = registry_get(r, REG_CHANNEL, "temperature-feed", 100);
    CHECK(e != NULL);
    if (e) {
        CHECK(e->kind == REG_CHANNEL);
        CHECK(strcmp(e->id, "temperature-feed") == 0);
        CHECK(e->json_len == 8 && strcmp(e->json, "{\"id\":1}") == 0);
        CHECK(strcmp(e->name_lower, "temperature feed") == 0);
        CHECK(e->is_public == 1);
        CHECK(e->registrant && strcmp(e->registrant, "host-1/sensor-1") == 0);
        CHECK(e->endpoint && strcmp(e->endpoint, "http://127.0.0.1:7400") == 0);
        CHECK(e->ttl == 30 && e->registered_at == 100 && e->expires_at == 130);
        CHECK(e->ncaps == 0);
    }
    CHECK(registry_count(r, REG_CHANNEL) == 1 && registry_count(r, REG_SYSTEM) == 0);
    /* channels and systems are separate namespaces */
    CHECK(registry_get(r, REG_SYSTEM, "temperature-feed", 100) == NULL);
    CHECK(registry_get(r, REG_CHANNEL, "other", 100) == NULL);
    CHECK(c.len == 1 && c.ev[0] == REG_REGISTERED && c.kind[0] == REG_CHANNEL);
    CHECK(strcmp(c.id[0], "temperature-feed") == 0 && c.visible[0] == 1);

    /* name NULL -> "", json_len 0 -> strlen, no registrant, no endpoint */
    reg_fields g = {.id = "bare", .json = "{}"};
    e = registry_put(r, REG_SYSTEM, &g, 5, 100);
    CHECK(e && strcmp(e->name_lower, "") == 0 && e->json_len == 2 && e->registrant == NULL &&
          e->endpoint == NULL);
    CHECK(registry_get(r, REG_SYSTEM, "bare", 100) == e);
    registry_free(r);
}

static void test_invalid_fields(void)
{
    rec c;
    registry *r = new_reg(&c);
    reg_fields ok = {.id = "a", .json = "{}"};
    reg_fields f = ok;
    f.id = "";
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) == NULL);
    f.id = NULL;
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) == NULL);
    f = ok;
    f.json = NULL;
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, &ok, 0, 0) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, &ok, -1, 0) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, &ok, NAN, 0) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, &ok, INFINITY, 0) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, &ok, 10, NAN) == NULL);
    CHECK(registry_put(r, REG_CHANNEL, NULL, 10, 0) == NULL);
    CHECK(registry_put(r, (reg_kind)7, &ok, 10, 0) == NULL);
    f = ok;
    const char *caps[] = {"x", NULL};
    f.caps = caps;
    f.ncaps = 2;
    CHECK(registry_put(r, REG_SYSTEM, &f, 10, 0) == NULL);
    /* ids up to REG_ID_MAX bytes, registrants up to REG_REGISTRANT_MAX */
    char long_id[REG_ID_MAX + 2], long_registrant[REG_REGISTRANT_MAX + 2];
    memset(long_id, 'i', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    memset(long_registrant, 'r', sizeof long_registrant - 1);
    long_registrant[sizeof long_registrant - 1] = '\0';
    f = ok;
    f.id = long_id;
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) == NULL);
    CHECK(registry_refresh(r, REG_CHANNEL, &f, 10, 0, NULL) == REG_REFRESH_FAILED);
    f = ok;
    f.registrant = long_registrant;
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) == NULL);
    CHECK(registry_count(r, REG_CHANNEL) == 0 && registry_count(r, REG_SYSTEM) == 0);
    CHECK(c.len == 0);
    long_id[REG_ID_MAX] = '\0';
    long_registrant[REG_REGISTRANT_MAX] = '\0';
    f.id = long_id;
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) != NULL);
    CHECK(registry_remove(r, REG_CHANNEL, long_id, NULL, 0) == 1);
    c.len = 0;
    /* nothing was indexed by the refused system */
    char buf[64];
    CHECK(strcmp(find_sys(r, "x", 0, buf, sizeof buf), "") == 0);
    registry_free(r);
}

static void test_reregister_replaces(void)
{
    rec c;
    registry *r = new_reg(&c);
    reg_fields f = {.id = "feed", .name = "Old", .json = "{\"v\":1}", .json_len = 7};
    const reg_entry *first = registry_put(r, REG_CHANNEL, &f, 10, 0);
    CHECK(first != NULL);
    f.name = "New";
    f.json = "{\"v\":2}";
    f.is_public = 1;
    c.now = 5;
    const reg_entry *second = registry_put(r, REG_CHANNEL, &f, 20, 5);
    CHECK(second != NULL);
    CHECK(registry_count(r, REG_CHANNEL) == 1);
    const reg_entry *e = registry_get(r, REG_CHANNEL, "feed", 5);
    CHECK(e == second);
    if (e) {
        CHECK(strcmp(e->json, "{\"v\":2}") == 0 && strcmp(e->name_lower, "new") == 0);
        CHECK(e->is_public == 1 && e->ttl == 20 && e->expires_at == 25);
        CHECK(e->registered_at == 0); /* first registration of this live entry */
    }
    char buf[64];
    CHECK(strcmp(find_ch(r, -1, NULL, 5, buf, sizeof buf), "feed") == 0);
    CHECK(strcmp(find_ch(r, -1, "old", 5, buf, sizeof buf), "") == 0);
    CHECK(c.len == 2 && c.ev[0] == REG_REGISTERED && c.ev[1] == REG_REFRESHED);
    CHECK(strcmp(c.json[1], "{\"v\":2}") == 0 && c.visible[1] == 1 && c.count[1] == 1);
    /* the new expiry governs: still live after the old one (10), gone at 25 */
    CHECK(registry_maintain(r, 10) == 0);
    CHECK(registry_get(r, REG_CHANNEL, "feed", 24.9) != NULL);
    CHECK(registry_maintain(r, 25) == 1);
    CHECK(registry_count(r, REG_CHANNEL) == 0);
    registry_free(r);
}

static void test_liveness_boundary(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *caps[] = {"temp"};
    CHECK(put_channel(r, "ch", "Chan", 1, 10, 0) != NULL);
    CHECK(put_system(r, "sys", caps, 1, NULL, 10, 0) != NULL);
    CHECK(registry_get(r, REG_CHANNEL, "ch", 9.999) != NULL);
    CHECK(registry_get(r, REG_SYSTEM, "sys", 9.999) != NULL);
    /* expires_at == now is not live, before and without any maintenance */
    CHECK(registry_get(r, REG_CHANNEL, "ch", 10) == NULL);
    CHECK(registry_get(r, REG_SYSTEM, "sys", 10) == NULL);
    char buf[64];
    CHECK(strcmp(find_ch(r, -1, NULL, 10, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, NULL, 10, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "temp", 10, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "temp", 9.5, buf, sizeof buf), "sys") == 0);
    /* held until purged */
    CHECK(registry_count(r, REG_CHANNEL) == 1 && registry_count(r, REG_SYSTEM) == 1);
    CHECK(registry_maintain(r, 9.999) == 0);
    CHECK(registry_maintain(r, 10) == 2);
    CHECK(registry_count(r, REG_CHANNEL) == 0 && registry_count(r, REG_SYSTEM) == 0);
    CHECK(c.n[REG_EXPIRED] == 2 && registry_expired_total(r) == 2);
    registry_free(r);
}

static void test_maintain_purges_expired(void)
{
    rec c;
    registry *r = new_reg(&c);
    CHECK(put_channel(r, "c5", "", 0, 5, 0) != NULL);
    CHECK(put_channel(r, "c8", "", 0, 8, 0) != NULL);
    CHECK(put_channel(r, "c20", "", 0, 20, 0) != NULL);
    CHECK(put_system(r, "s3", NULL, 0, NULL, 3, 0) != NULL);
    CHECK(put_system(r, "s30", NULL, 0, NULL, 30, 0) != NULL);
    c.len = 0;
    c.now = 8;
    CHECK(registry_maintain(r, 8) == 3);
    /* earliest expiry first; entry still readable in the callback, already gone from queries */
    CHECK(c.len == 3);
    CHECK(c.ev[0] == REG_EXPIRED && strcmp(c.id[0], "s3") == 0 && c.kind[0] == REG_SYSTEM);
    CHECK(c.ev[1] == REG_EXPIRED && strcmp(c.id[1], "c5") == 0 && c.kind[1] == REG_CHANNEL);
    CHECK(c.ev[2] == REG_EXPIRED && strcmp(c.id[2], "c8") == 0);
    CHECK(c.visible[0] == 0 && c.visible[1] == 0 && c.visible[2] == 0);
    CHECK(c.count[0] == 1 && c.count[2] == 1); /* s3 left 1 system; c8 left 1 channel */
    CHECK(registry_count(r, REG_CHANNEL) == 1 && registry_count(r, REG_SYSTEM) == 1);
    CHECK(registry_get(r, REG_CHANNEL, "c20", 8) != NULL);
    CHECK(registry_get(r, REG_SYSTEM, "s30", 8) != NULL);
    CHECK(registry_expired_total(r) == 3);
    CHECK(registry_maintain(r, 8) == 0);
    CHECK(registry_maintain(r, 100) == 2);
    CHECK(registry_expired_total(r) == 5);
    CHECK(registry_maintain(r, 1000) == 0);
    registry_free(r);
}

static void test_put_over_expired(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *old_caps[] = {"old"}, *new_caps[] = {"new"};
    CHECK(put_system(r, "s", old_caps, 1, "me", 10, 0) != NULL);
    c.len = 0;
    c.now = 15;
    reg_fields f = {.id = "s", .name = "S", .caps = new_caps, .ncaps = 1, .json = "{\"v\":2}",
                    .json_len = 7};
    const reg_entry *e = registry_put(r, REG_SYSTEM, &f, 10, 15);
    CHECK(e != NULL);
    CHECK(c.len == 2);
    CHECK(c.ev[0] == REG_EXPIRED && strcmp(c.id[0], "s") == 0);
    CHECK(strcmp(c.json[0], "{\"s\":1}") == 0); /* the expired entry's own content */
    CHECK(c.visible[0] == 0);
    CHECK(c.ev[1] == REG_REGISTERED && strcmp(c.id[1], "s") == 0);
    CHECK(strcmp(c.json[1], "{\"v\":2}") == 0 && c.visible[1] == 1);
    CHECK(registry_count(r, REG_SYSTEM) == 1);
    CHECK(registry_expired_total(r) == 1);
    if (e) {
        CHECK(e->registered_at == 15 && e->expires_at == 25 && e->registrant == NULL);
    }
    char buf[64];
    CHECK(strcmp(find_sys(r, "old", 15, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "new", 15, buf, sizeof buf), "s") == 0);
    /* the old expiry no longer applies */
    CHECK(registry_maintain(r, 20) == 0);
    CHECK(registry_maintain(r, 25) == 1);
    registry_free(r);
}

static void test_visibility_filter(void)
{
    rec c;
    registry *r = new_reg(&c);
    put_channel(r, "pub1", "A", 1, 10, 0);
    put_channel(r, "priv1", "B", 0, 10, 0);
    put_channel(r, "pub2", "C", 1, 10, 0);
    char buf[64];
    CHECK(strcmp(find_ch(r, 1, NULL, 0, buf, sizeof buf), "pub1,pub2") == 0);
    CHECK(strcmp(find_ch(r, 0, NULL, 0, buf, sizeof buf), "priv1") == 0);
    CHECK(strcmp(find_ch(r, -1, NULL, 0, buf, sizeof buf), "priv1,pub1,pub2") == 0);
    registry_free(r);
}

static void test_name_substring(void)
{
    rec c;
    registry *r = new_reg(&c);
    put_channel(r, "t", "Temperature Feed", 1, 10, 0);
    put_channel(r, "h", "Humidity", 0, 10, 0);
    put_channel(r, "p", "Pressure FEED", 1, 10, 0);
    char buf[64];
    CHECK(strcmp(find_ch(r, -1, "temperature", 0, buf, sizeof buf), "t") == 0);
    CHECK(strcmp(find_ch(r, -1, "TEMP", 0, buf, sizeof buf), "t") == 0);
    CHECK(strcmp(find_ch(r, -1, "feed", 0, buf, sizeof buf), "p,t") == 0);
    CHECK(strcmp(find_ch(r, -1, "e f", 0, buf, sizeof buf), "p,t") == 0);
    CHECK(strcmp(find_ch(r, 0, "feed", 0, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_ch(r, 1, "feed", 0, buf, sizeof buf), "p,t") == 0);
    CHECK(strcmp(find_ch(r, -1, "wind", 0, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_ch(r, -1, "", 0, buf, sizeof buf), "h,p,t") == 0);
    CHECK(strcmp(find_ch(r, -1, NULL, 0, buf, sizeof buf), "h,p,t") == 0);
    registry_free(r);
}

static void test_capability_exact(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *a[] = {"temperature", "humidity"}, *b[] = {"temp"}, *d[] = {"Temperature"};
    put_system(r, "a", a, 2, NULL, 10, 0);
    put_system(r, "b", b, 1, NULL, 10, 0);
    put_system(r, "d", d, 1, NULL, 10, 0);
    put_system(r, "none", NULL, 0, NULL, 10, 0);
    char buf[64];
    CHECK(strcmp(find_sys(r, "temp", 0, buf, sizeof buf), "b") == 0);
    CHECK(strcmp(find_sys(r, "temperature", 0, buf, sizeof buf), "a") == 0);
    CHECK(strcmp(find_sys(r, "Temperature", 0, buf, sizeof buf), "d") == 0);
    CHECK(strcmp(find_sys(r, "humidity", 0, buf, sizeof buf), "a") == 0);
    CHECK(strcmp(find_sys(r, "tempera", 0, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "", 0, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, NULL, 0, buf, sizeof buf), "a,b,d,none") == 0);
    /* channels never enter the capability index */
    reg_fields f = {.id = "chan", .caps = b, .ncaps = 1, .json = "{}"};
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) != NULL);
    CHECK(strcmp(find_sys(r, "temp", 0, buf, sizeof buf), "b") == 0);
    registry_free(r);
}

static void test_capability_reindex(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *v1[] = {"temperature", "shared"}, *v2[] = {"humidity", "shared"};
    const char *other[] = {"shared", "temperature"};
    put_system(r, "s", v1, 2, NULL, 10, 0);
    put_system(r, "o", other, 2, NULL, 10, 0);
    char buf[64];
    CHECK(strcmp(find_sys(r, "temperature", 0, buf, sizeof buf), "o,s") == 0);
    CHECK(put_system(r, "s", v2, 2, NULL, 10, 1) != NULL);
    CHECK(strcmp(find_sys(r, "temperature", 1, buf, sizeof buf), "o") == 0);
    CHECK(strcmp(find_sys(r, "humidity", 1, buf, sizeof buf), "s") == 0);
    CHECK(strcmp(find_sys(r, "shared", 1, buf, sizeof buf), "o,s") == 0);
    /* re-register with no services at all */
    CHECK(put_system(r, "s", NULL, 0, NULL, 10, 2) != NULL);
    CHECK(strcmp(find_sys(r, "humidity", 2, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "shared", 2, buf, sizeof buf), "o") == 0);
    CHECK(registry_count(r, REG_SYSTEM) == 2);
    CHECK(c.n[REG_REGISTERED] == 2 && c.n[REG_REFRESHED] == 2);
    registry_free(r);
}

static void test_duplicate_caps_once(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *caps[] = {"x", "y", "x", "x", "y"};
    const reg_entry *e = put_system(r, "s", caps, 5, NULL, 10, 0);
    CHECK(e && e->ncaps == 2);
    if (e && e->ncaps == 2)
        CHECK(strcmp(e->caps[0], "x") == 0 && strcmp(e->caps[1], "y") == 0);
    char buf[64];
    CHECK(strcmp(find_sys(r, "x", 0, buf, sizeof buf), "s") == 0);
    CHECK(registry_remove(r, REG_SYSTEM, "s", NULL, 0) == 1);
    CHECK(strcmp(find_sys(r, "x", 0, buf, sizeof buf), "") == 0);
    registry_free(r);
}

static void test_swap_remove_keeps_index(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *ab[] = {"a", "b"}, *ba[] = {"b", "a"}, *b[] = {"b"};
    put_system(r, "s1", ab, 2, NULL, 10, 0);
    put_system(r, "s2", ba, 2, NULL, 10, 0);
    put_system(r, "s3", b, 1, NULL, 10, 0);
    put_system(r, "s4", ab, 2, NULL, 10, 0);
    char buf[64];
    /* removing the first of each list moves the last into its slot */
    CHECK(registry_remove(r, REG_SYSTEM, "s1", NULL, 0) == 1);
    CHECK(strcmp(find_sys(r, "a", 0, buf, sizeof buf), "s2,s4") == 0);
    CHECK(strcmp(find_sys(r, "b", 0, buf, sizeof buf), "s2,s3,s4") == 0);
    /* s4 was moved; removing it must use its updated positions */
    CHECK(registry_remove(r, REG_SYSTEM, "s4", NULL, 0) == 1);
    CHECK(strcmp(find_sys(r, "a", 0, buf, sizeof buf), "s2") == 0);
    CHECK(strcmp(find_sys(r, "b", 0, buf, sizeof buf), "s2,s3") == 0);
    CHECK(registry_remove(r, REG_SYSTEM, "s2", NULL, 0) == 1);
    CHECK(strcmp(find_sys(r, "a", 0, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "b", 0, buf, sizeof buf), "s3") == 0);
    put_system(r, "s5", ab, 2, NULL, 10, 0);
    CHECK(strcmp(find_sys(r, "a", 0, buf, sizeof buf), "s5") == 0);
    CHECK(strcmp(find_sys(r, "b", 0, buf, sizeof buf), "s3,s5") == 0);
    registry_free(r);
}

static void test_remove_by_registrant(void)
{
    rec c;
    registry *r = new_reg(&c);
    put_channel(r, "anon", "", 1, 10, 0);
    reg_fields f = {.id = "owned", .json = "{}", .registrant = "h1/sys-a"};
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) != NULL);
    c.len = 0;
    c.now = 1;
    /* another registrant's live entry: refused, distinct from absent, nothing changes */
    CHECK(registry_remove(r, REG_CHANNEL, "owned", "h1/sys-b", 1) == -1);
    CHECK(registry_remove(r, REG_CHANNEL, "owned", "h2/sys-a", 1) == -1); /* same system, other host */
    CHECK(registry_remove(r, REG_CHANNEL, "anon", "h1/sys-a", 1) == -1);  /* an operator's entry */
    CHECK(registry_remove(r, REG_SYSTEM, "owned", "h1/sys-a", 1) == 0);   /* wrong kind: absent */
    CHECK(registry_remove(r, REG_CHANNEL, "missing", NULL, 1) == 0);
    CHECK(registry_remove(r, REG_CHANNEL, "missing", "h1/sys-a", 1) == 0);
    CHECK(c.len == 0 && registry_count(r, REG_CHANNEL) == 2);
    CHECK(registry_get(r, REG_CHANNEL, "owned", 1) != NULL);
    CHECK(registry_remove(r, REG_CHANNEL, "owned", "h1/sys-a", 1) == 1);
    CHECK(registry_get(r, REG_CHANNEL, "owned", 1) == NULL);
    CHECK(registry_remove(r, REG_CHANNEL, "anon", NULL, 1) == 1);
    CHECK(registry_count(r, REG_CHANNEL) == 0);
    CHECK(c.len == 2);
    CHECK(c.ev[0] == REG_DEREGISTERED && strcmp(c.id[0], "owned") == 0 && c.visible[0] == 0);
    CHECK(c.count[0] == 1 && strcmp(c.registrant[0], "h1/sys-a") == 0);
    CHECK(c.ev[1] == REG_DEREGISTERED && strcmp(c.id[1], "anon") == 0 && c.count[1] == 0);
    CHECK(registry_remove(r, REG_CHANNEL, "owned", NULL, 1) == 0);

    /* an operator (NULL) removes whoever's entry it is */
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 1) != NULL);
    CHECK(registry_remove(r, REG_CHANNEL, "owned", NULL, 2) == 1);

    /* an expired entry is not "removed", nor refused: it is absent, purged as expired */
    CHECK(registry_put(r, REG_CHANNEL, &f, 10, 0) != NULL);
    c.len = 0;
    c.now = 10;
    CHECK(registry_remove(r, REG_CHANNEL, "owned", "h1/sys-b", 10) == 0);
    CHECK(c.len == 1 && c.ev[0] == REG_EXPIRED && strcmp(c.id[0], "owned") == 0);
    CHECK(registry_count(r, REG_CHANNEL) == 0 && registry_expired_total(r) == 1);
    registry_free(r);
}

static void test_takeover_replaces(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *old_caps[] = {"old", "both"}, *new_caps[] = {"new", "both"};
    reg_fields a = {.id = "svc", .name = "Blue", .caps = old_caps, .ncaps = 2, .json = "{\"v\":\"blue\"}",
                    .registrant = "blue/svc", .endpoint = "http://blue"};
    reg_fields b = {.id = "svc", .name = "Green", .caps = new_caps, .ncaps = 2, .json = "{\"v\":\"green\"}",
                    .registrant = "green/svc", .endpoint = "http://green"};
    CHECK(registry_put(r, REG_SYSTEM, &a, 30, 0) != NULL);
    c.len = 0;
    c.now = 5;
    const reg_entry *e = registry_put(r, REG_SYSTEM, &b, 20, 5);
    CHECK(e != NULL);
    /* one event, replaced, carrying both contents; the new one is what queries see */
    CHECK(c.len == 1 && c.ev[0] == REG_REPLACED && c.has_prev[0] == 1);
    CHECK(strcmp(c.json[0], "{\"v\":\"green\"}") == 0 && strcmp(c.registrant[0], "green/svc") == 0);
    CHECK(strcmp(c.prev_json[0], "{\"v\":\"blue\"}") == 0 && strcmp(c.prev_registrant[0], "blue/svc") == 0);
    CHECK(c.visible[0] == 1 && c.count[0] == 1);
    if (e) {
        CHECK(strcmp(e->registrant, "green/svc") == 0 && strcmp(e->endpoint, "http://green") == 0);
        CHECK(e->registered_at == 5 && e->expires_at == 25); /* a new registration */
    }
    char buf[64];
    CHECK(strcmp(find_sys(r, "old", 5, buf, sizeof buf), "") == 0);
    CHECK(strcmp(find_sys(r, "new", 5, buf, sizeof buf), "svc") == 0);
    CHECK(strcmp(find_sys(r, "both", 5, buf, sizeof buf), "svc") == 0);
    CHECK(registry_count(r, REG_SYSTEM) == 1);
    /* the old registrant's remove and refresh change nothing now */
    CHECK(registry_remove(r, REG_SYSTEM, "svc", "blue/svc", 6) == -1);
    CHECK(registry_get(r, REG_SYSTEM, "svc", 6) == e);
    /* an operator's register takes it over too (NULL is a registrant of its own) */
    reg_fields op = {.id = "svc", .json = "{}"};
    c.len = 0;
    CHECK(registry_put(r, REG_SYSTEM, &op, 10, 7) != NULL);
    CHECK(c.len == 1 && c.ev[0] == REG_REPLACED && strcmp(c.prev_registrant[0], "green/svc") == 0 &&
          strcmp(c.registrant[0], "") == 0);
    /* only replaced events carry a previous entry */
    for (size_t i = 0; i < c.len; i++)
        CHECK(c.has_prev[i] == (c.ev[i] == REG_REPLACED));
    /* the new expiry governs */
    CHECK(registry_maintain(r, 16.9) == 0);
    CHECK(registry_maintain(r, 17) == 1);
    registry_free(r);
}

static void test_refresh_by_owner_only(void)
{
    rec c;
    registry *r = new_reg(&c);
    reg_fields mine = {.id = "ch", .json = "{\"v\":1}", .registrant = "h1/a"};
    reg_fields theirs = {.id = "ch", .json = "{\"v\":2}", .registrant = "h2/a", .endpoint = "http://h2"};
    const reg_entry *out = NULL;
    /* absent: registered */
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 0, &out) == REG_REFRESH_REGISTERED);
    CHECK(out && out->expires_at == 10 && c.len == 1 && c.ev[0] == REG_REGISTERED);
    /* its own live entry: renewed (the heartbeat path) */
    c.now = 8;
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 8, &out) == REG_REFRESH_RENEWED);
    CHECK(out && out->expires_at == 18 && out->registered_at == 0);
    CHECK(c.len == 2 && c.ev[1] == REG_REFRESHED && c.visible[1] == 1);
    /* taken over by a register from another registrant */
    CHECK(registry_put(r, REG_CHANNEL, &theirs, 10, 9) != NULL);
    CHECK(c.len == 3 && c.ev[2] == REG_REPLACED);
    /* the former owner's refresh: refused, nothing changes, told who holds it */
    c.now = 10;
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 10, &out) == REG_REFRESH_NOT_OWNER);
    CHECK(out && strcmp(out->registrant, "h2/a") == 0 && strcmp(out->endpoint, "http://h2") == 0);
    CHECK(out->expires_at == 19 && strcmp(out->json, "{\"v\":2}") == 0);
    CHECK(c.len == 3);
    /* the holder's own refresh works */
    CHECK(registry_refresh(r, REG_CHANNEL, &theirs, 10, 11, &out) == REG_REFRESH_RENEWED);
    CHECK(out && out->expires_at == 21 && c.len == 4 && c.ev[3] == REG_REFRESHED);
    /* once the holder's entry expired it counts as absent, purged or not: registered back */
    c.now = 21;
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 21, &out) == REG_REFRESH_REGISTERED);
    CHECK(out && strcmp(out->registrant, "h1/a") == 0 && out->expires_at == 31 && out->registered_at == 21);
    CHECK(c.len == 6 && c.ev[4] == REG_EXPIRED && strcmp(c.registrant[4], "h2/a") == 0);
    CHECK(c.ev[5] == REG_REGISTERED && c.visible[5] == 1);
    /* once deregistered, too */
    CHECK(registry_put(r, REG_CHANNEL, &theirs, 10, 22) != NULL);
    CHECK(registry_remove(r, REG_CHANNEL, "ch", "h2/a", 23) == 1);
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 23, &out) == REG_REFRESH_REGISTERED);
    /* an operator's entry is another registrant's too; NULL refreshes only NULL's */
    reg_fields op = {.id = "ch", .json = "{}"};
    CHECK(registry_refresh(r, REG_CHANNEL, &op, 10, 24, &out) == REG_REFRESH_NOT_OWNER);
    CHECK(registry_put(r, REG_CHANNEL, &op, 10, 24) != NULL);
    CHECK(registry_refresh(r, REG_CHANNEL, &op, 10, 25, &out) == REG_REFRESH_RENEWED);
    CHECK(registry_refresh(r, REG_CHANNEL, &mine, 10, 25, NULL) == REG_REFRESH_NOT_OWNER);
    /* wrong kind: a separate namespace; invalid fields fail */
    CHECK(registry_refresh(r, REG_SYSTEM, &mine, 10, 25, &out) == REG_REFRESH_REGISTERED);
    CHECK(registry_refresh(r, REG_SYSTEM, &mine, 0, 25, &out) == REG_REFRESH_FAILED && out == NULL);
    CHECK(registry_count(r, REG_CHANNEL) == 1 && registry_count(r, REG_SYSTEM) == 1);
    registry_free(r);
}

static void test_sorted_results(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *order[] = {"m", "b", "zz", "a", "ab", "z", "B"};
    const char *caps[] = {"svc"};
    for (size_t i = 0; i < 7; i++) {
        put_channel(r, order[i], "name", 1, 10, 0);
        put_system(r, order[i], caps, 1, NULL, 10, 0);
    }
    char buf[64];
    CHECK(strcmp(find_ch(r, -1, NULL, 0, buf, sizeof buf), "B,a,ab,b,m,z,zz") == 0);
    CHECK(strcmp(find_ch(r, 1, "NAME", 0, buf, sizeof buf), "B,a,ab,b,m,z,zz") == 0);
    CHECK(strcmp(find_sys(r, NULL, 0, buf, sizeof buf), "B,a,ab,b,m,z,zz") == 0);
    CHECK(strcmp(find_sys(r, "svc", 0, buf, sizeof buf), "B,a,ab,b,m,z,zz") == 0);
    registry_free(r);
}

static void test_mutation_from_callback_refused(void)
{
    rec c;
    registry *r = new_reg(&c);
    c.try_mutate = 1;
    put_channel(r, "ch", "", 1, 10, 0);
    put_channel(r, "ch", "", 1, 10, 1);
    reg_fields f = {.id = "ch", .is_public = 1, .name = "", .json = "{\"c\":1}", .json_len = 7};
    CHECK(registry_refresh(r, REG_CHANNEL, &f, 10, 2, NULL) == REG_REFRESH_RENEWED);
    reg_fields g = f;
    g.registrant = "other";
    CHECK(registry_put(r, REG_CHANNEL, &g, 10, 3) != NULL); /* replaced */
    CHECK(registry_maintain(r, 13) == 1);
    put_channel(r, "ch2", "", 1, 10, 0);
    CHECK(registry_remove(r, REG_CHANNEL, "ch2", NULL, 0) == 1);
    CHECK(c.len == 7 && c.ev[3] == REG_REPLACED);
    for (size_t i = 0; i < c.len; i++)
        CHECK(c.refused[i] == 1);
    CHECK(registry_get(r, REG_CHANNEL, "intruder", 0) == NULL);
    CHECK(registry_count(r, REG_CHANNEL) == 0);
    /* outside the callback everything works again */
    c.try_mutate = 0;
    CHECK(put_channel(r, "ch", "", 1, 10, 20) != NULL);
    registry_free(r);
}

static void test_events_for_every_change(void)
{
    rec c;
    registry *r = new_reg(&c);
    const char *caps[] = {"x"};
    put_channel(r, "c", "", 1, 10, 0);                  /* registered */
    put_system(r, "s", caps, 1, "c", 10, 0);            /* registered */
    put_channel(r, "c", "", 0, 10, 1);                  /* refreshed */
    put_system(r, "s", caps, 1, "c", 10, 2);            /* refreshed */
    put_system(r, "s", caps, 1, "d", 10, 2.5);          /* replaced */
    registry_remove(r, REG_SYSTEM, "s", "c", 3);        /* refused: d's now */
    registry_remove(r, REG_SYSTEM, "s", "d", 3);        /* deregistered */
    registry_maintain(r, 11);                           /* expired */
    put_channel(r, "c", "", 1, 10, 12);                 /* registered */
    put_channel(r, "c", "", 1, 10, 30);                 /* expired + registered */
    registry_remove(r, REG_CHANNEL, "c", NULL, 100);    /* expired */
    static const reg_event want[] = {
        REG_REGISTERED, REG_REGISTERED, REG_REFRESHED, REG_REFRESHED, REG_REPLACED, REG_DEREGISTERED,
        REG_EXPIRED,    REG_REGISTERED, REG_EXPIRED,   REG_REGISTERED, REG_EXPIRED,
    };
    static const reg_kind kinds[] = {
        REG_CHANNEL, REG_SYSTEM,  REG_CHANNEL, REG_SYSTEM,  REG_SYSTEM, REG_SYSTEM,
        REG_CHANNEL, REG_CHANNEL, REG_CHANNEL, REG_CHANNEL, REG_CHANNEL,
    };
    CHECK(c.len == 11);
    for (size_t i = 0; i < 11 && i < c.len; i++)
        CHECK(c.ev[i] == want[i] && c.kind[i] == kinds[i]);
    CHECK(registry_expired_total(r) == 3);
    registry_free(r);
}

static void test_many_systems_rare_capability(void)
{
    rec c;
    registry *r = new_reg(&c);
    enum { N = 100000 };
    char id[32], group[32];
    size_t bad = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "sys-%06d", i);
        snprintf(group, sizeof group, "group-%d", i % 100);
        const char *caps[] = {"common", group, "rare"};
        size_t ncaps = (i % 10000 == 1234) ? 3 : 2; /* 10 systems hold "rare" */
        if (!put_system(r, id, caps, ncaps, NULL, 60, 0))
            bad++;
    }
    CHECK(bad == 0);
    CHECK(registry_count(r, REG_SYSTEM) == N && c.n[REG_REGISTERED] == N);
    reg_list l;
    CHECK(registry_find_systems(r, "rare", 1, &l) == 0);
    CHECK(l.count == 10);
    for (size_t i = 0; i < l.count; i++) {
        snprintf(id, sizeof id, "sys-%06d", (int)(i * 10000 + 1234));
        CHECK(strcmp(l.items[i]->id, id) == 0);
    }
    reg_list_free(&l);
    CHECK(registry_find_systems(r, "group-7", 1, &l) == 0);
    CHECK(l.count == N / 100);
    reg_list_free(&l);
    CHECK(registry_find_systems(r, NULL, 1, &l) == 0);
    CHECK(l.count == N);
    for (size_t i = 1; i < l.count; i++)
        CHECK(strcmp(l.items[i - 1]->id, l.items[i]->id) < 0);
    reg_list_free(&l);
    CHECK(l.items == NULL && l.count == 0);

    /* drop half the rare ones (one by deregistering, others by re-registering without it) */
    CHECK(registry_remove(r, REG_SYSTEM, "sys-001234", NULL, 1) == 1);
    for (int k = 1; k < 5; k++) {
        const char *caps[] = {"common"};
        snprintf(id, sizeof id, "sys-%06d", k * 10000 + 1234);
        CHECK(put_system(r, id, caps, 1, NULL, 60, 1) != NULL);
    }
    CHECK(registry_find_systems(r, "rare", 1, &l) == 0);
    CHECK(l.count == 5);
    for (size_t i = 0; i < l.count; i++) {
        snprintf(id, sizeof id, "sys-%06d", (int)((i + 5) * 10000 + 1234));
        CHECK(strcmp(l.items[i]->id, id) == 0);
    }
    reg_list_free(&l);
    CHECK(registry_find_systems(r, "common", 1, &l) == 0);
    CHECK(l.count == N - 1);
    reg_list_free(&l);
    registry_free(r);
}

static void test_mass_expiry(void)
{
    rec c;
    registry *r = new_reg(&c);
    enum { N = 100000 };
    char id[32];
    const char *caps[] = {"svc"};
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "e-%06d", i);
        double ttl = (i % 2) ? 10 : 20; /* odd ones expire together at t = 10 */
        const reg_entry *e = (i % 4 < 2) ? put_channel(r, id, "x", 1, ttl, 0)
                                         : put_system(r, id, caps, 1, NULL, ttl, 0);
        if (!e)
            CHECK(e != NULL);
    }
    CHECK(registry_count(r, REG_CHANNEL) == N / 2 && registry_count(r, REG_SYSTEM) == N / 2);
    c.now = 10;
    CHECK(registry_maintain(r, 9.5) == 0);
    CHECK(registry_maintain(r, 10) == N / 2);
    CHECK(c.n[REG_EXPIRED] == N / 2 && registry_expired_total(r) == N / 2);
    CHECK(registry_count(r, REG_CHANNEL) == N / 4 && registry_count(r, REG_SYSTEM) == N / 4);
    size_t wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "e-%06d", i);
        reg_kind k = (i % 4 < 2) ? REG_CHANNEL : REG_SYSTEM;
        int live = registry_get(r, k, id, 10) != NULL;
        if (live != (i % 2 == 0))
            wrong++;
    }
    CHECK(wrong == 0);
    reg_list l;
    CHECK(registry_find_systems(r, "svc", 10, &l) == 0);
    CHECK(l.count == N / 4);
    reg_list_free(&l);
    CHECK(registry_find_channels(r, 1, "X", 10, &l) == 0);
    CHECK(l.count == N / 4);
    reg_list_free(&l);
    CHECK(registry_maintain(r, 20) == N / 2);
    CHECK(registry_count(r, REG_CHANNEL) == 0 && registry_count(r, REG_SYSTEM) == 0);
    CHECK(registry_find_systems(r, "svc", 20, &l) == 0 && l.count == 0);
    reg_list_free(&l);
    registry_free(r);
}

static void test_no_callback_and_free_with_entries(void)
{
    registry *r = registry_new(NULL, NULL);
    CHECK(r != NULL);
    const char *caps[] = {"a", "b"};
    put_channel(r, "c", "C", 1, 10, 0);
    put_system(r, "s", caps, 2, "o", 10, 0);
    put_system(r, "s", caps, 1, "o", 10, 1);
    CHECK(registry_remove(r, REG_SYSTEM, "s", "o", 2) == 1);
    put_system(r, "t", caps, 2, NULL, 10, 0);
    CHECK(registry_maintain(r, 5) == 0);
    registry_free(r); /* entries, index lists and heap are freed (checked by ASan / valgrind) */
    registry_free(NULL);
}

/* Registers channel id for subject (NULL: the host's own) at now with ttl. */
static const reg_entry *put_as(registry *r, const char *id, const char *subject, double ttl, double now)
{
    reg_fields f = {.id = id, .json = "{}", .subject = subject, .is_public = 1};
    return registry_put(r, REG_CHANNEL, &f, ttl, now);
}

static void test_limit_per_subject(void)
{
    registry *r = registry_new(NULL, NULL);
    registry_set_limits(r, 0, 2);
    CHECK(put_as(r, "a1", "alice", 10, 0) && put_as(r, "a2", "alice", 10, 0));
    CHECK(put_as(r, "a3", "alice", 10, 0) == NULL && registry_refusal(r) == REG_REFUSED_SUBJECT);
    CHECK(put_as(r, "a1", "alice", 10, 1) != NULL); /* renewing one it holds adds nothing */
    CHECK(put_as(r, "b1", "bob", 10, 0) != NULL);   /* another subject has its own count */
    CHECK(put_as(r, "h1", NULL, 10, 0) && put_as(r, "h2", NULL, 10, 0) && put_as(r, "h3", NULL, 10, 0));
    CHECK(registry_subject_count(r, "alice") == 2 && registry_subject_count(r, "bob") == 1);
    /* bob taking alice's entry over moves it from her count to his */
    CHECK(put_as(r, "a2", "bob", 10, 0) != NULL);
    CHECK(registry_subject_count(r, "alice") == 1 && registry_subject_count(r, "bob") == 2);
    CHECK(put_as(r, "a3", "alice", 10, 0) != NULL);
    CHECK(put_as(r, "b9", "bob", 10, 0) == NULL && registry_refusal(r) == REG_REFUSED_SUBJECT);
    CHECK(registry_remove(r, REG_CHANNEL, "b1", NULL, 0) == 1 && registry_subject_count(r, "bob") == 1);
    /* expired entries are purged before a refusal: at 20 both of bob's have expired */
    CHECK(put_as(r, "b9", "bob", 10, 5) != NULL);
    CHECK(put_as(r, "b8", "bob", 10, 20) != NULL && registry_subject_count(r, "bob") == 1);
    registry_free(r);
}

static void test_limit_total(void)
{
    registry *r = registry_new(NULL, NULL);
    registry_set_limits(r, 3, 0);
    CHECK(put_as(r, "x", NULL, 10, 0) && put_as(r, "y", "s", 10, 0) && put_as(r, "z", NULL, 5, 0));
    CHECK(put_as(r, "w", NULL, 10, 1) == NULL && registry_refusal(r) == REG_REFUSED_FULL);
    CHECK(put_as(r, "x", "t", 10, 1) != NULL);       /* replacing takes no more room */
    CHECK(put_as(r, "w", NULL, 10, 6) != NULL);       /* z expired: purged to make room */
    CHECK(registry_get(r, REG_CHANNEL, "z", 6) == NULL && registry_count(r, REG_CHANNEL) == 3);
    CHECK(registry_refusal(r) == REG_REFUSED_NOTHING);
    registry_free(r);
}

static int odd_only(const reg_entry *e, void *ud)
{
    (void)ud;
    return (e->id[strlen(e->id) - 1] - '0') % 2 == 1;
}

static void test_pages(void)
{
    registry *r = registry_new(NULL, NULL);
    char id[16];
    for (int i = 99; i >= 0; i--) { /* inserted in reverse: pages must not depend on order */
        snprintf(id, sizeof id, "c%02d", i);
        CHECK(put_as(r, id, NULL, i == 50 ? 1 : 10, 0) != NULL);
    }
    reg_list l;
    reg_page page = {.limit = 7};
    char after[16] = "";
    size_t seen = 0;
    int ordered = 1;
    for (;;) {
        page.after = after[0] ? after : NULL;
        CHECK(registry_find_channels_page(r, -1, NULL, 2, &page, &l) == 0);
        for (size_t i = 0; i < l.count; i++) {
            if (after[0] && strcmp(l.items[i]->id, after) <= 0)
                ordered = 0;
            snprintf(after, sizeof after, "%s", l.items[i]->id);
        }
        seen += l.count;
        size_t n = l.count;
        reg_list_free(&l);
        if (n < page.limit)
            break;
    }
    CHECK(ordered);
    CHECK(seen == 99); /* c50 expired */
    page = (reg_page){.limit = 3, .after = "c10", .keep = odd_only};
    CHECK(registry_find_channels_page(r, -1, NULL, 0, &page, &l) == 0 && l.count == 3);
    CHECK(l.count == 3 && strcmp(l.items[0]->id, "c11") == 0 && strcmp(l.items[1]->id, "c13") == 0 &&
          strcmp(l.items[2]->id, "c15") == 0);
    reg_list_free(&l);
    registry_free(r);
}

/* The channels of one visibility as a scan of every channel finds them (the reference). */
static const char *scan_vis(const registry *r, int vis, const char *name, double now, char *buf, size_t size)
{
    reg_list l;
    if (registry_find_channels(r, -1, name, now, &l) != 0)
        return "(error)";
    size_t used = 0, k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l.count && used < size; i++)
        if (l.items[i]->is_public == vis)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", k++ ? "," : "", l.items[i]->id);
    reg_list_free(&l);
    return buf;
}

/* The visibility index answers what a scan answers, through registrations, replacements that
 * change the visibility, removals, expiry and purges, with a name filter and by pages. */
static void test_visibility_index_matches_scan(void)
{
    rec c;
    registry *r = new_reg(&c);
    static const char *const names[] = {"Alpha", "beta", "ALPHABET", "gamma"};
    char id[16], want[4096], got[4096];
    unsigned x = 12345;
    int same = 1, paged = 1;
    for (int step = 0; step < 3000; step++) {
        x = x * 1103515245u + 12345u;
        unsigned k = (x >> 8) % 64, op = (x >> 16) % 10;
        double now = step * 0.01;
        c.now = now;
        snprintf(id, sizeof id, "ch%02u", k);
        if (op < 6)
            put_channel(r, id, names[(x >> 20) % 4], (int)((x >> 24) & 1), 0.5 + (double)((x >> 4) % 300) / 100, now);
        else if (op < 8)
            registry_remove(r, REG_CHANNEL, id, NULL, now);
        else if (op == 8)
            registry_maintain(r, now);
        for (int vis = 0; vis <= 1; vis++) {
            const char *name = step % 3 == 0 ? "alpha" : NULL;
            if (strcmp(find_ch(r, vis, name, now, got, sizeof got), scan_vis(r, vis, name, now, want, sizeof want)) != 0)
                same = 0;
        }
        if (step % 100 == 0) { /* by pages of 5: the same ids in the same order */
            char all[4096] = "", after[16] = "";
            size_t used = 0;
            reg_page page = {.limit = 5};
            reg_list l;
            for (;;) {
                page.after = after[0] ? after : NULL;
                if (registry_find_channels_page(r, 1, NULL, now, &page, &l) != 0)
                    break;
                for (size_t i = 0; i < l.count; i++) {
                    used += (size_t)snprintf(all + used, sizeof all - used, "%s%s", used ? "," : "", l.items[i]->id);
                    snprintf(after, sizeof after, "%s", l.items[i]->id);
                }
                size_t n = l.count;
                reg_list_free(&l);
                if (n < page.limit)
                    break;
            }
            if (strcmp(all, scan_vis(r, 1, NULL, now, want, sizeof want)) != 0)
                paged = 0;
        }
    }
    CHECK(same);
    CHECK(paged);
    registry_free(r);
}

/* A listener that keeps the expired entries it hears of (registry_keep). */
typedef struct keeper {
    registry *r;
    const reg_entry *kept[8];
    size_t n, other;
} keeper;

static void keep_expired(void *ud, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    (void)prev;
    keeper *k = ud;
    if (ev == REG_EXPIRED && k->n < 8) {
        registry_keep(k->r);
        k->kept[k->n++] = e;
    } else {
        k->other++;
    }
}

/* Kept expired entries stay whole after the purge (and after a put over an expired entry),
 * unlinked, until the listener frees them; registry_keep outside a callback does nothing. */
static void test_keep_expired_entries(void)
{
    keeper k = {0};
    registry *r = k.r = registry_new(keep_expired, &k);
    registry_keep(r); /* outside a callback: no effect */
    reg_fields f = {.id = "a", .name = "A", .json = "{\"v\":1}", .json_len = 7};
    CHECK(registry_put(r, REG_CHANNEL, &f, 1, 0) != NULL);
    f.id = "b";
    CHECK(registry_put(r, REG_CHANNEL, &f, 2, 0) != NULL);
    CHECK(registry_maintain(r, 1.5) == 1);
    CHECK(k.n == 1 && strcmp(k.kept[0]->id, "a") == 0 && k.kept[0]->expires_at == 1);
    CHECK(k.kept[0]->json_len == 7 && memcmp(k.kept[0]->json, "{\"v\":1}", 7) == 0);
    CHECK(registry_get(r, REG_CHANNEL, "a", 1.5) == NULL && registry_count(r, REG_CHANNEL) == 1);
    f.json = "{\"v\":2}";
    CHECK(registry_put(r, REG_CHANNEL, &f, 2, 3) != NULL); /* b had expired: reported, kept */
    CHECK(k.n == 2 && strcmp(k.kept[1]->id, "b") == 0 && memcmp(k.kept[1]->json, "{\"v\":1}", 7) == 0);
    CHECK(strcmp(registry_get(r, REG_CHANNEL, "b", 3)->json, "{\"v\":2}") == 0);
    CHECK(registry_expired_total(r) == 2);
    registry_free(r);
    for (size_t i = 0; i < k.n; i++) /* outlive the registry */
        registry_entry_free(k.kept[i]);
}

int main(void)
{
    RUN(test_names);
    RUN(test_register_and_get);
    RUN(test_invalid_fields);
    RUN(test_reregister_replaces);
    RUN(test_liveness_boundary);
    RUN(test_maintain_purges_expired);
    RUN(test_put_over_expired);
    RUN(test_visibility_filter);
    RUN(test_name_substring);
    RUN(test_capability_exact);
    RUN(test_capability_reindex);
    RUN(test_duplicate_caps_once);
    RUN(test_swap_remove_keeps_index);
    RUN(test_remove_by_registrant);
    RUN(test_takeover_replaces);
    RUN(test_refresh_by_owner_only);
    RUN(test_sorted_results);
    RUN(test_mutation_from_callback_refused);
    RUN(test_events_for_every_change);
    RUN(test_many_systems_rare_capability);
    RUN(test_mass_expiry);
    RUN(test_no_callback_and_free_with_entries);
    RUN(test_limit_per_subject);
    RUN(test_limit_total);
    RUN(test_pages);
    RUN(test_visibility_index_matches_scan);
    RUN(test_keep_expired_entries);
    return check_report();
}
