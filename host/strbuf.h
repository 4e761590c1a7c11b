/* strbuf.h - a growable byte buffer, always NUL-terminated.
 * Used to build JSON text and log lines. The owner of the struct frees it with
 * strbuf_free; functions return 0 on success and -1 when memory runs out. */
#ifndef SSSN_STRBUF_H
#define SSSN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;   /* bytes used, without the NUL */
    size_t cap;   /* bytes allocated */
} strbuf;

#define STRBUF_INIT {NULL, 0, 0}

int strbuf_reserve(strbuf *b, size_t extra);
int strbuf_append(strbuf *b, const char *s, size_t n);
int strbuf_puts(strbuf *b, const char *s);
int strbuf_putc(strbuf *b, char c);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_reset(strbuf *b);               /* len = 0, keeps the memory */
char *strbuf_steal(strbuf *b, size_t *len); /* hands the text to the caller (free it) */
void strbuf_free(strbuf *b);

#endif
