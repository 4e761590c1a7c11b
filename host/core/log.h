/* log.h - leveled logging to stderr, each line prefixed with "sssn-host" and, when given,
 * the system id. The level threshold lives in the host's config and is passed explicitly. */
#ifndef SSSN_LOG_H
#define SSSN_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Bytes of one log line at most; longer lines are cut and end in " [...]". A system id is
 * shown up to 200 bytes. */
#define LOG_LINE_MAX 4096

int log_level_parse(const char *s); /* -1 when unknown */
const char *log_level_name(int level);

/* Formats one line "sssn-host: LEVEL: [system] message\n" into line (size bytes, at least
 * 128; NUL-terminated) and returns its length. system may be NULL. */
size_t log_vformat(char *line, size_t size, int level, const char *system, const char *fmt, va_list ap);

/* Writes that line to stderr when level <= threshold. */
void log_write(int threshold, int level, const char *system, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
