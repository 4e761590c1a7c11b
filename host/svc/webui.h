/* webui.h - the dashboard's files (web/): read from their directory once, when the API starts,
 * and served from memory at GET / (index.html) and GET /ui/<file>, with a Content-Security-
 * Policy that allows no inline script or style. They need no credential: the page asks for
 * a token itself, and every call it makes to the API carries it. */
#ifndef SSSN_WEBUI_H
#define SSSN_WEBUI_H

#include <stddef.h>

#include "net/http_server.h"

typedef struct webui webui;

/* The files of dir (a flat directory; dot files and subdirectories are left out). NULL with
 * the reason in err when dir cannot be read, holds no index.html, or too much. */
webui *webui_load(const char *dir, char *err, size_t errlen);
/* Answers GET and HEAD of / and /ui/<file> when w holds the file: 1 when it answered r. */
int webui_answer(const webui *w, http_request *r);
void webui_free(webui *w);

/* The headers every file goes with (also for tests). */
#define WEBUI_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

#endif
