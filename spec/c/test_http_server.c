/* test_http_server.c - unit tests for host/net/http_server.c on a real loop over loopback sockets:
 * answers, keep-alive, pipelining, a request a byte at a time, a large answer to a slow reader
 * (partial writes), 414 / 413 / 400 as JSON errors followed by a drain and close, the idle
 * timeout (and what a client that trickles bytes gets without a deadline), the request deadline
 * (408), the connection limits, the output bound, socketless pipes, asynchronous answers, a client
 * that leaves before its answer, and http_server_stop with connections open.
 * The clients are non-blocking sockets watched by the same loop; every wait runs the loop with
 * EVRUN_ONCE until the outcome or a deadline (a guard timer wakes it every 10 ms), never sleeps.
 * Tests about time use the manual test clock (timers move only when the test says), except one
 * idle timeout on the real clock; the others run on the real clock with a 30 s idle timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "net/http_server.h"
#include "rt/rt.h"
#include "rt/timer.h"

#define MAX_URL 8192 /* what http_server.c accepts; one byte more is 414 */

/* ---- the server side: a handler that echoes, sends big bodies or answers later ---- */

typedef struct fixture {
    rt *rt;
    http_server *srv;
    int port;
    int handled;           /* requests the handler saw */
    http_request *held[8]; /* "/later" requests waiting for answer_held */
    int nheld;
    rt_timer answer_timer; /* answers every held request when it fires */
    size_t big_size;       /* bytes of the body "/big" answers with */
    char *big;
    ev_timer guard;
    double deadline;
} fixture;

static void big_fill(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i ^ (i >> 8) ^ (i >> 16) ^ 0x5a); /* no short period: a lost or repeated chunk shows */
}

static void on_request(void *ud, http_request *r)
{
    fixture *f = ud;
    f->handled++;
    if (strcmp(r->path, "/big") == 0) {
        http_respond(r, 200, "application/octet-stream", f->big, f->big_size);
        return;
    }
    if (strcmp(r->path, "/later") == 0 && f->nheld < 8) {
        f->held[f->nheld++] = r; /* answered by answer_held, from a timer */
        return;
    }
    strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "%s %s ?%s #%zu %s", r->method, r->path, r->query, r->body.len,
                  r->body.data ? r->body.data : "");
    http_respond(r, 200, "text/plain", b.data, b.len);
    strbuf_free(&b);
}

static int answer_held(fixture *f)
{
    int n = f->nheld, dropped = 0;
    f->nheld = 0;
    for (int i = 0; i < n; i++) {
        http_request *r = f->held[i];
        if (!r->conn)
            dropped++; /* its client went away: the answer is dropped, r freed all the same */
        http_respond(r, 200, "text/plain", "later", 5);
    }
    return dropped;
}

static void on_answer_timer(rt *r, rt_timer *t)
{
    (void)r;
    answer_held(t->data);
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* manual: on the test clock at t = 1000 (timers move only with timer_clock_advance). */
static int fixture_start_lim(fixture *f, const http_limits *lim, int manual)
{
    memset(f, 0, sizeof *f);
    f->rt = rt_new(LOG_WARN, 1);
    if (!f->rt)
        return -1;
    if (manual)
        timer_clock_set(f->rt, 1000);
    char err[256];
    f->srv = http_server_start(f->rt, "127.0.0.1", 0, lim, on_request, f, err, sizeof err);
    if (!f->srv) {
        fprintf(stderr, "  http_server_start: %s\n", err);
        rt_free(f->rt);
        return -1;
    }
    f->port = http_server_port(f->srv);
    timer_init(&f->answer_timer, on_answer_timer, f);
    ev_timer_init(&f->guard, on_guard, 0.01, 0.01);
    return 0;
}

/* No request deadline and no connection limits; output bound 4 MiB. */
static int fixture_start(fixture *f, size_t max_body, double idle_timeout, int manual)
{
    http_limits lim = {.max_body = max_body, .idle_timeout = idle_timeout, .max_output = 4u << 20};
    return fixture_start_lim(f, &lim, manual);
}

static void fixture_stop(fixture *f)
{
    answer_held(f);
    timer_stop(f->rt, &f->answer_timer);
    http_server_stop(f->srv);
    rt_free(f->rt);
    free(f->big);
}

static const http_stats *stats(const fixture *f) { return http_server_stats(f->srv); }

/* Runs the loop until cond holds or `seconds` pass (real time). */
static void pump_begin(fixture *f, double seconds)
{
    f->deadline = rt_monotonic() + seconds;
    ev_timer_start(f->rt->loop, &f->guard);
}

static int pump_more(fixture *f)
{
    if (rt_monotonic() >= f->deadline) {
        ev_timer_stop(f->rt->loop, &f->guard);
        return 0;
    }
    ev_run(f->rt->loop, EVRUN_ONCE);
    return 1;
}

#define PUMP_UNTIL(f, cond, seconds)                                                       \
    do {                                                                                   \
        pump_begin((f), (seconds));                                                        \
        while (!(cond) && pump_more(f))                                                    \
            ;                                                                              \
        ev_timer_stop((f)->rt->loop, &(f)->guard);                                         \
    } while (0)

/* A few loop turns without waiting: what loopback bytes already sent will cause has happened
 * after this (one turn to read a request and write the answer, one for the client to read). */
static void settle(fixture *f)
{
    for (int i = 0; i < 8; i++)
        ev_run(f->rt->loop, EVRUN_NOWAIT);
}

/* ---- the client side ---- */

typedef struct client {
    fixture *f;
    int fd;
    ev_io rio;
    char *buf;
    size_t len, cap;
    size_t per_read; /* bytes read per loop turn */
    int eof;         /* the server closed (or shut down) its side */
    int err;         /* errno of a failed read, e.g. ECONNRESET */
} client;

static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    client *c = w->data;
    if (c->cap - c->len < c->per_read + 1) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap - c->len < c->per_read + 1)
            cap *= 2;
        c->buf = realloc(c->buf, cap);
        c->cap = cap;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->per_read, 0);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        c->eof = 1;
        c->err = n < 0 ? errno : 0;
        ev_io_stop(loop, w);
    }
}

