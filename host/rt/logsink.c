/* logsink.c - the runtime's log (see rt.h): lines formatted by core/log.c, written to
 * stderr, or kept in a capture buffer the specs read. */
#include <stdio.h>

#include "core/log.h"
#include "rt/rt.h"

void rt_vlog(const rt *r, int level, const char *who, const char *fmt, va_list ap)
{
    if (level > r->log_level)
        return;
    char line[LOG_LINE_MAX + 1];
    size_t len = log_vformat(line, sizeof line, level, who, fmt, ap);
    if (!r->log_capture) {
        fflush(stdout); /* keep the order of print() output and log lines on a shared terminal */
        fwrite(line, 1, len, stderr);
    } else if (r->log_capture->len + len <= RT_LOG_CAPTURE_MAX) {
        strbuf_append(r->log_capture, line, len);
    }
}

void rt_log(const rt *r, int level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vlog(r, level, who, fmt, ap);
    va_end(ap);
}
