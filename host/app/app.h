/* app.h - the composition root: the runtime at the bottom, the host (systems, channels,
 * registry) on it, and the services around them, started and stopped in order. It runs the
 * loop, takes the signals and the --duration, and knows each service only through
 * svc/service.h. */
#ifndef SSSN_APP_H
#define SSSN_APP_H

#include "rt/rt.h"
#include "svc/service.h"
#include "sys/host.h"

typedef struct app {
    rt *rt;
    host *h;
    service *services;   /* in start order */
    ev_timer duration;
    /* a clean stop on a signal (app.c): draining until drain_timer, then the systems stop */
    int draining;
    int drain_over;      /* APP_DRAIN_SECONDS passed */
    const char *drain_why;
    ev_timer drain_timer;
} app;

/* How long a clean stop waits for the requests in flight and the steps in progress (then
 * they are cut short), before the systems' deregistrations get their 3 s. */
#define APP_DRAIN_SECONDS 5.0

/* Makes the runtime and the host for cfg; NULL (with a message on stderr) on failure. */
app *app_new(const host_config *cfg);
/* Starts a service and keeps it (the app stops and frees it, newest first): 0, or -1 after
 * logging why it could not start (s is then freed; s NULL means out of memory). */
int app_add(app *a, service *s);
/* Catches SIGINT/SIGTERM from now on: one that comes while scripts load stops them cleanly
 * once the loop runs (app_run catches them too). The first one (SIGINT only without a
 * prompt) drains: the services refuse new writes and answer what waits (service.h drain),
 * each system stops once the step it is in has ended, and the host waits for both, at most
 * APP_DRAIN_SECONDS; a second one ends the process at once (rt.h). */
void app_catch_signals(app *a);
/* Runs the loop until every system stopped and no service keeps the host running, a signal
 * (once drained), or --duration; then stops the systems and gives their remote
 * deregistrations up to 3 s. */
void app_run(app *a);
/* The worst exit status any service asks for (0 when none does). */
int app_exit_status(const app *a);
/* Stops the services, frees them, then the host, then the runtime. */
void app_free(app *a);

#endif
