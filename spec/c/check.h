/* check.h - a minimal harness for the C unit tests of the host's data structures.
 * Each test is a function; CHECK records a failure with file and line and carries on.
 * main() calls RUN(test) for each and returns check_report(), which prints
 * "N passed, N failed" (one test = one RUN) and exits non-zero on any failure. */
#ifndef SSSN_CHECK_H
#define SSSN_CHECK_H

#include <stdio.h>

static int check_failed_in_test;
static int check_passed, check_failed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failed_in_test = 1;                                               \
        }                                                                           \
    } while (0)

#define RUN(fn)                                                                     \
    do {                                                                            \
        check_failed_in_test = 0;                                                   \
        fn();                                                                       \
        if (check_failed_in_test) {                                                 \
            check_failed++;                                                         \
            printf("not ok - %s\n", #fn);                                           \
        } else {                                                                    \
            check_passed++;                                                         \
            printf("ok - %s\n", #fn);                                               \
        }                                                                           \
    } while (0)

static inline int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
