/* http_client.h - an asynchronous HTTP client on the host's loop: libcurl's multi interface
 * driven by libev io and timer watchers, with connection reuse across requests. Callbacks run
 * from the loop, never inside http_client_request. Timing is real time (never the test clock). */
#ifndef SSSN_HTTP_CLIENT_H
#define SSSN_HTTP_CLIENT_H

#include <stddef.h>

struct rt;
typedef struct http_client http_client;
typedef struct http_call http_call;

/* status is the HTTP status, or 0 with `error` set when no response came (refused, timed
 * out, malformed). body is NUL-terminated. */
typedef void (*http_client_cb)(void *ud, long status, const char *body, size_t len, const char *error);

http_client *http_client_new(struct rt *rt);

/* https:// URLs verify the peer's certificate and name, always, against the system's trusted
 * CAs or, once this is called (--ca-file), the PEM certificates in path instead. For every
 * client in the process; path is copied. 0, or -1 with err saying why the file is no use. */
int http_client_set_ca_file(const char *path, char *err, size_t errlen);
void http_client_free(http_client *c); /* cancels what is in flight without callbacks */

/* Seconds a request may take at most; longer time-outs are cut to this. */
#define HTTP_CLIENT_MAX_TIMEOUT 86400.0

/* Bytes a bearer may have at most (a JWT with a long channel list fits; the server takes
 * header values up to 8 KiB). */
#define HTTP_CLIENT_MAX_BEARER 8000

/* Starts a request. bearer (may be NULL; at most HTTP_CLIENT_MAX_BEARER bytes, no CR or LF)
 * is sent as "Authorization: Bearer <bearer>"; a body
 * (may be NULL) is sent as application/json. NULL when the request could not be started. */
http_call *http_client_request(http_client *c, const char *method, const char *url, const char *bearer,
                               const char *body, size_t len, double timeout, http_client_cb cb, void *ud);
void http_client_cancel(http_call *call); /* its callback will not run */

/* The same with more control and more of the answer (the test client of sssn.testing uses
 * it). Strings are copied before http_client_send returns. */
typedef struct http_client_req {
    const char *method, *url;
    const char *bearer;          /* may be NULL: as for http_client_request */
    const char *body;            /* may be NULL: no body */
    size_t len;
    double timeout;              /* seconds, cut to (0.001, HTTP_CLIENT_MAX_TIMEOUT] */
    const char *const *headers;  /* extra "Name: value" lines, NULL-terminated; may be NULL */
    int fresh_connect;           /* open a new connection rather than reuse a kept-alive one */
    /* May be NULL. When set, the body is not kept: each piece is handed to on_body(ud, data,
     * len) as it arrives (a stream: etcd's watch), and the final callback gets an empty body.
     * It runs inside the client's socket handling: it must not call the client (start or
     * cancel a request; defer that); it returns 0 to go on, non-zero to end the transfer,
     * which the final callback then reports as an error. */
    int (*on_body)(void *ud, const char *data, size_t len);
} http_client_req;

/* Valid during the callback only. */
typedef struct http_client_resp {
    long status;                 /* 0 with `error` set when no response came */
    const char *body;            /* NUL-terminated */
    size_t len;
    const char *error;           /* NULL on a response */
    const char *content_type;    /* the response's Content-Type, or NULL */
    long connects;               /* connections the request opened (0: it reused one) */
    double seconds;              /* the transfer's total time (curl's, from its start) */
} http_client_resp;

typedef void (*http_client_response_cb)(void *ud, const http_client_resp *r);

/* NULL when the request could not be started (out of memory, a header with CR or LF). */
http_call *http_client_send(http_client *c, const http_client_req *req, http_client_response_cb cb, void *ud);

#endif
