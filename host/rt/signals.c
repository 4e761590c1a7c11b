/* signals.c - SIGINT and SIGTERM for the runtime (see rt.h): libev watchers hand them to the
 * one handler the app registered, from the loop; a raw handler in front raises the flag the
 * watchdog reads while code runs (the loop, and so the watchers, only run once it yields), and
 * ends the process at once on a second stopping signal. */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "rt/rt.h"

/* The process-wide state: a signal handler has no context to hand it to. */
static volatile sig_atomic_t signal_arrived; /* the loop has not taken it yet */
static volatile sig_atomic_t sigint_interrupts; /* with a prompt, Ctrl-C interrupts, never exits */
static volatile sig_atomic_t feeding;        /* the watchers run: hand signals to the loop */

static volatile double signal_time;  /* monotonic seconds when signal_arrived was raised */
static volatile double first_stop;   /* monotonic seconds of the first stopping signal, 0 before one */
static double interrupt_at;          /* rt_interrupt_from: code still running then is interrupted */

static double now_monotonic(void) /* clock_gettime is async-signal-safe */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + 1e-9;
}

static void on_raw_signal(int sig)
{
    /* SIGTERM, and SIGINT without a prompt (or once the prompt is gone), stop the host; a
     * second one ends the process at once, by the signal's own default action (the parent
     * sees it die of that signal: 143 for SIGTERM, 130 for SIGINT in a shell). `timeout`
     * sends a signal to its child and then to its whole process group, so one that comes
     * within RT_SIGNAL_REPEAT of the first is that same one delivered twice. */
    if (sig == SIGTERM || !sigint_interrupts || !feeding) {
        double t = now_monotonic();
        if (first_stop == 0) {
            first_stop = t;
        } else if (t - first_stop > RT_SIGNAL_REPEAT) {
            static const char msg[] = "sssn-host: warn: a second signal: exiting at once\n";
            ssize_t n = write(2, msg, sizeof msg - 1); /* async-signal-safe, unlike the log */
            (void)n;
            signal(sig, SIG_DFL);
            raise(sig); /* blocked while this handler runs: delivered as it returns */
            return;
        }
    }
    if (!feeding)
        return; /* after the run: the exit is under way */
    if (!signal_arrived)
        signal_time = now_monotonic();
    signal_arrived = sig;
    ev_feed_signal(sig);
}

int rt_signal_arrived(int interruptible)
{
    int sig = signal_arrived;
    if (sig == SIGINT && sigint_interrupts)
        return interruptible; /* Ctrl-C at a prompt only interrupts the prompt's own chunk */
    if (interrupt_at > 0 && now_monotonic() >= interrupt_at)
        return 1;
    /* code busy when the host was told to stop may finish, for a moment: it holds the loop,
     * so nothing else (in-flight requests) moves meanwhile */
    return sig != 0 && now_monotonic() - signal_time > RT_BUSY_GRACE;
}

void rt_interrupt_from(double seconds_from_now)
{
    interrupt_at = seconds_from_now >= 0 ? now_monotonic() + seconds_from_now : 0;
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

static void install_raw_handler(void)
{
    struct sigaction sa = {.sa_handler = on_raw_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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
    feeding = 1;
    install_raw_handler();
}

void rt_release_signals(rt *r)
{
    if (!ev_is_active(&r->sigint_watcher) && !ev_is_active(&r->sigterm_watcher))
        return;
    feeding = 0;
    interrupt_at = 0;
    ev_signal_stop(r->loop, &r->sigint_watcher);
    ev_signal_stop(r->loop, &r->sigterm_watcher);
    /* libev put back the default actions; during the exit (durable channels are flushed as
     * the host is freed) a late duplicate of the first signal is ignored, and a second one
     * still ends the process at once */
    install_raw_handler();
}
