/* regbackend_etcd.c - the etcd registry backend (see regbackend.h): the registry lives in an
 * etcd cluster, reached through its v3 JSON gateway with net/http_client, never blocking the
 * loop.
 *
 * Keys and values. Each entry is the key <prefix>/channels/<id> or <prefix>/systems/<id>
 * holding a JSON object of its own (the info as registered, the fields queries need, its
 * registrant, subject, endpoint, ttl and expires_at), attached to a lease. The gateway
 * base64-encodes keys and values and sends int64 as strings.
 *
 * Leases. One per TTL (in whole seconds, rounded up) for this host, granted when first
 * needed and kept alive with one request per beat (a third of its TTL): the gateway's
 * keep-alive stream does not work over HTTP/1.1. A crashed host's leases lapse, and etcd
 * deletes its keys; until then every cache ignores an entry whose expires_at passed, so an
 * entry is gone at its TTL (etcd's own deletion follows within the lease's TTL, and after a
 * leader change within TTL plus the election, as a new leader renews every lease).
 *
 * Ownership. A refresh or an owner-checked remove reads the key, compares its registrant
 * and then changes it in a transaction that compares the key's mod_revision with what was
 * read, so no host changes an entry another one changed in between; a refresh that finds
 * the key absent creates it in a transaction comparing create_revision with 0. An entry
 * whose expires_at passed counts as absent (its host may still be alive and keep the lease).
 * A plain registration takes over whatever is there (a put). What this host put and its
 * cache saw expire is deleted from etcd by this host, comparing the revision it put.
 *
 * The cache. The host's own registry (model/registry.c) is this backend's cache and its
 * event channel the events: a full read of the prefix, then a watch from the next revision
 * (a stream of JSON objects, one per line), applies every change to it, so queries are
 * answered in this process and registry events come from what the watch saw. A change this
 * host committed is applied at once (a caller reads its own writes) and its watch event is
 * skipped; a watch that ends is resumed from the last revision seen, and one whose revision
 * was compacted leads to a full read again (entries that went meanwhile are removed).
 *
 * Members. Requests go to one member; one that does not answer (or answers 5xx: no leader
 * during an election) moves them to the next, and an operation is retried across members
 * with backoff for up to ETCD_DEADLINE seconds before it fails as unreachable. */
#include "sys/regbackend.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/json.h"
#include "core/jsonread.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "net/http_client.h"
#include "rt/timer.h"

#define ETCD_TIMEOUT 5.0       /* seconds one request may take */
#define ETCD_DEADLINE 10.0     /* seconds an operation is retried before it fails */
#define ETCD_CAS_TRIES 8       /* reads and compares of one key before giving up */
#define WATCH_MAX_LINE (64u << 20)
#define ETCD_MAX_IN_FLIGHT 32  /* requests sent at once; more wait their turn (a stop that
                                * removes 100k entries must not open 100k connections) */

typedef struct etcd_backend etcd_backend;
typedef struct ereq ereq;
typedef void (*ereq_cb)(void *ud, long status, const char *body, size_t len, const char *error);

/* One request to the cluster, moved from member to member until one answers. */
struct ereq {
    etcd_backend *eb;
    char *path, *body;
    size_t len;
    double deadline;     /* monotonic */
    double backoff;
    unsigned tried;      /* members tried in this round */
    http_call *call;
    rt_timer retry;
    ereq_cb cb;
    void *ud;
    int no_auth;         /* the login itself */
    int reauthed;        /* sent again once with a new token after a refusal */
    unsigned token_gen;  /* the token it was sent with */
    ereq *auth_next;     /* waiting for a token */
    int in_flight;       /* holds one of the ETCD_MAX_IN_FLIGHT places */
    int queued;          /* waits for a place */
    ereq *queue_next;
};

typedef struct lease {
    etcd_backend *eb;
    long long ttl;       /* asked for */
    char id[24];         /* the lease's ID as the gateway writes it, "" while there is none */
    int granting;
    ereq *req;
    rt_timer beat;
    rb_call *waiting;    /* puts waiting for the grant */
    struct lease *next;
} lease;

enum op { OP_PUT, OP_REMOVE, OP_READY };
enum step { ST_LEASE, ST_PUT, ST_CREATE, ST_READ, ST_SWAP, ST_DELETE };

struct rb_call {
    etcd_backend *eb;
    enum op op;
    enum step step;
    reg_kind kind;
    char *id, *key, *value;
    char *registrant;    /* the caller's (NULL: an operator) */
    int refresh, tries, expired_seen;
    lease *lease;
    double expires_at;
    ereq *req;
    rb_done_fn done;
    void *ud;
    rb_call *prev, *next;
    rb_call *lease_next;
    deferred start;      /* the first step, from the loop: done never runs inside put or remove */
};

/* A key this host put whose entry expired in its cache: deleted from etcd if still as put. */
typedef struct sweep {
    etcd_backend *eb;
    char *key;
    uint64_t rev;
    ereq *req;           /* the delete in flight */
    struct sweep *next;
} sweep;

struct etcd_backend {
    regbackend b;
    http_client *http;
    registry *reg;               /* the cache: the host's registry */
    char **members;              /* base URLs: http://host:port */
    size_t nmembers, current;
    char *prefix;                /* "/sssn", without a trailing slash */
    int reachable;               /* 1 answered last time, -1 did not, 0 not asked yet */
    lease *leases;
    rb_call *calls;
    /* the watch */
    int synced;                  /* the cache holds a full read; the watch goes on from watch_rev */
    uint64_t watch_rev;          /* every change up to this revision is in the cache */
    uint64_t seen_rev;           /* the newest revision any answer reported */
    ereq *read_req;              /* the full read in flight */
    http_call *watch_call;       /* the stream, or NULL */
    strbuf watch_buf;            /* what the stream sent that is not processed yet */
    deferred watch_work;
    rt_timer watch_timer;        /* the next full read or stream after a failure */
    double watch_backoff;
    int freeing;
    /* changes this host applied before its watch saw them: key -> revision */
    hashmap *ahead;
    /* keys this host put, with the revision of its last put: key -> revision */
    hashmap *mine;
    sweep *sweeps;               /* to send */
    sweep *sweeping;             /* sent, not answered */
    struct lease_revoke *revoking;     /* lease revocations at a clean stop, not answered */
    deferred sweep_work;
    /* etcd's auth: a token from the user and password, fetched when first needed and again
     * when etcd refuses it */
    char *user, *password, *token;
    unsigned token_gen;
    ereq *login;                 /* in flight, or NULL */
    int login_refused;           /* the last login was refused (logged once) */
    ereq *auth_wait;             /* requests waiting for a token */
    unsigned in_flight;          /* requests sent and not answered */
    ereq *queue_head, *queue_tail; /* requests waiting for a place, oldest first */
    /* counters for /metrics */
    uint64_t requests, failures;
    char message[512];           /* a failure's words, valid during done */
};

static etcd_backend *eb_of(regbackend *b) { return (etcd_backend *)b; }

/* ---- base64 (the gateway's bytes fields) ---- */

static int put_b64(strbuf *out, const char *s, size_t len)
{
    size_t n = 4 * ((len + 2) / 3);
    if (strbuf_reserve(out, n + 1) < 0)
        return -1;
    int w = EVP_EncodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)s, (int)len);
    out->len += (size_t)w;
    out->data[out->len] = '\0';
    return 0;
}

/* Decodes the JSON string v (base64) into out: 0, or -1 when it is not base64. */
static int read_b64(json_span v, strbuf *out)
{
    strbuf text = STRBUF_INIT;
    int rc = -1;
    if (json_read_string(v, &text) < 0)
        goto done;
    size_t len = text.len;
    if (len % 4) 
        goto done;
    if (len == 0) {
        rc = strbuf_append(out, "", 0);
        goto done;
    }
    if (strbuf_reserve(out, len) < 0)
        goto done;
    int n = EVP_DecodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)text.data, (int)len);
    if (n < 0)
        goto done;
    int pad = (text.data[len - 1] == '=') + (text.data[len - 2] == '=');
    out->len += (size_t)(n - pad);
    out->data[out->len] = '\0';
    rc = 0;
