/* test_support.c - what end-to-end specs need to talk to real hosts without a shell (see
 * test_support.h). Every wait runs the host's loop a turn at a time until its event happened
 * or its deadline passed, as sssn.testing.run_for does; nothing here blocks the loop.
 * Children are bounded by the kernel, not by the spec: each gets alarm(limit) (kept across
 * exec, like `timeout`) and PR_SET_PDEATHSIG, so a stuck child cannot outlive the run. */
#include "bind/test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/host.h"
#include "net/http_client.h"
#include "sys/system.h"

#define CALL_MT "sssn.testing.http_call"
#define PROC_MT "sssn.testing.process"
#define TCP_MT "sssn.testing.tcp"
#define TMP_PREFIX "sssn-test."

static host *host_of(lua_State *L) { return vm_of(L)->env->ud; }

static void check_not_in_task(lua_State *L, const char *what)
{
    if (task_current(L))
        luaL_error(L, "sssn.testing.%s runs the loop, so it cannot be called from inside a system task", what);
}

/* ---- running the loop until something happened ---- */

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    *(int *)w->data = 1;
}

/* Runs the loop a turn at a time until *done is set or `timeout` seconds pass; 1 when done. */
static int run_until(host *h, const int *done, double timeout)
{
    if (*done)
        return 1;
    int expired = 0;
    ev_timer t;
    ev_now_update(h->rt->loop);
    ev_timer_init(&t, on_deadline, timeout > 0 ? timeout : 0, 0);
    t.data = &expired;
    ev_timer_start(h->rt->loop, &t);
    while (!*done && !expired)
        ev_run(h->rt->loop, EVRUN_ONCE);
    ev_timer_stop(h->rt->loop, &t);
    return *done;
}

/* ---- HTTP: requests on the host's client ---- */

typedef struct tcall {
    host *h;
    http_call *call;   /* in flight, else NULL */
    int done;
    double timeout;
    long status, connects;
    double seconds;
    char *body;        /* malloc'd, once done */
    size_t len;
    char *error;       /* malloc'd, when no response came */
    char ctype[256];
} tcall;

static void on_call_done(void *ud, const http_client_resp *r)
{
    tcall *c = ud;
    c->call = NULL;
    c->done = 1;
    c->status = r->status;
    c->connects = r->connects;
    c->seconds = r->seconds;
    snprintf(c->ctype, sizeof c->ctype, "%s", r->content_type ? r->content_type : "");
    if (r->error) {
        c->error = strdup(r->error);
        return;
    }
    c->body = malloc(r->len + 1);
    if (c->body) {
        memcpy(c->body, r->body, r->len);
        c->body[r->len] = '\0';
        c->len = r->len;
    }
}

static tcall *check_call(lua_State *L) { return luaL_checkudata(L, 1, CALL_MT); }

static void call_clear(tcall *c)
{
    if (c->call)
        http_client_cancel(c->call);
    c->call = NULL;
    free(c->body);
    free(c->error);
    c->body = c->error = NULL;
}

static int l_call_gc(lua_State *L)
{
    call_clear(check_call(L));
    return 0;
}

/* http_start(method, url, {body=, token=, headers=, timeout=, fresh=}) -> call. headers is a
 * list of "Name: value" lines or a table of name = value. */
static int l_http_start(lua_State *L)
{
    host *h = host_of(L);
    const char *method = luaL_checkstring(L, 1);
    const char *url = luaL_checkstring(L, 2);
    luaL_argcheck(L, strncmp(url, "http://", 7) == 0, 2, "an http:// URL is expected");
    http_client_req req = {.method = method, .url = url, .timeout = 10};
    const char *lines[33] = {NULL};
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "body");
        req.body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &req.len);
        lua_getfield(L, 3, "token");
        req.bearer = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
        lua_getfield(L, 3, "timeout");
        req.timeout = luaL_optnumber(L, -1, 10);
        lua_getfield(L, 3, "fresh");
        req.fresh_connect = lua_toboolean(L, -1);
        lua_getfield(L, 3, "headers");
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            int ht = lua_gettop(L), n = 0;
            lua_pushnil(L);
            while (lua_next(L, ht)) {
                if (n == 32)
                    return luaL_error(L, "sssn.testing.http: at most 32 headers");
                luaL_checkstack(L, 4, "sssn.testing.http");
                if (lua_type(L, -2) == LUA_TNUMBER)
                    lua_pushstring(L, luaL_checkstring(L, -1)); /* a "Name: value" line */
                else
                    lua_pushfstring(L, "%s: %s", luaL_checkstring(L, -2), luaL_checkstring(L, -1));
                lines[n++] = lua_tostring(L, -1);
                lua_insert(L, -3); /* kept on the stack, below the key, until the request is made */
                lua_pop(L, 1);
            }
            req.headers = lines;
        }
    }
    luaL_argcheck(L, req.timeout > 0 && req.timeout <= 3600, 3, "timeout must be in (0, 3600] seconds");
    if (!h->http && !(h->http = http_client_new(h->rt)))
        return luaL_error(L, "sssn.testing.http: cannot start the HTTP client");
    tcall *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->h = h;
    c->timeout = req.timeout;
    luaL_setmetatable(L, CALL_MT);
    c->call = http_client_send(h->http, &req, on_call_done, c);
    if (!c->call)
        return luaL_error(L, "sssn.testing.http: cannot start the request (a header with CR or LF?)");
    return 1;
}

