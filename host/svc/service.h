/* service.h - what the app starts, signals and stops without knowing it by name: the HTTP
 * API, the prompt, the watch on standard output. Each service fills one of these; the app
 * keeps them in a list and calls them in order (start), in reverse (stop, free). */
#ifndef SSSN_SERVICE_H
#define SSSN_SERVICE_H

#include <stddef.h>

typedef struct service service;

struct service {
    const char *name;
    /* Starts it (bind a port, open the prompt); 0, or -1 with the reason in err. */
    int (*start)(service *s, char *err, size_t errlen);
    /* Takes SIGINT or SIGTERM before the host stops for it: 1 when the service handled it
     * (a prompt interrupts its chunk on Ctrl-C), 0 to let the host stop. May be NULL. */
    int (*on_signal)(service *s, int signum);
    /* The host is stopping cleanly (the first SIGTERM, or SIGINT without a prompt): refuse
     * new work that changes anything, answer what waits at once with what there is, and
     * finish what is in flight; the host waits for busy() to say 0, for a bounded time,
     * before it stops the systems. May be NULL. */
    void (*drain)(service *s);
    /* Work in flight that the host should wait for while it drains (requests not yet
     * answered). May be NULL: none. */
    size_t (*busy)(const service *s);
    /* Stops taking work: no new requests or input. May be NULL. */
    void (*stop)(service *s);
    /* Frees it (called after stop, before the host's systems are freed). */
    void (*free)(service *s);
    /* Whether the host should keep running for it although no system runs (a listening API,
     * an open prompt). May be NULL: no. */
    int (*keeps_running)(const service *s);
    /* What it adds to the exit status: 0, or a status (1: a chunk at a prompt failed; 3:
     * standard output was closed). May be NULL. */
    int (*exit_status)(const service *s);
    int takes_sigint;    /* Ctrl-C only interrupts (a prompt): it never stops the host */
    void *impl;
    service *next;       /* the app's list */
};

#endif
