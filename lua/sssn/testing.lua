-- sssn.testing: helpers for specs run inside the host by `sssn-host test`.
-- Spawn real systems from source, act as a reader/writer system from the spec itself,
-- and drive the test clock so TTL and tick behaviour is deterministic.
local core = require "sssn.core"
local sssn = require "sssn"

local testing = {}
local t = core.testing
if not t then
  error("sssn.testing is only available in specs run by `sssn-host test`", 2)
end

local Handle = {}
Handle.__index = Handle
function Handle:stats() return core.sys_stats(self._sys) end
function Handle:stop() return core.sys_stop(self._sys) end
function Handle:running() return core.sys_stats(self._sys).state ~= "stopped" end

--- Loads and starts a system (setup runs at once): spawn{source = "...", id = "x"} or
--- spawn{file = "path.lua"}; optional memory_limit (bytes).
function testing.spawn(opts)
  local h = t.spawn(opts)
  return setmetatable({ _sys = h, id = core.sys_stats(h).id }, Handle)
end

--- A system object bound to the spec's own state (never ticked), to read and write as `id`.
function testing.system(id, cfg)
  local self = sssn.system(cfg or { id = id })
  self.id = id
  self._sys = t.attach(id, self.name)
  return self
end

--- Switches to the manual clock at `now` (default: a fixed, round time).
function testing.freeze(now) t.clock_set(now or 1700000000) end
function testing.advance(dt) t.clock_advance(dt) end
function testing.real() t.clock_real() end
--- Runs queued loop work (subscriber deliveries) without moving the clock.
function testing.run_pending() return t.run_pending() end
--- Runs the real event loop for `seconds` (for specs that need real time).
function testing.run_for(seconds) return t.run_for(seconds) end

--- The host's log lines since the current test began (`sssn-host test` keeps them from
--- stderr: a passing run stays quiet, a failing test shows them). take = true also clears.
function testing.log(take) return t.log(take) end

--- Fails the spec unless the log since the test began has a line containing every one of
--- the given plain substrings; returns that line.
function testing.assert_logged(...)
  local needles = { ... }
  for line in t.log():gmatch("[^\n]+") do
    local all = true
    for _, n in ipairs(needles) do
      if not line:find(n, 1, true) then all = false break end
    end
    if all then return line end
  end
  error(("expected a log line mentioning %s; the log:\n%s"):format(
    table.concat(needles, " and "), t.log()), 2)
end

--- Path of the sssn-host binary running the specs (for end-to-end specs that start processes).
testing.exe = t.exe

--- A TCP port on 127.0.0.1 that was free a moment ago.
function testing.free_port() return t.free_port() end

--- Real time in seconds, whatever the test clock says (for measurements).
function testing.walltime() return t.walltime() end
--- Forgets the tick lateness samples (host_stats().tick_lateness_p50_us / _p99_us).
function testing.lateness_reset() return t.lateness_reset() end

--- Files for end-to-end specs: a fresh temporary directory (sssn-test.XXXXXX under $TMPDIR
--- or /tmp), its removal with everything in it (only directories tmpdir made), a whole file
--- read ("" when it does not exist), a whole file written.
function testing.tmpdir() return t.tmpdir() end
function testing.rmtree(dir) return t.rmtree(dir) end

function testing.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function testing.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- The error message fn(...) raises; raises itself (failing the spec) when fn raises nothing.
function testing.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, but the call succeeded", 2) end
  return tostring(err)
end

--- Fails the spec unless msg contains every one of the given plain substrings.
function testing.assert_mentions(msg, ...)
  for _, needle in ipairs({ ... }) do
    if not msg:find(needle, 1, true) then
      error(("expected the error to mention %q, got: %s"):format(needle, msg), 2)
    end
  end
end

-- Waiting, HTTP, processes (end-to-end specs) ----------------------------------------------
-- Every wait below runs the host's loop while it waits (no sleep processes, nothing blocks),
-- and every wait has a deadline.

