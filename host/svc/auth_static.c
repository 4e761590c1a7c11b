/* auth_static.c - the static authentication stage (see auth.h): tokens listed in an
 * --auth-file by the hex of their SHA-256, never in the clear. A presented token is hashed
 * (OpenSSL EVP) and looked up in a hash map on that hex; the map's answer is confirmed with
 * CRYPTO_memcmp on the digest. Tokens it does not know go on to the jwt stage when there is
 * one and they are JWT-shaped. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/hashmap.h"
#include "core/jwt.h"
#include "svc/auth.h"

typedef struct entry {
    unsigned char hash[32];
    char subject[SSSN_ID_MAX + 1];
    auth_role role;
    char **channels; /* NULL: every channel */
    size_t nchannels;
    int line;
} entry;

typedef struct static_state {
    hashmap *by_hash; /* lower-case hex -> entry */
    auth_stage *next; /* for JWT-shaped tokens not listed, or NULL */
} static_state;

static void entry_free(entry *e)
{
    for (size_t i = 0; e && i < e->nchannels; i++)
        free(e->channels[i]);
    if (e)
        free(e->channels);
    free(e);
}

static int sha256(const char *s, size_t n, unsigned char out[32])
{
    unsigned len = 0;
    return EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

static void to_hex(const unsigned char *b, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 15];
    }
    hex[2 * n] = '\0';
}

int auth_token_sha256_hex(const char *token, size_t len, char hex[65])
{
    unsigned char h[32];
    if (sha256(token, len, h) < 0)
        return -1;
    to_hex(h, 32, hex);
    return 0;
}

/* Copies the entry's scope into the principal: 0, or -1 out of memory (nothing left). */
static int copy_scope(const entry *e, principal *p)
{
    if (!e->channels)
        return 0;
    p->channels = calloc(e->nchannels ? e->nchannels : 1, sizeof *p->channels);
    if (!p->channels)
        return -1;
    for (size_t i = 0; i < e->nchannels; i++) {
        if (!(p->channels[i] = strdup(e->channels[i]))) {
            principal_clear(p);
            return -1;
        }
        p->nchannels++;
    }
    return 0;
}

static int static_authenticate(auth_stage *a, const http_request *r, principal *p, int *status, char *detail,
                               size_t detail_size)
{
    static_state *s = a->state;
    size_t n = 0;
    const char *token = auth_bearer_token(r->authorization, &n);
    if (!token) {
        *status = 401;
        snprintf(detail, detail_size, "Missing Bearer token.");
        return -1;
    }
    unsigned char h[32];
    char hex[65];
    if (sha256(token, n, h) < 0) {
        *status = 500;
        snprintf(detail, detail_size, "cannot hash the token");
        return -1;
    }
    to_hex(h, 32, hex);
    const entry *e = hashmap_get(s->by_hash, hex);
    if (e && CRYPTO_memcmp(e->hash, h, 32) == 0) {
        memcpy(p->subject, e->subject, strlen(e->subject) + 1);
        p->role = e->role;
        p->anonymous = 0;
        p->enforced = 1;
        if (copy_scope(e, p) < 0) {
            *status = 500;
            snprintf(detail, detail_size, "out of memory");
            return -1;
        }
        return 0;
    }
    if (s->next && jwt_shaped(token, n))
        return s->next->authenticate(s->next, r, p, status, detail, detail_size);
    *status = 403;
    snprintf(detail, detail_size, "the token is not known");
    return -1;
}

static void free_entries(hashmap *m)
{
    if (!m)
        return;
    hashmap_iter it;
    void *v;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, NULL, &v))
        entry_free(v);
    hashmap_free(m);
}

static void static_free(auth_stage *a)
{
    static_state *s = a->state;
    if (s) {
        free_entries(s->by_hash);
        if (s->next)
            s->next->free(s->next);
        free(s);
    }
    free(a);
}

static int hex_digit(int c) { return isxdigit(c) != 0; }