static int l_call_done(lua_State *L)
{
    lua_pushboolean(L, check_call(L)->done);
    return 1;
}

/* call:wait() -> status, body, seconds, content_type, connects | nil, error, seconds */
static int l_call_wait(lua_State *L)
{
    tcall *c = check_call(L);
    check_not_in_task(L, "http");
    /* curl ends the request at its time-out; the extra seconds only bound a stuck loop */
    if (!run_until(c->h, &c->done, c->timeout + 5)) {
        call_clear(c);
        c->done = 1;
        c->error = strdup("sssn.testing.http: no answer within the time-out");
    }
    if (c->error || !c->body) {
        lua_pushnil(L);
        lua_pushstring(L, c->error ? c->error : "out of memory");
        lua_pushnumber(L, c->seconds);
        return 3;
    }
    lua_pushinteger(L, c->status);
    lua_pushlstring(L, c->body, c->len);
    lua_pushnumber(L, c->seconds);
    if (c->ctype[0])
        lua_pushstring(L, c->ctype);
    else
        lua_pushnil(L);
    lua_pushinteger(L, c->connects);
    return 5;
}

/* call:cancel(): a request in flight is dropped; wait() then answers nil, "cancelled" */
static int l_call_cancel(lua_State *L)
{
    tcall *c = check_call(L);
    if (c->call) {
        http_client_cancel(c->call);
        c->call = NULL;
        c->done = 1;
        c->error = strdup("cancelled");
    }
    return 0;
}

/* A raw TCP connection, or the reading end of a child's stdout pipe: read by the loop. */
typedef struct tconn {
    host *h;
    int fd;
    ev_io io;
    strbuf in;     /* received, not yet returned */
    int eof, failed;
    int ready;     /* writable again (send waits for it) */
    int err;       /* errno of a failure */
} tconn;

/* ---- child processes ---- */

typedef struct tproc tproc;

/* One per state that starts processes: the SIGCHLD watcher and the children not yet reaped. */
typedef struct procs {
    host *h;
    ev_signal sigchld;
    tproc *live;
} procs;

struct tproc {
    procs *ps;
    pid_t pid;
    int exited;      /* reaped: status is known */
    int status;      /* waitpid's, once reaped */
    tproc *prev, *next;
};

static const char procs_key = 'p';

static void proc_unlink(tproc *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else if (p->ps->live == p)
        p->ps->live = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* Reaps p if it has exited (never blocks). */
static void proc_reap(tproc *p)
{
    if (p->exited)
        return;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exited = 1;
        p->status = r == p->pid ? st : 0;
        proc_unlink(p);
    }
}

static void on_sigchld(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    procs *ps = w->data;
    for (tproc *p = ps->live, *next; p; p = next) {
        next = p->next;
        proc_reap(p);
    }
}

static int l_procs_gc(lua_State *L)
{
    procs *ps = lua_touserdata(L, 1);
    ev_signal_stop(ps->h->rt->loop, &ps->sigchld);
    return 0;
}

static procs *get_procs(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &procs_key);
    procs *ps = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (ps)
        return ps;
    ps = lua_newuserdatauv(L, sizeof *ps, 0);
    memset(ps, 0, sizeof *ps);
    ps->h = host_of(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_procs_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &procs_key);
    /* watched before the first child starts: a SIGCHLD is never missed */
    ev_signal_init(&ps->sigchld, on_sigchld, SIGCHLD);
    ps->sigchld.data = ps;
    ev_signal_start(ps->h->rt->loop, &ps->sigchld);
    return ps;
}

