/* rt.c - making and freeing the runtime (see rt.h); the clock and timers live in timer.c,
 * the log in logsink.c and the signals in signals.c. */
#include "rt/rt.h"

#include <stdlib.h>

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