/* Connects to the fixture's server; rcvbuf > 0 shrinks the client's receive buffer first. */
static int client_open(client *c, fixture *f, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->per_read = 65536;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1; /* a byte sent at once, not held by Nagle while the test clock runs ahead */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        /* the kernel completes a loopback handshake by itself: wait for it, bounded */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, 5000) != 1 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
            return -1;
    }
    ev_io_init(&c->rio, on_client_readable, c->fd, EV_READ);
    c->rio.data = c;
    ev_io_start(f->rt->loop, &c->rio);
    return 0;
}

static void client_close(client *c)
{
    if (c->fd >= 0) {
        ev_io_stop(c->f->rt->loop, &c->rio);
        close(c->fd);
        c->fd = -1;
    }
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* Leaves with a reset instead of a FIN (SO_LINGER 0), as a crashed client does. */
static void client_reset(client *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(c);
}

/* Sends all of data, running the loop while the socket is full. 0, or -1 on an error. */
static int client_send(client *c, const char *data, size_t len)
{
    size_t off = 0;
    double deadline = rt_monotonic() + 10;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (rt_monotonic() > deadline)
            return -1;
        ev_run(c->f->rt->loop, EVRUN_NOWAIT);
    }
    return 0;
}

static int client_sends(client *c, const char *s) { return client_send(c, s, strlen(s)); }

/* One response as this server writes them: status line, headers, Content-Length bytes. */
typedef struct response {
    int status;
    char head[512]; /* the status line and headers, up to the blank line */
    const char *body;
    size_t body_len;
} response;

/* Parses the response at buf; returns its length, 0 when it is not all there yet.
 * no_body: the answer to a HEAD (Content-Length counts a body that is not sent). */
static size_t parse_response(const char *buf, size_t len, response *out, int no_body)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head_len = (size_t)(end - buf) + 4;
    memset(out, 0, sizeof *out);
    memcpy(out->head, buf, head_len < sizeof out->head - 1 ? head_len : sizeof out->head - 1);
    if (sscanf(out->head, "HTTP/1.1 %d ", &out->status) != 1)
        return 0;
    const char *cl = strcasestr(out->head, "\r\nContent-Length: ");
    if (!cl)
        return 0;
    size_t body_len = strtoull(cl + 18, NULL, 10);
    if (no_body)
        body_len = 0;
    if (len - head_len < body_len)
        return 0;
    out->body = buf + head_len;
    out->body_len = body_len;
    return head_len + body_len;
}

/* How many complete responses the client has; the first `max` parsed into out. */
static int responses(const client *c, response *out, int max)
{
    size_t off = 0;
    int n = 0;
    response tmp;
    if (!c->buf)
        return 0;
    for (;;) {
        size_t used = parse_response(c->buf + off, c->len - off, n < max ? &out[n] : &tmp, 0);
        if (!used)
            return n;
        off += used;
        n++;
    }
}

static int body_is(const response *r, const char *want)
{
    return r->body_len == strlen(want) && memcmp(r->body, want, r->body_len) == 0;
}

/* The whole text of a response with this server's headers. */
static void expected(char *out, size_t size, int status, const char *reason, const char *ctype,
                     const char *body, int keep)
{
    snprintf(out, size, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n%s",
             status, reason, ctype, strlen(body), keep ? "keep-alive" : "close", body);
}

/* ---- answers, keep-alive, pipelining ---- */

static void test_get_is_answered_by_the_handler(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /hello?x=1&y=2 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    char want[512];
    expected(want, sizeof want, 200, "OK", "text/plain", "GET /hello ?x=1&y=2 #0 ", 1);
    CHECK(c.buf && strcmp(c.buf, want) == 0);
    CHECK(f.handled == 1);
    CHECK(!c.eof); /* kept alive */
    CHECK(stats(&f)->requests == 1 && stats(&f)->connections == 1 && stats(&f)->open_connections == 1);
    CHECK(stats(&f)->by_class[2] == 1);
    client_close(&c);
    PUMP_UNTIL(&f, stats(&f)->open_connections == 0, 5);
    CHECK(stats(&f)->open_connections == 0);
    fixture_stop(&f);
}