static tproc *check_proc(lua_State *L) { return luaL_checkudata(L, 1, PROC_MT); }

static int open_input(lua_State *L, int idx)
{
    const char *path = luaL_optstring(L, idx, "/dev/null");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        luaL_error(L, "sssn.testing.start: cannot open %s: %s", path, strerror(errno));
    return fd;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(char **argv, int in, int out, int err, unsigned limit, pid_t parent)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* ignored signals would stay ignored across exec */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the runner is already gone */
    if (limit)
        alarm(limit);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    for (int fd = 0; fd < 3; fd++)
        fcntl(fd, F_SETFD, 0); /* dup2 onto itself keeps close-on-exec */
    if (close_range(3, ~0u, 0) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    execvp(argv[0], argv);
    static const char msg[] = "sssn.testing.start: cannot execute the program\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

static tconn *new_conn(lua_State *L, int fd);

/* start(argv, stdin_path, stdout_path, stderr_path, limit_seconds) -> process[, pipe]. Paths
 * may be nil (/dev/null); stdout_path true makes the child's stdout a pipe whose reading end
 * is the second result (a connection as tcp_connect gives: receive, close); a stderr_path
 * equal to stdout_path sends both to that one file in order, as 2>&1 does. The program is
 * looked up in PATH; the child gets SIGALRM after limit_seconds (default 60; 0 = none). */
static int l_start(lua_State *L)
{
    check_not_in_task(L, "start");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n < 1000, 1, "a list of 1 to 999 strings is expected");
    lua_Number limit = luaL_optnumber(L, 5, 60);
    luaL_argcheck(L, limit >= 0 && limit <= 86400, 5, "the limit must be in [0, 86400] seconds");
    int piped = lua_type(L, 3) == LUA_TBOOLEAN && lua_toboolean(L, 3);
    procs *ps = get_procs(L);
    lua_settop(L, 5);
    char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0); /* freed by the GC */
    luaL_checkstack(L, (int)n + 8, "sssn.testing.start");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i); /* stays on the stack: the string lives until the fork is done */
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            return luaL_argerror(L, 1, "every argument must be a string");
        argv[i - 1] = (char *)lua_tostring(L, -1);
    }
    argv[n] = NULL;
    tproc *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    p->ps = ps;
    p->exited = 1; /* until the fork succeeded: never waitpid(0) or kill(0) */
    luaL_setmetatable(L, PROC_MT);
    tconn *rd = piped ? new_conn(L, -1) : NULL;
    const char *out_path = piped ? NULL : luaL_optstring(L, 3, "/dev/null");
    const char *err_path = luaL_optstring(L, 4, "/dev/null");
    int in = open_input(L, 2);
    int pfd[2] = {-1, -1};
    if (piped && pipe2(pfd, O_CLOEXEC) == 0)
        rd->fd = pfd[0]; /* the connection owns the reading end from here on */
    int out = piped ? pfd[1] : open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = out < 0 ? -1
              : out_path && strcmp(err_path, out_path) == 0 ? fcntl(out, F_DUPFD_CLOEXEC, 3)
              : open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || err < 0) {
        int e = errno;
        close(in);
        if (out >= 0)
            close(out);
        return luaL_error(L, "sssn.testing.start: cannot open its output: %s", strerror(e));
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(argv, in, out, err, (unsigned)limit, parent);
    int e = errno;
    close(in);
    close(out);
    close(err);
    if (pid < 0)
        return luaL_error(L, "sssn.testing.start: fork failed: %s", strerror(e));
    p->pid = pid;
    p->exited = 0;
    p->next = ps->live;
    if (ps->live)
        ps->live->prev = p;
    ps->live = p;
    if (!rd)
        return 1;
    fcntl(rd->fd, F_SETFL, O_NONBLOCK);
    lua_pushvalue(L, -2); /* the process, then its pipe */
    lua_pushvalue(L, -2);
    return 2;
}

static int l_proc_pid(lua_State *L)
{
    lua_pushinteger(L, check_proc(L)->pid);
    return 1;
}

/* The exit code (128 + the signal when one ended it) and the signal, or nothing while running. */
static int push_status(lua_State *L, const tproc *p)
{
    if (!p->exited)
        return 0;
    if (WIFSIGNALED(p->status)) {
        lua_pushinteger(L, 128 + WTERMSIG(p->status));
        lua_pushinteger(L, WTERMSIG(p->status));
        return 2;
    }
    lua_pushinteger(L, WEXITSTATUS(p->status));
    return 1;
}

