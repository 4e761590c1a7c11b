/* metrics.h - the host's counters in the Prometheus text exposition format: systems, steps,
 * errors, overruns, channel traffic, registry entries and, with an HTTP API, its responses
 * by status class and open connections (h->http_stats). */
#ifndef SSSN_METRICS_H
#define SSSN_METRICS_H

#include "core/strbuf.h"
#include "sys/host.h"

void host_metrics_text(strbuf *b, const host *h);

#endif
