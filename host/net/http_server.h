/* http_server.h - an HTTP/1.1 server on the host's own libev loop: non-blocking sockets,
 * libhttp-parser for parsing, keep-alive, pipelining (requests answered in order) and
 * partial reads/writes. What a request means is the handler's business (api.c). */
#ifndef SSSN_HTTP_SERVER_H
#define SSSN_HTTP_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/strbuf.h"

struct rt;
struct http_conn;
typedef struct http_server http_server;

typedef struct http_request {
    struct http_conn *conn; /* NULL once the client has gone: the response is then dropped */
    const char *method;     /* "GET", "PUT", ... */
    char *path;             /* raw path, without the query */
    char *query;            /* raw query string without '?', "" when none */
    char *authorization;    /* the Authorization header, or NULL */
    strbuf body;
    void *data;             /* the handler's */
} http_request;

/* Called once per complete request. The handler answers with http_respond, at once or
 * later (from a task); until then the connection reads no further request. */
typedef void (*http_handler)(void *ud, http_request *r);

typedef struct http_limits {
    size_t max_body;      /* bytes; larger requests get 413 */
    double idle_timeout;  /* seconds a keep-alive connection may sit idle */
} http_limits;

/* An address to listen on, as resolved from --listen's ADDR. */
typedef struct http_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char numeric[64]; /* "127.0.0.1", "::1" (no brackets) */
    int loopback;     /* 127.0.0.0/8, ::1 or ::ffff:127.x.y.z: only this machine can connect */
    int any;          /* 0.0.0.0 or :: (every interface) */
} http_addr;

/* Resolves addr (an IPv4 address, an IPv6 address without brackets, or a host name) with
 * port for binding: the first address getaddrinfo gives. 0, or -1 with the reason in err. */
int http_resolve(const char *addr, int port, http_addr *out, char *err, size_t errlen);

/* Binds addr:port (addr as for http_resolve; port 0 picks a free one) and serves on h's loop.
 * NULL on failure, with the reason in err. */
http_server *http_server_start(struct rt *rt, const char *addr, int port, const http_limits *lim,
                               http_handler handler, void *ud, char *err, size_t errlen);
int http_server_port(const http_server *s);
void http_server_stop(http_server *s); /* closes the listener and every connection */

/* Sends the response (adds Content-Length, Connection, Content-Type) and frees r. */
void http_respond(http_request *r, int status, const char *content_type, const char *body, size_t len);
const char *http_status_text(int status);

/* Counters for /metrics. */
typedef struct http_stats {
    unsigned long long requests, connections, open_connections;
    unsigned long long by_class[6]; /* responses by status class: [2] = 2xx ... [5] = 5xx */
} http_stats;
const http_stats *http_server_stats(const http_server *s);

#endif
