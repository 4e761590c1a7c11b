/* keepalive.h - what a system registered in the in-process registry, kept alive while it
 * runs and removed when it stops; being told, from the registry's event callback, that an
 * entry it keeps alive was taken over, so it takes it back as soon as the entry is free. */
#ifndef SSSN_KEEPALIVE_H
#define SSSN_KEEPALIVE_H

#include "sys/host.h"
#include "model/registry.h"

typedef struct registration registration;

/* What one system keeps registered (embedded in it). While it holds registrations it is on
 * the host's list, so a takeover can find the registration it displaced. */
typedef struct keepalive_set {
    host *h;
    const char *who;            /* the system's id: log lines name it */
    registration *regs;
    struct keepalive_set *next; /* h->keepalive_sets */
    int linked;
} keepalive_set;

void keepalive_init(keepalive_set *k, host *h, const char *who);
/* f's strings are copied (registrant required: an operator's entry is nobody's to keep):
 * refreshed before it expires (unless keepalive is 0), registered again if it lapsed. */
void keepalive_track(keepalive_set *k, reg_kind kind, const reg_fields *f, double ttl, int keepalive);
/* A deregistration by the system itself ends the keeping (and any attempt to take it back). */
void keepalive_untrack(keepalive_set *k, reg_kind kind, const char *id);
/* The system stops: removes what it still owns from the registry, forgets the rest. */
void keepalive_drop_all(keepalive_set *k);
/* Makes the host tell keep-alive of its registry events (the app calls it). */
void keepalive_attach(host *h);

/* Seconds between attempts of a displaced registration to take its entry back. */
#define KEEPALIVE_RETRY 1.0

/* prev (the entry taken over) and e (the new one) as REG_REPLACED hands them over. When prev
 * was registered by a running system of this host that keeps it alive, that registration
 * becomes displaced: it keeps its fields and retries every KEEPALIVE_RETRY seconds until the
 * entry is deregistered or expires, then registers it again. Changes nothing in the registry
 * (safe from the event callback); allocates nothing. */
void keepalive_on_replaced(host *h, const reg_entry *e, const reg_entry *prev);
/* The host's on_registry_event (systems_init sets it): passes takeovers to the above. */
void keepalive_on_registry_event(host *h, reg_event ev, const reg_entry *e, const reg_entry *prev);

#endif
