/* http_server.h - an HTTP/1.1 server on the host's own libev loop: non-blocking sockets,
 * plain or TLS (tls.h), libhttp-parser for parsing, keep-alive, pipelining (requests answered
 * in order), partial reads/writes, and limits that hold against hostile clients (connections
 * in all and per address, a deadline for each request, a bound on unsent output). A socketless
 * pipe feeds bytes to the same code (the fuzzer's entry). What a request means is the
 * handler's business (api.c). */
#ifndef SSSN_HTTP_SERVER_H
#define SSSN_HTTP_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/strbuf.h"

struct rt;
struct http_conn;
struct tls_server;
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

/* 0 in a field other than max_body and idle_timeout means "no limit" (max_output: the
 * default, HTTP_DEFAULT_MAX_OUTPUT). */
typedef struct http_limits {
    size_t max_body;          /* bytes; larger requests get 413 */
    double idle_timeout;      /* seconds a connection may sit with nothing moving */
    double request_timeout;   /* seconds to receive a whole request (headers and body), from its
                               * first byte (from accept for a connection's first request and its
                               * TLS handshake); past it: 408 and close */
    unsigned max_connections; /* open at once; more are accepted and closed at once */
    unsigned max_per_address; /* open at once from one client address; the same */
    size_t max_output;        /* unsent bytes of answers past which a connection reads and parses
                               * no further request until the client takes them */
} http_limits;

#define HTTP_DEFAULT_MAX_OUTPUT (8u << 20)

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
/* Serves HTTPS from now on with t (before the loop runs, so before any accept); the server
 * owns t from then on and frees it when it stops. */
void http_server_set_tls(http_server *s, struct tls_server *t);
void http_server_stop(http_server *s); /* closes the listener and every connection */
/* A clean stop is under way: from now on every answer says Connection: close (the server
 * still accepts and answers; what to refuse is the handler's business). */
void http_server_drain(http_server *s);
/* Connections with a request in flight: with the handler, or its answer not all sent yet
 * (what a clean stop waits for). O(connections). */
size_t http_server_busy(const http_server *s);

/* Sends the response (adds Content-Length, Connection, Content-Type) and frees r. */
void http_respond(http_request *r, int status, const char *content_type, const char *body, size_t len);
/* The same with more header lines: headers is "Name: value\r\n" lines, or NULL. */
void http_respond_with(http_request *r, int status, const char *content_type, const char *headers,
                       const char *body, size_t len);
const char *http_status_text(int status);

/* Counters for /metrics. */
typedef struct http_stats {
    unsigned long long requests, connections, open_connections;
    unsigned long long by_class[6]; /* responses by status class: [2] = 2xx ... [5] = 5xx */
    unsigned long long rejected_total;        /* closed at accept: max_connections reached */
    unsigned long long rejected_per_address;  /* closed at accept: max_per_address reached */
    unsigned long long request_timeouts;      /* 408: the request deadline passed */
    unsigned long long output_paused;         /* times a connection stopped reading at max_output */
    unsigned long long tls_errors;            /* TLS connections ended by a failed handshake or record */
} http_stats;
const http_stats *http_server_stats(const http_server *s);

/* ---- socketless connections (the fuzzer, tests) ----
 * A server made with http_server_new_detached listens nowhere; http_pipe_open gives it a
 * connection whose bytes come from http_pipe_feed and whose output collects in `out`, through
 * the same parser, handler calls, limits and timers (the rt's clock) as a socket's. */
typedef struct http_pipe {
    struct http_conn *conn; /* NULL once the server closed the connection */
    strbuf in;              /* fed, not yet read by the server (from in_off) */
    size_t in_off;
    strbuf out;             /* every byte the server sent; the caller may reset it */
    int eof;                /* the client's side is shut (http_pipe_feed with eof) */
    int shut;               /* the server shut its side (it only drains input now) */
} http_pipe;

http_server *http_server_new_detached(struct rt *rt, const http_limits *lim, http_handler handler, void *ud);
/* p is the caller's (zeroed by this call); 0, or -1 when out of memory. */
int http_pipe_open(http_server *s, http_pipe *p);
/* Hands the server len more bytes (eof: then the client shuts its side) and runs it on them. */
void http_pipe_feed(http_pipe *p, const void *data, size_t len, int eof);
/* The client leaves: the server closes the connection (if still open); frees p's buffers. */
void http_pipe_close(http_pipe *p);

#endif
