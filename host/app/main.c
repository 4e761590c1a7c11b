/* main.c - command-line parsing and start-up: `sssn-host [options] SCRIPT...` runs systems,
 * `sssn-host test [busted args]` runs the specs inside the host. Everything else lives in
 * the host modules. */
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "svc/api.h"
#include "sys/host.h"
#include "sys/regbackend.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "core/jwt.h"
#include "core/log.h"
#include "svc/auth.h"
#include "svc/repl.h"
#include "svc/stdout.h"
#include "sys/system.h"

static const char usage_text[] =
    "usage: sssn-host [options] SCRIPT...\n"
    "       sssn-host [options] (--listen [ADDR:]PORT | -e CHUNK | -i) [SCRIPT...]\n"
    "       sssn-host repl [URL] [--json] [--token-file FILE]\n"
    "       sssn-host test [busted options] [SPEC_DIR_OR_FILE...]\n"
    "       sssn-host run FILE [ARG...]\n"
    "       sssn-host token --sub ID --role ROLE [--channels A,B] [--ttl S] --jwt-secret-file FILE\n"
    "       sssn-host token --static --sub ID --role ROLE [--channels A,B]\n"
    "\n"
    "Runs each SCRIPT as a system: a Lua 5.4 file that returns sssn.system{...} or defines\n"
    "global setup/step functions. Systems share this host's channels and service registry.\n"
    "\n"
    "Options may come before or after the SCRIPTs (--name=value works too); after -- every\n"
    "argument is a SCRIPT. `test` and `run` hand all their arguments on untouched.\n"
    "\n"
    "options:\n"
    "  --listen [ADDR:]PORT serve the HTTP API (channels, registry, /health, /metrics); ADDR is a\n"
    "                      host name, an IPv4 address or [IPv6] ([::1]:7400); a bare PORT binds\n"
    "                      127.0.0.1; PORT 0 picks a free port. An address other than loopback\n"
    "                      needs --jwt-secret-file or --auth-file, or --insecure\n"
    "  --insecure          serve --listen on a non-loopback address without authentication\n"
    "  --jwt-secret-file FILE  with --listen: every request needs Authorization: Bearer <JWT>, an\n"
    "                      HS256 token signed with FILE's bytes (one trailing newline stripped)\n"
    "                      with claims sub, role (read, write, admin), exp and optionally channels\n"
    "  --auth-file FILE    with --listen: every request needs a Bearer token listed in FILE, one\n"
    "                      'sha256:<hex> SUBJECT ROLE [CHANNEL,...]' a line (# comments); with\n"
    "                      --jwt-secret-file too, a token not listed there must be a valid JWT\n"
    "  --advertise URL     the URL other hosts reach this one at (default http://ADDR:PORT, or\n"
    "                      https:// with --tls-cert; for 0.0.0.0 or [::], this machine's host name)\n"
    "  --registry URL      use the registry of the host at URL (http:// or https://; a host started\n"
    "                      with --listen) instead of this host's own: systems register there and\n"
    "                      find each other there; or an etcd cluster's, shared by a fleet of hosts:\n"
    "                      etcd://HOST:PORT[,HOST:PORT...] (etcd+https:// with TLS);\n"
    "                      add --listen too, or other hosts cannot reach this host's channels\n"
    "  --etcd-prefix P     the keys of an etcd registry: P/channels/ID, P/systems/ID (default /sssn)\n"
    "  --etcd-user NAME    with --etcd-password-file: log in to an etcd registry with auth enabled\n"
    "  --etcd-password-file FILE  the etcd user's password (the file's one line)\n"
    "  --data-dir DIR      keep durable channels (durable = true) in DIR, a SQLite file each\n"
    "                      (DIR is made if missing, mode 0700); without it a durable channel is refused\n"
    "  --sync full|normal  when a durable write counts as committed: full (default) syncs the\n"
    "                      disk at every commit, so it survives a power loss; normal syncs at\n"
    "                      checkpoints only: it survives the process dying (kill -9), and a power\n"
    "                      loss or an OS crash may take the last commits\n"
    "  --token-file FILE   the credential (a JWT or a static token) this host sends as its Bearer\n"
    "                      to other hosts: the --registry host and remote channels (repl too)\n"
    "  --tls-cert FILE     with --tls-key: serve the API over HTTPS with this PEM certificate (chain)\n"
    "  --tls-key FILE      the certificate's PEM private key\n"
    "  --ca-file FILE      trust the PEM CA certificates in FILE (instead of the system's) for\n"
    "                      https:// URLs: --registry, remote channels, repl; peers are always verified\n"
    "  --max-connections N open API connections at most (default 1024); more are closed at once\n"
    "  --max-connections-per-address N\n"
    "                      open API connections from one client address at most (default 128)\n"
    "  --request-timeout S seconds a client has to send a whole request, headers and body (default\n"
    "                      10); past it: 408 and the connection is closed\n"
    "  -e CHUNK            run the Lua CHUNK first, as an inline script: a system if it defines\n"
    "                      one (setup/step or return sssn.system{...}), else just run once;\n"
    "                      up to 16, run in order, as systems e1, e2, ...\n"
    "  -i                  open a Lua prompt in this host while its systems run\n"
    "  --json              with -i or repl: print each result as one line of JSON\n"
    "  --duration S        stop every system after S seconds (default: run until SIGINT/SIGTERM)\n"
    "  --ttl S             default registration TTL in seconds (default 300)\n"
    "  --maintenance S     purge expired registry entries every S seconds (default 30)\n"
    "  --memory-limit N    cap each system's memory at N bytes: its Lua heap and the logs of the\n"
    "                      channels it owns (suffix K, M or G; default 64M; 0 or none: no cap);\n"
    "                      at least what an idle system needs (measured at start-up, about 65K)\n"
    "  --max-message-size N  refuse a message larger than N bytes (default 1M; at most 1G)\n"
    "  --channel-bytes N   byte budget of each channel: past it a channel drops its oldest, a work\n"
    "                      queue refuses (default 64M; at least --max-message-size)\n"
    "  --max-read-bytes N  an HTTP read answers at most N bytes, then says \"more\" (default 8M;\n"
    "                      at least --max-message-size)\n"
    "  --step-timeout S    interrupt a step that runs S seconds without yielding (default 10, 0 = off)\n"
    "  --log-level L       error, warn, info or debug (default info; warn for repl and test)\n"
    "  --registry-max-entries N      entries this host's registry holds at most (default\n"
    "                      1000000, 0 = no bound); registering past it answers 429\n"
    "  --registry-max-per-subject N  entries one HTTP caller (subject) may hold (default 10000)\n"
    "  --registry-max-ttl S          longest TTL an HTTP registration may ask for (default 86400)\n"
    "  --version           print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Each S is a number of seconds, 0.001 <= S < 1e9 (or 0 for --step-timeout).\n"
    "\n"
    "`sssn-host repl [URL]` opens a Lua prompt against the registry of the host at URL (one\n"
    "started with --listen), or against a fresh in-process registry without URL. Without a\n"
    "terminal it reads all of standard input and exits 1 if any chunk failed.\n"
    "\n"
    "`sssn-host test` runs busted specs (default directory: spec) with the sssn module, the\n"
    "host's loop and a controllable test clock; it ends with one line \"N passed, N failed\".\n"
    "\n"
    "`sssn-host run FILE [ARG...]` runs a driver script with the testing API (sssn.testing:\n"
    "spawn systems, run the loop, control the clock), the ARGs in its ... and arg as with lua;\n"
    "the benchmarks (make bench) use it.\n"
    "\n"
    "`sssn-host token` prints a credential for a host started with --jwt-secret-file or\n"
    "--auth-file: a JWT signed with FILE (valid --ttl S seconds, default 86400); or with\n"
    "--static a fresh random token on line 1 and its --auth-file line on line 2. --channels\n"
    "limits it to those channels (default: every channel).\n"
    "\n"
    "Exit status:\n"
    "  0  every SCRIPT and -e chunk loaded, and the host stopped (--duration, SIGINT/SIGTERM,\n"
    "     every system stopped, end of the prompt's input); test and run: all passed / no error\n"
    "  1  a SCRIPT or -e chunk failed to load (the others still ran), no system could start,\n"
    "     the host could not start (e.g. --listen could not bind), a spec failed, the driver\n"
    "     raised, or a chunk failed at a prompt without a terminal\n"
    "  2  a usage error: an unknown option or a bad value (nothing was started)\n"
    "  3  otherwise as 0, but the host stopped because its standard output was closed (EPIPE,\n"
    "     as in sssn-host ... | head): the systems stopped and deregistered as on SIGTERM\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sssn-host: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'sssn-host --help'.\n");
    va_end(ap);
    return 2;
}