done:
    strbuf_free(&text);
    return rc;
}

/* An int64 the gateway sent as a string (or a number): 0 when absent or not one. */
static uint64_t read_u64(json_span obj, const char *name)
{
    json_span v;
    if (json_read_member(obj, name, &v) != 1)
        return 0;
    char buf[32];
    size_t n = 0;
    for (size_t i = 0; i < v.len && n < sizeof buf - 1; i++)
        if (v.p[i] >= '0' && v.p[i] <= '9')
            buf[n++] = v.p[i];
    buf[n] = '\0';
    return n ? strtoull(buf, NULL, 10) : 0;
}

static int read_bool(json_span obj, const char *name)
{
    json_span v;
    return json_read_member(obj, name, &v) == 1 && v.len == 4 && memcmp(v.p, "true", 4) == 0;
}

/* ---- requests, with failover ---- */

static void note_reachable(etcd_backend *eb, int ok, const char *why)
{
    if (ok) {
        if (eb->reachable < 0)
            rt_log(eb->b.rt, LOG_INFO, NULL, "etcd is reachable again (%s)", eb->members[eb->current]);
        eb->reachable = 1;
    } else {
        if (eb->reachable >= 0)
            rt_log(eb->b.rt, LOG_WARN, NULL, "etcd is unreachable (%s): registrations are retried, queries are "
                   "answered from this host's cache until it is back", why ? why : "no answer");
        eb->reachable = -1;
    }
}

static void ereq_send(ereq *q);

static void ereq_send_now(ereq *q);

/* Gives back q's place (if it holds one) and sends what waited for a place. */
static void release_place(ereq *q)
{
    etcd_backend *eb = q->eb;
    if (q->in_flight) {
        q->in_flight = 0;
        eb->in_flight--;
    }
    while (eb->queue_head && eb->in_flight < ETCD_MAX_IN_FLIGHT && !eb->freeing) {
        ereq *next = eb->queue_head;
        eb->queue_head = next->queue_next;
        if (!eb->queue_head)
            eb->queue_tail = NULL;
        next->queue_next = NULL;
        next->queued = 0;
        ereq_send_now(next);
    }
}

static void ereq_free(ereq *q)
{
    if (!q)
        return;
    if (q->queued) {
        ereq *prev = NULL;
        for (ereq *x = q->eb->queue_head; x; prev = x, x = x->queue_next)
            if (x == q) {
                if (prev)
                    prev->queue_next = q->queue_next;
                else
                    q->eb->queue_head = q->queue_next;
                if (q->eb->queue_tail == q)
                    q->eb->queue_tail = prev;
                break;
            }
    }
    for (ereq **p = &q->eb->auth_wait; *p; p = &(*p)->auth_next)
        if (*p == q) {
            *p = q->auth_next;
            break;
        }
    if (q->call)
        http_client_cancel(q->call);
    timer_stop(q->eb->b.rt, &q->retry);
    release_place(q);
    free(q->path);
    if (q->no_auth && q->body)
        explicit_bzero(q->body, q->len); /* the login's password */
    free(q->body);
    free(q);
}

/* Whether an answer means "try another member": none at all, or the cluster unavailable. */
static int retryable(long status) { return status == 0 || status == 502 || status == 503 || status == 504; }

static void on_ereq_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    ereq *q = ud;
    etcd_backend *eb = q->eb;
    q->call = NULL;
    eb->requests++;
    release_place(q);
    if (status == 401 && eb->user && !q->no_auth && !q->reauthed) {
        q->reauthed = 1; /* the token expired (or etcd restarted): a new one, and once more */
        if (q->token_gen == eb->token_gen) {
            free(eb->token);
            eb->token = NULL;
        }
        ereq_send(q);
        return;
    }
    if (retryable(status)) {
        eb->failures++;
        q->tried++;
        eb->current = (eb->current + 1) % eb->nmembers;
        if (rt_monotonic() < q->deadline) {
            if (q->tried < eb->nmembers) {
                ereq_send(q);
                return;
            }
            q->tried = 0;
            double wait = q->backoff;
            q->backoff = q->backoff * 2 > 2.0 ? 2.0 : q->backoff * 2;
            timer_start(eb->b.rt, &q->retry, rt_now(eb->b.rt) + wait);
            return;
        }
        note_reachable(eb, 0, error ? error : "the cluster has no leader");
    } else {
        note_reachable(eb, 1, NULL);
    }
    json_span v, h;
    if (status == 200 && json_read_value(body, len, &v) == 0 && json_read_member(v, "header", &h) == 1) {
        uint64_t rev = read_u64(h, "revision");
        if (rev > eb->seen_rev)
            eb->seen_rev = rev;
    }
    ereq_cb cb = q->cb;
    void *cud = q->ud;
    q->cb = NULL;
    cb(cud, status, body, len, error); /* frees q through the owner, or not: see ereq_done */
}

static void on_ereq_response(void *ud, const http_client_resp *r)
{
    on_ereq_answer(ud, r->status, r->body, r->len, r->error);
}

static void on_ereq_retry(rt *r, rt_timer *t)
{
    (void)r;
    ereq_send(t->data);
}

static void login(etcd_backend *eb);

/* The header that carries the token ("Authorization: <token>", no "Bearer"), or "". */
static void auth_header(const etcd_backend *eb, char *buf, size_t size)
{
    if (eb->token)
        snprintf(buf, size, "Authorization: %s", eb->token);
    else
        buf[0] = '\0';
}

static void ereq_send(ereq *q)
{
    etcd_backend *eb = q->eb;
    if (eb->user && !q->no_auth && !eb->token) { /* after the login */
        q->auth_next = eb->auth_wait;
        eb->auth_wait = q;
        login(eb);
        return;
    }
    if (!q->no_auth && eb->in_flight >= ETCD_MAX_IN_FLIGHT) { /* its turn comes in release_place */
        q->queued = 1;
        if (eb->queue_tail)
            eb->queue_tail->queue_next = q;
        else
            eb->queue_head = q;
        eb->queue_tail = q;
        return;
    }
    ereq_send_now(q);
}

static void ereq_send_now(ereq *q)
{
    etcd_backend *eb = q->eb;
    if (!q->no_auth) {
        q->in_flight = 1;
        eb->in_flight++;
    }
    char url[1024], auth[1200];
    snprintf(url, sizeof url, "%s%s", eb->members[eb->current], q->path);
    auth_header(eb, auth, sizeof auth);
    const char *headers[] = {auth, NULL};
    http_client_req req = {.method = "POST", .url = url, .body = q->body, .len = q->len, .timeout = ETCD_TIMEOUT,
                           .headers = auth[0] && !q->no_auth ? headers : NULL};
    q->token_gen = eb->token_gen;
    q->call = http_client_send(eb->http, &req, on_ereq_response, q);
    if (!q->call) { /* not even started: as no answer, from the loop */
        if (q->in_flight) {
            q->in_flight = 0;
            eb->in_flight--;
        }
        timer_start(eb->b.rt, &q->retry, rt_now(eb->b.rt) + 0.1);
    }
}

static const char *answer_error(etcd_backend *eb, long status, const char *body, size_t len, const char *error);

/* The login's answer: the token, then every request that waited for it goes (or fails with
 * the login's answer: a wrong password is the caller's error to see). */
static void on_login_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    ereq *q = ud;
    etcd_backend *eb = q->eb;
    eb->login = NULL;
    json_span v, t;
    strbuf token = STRBUF_INIT;
    if (status == 200 && json_read_value(body, len, &v) == 0 && json_read_member(v, "token", &t) == 1 &&
        json_read_string(t, &token) == 0 && token.data) {
        free(eb->token);
        eb->token = strbuf_steal(&token, NULL);
        eb->token_gen++;
    } else if (status != 0 && !eb->login_refused) { /* said once, until a login works */
        rt_log(eb->b.rt, LOG_ERROR, NULL, "etcd refused the login of user '%s': %s", eb->user,
               answer_error(eb, status, body, len, error));
    }
    eb->login_refused = !eb->token && status != 0;
    strbuf_free(&token);
    ereq *waiting = eb->auth_wait;
    eb->auth_wait = NULL;
    while (waiting) {
        ereq *w = waiting;
        waiting = w->auth_next;
        w->auth_next = NULL;
        if (eb->token) {
            ereq_send(w);
        } else {
            ereq_cb cb = w->cb;
            w->cb = NULL; /* a refused login refuses the call: 401, whatever etcd's own code */
            cb(w->ud, status >= 400 && status < 500 ? 401 : status, body, len, error);
        }
    }
    ereq_free(q);
}

