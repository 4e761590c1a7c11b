/* test_strbuf.c - unit tests for host/core/strbuf.c: growth, NUL termination, and the sticky
 * failure flag (a failed reservation refuses every later append until reset, so a text
 * built from unchecked appends is never a truncated mix). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/strbuf.h"

static void test_appends_grow_and_stay_terminated(void)
{
    strbuf b = STRBUF_INIT;
    CHECK(b.data == NULL && !strbuf_failed(&b));
    CHECK(strbuf_puts(&b, "ab") == 0);
    CHECK(strbuf_putc(&b, 'c') == 0);
    CHECK(strbuf_printf(&b, "-%d-", 42) == 0);
    CHECK(strbuf_append(&b, "xyz", 2) == 0);
    CHECK(b.len == 9 && strcmp(b.data, "abc-42-xy") == 0);
    for (int i = 0; i < 10000; i++)
        CHECK(strbuf_putc(&b, (char)('a' + i % 26)) == 0);
    CHECK(b.len == 10009 && b.cap > b.len && b.data[b.len] == '\0');
    CHECK(b.data[9] == 'a' && b.data[10008] == (char)('a' + 9999 % 26));
    strbuf_reset(&b);
    CHECK(b.len == 0 && b.data && b.data[0] == '\0');
    strbuf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_steal_hands_over_the_text(void)
{
    strbuf b = STRBUF_INIT;
    size_t len = 99;
    char *s = strbuf_steal(&b, &len); /* empty: still a string */
    CHECK(s && s[0] == '\0' && len == 0);
    free(s);
    strbuf_puts(&b, "hello");
    s = strbuf_steal(&b, &len);
    CHECK(s && strcmp(s, "hello") == 0 && len == 5);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(s);
}

static void test_a_failed_reservation_refuses_every_later_append(void)
{
    strbuf b = STRBUF_INIT;
    CHECK(strbuf_puts(&b, "{\"a\":") == 0);
    size_t cap = b.cap;
    /* more than any object may hold: refused before realloc is asked */
    CHECK(strbuf_reserve(&b, SIZE_MAX - 10) == -1);
    CHECK(strbuf_failed(&b));
    CHECK(strbuf_append(&b, "1", 1) == -1);
    CHECK(strbuf_puts(&b, "2") == -1);
    CHECK(strbuf_putc(&b, '}') == -1);
    CHECK(strbuf_printf(&b, "%d", 3) == -1);
    CHECK(strbuf_reserve(&b, 1) == -1);
    /* the text is what it was before the failure, not a mix with later pieces */
    CHECK(b.len == 5 && strcmp(b.data, "{\"a\":") == 0 && b.cap == cap);
    CHECK(strbuf_failed(&b));
    /* reset clears the failure; the memory is kept */
    strbuf_reset(&b);
    CHECK(!strbuf_failed(&b) && b.len == 0 && b.cap == cap);
    CHECK(strbuf_puts(&b, "ok") == 0 && strcmp(b.data, "ok") == 0);
    strbuf_free(&b);
}

static void test_sizes_that_overflow_fail(void)
{
    strbuf b = STRBUF_INIT;
    CHECK(strbuf_reserve(&b, SIZE_MAX) == -1); /* len + extra + 1 wraps around */
    CHECK(strbuf_failed(&b) && b.data == NULL);
    strbuf_free(&b);
    CHECK(!strbuf_failed(&b));

    strbuf_puts(&b, "x");
    CHECK(strbuf_reserve(&b, SIZE_MAX - 1) == -1);
    CHECK(strbuf_failed(&b) && strcmp(b.data, "x") == 0);
    strbuf_free(&b);

    strbuf_puts(&b, "x");
    CHECK(strbuf_reserve(&b, (size_t)PTRDIFF_MAX) == -1); /* just past the largest object */
    CHECK(strbuf_failed(&b));
    strbuf_free(&b);
}

static void test_steal_refuses_a_failed_buffer(void)
{
    strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "[1,");
    strbuf_reserve(&b, SIZE_MAX - 10);
    strbuf_puts(&b, "2]");
    size_t len = 7;
    CHECK(strbuf_steal(&b, &len) == NULL); /* frees the incomplete text */
    CHECK(b.data == NULL && b.len == 0 && !strbuf_failed(&b));
    CHECK(strbuf_puts(&b, "[]") == 0 && strcmp(b.data, "[]") == 0);
    strbuf_free(&b);
}

int main(void)
{
    RUN(test_appends_grow_and_stay_terminated);
    RUN(test_steal_hands_over_the_text);
    RUN(test_a_failed_reservation_refuses_every_later_append);
    RUN(test_sizes_that_overflow_fail);
    RUN(test_steal_refuses_a_failed_buffer);
    return check_report();
}