static void test_keep_alive_serves_two_requests_on_one_connection(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    response r[3];
    CHECK(client_sends(&c, "GET /one HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, responses(&c, r, 3) == 1, 5);
    CHECK(responses(&c, r, 3) == 1);
    CHECK(client_sends(&c, "POST /two HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello") == 0);
    PUMP_UNTIL(&f, responses(&c, r, 3) == 2, 5);
    CHECK(responses(&c, r, 3) == 2);
    CHECK(body_is(&r[0], "GET /one ? #0 "));
    CHECK(body_is(&r[1], "POST /two ? #5 hello"));
    CHECK(strstr(r[1].head, "\r\nConnection: keep-alive\r\n") != NULL);
    CHECK(!c.eof);
    CHECK(stats(&f)->connections == 1 && stats(&f)->requests == 2);
    client_close(&c);
    fixture_stop(&f);
}

static void test_connection_close_and_http_1_0_are_answered_then_closed(void)
{
    const char *reqs[2] = {"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", "GET /b HTTP/1.0\r\n\r\n"};
    const char *bodies[2] = {"GET /a ? #0 ", "GET /b ? #0 "};
    for (int i = 0; i < 2; i++) {
        fixture f;
        client c;
        if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
            CHECK(0);
            return;
        }
        CHECK(client_sends(&c, reqs[i]) == 0);
        PUMP_UNTIL(&f, c.eof, 5);
        char want[512];
        expected(want, sizeof want, 200, "OK", "text/plain", bodies[i], 0);
        CHECK(c.eof && c.err == 0);
        CHECK(c.buf && strcmp(c.buf, want) == 0);
        CHECK(stats(&f)->open_connections == 0);
        client_close(&c);
        fixture_stop(&f);
    }
}

static void test_pipelined_requests_are_answered_in_order(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /1 HTTP/1.1\r\n\r\n"
                           "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                           "HEAD /3 HTTP/1.1\r\n\r\n"
                           "GET /4?last HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.handled == 4 && c.len > 0 && strstr(c.buf, "?last") != NULL, 5);
    response r[4];
    size_t off = 0, used;
    int n = 0;
    while (c.buf && n < 4 && (used = parse_response(c.buf + off, c.len - off, &r[n], n == 2)) > 0) {
        off += used;
        n++;
    }
    CHECK(n == 4 && off == c.len);
    CHECK(n == 4 && body_is(&r[0], "GET /1 ? #0 "));
    CHECK(n == 4 && body_is(&r[1], "POST /2 ? #3 abc"));
    /* HEAD: the headers of the GET answer, Content-Length included, and no body */
    CHECK(n == 4 && r[2].status == 200 && strstr(r[2].head, "\r\nContent-Length: 13\r\n") != NULL);
    CHECK(n == 4 && body_is(&r[3], "GET /4 ?last #0 "));
    CHECK(f.handled == 4 && stats(&f)->connections == 1);
    client_close(&c);
    fixture_stop(&f);
}

static void test_request_arriving_a_byte_at_a_time_is_answered_once_complete(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    const char *req = "PUT /slow?q=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\nContent-Length: 4\r\n\r\nbody";
    size_t len = strlen(req);
    for (size_t i = 0; i + 1 < len; i++) {
        CHECK(client_send(&c, req + i, 1) == 0);
        settle(&f); /* the server reads this byte on its own */
    }
    CHECK(f.handled == 0 && c.len == 0); /* nothing until the last byte */
    CHECK(client_send(&c, req + len - 1, 1) == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1 && body_is(&r[0], "PUT /slow ?q=1 #4 body"));
    CHECK(f.handled == 1);
    client_close(&c);
    fixture_stop(&f);
}

static void test_requests_received_before_a_half_close_are_answered_then_closed(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n") == 0);
    shutdown(c.fd, SHUT_WR);
    PUMP_UNTIL(&f, c.eof, 5);
    response r[3];
    CHECK(c.eof && c.err == 0);
    CHECK(responses(&c, r, 3) == 2);
    CHECK(body_is(&r[0], "GET /a ? #0 ") && body_is(&r[1], "GET /b ? #0 "));
    CHECK(stats(&f)->open_connections == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- partial writes ---- */

static void test_large_response_to_a_slow_reader_arrives_complete_and_intact(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 4096) < 0) {
        CHECK(0);
        return;
    }
    f.big_size = 8u << 20; /* over the kernel's buffers, and over the server's 4 MiB high water */
    f.big = malloc(f.big_size);
    big_fill(f.big, f.big_size);
    c.per_read = 4096; /* a little per loop turn */
    /* a second request behind the big one: not parsed while more than the server's high water
     * (4 MiB) of output waits, answered after the big one */
    CHECK(client_sends(&c, "GET /big HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.handled >= 1, 5);
    int queued = 0;
    ioctl(c.fd, FIONREAD, &queued);
    CHECK(f.handled == 1);                       /* the pipelined one waits for the output */
    CHECK(queued >= 0 && (size_t)queued < f.big_size); /* so the server had to wait for the socket */
    response r[3];
    PUMP_UNTIL(&f, responses(&c, r, 3) == 2, 60);
    CHECK(responses(&c, r, 3) == 2);
    CHECK(r[0].status == 200 && r[0].body_len == f.big_size);
    CHECK(r[0].body_len == f.big_size && memcmp(r[0].body, f.big, f.big_size) == 0);
    CHECK(body_is(&r[1], "GET /after ? #0 "));
    CHECK(f.handled == 2 && !c.eof);
    client_close(&c);
    fixture_stop(&f);
}

static void test_client_resetting_during_a_large_response_is_closed_cleanly(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 4096) < 0) {
        CHECK(0);
        return;
    }
    f.big_size = 8u << 20;
    f.big = malloc(f.big_size);
    big_fill(f.big, f.big_size);
    c.per_read = 4096;
    CHECK(client_sends(&c, "GET /big HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, c.len >= 65536, 10);
    CHECK(c.len >= 65536 && c.len < f.big_size);
    client_reset(&c);
    PUMP_UNTIL(&f, stats(&f)->open_connections == 0, 10);
    CHECK(stats(&f)->open_connections == 0);
    fixture_stop(&f);
}

/* Bytes the kernel can hold between the server's send and the client's recv on loopback: the
 * server's send buffer grows up to tcp_wmem's maximum; the client's receive buffer is shrunk. */
static size_t kernel_buffering(void)
{
    long lo = 0, def = 0, max = 0;
    FILE *fp = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (!fp || fscanf(fp, "%ld %ld %ld", &lo, &def, &max) != 3 || max <= 0)
        max = 4l << 20;
    if (fp)
        fclose(fp);
    return (size_t)max + (256u << 10);
}

/* Each 0.15 s of test time the client reads more than the kernel can buffer, so the server must
 * have sent within that step: a reader that keeps taking the answer is not idle, however long
 * the whole answer takes (here over twice the idle timeout). */
static void test_slow_reader_of_a_large_answer_is_not_idle(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 1) < 0 || client_open(&c, &f, 4096) < 0) {
        CHECK(0);
        return;
    }
    size_t step = kernel_buffering();
    f.big_size = 3 * step + (1u << 20);
    f.big = malloc(f.big_size);
    big_fill(f.big, f.big_size);
    CHECK(client_sends(&c, "GET /big HTTP/1.1\r\n\r\n") == 0);
    response r[2];
    int steps = 0;
    for (size_t want = step; steps < 10; want += step) {
        PUMP_UNTIL(&f, c.len >= want || c.eof || responses(&c, r, 2) == 1, 10);
        if (c.eof || responses(&c, r, 2) == 1)
            break;
        timer_clock_advance(f.rt, 0.15);
        steps++;
    }
    CHECK(steps >= 3 && rt_now(f.rt) - 1000 > 2 * 0.2);
    CHECK(!c.eof && responses(&c, r, 2) == 1);
    CHECK(r[0].body_len == f.big_size && memcmp(r[0].body, f.big, f.big_size) == 0);
    CHECK(stats(&f)->open_connections == 1);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- errors: 414, 413, 400 ---- */

static const char *const JSON_414 =
    "{\"detail\":\"request URL too long\",\"error\":{\"type\":\"uri_too_long\",\"message\":\"request URL too long\"}}";
static const char *const JSON_413 =
    "{\"detail\":\"request body too large\",\"error\":{\"type\":\"payload_too_large\",\"message\":\"request body too large\"}}";
static const char *const JSON_400 =
    "{\"detail\":\"malformed HTTP request\",\"error\":{\"type\":\"bad_request\",\"message\":\"malformed HTTP request\"}}";

/* The request line "GET <url> HTTP/1.1" with a URL of exactly url_len bytes ("/aaa...?q=1"). */
static char *request_with_url(size_t url_len)
{
    char *s = malloc(url_len + 64);
    size_t n = 0;
    n += (size_t)sprintf(s, "GET /");
    memset(s + n, 'a', url_len - 5);
    n += url_len - 5;
    n += (size_t)sprintf(s + n, "?q=1 HTTP/1.1\r\n\r\n");
    return s;
}

/* After an error the server answers with Connection: close, shuts its side (the client reads
 * EOF) and drains what the client still sends until the client closes. */
static void check_error_then_drain(fixture *f, client *c, int status, const char *reason, const char *json)
{
    PUMP_UNTIL(f, c->eof, 5);
    char want[512];
    expected(want, sizeof want, status, reason, "application/json", json, 0);
    CHECK(c->eof && c->err == 0); /* a clean FIN after the answer, not a reset */
    CHECK(c->buf && strcmp(c->buf, want) == 0);
    if (!c->buf || strcmp(c->buf, want) != 0)
        fprintf(stderr, "  got: %s\n", c->buf ? c->buf : "(nothing)");
    CHECK(stats(f)->open_connections == 1); /* draining the client's input */
    CHECK(client_sends(c, "more bytes the client had in flight") == 0);
    settle(f);
    CHECK(stats(f)->open_connections == 1);
    client_close(c);
    PUMP_UNTIL(f, stats(f)->open_connections == 0, 5);
    CHECK(stats(f)->open_connections == 0);
    CHECK(stats(f)->by_class[4] == 1);
}

static void test_url_of_the_longest_length_accepted_is_answered(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    char *req = request_with_url(MAX_URL);
    CHECK(client_sends(&c, req) == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1 && r[0].status == 200);
    CHECK(r[0].body_len == MAX_URL + 9); /* "GET " path " ?" query " #0 ": the whole URL reached it */
    CHECK(f.handled == 1 && !c.eof);
    free(req);
    client_close(&c);
    fixture_stop(&f);
}

static void test_url_one_byte_too_long_gets_414_as_json_and_the_connection_closes(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    char *req = request_with_url(MAX_URL + 1);
    CHECK(client_sends(&c, req) == 0);
    check_error_then_drain(&f, &c, 414, "URI Too Long", JSON_414);
    CHECK(f.handled == 0);
    free(req);
    fixture_stop(&f);
}

static void test_over_long_url_gets_414_before_the_request_line_ends(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    char *req = request_with_url(MAX_URL + 4096);
    *strstr(req, "?q=1") = '\0'; /* the URL goes on; no end of line yet */
    CHECK(client_sends(&c, req) == 0);
    check_error_then_drain(&f, &c, 414, "URI Too Long", JSON_414);
    free(req);
    fixture_stop(&f);
}

static void test_body_of_max_body_bytes_is_accepted(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "POST /b HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1 && body_is(&r[0], "POST /b ? #16 0123456789abcdef"));
    client_close(&c);
    fixture_stop(&f);
}

static void test_content_length_over_max_body_gets_413_before_the_body_is_read(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    /* the headers alone: the answer does not wait for the 17 bytes announced */
    CHECK(client_sends(&c, "POST /b HTTP/1.1\r\nContent-Length: 17\r\n\r\n") == 0);
    check_error_then_drain(&f, &c, 413, "Payload Too Large", JSON_413);
    CHECK(f.handled == 0);
    fixture_stop(&f);
}

static void test_chunked_body_over_max_body_gets_413_and_later_requests_are_not_answered(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "a\r\n0123456789\r\n7\r\nabcdefg\r\n0\r\n\r\n"
                           "GET /next HTTP/1.1\r\n\r\n") == 0);
    check_error_then_drain(&f, &c, 413, "Payload Too Large", JSON_413);
    CHECK(f.handled == 0);
    fixture_stop(&f);
}

