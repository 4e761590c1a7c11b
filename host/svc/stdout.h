/* stdout.h - the host's standard output and error: stdio streams of our own in place of the
 * C library's, so that every write (print, io.write, log lines, printf) passes one place. It
 * notices when the reader of standard output went away (EPIPE: `sssn-host ... | head -3`),
 * and lets a prompt on the terminal get out of the way of output and come back after it.
 * Process-wide, as stdout itself is. */
#ifndef SSSN_STDOUT_H
#define SSSN_STDOUT_H

#include <stdio.h>

#include "svc/service.h"
#include "sys/host.h"

/* Puts the wrapping streams in place of stdout (line-buffered) and stderr (unbuffered). Call
 * before any Lua state is made: io.stdout is the stream at the time. 0, or -1 when they could
 * not be made (stdout and stderr are then left as they were). */
int out_install(void);

/* Whether a write to standard output failed with EPIPE: nobody reads it any more. */
int out_closed(void);
/* The errno of the first failed write to standard output other than EPIPE, or 0. */
int out_error(void);

/* The unwrapped standard output, for writers that must bypass the hooks (readline). */
FILE *out_terminal(void);

/* While set, each write calls hide(ud) first; when it returns nonzero (it took a prompt off
 * the screen), show(ud) follows the write, after a newline if the output did not end one.
 * Writes made by the hooks themselves are not hooked. NULL hide: no hooks. */
void out_set_prompt(int (*hide)(void *), void (*show)(void *), void *ud);

/* The watch as a service: once per loop turn it stops the host when standard output was
 * closed (exit status 3) and logs once when writing to it fails otherwise. */
service *out_service_new(host *h);

#endif