/* Splits the comma-separated CHANNEL list into e's scope: 0, or -1 with why. */
static int parse_channels(char *list, entry *e, char *why, size_t size)
{
    size_t n = 1;
    for (char *c = list; *c; c++)
        n += *c == ',';
    if (!(e->channels = calloc(n, sizeof *e->channels))) {
        snprintf(why, size, "out of memory");
        return -1;
    }
    char *item = list;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        const char *problem = sssn_id_problem(item, strlen(item));
        if (problem) {
            snprintf(why, size, "channel %zu of the list %s", i + 1, problem);
            return -1;
        }
        if (!(e->channels[i] = strdup(item))) {
            snprintf(why, size, "out of memory");
            return -1;
        }
        e->nchannels++;
        item = comma ? comma + 1 : item + strlen(item);
    }
    return 0;
}

/* One line's entry, or NULL with why. */
static entry *parse_line(char *line, int lineno, char *why, size_t size)
{
    char *fields[5];
    int nf = 0;
    for (char *p = line; *p;) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (!*p)
            break;
        if (nf == 5) {
            nf++; /* too many: counted, not kept */
            break;
        }
        fields[nf++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
    if (nf < 3 || nf > 4) {
        snprintf(why, size, "wants 'sha256:<hex> SUBJECT ROLE [CHANNEL,CHANNEL...]' (3 or 4 fields), not %s%d",
                 nf > 4 ? "more than " : "", nf > 4 ? 4 : nf);
        return NULL;
    }
    const char *h = fields[0];
    if (strncmp(h, "sha256:", 7) != 0) {
        snprintf(why, size, "the token's hash must start with 'sha256:' (sssn-host token --static makes a line)");
        return NULL;
    }
    h += 7;
    if (strlen(h) != 64 || !hex_digit((unsigned char)h[0])) {
        snprintf(why, size, "the token's hash must be 64 hex digits after 'sha256:'");
        return NULL;
    }
    for (int i = 0; i < 64; i++)
        if (!hex_digit((unsigned char)h[i])) {
            snprintf(why, size, "the token's hash must be 64 hex digits after 'sha256:'");
            return NULL;
        }
    const char *problem = sssn_id_problem(fields[1], strlen(fields[1]));
    if (problem) {
        snprintf(why, size, "the SUBJECT %s", problem);
        return NULL;
    }
    int role = jwt_role_parse(fields[2], strlen(fields[2]));
    if (!role) {
        snprintf(why, size, "ROLE must be read, write or admin, not '%.32s'", fields[2]);
        return NULL;
    }
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(why, size, "out of memory");
        return NULL;
    }
    for (int i = 0; i < 32; i++) {
        char byte[3] = {(char)tolower((unsigned char)h[2 * i]), (char)tolower((unsigned char)h[2 * i + 1]), 0};
        e->hash[i] = (unsigned char)strtoul(byte, NULL, 16);
    }
    memcpy(e->subject, fields[1], strlen(fields[1]) + 1);
    e->role = (auth_role)role;
    e->line = lineno;
    if (nf == 4 && parse_channels(fields[3], e, why, size) < 0) {
        entry_free(e);
        return NULL;
    }
    return e;
}

auth_stage *auth_static_load(const char *path, auth_stage *next, size_t *count, char *err, size_t errlen)
{
    *count = 0;
    auth_stage *a = calloc(1, sizeof *a);
    static_state *s = calloc(1, sizeof *s);
    hashmap *m = hashmap_new();
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    if (!a || !s || !m) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(f = fopen(path, "re"))) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        goto fail;
    }
    ssize_t got;
    int lineno = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strlen(line) != n) {
            snprintf(err, errlen, "%s:%d: the line holds a NUL byte", path, lineno);
            goto fail;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char why[160];
        entry *e = parse_line(line, lineno, why, sizeof why);
        if (!e) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            goto fail;
        }
        char hex[65];
        to_hex(e->hash, 32, hex);
        const entry *dup = hashmap_get(m, hex);
        if (dup) {
            snprintf(err, errlen, "%s:%d: the same token is listed on line %d", path, lineno, dup->line);
            entry_free(e);
            goto fail;
        }
        if (hashmap_put(m, hex, e) < 0) {
            snprintf(err, errlen, "out of memory");
            entry_free(e);
            goto fail;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    free(line);
    s->by_hash = m;
    s->next = next;
    *count = hashmap_count(m);
    *a = (auth_stage){.name = next ? "static+jwt" : "static", .authenticate = static_authenticate,
                      .free = static_free, .state = s};
    return a;
fail:
    if (f)
        fclose(f);
    free(line);
    free_entries(m);
    free(s);
    free(a);
    if (next)
        next->free(next);
    return NULL;
}
