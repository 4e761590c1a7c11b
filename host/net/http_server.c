/* http_server.c - HTTP/1.1 on the host's libev loop, over IPv4 or IPv6, plain or TLS. Non-blocking
 * accept/read/write; each connection parses with libhttp-parser and handles one request at a
 * time: the parser pauses at the end of a request and resumes on the buffered bytes once the
 * response is queued, so pipelined requests are answered in order. Output that the socket
 * cannot take waits for it; past max_output unsent, the connection reads no further request.
 * Bytes move through conn_recv/conn_send: a plain socket directly, TLS and the socketless
 * pipes through a transport (transport.h). One rt timer per connection covers the request
 * deadline, the idle timeout and the drain after an error: activity only records the time,
 * and the timer, when it fires early, re-arms itself for what is left. */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/hashmap.h"
#include "net/tls.h"
#include "net/transport.h"
#include "rt/rt.h"
#include "rt/timer.h"

#define READ_CHUNK 16384
#define MAX_URL 8192
#define MAX_HEADER_VALUE 8192
#define DRAIN_SECONDS 2.0

typedef struct http_conn {
    http_server *srv;
    int fd;                /* -1 for a pipe */
    int closed;
    const net_transport *tr; /* NULL: a plain socket, read and written directly */
    void *trc;             /* the transport's state for this connection */
    http_pipe *pipe;       /* a socketless connection's other end, or NULL */
    int pipe_reading;      /* a pipe's stand-in for an active read watcher */
    ev_io rio, wio;
    http_parser parser;
    char *in;              /* received bytes not parsed yet */
    size_t in_len, in_cap;
    strbuf out;
    size_t out_off;        /* bytes of out already sent */
    http_request *req;     /* the request being parsed */
    http_request *pending; /* parsed, waiting for its response */
    int busy;              /* a request is with the handler */
    int in_parse;          /* inside the parse loop (a synchronous response must not recurse) */
    int keep_alive;        /* of the request being answered */
    int head;              /* the request being answered is a HEAD: headers only */
    int closing;           /* close once the output is flushed */
    int eof;               /* the client closed its side */
    int linger;            /* after an error: drain the client's input before closing */
    int draining;          /* our side is shut: reading only to discard, until EOF or time-out */
    int paused;            /* reading stopped at max_output (counted once per pause) */
    int read_wants_write;  /* TLS: a read waits for the socket to be writable */
    int write_wants_read;  /* TLS: a write waits for the socket to be readable */
    int header_is_auth;    /* the header being parsed is Authorization */
    int last_was_value;
    strbuf header_field;
    char *error_status;    /* set by callbacks: answer this and close (e.g. "413") */
    double deadline;       /* the request being received must be complete by then; 0: none */
    double active_at;      /* when bytes last moved: the idle timeout counts from here */
    rt_timer timer;        /* the deadline, the idle timeout or the drain, whichever comes first */
    char addr[INET6_ADDRSTRLEN]; /* the client's address, when counted per address */
    struct http_conn *prev, *next;
} http_conn;

struct http_server {
    rt *rt;
    int fd;
    int port;
    ev_io accept_io;
    ev_timer accept_retry;
    http_limits lim;
    http_handler handler;
    void *ud;
    http_conn *conns;
    http_parser_settings settings;
    http_stats stats;
    tls_server *tls;     /* NULL: plain HTTP */
    hashmap *per_addr;   /* address -> open connections (as an integer), with max_per_address */
    int draining;        /* http_server_drain: every answer closes its connection */
};

static void conn_close(http_conn *c);
static void conn_parse(http_conn *c);
static int conn_flush(http_conn *c);
static void conn_read(http_conn *c);

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void request_free(http_request *r)
{
    if (!r)
        return;
    free(r->path);
    free(r->query);
    free(r->authorization);
    strbuf_free(&r->body);
    free(r);
}

/* ---- bytes in and out ---- */

static size_t max_output(const http_server *s)
{
    return s->lim.max_output ? s->lim.max_output : HTTP_DEFAULT_MAX_OUTPUT;
}

