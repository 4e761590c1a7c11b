/* strbuf.h - a growable byte buffer, always NUL-terminated.
 * Used to build JSON text and log lines. The owner of the struct frees it with
 * strbuf_free; functions return 0 on success and -1 when memory runs out.
 *
 * Failure is sticky: once a reserve or append fails, the buffer is marked failed and every
 * later reserve/append/puts/putc/printf is a no-op that returns -1, until strbuf_reset or
 * strbuf_free. The text already there is left as it was (never a piece of the failed append),
 * but it is incomplete, so a caller that appends many pieces without checking each one checks
 * strbuf_failed() once at the end and then must not use the text; strbuf_steal gives NULL for
 * a failed buffer. Sizes that would overflow (beyond PTRDIFF_MAX) fail like out of memory. */
#ifndef SSSN_STRBUF_H
#define SSSN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;   /* bytes used, without the NUL */
    size_t cap;   /* bytes allocated */
    int failed;   /* an append failed since the last reset: the text is incomplete */
} strbuf;

#define STRBUF_INIT {NULL, 0, 0, 0}

int strbuf_reserve(strbuf *b, size_t extra); /* room for `extra` more bytes and the NUL */
int strbuf_append(strbuf *b, const char *s, size_t n);
int strbuf_puts(strbuf *b, const char *s);
int strbuf_putc(strbuf *b, char c);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_failed(const strbuf *b);         /* 1 once an operation failed, until reset/free */
void strbuf_reset(strbuf *b);               /* len = 0, not failed, keeps the memory */
char *strbuf_steal(strbuf *b, size_t *len); /* hands the text to the caller (free it); NULL
                                             * when out of memory or failed (then freed) */
void strbuf_free(strbuf *b);                /* frees the memory; the buffer is empty again */

#endif
