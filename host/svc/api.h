/* api.h - the host's HTTP API: an http_server whose requests run as tasks in the host's own
 * API Lua state, routed by lua/sssn/api.lua, so long-polls wait without holding the loop. */
#ifndef SSSN_API_H
#define SSSN_API_H

#include "core/strbuf.h"

struct host;
typedef struct api api;

/* Starts serving on addr:port; NULL with the reason in err on failure. */
api *api_start(struct host *h, const char *addr, int port, char *err, size_t errlen);
int api_port(const api *a);
void api_stop(api *a);

/* Prometheus text exposition of the host's counters. */
void api_metrics_text(strbuf *b, const struct host *h);

#endif