/* >0 bytes, 0 at EOF, or NET_WANT_READ / NET_WANT_WRITE / NET_ERROR. */
static ssize_t conn_recv(http_conn *c, char *buf, size_t len)
{
    if (!c->tr) {
        ssize_t n = read(c->fd, buf, len);
        if (n >= 0)
            return n;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? NET_WANT_READ : NET_ERROR;
    }
    return c->tr->recv(c->trc, buf, len);
}

static ssize_t conn_send(http_conn *c, const char *buf, size_t len)
{
    if (!c->tr) {
        for (;;) {
            ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
            if (n > 0)
                return n;
            if (n < 0 && errno == EINTR)
                continue;
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? NET_WANT_WRITE : NET_ERROR;
        }
    }
    return c->tr->send(c->trc, buf, len);
}

static int reading(const http_conn *c) { return c->pipe ? c->pipe_reading : ev_is_active(&c->rio); }

static void want_read(http_conn *c, int on)
{
    if (c->pipe) {
        c->pipe_reading = on;
        return;
    }
    struct ev_loop *loop = c->srv->rt->loop;
    if (!on) {
        ev_io_stop(loop, &c->rio);
        return;
    }
    ev_io_start(loop, &c->rio);
    /* bytes TLS already decoded make the socket look idle: come back for them from the loop */
    if (c->tr && c->tr->pending(c->trc))
        ev_feed_event(loop, &c->rio, EV_READ);
}

static void want_write(http_conn *c, int on)
{
    if (c->pipe)
        return; /* a pipe takes every byte at once */
    if (on)
        ev_io_start(c->srv->rt->loop, &c->wio);
    else
        ev_io_stop(c->srv->rt->loop, &c->wio);
}

/* ---- the connection's one timer ---- */

static void timer_arm(http_conn *c)
{
    double at = c->active_at + c->srv->lim.idle_timeout;
    if (c->deadline && c->deadline < at)
        at = c->deadline;
    timer_start(c->srv->rt, &c->timer, at);
}

/* Bytes moved: the idle timeout counts from now. Only a store: the timer, armed earlier, sees
 * it when it fires and re-arms for the rest. */
static inline void touch(http_conn *c) { c->active_at = rt_now(c->srv->rt); }

/* A request starts: it must be complete within request_timeout (once per request). */
static void start_deadline(http_conn *c)
{
    if (c->deadline || c->srv->lim.request_timeout <= 0 || c->draining)
        return;
    c->deadline = rt_now(c->srv->rt) + c->srv->lim.request_timeout;
    if (!timer_active(&c->timer) || c->deadline < c->timer.node.key)
        timer_start(c->srv->rt, &c->timer, c->deadline);
}

/* ---- output ---- */

/* Decimal text of v into buf (at least 21 bytes); returns its length. */
static size_t format_size(size_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Headers by appending pieces: formatting them with printf showed up in profiles. */
static void append_response(http_conn *c, int status, const char *ctype, const char *headers, const char *body,
                            size_t len, int keep)
{
    strbuf *o = &c->out;
    char num[24];
    strbuf_reserve(o, len + 160);
    strbuf_append(o, "HTTP/1.1 ", 9);
    strbuf_append(o, num, format_size((size_t)status, num));
    strbuf_putc(o, ' ');
    strbuf_puts(o, http_status_text(status));
    strbuf_append(o, "\r\nContent-Type: ", 16);
    strbuf_puts(o, ctype);
    strbuf_append(o, "\r\nContent-Length: ", 18);
    strbuf_append(o, num, format_size(len, num));
    strbuf_append(o, "\r\n", 2);
    if (headers)
        strbuf_puts(o, headers);
    strbuf_puts(o, keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    strbuf_append(o, body, len);
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        c->srv->stats.by_class[cls]++;
}

/* Ends our side after an error: the client may still be sending (a body we refused), and
 * closing now would reset the connection and lose our answer; so shut our side and drain
 * theirs, at most DRAIN_SECONDS. */
static void conn_linger(http_conn *c)
{
    if (c->pipe)
        c->pipe->shut = 1;
    else if (c->tr)
        c->tr->shutdown(c->trc);
    else
        shutdown(c->fd, SHUT_WR);
    c->draining = 1;
    c->in_len = 0;
    c->deadline = 0;
    c->read_wants_write = c->write_wants_read = 0;
    want_read(c, 1);
    timer_start(c->srv->rt, &c->timer, rt_now(c->srv->rt) + DRAIN_SECONDS);
}

/* Sends what the socket takes. Returns -1 when the connection was closed (and freed). */
static int conn_flush(http_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = conn_send(c, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            touch(c); /* a slow reader of a big answer is not idle */
            continue;
        }
        if (n == NET_WANT_WRITE) {
            want_write(c, 1);
            return 0;
        }
        if (n == NET_WANT_READ) { /* TLS wants the peer's bytes before it can write */
            c->write_wants_read = 1;
            want_write(c, 0);
            want_read(c, 1);
            return 0;
        }
        if (c->tr == &tls_transport)
            c->srv->stats.tls_errors++;
        conn_close(c); /* peer gone */
        return -1;
    }
    if (!c->read_wants_write)
        want_write(c, 0);
    strbuf_reset(&c->out);
    c->out_off = 0;
    c->paused = 0;
    if ((c->closing || (c->eof && c->in_len == 0)) && !c->busy) {
        if (c->linger && !c->eof) {
            conn_linger(c);
            return 0;
        }
        conn_close(c);
        return -1;
    }
    if (!c->eof && !c->read_wants_write && !reading(c))
        want_read(c, 1);
    return 0;
}

static void error_response(http_conn *c, int status, const char *type, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof body, "{\"detail\":\"%s\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
                     msg, type, msg);
    append_response(c, status, "application/json", NULL, body, (size_t)n, 0);
    c->closing = 1;
    c->linger = 1;
}

