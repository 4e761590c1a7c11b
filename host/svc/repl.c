/* repl.c - the interactive prompt (see repl.h). C only moves lines and keystrokes: what a line
 * means (expression or statement, complete or not), running it, printing results, completion
 * and the helpers live in lua/sssn/repl.lua. While a chunk runs, no further input is taken;
 * the prompt comes back when it finishes. */
#include "svc/repl.h"

#include <errno.h>
#include <lauxlib.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys/host.h"
#include "core/log.h"
#include "svc/stdout.h"
#include "core/strbuf.h"
#include "sys/system.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000

typedef struct repl repl;

struct repl {
    host *h;
    vm *vm;
    sssn_system *sys;
    int module_ref;     /* the sssn.repl module table */
    int tty;
    int json;
    ev_io input;
    strbuf inbuf;       /* not a terminal: bytes read, not yet a full line */
    task *running;      /* the chunk in progress, or NULL */
    int starting;       /* inside the chunk's first run (handle_line's task_start) */
    int continuation;   /* the last line left a chunk incomplete */
    int failed;
    int eof;
    int prompt_up;      /* the readline prompt (and the line being typed) is on the screen */
    int in_readline;    /* inside rl_callback_read_char: readline owns the screen */
    char *history_path;
};

/* readline's callbacks carry no context: the one prompt of the process. */
static repl *the_repl;

static void show_prompt(repl *r);
static void feed_lines(repl *r);

/* Calls M[name](args...) from the module in the REPL's main thread, protected; leaves
 * `nres` results (nil on failure). Used for quick calls that never wait. */
static int call_module(repl *r, const char *name, int nargs, int nres)
{
    lua_State *L = r->vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->module_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
        fprintf(stderr, "repl: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_pop(L, 1);
        for (int i = 0; i < nres; i++)
            lua_pushnil(L);
        return -1;
    }
    return 0;
}

static void finish_input(repl *r)
{
    ev_io_stop(r->h->rt->loop, &r->input);
    if (r->tty) {
        rl_callback_handler_remove();
        r->prompt_up = 0;
        if (r->history_path)
            history_truncate_file(r->history_path, HISTORY_MAX);
        printf("\n");
    }
    if (r->continuation) {
        fprintf(stderr, "sssn-host: unexpected end of input in an unfinished chunk\n");
        r->failed = 1;
    }
    systems_stop_all(r->h, "end of input");
}

static void chunk_done(task *t, int ok)
{
    repl *r = t->data;
    lua_State *co = t->co;
    if (!ok || (lua_gettop(co) > 0 && !lua_toboolean(co, -1)))
        r->failed = 1;
    if (!ok && t->cancelled)
        printf("interrupted\n");
    int waited = !r->starting;
    r->running = NULL;
    if (!waited)
        return; /* finished inside handle_line: its caller carries on */
    if (!r->tty)
        feed_lines(r); /* lines that arrived while the chunk ran */
    if (r->running)
        return;
    if (r->eof) {
        finish_input(r);
        return;
    }
    ev_io_start(r->h->rt->loop, &r->input);
    show_prompt(r);
}

/* One line of input: the Lua side answers "more" (incomplete), nothing to run, or a function. */
static void handle_line(repl *r, const char *line)
{
    lua_State *L = r->vm->L;
    lua_pushstring(L, line);
    call_module(r, "line", 1, 1);
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "more") == 0) {
        r->continuation = 1;
        lua_pop(L, 1);
        return;
    }
    r->continuation = 0;
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        r->failed = 1; /* did not compile (already printed) */
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    /* exec(fn) runs the chunk, prints what it returns, and returns whether it succeeded */
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->module_ref);
    lua_getfield(L, -1, "exec");
    lua_remove(L, -2);
    lua_insert(L, -2);
    ev_io_stop(r->h->rt->loop, &r->input);
    task *t = task_new(r->vm, r->sys, r->sys->id, TASK_CALL, 1, chunk_done, r);
    if (t) {
        r->running = t; /* chunk_done clears it; if it waits, chunk_done brings the prompt back */
        r->starting = 1;
        task_start(t);
        r->starting = 0;
    } else {
        r->failed = 1;
    }
    if (!r->running)
        ev_io_start(r->h->rt->loop, &r->input);
}

static void install_handler(repl *r);

static void show_prompt(repl *r)
{
    fflush(stdout);
    if (r->tty)
        install_handler(r);
}

