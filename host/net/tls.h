/* tls.h - TLS for the HTTP server (OpenSSL): a context made once from a certificate and key,
 * and per connection a transport (transport.h) over the non-blocking socket, on the same libev
 * loop as plain HTTP. The handshake runs inside the first reads; a handshake that stalls is
 * ended by the server's request deadline like a request that stalls. */
#ifndef SSSN_TLS_H
#define SSSN_TLS_H

#include <stddef.h>

#include "net/transport.h"

typedef struct tls_server tls_server;

/* Loads cert_file (PEM, the certificate then any intermediates) and key_file (PEM) and checks
 * that they belong together. NULL on failure, with err naming the file and OpenSSL's reason. */
tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
void tls_server_free(tls_server *t);

extern const net_transport tls_transport;

/* A server-side TLS connection on the accepted socket fd (which the caller keeps owning and
 * closes after tls_transport.close). NULL when out of memory. */
void *tls_conn_new(tls_server *t, int fd);

#endif