static ereq *ereq_post(etcd_backend *eb, const char *path, strbuf *body, ereq_cb cb, void *ud);

static void login(etcd_backend *eb)
{
    if (eb->login)
        return;
    strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "{\"name\":");
    json_write_string(&b, eb->user, strlen(eb->user));
    strbuf_puts(&b, ",\"password\":");
    json_write_string(&b, eb->password, strlen(eb->password));
    strbuf_putc(&b, '}');
    eb->login = ereq_post(eb, "/v3/auth/authenticate", &b, on_login_answer, NULL);
    if (eb->login)
        eb->login->ud = eb->login;
}

/* Posts body (taken over: freed with the request) to path. cb runs once (unless the request
 * is freed first) with the answer of the member that answered, or status 0 after the
 * deadline. The owner frees the request with ereq_free after cb, or to cancel it. */
static ereq *ereq_post(etcd_backend *eb, const char *path, strbuf *body, ereq_cb cb, void *ud)
{
    ereq *q = calloc(1, sizeof *q);
    if (!q || strbuf_failed(body) || !(q->path = strdup(path))) {
        free(q);
        strbuf_free(body);
        return NULL;
    }
    q->eb = eb;
    q->len = body->len;
    q->body = strbuf_steal(body, NULL);
    q->deadline = rt_monotonic() + ETCD_DEADLINE;
    q->backoff = 0.2;
    q->cb = cb;
    q->ud = ud;
    q->no_auth = cb == on_login_answer;
    timer_init(&q->retry, on_ereq_retry, q);
    ereq_send(q);
    return q;
}

/* The gateway's error message of a failed answer, or its first 200 bytes. */
static const char *answer_error(etcd_backend *eb, long status, const char *body, size_t len, const char *error)
{
    if (status == 0) {
        snprintf(eb->message, sizeof eb->message, "etcd is unreachable (%s)", error ? error : "no answer");
        return eb->message;
    }
    json_span v, m;
    strbuf text = STRBUF_INIT;
    if (json_read_value(body, len, &v) == 0 &&
        (json_read_member(v, "message", &m) == 1 || json_read_member(v, "error", &m) == 1))
        json_read_string(m, &text);
    snprintf(eb->message, sizeof eb->message, "etcd answered %ld: %.400s", status,
             text.data ? text.data : len > 200 ? "(long answer)" : body);
    strbuf_free(&text);
    return eb->message;
}

/* ---- entries as etcd values ---- */

static const char *plural(reg_kind k) { return k == REG_CHANNEL ? "channels" : "systems"; }

static char *make_key(const etcd_backend *eb, reg_kind kind, const char *id)
{
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "%s/%s/%s", eb->prefix, plural(kind), id);
    return strbuf_failed(&b) ? (strbuf_free(&b), NULL) : strbuf_steal(&b, NULL);
}

/* The kind and id of a key under the prefix: 0, or -1 for a key of something else. */
static int parse_key(const etcd_backend *eb, const char *key, reg_kind *kind, const char **id)
{
    size_t n = strlen(eb->prefix);
    if (strncmp(key, eb->prefix, n) != 0 || key[n] != '/')
        return -1;
    key += n + 1;
    if (strncmp(key, "channels/", 9) == 0)
        *kind = REG_CHANNEL;
    else if (strncmp(key, "systems/", 8) == 0)
        *kind = REG_SYSTEM;
    else
        return -1;
    *id = key + (*kind == REG_CHANNEL ? 9 : 8);
    return **id ? 0 : -1;
}

static void put_str_or_null(strbuf *b, const char *s)
{
    if (s)
        json_write_string(b, s, strlen(s));
    else
        strbuf_puts(b, "null");
}

static char *make_value(const reg_fields *f, double ttl, double expires_at)
{
    strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "{\"info\":");
    strbuf_append(&b, f->json, f->json_len);
    strbuf_puts(&b, ",\"name\":");
    put_str_or_null(&b, f->name ? f->name : "");
    strbuf_printf(&b, ",\"public\":%s,\"caps\":[", f->is_public ? "true" : "false");
    for (size_t i = 0; i < f->ncaps; i++) {
        if (i)
            strbuf_putc(&b, ',');
        put_str_or_null(&b, f->caps[i]);
    }
    strbuf_puts(&b, "],\"registrant\":");
    put_str_or_null(&b, f->registrant);
    strbuf_puts(&b, ",\"subject\":");
    put_str_or_null(&b, f->subject);
    strbuf_puts(&b, ",\"endpoint\":");
    put_str_or_null(&b, f->endpoint);
    strbuf_puts(&b, ",\"ttl\":");
    json_write_double(&b, ttl);
    strbuf_puts(&b, ",\"expires_at\":");
    json_write_double(&b, expires_at);
    strbuf_putc(&b, '}');
    return strbuf_failed(&b) ? (strbuf_free(&b), NULL) : strbuf_steal(&b, NULL);
}

/* A value read back: spans into its text, strings unescaped into `strs`. */
typedef struct value_view {
    json_span info;
    strbuf name, registrant, subject, endpoint;
    int has_registrant, has_subject, has_endpoint;
    int is_public;
    double ttl, expires_at;
    strbuf caps_text;    /* the caps, unescaped, NUL-separated */
    const char **caps;
    size_t ncaps;
} value_view;

static void view_free(value_view *w)
{
    strbuf_free(&w->name);
    strbuf_free(&w->registrant);
    strbuf_free(&w->subject);
    strbuf_free(&w->endpoint);
    strbuf_free(&w->caps_text);
    free(w->caps);
    memset(w, 0, sizeof *w);
}

static int read_opt_string(json_span obj, const char *name, strbuf *out, int *has)
{
    json_span v;
    *has = 0;
    if (json_read_member(obj, name, &v) != 1 || json_read_is_null(v))
        return 0;
    *has = 1;
    return json_read_string(v, out) < 0 || strbuf_append(out, "", 0) < 0 ? -1 : 0;
}

/* 0 and the view, or -1 when the text is not a value this backend wrote. */
static int read_value(const char *text, size_t len, value_view *w)
{
    memset(w, 0, sizeof *w);
    json_span v, x;
    int has;
    if (json_read_value(text, len, &v) < 0 || json_read_member(v, "info", &w->info) != 1 ||
        json_read_member(v, "expires_at", &x) != 1 || json_read_number(x, &w->expires_at) < 0 ||
        json_read_member(v, "ttl", &x) != 1 || json_read_number(x, &w->ttl) < 0 ||
        read_opt_string(v, "name", &w->name, &has) < 0 ||
        read_opt_string(v, "registrant", &w->registrant, &w->has_registrant) < 0 ||
        read_opt_string(v, "subject", &w->subject, &w->has_subject) < 0 ||
        read_opt_string(v, "endpoint", &w->endpoint, &w->has_endpoint) < 0)
        goto bad;
    w->is_public = read_bool(v, "public");
    if (json_read_member(v, "caps", &x) == 1) {
        size_t pos = 0, n = 0;
        json_span item;
        int rc;
        while ((rc = json_read_next(x, &pos, NULL, &item)) == 1) {
            if (json_read_string(item, &w->caps_text) < 0 || strbuf_putc(&w->caps_text, '\0') < 0)
                goto bad;
            n++;
        }
        if (rc < 0)
            goto bad;
        if (n) {
            if (!(w->caps = calloc(n, sizeof *w->caps)))
                goto bad;
            const char *p = w->caps_text.data;
            for (size_t i = 0; i < n; i++) {
                w->caps[i] = p;
                p += strlen(p) + 1;
            }
        }
        w->ncaps = n;
    }
    return 0;
bad:
    view_free(w);
    return -1;
}

