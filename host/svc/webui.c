/* webui.c - see webui.h. A handful of small files, looked up by name in an array: the page
 * loads five of them once. */
#include "svc/webui.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES 64
#define MAX_FILE_BYTES ((size_t)4 << 20)

typedef struct web_file {
    char *name;
    const char *content_type;
    char *body;
    size_t len;
} web_file;

struct webui {
    web_file files[MAX_FILES];
    size_t count;
};

static const char HEADERS[] = "Content-Security-Policy: " WEBUI_CSP "\r\n"
                              "X-Content-Type-Options: nosniff\r\n"
                              "Referrer-Policy: no-referrer\r\n"
                              "Cache-Control: no-cache\r\n";

/* The type of a file by its extension, or NULL for one the page has no use for. */
static const char *content_type_of(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".ico", "image/x-icon"},
        {".json", "application/json"},         {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

static int read_whole(const char *path, char **body, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_FILE_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        errno = buf ? EFBIG : ENOMEM;
        return -1;
    }
    *body = buf;
    *len = n;
    return 0;
}

void webui_free(webui *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->files[i].name);
        free(w->files[i].body);
    }
    free(w);
}

webui *webui_load(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
        return NULL;
    }
    webui *w = calloc(1, sizeof *w);
    int failed = !w;
    if (failed)
        snprintf(err, errlen, "out of memory");
    struct dirent *e;
    while (!failed && (e = readdir(d))) {
        const char *type = content_type_of(e->d_name);
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || !type || snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (w->count == MAX_FILES) {
            snprintf(err, errlen, "%s holds more than %d files", dir, MAX_FILES);
            failed = 1;
            break;
        }
        web_file *f = &w->files[w->count];
        if (read_whole(path, &f->body, &f->len) < 0 || !(f->name = strdup(e->d_name))) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            free(f->body);
            failed = 1;
            break;
        }
        f->content_type = type;
        w->count++;
    }
    closedir(d);
    if (!failed) {
        int has_index = 0;
        for (size_t i = 0; i < w->count; i++)
            has_index |= strcmp(w->files[i].name, "index.html") == 0;
        if (!has_index) {
            snprintf(err, errlen, "%s holds no index.html", dir);
            failed = 1;
        }
    }
    if (failed) {
        webui_free(w);
        return NULL;
    }
    return w;
}

int webui_answer(const webui *w, http_request *r)
{
    if (!w || (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0))
        return 0;
    const char *name = strcmp(r->path, "/") == 0           ? "index.html"
                       : strncmp(r->path, "/ui/", 4) == 0 ? r->path + 4
                                                          : NULL;
    if (!name)
        return 0;
    for (size_t i = 0; i < w->count; i++) {
        const web_file *f = &w->files[i];
        if (strcmp(f->name, name) == 0) {
            http_respond_with(r, 200, f->content_type, HEADERS, f->body, f->len);
            return 1;
        }
    }
    if (name == r->path + 4) { /* under /ui/ but none of the files: public, so 404 for anyone */
        static const char body[] = "{\"detail\":\"no such file of the dashboard\","
                                   "\"error\":{\"type\":\"not_found\",\"message\":\"no such file of the dashboard\"}}";
        http_respond_with(r, 404, "application/json", HEADERS, body, sizeof body - 1);
        return 1;
    }
    return 0;
}