void http_respond_with(http_request *r, int status, const char *content_type, const char *headers,
                       const char *body, size_t len)
{
    http_conn *c = r->conn;
    request_free(r);
    if (!c)
        return; /* the client went away meanwhile */
    c->pending = NULL;
    c->busy = 0;
    if (c->srv->draining)
        c->keep_alive = 0; /* the client's next request goes to a fresh connection: elsewhere */
    append_response(c, status, content_type ? content_type : "application/json", headers, body, len, c->keep_alive);
    if (c->head && c->out.len >= len) {
        c->out.len -= len; /* HEAD: the same headers, Content-Length included, and no body */
        c->out.data[c->out.len] = '\0';
    }
    if (!c->keep_alive)
        c->closing = 1;
    if (c->in_parse)
        return; /* the parse loop that dispatched us carries on and flushes */
    if (conn_flush(c) == 0 && !c->closing)
        conn_parse(c);
}

void http_respond(http_request *r, int status, const char *content_type, const char *body, size_t len)
{
    http_respond_with(r, status, content_type, NULL, body, len);
}

/* ---- parser callbacks ---- */

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    request_free(c->req);
    c->req = calloc(1, sizeof *c->req);
    c->last_was_value = 0;
    c->header_is_auth = 0;
    strbuf_reset(&c->header_field);
    start_deadline(c); /* a pipelined request's clock starts when its turn comes */
    return c->req ? 0 : -1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    size_t have = c->req->path ? strlen(c->req->path) : 0;
    if (have + len > MAX_URL) {
        c->error_status = "414";
        return -1;
    }
    char *u = realloc(c->req->path, have + len + 1);
    if (!u)
        return -1;
    memcpy(u + have, at, len);
    u[have + len] = '\0';
    c->req->path = u;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->last_was_value) {
        strbuf_reset(&c->header_field);
        c->last_was_value = 0;
    }
    return strbuf_append(&c->header_field, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (!c->last_was_value) {
        c->last_was_value = 1;
        c->header_is_auth = c->header_field.data && strcasecmp(c->header_field.data, "authorization") == 0;
        if (c->header_is_auth) {
            free(c->req->authorization);
            c->req->authorization = NULL;
        }
    }
    if (!c->header_is_auth)
        return 0;
    size_t have = c->req->authorization ? strlen(c->req->authorization) : 0;
    if (have + len > MAX_HEADER_VALUE)
        return -1;
    char *v = realloc(c->req->authorization, have + len + 1);
    if (!v)
        return -1;
    memcpy(v + have, at, len);
    v[have + len] = '\0';
    c->req->authorization = v;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    if (p->content_length != ULLONG_MAX && p->content_length > c->srv->lim.max_body) {
        c->error_status = "413";
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->req->body.len + len > c->srv->lim.max_body) {
        c->error_status = "413";
        return -1;
    }
    return strbuf_append(&c->req->body, at, len);
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_request *r = c->req;
    c->req = NULL;
    c->deadline = 0; /* received in time: the handler's wait is not the client's */
    r->conn = c;
    r->method = http_method_str((enum http_method)p->method);
    c->keep_alive = http_should_keep_alive(p);
    c->head = p->method == HTTP_HEAD;
    if (!r->path)
        r->path = strdup("/");
    char *q = r->path ? strchr(r->path, '?') : NULL;
    if (q)
        *q++ = '\0';
    r->query = strdup(q ? q : "");
    if (!r->path || !r->query) {
        request_free(r);
        return -1;
    }
    c->pending = r;
    c->busy = 1;
    http_parser_pause(p, 1); /* one request at a time: resume after the response */
    return 0;
}

