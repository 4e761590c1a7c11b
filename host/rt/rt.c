/* rt.c - the runtime's loop and log (see rt.h); the clock and timers live in timer.c and
 * the signals in signals.c. */
#include "rt/rt.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "rt/timer.h"

rt *rt_new(int log_level, int capture_log)
{
    rt *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->log_level = log_level;
    if (capture_log && !(r->log_capture = calloc(1, sizeof *r->log_capture))) {
        free(r);
        return NULL;
    }
    r->loop = ev_loop_new(EVFLAG_AUTO);
    if (!r->loop) {
        free(r->log_capture);
        free(r);
        return NULL;
    }
    timer_rt_init(r);
    return r;
}

void rt_free(rt *r)
{
    if (!r)
        return;
    rt_release_signals(r);
    timer_rt_free(r);
    ev_loop_destroy(r->loop);
    if (r->log_capture) {
        strbuf_free(r->log_capture);
        free(r->log_capture);
    }
    free(r);
}

void rt_vlog(const rt *r, int level, const char *who, const char *fmt, va_list ap)
{
    if (level > r->log_level)
        return;
    char line[LOG_LINE_MAX + 1];
    size_t len = log_vformat(line, sizeof line, level, who, fmt, ap);
    if (!r->log_capture) {
        fflush(stdout); /* keep the order of print() output and log lines on a shared terminal */
        fwrite(line, 1, len, stderr);
    } else if (r->log_capture->len + len <= RT_LOG_CAPTURE_MAX) {
        strbuf_append(r->log_capture, line, len);
    }
}

void rt_log(const rt *r, int level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vlog(r, level, who, fmt, ap);
    va_end(ap);
}