static void on_readline_line(char *line)
{
    repl *r = the_repl;
    if (!line) {
        r->eof = 1;
        if (!r->running)
            finish_input(r);
        return;
    }
    if (*line) {
        add_history(line);
        if (r->history_path)
            append_history(1, r->history_path);
    }
    rl_callback_handler_remove(); /* no prompt while the chunk runs */
    r->prompt_up = 0;
    handle_line(r, line);
    free(line);
    if (!r->running && !r->eof)
        show_prompt(r);
}

static void install_handler(repl *r)
{
    fflush(stdout);
    rl_callback_handler_install(r->continuation ? PROMPT2 : PROMPT, on_readline_line);
    r->prompt_up = 1;
}

/* Output while the prompt is up (a system's print or log line) would land in the middle of
 * the line being typed: stdout.c calls these around each write, so the prompt line is
 * cleared, the output printed, and the prompt with what was typed so far drawn again below. */
static int prompt_hide(void *ud)
{
    repl *r = ud;
    if (!r->prompt_up || r->in_readline)
        return 0;
    rl_clear_visible_line();
    fflush(rl_outstream);
    return 1;
}

static void prompt_show(void *ud)
{
    (void)ud;
    rl_on_new_line();
    rl_redisplay();
}

/* Not a terminal: split what arrives into lines; stop at a chunk that waits. */
static void feed_lines(repl *r)
{
    while (!r->running) {
        char *nl = r->inbuf.data ? memchr(r->inbuf.data, '\n', r->inbuf.len) : NULL;
        if (!nl)
            break;
        *nl = '\0';
        size_t used = (size_t)(nl - r->inbuf.data) + 1;
        char *line = strdup(r->inbuf.data);
        memmove(r->inbuf.data, r->inbuf.data + used, r->inbuf.len - used);
        r->inbuf.len -= used;
        if (!line)
            break;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        handle_line(r, line);
        free(line);
    }
}

static void on_input(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    repl *r = w->data;
    if (r->tty) {
        r->in_readline = 1;
        rl_callback_read_char();
        r->in_readline = 0;
        return;
    }
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (r->inbuf.len > 0 && !r->running)
            strbuf_putc(&r->inbuf, '\n'); /* a last line without its newline */
        feed_lines(r);
        r->eof = 1;
        ev_io_stop(r->h->rt->loop, &r->input);
        if (!r->running)
            finish_input(r);
        return;
    }
    strbuf_append(&r->inbuf, buf, (size_t)n);
    feed_lines(r);
}

/* Completion: the Lua side lists candidates for the word being typed. */
static char **completions;
static size_t ncompletions, next_completion;

static char *completion_generator(const char *text, int state)
{
    (void)text;
    if (state == 0)
        next_completion = 0;
    return next_completion < ncompletions ? strdup(completions[next_completion++]) : NULL;
}

