/* log.c - leveled logging to stderr (see log.h). One write per line so lines from
 * several systems never interleave mid-line. Any input is safe: a line longer than the
 * buffer is cut (and marked so) rather than overflowing it. */
#include "core/log.h"

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

/* snprintf returns what it would have written: clamp it to what fits. */
static size_t clamp(int n, size_t room)
{
    if (n < 0)
        return 0;
    return (size_t)n < room ? (size_t)n : room - 1;
}

size_t log_vformat(char *line, size_t size, int level, const char *system, const char *fmt, va_list ap)
{
    static const char cut[] = " [...]";
    if (size < sizeof cut + 64)
        return 0;
    size_t room = size - sizeof cut - 1; /* leaves space for the mark and '\n' */
    const char *lvl = log_level_name(level);
    size_t len = clamp(system ? snprintf(line, room, "sssn-host: %s: [%.200s%s] ", lvl, system,
                                         strlen(system) > 200 ? "..." : "")
                              : snprintf(line, room, "sssn-host: %s: ", lvl),
                       room);
    int m = vsnprintf(line + len, room - len, fmt, ap);
    int truncated = m > 0 && (size_t)m >= room - len;
    len += clamp(m, room - len);
    if (truncated) {
        memcpy(line + len, cut, sizeof cut - 1);
        len += sizeof cut - 1;
    }
    line[len++] = '\n';
    line[len] = '\0';
    return len;
}

void log_write(int threshold, int level, const char *system, const char *fmt, ...)
{
    if (level > threshold)
        return;
    char line[LOG_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t len = log_vformat(line, sizeof line, level, system, fmt, ap);
    va_end(ap);
    fflush(stdout); /* keep the order of print() output and log lines on a shared terminal */
    fwrite(line, 1, len, stderr);
}
