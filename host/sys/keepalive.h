/* keepalive.h - what keepalive.c offers the host besides the system_*_registration calls
 * declared in system.h: being told, from the registry's event callback, that an entry a system
 * of this host keeps alive was taken over, so it takes it back as soon as the entry is free. */
#ifndef SSSN_KEEPALIVE_H
#define SSSN_KEEPALIVE_H

#include "sys/host.h"
#include "model/registry.h"

/* Seconds between attempts of a displaced registration to take its entry back. */
#define KEEPALIVE_RETRY 1.0

/* prev (the entry taken over) and e (the new one) as REG_REPLACED hands them over. When prev
 * was registered by a running system of this host that keeps it alive, that registration
 * becomes displaced: it keeps its fields and retries every KEEPALIVE_RETRY seconds until the
 * entry is deregistered or expires, then registers it again. Changes nothing in the registry
 * (safe from the event callback); allocates nothing. */
void keepalive_on_replaced(host *h, const reg_entry *e, const reg_entry *prev);

#endif
