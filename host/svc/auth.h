/* auth.h - the authentication stage of the HTTP request pipeline (svc/api.c: parse ->
 * authenticate -> route -> respond). A stage turns a request's credentials into the
 * principal the routes act for, or refuses the request with a status. Today's stage is
 * `open`: it checks nothing and lets everything through, as the Python sssn OpenSecurity
 * does. The jwt stage (auth_jwt.c) verifies HS256 JWTs as the Python JWTChannelSecurity
 * issues them, the static stage (auth_static.c) tokens listed hashed in an --auth-file. */
#ifndef SSSN_AUTH_H
#define SSSN_AUTH_H

#include <stddef.h>

#include "net/http_server.h"
#include "sys/host.h"

typedef enum { ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 } auth_role;

/* Who a request acts for. */
typedef struct principal {
    char subject[SSSN_ID_MAX + 1]; /* the reader, claimer and sender the routes use */
    auth_role role;
    int anonymous;                 /* no credential was given */
    int enforced;                  /* 1: a real stage vouched for it (roles, scope and ownership
                                    * apply); 0: the open stage (everything allowed, as before) */
    char **channels;               /* the token's channel scope, or NULL for every channel; owned
                                    * by the principal (principal_clear frees it) */
    size_t nchannels;
} principal;

/* 1 when the principal's scope names channel id, or it has no scope (every channel). */
int principal_scope_allows(const principal *p, const char *id);
/* 1 when the scope names id explicitly: what a private channel needs below admin. */
int principal_scope_names(const principal *p, const char *id);
/* Frees the scope; the principal can be filled again. */
void principal_clear(principal *p);

typedef struct auth_stage auth_stage;
struct auth_stage {
    const char *name;
    /* 0 with *p filled (*p starts zeroed; channels malloc'd or NULL), or -1 with the status to
     * answer (400, 401, 403) and why in detail, and nothing left to free in *p. */
    int (*authenticate)(auth_stage *a, const http_request *r, principal *p, int *status, char *detail,
                        size_t detail_size);
    void (*free)(auth_stage *a);
    void *state;
};

/* The open stage: a Bearer token names the caller (no token: "anonymous"), with every role;
 * a token over SSSN_ID_MAX characters is refused with 400 (cutting it would let two callers
 * share a cursor). NULL when out of memory. */
auth_stage *auth_open_new(void);

/* The token of an Authorization header "Bearer <token>" (spaces around it allowed) and its
 * length, or NULL when the header is absent, another scheme, or not one word (auth_jwt.c). */
const char *auth_bearer_token(const char *authorization, size_t *len);

/* The jwt stage: a Bearer token must be an HS256 JWT signed with secret[0..len) (copied), with
 * the claims of core/jwt.h; its sub names the principal, its role and channels bound it. No
 * Bearer token: 401 "Missing Bearer token."; a token that fails: 403 saying why ("the token
 * has expired", ...). NULL when out of memory or len is 0. */
auth_stage *auth_jwt_new(const unsigned char *secret, size_t len);

/* Reads a secret file (--jwt-secret-file): its bytes with one trailing newline stripped, in
 * *secret (malloc'd, the caller frees it). 0, or -1 with err saying why (unreadable, empty,
 * larger than 64 KiB, not a regular file). *loose is set when group or others may read it. */
int auth_secret_read(const char *path, unsigned char **secret, size_t *len, int *loose, char *err, size_t errlen);

/* The static stage (--auth-file): tokens listed hashed, one a line,
 *     sha256:<64 hex digits: SHA-256 of the token> SUBJECT ROLE [CHANNEL,CHANNEL...]
 * with blank lines and # comments; ROLE read, write or admin (any case); no CHANNELs: every
 * channel. A presented token is hashed and looked up; a known one gives its line's principal.
 * An unknown one goes to next when next is given (the jwt stage, when --jwt-secret-file is
 * given too) and the token is JWT-shaped (core/jwt.h: jwt_shaped), else it is refused with 403
 * "the token is not known". The stage owns next from this call on (also when it fails). NULL
 * with err naming FILE:LINE and what is wrong; *count gets the number of tokens listed. */
auth_stage *auth_static_load(const char *path, auth_stage *next, size_t *count, char *err, size_t errlen);

/* hex: the 64 lower-case hex digits (and a NUL) of the SHA-256 of token[0..len), as an
 * --auth-file line lists it. 0, or -1 when OpenSSL failed. */
int auth_token_sha256_hex(const char *token, size_t len, char hex[65]);

#endif
