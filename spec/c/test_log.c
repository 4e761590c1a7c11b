/* test_log.c - unit tests for host/core/log.c: any input makes one bounded, well-formed line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"

/* Runs log_write with stderr sent to a temporary file; returns what was written (free it). */
static char *logged(int level, const char *system, const char *msg)
{
    char path[] = "/tmp/sssn-test-log-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    log_write(LOG_DEBUG, level, system, "%s", msg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "rb");
    char *out = calloc(1, 2 * LOG_LINE_MAX);
    size_t n = f && out ? fread(out, 1, 2 * LOG_LINE_MAX - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    close(fd);
    unlink(path);
    return out;
}

static void test_a_plain_line(void)
{
    char *out = logged(LOG_WARN, "svc", "hello");
    CHECK(out && strcmp(out, "sssn-host: warn: [svc] hello\n") == 0);
    free(out);
    out = logged(LOG_ERROR, NULL, "no system");
    CHECK(out && strcmp(out, "sssn-host: error: no system\n") == 0);
    free(out);
}

/* A system id of 9000 bytes once overflowed the line buffer (snprintf's return used as an
 * offset): the id is now cut, and so is a long message, marked, within LOG_LINE_MAX. */
static void test_long_ids_and_messages_are_cut_not_overflowed(void)
{
    char *id = malloc(9001), *msg = malloc(20001);
    memset(id, 'x', 9000);
    id[9000] = '\0';
    memset(msg, 'm', 20000);
    msg[20000] = '\0';
    char *out = logged(LOG_INFO, id, "short");
    CHECK(out && strlen(out) < LOG_LINE_MAX);
    CHECK(out && strstr(out, "...] short\n") != NULL);
    free(out);
    out = logged(LOG_INFO, id, msg);
    size_t n = out ? strlen(out) : 0;
    CHECK(n > 0 && n <= LOG_LINE_MAX);
    CHECK(n > 7 && strcmp(out + n - 7, " [...]\n") == 0);
    CHECK(out && strchr(out, '\n') == out + n - 1); /* one line */
    free(out);
    free(id);
    free(msg);
}

static void test_below_the_threshold_nothing_is_written(void)
{
    char path[] = "/tmp/sssn-test-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    log_write(LOG_WARN, LOG_DEBUG, "svc", "%s", "hidden");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK(lseek(fd, 0, SEEK_END) == 0);
    close(fd);
    unlink(path);
}

int main(void)
{
    RUN(test_a_plain_line);
    RUN(test_long_ids_and_messages_are_cut_not_overflowed);
    RUN(test_below_the_threshold_nothing_is_written);
    return check_report();
}