/* ---- connection ---- */

static void addr_release(http_conn *c)
{
    http_server *s = c->srv;
    if (!c->addr[0] || !s->per_addr)
        return;
    uintptr_t n = (uintptr_t)hashmap_get(s->per_addr, c->addr);
    if (n <= 1)
        hashmap_remove(s->per_addr, c->addr);
    else
        hashmap_put(s->per_addr, c->addr, (void *)(n - 1)); /* the key exists: no allocation */
    c->addr[0] = '\0';
}

static void conn_close(http_conn *c)
{
    http_server *s = c->srv;
    if (c->closed)
        return;
    c->closed = 1;
    if (!c->pipe) {
        ev_io_stop(s->rt->loop, &c->rio);
        ev_io_stop(s->rt->loop, &c->wio);
    }
    timer_stop(s->rt, &c->timer);
    if (c->tr)
        c->tr->close(c->trc);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    addr_release(c);
    if (c->pending)
        c->pending->conn = NULL; /* the handler still owns it and will drop the answer */
    request_free(c->req);
    c->req = NULL;
    strbuf_free(&c->out);
    strbuf_free(&c->header_field);
    free(c->in);
    c->in = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->stats.open_connections--;
    if (c->in_parse)
        return; /* freed by the parse loop when it unwinds */
    free(c);
}