static const char *view_str(const strbuf *b, int has) { return has ? (b->data ? b->data : "") : NULL; }

/* ---- the cache ---- */

static void apply_value(etcd_backend *eb, reg_kind kind, const char *id, const char *text, size_t len)
{
    value_view w;
    if (read_value(text, len, &w) < 0) {
        rt_log(eb->b.rt, LOG_WARN, NULL, "etcd: the value of %s '%s' is not an entry this host can read; ignored",
               reg_kind_name(kind), id);
        return;
    }
    double now = rt_now(eb->b.rt);
    double left = w.expires_at - now;
    if (left > 0) {
        reg_fields f = {.id = id, .name = view_str(&w.name, 1), .is_public = w.is_public, .caps = w.caps,
                        .ncaps = w.ncaps, .json = w.info.p, .json_len = w.info.len,
                        .registrant = view_str(&w.registrant, w.has_registrant),
                        .endpoint = view_str(&w.endpoint, w.has_endpoint),
                        .subject = view_str(&w.subject, w.has_subject)};
        if (!registry_put(eb->reg, kind, &f, left, now))
            rt_log(eb->b.rt, LOG_WARN, NULL, "etcd: cannot hold %s '%s' in this host's cache (out of memory)",
                   reg_kind_name(kind), id);
    } else {
        registry_remove(eb->reg, kind, id, NULL, now); /* an expired one is purged as expired */
    }
    view_free(&w);
}

static void apply_delete(etcd_backend *eb, reg_kind kind, const char *id)
{
    registry_remove(eb->reg, kind, id, NULL, rt_now(eb->b.rt));
}

/* A change this host committed at revision rev: into the cache now unless the watch has it
 * already; its watch event is then skipped. */
static void apply_own(etcd_backend *eb, const char *key, uint64_t rev, const char *value, size_t len)
{
    reg_kind kind;
    const char *id;
    if (rev && rev <= eb->watch_rev)
        return;
    if (parse_key(eb, key, &kind, &id) < 0)
        return;
    if (value)
        apply_value(eb, kind, id, value, len);
    else
        apply_delete(eb, kind, id);
    if (rev && eb->synced)
        hashmap_put(eb->ahead, key, (void *)(uintptr_t)rev);
}

static void forget_mine(etcd_backend *eb, const char *key) { hashmap_remove(eb->mine, key); }

/* ---- sweeping what this host put and saw expire ---- */

static void sweep_free(sweep *s)
{
    ereq_free(s->req);
    free(s->key);
    free(s);
}

static void on_sweep_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    (void)status; /* best effort: the lease takes the key at last */
    (void)body;
    (void)len;
    (void)error;
    sweep *s = ud;
    for (sweep **p = &s->eb->sweeping; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    sweep_free(s);
}

static void put_txn_compare_mod(strbuf *b, const char *key, uint64_t rev)
{
    strbuf_puts(b, "{\"compare\":[{\"key\":\"");
    put_b64(b, key, strlen(key));
    strbuf_printf(b, "\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%llu\"}]",
                  (unsigned long long)rev);
}

static void on_sweep_work(rt *r, deferred *d)
{
    (void)r;
    etcd_backend *eb = d->data;
    while (eb->sweeps) {
        sweep *s = eb->sweeps;
        eb->sweeps = s->next;
        strbuf b = STRBUF_INIT;
        put_txn_compare_mod(&b, s->key, s->rev);
        strbuf_puts(&b, ",\"success\":[{\"request_delete_range\":{\"key\":\"");
        put_b64(&b, s->key, strlen(s->key));
        strbuf_puts(&b, "\"}}]}");
        s->req = ereq_post(eb, "/v3/kv/txn", &b, on_sweep_answer, s);
        if (!s->req) {
            sweep_free(s);
            continue;
        }
        s->next = eb->sweeping;
        eb->sweeping = s;
    }
}

/* The cache's events (host.c passes each on): the keep-alive hears of takeovers, and what
 * this host put and saw expire is swept from etcd. */
static void etcd_cache_event(regbackend *b, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    etcd_backend *eb = eb_of(b);
    if (ev == REG_EXPIRED) {
        char *key = make_key(eb, e->kind, e->id);
        void *rev = key ? hashmap_remove(eb->mine, key) : NULL;
        sweep *s = rev ? calloc(1, sizeof *s) : NULL;
        if (s) {
            *s = (sweep){.eb = eb, .key = key, .rev = (uint64_t)(uintptr_t)rev, .next = eb->sweeps};
            eb->sweeps = s;
            defer(b->rt, &eb->sweep_work);
        } else {
            free(key);
        }
    }
    if (!b->on_event)
        return;
    rb_event x = {.ev = ev, .kind = e->kind, .id = e->id, .registrant = e->registrant, .endpoint = e->endpoint,
                  .previous_registrant = prev ? prev->registrant : NULL};
    b->on_event(b->on_event_ud, &x);
}

/* ---- operations ---- */