static void test_malformed_request_gets_400_as_json(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET / HTTP/1.1\r\nBad Header\r\n\r\n") == 0);
    check_error_then_drain(&f, &c, 400, "Bad Request", JSON_400);
    CHECK(f.handled == 0);
    fixture_stop(&f);
}

static void test_error_after_an_answered_request_keeps_the_answers_in_order(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /ok HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 99\r\n\r\n") == 0);
    PUMP_UNTIL(&f, c.eof, 5);
    response r[3];
    CHECK(responses(&c, r, 3) == 2);
    CHECK(body_is(&r[0], "GET /ok ? #0 ") && strstr(r[0].head, "Connection: keep-alive") != NULL);
    CHECK(r[1].status == 413 && body_is(&r[1], JSON_413));
    CHECK(f.handled == 1);
    client_close(&c);
    fixture_stop(&f);
}

static void test_draining_connection_is_closed_two_seconds_after_the_error(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 16, 30, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "POST /b HTTP/1.1\r\nContent-Length: 99\r\n\r\n") == 0);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && stats(&f)->open_connections == 1);
    timer_clock_advance(f.rt, 1.99); /* a client that never closes: the drain ends after 2 s */
    CHECK(stats(&f)->open_connections == 1);
    timer_clock_advance(f.rt, 0.02);
    CHECK(stats(&f)->open_connections == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- idle timeout ---- */

static void test_silent_connection_is_closed_after_the_idle_timeout(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 0) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    double t0 = rt_monotonic();
    CHECK(stats(&f)->open_connections == 1);
    PUMP_UNTIL(&f, c.eof, 5);
    double waited = rt_monotonic() - t0;
    CHECK(c.eof && c.err == 0);
    CHECK(c.len == 0); /* closed without a word (no 408) */
    CHECK(waited >= 0.15 && waited < 3);
    CHECK(stats(&f)->open_connections == 0);
    client_close(&c);
    fixture_stop(&f);
}