/* Parses buffered input until a request is with the handler or the input runs out. */
static void conn_parse(http_conn *c)
{
    http_server *s = c->srv;
    size_t bound = max_output(s);
again:
    c->in_parse = 1;
    /* stop taking requests while answers pile up unsent: on_writable resumes */
    while (!c->closed && !c->busy && c->in_len > 0 && !c->closing && c->out.len - c->out_off < bound) {
        http_parser_pause(&c->parser, 0);
        size_t n = http_parser_execute(&c->parser, &s->settings, c->in, c->in_len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (n > c->in_len)
            n = c->in_len;
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
        if (e != HPE_OK && e != HPE_PAUSED) {
            if (c->error_status && strcmp(c->error_status, "413") == 0)
                error_response(c, 413, "payload_too_large", "request body too large");
            else if (c->error_status && strcmp(c->error_status, "414") == 0)
                error_response(c, 414, "uri_too_long", "request URL too long");
            else
                error_response(c, 400, "bad_request", "malformed HTTP request");
            c->in_len = 0;
            break;
        }
        if (c->busy && c->pending) {
            s->stats.requests++;
            s->handler(s->ud, c->pending); /* may answer at once (http_respond sees in_parse) */
        }
    }
    c->in_parse = 0;
    if (c->closed) {
        free(c);
        return;
    }
    if (c->out.len - c->out_off >= bound && c->in_len > 0 && !c->paused) {
        c->paused = 1;
        s->stats.output_paused++;
    }
    if (c->out.len > c->out_off) {
        /* the socket may take it all at once: then nothing else would come back for the
         * requests still buffered, so go on with them here */
        if (conn_flush(c) == 0 && !c->busy && !c->closing && !c->draining && c->in_len > 0 &&
            c->out.len - c->out_off < bound)
            goto again;
    } else if ((c->closing || (c->eof && c->in_len == 0)) && !c->busy) {
        conn_close(c);
    }
}

/* Reads what the connection has (the socket's readiness, or a pipe's fed bytes). */
static void conn_read(http_conn *c)
{
    http_server *s = c->srv;
    if (c->draining) {
        char sink[READ_CHUNK];
        ssize_t n;
        if (c->pipe) {
            n = (ssize_t)(c->pipe->in.len - c->pipe->in_off);
            c->pipe->in_off = c->pipe->in.len;
            if (n == 0)
                n = c->pipe->eof ? 0 : NET_WANT_READ;
        } else {
            n = read(c->fd, sink, sizeof sink); /* TLS too: what it says no longer matters */
            if (n < 0)
                n = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? NET_WANT_READ : NET_ERROR;
        }
        if (n == 0 || n == NET_ERROR)
            conn_close(c);
        return;
    }
    if (c->in_cap - c->in_len < READ_CHUNK) {
        size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK * 2;
        while (cap - c->in_len < READ_CHUNK)
            cap *= 2;
        char *p = realloc(c->in, cap);
        if (!p) {
            conn_close(c);
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    ssize_t n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
    if (n == NET_WANT_READ)
        return;
    if (n == NET_WANT_WRITE) { /* TLS (a handshake) must write before it can read on */
        c->read_wants_write = 1;
        want_read(c, 0);
        want_write(c, 1);
        return;
    }
    if (n < 0) {
        if (c->tr == &tls_transport)
            s->stats.tls_errors++;
        conn_close(c); /* reset by the peer, or a TLS failure */
        return;
    }
    if (n == 0) {
        c->eof = 1;
        want_read(c, 0);
        if (c->busy) {
            /* gone while its request waits (a long-poll): drop it, as nginx does, rather
             * than hold the descriptor until the wait ends */
            conn_close(c);
            return;
        }
        /* a half-close: answer every request already received, then close */
        if (c->in_len > 0)
            conn_parse(c);
        else if (c->out.len == c->out_off)
            conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    touch(c);
    /* keep reading while a request waits (to see the client leave), but hold the input once
     * it is large or answers are backed up */
    if (c->out.len - c->out_off > max_output(s) || c->in_len > s->lim.max_body + 65536)
        want_read(c, 0);
    else if (c->tr && c->tr->pending(c->trc))
        want_read(c, 1); /* more decoded bytes wait inside TLS: come back for them */
    if (!c->busy) {
        start_deadline(c); /* the first byte of a request (a no-op within one) */
        conn_parse(c);
    }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    http_conn *c = w->data;
    if (c->write_wants_read) {
        c->write_wants_read = 0;
        if (conn_flush(c) == 0 && !c->busy && c->in_len > 0 && !c->closing)
            conn_parse(c);
        return;
    }
    conn_read(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    http_conn *c = w->data;
    if (c->read_wants_write) {
        c->read_wants_write = 0;
        if (c->out.len == c->out_off)
            want_write(c, 0);
        want_read(c, 1);
        conn_read(c);
        return;
    }
    if (conn_flush(c) == 0 && !c->busy && c->in_len > 0 && !c->closing)
        conn_parse(c);
}

/* The request did not arrive within request_timeout: 408, and close. A TLS handshake not
 * finished has no way to carry an answer: just close. */
static void request_timed_out(http_conn *c)
{
    http_server *s = c->srv;
    c->deadline = 0;
    s->stats.request_timeouts++;
    if (c->tr && !c->tr->established(c->trc)) {
        conn_close(c);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "the request did not arrive within %g s", s->lim.request_timeout);
    error_response(c, 408, "request_timeout", msg);
    c->in_len = 0;
    want_read(c, 0); /* the drain after the answer reads again */
    c->read_wants_write = 0;
    if (conn_flush(c) == 0 && !c->closed && !c->draining)
        timer_arm(c); /* the answer waits for a client that does not read: idle timeout */
}

static void on_timer(rt *h, rt_timer *t)
{
    http_conn *c = t->data;
    double now = rt_now(h);
    if (c->draining) {
        conn_close(c);
        return;
    }
    if (c->deadline && now >= c->deadline) {
        request_timed_out(c);
        return;
    }
    if (c->busy) { /* a long-poll in progress is not idleness */
        c->active_at = now;
        timer_arm(c);
        return;
    }
    if (now >= c->active_at + c->srv->lim.idle_timeout) {
        conn_close(c);
        return;
    }
    timer_arm(c); /* bytes moved since it was armed: what is left of the idle timeout */
}

static http_conn *conn_new(http_server *s, int fd)
{
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (fd >= 0) {
        ev_io_init(&c->rio, on_readable, fd, EV_READ);
        ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    }
    c->rio.data = c->wio.data = c;
    timer_init(&c->timer, on_timer, c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->stats.connections++;
    s->stats.open_connections++;
    touch(c);
    if (s->lim.request_timeout > 0) /* the first request (and a TLS handshake) from accept on */
        c->deadline = c->active_at + s->lim.request_timeout;
    timer_arm(c);
    return c;
}

/* Counts the client's address against max_per_address: 0, or -1 to refuse it. */
static int addr_admit(http_server *s, const struct sockaddr_storage *ss, char *out)
{
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                               : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, a, out, INET6_ADDRSTRLEN))
        snprintf(out, INET6_ADDRSTRLEN, "?");
    uintptr_t n = (uintptr_t)hashmap_get(s->per_addr, out);
    if (n >= s->lim.max_per_address) {
        s->stats.rejected_per_address++;
        return -1;
    }
    return hashmap_put(s->per_addr, out, (void *)(n + 1));
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    http_server *s = w->data;
    ev_io_start(loop, &s->accept_io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    http_server *s = w->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop listening for a moment instead of spinning on a
                 * listener that stays readable */
                ev_io_stop(s->rt->loop, &s->accept_io);
                ev_timer_set(&s->accept_retry, 0.1, 0);
                ev_timer_start(s->rt->loop, &s->accept_retry);
            }
            return;
        }
        /* over a limit: accepted and closed at once, so the backlog does not fill with them */
        if (s->lim.max_connections && s->stats.open_connections >= s->lim.max_connections) {
            s->stats.rejected_total++;
            close(fd);
            continue;
        }
        char addr[INET6_ADDRSTRLEN] = "";
        if (s->per_addr && addr_admit(s, &ss, addr) < 0) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        void *trc = s->tls ? tls_conn_new(s->tls, fd) : NULL;
        http_conn *c = s->tls && !trc ? NULL : conn_new(s, fd);
        if (!c) {
            if (trc)
                tls_transport.close(trc);
            if (addr[0]) {
                http_conn tmp = {.srv = s};
                memcpy(tmp.addr, addr, sizeof addr);
                addr_release(&tmp);
            }
            close(fd);
            continue;
        }
        memcpy(c->addr, addr, sizeof addr);
        if (trc) {
            c->tr = &tls_transport;
            c->trc = trc;
        }
        ev_io_start(s->rt->loop, &c->rio);
    }
}

int http_resolve(const char *addr, int port, http_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(addr, service, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve '%s': %s", addr,
                 rc == EAI_SYSTEM ? strerror(errno) : rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    if (res->ai_addrlen > sizeof out->sa) {
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot resolve '%s': address too long", addr);
        return -1;
    }
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    if (getnameinfo((struct sockaddr *)&out->sa, out->len, out->numeric, sizeof out->numeric, NULL, 0,
                    NI_NUMERICHOST) != 0) {
        snprintf(err, errlen, "cannot resolve '%s': no numeric form", addr);
        return -1;
    }
    if (out->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&out->sa;
        uint32_t a = ntohl(in->sin_addr.s_addr);
        out->loopback = (a >> 24) == 127;
        out->any = a == INADDR_ANY;
    } else if (out->sa.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&out->sa)->sin6_addr;
        out->loopback = IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        out->any = IN6_IS_ADDR_UNSPECIFIED(a);
    }
    return 0;
}

static http_server *server_new(rt *h, const http_limits *lim, http_handler handler, void *ud)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rt = h;
    s->fd = -1;
    s->lim = *lim;
    if (lim->max_per_address && !(s->per_addr = hashmap_new())) {
        free(s);
        return NULL;
    }
    s->handler = handler;
    s->ud = ud;
    http_parser_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    ev_timer_init(&s->accept_retry, on_accept_retry, 0, 0);
    s->accept_retry.data = s;
    return s;
}

http_server *http_server_start(rt *h, const char *addr, int port, const http_limits *lim,
                               http_handler handler, void *ud, char *err, size_t errlen)
{
    http_addr a;
    if (http_resolve(addr, port, &a, err, errlen) < 0)
        return NULL;
    int v6 = a.sa.ss_family == AF_INET6;
    int fd = socket(a.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "", a.numeric, v6 ? "]" : "", port,
                 strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a.sa, a.len) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "", a.numeric, v6 ? "]" : "", port,
                 strerror(errno));
        close(fd);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t sl = sizeof bound;
    int bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&bound, &sl) == 0)
        bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                       : ((struct sockaddr_in *)&bound)->sin_port);
    http_server *s = server_new(h, lim, handler, ud);
    if (!s) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fd = fd;
    s->port = bound_port;
    ev_io_init(&s->accept_io, on_accept, fd, EV_READ);
    s->accept_io.data = s;
    ev_io_start(h->loop, &s->accept_io);
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_set_tls(http_server *s, tls_server *t)
{
    tls_server_free(s->tls);
    s->tls = t;
}

