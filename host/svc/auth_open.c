/* auth_open.c - the open authentication stage (see auth.h): no check, the token only names. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc/auth.h"

/* auth_bearer_token (auth.h): shared by every stage. */
const char *auth_bearer_token(const char *auth, size_t *len)
{
    if (!auth)
        return NULL;
    while (*auth == ' ' || *auth == '\t')
        auth++;
    if (strncasecmp(auth, "bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
        return NULL;
    const char *t = auth + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = 0;
    while (t[n] && !isspace((unsigned char)t[n]))
        n++;
    const char *rest = t + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (n == 0 || *rest)
        return NULL;
    *len = n;
    return t;
}

static int open_authenticate(auth_stage *a, const http_request *r, principal *p, int *status, char *detail,
                             size_t detail_size)
{
    (void)a;
    size_t n = 0;
    const char *token = auth_bearer_token(r->authorization, &n);
    if (token && n > SSSN_ID_MAX) {
        *status = 400;
        snprintf(detail, detail_size, "the Bearer token is %zu characters long; at most %d are allowed", n,
                 SSSN_ID_MAX);
        return -1;
    }
    p->anonymous = token == NULL;
    if (!token) {
        token = "anonymous";
        n = strlen(token);
    }
    memcpy(p->subject, token, n);
    p->subject[n] = '\0';
    p->role = ROLE_ADMIN;
    return 0;
}

static void open_free(auth_stage *a) { free(a); }

int principal_scope_allows(const principal *p, const char *id)
{
    return !p->channels || principal_scope_names(p, id);
}

int principal_scope_names(const principal *p, const char *id)
{
    for (size_t i = 0; p->channels && i < p->nchannels; i++)
        if (strcmp(p->channels[i], id) == 0)
            return 1;
    return 0;
}

void principal_clear(principal *p)
{
    for (size_t i = 0; p->channels && i < p->nchannels; i++)
        free(p->channels[i]);
    free(p->channels);
    p->channels = NULL;
    p->nchannels = 0;
}

auth_stage *auth_open_new(void)
{
    auth_stage *a = calloc(1, sizeof *a);
    if (a)
        *a = (auth_stage){.name = "open", .authenticate = open_authenticate, .free = open_free};
    return a;
}
