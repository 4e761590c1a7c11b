/* strbuf.c - growable byte buffer (see strbuf.h). A failed reservation marks the buffer
 * failed, so that no later append can add to a text that already lost a piece. */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRBUF_MAX ((size_t)PTRDIFF_MAX) /* no object may be larger */

static int fail(strbuf *b)
{
    b->failed = 1;
    return -1;
}

int strbuf_reserve(strbuf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->data && b->cap - b->len > extra)
        return 0;
    if (extra > STRBUF_MAX - 1 - b->len)
        return fail(b);
    size_t need = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > STRBUF_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return fail(b);
    if (!b->data)
        p[0] = '\0'; /* terminated from the first allocation on */
    b->data = p;
    b->cap = cap;
    return 0;
}

int strbuf_append(strbuf *b, const char *s, size_t n)
{
    if (strbuf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int strbuf_puts(strbuf *b, const char *s) { return strbuf_append(b, s, strlen(s)); }

int strbuf_putc(strbuf *b, char c) { return strbuf_append(b, &c, 1); }

int strbuf_printf(strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fail(b);
    if (strbuf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int strbuf_failed(const strbuf *b) { return b->failed; }

void strbuf_reset(strbuf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *strbuf_steal(strbuf *b, size_t *len)
{
    if (b->failed || (!b->data && strbuf_reserve(b, 0) < 0)) {
        strbuf_free(b);
        return NULL;
    }
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void strbuf_free(strbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