/* Every option that takes seconds accepts 0.001 or more and less than 1e9: the registry API's
 * upper bound for a TTL (check_ttl in lua_sssn.c, lua/sssn/registry.lua; the HTTP API's ?ttl=
 * takes 0.001 to 1e9 too), and a floor that keeps a timer (a TTL's refresh, maintenance, the
 * watchdog) from firing back to back. --step-timeout also takes 0, meaning off. */
#define SECONDS_MIN 0.001
#define SECONDS_MAX 1e9

static int parse_seconds(const char *s, double *out, int zero_is_off)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isspace((unsigned char)*s))
        return -1;
    if (!(zero_is_off && v == 0) && !(v >= SECONDS_MIN && v < SECONDS_MAX)) /* NaN fails too */
        return -1;
    *out = v;
    return 0;
}

static int seconds_error(const char *option, const char *val, int zero_is_off)
{
    return usage_error("%s wants %sa number of seconds between 0.001 and 1e9 (0.001 <= S < 1e9), not '%s'",
                       option, zero_is_off ? "0 (off) or " : "", val);
}

/* --token-file: the file's content, surrounding whitespace stripped, is the credential. Into
 * *out (malloc'd), or -1 with why in err (the file is read before anything starts). */
/* --data-dir: made (with its parents) when missing, mode 0700; it must be a directory the host
 * can write. 0, or -1 with the reason in err. */
