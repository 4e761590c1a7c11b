/* http_client.h - an asynchronous HTTP client on the host's loop: libcurl's multi interface
 * driven by libev io and timer watchers, with connection reuse across requests. Callbacks run
 * from the loop, never inside http_client_request. Timing is real time (never the test clock). */
#ifndef SSSN_HTTP_CLIENT_H
#define SSSN_HTTP_CLIENT_H

#include <stddef.h>

struct host;
typedef struct http_client http_client;
typedef struct http_call http_call;

/* status is the HTTP status, or 0 with `error` set when no response came (refused, timed
 * out, malformed). body is NUL-terminated. */
typedef void (*http_client_cb)(void *ud, long status, const char *body, size_t len, const char *error);

http_client *http_client_new(struct host *h);
void http_client_free(http_client *c); /* cancels what is in flight without callbacks */

/* Seconds a request may take at most; longer time-outs are cut to this. */
#define HTTP_CLIENT_MAX_TIMEOUT 86400.0

/* Starts a request. bearer (may be NULL) is sent as "Authorization: Bearer <bearer>"; a body
 * (may be NULL) is sent as application/json. NULL when the request could not be started. */
http_call *http_client_request(http_client *c, const char *method, const char *url, const char *bearer,
                               const char *body, size_t len, double timeout, http_client_cb cb, void *ud);
void http_client_cancel(http_call *call); /* its callback will not run */

#endif
