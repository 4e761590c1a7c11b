/* repl.h - the interactive Lua prompt on the host's loop (`sssn-host repl [URL]`, `-i`).
 * Input is read by a libev watcher on stdin (readline's callback interface on a terminal,
 * plain lines otherwise), so systems keep ticking while someone types; each chunk runs as a
 * task in the REPL's own Lua state, so registry and channel calls yield like anywhere else. */
#ifndef SSSN_REPL_H
#define SSSN_REPL_H

struct host;
typedef struct repl repl;

/* json: print each result as one JSON line. Returns NULL (with a message on stderr) on failure. */
repl *repl_start(struct host *h, int json);
void repl_on_sigint(repl *r);   /* Ctrl-C: interrupt the running chunk, or clear the line */
int repl_failed(const repl *r); /* without a terminal: whether any chunk failed (exit status 1) */
void repl_free(repl *r);

#endif