static void unlink_call(rb_call *c)
{
    etcd_backend *eb = c->eb;
    if (c->prev)
        c->prev->next = c->next;
    else if (eb->calls == c)
        eb->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void drop_from_lease(rb_call *c)
{
    if (!c->lease)
        return;
    for (rb_call **p = &c->lease->waiting; *p; p = &(*p)->lease_next)
        if (*p == c) {
            *p = c->lease_next;
            break;
        }
    c->lease = NULL;
}

static void call_free(rb_call *c)
{
    defer_cancel(c->eb->b.rt, &c->start);
    unlink_call(c);
    drop_from_lease(c);
    ereq_free(c->req);
    free(c->id);
    free(c->key);
    free(c->value);
    free(c->registrant);
    free(c);
}

static void finish(rb_call *c, const rb_result *res)
{
    rb_done_fn done = c->done;
    void *ud = c->ud;
    c->req = NULL; /* freed by the caller of finish when it came from an answer */
    call_free(c);
    done(ud, res);
}

static void fail(rb_call *c, rb_status st, const char *why)
{
    rb_result res = {.status = st, .message = why};
    finish(c, &res);
}

static void step(rb_call *c);

static void on_step_answer(void *ud, long status, const char *body, size_t len, const char *error);

static void send_step(rb_call *c, const char *path, strbuf *body)
{
    c->req = ereq_post(c->eb, path, body, on_step_answer, c);
    if (!c->req) {
        rb_result res = {.status = RB_FAILED, .message = "out of memory"};
        finish(c, &res);
    }
}

static void put_request_put(strbuf *b, const rb_call *c)
{
    strbuf_puts(b, "{\"request_put\":{\"key\":\"");
    put_b64(b, c->key, strlen(c->key));
    strbuf_puts(b, "\",\"value\":\"");
    put_b64(b, c->value, strlen(c->value));
    strbuf_printf(b, "\",\"lease\":\"%s\"}}", c->lease ? c->lease->id : "0");
}

static void put_request_range(strbuf *b, const rb_call *c)
{
    strbuf_puts(b, "{\"request_range\":{\"key\":\"");
    put_b64(b, c->key, strlen(c->key));
    strbuf_puts(b, "\"}}");
}

/* The key's value and mod_revision from a range answer (or a txn's range response), read
 * into the call: 1 found, 0 absent, -1 malformed. */
static int read_range(json_span range, strbuf *value, uint64_t *mod)
{
    json_span kvs, kv, v;
    size_t pos = 0;
    if (json_read_member(range, "kvs", &kvs) != 1)
        return 0;
    int rc = json_read_next(kvs, &pos, NULL, &kv);
    if (rc != 1)
        return rc;
    *mod = read_u64(kv, "mod_revision");
    if (json_read_member(kv, "value", &v) != 1)
        return strbuf_append(value, "", 0) < 0 ? -1 : 1;
    return read_b64(v, value) < 0 ? -1 : 1;
}

static uint64_t read_header_rev(json_span v)
{
    json_span h;
    return json_read_member(v, "header", &h) == 1 ? read_u64(h, "revision") : 0;
}

/* The first range response of a txn's failure branch. */
static int txn_range(json_span v, json_span *range)
{
    json_span resps, first, rr;
    size_t pos = 0;
    if (json_read_member(v, "responses", &resps) != 1 || json_read_next(resps, &pos, NULL, &first) != 1 ||
        json_read_member(first, "response_range", &rr) != 1)
        return -1;
    *range = rr;
    return 0;
}

static void committed(rb_call *c, uint64_t rev, int registered)
{
    etcd_backend *eb = c->eb;
    rb_result res = {.status = RB_OK, .registered = registered};
    if (c->op == OP_PUT) {
        apply_own(eb, c->key, rev, c->value, strlen(c->value));
        if (rev)
            hashmap_put(eb->mine, c->key, (void *)(uintptr_t)rev);
        res.expires_at = c->expires_at;
        reg_kind kind;
        const char *id;
        if (parse_key(eb, c->key, &kind, &id) == 0)
            res.entry = registry_get(eb->reg, kind, id, rt_now(eb->b.rt));
    } else {
        apply_own(eb, c->key, rev, NULL, 0);
        forget_mine(eb, c->key);
    }
    finish(c, &res);
}

/* What a read of the key found: the holder decides the next step. */
static void decide(rb_call *c, int found, const char *value, size_t len, uint64_t mod)
{
    etcd_backend *eb = c->eb;
    if (++c->tries > ETCD_CAS_TRIES) {
        fail(c, RB_FAILED, "the entry changed under every attempt to change it; try again");
        return;
    }
    value_view w;
    int live = 0;
    if (found && read_value(value, len, &w) == 0) {
        live = w.expires_at > rt_now(eb->b.rt);
        int same = c->registrant ? w.has_registrant && strcmp(view_str(&w.registrant, 1), c->registrant) == 0
                                 : !w.has_registrant;
        if (live && !same && (c->op == OP_PUT || c->registrant)) {
            rb_result res = {.status = RB_NOT_OWNER, .holder = view_str(&w.registrant, w.has_registrant),
                             .holder_endpoint = view_str(&w.endpoint, w.has_endpoint)};
            rb_done_fn done = c->done;
            void *ud = c->ud;
            c->req = NULL;
            call_free(c);
            done(ud, &res);
            view_free(&w);
            return;
        }
        view_free(&w);
    } else if (found) {
        live = 0; /* a value of something else: taken as absent */
    }
    strbuf b = STRBUF_INIT;
    if (c->op == OP_REMOVE && (!found || !live)) {
        fail(c, RB_NOT_FOUND, NULL);
        return;
    }
    c->expired_seen = found && !live;
    if (!found) {
        c->step = ST_CREATE;
        strbuf_puts(&b, "{\"compare\":[{\"key\":\"");
        put_b64(&b, c->key, strlen(c->key));
        strbuf_puts(&b, "\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"}]");
    } else {
        c->step = c->op == OP_PUT ? ST_SWAP : ST_DELETE;
        put_txn_compare_mod(&b, c->key, mod);
    }
    strbuf_puts(&b, ",\"success\":[");
    if (c->op == OP_PUT) {
        put_request_put(&b, c);
    } else {
        strbuf_puts(&b, "{\"request_delete_range\":{\"key\":\"");
        put_b64(&b, c->key, strlen(c->key));
        strbuf_puts(&b, "\"}}");
    }
    strbuf_puts(&b, "],\"failure\":[");
    put_request_range(&b, c);
    strbuf_puts(&b, "]}");
    send_step(c, "/v3/kv/txn", &b);
}

static int lease_lost(long status, const char *body)
{
    return status == 404 || (status >= 400 && strstr(body, "lease not found"));
}

static void lease_reset(lease *l);

static void on_step_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    rb_call *c = ud;
    etcd_backend *eb = c->eb;
    ereq *q = c->req;
    c->req = NULL;
    if (status != 200) {
        if (c->op == OP_PUT && c->lease && lease_lost(status, body) && c->tries++ < ETCD_CAS_TRIES) {
            lease_reset(c->lease); /* etcd forgot it: a new one, and the put again */
            ereq_free(q);
            step(c);
            return;
        }
        rb_status st = status == 0 || retryable(status) ? RB_UNREACHABLE
                       : status == 401 || status == 403 ? RB_FORBIDDEN
                       : status == 400 ? RB_BAD_REQUEST : RB_FAILED;
        const char *msg = answer_error(eb, status, body, len, error);
        ereq_free(q);
        fail(c, st, msg);
        return;
    }
    json_span v;
    if (json_read_value(body, len, &v) < 0) {
        ereq_free(q);
        fail(c, RB_FAILED, "etcd's answer is not JSON");
        return;
    }
    uint64_t rev = read_header_rev(v);
    strbuf value = STRBUF_INIT;
    uint64_t mod = 0;
    json_span range;
    int found;
    switch (c->step) {
    case ST_PUT:
        ereq_free(q);
        committed(c, rev, -1);
        break;
    case ST_READ:
        found = read_range(v, &value, &mod);
        ereq_free(q);
        if (found < 0)
            fail(c, RB_FAILED, "etcd's answer to a read makes no sense");
        else
            decide(c, found, value.data, value.len, mod);
        break;
    case ST_CREATE:
    case ST_SWAP:
    case ST_DELETE:
        if (read_bool(v, "succeeded")) {
            int registered = c->step == ST_CREATE || c->expired_seen;
            ereq_free(q);
            committed(c, rev, registered);
            break;
        }
        found = txn_range(v, &range) < 0 ? -1 : read_range(range, &value, &mod);
        ereq_free(q);
        if (found < 0)
            fail(c, RB_FAILED, "etcd's answer to a transaction makes no sense");
        else
            decide(c, found, value.data, value.len, mod);
        break;
    default:
        ereq_free(q);
        fail(c, RB_FAILED, "internal error: an answer in no step");
    }
    strbuf_free(&value);
}

/* ---- leases ---- */

static void lease_grant(lease *l);

static void on_beat_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    (void)error;
    lease *l = ud;
    etcd_backend *eb = l->eb;
    ereq_free(l->req);
    l->req = NULL;
    json_span v, r;
    if (status == 200 && json_read_value(body, len, &v) == 0) {
        /* {"result":{"ID":..,"TTL":"n"}}; a lease etcd no longer has comes back with no TTL */
        if (json_read_member(v, "result", &r) != 1)
            r = v;
        if (read_u64(r, "TTL") == 0) {
            rt_log(eb->b.rt, LOG_WARN, NULL, "etcd: the lease of %llds lapsed; its entries go, and are registered "
                   "again at their next refresh", l->ttl);
            l->id[0] = '\0';
            return; /* the next put grants a new one */
        }
    }
    double every = (double)l->ttl / 3.0;
    timer_start(eb->b.rt, &l->beat, rt_now(eb->b.rt) + (every < 0.5 ? 0.5 : every));
}

static void on_beat(rt *r, rt_timer *t)
{
    lease *l = t->data;
    if (!l->id[0] || l->req)
        return;
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"ID\":\"%s\"}", l->id);
    l->req = ereq_post(l->eb, "/v3/lease/keepalive", &b, on_beat_answer, l);
    if (!l->req)
        timer_start(r, &l->beat, rt_now(r) + 1);
}

static void on_grant_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    lease *l = ud;
    etcd_backend *eb = l->eb;
    ereq_free(l->req);
    l->req = NULL;
    l->granting = 0;
    json_span v, id;
    rb_call *waiting = l->waiting;
    l->waiting = NULL;
    if (status == 200 && json_read_value(body, len, &v) == 0 && json_read_member(v, "ID", &id) == 1) {
        size_t n = 0;
        for (size_t i = 0; i < id.len && n < sizeof l->id - 1; i++)
            if (id.p[i] >= '0' && id.p[i] <= '9')
                l->id[n++] = id.p[i];
        l->id[n] = '\0';
        uint64_t granted = read_u64(v, "TTL");
        if (granted > (uint64_t)l->ttl)
            rt_log(eb->b.rt, LOG_DEBUG, NULL, "etcd granted a lease of %llus for %llds", (unsigned long long)granted,
                   l->ttl);
        double every = (double)(granted ? (long long)granted : l->ttl) / 3.0;
        timer_start(eb->b.rt, &l->beat, rt_now(eb->b.rt) + (every < 0.5 ? 0.5 : every));
    }
    const char *msg = l->id[0] ? NULL : answer_error(eb, status, body, len, error);
    rb_status st = status == 0 || retryable(status) ? RB_UNREACHABLE : RB_FAILED;
    while (waiting) {
        rb_call *c = waiting;
        waiting = c->lease_next;
        c->lease_next = NULL;
        if (l->id[0]) {
            step(c);
        } else {
            c->lease = NULL;
            fail(c, st, msg);
        }
    }
}

