/* transport.h - how http_server.c moves bytes on a connection that is not a plain socket: TLS
 * (tls.c) and the in-memory pipes of the fuzzer and tests (http_server.c). A plain socket has
 * no transport: the server calls read/send itself, so that path costs nothing more. */
#ifndef SSSN_TRANSPORT_H
#define SSSN_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

/* What recv and send return instead of a byte count: */
#define NET_WANT_READ (-1)  /* wait until the socket is readable, then call again */
#define NET_WANT_WRITE (-2) /* wait until the socket is writable, then call again */
#define NET_ERROR (-3)      /* the connection is broken: close it */

typedef struct net_transport {
    ssize_t (*recv)(void *conn, char *buf, size_t len);       /* >0 bytes, 0 at EOF, NET_* */
    ssize_t (*send)(void *conn, const char *buf, size_t len); /* >0 bytes, NET_* */
    size_t (*pending)(void *conn);    /* bytes received and decoded that recv hands out without the socket */
    int (*established)(void *conn);   /* the handshake is done: an answer can be sent */
    void (*shutdown)(void *conn);     /* end our side (close_notify, then SHUT_WR); reading goes on */
    void (*close)(void *conn);        /* frees conn; the server closes the descriptor itself */
} net_transport;

#endif