static int make_data_dir(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "is too long a path");
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot make %s: %s", dir, path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot make it: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is not a directory", dir);
        return -1;
    }
    if (access(path, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "%s: cannot write there: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int read_credential(const char *path, const char *what, char **out, char *err, size_t errlen)
{
    enum { MAX_FILE = 64 * 1024 };
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || rerr || n > MAX_FILE) {
        if (rerr)
            snprintf(err, errlen, "cannot read '%s': %s", path, strerror(rerr));
        else
            snprintf(err, errlen, !buf ? "out of memory reading '%s'" : "'%s' is larger than 64 KiB: it should "
                     "hold one token", path);
        free(buf);
        return -1;
    }
    size_t start = 0, end = n;
    while (start < end && isspace((unsigned char)buf[start]))
        start++;
    while (end > start && isspace((unsigned char)buf[end - 1]))
        end--;
    size_t len = end - start;
    int rc = -1;
    if (len == 0) {
        snprintf(err, errlen, "'%s' is empty: it should hold %s", path, what);
    } else if (len > HTTP_CLIENT_MAX_BEARER) {
        snprintf(err, errlen, "%s in '%s' is %zu bytes; at most %d can be sent", what, path, len,
                 HTTP_CLIENT_MAX_BEARER);
    } else {
        size_t bad = start;
        while (bad < end && (unsigned char)buf[bad] > ' ' && buf[bad] != 0x7f)
            bad++;
        if (bad < end)
            snprintf(err, errlen, "'%s' has %s at byte %zu inside %s: it should hold it on one line, alone%s",
                     path, buf[bad] == '\n' ? "a newline" : buf[bad] == ' ' ? "a space"
                     : "a control character", bad + 1, what,
                     len > 7 && strncasecmp(buf + start, "Bearer ", 7) == 0 ? " (the token alone, without 'Bearer')"
                     : "");
        else if ((*out = malloc(len + 1))) {
            memcpy(*out, buf + start, len);
            (*out)[len] = '\0';
            rc = 0;
        } else {
            snprintf(err, errlen, "out of memory reading '%s'", path);
        }
    }
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}

/* An http:// or https:// URL with a host part, nothing that would cut a request line short. */
static int valid_http_url(const char *s)
{
    size_t n = strncmp(s, "https://", 8) == 0 ? 8 : 7;
    if ((n == 7 && strncmp(s, "http://", 7) != 0) || s[n] == '\0' || s[n] == '/' || s[n] == ':')
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* A count 1 <= N <= 1000000 (connections). */
static int parse_connections(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < 1 || v > 1000000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) /* strtoull would take " 5", "+5" and "-5" */
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024ULL, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024ULL * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024ULL * 1024 * 1024, end++;
    if (*end || v == 0 || v > (unsigned long long)SIZE_MAX / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

/* The least --memory-limit a system can start under, measured in this build rather than
 * guessed: the smallest cap, to the KiB, under which a fresh state opens its libraries, loads
 * the sssn module, builds a system from global functions as a script's is built, and runs a
 * step in a coroutine as the host runs steps. Lua collects garbage in full before it refuses
 * an allocation, so this is the peak of live memory a cap has to hold. */
static const char probe_chunk[] = "local sssn = require 'sssn'\n"
                                  "function step(self, dt) end\n"
                                  "local s = sssn.system_from_globals('probe')\n"
                                  "coroutine.wrap(function() s:step(0) end)()\n";

static int probe_fits(host *h, size_t limit)
{
    int level = h->rt->log_level;
    h->rt->log_level = -1; /* a probe that does not fit is no error to report */
    vm *v = host_vm_new(h, limit);
    h->rt->log_level = level;
    if (!v)
        return 0;
    int ok = luaL_loadbufferx(v->L, probe_chunk, sizeof probe_chunk - 1, "=probe", "t") == LUA_OK &&
             lua_pcall(v->L, 0, 0, 0) == LUA_OK;
    vm_free(v);
    return ok;
}

/* 0 when even 16 MiB is not enough (something else is wrong: let the systems report it). */
static size_t measure_memory_floor(host *h)
{
    size_t lo = 0, hi = 16u << 10; /* in KiB: lo does not fit, hi does */
    if (!probe_fits(h, hi << 10))
        return 0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (probe_fits(h, mid << 10))
            hi = mid;
        else
            lo = mid;
    }
    return hi << 10;
}

/* A count of things: digits only; 0 means no bound. */
static int parse_count(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* "[ADDR:]PORT": ADDR a host name, an IPv4 address or an IPv6 address in brackets
 * ("[::1]:7400"); a bare PORT binds 127.0.0.1, and so does localhost (which may resolve to ::1
 * first). addr gets ADDR without brackets. -1 when malformed, with *hint set when there is
 * more to say. */
static int parse_listen(const char *s, char *addr, size_t addrlen, int *port, const char **hint)
{
    const char *name = NULL, *p = s;
    size_t n = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            *hint = "an IPv6 address in brackets needs a port after it: [::1]:7400";
            return -1;
        }
        name = s + 1;
        n = (size_t)(close - name);
        p = close + 2;
    } else if (strchr(s, ':')) {
        const char *colon = strrchr(s, ':');
        if (strchr(s, ':') != colon) {
            *hint = "IPv6 addresses go in brackets: [::1]:7400";
            return -1;
        }
        name = s;
        n = (size_t)(colon - s);
        p = colon + 1;
    }
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 || atoi(p) > 65535)
        return -1;
    if (name && (n == 0 || n >= addrlen))
        return -1;
    if (name) {
        memcpy(addr, name, n);
        addr[n] = '\0';
    }
    if (!name || strcmp(addr, "localname") == 0)
        snprintf(addr, addrlen, "127.0.0.1");
    *port = atoi(p);
    return 0;
}

static int is_lua_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/sssn/init.lua", dir);
    return stat(path, &st) == 0;
}

/* The Lua half of the module: beside the binary in a source tree (./lua), in the install
 * tree relative to the binary (../share/sssn-host/lua, so DESTDIR installs work), or the
 * install path compiled in. */
static const char *find_lua_dir(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const rel[] = {"lua", "../share/sssn-host/lua"};
            for (size_t k = 0; k < 2; k++) {
                int w = snprintf(buf, size, "%.3000s/%s", exe, rel[k]);
                if (w > 0 && (size_t)w < size && is_lua_dir(buf))
                    return buf;
            }
        }
    }
    snprintf(buf, size, "%s", SSSN_LUA_DIR);
    return is_lua_dir(buf) ? buf : NULL;
}

/* The dashboard's files (web/) sit beside the Lua module's directory, in a source tree and
 * installed alike: DIR/lua and DIR/web. */
static const char *web_dir(const char *lua_dir, char *buf, size_t size)
{
    const char *slash = lua_dir ? strrchr(lua_dir, '/') : NULL;
    if (!slash || snprintf(buf, size, "%.*s/web", (int)(slash - lua_dir), lua_dir) >= (int)size)
        return NULL;
    return buf;
}

static int run_tests(app *a, int argc, char **argv)
{
    host *h = a->h;
    vm *v = host_vm_new(h, 0);
    if (!v)
        return 1;
    lua_State *L = v->L;
    int status = 1;
    lua_getglobal(L, "require");
    lua_pushstring(L, "sssn.test_runner");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "sssn-host test: %s\n", lua_tostring(L, -1));
        goto done;
    }
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "sssn-host test: %s\n", lua_tostring(L, -1));
        goto done;
    }
    status = (int)lua_tointeger(L, -1);
done:
    systems_stop_all(h, "tests finished");
    vm_free(v); /* before the host: finalizers in the specs' state may still call the host */
    app_free(a);
    return status;
}

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

