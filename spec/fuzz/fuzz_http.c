/* fuzz_http.c - libFuzzer harness for the HTTP request path of host/net/http_server.c: bytes in,
 * responses out, on a loop without sockets (a detached server and its http_pipe connections),
 * with the limits the API sets (a small body limit, the request deadline, the output bound)
 * and a handler that answers at once, later or with a large body. The fuzz bytes are a script:
 * each control byte feeds the next few bytes, moves the test clock (deadlines, idle, drains),
 * answers the held requests, opens a second connection or ends the input. Every byte the
 * server writes must be a sequence of whole responses ("HTTP/1.1 NNN ..." with a
 * Content-Length it keeps), and nothing may leak or crash. `make fuzz` builds and runs it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/http_server.h"
#include "rt/rt.h"
#include "rt/timer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HELD 8

static http_request *held[MAX_HELD];
static int nheld;
static char big[70000];

static void on_request(void *ud, http_request *r)
{
    (void)ud;
    if (strcmp(r->path, "/later") == 0 && nheld < MAX_HELD) {
        held[nheld++] = r;
        return;
    }
    if (strcmp(r->path, "/big") == 0) {
        http_respond(r, 200, "application/octet-stream", big, sizeof big);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "%s #%zu", r->method, r->body.len);
    http_respond(r, strncmp(r->path, "/e", 2) == 0 ? 404 : 200, "text/plain", body, (size_t)n);
}

static void answer_held(void)
{
    int n = nheld;
    nheld = 0;
    for (int i = 0; i < n; i++)
        http_respond(held[i], 200, "text/plain", "later", 5);
}

/* The output must be whole responses, one after another; the last may be incomplete (the
 * rest of a large body is not sent yet). Drops what was checked, keeps the rest. A HEAD's
 * answer has the Content-Length and no body: the next response follows its headers. */
static void check_output(http_pipe *p)
{
    size_t off = 0;
    while (p->out.len - off >= 9) {
        const char *s = p->out.data + off;
        size_t left = p->out.len - off;
        if (memcmp(s, "HTTP/1.1 ", 9) != 0) {
            fprintf(stderr, "fuzz_http: output is not a response: %.*s\n", (int)(left > 200 ? 200 : left), s);
            abort();
        }
        const char *end = memmem(s, left, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end - s) + 4;
        const char *cl = memmem(s, head, "\r\nContent-Length: ", 18);
        if (!cl) {
            fprintf(stderr, "fuzz_http: a response without Content-Length: %.*s\n", (int)head, s);
            abort();
        }
        size_t body = strtoull(cl + 18, NULL, 10);
        if (left - head >= 9 && memcmp(s + head, "HTTP/1.1 ", 9) == 0)
            body = 0; /* HEAD (no body here starts so) */
        if (head + body > left)
            break;
        off += head + body;
    }
    if (off) {
        memmove(p->out.data, p->out.data + off, p->out.len - off);
        p->out.len -= off;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt *r = rt_new(-1, 1); /* no log */
    if (!r)
        return 0;
    timer_clock_set(r, 1000);
    http_limits lim = {.max_body = 256, .idle_timeout = 5, .request_timeout = 1, .max_output = 100000};
    http_server *s = http_server_new_detached(r, &lim, on_request, NULL);
    http_pipe pipes[2];
    int open[2] = {0, 0};
    if (!s || http_pipe_open(s, &pipes[0]) < 0) {
        if (s)
            http_server_stop(s);
        rt_free(r);
        return 0;
    }
    open[0] = 1;
    size_t i = 0;
    while (i < size) {
        uint8_t c = data[i++];
        int which = (c >> 7) & 1;
        http_pipe *p = &pipes[which];
        switch (c & 7) {
        case 0: case 1: case 2: case 3: { /* feed the next 1..16 bytes (or all the rest) */
            size_t n = (c & 3) == 3 ? size - i : (size_t)((c >> 2) & 15) + 1;
            if (n > size - i)
                n = size - i;
            if (open[which])
                http_pipe_feed(p, data + i, n, 0);
            i += n;
            break;
        }
        case 4:
            timer_clock_advance(r, (double)((c >> 3) & 15) * 0.1);
            break;
        case 5:
            answer_held();
            break;
        case 6:
            if (open[which])
                http_pipe_feed(p, NULL, 0, 1); /* the client shuts its side */
            break;
        case 7:
            if (!open[1] && http_pipe_open(s, &pipes[1]) == 0)
                open[1] = 1;
            break;
        }
        for (int k = 0; k < 2; k++)
            if (open[k])
                check_output(&pipes[k]);
    }
    timer_clock_advance(r, 10); /* every deadline, drain and idle timeout passes */
    answer_held();
    for (int k = 0; k < 2; k++)
        if (open[k])
            http_pipe_close(&pipes[k]);
    http_server_stop(s);
    rt_free(r);
    return 0;
}
