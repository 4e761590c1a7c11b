/* repl.h - the interactive Lua prompt on the host's loop (`sssn-host repl [URL]`, `-i`), as
 * a service. Input is read by a libev watcher on stdin (readline's callback interface on a
 * terminal, plain lines otherwise), so systems keep ticking while someone types; each chunk
 * runs as a task in the REPL's own Lua state, so registry and channel calls yield like
 * anywhere else. Ctrl-C interrupts the running chunk (it never stops the host); the end of
 * the input stops the host; without a terminal a failed chunk makes the exit status 1. */
#ifndef SSSN_REPL_H
#define SSSN_REPL_H

#include "svc/service.h"
#include "sys/host.h"

/* json: print each result as one JSON line. NULL when out of memory. */
service *repl_service_new(host *h, int json);

#endif