/* `sssn-host run FILE ARG...`: FILE runs in a state with sssn.testing; as with `lua`, the ARGs
 * are its `...` and arg[1..n], arg[0] is FILE. */
static int run_driver(app *a, int argc, char **argv)
{
    host *h = a->h;
    if (argc < 1) {
        app_free(a);
        return usage_error("%s", "run needs a FILE");
    }
    vm *v = host_vm_new(h, 0);
    if (!v) {
        app_free(a);
        return 1;
    }
    lua_State *L = v->L;
    if (!lua_checkstack(L, argc + 2)) {
        fprintf(stderr, "sssn-host run: too many arguments\n");
        vm_free(v);
        app_free(a);
        return 1;
    }
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");
    int status = 1;
    lua_pushcfunction(L, traceback);
    int base = lua_gettop(L);
    int loaded = luaL_loadfilex(L, argv[0], "t") == LUA_OK;
    for (int i = 1; loaded && i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (!loaded || lua_pcall(L, argc - 1, 0, base) != LUA_OK)
        fprintf(stderr, "sssn-host run: %s\n", lua_tostring(L, -1));
    else
        status = 0;
    systems_stop_all(h, "driver finished");
    vm_free(v);
    app_free(a);
    return status;
}

/* A comma-separated list of channel ids (--channels) into ids[] (pointers into buf): the count,
 * or -1 with the problem in why. */
static int split_channels(char *buf, char **ids, int max, int no_space, char *why, size_t size)
{
    int n = 0;
    for (char *item = buf;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        const char *problem = sssn_id_problem(item, strlen(item));
        if (!problem && no_space && strpbrk(item, " \t"))
            problem = "contains a space (an --auth-file line separates its fields with spaces)";
        if (problem) {
            snprintf(why, size, "channel '%.64s' %s", item, problem);
            return -1;
        }
        if (n == max) {
            snprintf(why, size, "more than %d channels", max);
            return -1;
        }
        ids[n++] = item;
        if (!comma)
            return n;
        item = comma + 1;
    }
}

/* --name=value is --name value: copies the name into buf, points *arg at it and *val at the
 * value, and returns 1; 0 for an argument without '=' (left as it is); -1 when the name does
 * not fit buf (no option is that long). */
static int split_inline_value(const char **arg, char *buf, size_t size, const char **val)
{
    const char *a = *arg, *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (!eq)
        return 0;
    size_t n = (size_t)(eq - a);
    if (n >= size)
        return -1;
    memcpy(buf, a, n);
    buf[n] = '\0';
    *arg = buf;
    *val = eq + 1;
    return 1;
}

#define TOKEN_CHANNELS_MAX 256

/* `sssn-host token ...`: prints a JWT signed with --jwt-secret-file, or with --static a random
 * token and the --auth-file line that lists it. */
static int run_token(int argc, char **argv)
{
    const char *sub = NULL, *role_arg = NULL, *channels_arg = NULL, *secret_file = NULL, *ttl_arg = NULL;
    int is_static = 0;
    double ttl = 86400;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char name[32];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int inline_val = split_inline_value(&a, name, sizeof name, &val);
        if (inline_val < 0)
            return usage_error("token: unknown option '%s'", a);
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--static") == 0) {
            if (inline_val)
                return usage_error("token: option '--static' takes no value");
            is_static = 1;
            continue;
        }
        const char **slot = strcmp(a, "--sub") == 0             ? &sub
                            : strcmp(a, "--role") == 0          ? &role_arg
                            : strcmp(a, "--channels") == 0      ? &channels_arg
                            : strcmp(a, "--ttl") == 0           ? &ttl_arg
                            : strcmp(a, "--jwt-secret-file") == 0 ? &secret_file
                                                                : NULL;
        if (!slot)
            return usage_error("token: unknown %s '%s'", a[0] == '-' ? "option" : "argument", argv[i]);
        if (!val)
            return usage_error("token: option '%s' needs a value", a);
        if (!inline_val)
            i++;
        *slot = val;
    }
    if (!sub)
        return usage_error("token needs --sub ID (the subject the token names)");
    const char *problem = sssn_id_problem(sub, strlen(sub));
    if (!problem && is_static && strpbrk(sub, " \t"))
        problem = "contains a space (an --auth-file line separates its fields with spaces)";
    if (problem)
        return usage_error("token: --sub %s", problem);
    if (!role_arg)
        return usage_error("token needs --role read, write or admin");
    int role = jwt_role_parse(role_arg, strlen(role_arg));
    if (!role)
        return usage_error("token: --role wants read, write or admin, not '%s'", role_arg);
    if (ttl_arg && parse_seconds(ttl_arg, &ttl, 0) < 0)
        return seconds_error("--ttl", ttl_arg, 0);
    char *chan_buf = NULL, *ids[TOKEN_CHANNELS_MAX];
    int nids = -1;
    if (channels_arg) {
        char why[160];
        if (!(chan_buf = strdup(channels_arg)))
            return 1;
        if ((nids = split_channels(chan_buf, ids, TOKEN_CHANNELS_MAX, is_static, why, sizeof why)) < 0) {
            free(chan_buf);
            return usage_error("token: --channels wants channel ids separated by commas: %s", why);
        }
    }
    int status = 0;
    if (is_static) {
        if (secret_file || ttl_arg) {
            free(chan_buf);
            return usage_error("token --static makes a token for --auth-file: it takes no %s",
                               secret_file ? "--jwt-secret-file" : "--ttl (static tokens do not expire)");
        }
        char token[65], hex[65];
        if (jwt_random_hex(token, 32) < 0 || auth_token_sha256_hex(token, strlen(token), hex) < 0) {
            fprintf(stderr, "sssn-host token: no random bytes (OpenSSL's RAND_bytes failed)\n");
            free(chan_buf);
            return 1;
        }
        printf("%s\nsha256:%s %s %s", token, hex, sub, jwt_role_name(role));
        for (int k = 0; k < nids; k++)
            printf("%c%s", k ? ',' : ' ', ids[k]);
        printf("\n");
        free(chan_buf);
        return 0;
    }
    if (!secret_file) {
        free(chan_buf);
        return usage_error("token needs --jwt-secret-file FILE (or --static for an --auth-file token)");
    }
    unsigned char *secret;
    size_t secret_len;
    int loose;
    char err[512];
    if (auth_secret_read(secret_file, &secret, &secret_len, &loose, err, sizeof err) < 0) {
        free(chan_buf);
        fprintf(stderr, "sssn-host token: --jwt-secret-file %s\n", err);
        return 2;
    }
    if (loose)
        fprintf(stderr, "sssn-host token: warning: --jwt-secret-file %s can be read by group or others: "
                        "chmod 600 it\n", secret_file);
    strbuf out = STRBUF_INIT;
    if (jwt_mint(secret, secret_len, sub, role, ev_time() + ttl, nids >= 0 ? (const char *const *)ids : NULL,
                 nids >= 0 ? (size_t)nids : 0, &out, err, sizeof err) < 0) {
        fprintf(stderr, "sssn-host token: %s\n", err);
        status = 1;
    } else {
        printf("%s\n", out.data);
    }
    strbuf_free(&out);
    OPENSSL_cleanse(secret, secret_len);
    free(secret);
    free(chan_buf);
    return status;
}