--- Runs the loop until fn() returns a truthy value, trying every `interval` s (0.01) for at
--- most `seconds`; returns that value, or, at the deadline, what one last try returns.
function testing.eventually(seconds, fn, interval)
  local deadline = t.walltime() + seconds
  while true do
    local v = fn()
    if v then return v end
    if t.walltime() >= deadline then return fn() end
    t.run_for(math.min(interval or 0.01, math.max(0, deadline - t.walltime())))
  end
end

--- An HTTP request by the host's own client, the loop running until it is answered:
--- http(method, url, {body=, token=, headers= {"Name: value", ...} or {Name = value},
--- timeout= 10, fresh= (new connection)}) -> status, body, seconds, content_type, connects
--- (new connections made, 0 when one was reused); or nil, error, seconds. A body is sent as
--- application/json unless headers give a Content-Type.
function testing.http(method, url, opts) return t.http_start(method, url, opts):wait() end
--- The same request started without waiting (for two in flight at once): a call with
--- call:wait() -> what http returns, call:done() -> boolean, call:cancel().
function testing.http_start(method, url, opts) return t.http_start(method, url, opts) end

--- A raw TCP connection to addr (127.0.0.1):port, or nil, error: conn:send(bytes[, timeout])
--- writes them all; conn:receive([timeout 5[, until]]) -> the bytes that came until the peer
--- closed the connection ("closed"), the time-out passed ("timeout") or, with `until`, they
--- contain that text ("matched"); conn:close().
function testing.tcp(port, addr) return t.tcp_connect(port, addr) end

local Process = {}
Process.__index = Process

--- Starts a program (argv: a list; looked up in PATH) as a child process, never through a
--- shell: opts.stdout, opts.stderr (paths, default /dev/null; the same path for both keeps
--- them in one file in order, as 2>&1 does), opts.stdin (a path), opts.limit (seconds, 60:
--- then it gets SIGALRM, like `timeout`; it also dies with the run). opts.pipe = true sends
--- stdout to a pipe instead: p.pipe:receive([timeout 5[, until]]) reads it as a tcp
--- connection's receive does, p.pipe:close() closes the reading end (the child's next write
--- then fails with EPIPE, as when `| head` has read enough).
--- Returns a process: p.pid, p:out(), p:err(), p:status(), p:alive(), p:signal(sig),
--- p:wait_exit(s), p:stop(), p:wait_output(text, s, from), p:wait_err(text, s, from).
function testing.start(argv, opts)
  opts = opts or {}
  local stdout = opts.stdout
  if opts.pipe then stdout = true end
  local proc, pipe = t.start(argv, opts.stdin, stdout, opts.stderr, opts.limit or 60)
  return setmetatable({ proc = proc, pid = proc:pid(), argv = argv, pipe = pipe,
    out_path = not opts.pipe and opts.stdout or nil, err_path = opts.stderr }, Process)
end

