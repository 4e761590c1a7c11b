/* signals.c - SIGINT and SIGTERM for the runtime (see rt.h): libev watchers hand them to the
 * one handler the app registered, from the loop; a raw handler in front raises the flag the
 * watchdog reads while a step runs (the loop, and so the watchers, only run once it is over). */
#include <signal.h>
#include <time.h>

#include "rt/rt.h"

/* The one piece of process-wide state: a signal handler has no context to hand a flag to. */
static volatile sig_atomic_t signal_arrived;
static volatile sig_atomic_t sigint_interrupts; /* with a prompt, Ctrl-C interrupts, never exits */

static double first_sigint; /* monotonic seconds of the first SIGINT, 0 before one */

static double now_monotonic(void) /* clock_gettime is async-signal-safe */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + 1e-9;
}

static void on_raw_signal(int sig)
{
    signal_arrived = sig;
    /* A second Ctrl-C ends the process at once; a repeated SIGTERM (supervisors and `timeout`
     * send their own) lets the clean stop, bounded anyway, finish. `timeout` sends a signal
     * to its child and then to its whole process group, so a SIGINT that comes within a
     * moment of the first is that same one delivered twice, not a second Ctrl-C. */
    if (sig == SIGINT && !sigint_interrupts) {
        double t = now_monotonic();
        if (first_sigint == 0) {
            first_sigint = t;
        } else if (t - first_sigint > 0.25) {
            signal(SIGINT, SIG_DFL);
            raise(SIGINT);
            return;
        }
    }
    ev_feed_signal(sig);
}

int rt_signal_arrived(int interruptible)
{
    int sig = signal_arrived;
    if (sig == SIGINT && sigint_interrupts)
        return interruptible; /* Ctrl-C at a prompt only interrupts the prompt's own chunk */
    return sig != 0;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    rt *r = w->data;
    signal_arrived = 0; /* the loop has it now */
    int consumed = w->signum == SIGINT && r->sigint_consumed;
    r->sigint_consumed = 0;
    if (!consumed && r->on_signal)
        r->on_signal(r->signal_ud, w->signum);
}

void rt_catch_signals(rt *r, void (*handler)(void *ud, int signum), void *ud, int interrupts)
{
    r->on_signal = handler;
    r->signal_ud = ud;
    sigint_interrupts = interrupts;
    if (!ev_is_active(&r->sigint_watcher)) {
        ev_signal_init(&r->sigint_watcher, on_signal, SIGINT);
        r->sigint_watcher.data = r;
        ev_signal_start(r->loop, &r->sigint_watcher);
    }
    if (!ev_is_active(&r->sigterm_watcher)) {
        ev_signal_init(&r->sigterm_watcher, on_signal, SIGTERM);
        r->sigterm_watcher.data = r;
        ev_signal_start(r->loop, &r->sigterm_watcher);
    }
    /* our handler in front of libev's: it also raises the flag the watchdog checks */
    struct sigaction sa = {.sa_handler = on_raw_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void rt_release_signals(rt *r)
{
    if (!ev_is_active(&r->sigint_watcher) && !ev_is_active(&r->sigterm_watcher))
        return;
    ev_signal_stop(r->loop, &r->sigint_watcher);
    ev_signal_stop(r->loop, &r->sigterm_watcher);
    /* libev put back the default action; a late duplicate SIGTERM (`timeout` signals the child
     * and then its whole group) must not kill the clean exit already under way */
    signal(SIGTERM, SIG_IGN);
}
