/* log.c - leveled logging to stderr (see log.h). One write per line so lines from
 * several systems never interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level) { return level >= 0 && level < 4 ? names[level] : "?"; }

void log_write(int threshold, int level, const char *system, const char *fmt, ...)
{
    if (level > threshold)
        return;
    char line[4096];
    int n = system ? snprintf(line, sizeof line, "sssn-host: %s: [%s] ", names[level], system)
                   : snprintf(line, sizeof line, "sssn-host: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fflush(stdout); /* keep the order of print() output and log lines on a shared terminal */
    fwrite(line, 1, len, stderr);
}