/* The API's authentication stage from --jwt-secret-file and --auth-file (NULL: the open stage).
 * 0, or the exit status (2: a file that cannot be used, said on stderr). Logs what it chose. */
static int make_auth_stage(host *h, const char *jwt_file, const char *auth_file, int listening, auth_stage **out)
{
    *out = NULL;
    if (!jwt_file && !auth_file)
        return 0;
    char err[512];
    auth_stage *jwt = NULL;
    if (jwt_file) {
        unsigned char *secret;
        size_t len;
        int loose;
        if (auth_secret_read(jwt_file, &secret, &len, &loose, err, sizeof err) < 0) {
            fprintf(stderr, "sssn-host: --jwt-secret-file %s\n", err);
            return 2;
        }
        if (loose)
            host_log(h, LOG_WARN, NULL, "--jwt-secret-file %s can be read by group or others: chmod 600 it",
                     jwt_file);
        if (len < 32)
            host_log(h, LOG_WARN, NULL, "the secret in %s is %zu bytes; HS256 wants at least 32 random ones "
                                        "(openssl rand -hex 32 > FILE)", jwt_file, len);
        jwt = auth_jwt_new(secret, len);
        OPENSSL_cleanse(secret, len);
        free(secret);
        if (!jwt)
            return 1;
    }
    auth_stage *stage = jwt;
    size_t count = 0;
    if (auth_file && !(stage = auth_static_load(auth_file, jwt, &count, err, sizeof err))) {
        fprintf(stderr, "sssn-host: --auth-file %s\n", err);
        return 2;
    }
    if (auth_file && count == 0)
        host_log(h, LOG_WARN, NULL, "--auth-file %s lists no tokens%s", auth_file,
                 jwt ? "" : ": no request will be let through");
    if (!listening) {
        host_log(h, LOG_WARN, NULL, "%s%s%s protect%s the HTTP API, and without --listen there is none: "
                 "checked, not used", jwt_file ? "--jwt-secret-file" : "", jwt_file && auth_file ? " and " : "",
                 auth_file ? "--auth-file" : "", jwt_file && auth_file ? "" : "s");
        stage->free(stage);
        return 0;
    }
    if (jwt_file && auth_file)
        host_log(h, LOG_INFO, NULL, "HTTP API authentication: %zu static token%s from %s, then HS256 JWTs "
                 "signed with %s", count, count == 1 ? "" : "s", auth_file, jwt_file);
    else if (jwt_file)
        host_log(h, LOG_INFO, NULL, "HTTP API authentication: HS256 JWTs signed with %s", jwt_file);
    else
        host_log(h, LOG_INFO, NULL, "HTTP API authentication: %zu static token%s from %s", count,
                 count == 1 ? "" : "s", auth_file);
    *out = stage;
    return 0;
}