static void test_idle_timeout_counts_from_the_last_answer_on_the_test_clock(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    timer_clock_advance(f.rt, 0.15);
    CHECK(client_sends(&c, "GET / HTTP/1.1\r\n\r\n") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5); /* at t = 1000.15 */
    CHECK(responses(&c, r, 2) == 1);
    timer_clock_advance(f.rt, 0.19);
    settle(&f);
    CHECK(stats(&f)->open_connections == 1 && !c.eof);
    timer_clock_advance(f.rt, 0.02);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(stats(&f)->open_connections == 0 && c.eof);
    client_close(&c);
    fixture_stop(&f);
}

/* Every byte received counts as activity for the idle timeout; without a request deadline
 * (request_timeout 0) nothing bounds how long a request may take to arrive: a client that
 * sends a byte now and then holds its connection open. The request, once complete, is
 * answered. (The API always sets a deadline: see the request deadline tests below.) */
static void test_trickling_client_is_never_idle_without_a_request_deadline(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    const char *req = "GET /trickle HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t len = strlen(req);
    for (size_t i = 0; i < len; i++) {
        timer_clock_advance(f.rt, 0.15); /* under the idle timeout between bytes */
        CHECK(client_send(&c, req + i, 1) == 0);
        settle(&f);
    }
    CHECK(rt_now(f.rt) - 1000 > 25 * 0.2); /* far longer than the idle timeout in all */
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1 && body_is(&r[0], "GET /trickle ? #0 "));
    CHECK(stats(&f)->open_connections == 1 && !c.eof);
    client_close(&c);
    fixture_stop(&f);
}

static void test_partial_request_then_silence_is_closed_at_the_idle_timeout(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /half HTTP/1.1\r\nHo") == 0);
    settle(&f);
    timer_clock_advance(f.rt, 0.5);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && c.len == 0); /* closed without an answer */
    CHECK(stats(&f)->open_connections == 0 && f.handled == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- asynchronous answers ---- */

static void test_answer_given_later_from_a_timer_is_sent_and_the_next_request_waits(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 0.2, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /later HTTP/1.1\r\n\r\nGET /then HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.handled == 1, 5);
    settle(&f);
    CHECK(f.handled == 1 && f.nheld == 1 && c.len == 0); /* /then waits for /later's answer */
    CHECK(f.nheld == 1 && f.held[0]->conn != NULL);
    timer_start(f.rt, &f.answer_timer, rt_now(f.rt) + 1);
    timer_clock_advance(f.rt, 0.9); /* past the idle timeout: a request waiting is not idleness */
    settle(&f);
    CHECK(stats(&f)->open_connections == 1 && c.len == 0);
    timer_clock_advance(f.rt, 0.2);
    response r[3];
    PUMP_UNTIL(&f, responses(&c, r, 3) == 2, 5);
    CHECK(responses(&c, r, 3) == 2);
    CHECK(body_is(&r[0], "later") && body_is(&r[1], "GET /then ? #0 "));
    CHECK(f.handled == 2 && f.nheld == 0);
    client_close(&c);
    fixture_stop(&f);
}

