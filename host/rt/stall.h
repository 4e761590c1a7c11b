/* stall.h - how long each turn of the loop keeps it from polling (issue 13: the worst stall
 * under heavy durable writes must stay under 5 ms). A turn's busy time runs from the moment the
 * poll returns (an ev_check at EV_MAXPRI, run before any other callback of the turn) to the
 * next ev_prepare (at EV_MINPRI, after every other prepare watcher, so work done there, such
 * as a group commit at the end of a turn, counts), on CLOCK_MONOTONIC. With ev_run(EVRUN_ONCE)
 * what the caller does between two ev_run calls counts in the turn too: the loop polls no one
 * then either. Neither watcher keeps the loop alive (both ev_unref'd). Costs two clock reads a
 * turn; allocates nothing after stall_new. */
#ifndef SSSN_STALL_H
#define SSSN_STALL_H

#include <stdint.h>

#include "rt/rt.h"

/* The thresholds the slow-turn counters count over, seconds, ascending. */
#define STALL_NOVER 8
extern const double stall_over_bounds[STALL_NOVER];

typedef struct loop_stall {
    rt *rt;
    ev_check check;
    ev_prepare prepare;
    double turn_start;            /* monotonic seconds the poll returned; < 0 outside a turn */
    /* read-only for the layers above (the metrics) */
    double max;                   /* the longest turn since stall_new, seconds */
    double busy;                  /* the turns' busy time summed, seconds */
    uint64_t turns;               /* turns measured (a check followed by a prepare) */
    uint64_t over[STALL_NOVER];   /* over[i]: turns longer than stall_over_bounds[i] */
} loop_stall;

/* Starts measuring r's loop (from its next turn). NULL when out of memory. The caller frees it
 * with stall_free before rt_free. */
loop_stall *stall_new(rt *r);
void stall_free(loop_stall *s); /* stops both watchers; NULL is fine */

#endif
