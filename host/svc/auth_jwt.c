/* auth_jwt.c - the jwt authentication stage (see auth.h): a Bearer token must be an HS256 JWT
 * (core/jwt.h) signed with the --jwt-secret-file secret; its claims become the principal.
 * Also the Bearer header parser the enforcing stages share, and the secret file reader. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/jwt.h"
#include "svc/auth.h"

_Static_assert(JWT_SUB_MAX == SSSN_ID_MAX, "a token's sub is an id");
_Static_assert((int)JWT_ROLE_READ == (int)ROLE_READ && (int)JWT_ROLE_WRITE == (int)ROLE_WRITE &&
                   (int)JWT_ROLE_ADMIN == (int)ROLE_ADMIN,
               "jwt roles are auth roles");

#define SECRET_MAX (64 * 1024)

typedef struct jwt_state {
    size_t len;
    unsigned char secret[];
} jwt_state;

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int jwt_authenticate(auth_stage *a, const http_request *r, principal *p, int *status, char *detail,
                            size_t detail_size)
{
    jwt_state *s = a->state;
    size_t n = 0;
    const char *token = auth_bearer_token(r->authorization, &n);
    if (!token) {
        *status = 401;
        snprintf(detail, detail_size, "Missing Bearer token.");
        return -1;
    }
    jwt_claims c;
    int rc = jwt_verify(token, n, s->secret, s->len, wall_now(), &c, detail, detail_size);
    if (rc < 0) {
        *status = rc == -2 ? 500 : 403;
        return -1;
    }
    memcpy(p->subject, c.sub, strlen(c.sub) + 1);
    p->role = (auth_role)c.role;
    p->anonymous = 0;
    p->enforced = 1;
    p->channels = c.channels; /* taken over: principal_clear frees them */
    p->nchannels = c.nchannels;
    return 0;
}

static void jwt_free(auth_stage *a)
{
    jwt_state *s = a->state;
    if (s) {
        OPENSSL_cleanse(s->secret, s->len);
        free(s);
    }
    free(a);
}

auth_stage *auth_jwt_new(const unsigned char *secret, size_t len)
{
    if (len == 0)
        return NULL;
    auth_stage *a = calloc(1, sizeof *a);
    jwt_state *s = malloc(sizeof *s + len);
    if (!a || !s) {
        free(a);
        free(s);
        return NULL;
    }
    s->len = len;
    memcpy(s->secret, secret, len);
    *a = (auth_stage){.name = "jwt", .authenticate = jwt_authenticate, .free = jwt_free, .state = s};
    return a;
}

int auth_secret_read(const char *path, unsigned char **secret, size_t *len, int *loose, char *err, size_t errlen)
{
    *secret = NULL;
    *len = 0;
    *loose = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    *loose = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
    unsigned char *buf = malloc(SECRET_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, SECRET_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > SECRET_MAX) {
            snprintf(err, errlen, "'%s' is larger than 64 KiB: is it the secret?", path);
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n == 0) {
        snprintf(err, errlen, "'%s' is empty: the secret needs at least one byte (32 random ones are "
                              "best: openssl rand -hex 32 > %s)", path, path);
        goto fail;
    }
    *secret = buf;
    *len = n;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(buf, SECRET_MAX + 1);
    free(buf);
    return -1;
}