static void lease_grant(lease *l)
{
    if (l->granting)
        return;
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"TTL\":\"%lld\"}", l->ttl);
    l->req = ereq_post(l->eb, "/v3/lease/grant", &b, on_grant_answer, l);
    l->granting = l->req != NULL;
}

static void lease_reset(lease *l)
{
    l->id[0] = '\0';
    timer_stop(l->eb->b.rt, &l->beat);
}

static lease *lease_for(etcd_backend *eb, double ttl)
{
    long long secs = (long long)ceil(ttl);
    if (secs < 1)
        secs = 1;
    for (lease *l = eb->leases; l; l = l->next)
        if (l->ttl == secs)
            return l;
    lease *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->eb = eb;
    l->ttl = secs;
    timer_init(&l->beat, on_beat, l);
    l->next = eb->leases;
    eb->leases = l;
    return l;
}

/* The call's next request, from its step. */
static void step(rb_call *c)
{
    strbuf b = STRBUF_INIT;
    if (c->op == OP_PUT && !c->lease->id[0]) {
        c->step = ST_LEASE;
        c->lease_next = c->lease->waiting;
        c->lease->waiting = c;
        lease_grant(c->lease);
        if (!c->lease->granting) {
            drop_from_lease(c);
            fail(c, RB_FAILED, "out of memory");
        }
        return;
    }
    if (c->op == OP_PUT && !c->refresh) {
        c->step = ST_PUT;
        strbuf_puts(&b, "{\"key\":\"");
        put_b64(&b, c->key, strlen(c->key));
        strbuf_puts(&b, "\",\"value\":\"");
        put_b64(&b, c->value, strlen(c->value));
        strbuf_printf(&b, "\",\"lease\":\"%s\"}", c->lease->id);
        send_step(c, "/v3/kv/put", &b);
        return;
    }
    /* a refresh or a remove reads the key first: whose it is decides (an operator's remove
     * takes whatever is live, and a key whose entry expired counts as absent) */
    c->step = ST_READ;
    strbuf_puts(&b, "{\"key\":\"");
    put_b64(&b, c->key, strlen(c->key));
    strbuf_puts(&b, "\"}");
    send_step(c, "/v3/kv/range", &b);
}

static void on_call_start(rt *r, deferred *d)
{
    (void)r;
    step(d->data);
}

static rb_call *call_new(etcd_backend *eb, enum op op, reg_kind kind, const char *id, const char *registrant,
                         rb_done_fn done, void *ud)
{
    rb_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (rb_call){.eb = eb, .op = op, .kind = kind, .done = done, .ud = ud};
    defer_init(&c->start, on_call_start, c);
    c->id = strdup(id);
    c->key = make_key(eb, kind, id);
    c->registrant = registrant ? strdup(registrant) : NULL;
    if (!c->id || !c->key || (registrant && !c->registrant)) {
        call_free(c);
        return NULL;
    }
    c->next = eb->calls;
    if (eb->calls)
        eb->calls->prev = c;
    eb->calls = c;
    return c;
}

static rb_call *etcd_put(regbackend *b, reg_kind kind, const reg_fields *f, double ttl, int refresh, rb_done_fn done,
                         void *ud)
{
    etcd_backend *eb = eb_of(b);
    rb_call *c = call_new(eb, OP_PUT, kind, f->id, f->registrant, done, ud);
    double now = rt_now(b->rt);
    if (c) {
        c->refresh = refresh;
        c->expires_at = now + ttl;
        c->value = make_value(f, ttl, c->expires_at);
        c->lease = lease_for(eb, ttl);
    }
    if (!c || !c->value || !c->lease) {
        if (c)
            call_free(c);
        rb_result res = {.status = RB_FAILED, .message = "out of memory"};
        done(ud, &res); /* before returning: allowed for an answer that needs no waiting */
        return NULL;
    }
    defer(b->rt, &c->start);
    return c;
}

static rb_call *etcd_remove(regbackend *b, reg_kind kind, const char *id, const char *registrant, rb_done_fn done,
                            void *ud)
{
    etcd_backend *eb = eb_of(b);
    rb_call *c = call_new(eb, OP_REMOVE, kind, id, registrant, done, ud);
    if (!c) {
        rb_result res = {.status = RB_FAILED, .message = "out of memory"};
        done(ud, &res);
        return NULL;
    }
    defer(b->rt, &c->start);
    return c;
}

static rb_call *etcd_ready(regbackend *b, rb_done_fn done, void *ud)
{
    etcd_backend *eb = eb_of(b);
    if (eb->synced) {
        rb_result res = {.status = RB_OK};
        done(ud, &res);
        return NULL;
    }
    rb_call *c = call_new(eb, OP_READY, REG_CHANNEL, "", NULL, done, ud);
    if (!c) {
        rb_result res = {.status = RB_FAILED, .message = "out of memory"};
        done(ud, &res);
    }
    return c; /* completed by the full read (ready_done) */
}

/* The full read is in (ok) or failed: every ready call completes. */
static void ready_done(etcd_backend *eb, int ok)
{
    rb_call *c = eb->calls, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->op != OP_READY)
            continue;
        if (ok) {
            rb_result res = {.status = RB_OK};
            finish(c, &res);
        } else {
            fail(c, RB_UNREACHABLE, "etcd did not answer the first read of the registry: answered from what this "
                 "host has");
        }
        next = eb->calls; /* done may have changed the list: start over (ready calls are gone) */
    }
}

/* A revocation in flight at a clean stop. */
typedef struct lease_revoke {
    etcd_backend *eb;
    unsigned *unfinished;
    ereq *req;
    struct lease_revoke *next;
} lease_revoke;

static void on_revoke_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    (void)status; /* best effort: a lease not revoked lapses within its TTL */
    (void)body;
    (void)len;
    (void)error;
    lease_revoke *r = ud;
    for (lease_revoke **p = &r->eb->revoking; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    (*r->unfinished)--;
    ereq_free(r->req);
    free(r);
}

static void etcd_shutdown(regbackend *b, unsigned *unfinished)
{
    etcd_backend *eb = eb_of(b);
    for (lease *l = eb->leases; l; l = l->next) {
        timer_stop(b->rt, &l->beat);
        if (!l->id[0])
            continue;
        lease_revoke *r = calloc(1, sizeof *r);
        if (!r)
            return;
        strbuf body = STRBUF_INIT;
        strbuf_printf(&body, "{\"ID\":\"%s\"}", l->id);
        l->id[0] = '\0';
        *r = (lease_revoke){.eb = eb, .unfinished = unfinished, .next = eb->revoking};
        r->req = ereq_post(eb, "/v3/lease/revoke", &body, on_revoke_answer, r);
        if (!r->req) {
            free(r);
            continue;
        }
        r->req->deadline = rt_monotonic() + 2.0; /* the host is exiting: not the usual patience */
        eb->revoking = r;
        (*unfinished)++;
    }
}

static size_t etcd_maintain(regbackend *b)
{
    (void)b; /* the host maintains its registry, which is this backend's cache */
    return 0;
}

static void etcd_cancel(regbackend *b, rb_call *c)
{
    (void)b;
    call_free(c);
}

/* ---- the watch ---- */

static void watch_read(etcd_backend *eb);
static void watch_stream(etcd_backend *eb);

static void watch_later(etcd_backend *eb)
{
    if (eb->freeing)
        return;
    timer_start(eb->b.rt, &eb->watch_timer, rt_now(eb->b.rt) + eb->watch_backoff);
    eb->watch_backoff = eb->watch_backoff * 2 > 5.0 ? 5.0 : eb->watch_backoff * 2;
}