/* proc:status() -> code[, signal] once it exited, nothing while it runs */
static int l_proc_status(lua_State *L)
{
    tproc *p = check_proc(L);
    proc_reap(p);
    return push_status(L, p);
}

/* proc:wait(seconds) -> code[, signal], or nothing when it still runs after that long */
static int l_proc_wait(lua_State *L)
{
    tproc *p = check_proc(L);
    double secs = luaL_checknumber(L, 2);
    check_not_in_task(L, "wait");
    proc_reap(p);
    run_until(p->ps->h, &p->exited, secs); /* on_sigchld reaps it */
    return push_status(L, p);
}

static const struct { const char *name; int sig; } signals[] = {
    {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"ALRM", SIGALRM},
};

/* proc:kill(sig) -> true, or false when it already exited (a reaped pid is never signalled) */
static int l_proc_kill(lua_State *L)
{
    tproc *p = check_proc(L);
    int sig = -1;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        sig = (int)luaL_checkinteger(L, 2);
    } else {
        const char *name = luaL_optstring(L, 2, "TERM");
        if (strncmp(name, "SIG", 3) == 0)
            name += 3;
        for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
            if (strcmp(signals[i].name, name) == 0)
                sig = signals[i].sig;
    }
    luaL_argcheck(L, sig > 0 && sig < NSIG, 2, "a signal name (TERM, KILL, INT, ...) or number is expected");
    proc_reap(p);
    lua_pushboolean(L, !p->exited && kill(p->pid, sig) == 0);
    return 1;
}

static int l_proc_gc(lua_State *L)
{
    tproc *p = check_proc(L);
    proc_reap(p);
    if (!p->exited) {
        /* dropped while running (the spec forgot to stop it): end it now; reaped if it is
         * already gone, else the runner's exit leaves it to init */
        kill(p->pid, SIGKILL);
        proc_reap(p);
        if (!p->exited) {
            p->exited = 1;
            proc_unlink(p);
        }
    }
    return 0;
}

static int l_proc_tostring(lua_State *L)
{
    tproc *p = check_proc(L);
    lua_pushfstring(L, "process %d (%s)", (int)p->pid, p->exited ? "exited" : "running");
    return 1;
}

/* ---- raw TCP: a connection driven by the loop ---- */

static tconn *check_conn(lua_State *L)
{
    tconn *c = luaL_checkudata(L, 1, TCP_MT);
    if (c->fd < 0)
        luaL_error(L, "sssn.testing.tcp: the connection is closed");
    return c;
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    tconn *c = w->data;
    if (revents & EV_WRITE)
        c->ready = 1;
    if (!(revents & EV_READ))
        return;
    char buf[16384];
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r > 0 && strbuf_append(&c->in, buf, (size_t)r) == 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            c->failed = 1, c->err = ENOMEM;
        } else if (r == 0) {
            c->eof = 1;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->failed = 1, c->err = errno;
        }
        return; /* drained for now */
    }
}

static void conn_watch(tconn *c, int events)
{
    ev_io_stop(c->h->rt->loop, &c->io);
    if (events) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(c->h->rt->loop, &c->io);
    }
}

