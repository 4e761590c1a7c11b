/* http_client.c - libcurl multi on libev (see http_client.h): curl tells us which sockets to
 * watch (socket callback) and when to call back (timer callback); we feed events back with
 * curl_multi_socket_action and collect finished transfers. */
#include "net/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt/rt.h"
#include "rt/timer.h"
#include "core/strbuf.h"

#define MAX_RESPONSE (64u << 20)

static char *ca_file; /* --ca-file, or NULL: the system's CAs */

int http_client_set_ca_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the CA file '%s': %s", path, strerror(errno));
        return -1;
    }
    char line[128];
    int pem = 0;
    while (!pem && fgets(line, sizeof line, f))
        pem = strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
    fclose(f);
    if (!pem) {
        snprintf(err, errlen, "the CA file '%s' holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path);
        return -1;
    }
    char *copy = strdup(path);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(ca_file);
    ca_file = copy;
    return 0;
}

struct http_client {
    rt *rt;
    CURLM *multi;
    ev_timer timer;
    http_call *calls;
};

struct http_call {
    http_client *c;
    CURL *easy;
    struct curl_slist *headers;
    strbuf body;
    char *request_body;
    http_client_cb cb;
    http_client_response_cb rcb; /* instead of cb, from http_client_send */
    int (*on_body)(void *ud, const char *data, size_t len); /* a stream's pieces, or NULL */
    void *ud;
    char error[CURL_ERROR_SIZE];
    http_call *prev, *next;
};

typedef struct sock_watch {
    ev_io io;
    http_client *c;
} sock_watch;

static void call_free(http_call *call)
{
    http_client *c = call->c;
    curl_multi_remove_handle(c->multi, call->easy);
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    strbuf_free(&call->body);
    free(call->request_body);
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    free(call);
}

static void collect_done(http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        http_call *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        long status = 0;
        const char *error = NULL;
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        } else {
            error = call->error[0] ? call->error : curl_easy_strerror(msg->data.result);
        }
        http_client_cb cb = call->cb;
        http_client_response_cb rcb = call->rcb;
        void *ud = call->ud;
        http_client_resp r = {.status = status};
        char ctype[256] = "";
        if (rcb) {
            const char *ct = NULL;
            if (curl_easy_getinfo(msg->easy_handle, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) {
                snprintf(ctype, sizeof ctype, "%s", ct);
                r.content_type = ctype;
            }
            curl_easy_getinfo(msg->easy_handle, CURLINFO_NUM_CONNECTS, &r.connects);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &r.seconds);
        }
        /* hand the body over, then free the call before the callback can start another */
        strbuf body = call->body;
        call->body = (strbuf)STRBUF_INIT;
        char errcopy[CURL_ERROR_SIZE] = "";
        if (error)
            snprintf(errcopy, sizeof errcopy, "%s", error);
        call_free(call);
        if (rcb) {
            r.body = body.data ? body.data : "";
            r.len = body.len;
            r.error = error ? errcopy : NULL;
            rcb(ud, &r);
        } else {
            cb(ud, status, body.data ? body.data : "", body.len, error ? errcopy : NULL);
        }
        strbuf_free(&body);
    }
}

static void on_socket_event(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    sock_watch *sw = (sock_watch *)w;
    http_client *c = sw->c;
    int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, w->fd, flags, &running);
    collect_done(c);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    http_client *c = userp;
    sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(c->rt->loop, &sw->io);
            free(sw);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    if (!sw) {
        sw = calloc(1, sizeof *sw);
        if (!sw)
            return -1;
        sw->c = c;
        curl_multi_assign(c->multi, s, sw);
    } else {
        ev_io_stop(c->rt->loop, &sw->io);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_init(&sw->io, on_socket_event, s, events);
    ev_io_start(c->rt->loop, &sw->io);
    return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_client *c = w->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(c);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_client *c = userp;
    ev_timer_stop(c->rt->loop, &c->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": from the loop, never re-entering curl from here */
        ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0);
        ev_timer_start(c->rt->loop, &c->timer);
    }
    return 0;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_call *call = userdata;
    size_t n = size * nmemb;
    if (call->on_body)
        return call->on_body(call->ud, ptr, n) == 0 ? n : 0;
    if (call->body.len + n > MAX_RESPONSE || strbuf_append(&call->body, ptr, n) < 0)
        return 0; /* curl reports a write error */
    return n;
}

