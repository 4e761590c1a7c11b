/* auth.h - the authentication stage of the HTTP request pipeline (svc/api.c: parse ->
 * authenticate -> route -> respond). A stage turns a request's credentials into the
 * principal the routes act for, or refuses the request with a status. Today's stage is
 * `open`: it checks nothing and lets everything through, as the Python sssn OpenSecurity
 * does. Next (issue 10): HS256 JWTs compatible with the Python JWTChannelSecurity, and
 * static tokens stored hashed, as further stages behind this same interface. */
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
} principal;

typedef struct auth_stage auth_stage;
struct auth_stage {
    const char *name;
    /* 0 with *p filled, or -1 with the status to answer (400, 401, 403) and why in detail. */
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