const http_stats *http_server_stats(const http_server *s) { return &s->stats; }

void http_server_drain(http_server *s) { s->draining = 1; }

size_t http_server_busy(const http_server *s)
{
    size_t n = 0;
    for (const http_conn *c = s->conns; c; c = c->next)
        n += c->busy || c->out.len > c->out_off;
    return n;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    if (s->fd >= 0) {
        ev_io_stop(s->rt->loop, &s->accept_io);
        close(s->fd);
    }
    ev_timer_stop(s->rt->loop, &s->accept_retry);
    while (s->conns)
        conn_close(s->conns);
    tls_server_free(s->tls);
    hashmap_free(s->per_addr);
    free(s);
}

/* ---- socketless connections ---- */

static ssize_t pipe_recv(void *conn, char *buf, size_t len)
{
    http_pipe *p = conn;
    size_t have = p->in.len - p->in_off;
    if (have == 0)
        return p->eof ? 0 : NET_WANT_READ;
    if (len > have)
        len = have;
    memcpy(buf, p->in.data + p->in_off, len);
    p->in_off += len;
    if (p->in_off == p->in.len) {
        strbuf_reset(&p->in);
        p->in_off = 0;
    }
    return (ssize_t)len;
}

static ssize_t pipe_send(void *conn, const char *buf, size_t len)
{
    http_pipe *p = conn;
    return strbuf_append(&p->out, buf, len) < 0 ? NET_ERROR : (ssize_t)len;
}

