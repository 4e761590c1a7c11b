/* keepalive.h - the keep-alive and ownership policy, one for every registry backend
 * (regbackend.h): what a system registered is refreshed while it runs (when two thirds of
 * its TTL have passed; registered again if it lapsed), displaced when another registrant
 * takes it over (it then retries every KEEPALIVE_RETRY s and takes the entry back as soon as
 * it is deregistered or expires), and removed when the system stops if it is still the
 * system's. A registration belongs to its registrant, "<host instance>/<system id>".
 * Takeovers are noticed at once from the backend's events (the listener), else at the next
 * refresh; a refresh the backend does not answer is retried with backoff (1, 2, 4, 5 s).
 * It knows no host: a runtime, a backend and a counter of unfinished work. */
#ifndef SSSN_KEEPALIVE_H
#define SSSN_KEEPALIVE_H

#include "model/registry.h"
#include "rt/rt.h"
#include "sys/regbackend.h"

typedef struct keepalive keepalive;       /* one per host */
typedef struct registration registration;
typedef struct ka_op ka_op;               /* a caller's operation, to forget it */

/* What one system keeps registered (embedded in it). While it holds registrations it is on
 * its keepalive's list, so a takeover can find the registration it displaced. */
typedef struct keepalive_set {
    keepalive *ka;
    const char *who;            /* the system's id: log lines name it (copied where needed) */
    registration *regs;
    struct keepalive_set *next; /* ka->sets */
    int linked;
} keepalive_set;

/* instance_id names this host's registrants ("<instance_id>/..."); *unfinished counts the
 * work of stopped systems still under way (removals from a remote registry): it is raised
 * while there is some, and lowered when it is done, so the app can wait for it at exit.
 * NULL when out of memory. */
keepalive *keepalive_new(rt *r, const char *instance_id, unsigned *unfinished);
/* Cancels what it still has under way and frees every registration (after the systems). */
void keepalive_free(keepalive *ka);
/* The backend it works through; it becomes the backend's listener. Once, before any
 * registration. */
void keepalive_use(keepalive *ka, regbackend *b);

void keepalive_init(keepalive_set *k, keepalive *ka, const char *who);

/* The system registers f (f->registrant its own, required) for ttl seconds, taking the entry
 * over from anyone; once the backend committed it the registration is kept alive (unless
 * keep is 0) until the system deregisters it or stops. done(ud, result) runs exactly
 * once, as the backend's does (regbackend.h), unless keepalive_forget(op) is called first;
 * the result is the backend's. Returns the operation while it is pending, else NULL. A
 * registration that fails is not kept (unless an earlier one of the same id was committed:
 * that one carries on with the new fields). */
ka_op *keepalive_register(keepalive_set *k, reg_kind kind, const reg_fields *f, double ttl, int keep,
                          rb_done_fn done, void *ud);
/* The system deregisters an id: it stops keeping it (and any attempt to take it back), and
 * the backend removes the entry if it is registrant's. Sent once the registration's own
 * operations in flight are over, so it cannot overtake them. done as above. */
ka_op *keepalive_deregister(keepalive_set *k, reg_kind kind, const char *id, const char *registrant,
                            rb_done_fn done, void *ud);
/* The caller no longer waits for op (its task ended): done will not run; the operation
 * itself carries on. */
void keepalive_forget(ka_op *op);
/* The system stops: it removes what it registered if it is still its own (each after the
 * registration's operations in flight), forgets the rest. */
void keepalive_drop_all(keepalive_set *k);

/* Seconds between attempts of a displaced registration to take its entry back, and the
 * longest wait between attempts of a refresh that got no answer. */
#define KEEPALIVE_RETRY 1.0
#define KEEPALIVE_RETRY_MAX 5.0

#endif