static void conn_close(tconn *c)
{
    if (c->fd >= 0) {
        ev_io_stop(c->h->rt->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    strbuf_free(&c->in);
}

/* A connection object owning fd (-1: none yet), pushed on the stack; read by the loop. */
static tconn *new_conn(lua_State *L, int fd)
{
    tconn *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->h = host_of(L);
    c->fd = fd;
    c->in = (strbuf)STRBUF_INIT;
    luaL_setmetatable(L, TCP_MT);
    ev_io_init(&c->io, on_conn_io, fd, 0);
    c->io.data = c;
    return c;
}

/* tcp_connect(port[, ipv4 address]) -> connection (the connect completes during the first send) */
static int l_tcp_connect(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    luaL_argcheck(L, port > 0 && port < 65536, 1, "a TCP port is expected");
    const char *addr = luaL_optstring(L, 2, "127.0.0.1");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    luaL_argcheck(L, inet_pton(AF_INET, addr, &sa.sin_addr) == 1, 2, "an IPv4 address is expected");
    tconn *c = new_conn(L, socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (c->fd < 0)
        return luaL_error(L, "sssn.testing.tcp: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* each send its own segment */
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        int e = errno;
        conn_close(c);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot connect to %s:%d: %s", addr, (int)port, strerror(e));
        return 2;
    }
    return 1;
}

/* conn:send(bytes[, timeout]) -> true | nil, error. Returns once every byte is written. */
static int l_tcp_send(lua_State *L)
{
    tconn *c = check_conn(L);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    double timeout = luaL_optnumber(L, 3, 5);
    check_not_in_task(L, "tcp");
    while (off < len) {
        ssize_t w = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN) {
            lua_pushnil(L);
            lua_pushstring(L, strerror(errno));
            return 2;
        }
        c->ready = 0;
        conn_watch(c, EV_WRITE);
        int ok = run_until(c->h, &c->ready, timeout);
        conn_watch(c, 0);
        if (!ok) {
            lua_pushnil(L);
            lua_pushliteral(L, "timed out sending");
            return 2;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:receive([timeout[, until]]) -> bytes, "closed" | "timeout" | "matched" | error: what
 * arrived until the peer closed the connection, the time-out passed, or (with `until`) the
 * bytes received so far contain that plain text. */
static int l_tcp_receive(lua_State *L)
{
    tconn *c = check_conn(L);
    double timeout = luaL_optnumber(L, 2, 5);
    const char *until = luaL_optstring(L, 3, NULL);
    check_not_in_task(L, "tcp");
    int expired = 0, matched = 0;
    ev_timer t;
    ev_now_update(c->h->rt->loop);
    ev_timer_init(&t, on_deadline, timeout > 0 ? timeout : 0, 0);
    t.data = &expired;
    ev_timer_start(c->h->rt->loop, &t);
    conn_watch(c, EV_READ);
    for (;;) {
        matched = until && c->in.data && memmem(c->in.data, c->in.len, until, strlen(until)) != NULL;
        if (matched || c->eof || c->failed || expired)
            break;
        ev_run(c->h->rt->loop, EVRUN_ONCE);
    }
    conn_watch(c, 0);
    ev_timer_stop(c->h->rt->loop, &t);
    lua_pushlstring(L, c->in.data ? c->in.data : "", c->in.len);
    strbuf_reset(&c->in);
    if (matched)
        lua_pushliteral(L, "matched");
    else if (c->failed)
        lua_pushstring(L, strerror(c->err));
    else if (c->eof)
        lua_pushliteral(L, "closed");
    else
        lua_pushliteral(L, "timeout");
    return 2;
}

static int l_tcp_close(lua_State *L)
{
    conn_close(luaL_checkudata(L, 1, TCP_MT));
    return 0;
}

/* ---- temporary directories ---- */

/* tmpdir() -> a fresh directory under $TMPDIR (or /tmp), named sssn-test.XXXXXX */
static int l_tmpdir(lua_State *L)
{
    const char *base = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/" TMP_PREFIX "XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path))
        return luaL_error(L, "sssn.testing.tmpdir: %s", strerror(errno));
    lua_pushstring(L, path);
    return 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* rmtree(dir): removes a directory tmpdir made, with everything in it */
static int l_rmtree(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *slash = strrchr(path, '/');
    luaL_argcheck(L, slash && strncmp(slash + 1, TMP_PREFIX, strlen(TMP_PREFIX)) == 0, 1,
                  "only directories made by sssn.testing.tmpdir are removed");
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static const luaL_Reg funcs[] = {
    {"http_start", l_http_start},
    {"start", l_start},
    {"tcp_connect", l_tcp_connect},
    {"tmpdir", l_tmpdir},
    {"rmtree", l_rmtree},
    {NULL, NULL},
};

static void new_type(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, lua_CFunction tostr)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (tostr) {
        lua_pushcfunction(L, tostr);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

void test_support_register(lua_State *L)
{
    static const luaL_Reg call_methods[] = {
        {"wait", l_call_wait}, {"done", l_call_done}, {"cancel", l_call_cancel}, {NULL, NULL}};
    static const luaL_Reg proc_methods[] = {
        {"pid", l_proc_pid}, {"status", l_proc_status}, {"wait", l_proc_wait}, {"kill", l_proc_kill}, {NULL, NULL}};
    static const luaL_Reg tcp_methods[] = {
        {"send", l_tcp_send}, {"receive", l_tcp_receive}, {"close", l_tcp_close}, {NULL, NULL}};
    new_type(L, CALL_MT, call_methods, l_call_gc, NULL);
    new_type(L, PROC_MT, proc_methods, l_proc_gc, l_proc_tostring);
    new_type(L, TCP_MT, tcp_methods, l_tcp_close, NULL);
    luaL_setfuncs(L, funcs, 0);
}
