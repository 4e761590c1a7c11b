/* tls.c - the HTTP server's TLS (see tls.h): one SSL_CTX for the listener, one SSL per
 * connection on its non-blocking socket. SSL_read and SSL_write report WANT_READ/WANT_WRITE
 * as NET_WANT_*, and the server re-arms the connection's io watcher for what was wanted. */
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tls_server {
    SSL_CTX *ctx;
};

typedef struct tls_conn {
    SSL *ssl;
    int fd;
    int failed; /* a fatal error: no close_notify may be sent */
} tls_conn;

/* OpenSSL's reason for the last failure ("key values mismatch", "no start line"), and clears
 * the error queue. */
static const char *ssl_reason(char *buf, size_t size)
{
    unsigned long first = ERR_peek_error(), last = ERR_peek_last_error();
    const char *r1 = first ? ERR_reason_error_string(first) : NULL;
    const char *r2 = last ? ERR_reason_error_string(last) : NULL;
    if (r1 && r2 && strcmp(r1, r2) != 0) /* the cause, then what it led to ("no start line (PEM lib)") */
        snprintf(buf, size, "%s (%s)", r1, r2);
    else if (r2 || r1)
        snprintf(buf, size, "%s", r2 ? r2 : r1);
    else if (last)
        ERR_error_string_n(last, buf, size);
    else
        snprintf(buf, size, "unknown error");
    ERR_clear_error();
    return buf;
}

/* A file OpenSSL cannot open gives a vague reason: say what the system says first. */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the TLS %s '%s': %s", what, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

tls_server *tls_server_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    char why[256];
    if (!readable("certificate", cert_file, err, errlen) || !readable("key", key_file, err, errlen))
        return NULL;
    tls_server *t = calloc(1, sizeof *t);
    SSL_CTX *ctx = t ? SSL_CTX_new(TLS_server_method()) : NULL;
    if (!ctx) {
        snprintf(err, errlen, "cannot set up TLS: %s", t ? ssl_reason(why, sizeof why) : "out of memory");
        free(t);
        return NULL;
    }
    t->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* a peer that closes without close_notify reads as EOF, as on a plain socket */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* partial writes report progress record by record; the output buffer may move (it grows
     * while a write waits); idle connections give their buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, errlen, "cannot use the TLS certificate '%s': %s", cert_file, ssl_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "the TLS key '%s' does not belong to the certificate '%s': %s", key_file,
                     cert_file, ssl_reason(why, sizeof why));
        else
            snprintf(err, errlen, "cannot use the TLS key '%s': %s", key_file, ssl_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "the TLS key '%s' does not belong to the certificate '%s': %s", key_file, cert_file,
                 ssl_reason(why, sizeof why));
        goto fail;
    }
    return t;
fail:
    tls_server_free(t);
    return NULL;
}

void tls_server_free(tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

void *tls_conn_new(tls_server *t, int fd)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ssl = SSL_new(t->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    c->fd = fd;
    SSL_set_accept_state(c->ssl);
    return c;
}

static ssize_t result(tls_conn *c, int n)
{
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return NET_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return NET_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default: /* SSL_ERROR_SYSCALL (reset), SSL_ERROR_SSL (a failed handshake, a bad record) */
        c->failed = 1;
        ERR_clear_error();
        return NET_ERROR;
    }
}

static ssize_t tls_recv(void *conn, char *buf, size_t len)
{
    tls_conn *c = conn;
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : result(c, n);
}

static ssize_t tls_send(void *conn, const char *buf, size_t len)
{
    tls_conn *c = conn;
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : result(c, n);
}

static size_t tls_pending(void *conn)
{
    int n = SSL_pending(((tls_conn *)conn)->ssl);
    return n > 0 ? (size_t)n : 0;
}

static int tls_established(void *conn) { return SSL_is_init_finished(((tls_conn *)conn)->ssl); }

static void tls_shutdown(void *conn)
{
    tls_conn *c = conn;
    if (!c->failed && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* sends close_notify if the socket takes it; no waiting for the peer's */
        ERR_clear_error();
    }
    shutdown(c->fd, SHUT_WR);
}

static void tls_close(void *conn)
{
    tls_conn *c = conn;
    if (!c->failed && SSL_is_init_finished(c->ssl) && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* a clean end for the peer, if the socket takes it now */
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
}

const net_transport tls_transport = {
    .recv = tls_recv,
    .send = tls_send,
    .pending = tls_pending,
    .established = tls_established,
    .shutdown = tls_shutdown,
    .close = tls_close,
};
