/* rt.h - the bottom runtime: one libev loop, the host clock with its timers and deferred
 * calls (timer.h), the log, and the process's signals (signals.c). It knows nothing above
 * it: systems, channels and services plug in through callbacks (a timer, a deferred call, a
 * clock-shift listener, the one signal handler), never by name. The app creates it first
 * and frees it last. */
#ifndef SSSN_RT_H
#define SSSN_RT_H

#include <ev.h>
#include <stdarg.h>

#include "core/heap.h"
#include "core/strbuf.h"

typedef struct rt rt;

/* A timer on the host clock: cb runs from the loop (or from timer_clock_advance) once the
 * clock reaches the time it was started for. */
typedef struct rt_timer {
    heap_node node;
    void (*cb)(rt *r, struct rt_timer *t);
    void *data;
} rt_timer;

/* A call run from the loop (an ev_idle watcher), never inside the code that queued it. */
typedef struct deferred {
    void (*cb)(rt *r, struct deferred *d);
    void *data;
    struct deferred *next;
    int queued;
} deferred;

/* Told when the test clock switches (timer_clock_set / timer_clock_real): every pending
 * timer keeps its time-to-go, and so must schedules that layers above keep as absolute
 * times. */
typedef struct clock_listener {
    void (*on_shift)(struct clock_listener *l, double delta);
    void *data;
    struct clock_listener *next;
} clock_listener;

struct rt {
    struct ev_loop *loop;

    /* the clock, timers and deferred calls (timer.c) */
    int manual_clock;
    double manual_now;
    double clock_offset;       /* wall minus monotonic time at start */
    heap timers;
    ev_timer timer_watcher;
    deferred *defer_head, *defer_tail;
    ev_idle defer_watcher;
    clock_listener *clock_listeners;

    /* the log (rt.c) */
    int log_level;
    strbuf *log_capture;       /* when capturing: the lines since the last take (NULL: stderr) */

    /* signals (signals.c) */
    ev_signal sigint_watcher, sigterm_watcher;
    void (*on_signal)(void *ud, int signum);
    void *signal_ud;
    int sigint_consumed;       /* the watchdog already spent this Ctrl-C on interrupting code */
};

/* capture_log: log lines go to r->log_capture (read by the specs), not stderr.
 * NULL when out of memory. */
rt *rt_new(int log_level, int capture_log);
void rt_free(rt *r);

/* Bytes of captured log kept at most between two takes; later lines are dropped. */
#define RT_LOG_CAPTURE_MAX (1u << 20)

/* A log line (see core/log.h) when level <= r->log_level: to stderr or the capture. */
void rt_log(const rt *r, int level, const char *who, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void rt_vlog(const rt *r, int level, const char *who, const char *fmt, va_list ap);

/* Signals (signals.c). SIGINT and SIGTERM go to on_signal(ud, signum) from the loop; each
 * also raises a process-wide flag (the only global state here: a signal handler has no
 * context) that rt_signal_arrived reads, so the watchdog can interrupt code that never
 * yields. sigint_interrupts: Ctrl-C only interrupts code running in an interruptible state
 * (a prompt); it never stops the host and never counts as a second signal. Otherwise the
 * first SIGINT or SIGTERM is the host's to stop cleanly, and a second one, more than
 * RT_SIGNAL_REPEAT seconds after the first (`timeout` delivers one twice at once), ends the
 * process at once by that signal's default action. */
#define RT_SIGNAL_REPEAT 0.25
/* Seconds code that is running when a signal arrives may go on before the watchdog
 * interrupts it (a step finishing its work); it holds the loop meanwhile. */
#define RT_BUSY_GRACE 1.0
void rt_catch_signals(rt *r, void (*on_signal)(void *ud, int signum), void *ud, int sigint_interrupts);
/* After the run: stops the watchers; during the exit a repeat of the first signal is
 * ignored, and a second one still ends the process at once. */
void rt_release_signals(rt *r);
/* Whether code running now should be interrupted: SIGINT/SIGTERM arrived, the loop has not
 * handled it yet and RT_BUSY_GRACE has passed, or the time rt_interrupt_from set has come;
 * interruptible: the code asking runs in a state Ctrl-C may interrupt (then a Ctrl-C at the
 * prompt interrupts at once). */
int rt_signal_arrived(int interruptible);
/* From `seconds` from now on, rt_signal_arrived says yes (the app's bound on a clean stop:
 * code still running then is interrupted); a negative value clears it. */
void rt_interrupt_from(double seconds);

#endif