/* Options may come anywhere among the SCRIPTs, as GNU tools take them; `--` ends them. The
 * SCRIPTs (and repl's URL) are gathered at the front of what follows argv[first]: each lands
 * at or behind the argument being read, so the array is compacted in place. */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* print() from systems shows up line by line in pipes */
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-response is an EPIPE to handle, not a death */
    /* Messages and Lua tables come and go by the million: keep freed memory in the process
     * instead of returning it to the kernel (brk/munmap) after every burst. */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
    host_config cfg;
    host_config_defaults(&cfg);
    cfg.started_at = ev_time();
    char listen_addr[256] = "";
    int listen_port = -1;
    http_addr listen_resolved;
    const char *advertise = NULL;
    const char *registry_url = NULL;
    const char *registry_url_arg = NULL; /* repl's URL argument */
    const char *memory_limit_arg = NULL;
    static char *credential; /* --token-file; static: still reachable when a usage error returns */
    static char *etcd_password; /* --etcd-password-file; static for the same reason */
    const char *jwt_secret_file = NULL, *auth_file = NULL;
    const char *tls_cert = NULL, *tls_key = NULL;
    double request_timeout = 0;
    unsigned max_connections = 0, max_per_address = 0;
    const char *chunks[16];
    int nchunks = 0;
    char lua_dir[PATH_MAX];
    cfg.lua_dir = find_lua_dir(lua_dir, sizeof lua_dir);

    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return run_token(argc - 2, argv + 2);
    int run_mode = argc > 1 && strcmp(argv[1], "run") == 0;
    int test_mode = argc > 1 && (strcmp(argv[1], "test") == 0 || run_mode);
    int repl_mode = argc > 1 && strcmp(argv[1], "repl") == 0;
    int interactive = repl_mode, json = 0, insecure = 0;
    if (test_mode || repl_mode)
        cfg.log_level = LOG_WARN; /* spec and prompt output stay readable; errors still show */
    const int first = test_mode || repl_mode ? 2 : 1;
    int npos = 0; /* SCRIPTs (and repl's URL) gathered at argv[first ...] */
    int options_done = 0;
    for (int i = first; !test_mode && i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            argv[first + npos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        /* --name=value is --name value */
        char name[32];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int inline_val = split_inline_value(&a, name, sizeof name, &val);
        if (inline_val < 0)
            return usage_error("unknown option '%s'", a);
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("sssn-host %s (%s, libev %d.%d)\n", SSSN_VERSION, LUA_RELEASE, ev_version_major(),
                   ev_version_minor());
            return 0;
        }
        int is_flag = strcmp(a, "-i") == 0 || strcmp(a, "--json") == 0 || strcmp(a, "--insecure") == 0;
        if (is_flag && inline_val)
            return usage_error("option '%s' takes no value", a);
        if (strcmp(a, "-i") == 0) {
            interactive = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(a, "--insecure") == 0) {
            insecure = 1;
            continue;
        }
        int takes_value = strcmp(a, "-e") == 0 || strcmp(a, "--listen") == 0 ||
                          strcmp(a, "--advertise") == 0 || strcmp(a, "--registry") == 0 ||
                          strcmp(a, "--etcd-prefix") == 0 || strcmp(a, "--etcd-user") == 0 ||
                          strcmp(a, "--etcd-password-file") == 0 ||
                          strcmp(a, "--data-dir") == 0 || strcmp(a, "--sync") == 0 ||
                          strcmp(a, "--duration") == 0 || strcmp(a, "--ttl") == 0 ||
                          strcmp(a, "--maintenance") == 0 || strcmp(a, "--memory-limit") == 0 ||
                          strcmp(a, "--log-level") == 0 || strcmp(a, "--step-timeout") == 0 ||
                          strcmp(a, "--registry-max-entries") == 0 || strcmp(a, "--registry-max-per-subject") == 0 ||
                          strcmp(a, "--registry-max-ttl") == 0 || strcmp(a, "--token-file") == 0 ||
                          strcmp(a, "--jwt-secret-file") == 0 || strcmp(a, "--auth-file") == 0 ||
                          strcmp(a, "--max-message-size") == 0 || strcmp(a, "--channel-bytes") == 0 ||
                          strcmp(a, "--max-read-bytes") == 0 ||
                          strcmp(a, "--tls-cert") == 0 || strcmp(a, "--tls-key") == 0 ||
                          strcmp(a, "--ca-file") == 0 || strcmp(a, "--max-connections") == 0 ||
                          strcmp(a, "--max-connections-per-address") == 0 ||
                          strcmp(a, "--request-timeout") == 0;
        if (!takes_value)
            return usage_error("unknown option '%s'", a);
        if (!val)
            return usage_error("option '%s' needs a value", a);
        if (!inline_val)
            i++;
        if (strcmp(a, "-e") == 0) {
            if (nchunks == (int)(sizeof chunks / sizeof chunks[0]))
                return usage_error("%s", "too many -e chunks (16 at most)");
            chunks[nchunks++] = val;
        }
        const char *hint = NULL;
        if (strcmp(a, "--listen") == 0 && parse_listen(val, listen_addr, sizeof listen_addr, &listen_port, &hint) < 0)
            return usage_error("--listen wants [ADDR:]PORT like 7400, 127.0.0.1:7400 or [::1]:7400, not '%s'%s%s",
                               val, hint ? ": " : "", hint ? hint : "");
        if (strcmp(a, "--advertise") == 0) {
            if (!valid_http_url(val))
                return usage_error("--advertise wants an http:// or https:// URL like http://myhost:7400, not '%s'", val);
            advertise = val;
        }
        if (strcmp(a, "--registry") == 0) {
            if (strncmp(val, "etcd", 4) == 0) {
                char why[512], **members;
                size_t n;
                if (regbackend_etcd_parse(val, &members, &n, why, sizeof why) < 0)
                    return usage_error("--registry: %s", why);
                for (size_t k = 0; k < n; k++)
                    free(members[k]);
                free(members);
            } else if (!valid_http_url(val)) {
                return usage_error("--registry wants an http:// or https:// URL like http://127.0.0.1:7400, or "
                                   "etcd://HOST:PORT[,HOST:PORT...], not '%s'", val);
            }
            registry_url = val;
        }
        if (strcmp(a, "--etcd-user") == 0) {
            if (!*val || strlen(val) > 255 || strpbrk(val, "\"\\\r\n"))
                return usage_error("--etcd-user wants an etcd user name (1 to 255 bytes, no quote, backslash or "
                                   "newline), not '%s'", val);
            cfg.etcd_user = val;
        }
        if (strcmp(a, "--etcd-password-file") == 0) {
            char why[PATH_MAX + 200];
            if (etcd_password) {
                explicit_bzero(etcd_password, strlen(etcd_password));
                free(etcd_password);
                etcd_password = NULL;
            }
            if (read_credential(val, "the etcd password", &etcd_password, why, sizeof why) < 0)
                return usage_error("--etcd-password-file: %s", why);
        }
        if (strcmp(a, "--data-dir") == 0) {
            if (!val[0])
                return usage_error("%s", "--data-dir wants a directory");
            cfg.data_dir = val;
        }
        if (strcmp(a, "--sync") == 0) {
            if (strcmp(val, "full") != 0 && strcmp(val, "normal") != 0)
                return usage_error("--sync wants full or normal, not '%s'", val);
            cfg.sync_normal = strcmp(val, "normal") == 0;
        }
        if (strcmp(a, "--etcd-prefix") == 0) {
            if (val[0] != '/' || strlen(val) > 60 || strpbrk(val, " \t\r\n"))
                return usage_error("--etcd-prefix wants a key prefix like /sssn (a '/' first, at most 60 bytes), "
                                   "not '%s'", val);
            cfg.etcd_prefix = val;
        }
        if (strcmp(a, "--token-file") == 0) {
            char why[PATH_MAX + 200];
            if (credential) {
                explicit_bzero(credential, strlen(credential));
                free(credential);
                credential = NULL;
            }
            if (read_credential(val, "the credential (a JWT or a static token)", &credential, why, sizeof why) < 0)
                return usage_error("--token-file: %s", why);
        }
        if (strcmp(a, "--duration") == 0 && parse_seconds(val, &cfg.duration, 0) < 0)
            return seconds_error(a, val, 0);
        if (strcmp(a, "--ttl") == 0 && parse_seconds(val, &cfg.ttl, 0) < 0)
            return seconds_error(a, val, 0);
        if (strcmp(a, "--maintenance") == 0 && parse_seconds(val, &cfg.maintenance, 0) < 0)
            return seconds_error(a, val, 0);
        if (strcmp(a, "--step-timeout") == 0 && parse_seconds(val, &cfg.step_timeout, 1) < 0)
            return seconds_error(a, val, 1);
        if (strcmp(a, "--memory-limit") == 0)
            memory_limit_arg = val;
        if (strcmp(a, "--jwt-secret-file") == 0)
            jwt_secret_file = val;
        if (strcmp(a, "--auth-file") == 0)
            auth_file = val;
        if (strcmp(a, "--registry-max-entries") == 0 && parse_count(val, &cfg.registry_max_entries) < 0)
            return usage_error("%s wants a number of entries (0: no bound), not '%s'", a, val);
        if (strcmp(a, "--registry-max-per-subject") == 0 && parse_count(val, &cfg.registry_max_per_subject) < 0)
            return usage_error("%s wants a number of entries (0: no bound), not '%s'", a, val);
        if (strcmp(a, "--registry-max-ttl") == 0 && parse_seconds(val, &cfg.registry_max_ttl, 0) < 0)
            return seconds_error(a, val, 0);
        if (strcmp(a, "--memory-limit") == 0 && (strcmp(val, "none") == 0 || strcmp(val, "0") == 0))
            cfg.memory_limit = 0; /* no cap */
        else if (strcmp(a, "--memory-limit") == 0 && parse_bytes(val, &cfg.memory_limit) < 0)
            return usage_error("--memory-limit wants a byte count like 65536, 512K or 8M, not '%s' (0 or none: "
                               "no limit)", val);
        if (strcmp(a, "--max-message-size") == 0 &&
            (parse_bytes(val, &cfg.max_message_size) < 0 || cfg.max_message_size > ((size_t)1 << 30)))
            return usage_error("--max-message-size wants a byte count like 65536, 512K or 8M, at most 1G, not '%s'",
                               val);
        if (strcmp(a, "--channel-bytes") == 0 && parse_bytes(val, &cfg.channel_bytes) < 0)
            return usage_error("--channel-bytes wants a byte count like 65536, 512K or 64M, not '%s'", val);
        if (strcmp(a, "--max-read-bytes") == 0 && parse_bytes(val, &cfg.max_read_bytes) < 0)
            return usage_error("--max-read-bytes wants a byte count like 65536, 512K or 8M, not '%s'", val);
        if (strcmp(a, "--tls-cert") == 0)
            tls_cert = val;
        if (strcmp(a, "--tls-key") == 0)
            tls_key = val;
        if (strcmp(a, "--ca-file") == 0) {
            char ca_err[512];
            if (http_client_set_ca_file(val, ca_err, sizeof ca_err) < 0)
                return usage_error("--ca-file: %s", ca_err);
        }
        if (strcmp(a, "--max-connections") == 0 && parse_connections(val, &max_connections) < 0)
            return usage_error("--max-connections wants a count between 1 and 1000000, not '%s'", val);
        if (strcmp(a, "--max-connections-per-address") == 0 && parse_connections(val, &max_per_address) < 0)
            return usage_error("--max-connections-per-address wants a count between 1 and 1000000, not '%s'", val);
        if (strcmp(a, "--request-timeout") == 0 && parse_seconds(val, &request_timeout, 0) < 0)
            return seconds_error(a, val, 0);
        if (strcmp(a, "--log-level") == 0 && (cfg.log_level = log_level_parse(val)) < 0)
            return usage_error("--log-level wants error, warn, info or debug, not '%s'", val);
    }
    char **scripts = argv + first;
    int nscripts = test_mode ? 0 : npos;
    if (repl_mode && nscripts > 0) {
        registry_url_arg = scripts[0];
        if (!valid_http_url(registry_url_arg))
            return usage_error("repl wants the http:// or https:// URL of a host started with --listen, not '%s'",
                               registry_url_arg);
        scripts++;
        nscripts--;
        if (nscripts > 0)
            return usage_error("repl takes no SCRIPT ('%s'): use -i to open a prompt in a host running systems",
                               scripts[0]);
    }
    if (!cfg.lua_dir) {
        fprintf(stderr, "sssn-host: cannot find the sssn Lua files (looked beside the binary and in %s)\n",
                SSSN_LUA_DIR);
        return 1;
    }
    if (!test_mode && !interactive && nscripts == 0 && listen_port < 0 && nchunks == 0)
        return usage_error("%s", "no SCRIPT given (and no --listen, -e or -i)");
    if (json && !interactive)
        return usage_error("%s", "--json goes with -i or repl");
    /* a message of the largest size must fit in a channel, and in one read's answer */
    if (cfg.channel_bytes < cfg.max_message_size)
        return usage_error("--channel-bytes (%zu) must be at least --max-message-size (%zu)", cfg.channel_bytes,
                           cfg.max_message_size);
    if (cfg.max_read_bytes < cfg.max_message_size)
        return usage_error("--max-read-bytes (%zu) must be at least --max-message-size (%zu)", cfg.max_read_bytes,
                           cfg.max_message_size);
    if (!tls_cert != !tls_key)
        return usage_error("%s", tls_cert ? "--tls-cert needs --tls-key (the certificate's private key)"
                                          : "--tls-key needs --tls-cert (the certificate it belongs to)");
    if (tls_cert && listen_port < 0)
        return usage_error("%s", "--tls-cert and --tls-key go with --listen (they serve the HTTP API over HTTPS)");
    char resolve_err[256];
    if (listen_port >= 0 &&
        http_resolve(listen_addr, listen_port, &listen_resolved, resolve_err, sizeof resolve_err) < 0)
        return usage_error("--listen %s", resolve_err);
    if (registry_url_arg)
        registry_url = registry_url_arg;
    if (listen_port >= 0 && !listen_resolved.loopback && !jwt_secret_file && !auth_file && !insecure)
        return usage_error("--listen %s is reachable from other machines and no authentication is configured: "
                           "anyone who reaches it could read, write and register. Give --jwt-secret-file FILE or "
                           "--auth-file FILE, or --insecure to serve it open anyway", listen_addr);

    if (!test_mode && out_install() < 0)
        fprintf(stderr, "sssn-host: warning: cannot wrap standard output: a closed pipe will not stop the host\n");
    char dir_err[PATH_MAX + 200];
    if (cfg.data_dir && make_data_dir(cfg.data_dir, dir_err, sizeof dir_err) < 0)
        return usage_error("--data-dir %s", dir_err);
    if (!cfg.etcd_user != !etcd_password)
        return usage_error("--etcd-user and --etcd-password-file go together: etcd's auth needs both");
    if (cfg.etcd_user && (!registry_url || strncmp(registry_url, "etcd", 4) != 0))
        return usage_error("--etcd-user goes with --registry etcd://...");
    cfg.test_mode = test_mode;
    cfg.capture_log = test_mode && !run_mode; /* specs read the log; a failed spec shows it */
    if (cfg.capture_log)
        cfg.log_level = LOG_INFO; /* captured, so it costs no noise: the more a failure shows, the better */
    app *a = app_new(&cfg);
    if (!a)
        return 1;
    host *h = a->h;
    if (registry_url && !(h->registry_url = strdup(registry_url))) {
        app_free(a);
        return 1;
    }
    h->etcd_password = etcd_password; /* the host's from now on (wiped at host_free) */
    /* an etcd registry starts at once: its cache fills and its watch runs before any system asks */
    if (registry_url && strncmp(registry_url, "etcd", 4) == 0 && !host_backend(h)) {
        app_free(a);
        return 1;
    }
    h->credential = credential; /* the host's from now on (wiped at host_free) */
    if (run_mode)
        return run_driver(a, argc - 2, argv + 2);
    if (test_mode)
        return run_tests(a, argc - 2, argv + 2);
    if (cfg.memory_limit && !probe_fits(h, cfg.memory_limit)) {
        size_t floor = measure_memory_floor(h);
        if (floor && cfg.memory_limit < floor) {
            app_free(a);
            return usage_error("--memory-limit wants at least %zuK, what a system with nothing in it needs "
                               "(measured at start-up), not '%s'", floor >> 10, memory_limit_arg);
        }
    }
    auth_stage *auth = NULL;
    int auth_status = make_auth_stage(h, jwt_secret_file, auth_file, listen_port >= 0, &auth);
    if (auth_status) {
        app_free(a);
        return auth_status;
    }
    if (app_add(a, out_service_new(h)) < 0) {
        if (auth)
            auth->free(auth);
        app_free(a);
        return 1;
    }
    /* the API first: the systems' registrations carry its endpoint */
    char web[PATH_MAX];
    if (listen_port >= 0) {
        api_options opt = {.addr = listen_addr, .numeric = listen_resolved.numeric, .port = listen_port,
                           .loopback = listen_resolved.loopback, .any = listen_resolved.any,
                           .advertise = advertise, .auth = auth,
                           .tls_cert = tls_cert, .tls_key = tls_key,
                           .request_timeout = request_timeout, .max_connections = max_connections,
                           .max_per_address = max_per_address, .web_dir = web_dir(cfg.lua_dir, web, sizeof web)};
        if (app_add(a, api_service_new(h, &opt)) < 0) {
            app_free(a);
            return 1;
        }
    }

    if (registry_url && !repl_mode && listen_port < 0)
        host_log(h, LOG_WARN, NULL, "--registry without --listen: other hosts will find the channels this host "
                 "registers but cannot reach them (they have no endpoint); add --listen [ADDR:]PORT");
    app_catch_signals(a); /* setups run as the scripts load: a signal from now on stops cleanly */
    /* a SCRIPT or -e chunk that fails to load makes the exit status 1, even when others run */
    int started = 0, ran_plain = 0, failed = 0;
    for (int k = 0; k < nchunks; k++) {
        char id[16];
        snprintf(id, sizeof id, "e%d", k + 1);
        int plain = 0;
        sssn_system *s = system_load_string(h, chunks[k], strlen(chunks[k]), "=(command line)", id,
                                            h->cfg.memory_limit, &plain);
        if (s) {
            system_start(s);
            started++;
        } else if (plain) {
            ran_plain++;
        } else {
            failed++;
        }
    }
    for (int k = 0; k < nscripts; k++) {
        sssn_system *s = system_load_file(h, scripts[k]);
        if (s) {
            system_start(s);
            started++;
        } else {
            failed++;
        }
    }
    if (interactive && app_add(a, repl_service_new(h, json)) < 0) {
        app_free(a);
        return 1;
    }
    if (!started && listen_port < 0 && !interactive) {
        /* `sssn-host -e 'print(...)'`: plain chunks that ran are a success, not a failed start */
        if (failed || !ran_plain)
            host_log(h, LOG_ERROR, NULL, "no system could start");
        int status = failed || !ran_plain ? 1 : app_exit_status(a);
        app_free(a);
        return status;
    }
    if (failed)
        host_log(h, LOG_WARN, NULL, "%d script%s failed to load: running the others; the exit status will be 1",
                 failed, failed == 1 ? "" : "s");
    app_run(a);
    int status = failed ? 1 : app_exit_status(a);
    app_free(a);
    return status;
}