static size_t pipe_pending(void *conn)
{
    (void)conn;
    return 0;
}

static int pipe_established(void *conn)
{
    (void)conn;
    return 1;
}

static void pipe_shutdown(void *conn) { ((http_pipe *)conn)->shut = 1; }

static void pipe_close(void *conn) { ((http_pipe *)conn)->conn = NULL; }

static const net_transport pipe_transport = {
    .recv = pipe_recv,
    .send = pipe_send,
    .pending = pipe_pending,
    .established = pipe_established,
    .shutdown = pipe_shutdown,
    .close = pipe_close,
};

http_server *http_server_new_detached(rt *h, const http_limits *lim, http_handler handler, void *ud)
{
    return server_new(h, lim, handler, ud);
}

int http_pipe_open(http_server *s, http_pipe *p)
{
    memset(p, 0, sizeof *p);
    http_conn *c = conn_new(s, -1);
    if (!c)
        return -1;
    c->pipe = p;
    c->tr = &pipe_transport;
    c->trc = p;
    c->pipe_reading = 1;
    p->conn = c;
    return 0;
}

void http_pipe_feed(http_pipe *p, const void *data, size_t len, int eof)
{
    if (len && strbuf_append(&p->in, data, len) < 0 && p->conn) {
        conn_close(p->conn);
        return;
    }
    if (eof)
        p->eof = 1;
    /* as the loop would call on_readable while the socket has bytes (or its EOF) to give */
    int eof_seen = 0;
    while (p->conn && p->conn->pipe_reading && (p->in.len > p->in_off || (p->eof && !eof_seen))) {
        eof_seen = p->in.len == p->in_off;
        conn_read(p->conn);
    }
}

void http_pipe_close(http_pipe *p)
{
    if (p->conn)
        conn_close(p->conn);
    strbuf_free(&p->in);
    strbuf_free(&p->out);
    p->in_off = 0;
}