static void on_watch_timer(rt *r, rt_timer *t)
{
    (void)r;
    etcd_backend *eb = t->data;
    if (eb->synced)
        watch_stream(eb);
    else
        watch_read(eb);
}

/* One event of the watch. */
static void watch_event(etcd_backend *eb, json_span ev)
{
    json_span kv, k, v, type;
    if (json_read_member(ev, "kv", &kv) != 1 || json_read_member(kv, "key", &k) != 1)
        return;
    strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    int is_delete = json_read_member(ev, "type", &type) == 1 && json_read_string_is(type, "DELETE");
    uint64_t rev = read_u64(kv, "mod_revision");
    reg_kind kind;
    const char *id;
    if (read_b64(k, &key) < 0 || !key.data || parse_key(eb, key.data, &kind, &id) < 0)
        goto done;
    void *ahead = hashmap_get(eb->ahead, key.data);
    if (ahead) {
        uint64_t at = (uint64_t)(uintptr_t)ahead;
        if (rev <= at) { /* this host applied it (or something later) already */
            if (rev == at)
                hashmap_remove(eb->ahead, key.data);
            goto done;
        }
        hashmap_remove(eb->ahead, key.data);
    }
    if (is_delete) {
        apply_delete(eb, kind, id);
        forget_mine(eb, key.data);
    } else if (json_read_member(kv, "value", &v) == 1 && read_b64(v, &value) == 0) {
        void *mine = hashmap_get(eb->mine, key.data);
        if (mine && (uint64_t)(uintptr_t)mine < rev)
            forget_mine(eb, key.data); /* someone else put it since */
        apply_value(eb, kind, id, value.data ? value.data : "", value.len);
    }
done:
    if (rev > eb->watch_rev)
        eb->watch_rev = rev;
    strbuf_free(&key);
    strbuf_free(&value);
}

/* One line of the stream: 0, or -1 when the watch must start over with a full read. */
static int watch_line(etcd_backend *eb, const char *line, size_t len)
{
    json_span v, r, events, ev;
    if (json_read_value(line, len, &v) < 0)
        return 0; /* not ours to judge: a keep-alive newline or a torn line */
    if (json_read_member(v, "result", &r) != 1) {
        rt_log(eb->b.rt, LOG_WARN, NULL, "etcd's watch failed: %.200s", line);
        return -1;
    }
    uint64_t compacted = read_u64(r, "compact_revision");
    if (compacted) {
        rt_log(eb->b.rt, LOG_INFO, NULL, "etcd compacted past revision %llu, which the watch had reached: reading "
               "the registry again", (unsigned long long)eb->watch_rev);
        eb->synced = 0;
        return -1;
    }
    if (read_bool(r, "canceled"))
        return -1;
    uint64_t hrev = read_header_rev(r);
    if (hrev > eb->seen_rev)
        eb->seen_rev = hrev;
    size_t pos = 0;
    if (json_read_member(r, "events", &events) == 1)
        while (json_read_next(events, &pos, NULL, &ev) == 1)
            watch_event(eb, ev);
    return 0;
}

/* Processes the complete lines the stream sent; -1 when it must start over. */
static int watch_drain(etcd_backend *eb)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i < eb->watch_buf.len && rc == 0; i++) {
        if (eb->watch_buf.data[i] != '\n')
            continue;
        rc = watch_line(eb, eb->watch_buf.data + start, i - start);
        start = i + 1;
    }
    if (rc < 0)
        start = eb->watch_buf.len;
    if (!eb->watch_buf.data) /* the stream ended before it sent anything */
        return rc;
    memmove(eb->watch_buf.data, eb->watch_buf.data + start, eb->watch_buf.len - start);
    eb->watch_buf.len -= start;
    eb->watch_buf.data[eb->watch_buf.len] = '\0';
    return rc;
}

static void on_watch_work(rt *r, deferred *d)
{
    (void)r;
    etcd_backend *eb = d->data;
    if (watch_drain(eb) < 0 && eb->watch_call) {
        http_client_cancel(eb->watch_call);
        eb->watch_call = NULL;
        strbuf_reset(&eb->watch_buf);
        eb->watch_backoff = 0.1;
        watch_later(eb);
    }
}

static int on_watch_body(void *ud, const char *data, size_t len)
{
    etcd_backend *eb = ud;
    note_reachable(eb, 1, NULL); /* only logs: nothing here calls the client */
    if (eb->watch_buf.len + len > WATCH_MAX_LINE || strbuf_append(&eb->watch_buf, data, len) < 0)
        return -1;
    defer(eb->b.rt, &eb->watch_work); /* processed from the loop, outside the client */
    return 0;
}

static void on_watch_end(void *ud, const http_client_resp *r)
{
    etcd_backend *eb = ud;
    eb->watch_call = NULL;
    defer_cancel(eb->b.rt, &eb->watch_work);
    if (watch_drain(eb) == 0 && r->status == 200) {
        eb->watch_backoff = 0.1; /* ended after working (its time-out): again soon */
    } else if (r->status == 401 && eb->token) {
        free(eb->token); /* refused: log in again before the next stream */
        eb->token = NULL;
    } else if (r->status != 200) {
        eb->current = (eb->current + 1) % eb->nmembers;
        if (retryable(r->status))
            note_reachable(eb, 0, r->error ? r->error : "the watch ended");
    }
    strbuf_reset(&eb->watch_buf);
    watch_later(eb);
}

/* "key":"<prefix>/","range_end":"<prefix>0" ('/' + 1): every key under the prefix, base64. */
static void put_prefix_range(strbuf *b, const etcd_backend *eb)
{
    char first[64], end[64];
    snprintf(first, sizeof first, "%s/", eb->prefix);
    snprintf(end, sizeof end, "%s0", eb->prefix);
    strbuf_puts(b, "\"key\":\"");
    put_b64(b, first, strlen(first));
    strbuf_puts(b, "\",\"range_end\":\"");
    put_b64(b, end, strlen(end));
    strbuf_putc(b, '"');
}

static void watch_stream(etcd_backend *eb)
{
    strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "{\"create_request\":{");
    put_prefix_range(&b, eb);
    strbuf_printf(&b, ",\"start_revision\":\"%llu\"}}", (unsigned long long)eb->watch_rev + 1);
    if (eb->user && !eb->token) { /* a full read logs in first */
        strbuf_free(&b);
        eb->synced = 0;
        watch_read(eb);
        return;
    }
    char url[1024], auth[1200];
    snprintf(url, sizeof url, "%s/v3/watch", eb->members[eb->current]);
    auth_header(eb, auth, sizeof auth);
    const char *headers[] = {auth, NULL};
    http_client_req req = {.method = "POST", .url = url, .body = b.data, .len = b.len, .timeout = 300,
                           .on_body = on_watch_body, .headers = auth[0] ? headers : NULL};
    if (!strbuf_failed(&b))
        eb->watch_call = http_client_send(eb->http, &req, on_watch_end, eb);
    strbuf_free(&b);
    if (!eb->watch_call)
        watch_later(eb);
}

/* Removes from the cache what the full read no longer has. */
static void drop_missing(etcd_backend *eb, hashmap *seen)
{
    double now = rt_now(eb->b.rt);
    for (int k = 0; k < 2; k++) {
        reg_list l = {0};
        int rc = k == 0 ? registry_find_channels(eb->reg, -1, NULL, now, &l) : registry_find_systems(eb->reg, NULL, now, &l);
        if (rc < 0)
            continue;
        for (size_t i = 0; i < l.count; i++) {
            char *key = make_key(eb, l.items[i]->kind, l.items[i]->id);
            if (key && !hashmap_get(seen, key)) {
                char *id = strdup(l.items[i]->id);
                reg_kind kind = l.items[i]->kind;
                if (id)
                    apply_delete(eb, kind, id); /* l's pointers stay valid: a removed entry is freed after */
                free(id);
            }
            free(key);
        }
        reg_list_free(&l);
    }
}