local function words(args)
  if type(args) == "table" then return args end
  local out = {}
  for w in tostring(args or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

--- Starts `sssn-host ARGS` (a list, or a string split at spaces): stdout and stderr in
--- opts.dir as NAME.out and NAME.err (opts.name, default "host"; without a dir, a fresh
--- tmpdir that p:stop() removes, keeping the output for p:out() and p:err()); other opts as
--- for start. With `--listen 127.0.0.1:0`, p:listening() gives the port.
function testing.start_host(args, opts)
  opts = opts or {}
  local dir = opts.dir or testing.tmpdir()
  local name = opts.name or "host"
  local argv = { testing.exe }
  for _, a in ipairs(words(args)) do argv[#argv + 1] = a end
  local p = testing.start(argv, { stdin = opts.stdin, limit = opts.limit,
    stdout = ("%s/%s.out"):format(dir, name), stderr = ("%s/%s.err"):format(dir, name) })
  p.name, p.dir, p.own_dir = name, dir, not opts.dir
  return p
end

--- Runs a program to its end (bounded by opts.limit, 20 s): -> stdout, stderr, exit code
--- (128 + N when signal N ended it). opts.stdin: a path, or opts.input: the text to feed it;
--- opts.merge = true: stderr goes into stdout, in order (2>&1), and stderr comes back "".
function testing.run(argv, opts)
  opts = opts or {}
  local dir = testing.tmpdir()
  local stdin = opts.stdin
  if opts.input then
    stdin = dir .. "/in"
    testing.write_file(stdin, opts.input)
  end
  local limit = opts.limit or 20
  local p = testing.start(argv, { stdin = stdin, stdout = dir .. "/out",
    stderr = dir .. (opts.merge and "/out" or "/err"), limit = limit })
  local code = p:wait_exit(limit + 5) or p:stop()
  local out, err = p:out(), opts.merge and "" or p:err()
  testing.rmtree(dir)
  return out, err, code
end

function Process:out() return self.kept_out or self.out_path and testing.read_file(self.out_path) or "" end
function Process:err() return self.kept_err or self.err_path and testing.read_file(self.err_path) or "" end
--- The exit code (and the signal that ended it), or nil while it runs.
function Process:status() return self.proc:status() end
function Process:alive() return self.proc:status() == nil end
--- Sends a signal ("TERM", "KILL", "INT", ... or a number); false when it already exited.
function Process:signal(sig) return self.proc:kill(sig) end
--- Runs the loop until the process exits (woken by SIGCHLD) or `seconds` (5) pass: its exit
--- code, or nil.
function Process:wait_exit(seconds) return self.proc:wait(seconds or 5) end

--- SIGTERM, then SIGKILL when it has not exited within `grace` s (3): its exit code. Safe to
--- call twice and on a process that already ended (for finally / teardown).
function Process:stop(grace)
  local rc, sig = self.proc:status()
  if not rc then
    self.proc:kill("TERM")
    rc, sig = self.proc:wait(grace or 3)
  end
  if not rc then
    self.proc:kill("KILL")
    rc, sig = self.proc:wait(5)
  end
  if self.pipe and rc then self.pipe:close() end
  if self.own_dir and rc then
    self.kept_out, self.kept_err = self:out(), self:err()
    testing.rmtree(self.dir)
    self.own_dir = false
  end
  return rc, sig
end

local function wait_text(self, which, text, seconds, from)
  local read = which == "stdout" and self.out or self.err
  local found = testing.eventually(seconds or 5, function() return read(self):find(text, from or 1, true) end)
  if not found then
    error(("%s: no %q in its %s after %ss\n--- stdout:\n%s\n--- stderr:\n%s"):format(self.name or self.argv[1],
      text, which, seconds or 5, self:out(), self:err()), 3)
  end
  return found
end
--- Waits until its stdout (or stderr) has `text` (plain) at or after byte `from`; returns
--- where; raises with its output otherwise.
function Process:wait_output(text, seconds, from) return wait_text(self, "stdout", text, seconds, from) end
function Process:wait_err(text, seconds, from) return wait_text(self, "stderr", text, seconds, from) end

--- For a host started with --listen: waits until it reports "HTTP API on http://ADDR:PORT"
--- on stderr (--listen 127.0.0.1:0 picks a free port: no race); sets p.port and p.base
--- (http://127.0.0.1:PORT) and returns the port. Raises with its log when it exits first.
function Process:listening(seconds)
  if self.port then return self.port end
  local port = testing.eventually(seconds or 5, function()
    return self:err():match("HTTP API on http://[^:\n]+:(%d+)") or not self:alive()
  end)
  if type(port) ~= "string" then
    error(("%s did not report its HTTP API (%s):\n%s"):format(self.name or "sssn-host",
      self:alive() and "still running" or "exited " .. tostring(self:status()), self:err()), 2)
  end
  self.port = tonumber(port)
  self.base = ("http://127.0.0.1:%d"):format(self.port)
  return self.port
end

--- listening(), then waits until GET base..path (default /health) answers 200.
function Process:ready(path, seconds)
  self:listening(seconds)
  local ok = testing.eventually(seconds or 5, function()
    return testing.http("GET", self.base .. (path or "/health"), { timeout = 1 }) == 200 or not self:alive()
  end)
  if ok ~= true or not self:alive() then
    error(("%s did not answer %s on %s: %s"):format(self.name or "sssn-host", path or "/health",
      self.base, self:err()), 2)
  end
  return self.port
end

local counter = 0
--- A fresh id for a spec: prefix-N, unique within the run.
function testing.uid(prefix)
  counter = counter + 1
  return ("%s-%d"):format(prefix or "id", counter)
end

return testing
