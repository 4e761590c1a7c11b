/* stdout.c - standard output and error through streams of our own (see stdout.h): glibc's
 * fopencookie streams whose write function does the write(2), so the error of each write is
 * seen where it happens, and a prompt can be hidden and redrawn around it. */
#include "svc/stdout.h"

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