static char **on_complete(const char *text, int start, int end)
{
    (void)end;
    repl *r = the_repl;
    lua_State *L = r->vm->L;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    for (size_t i = 0; i < ncompletions; i++)
        free(completions[i]);
    free(completions);
    completions = NULL;
    ncompletions = 0;
    lua_pushstring(L, text);
    lua_pushlstring(L, rl_line_buffer, (size_t)start);
    call_module(r, "complete", 2, 1);
    if (lua_istable(L, -1)) {
        size_t n = lua_rawlen(L, -1);
        completions = calloc(n + 1, sizeof *completions);
        for (size_t i = 0; completions && i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (lua_isstring(L, -1))
                completions[ncompletions++] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    rl_completion_append_character = '\0';
    return rl_completion_matches(text, completion_generator);
}

static void repl_on_sigint(repl *r)
{
    if (r->running && !r->starting) {
        task_cancel(r->running); /* a chunk waiting (sleep, HTTP, watch()): end it there */
        return;
    }
    call_module(r, "reset", 0, 0);
    r->continuation = 0;
    if (r->tty) {
        rl_free_line_state();
        rl_replace_line("", 0);
        r->prompt_up = 0; /* the ^C ends the line; install_handler draws a fresh prompt */
        printf("^C\n");
        install_handler(r);
    }
}

static int repl_failed(const repl *r) { return r->failed && !r->tty; }

static repl *repl_start(host *h, int json)
{
    repl *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->json = json;
    r->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    r->vm = host_vm_new(h, 0);
    if (!r->vm) {
        free(r);
        return NULL;
    }
    r->vm->interruptible = 1;
    r->vm->watchdog_limit = 0; /* a long computation typed at the prompt is the user's call: Ctrl-C */
    r->sys = system_attach(r->vm, "repl", "REPL");
    if (!r->sys) {
        fprintf(stderr, "sssn-host: cannot start the REPL (is a system called 'repl' running?)\n");
        vm_free(r->vm);
        free(r);
        return NULL;
    }
    r->sys->owns_vm = 1; /* the host frees the REPL's state with its system */
    r->vm->default_owner = r->sys;
    lua_State *L = r->vm->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, "sssn.repl");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "sssn-host: cannot load the REPL: %s\n", lua_tostring(L, -1));
        system_stop(r->sys, NULL);
        free(r);
        return NULL; /* the vm stays with the host's systems list until exit */
    }
    r->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, json);
    lua_pushboolean(L, r->tty);
    call_module(r, "init", 2, 0);

    the_repl = r;
    ev_io_init(&r->input, on_input, STDIN_FILENO, EV_READ);
    r->input.data = r;
    if (r->tty) {
        const char *hist = getenv("SSSN_HISTORY");
        const char *home = getenv("HOME");
        if (hist && *hist)
            r->history_path = strdup(hist);
        else if (home && *home && asprintf(&r->history_path, "%s/.sssn_history", home) < 0)
            r->history_path = NULL;
        using_history();
        stifle_history(HISTORY_MAX);
        if (r->history_path) {
            FILE *f = fopen(r->history_path, "a"); /* append_history needs the file to exist */
            if (f)
                fclose(f);
            read_history(r->history_path);
        }
        rl_readline_name = "sssn";
        rl_instream = stdin;
        rl_outstream = out_terminal(); /* readline draws the prompt itself, past the hooks */
        out_set_prompt(prompt_hide, prompt_show, r);
        rl_catch_signals = 0; /* the host handles SIGINT */
        rl_attempted_completion_function = on_complete;
        rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{(,+-*/%^~#[]";
        install_handler(r);
    }
    ev_io_start(h->rt->loop, &r->input);
    return r;
}

static void repl_free(repl *r)
{
    if (!r)
        return;
    ev_io_stop(r->h->rt->loop, &r->input);
    if (r->tty) {
        rl_callback_handler_remove();
        out_set_prompt(NULL, NULL, NULL);
    }
    for (size_t i = 0; i < ncompletions; i++)
        free(completions[i]);
    free(completions);
    completions = NULL;
    ncompletions = 0;
    strbuf_free(&r->inbuf);
    free(r->history_path);
    the_repl = NULL;
    free(r); /* the vm and its system belong to the host's systems list; freed with the host */
}

/* ---- the prompt as a service ---- */

typedef struct repl_service {
    host *h;
    int json;
    repl *r;
    int done;   /* its input ended (the host stops) */
} repl_service;

static int service_start(service *svc, char *err, size_t errlen)
{
    repl_service *rs = svc->impl;
    rs->r = repl_start(rs->h, rs->json);
    if (!rs->r) {
        snprintf(err, errlen, "the prompt could not open (see above)");
        return -1;
    }
    return 0;
}

static int service_on_signal(service *svc, int signum)
{
    repl_service *rs = svc->impl;
    if (signum != SIGINT || !rs->r)
        return 0;
    repl_on_sigint(rs->r);
    return 1;
}

static void service_free(service *svc)
{
    repl_free(((repl_service *)svc->impl)->r);
    free(svc->impl);
    free(svc);
}

static int service_keeps_running(const service *svc) { return ((const repl_service *)svc->impl)->r != NULL; }

static int service_exit_status(const service *svc)
{
    const repl_service *rs = svc->impl;
    return rs->r && repl_failed(rs->r) ? 1 : 0;
}

service *repl_service_new(host *h, int json)
{
    service *svc = calloc(1, sizeof *svc);
    repl_service *rs = calloc(1, sizeof *rs);
    if (!svc || !rs) {
        free(svc);
        free(rs);
        return NULL;
    }
    rs->h = h;
    rs->json = json;
    *svc = (service){.name = "prompt", .start = service_start, .on_signal = service_on_signal,
                     .free = service_free, .keeps_running = service_keeps_running,
                     .exit_status = service_exit_status, .takes_sigint = 1, .impl = rs};
    return svc;
}
