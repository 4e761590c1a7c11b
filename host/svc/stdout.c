/* stdout.c - standard output and error through streams of our own (see stdout.h): glibc's
 * fopencookie streams whose write function does the write(2), so the error of each write is
 * seen where it happens, and a prompt can be hidden and redrawn around it. */
#include "svc/stdout.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "sys/system.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

static struct {
    FILE *real_stdout;
    int closed;             /* EPIPE on standard output */
    int error;              /* first other errno on standard output */
    int (*hide)(void *);
    void (*show)(void *);
    void *ud;
    int in_hook;
} out;

/* The whole buffer, or -1 with errno. A descriptor someone made non-blocking is waited on,
 * as a blocking one would be (stdio wrote to it that way before). */
static int write_all(int fd, const char *buf, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, buf + done, size - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1);
        } else {
            return -1;
        }
    }
    return 0;
}

static ssize_t out_write(void *cookie, const char *buf, size_t size)
{
    int fd = (int)(intptr_t)cookie;
    if (fd == STDOUT_FILENO && out.closed) {
        errno = EPIPE;
        return -1;
    }
    int hidden = 0;
    if (out.hide && !out.in_hook && size > 0) {
        out.in_hook = 1;
        hidden = out.hide(out.ud);
        out.in_hook = 0;
    }
    int rc = write_all(fd, buf, size);
    int saved = errno;
    if (hidden) {
        if (rc == 0 && buf[size - 1] != '\n')
            write_all(fd, "\n", 1); /* the prompt goes on a line of its own */
        out.in_hook = 1;
        out.show(out.ud);
        out.in_hook = 0;
    }
    if (rc < 0) {
        if (fd == STDOUT_FILENO && saved == EPIPE)
            out.closed = 1;
        else if (fd == STDOUT_FILENO && !out.error)
            out.error = saved;
        errno = saved;
        return -1;
    }
    return (ssize_t)size;
}

int out_install(void)
{
    if (out.real_stdout)
        return 0;
    cookie_io_functions_t io = {.write = out_write};
    FILE *o = fopencookie((void *)(intptr_t)STDOUT_FILENO, "w", io);
    FILE *e = fopencookie((void *)(intptr_t)STDERR_FILENO, "w", io);
    if (!o || !e || setvbuf(o, NULL, _IOLBF, BUFSIZ) != 0 || setvbuf(e, NULL, _IONBF, 0) != 0) {
        if (o)
            fclose(o);
        if (e)
            fclose(e);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    out.real_stdout = stdout;
    stdout = o; /* glibc's stdout and stderr are plain variables, documented as assignable */
    stderr = e;
    return 0;
}

int out_closed(void) { return out.closed; }

int out_error(void) { return out.error; }

FILE *out_terminal(void) { return out.real_stdout ? out.real_stdout : stdout; }

void out_set_prompt(int (*hide)(void *), void (*show)(void *), void *ud)
{
    out.hide = hide;
    out.show = show;
    out.ud = ud;
}

/* ---- the watch on standard output, as a service ---- */

typedef struct out_watch {
    host *h;
    ev_prepare prepare;
    int error_reported;
} out_watch;

/* Once per loop turn, before the loop waits: a write to standard output that found no reader
 * (EPIPE: `sssn-host ... | head -3`) stops the host as SIGTERM does, so the systems deregister;
 * the stop happens here, between callbacks, never inside the write (a step may be running). */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    out_watch *ow = w->data;
    if (out_error() && !ow->error_reported) {
        ow->error_reported = 1;
        host_log(ow->h, LOG_WARN, NULL, "writing to standard output fails (%s): that output is lost",
                 strerror(out_error()));
    }
    if (out_closed() && !ow->h->stopping)
        systems_stop_all(ow->h, "standard output was closed (nobody reads it any more)");
}

static int watch_start(service *svc, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    out_watch *ow = svc->impl;
    struct ev_loop *loop = ow->h->rt->loop;
    ev_prepare_init(&ow->prepare, on_prepare);
    ow->prepare.data = ow;
    ev_prepare_start(loop, &ow->prepare);
    ev_unref(loop); /* watching output keeps no loop turn waiting */
    return 0;
}

static void watch_stop(service *svc)
{
    out_watch *ow = svc->impl;
    if (!ev_is_active(&ow->prepare))
        return;
    ev_ref(ow->h->rt->loop);
    ev_prepare_stop(ow->h->rt->loop, &ow->prepare);
}

static void watch_free(service *svc)
{
    watch_stop(svc);
    free(svc->impl);
    free(svc);
}

static int watch_exit_status(const service *svc)
{
    (void)svc;
    return out_closed() ? 3 : 0;
}

service *out_service_new(host *h)
{
    service *svc = calloc(1, sizeof *svc);
    out_watch *ow = calloc(1, sizeof *ow);
    if (!svc || !ow) {
        free(svc);
        free(ow);
        return NULL;
    }
    ow->h = h;
    *svc = (service){.name = "watch on standard output", .start = watch_start, .stop = watch_stop,
                     .free = watch_free, .exit_status = watch_exit_status, .impl = ow};
    return svc;
}
