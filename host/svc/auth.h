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

#endif