static void on_read_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    (void)error;
    etcd_backend *eb = ud;
    ereq_free(eb->read_req);
    eb->read_req = NULL;
    json_span v, kvs, kv, k, val;
    if (status != 200 || json_read_value(body, len, &v) < 0) {
        if (!eb->synced)
            ready_done(eb, 0);
        watch_later(eb);
        return;
    }
    hashmap *seen = hashmap_new();
    size_t pos = 0;
    strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    if (json_read_member(v, "kvs", &kvs) == 1)
        while (json_read_next(kvs, &pos, NULL, &kv) == 1) {
            strbuf_reset(&key);
            strbuf_reset(&value);
            reg_kind kind;
            const char *id;
            if (json_read_member(kv, "key", &k) != 1 || read_b64(k, &key) < 0 || !key.data ||
                parse_key(eb, key.data, &kind, &id) < 0 || json_read_member(kv, "value", &val) != 1 ||
                read_b64(val, &value) < 0)
                continue;
            if (seen)
                hashmap_put(seen, key.data, (void *)1);
            apply_value(eb, kind, id, value.data ? value.data : "", value.len);
        }
    strbuf_free(&key);
    strbuf_free(&value);
    if (seen) {
        drop_missing(eb, seen);
        hashmap_free(seen);
    }
    eb->watch_rev = read_header_rev(v);
    hashmap_free(eb->ahead); /* the read has everything up to its revision */
    eb->ahead = hashmap_new();
    eb->synced = eb->ahead != NULL;
    eb->watch_backoff = 0.1;
    watch_stream(eb);
    ready_done(eb, 1);
}

static void watch_read(etcd_backend *eb)
{
    strbuf b = STRBUF_INIT;
    strbuf_putc(&b, '{');
    put_prefix_range(&b, eb);
    strbuf_putc(&b, '}');
    eb->read_req = ereq_post(eb, "/v3/kv/range", &b, on_read_answer, eb);
    if (!eb->read_req)
        watch_later(eb);
}

static void etcd_watch(regbackend *b, const char *prefix)
{
    (void)b; /* every cache event reaches the listener anyway (etcd_cache_event) */
    (void)prefix;
}

static void etcd_free(regbackend *b)
{
    etcd_backend *eb = eb_of(b);
    eb->freeing = 1;
    while (eb->calls)
        call_free(eb->calls);
    while (eb->leases) {
        lease *l = eb->leases;
        eb->leases = l->next;
        ereq_free(l->req);
        timer_stop(b->rt, &l->beat);
        free(l);
    }
    for (sweep **list = &eb->sweeps; list; list = list == &eb->sweeps ? &eb->sweeping : NULL)
        while (*list) {
            sweep *s = *list;
            *list = s->next;
            sweep_free(s);
        }
    ereq_free(eb->read_req);
    if (eb->watch_call)
        http_client_cancel(eb->watch_call);
    timer_stop(b->rt, &eb->watch_timer);
    defer_cancel(b->rt, &eb->watch_work);
    defer_cancel(b->rt, &eb->sweep_work);
    strbuf_free(&eb->watch_buf);
    hashmap_free(eb->ahead);
    hashmap_free(eb->mine);
    for (size_t i = 0; i < eb->nmembers; i++)
        free(eb->members[i]);
    free(eb->members);
    while (eb->revoking) {
        struct lease_revoke *r = eb->revoking;
        eb->revoking = r->next;
        (*r->unfinished)--;
        ereq_free(r->req);
        free(r);
    }
    ereq_free(eb->login);
    free(eb->prefix);
    free(eb->user);
    if (eb->password)
        explicit_bzero(eb->password, strlen(eb->password));
    free(eb->password);
    free(eb->token);
    free((char *)b->where);
    free(eb);
}

static const regbackend_ops etcd_ops = {
    .put = etcd_put,
    .remove = etcd_remove,
    .maintain = etcd_maintain,
    .watch = etcd_watch,
    .cancel = etcd_cancel,
    .free = etcd_free,
    .ready = etcd_ready,
    .shutdown = etcd_shutdown,
    .cache_event = etcd_cache_event,
};

int regbackend_etcd_parse(const char *url, char ***members, size_t *n, char *err, size_t errlen)
{
    const char *scheme = "http://", *rest;
    if (strncmp(url, "etcd://", 7) == 0) {
        rest = url + 7;
    } else if (strncmp(url, "etcd+https://", 13) == 0) {
        rest = url + 13;
        scheme = "https://";
    } else {
        snprintf(err, errlen, "an etcd registry is etcd://HOST:PORT[,HOST:PORT...] or etcd+https://..., not '%s'", url);
        return -1;
    }
    *members = NULL;
    *n = 0;
    const char *p = rest;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (len == 0 || len > 255 || !colon || colon == p || colon + 1 == p + len ||
            strspn(colon + 1, "0123456789") < (size_t)(p + len - colon - 1) || memchr(p, '/', len)) {
            snprintf(err, errlen, "etcd member '%.*s' in '%s' is not HOST:PORT", (int)(len > 255 ? 255 : len), p, url);
            goto bad;
        }
        char **grown = realloc(*members, (*n + 1) * sizeof **members);
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            goto bad;
        }
        *members = grown;
        char *m = malloc(strlen(scheme) + len + 1);
        if (!m) {
            snprintf(err, errlen, "out of memory");
            goto bad;
        }
        sprintf(m, "%s%.*s", scheme, (int)len, p);
        (*members)[(*n)++] = m;
        p += len;
        if (*p == ',')
            p++;
    }
    if (*n == 0) {
        snprintf(err, errlen, "'%s' lists no etcd member (HOST:PORT)", url);
        return -1;
    }
    return 0;
bad:
    for (size_t i = 0; i < *n; i++)
        free((*members)[i]);
    free(*members);
    *members = NULL;
    *n = 0;
    return -1;
}

regbackend *regbackend_etcd_new(rt *r, struct http_client *c, registry *cache, channel *events, const char *url,
                                const char *prefix, const regbackend_etcd_auth *auth, char *err, size_t errlen)
{
    etcd_backend *eb = calloc(1, sizeof *eb);
    if (!eb) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (regbackend_etcd_parse(url, &eb->members, &eb->nmembers, err, errlen) < 0) {
        free(eb);
        return NULL;
    }
    size_t plen = prefix ? strlen(prefix) : 0;
    while (plen > 1 && prefix[plen - 1] == '/')
        plen--;
    eb->prefix = prefix && plen ? strndup(prefix, plen) : strdup("/sssn");
    strbuf where = STRBUF_INIT;
    strbuf_printf(&where, "%s", url);
    eb->b = (regbackend){.ops = &etcd_ops, .name = "etcd", .where = strbuf_steal(&where, NULL), .cache = cache,
                         .events = events, .rt = r};
    eb->http = c;
    eb->reg = cache;
    eb->ahead = hashmap_new();
    eb->mine = hashmap_new();
    eb->watch_backoff = 0.1;
    timer_init(&eb->watch_timer, on_watch_timer, eb);
    defer_init(&eb->watch_work, on_watch_work, eb);
    defer_init(&eb->sweep_work, on_sweep_work, eb);
    if (auth && auth->user && auth->password) {
        eb->user = strdup(auth->user);
        eb->password = strdup(auth->password);
    }
    if (!eb->prefix || !eb->b.where || !eb->ahead || !eb->mine || strlen(eb->prefix) > 60 ||
        (auth && auth->user && (!eb->user || !eb->password))) {
        snprintf(err, errlen, eb->prefix && strlen(eb->prefix) > 60 ? "the etcd prefix is longer than 60 bytes"
                                                                    : "out of memory");
        etcd_free(&eb->b);
        return NULL;
    }
    watch_read(eb);
    return &eb->b;
}

void regbackend_etcd_stats(const regbackend *b, regbackend_etcd_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!b || b->ops != &etcd_ops)
        return;
    const etcd_backend *eb = (const etcd_backend *)b;
    out->is_etcd = 1;
    out->requests = eb->requests;
    out->failures = eb->failures;
    out->reachable = eb->reachable >= 0;
    out->synced = eb->synced;
    out->lag = eb->seen_rev > eb->watch_rev ? eb->seen_rev - eb->watch_rev : 0;
}

int regbackend_stale(const regbackend *b)
{
    regbackend_etcd_counts e;
    regbackend_etcd_stats(b, &e);
    return e.is_etcd && !(e.reachable && e.synced);
}