static void test_client_leaving_before_the_answer_drops_it(void)
{
    fixture f;
    client c, d, e;
    if (fixture_start(&f, 1024, 30, 1) < 0 || client_open(&c, &f, 0) < 0 || client_open(&d, &f, 0) < 0
        || client_open(&e, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /later HTTP/1.1\r\n\r\n") == 0);
    CHECK(client_sends(&d, "GET /later HTTP/1.1\r\n\r\n") == 0);
    CHECK(client_sends(&e, "GET /later HTTP/1.1\r\n\r\nGET /queued HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.nheld == 3, 5);
    CHECK(f.nheld == 3 && stats(&f)->open_connections == 3);
    client_close(&c); /* with a FIN */
    client_reset(&d); /* with a reset */
    client_close(&e); /* with a FIN and a request queued behind the waiting one */
    PUMP_UNTIL(&f, stats(&f)->open_connections == 0, 5);
    CHECK(stats(&f)->open_connections == 0); /* closed at once, not when the answer comes */
    CHECK(f.nheld == 3 && f.held[0]->conn == NULL && f.held[1]->conn == NULL && f.held[2]->conn == NULL);
    timer_start(f.rt, &f.answer_timer, rt_now(f.rt) + 1);
    timer_clock_advance(f.rt, 1); /* answers all three: dropped, freed, nothing sent */
    CHECK(f.nheld == 0);
    CHECK(f.handled == 3); /* the queued request was never handled */
    fixture_stop(&f);
}

/* A read of 0 bytes cannot tell a half-close from a client that left: while an answer is
 * pending, the server takes it as leaving and drops the request (as for a long-poll). */
static void test_half_close_while_the_answer_is_pending_drops_it_today(void)
{
    fixture f;
    client c;
    if (fixture_start(&f, 1024, 30, 1) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /later HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.nheld == 1, 5);
    shutdown(c.fd, SHUT_WR);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && c.len == 0);
    CHECK(stats(&f)->open_connections == 0);
    CHECK(f.nheld == 1 && f.held[0]->conn == NULL);
    CHECK(answer_held(&f) == 1); /* dropped */
    client_close(&c);
    fixture_stop(&f);
}

/* ---- the request deadline ---- */

static const char *const JSON_408 =
    "{\"detail\":\"the request did not arrive within 1 s\",\"error\":{\"type\":\"request_timeout\","
    "\"message\":\"the request did not arrive within 1 s\"}}";

static int fixture_deadline(fixture *f, double request_timeout, double idle)
{
    http_limits lim = {.max_body = 1024, .idle_timeout = idle, .request_timeout = request_timeout};
    return fixture_start_lim(f, &lim, 1);
}

/* Sends s a byte per `step` seconds of test clock, stopping if the server closes. */
static void trickle(fixture *f, client *c, const char *s, double step)
{
    for (size_t i = 0; s[i] && !c->eof; i++) {
        timer_clock_advance(f->rt, step);
        settle(f);
        if (!c->eof)
            client_send(c, s + i, 1);
        settle(f);
    }
}

static void test_request_trickling_past_the_deadline_gets_408_and_is_closed(void)
{
    fixture f;
    client c;
    if (fixture_deadline(&f, 1, 0.5) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    /* a byte every 0.2 s: never idle for 0.5 s, but the whole request is not there after 1 s */
    trickle(&f, &c, "GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n", 0.2);
    PUMP_UNTIL(&f, c.eof, 5);
    char want[512];
    expected(want, sizeof want, 408, "Request Timeout", "application/json", JSON_408, 0);
    CHECK(c.eof && c.buf && strcmp(c.buf, want) == 0);
    if (!c.buf || strcmp(c.buf, want) != 0)
        fprintf(stderr, "  got: %s\n", c.buf ? c.buf : "(nothing)");
    CHECK(f.handled == 0 && stats(&f)->request_timeouts == 1 && stats(&f)->by_class[4] == 1);
    timer_clock_advance(f.rt, 2.5); /* the drain after the answer ends too */
    PUMP_UNTIL(&f, stats(&f)->open_connections == 0, 5);
    CHECK(stats(&f)->open_connections == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* Blank lines before a request never start one in the parser: they count all the same. */
static void test_blank_lines_trickled_forever_get_408(void)
{
    fixture f;
    client c;
    if (fixture_deadline(&f, 1, 0.5) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    CHECK(client_sends(&c, "GET /a HTTP/1.1\r\n\r\n") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1);
    trickle(&f, &c, "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 0.2);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && stats(&f)->request_timeouts == 1 && strstr(c.buf, "HTTP/1.1 408 ") != NULL);
    client_close(&c);
    fixture_stop(&f);
}

/* The deadline starts at a request's first byte: the time a keep-alive connection sat idle
 * before it does not count, and each request has its own. */
static void test_each_request_has_its_own_deadline_from_its_first_byte(void)
{
    fixture f;
    client c;
    if (fixture_deadline(&f, 1, 5) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    CHECK(client_sends(&c, "GET /one HTTP/1.1\r\n\r\n") == 0);
    response r[3];
    PUMP_UNTIL(&f, responses(&c, r, 3) == 1, 5);
    timer_clock_advance(f.rt, 3); /* idle between requests: under the idle timeout */
    settle(&f);
    trickle(&f, &c, "GET /two HTTP/1.1\r\n\r\n", 0.04); /* 21 bytes over 0.84 s */
    PUMP_UNTIL(&f, responses(&c, r, 3) == 2, 5);
    CHECK(responses(&c, r, 3) == 2 && body_is(&r[1], "GET /two ? #0 ") && !c.eof);
    trickle(&f, &c, "GET /three HTTP/1.1\r\n\r\n", 0.06); /* 1.38 s: too slow */
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && stats(&f)->request_timeouts == 1 && f.handled == 2);
    client_close(&c);
    fixture_stop(&f);
}

/* The deadline is the client's: a request with the handler (a long-poll) may wait longer. */
static void test_the_handlers_wait_is_not_under_the_deadline(void)
{
    fixture f;
    client c;
    if (fixture_deadline(&f, 1, 30) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    CHECK(client_sends(&c, "GET /later HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, f.nheld == 1, 5);
    timer_start(f.rt, &f.answer_timer, rt_now(f.rt) + 3);
    timer_clock_advance(f.rt, 3.5);
    response r[2];
    PUMP_UNTIL(&f, responses(&c, r, 2) == 1, 5);
    CHECK(responses(&c, r, 2) == 1 && body_is(&r[0], "later") && !c.eof);
    CHECK(stats(&f)->request_timeouts == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* A connection that never sends a byte is under the deadline from accept. */
static void test_connection_that_sends_nothing_gets_408_at_the_deadline(void)
{
    fixture f;
    client c;
    if (fixture_deadline(&f, 1, 30) < 0 || client_open(&c, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    timer_clock_advance(f.rt, 0.9);
    settle(&f);
    CHECK(!c.eof && c.len == 0);
    timer_clock_advance(f.rt, 0.2);
    PUMP_UNTIL(&f, c.eof, 5);
    CHECK(c.eof && c.buf && strstr(c.buf, "HTTP/1.1 408 ") == c.buf);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- connection limits ---- */

static void test_connections_over_the_total_limit_are_closed_at_once(void)
{
    fixture f;
    client a, b, over, later;
    http_limits lim = {.max_body = 1024, .idle_timeout = 30, .max_connections = 2};
    if (fixture_start_lim(&f, &lim, 0) < 0 || client_open(&a, &f, 0) < 0 || client_open(&b, &f, 0) < 0) {
        CHECK(0);
        return;
    }
    PUMP_UNTIL(&f, stats(&f)->open_connections == 2, 5);
    CHECK(client_open(&over, &f, 0) == 0);
    PUMP_UNTIL(&f, over.eof, 5);
    CHECK(over.eof && over.len == 0 && stats(&f)->rejected_total == 1);
    CHECK(client_sends(&a, "GET /still HTTP/1.1\r\n\r\n") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&a, r, 2) == 1, 5);
    CHECK(responses(&a, r, 2) == 1 && body_is(&r[0], "GET /still ? #0 "));
    client_close(&b);
    PUMP_UNTIL(&f, stats(&f)->open_connections == 1, 5);
    CHECK(client_open(&later, &f, 0) == 0 && client_sends(&later, "GET /room HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, responses(&later, r, 2) == 1, 5);
    CHECK(responses(&later, r, 2) == 1 && stats(&f)->rejected_total == 1);
    client_close(&a);
    client_close(&over);
    client_close(&later);
    fixture_stop(&f);
}

static void test_connections_over_the_per_address_limit_are_closed_at_once(void)
{
    fixture f;
    client c[4];
    http_limits lim = {.max_body = 1024, .idle_timeout = 30, .max_per_address = 3};
    if (fixture_start_lim(&f, &lim, 0) < 0) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 3; i++)
        CHECK(client_open(&c[i], &f, 0) == 0);
    PUMP_UNTIL(&f, stats(&f)->open_connections == 3, 5);
    CHECK(client_open(&c[3], &f, 0) == 0);
    PUMP_UNTIL(&f, c[3].eof, 5);
    CHECK(c[3].eof && stats(&f)->rejected_per_address == 1 && stats(&f)->open_connections == 3);
    client_close(&c[3]);
    client_close(&c[0]); /* its place is free again */
    PUMP_UNTIL(&f, stats(&f)->open_connections == 2, 5);
    CHECK(client_open(&c[0], &f, 0) == 0 && client_sends(&c[0], "GET /back HTTP/1.1\r\n\r\n") == 0);
    response r[2];
    PUMP_UNTIL(&f, responses(&c[0], r, 2) == 1, 5);
    CHECK(responses(&c[0], r, 2) == 1 && stats(&f)->rejected_per_address == 1);
    for (int i = 0; i < 3; i++)
        client_close(&c[i]);
    fixture_stop(&f);
}

/* ---- the output bound ---- */

/* A client that pipelines requests for big answers and reads none: once max_output is unsent
 * the server parses no further request, so what it holds stays bounded; when the client reads,
 * every answer comes, in order. */
static void test_client_that_stops_reading_holds_a_bounded_output(void)
{
    fixture f;
    client c;
    http_limits lim = {.max_body = 1024, .idle_timeout = 30, .max_output = 1u << 20};
    if (fixture_start_lim(&f, &lim, 0) < 0 || client_open(&c, &f, 4096) < 0) {
        CHECK(0);
        return;
    }
    f.big_size = 1u << 20;
    f.big = malloc(f.big_size);
    big_fill(f.big, f.big_size);
    enum { N = 40 };
    strbuf req = STRBUF_INIT;
    for (int i = 0; i < N; i++)
        strbuf_puts(&req, "GET /big HTTP/1.1\r\n\r\n");
    ev_io_stop(f.rt->loop, &c.rio); /* the client reads nothing for now */
    CHECK(client_send(&c, req.data, req.len) == 0);
    strbuf_free(&req);
    PUMP_UNTIL(&f, 0, 0.5);
    /* the kernel's buffers hold some answers; the server at most one over the bound */
    size_t held = kernel_buffering() / f.big_size + 3;
    CHECK(f.handled >= 1 && (size_t)f.handled <= held && f.handled < N);
    CHECK(stats(&f)->output_paused >= 1);
    ev_io_start(f.rt->loop, &c.rio);
    response r[N + 1];
    PUMP_UNTIL(&f, responses(&c, r, N + 1) == N || c.eof, 60);
    CHECK(responses(&c, r, N + 1) == N && f.handled == N);
    CHECK(r[N - 1].body_len == f.big_size && memcmp(r[N - 1].body, f.big, f.big_size) == 0);
    client_close(&c);
    fixture_stop(&f);
}

/* ---- socketless pipes ---- */

static void test_pipe_answers_fed_bytes_like_a_socket(void)
{
    fixture f;
    memset(&f, 0, sizeof f);
    f.rt = rt_new(LOG_WARN, 1);
    timer_clock_set(f.rt, 1000);
    http_limits lim = {.max_body = 16, .idle_timeout = 5, .request_timeout = 1};
    f.srv = http_server_new_detached(f.rt, &lim, on_request, &f);
    timer_init(&f.answer_timer, on_answer_timer, &f);
    http_pipe p;
    CHECK(f.srv && http_pipe_open(f.srv, &p) == 0);
    const char *two = "GET /a HTTP/1.1\r\n\r\nPUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
    for (const char *q = two; *q; q++)
        http_pipe_feed(&p, q, 1, 0); /* a byte at a time */
    char want[1024], w2[512];
    expected(want, sizeof want, 200, "OK", "text/plain", "GET /a ? #0 ", 1);
    expected(w2, sizeof w2, 200, "OK", "text/plain", "PUT /b ? #3 xyz", 1);
    strcat(want, w2);
    CHECK(p.out.data && strcmp(p.out.data, want) == 0);
    strbuf_reset(&p.out);
    http_pipe_feed(&p, "GET /c HTTP/1.1\r\n", 17, 0);
    timer_clock_advance(f.rt, 1.5); /* its deadline passes */
    CHECK(p.out.data && strstr(p.out.data, "HTTP/1.1 408 ") == p.out.data && p.shut);
    http_pipe_feed(&p, NULL, 0, 1); /* the client's EOF ends the drain */
    CHECK(p.conn == NULL && stats(&f)->open_connections == 0);
    http_pipe_close(&p);
    http_pipe q;
    CHECK(http_pipe_open(f.srv, &q) == 0);
    http_pipe_feed(&q, "POST /x HTTP/1.1\r\nContent-Length: 99\r\n\r\n", 40, 0);
    CHECK(q.out.data && strstr(q.out.data, "HTTP/1.1 413 ") == q.out.data);
    http_pipe_feed(&q, "GET /later HTTP/1.1\r\n\r\n", 23, 0); /* drained, not answered */
    CHECK(f.handled == 2);
    http_pipe_close(&q); /* open still: closed by the server now */
    CHECK(stats(&f)->open_connections == 0);
    fixture_stop(&f);
}

/* ---- stopping ---- */

static void test_stop_closes_the_listener_and_every_connection(void)
{
    fixture f;
    client idle, waiting, reading;
    if (fixture_start(&f, 1024, 30, 0) < 0 || client_open(&idle, &f, 0) < 0
        || client_open(&waiting, &f, 0) < 0 || client_open(&reading, &f, 4096) < 0) {
        CHECK(0);
        return;
    }
    f.big_size = 8u << 20;
    f.big = malloc(f.big_size);
    big_fill(f.big, f.big_size);
    reading.per_read = 4096;
    response r[2];
    CHECK(client_sends(&idle, "GET / HTTP/1.1\r\n\r\n") == 0);
    CHECK(client_sends(&waiting, "GET /later HTTP/1.1\r\n\r\n") == 0);
    CHECK(client_sends(&reading, "GET /big HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&f, responses(&idle, r, 2) == 1 && f.nheld == 1 && reading.len > 0, 5);
    CHECK(stats(&f)->open_connections == 3 && reading.len < f.big_size);
    int port = f.port;

    http_server_stop(f.srv);
    f.srv = NULL;
    CHECK(f.held[0]->conn == NULL); /* the handler still owns it; its answer will be dropped */
    PUMP_UNTIL(&f, idle.eof && waiting.eof && reading.eof, 5);
    CHECK(idle.eof && waiting.eof && reading.eof);
    CHECK(waiting.len == 0 && reading.len < f.big_size);
    answer_held(&f);

    client late;
    memset(&late, 0, sizeof late);
    late.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(late.fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno == ECONNREFUSED);
    close(late.fd);

    client_close(&idle);
    client_close(&waiting);
    client_close(&reading);
    rt_free(f.rt);
    free(f.big);
}

int main(void)
{
    RUN(test_get_is_answered_by_the_handler);
    RUN(test_keep_alive_serves_two_requests_on_one_connection);
    RUN(test_connection_close_and_http_1_0_are_answered_then_closed);
    RUN(test_pipelined_requests_are_answered_in_order);
    RUN(test_request_arriving_a_byte_at_a_time_is_answered_once_complete);
    RUN(test_requests_received_before_a_half_close_are_answered_then_closed);
    RUN(test_large_response_to_a_slow_reader_arrives_complete_and_intact);
    RUN(test_client_resetting_during_a_large_response_is_closed_cleanly);
    RUN(test_slow_reader_of_a_large_answer_is_not_idle);
    RUN(test_url_of_the_longest_length_accepted_is_answered);
    RUN(test_url_one_byte_too_long_gets_414_as_json_and_the_connection_closes);
    RUN(test_over_long_url_gets_414_before_the_request_line_ends);
    RUN(test_body_of_max_body_bytes_is_accepted);
    RUN(test_content_length_over_max_body_gets_413_before_the_body_is_read);
    RUN(test_chunked_body_over_max_body_gets_413_and_later_requests_are_not_answered);
    RUN(test_malformed_request_gets_400_as_json);
    RUN(test_error_after_an_answered_request_keeps_the_answers_in_order);
    RUN(test_draining_connection_is_closed_two_seconds_after_the_error);
    RUN(test_silent_connection_is_closed_after_the_idle_timeout);
    RUN(test_idle_timeout_counts_from_the_last_answer_on_the_test_clock);
    RUN(test_trickling_client_is_never_idle_without_a_request_deadline);
    RUN(test_partial_request_then_silence_is_closed_at_the_idle_timeout);
    RUN(test_answer_given_later_from_a_timer_is_sent_and_the_next_request_waits);
    RUN(test_client_leaving_before_the_answer_drops_it);
    RUN(test_half_close_while_the_answer_is_pending_drops_it_today);
    RUN(test_request_trickling_past_the_deadline_gets_408_and_is_closed);
    RUN(test_blank_lines_trickled_forever_get_408);
    RUN(test_each_request_has_its_own_deadline_from_its_first_byte);
    RUN(test_the_handlers_wait_is_not_under_the_deadline);
    RUN(test_connection_that_sends_nothing_gets_408_at_the_deadline);
    RUN(test_connections_over_the_total_limit_are_closed_at_once);
    RUN(test_connections_over_the_per_address_limit_are_closed_at_once);
    RUN(test_client_that_stops_reading_holds_a_bounded_output);
    RUN(test_pipe_answers_fed_bytes_like_a_socket);
    RUN(test_stop_closes_the_listener_and_every_connection);
    return check_report();
}