http_client *http_client_new(rt *r)
{
    /* libcurl's process-wide set-up (TLS libraries: tens of milliseconds) happens only when a
     * host first makes a request, not at every start-up; the host has a single thread */
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        curl_ready = 1;
    }
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rt = r;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    ev_timer_init(&c->timer, on_timer, 0, 0);
    c->timer.data = c;
    return c;
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    while (c->calls)
        call_free(c->calls);
    ev_timer_stop(c->rt->loop, &c->timer);
    curl_multi_cleanup(c->multi); /* removes the remaining socket watches through on_socket */
    free(c);
}

static http_call *start(http_client *c, const http_client_req *req, http_client_cb cb, http_client_response_cb rcb,
                        void *ud)
{
    const char *bearer = req->bearer, *body = req->body;
    size_t len = req->len;
    double timeout = req->timeout;
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        if (strpbrk(*hd, "\r\n"))
            return NULL; /* would forge headers */
    http_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    call->c = c;
    call->cb = cb;
    call->rcb = rcb;
    call->on_body = req->on_body;
    call->ud = ud;
    call->easy = curl_easy_init();
    if (!call->easy) {
        free(call);
        return NULL;
    }
    CURL *e = call->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* the defaults, said out loud: there is no way to turn verification off */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->fresh_connect)
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    /* bounded before the conversion: a double out of long's range is undefined behaviour */
    if (!(timeout > 0.001))
        timeout = 0.001;
    if (timeout > HTTP_CLIENT_MAX_TIMEOUT)
        timeout = HTTP_CLIENT_MAX_TIMEOUT;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    call->headers = curl_slist_append(NULL, "Accept: application/json");
    call->headers = curl_slist_append(call->headers, "Expect:"); /* no 100-continue round trip */
    if (bearer && (strpbrk(bearer, "\r\n") || strlen(bearer) > HTTP_CLIENT_MAX_BEARER)) {
        curl_slist_free_all(call->headers);
        curl_easy_cleanup(e);
        free(call);
        return NULL; /* would forge headers or be cut short */
    }
    if (bearer) {
        char auth[HTTP_CLIENT_MAX_BEARER + 32];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        call->headers = curl_slist_append(call->headers, auth);
    }
    int own_type = 0;
    for (const char *const *hd = req->headers; hd && *hd; hd++) {
        call->headers = curl_slist_append(call->headers, *hd);
        own_type |= strncasecmp(*hd, "Content-Type:", 13) == 0;
    }
    if (body) {
        call->request_body = malloc(len + 1);
        if (!call->request_body) {
            curl_easy_cleanup(e);
            curl_slist_free_all(call->headers);
            free(call);
            return NULL;
        }
        memcpy(call->request_body, body, len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->request_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
        if (!own_type)
            call->headers = curl_slist_append(call->headers, "Content-Type: application/json");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        call_free(call);
        return NULL;
    }
    return call;
}

http_call *http_client_request(http_client *c, const char *method, const char *url, const char *bearer,
                               const char *body, size_t len, double timeout, http_client_cb cb, void *ud)
{
    http_client_req req = {.method = method, .url = url, .bearer = bearer, .body = body, .len = len,
                        .timeout = timeout};
    return start(c, &req, cb, NULL, ud);
}

http_call *http_client_send(http_client *c, const http_client_req *req, http_client_response_cb cb, void *ud)
{
    return start(c, req, NULL, cb, ud);
}

void http_client_cancel(http_call *call) { call_free(call); }
