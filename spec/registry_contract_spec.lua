-- The registry contract on every backend: the cases of spec/registry_contract/cases.lua run
-- against the in-process registry, another host's over HTTP (--registry http://...) and etcd
-- (--registry etcd://...), the same cases, on real time (short TTLs).
--
-- `sssn-host test` takes no host options (no --registry), so each backend's cases run in a
-- child host, `sssn-host [--registry URL] --listen 127.0.0.1:0 --maintenance 0.5 agent...
-- harness.lua`: the harness
-- (HARNESS below) is a system that runs every case at once, each in a coroutine of its own
-- (sssn.spawn, so the registry calls may wait), and prints one line per case
-- ("CASE <n> ok" or "CASE <n> fail <message as JSON>"), then "DONE"; the agents are systems
-- that make registry calls on command (a second and a third registrant). This runner starts
-- what the backend needs (nothing; a registry host with --listen 127.0.0.1:0; an etcd by
-- sssn.testing_etcd), the child, reads the lines and makes one test per backend and case.
-- The child also serves --listen 127.0.0.1:0: the cases of cases.http then run here, against
-- its /registry routes, which answer from the same backend. Every process is stopped in
-- lazy_teardown, whatever failed.
local sssn = require "sssn"
local testing = require "sssn.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local CASES_FILE = here .. "/registry_contract/cases.lua"
local cases = dofile(CASES_FILE)

-- Seconds the child's harness gives all the cases of a backend; the runner waits a little more.
local CASES_DEADLINE = 45

-- Cases known to fail on a backend because the backend is wrong: while they fail they are
-- pending with the reason (and pass as soon as the backend is fixed).
local KNOWN = {
  http = {
    ["reports registered, refreshed, replaced, deregistered and expired on the registry channel"] =
      "a host with --registry http://... does not carry the registry host's events on its own `registry` channel "
      .. "(sssn.registry:events and /registry/events have them)",
  },
}

-- The child's systems ----------------------------------------------------------------------

local HARNESS = [==[
local sssn = require "sssn"
local core = require "sssn.core"
local reg = sssn.registry
local CASES_FILE, DEADLINE = @CASES@, @DEADLINE@

local h = sssn.system { id = "contract-harness", name = "Registry Contract" }

local function fill_ctx(self)
  local ctx = { harness = self, registrant = core.instance_id() .. "/" .. self.id }
  local counter = 0
  function ctx.now() return sssn.now() end
  function ctx.sleep(s) return sssn.sleep(s) end
  function ctx.eventually(seconds, fn)
    local deadline = sssn.now() + seconds
    while true do
      local v = fn()
      if v then return v end
      if sssn.now() >= deadline then return fn() end
      sssn.sleep(0.05)
    end
  end
  function ctx.uid(prefix)
    counter = counter + 1
    return ("%s-%d"):format(prefix or "id", counter)
  end
  -- events about each id, from sssn.registry:events and from the `registry` channel
  local by_api, by_channel = {}, {}
  local function push(store, ev)
    local list = store[ev.id]
    if not list then list = {}; store[ev.id] = list end
    list[#list + 1] = ev
  end
  local function copy(list)
    local out = {}
    for i, v in ipairs(list or {}) do out[i] = v end
    return out
  end
  function ctx.events(id) return copy(by_api[id]) end
  function ctx.channel_events(id) return copy(by_channel[id]) end
  local _, index = reg:events(math.maxinteger)
  sssn.spawn(function()
    while true do
      local ok, evs, nxt = pcall(reg.events, reg, index, 5)
      if ok then
        for _, ev in ipairs(evs) do push(by_api, ev) end
        index = nxt
      else
        sssn.log("warn", "contract harness: events: %s", tostring(evs))
        sssn.sleep(0.2)
      end
    end
  end)
  self:connect("registry")
  self:read_channel("registry", { after = sssn.channel_stats("registry").last_seq })
  self:subscribe_channel("registry", function(m) push(by_channel, m.content.data) end)
  -- agents: other systems of this host, commanded over their channel "<name>-cmd"
  local agents = {}
  function ctx.agent(name)
    local reply = ctx.uid(name .. "-reply")
    self:add_channel(sssn.broadcast { id = reply })
    if not agents[name] then
      self:connect(name .. "-cmd")
      agents[name] = true
    end
    local a = { name = name, registrant = core.instance_id() .. "/" .. name }
    local function call(op, ...)
      local n = select("#", ...)
      local args = {}
      for i = 1, n do args["a" .. i] = (select(i, ...)) end
      local m, why = self:request(name .. "-cmd", { op = op, n = n, args = args }, { reply_to = reply, timeout = 20 })
      if not m then error(("agent %s: no answer to %s (%s)"):format(name, op, tostring(why)), 3) end
      local d = m.content.data
      if not d.ok then error(("agent %s: %s: %s"):format(name, op, tostring(d.err)), 3) end
      local out = {}
      for i = 1, d.n do out[i] = d["r" .. i] end
      return table.unpack(out, 1, d.n)
    end
    for _, op in ipairs { "register_channel", "register_system", "deregister_channel", "deregister_system", "stop" } do
      a[op] = function(_, ...) return call(op, ...) end
    end
    return a
  end
  return ctx
end

function h:setup()
  sssn.spawn(function()
    local cases = dofile(CASES_FILE)
    local ok, base = pcall(fill_ctx, self)
    if not ok then
      print("HARNESS fail " .. sssn.json.encode(tostring(base)))
      print("DONE")
      return
    end
    -- where the cases go: the runner checks that the backend holds this probe
    local probe_ok, probe_err = pcall(reg.register_channel, reg, { id = "contract-probe", name = "Contract Probe" }, 60)
    print(("KIND %s %s %s"):format(reg.kind, tostring(reg.url), probe_ok and core.instance_id() or
      sssn.json.encode(tostring(probe_err))))
    local done, left = {}, #cases
    for i, c in ipairs(cases) do
      local ctx = setmetatable({}, { __index = base })
      local ids = {}
      function ctx.uid(prefix)
        local id = base.uid(prefix)
        ids[#ids + 1] = id
        return id
      end
      function ctx.expect_log(...)
        print(("LOG %d %s"):format(i, sssn.json.encode(sssn.array { ... })))
      end
      sssn.spawn(function()
        local t0 = sssn.now()
        local passed, err = xpcall(c.run, debug.traceback, ctx)
        done[i] = true
        left = left - 1
        print(("IDS %d %s"):format(i, sssn.json.encode(sssn.array(ids))))
        print(("TIME %d %.2f"):format(i, sssn.now() - t0))
        if passed then
          print(("CASE %d ok"):format(i))
        else
          print(("CASE %d fail %s"):format(i, sssn.json.encode(tostring(err))))
        end
      end)
    end
    local deadline = sssn.now() + DEADLINE
    while left > 0 and sssn.now() < deadline do sssn.sleep(0.1) end
    for i = 1, #cases do
      if not done[i] then print(("CASE %d fail %s"):format(i, sssn.json.encode(
        ("did not finish within %d s"):format(DEADLINE)))) end
    end
    print("DONE")
  end)
end

function h:step() end
return h
]==]

local AGENT = [==[
local sssn = require "sssn"
local reg = sssn.registry
local a = sssn.system { id = @ID@ }
local ops = {}
for _, op in ipairs { "register_channel", "register_system", "deregister_channel", "deregister_system" } do
  ops[op] = function(...) return reg[op](reg, ...) end
end
local connected = {}

function a:setup()
  local cmd = @ID@ .. "-cmd"
  self:add_channel(sssn.broadcast { id = cmd })
  self:subscribe_channel(cmd, function(m)
    local d = m.content.data
    sssn.spawn(function()
      local res
      if d.op == "stop" then
        res = { ok = true, n = 0 }
      else
        local args = {}
        for i = 1, d.n do args[i] = d.args["a" .. i] end
        local r = table.pack(pcall(ops[d.op], table.unpack(args, 1, d.n)))
        if r[1] then
          res = { ok = true, n = r.n - 1 }
          for i = 2, r.n do res["r" .. (i - 1)] = r[i] end
        else
          res = { ok = false, err = tostring(r[2]) }
        end
      end
      if not connected[m.reply_to] then
        self:connect(m.reply_to)
        connected[m.reply_to] = true
      end
      self:write_channel(m.reply_to, res, { correlation_id = m.correlation_id })
      if d.op == "stop" then self:stop() end
    end)
  end)
end

function a:step() end
return a
]==]

local AGENTS = { "contract-a", "contract-b", "contract-stop" }

-- Backends ----------------------------------------------------------------------------------

-- What the etcd variant is waiting for, or nil when it can run.
local function etcd_missing()
  if not package.searchpath("sssn.testing_etcd", package.path) then
    return "the etcd rig (lua/sssn/testing_etcd.lua, branch i12-rig) is not on this branch yet"
  end
  local _, err, code = testing.run({ testing.exe, "--registry", "etcd://127.0.0.1:1", "--help" }, { limit = 5 })
  if code ~= 0 then
    return "this sssn-host does not take --registry etcd://... yet (" .. (err:match("[^\n]+") or "exit " .. code) .. ")"
  end
  return nil
end

-- Each backend: start(env) starts what it needs and returns the child's --registry arguments;
-- check(env, run) raises unless the child's registry is that backend and holds the probe the
-- harness registered (channel "contract-probe", registrant "<child instance>/contract-harness").
local function probe_registrant(run) return run.instance .. "/contract-harness" end

local BACKENDS = {
  { name = "in-process", start = function() return {} end,
    check = function(_, run)
      assert.are.equal("local", run.kind)
    end },
  { name = "http", start = function(env)
      local r = env.host("registry", { "--listen", "127.0.0.1:0", "--maintenance", "0.5" })
      r:ready()
      env.base = r.base
      return { "--registry", r.base }
    end,
    check = function(env, run)
      assert.are.equal("remote", run.kind)
      assert.are.equal(env.base, run.url)
      local status, body = testing.http("GET", env.base .. "/registry/channels/contract-probe")
      assert.are.equal(200, status, body)
      local e = sssn.json.decode(body)
      assert.are.equal("Contract Probe", e.name)
      -- GET answers no registrant: the registry host's events name it
      local es, eb = testing.http("GET", env.base .. "/registry/events?index=0&limit=10000")
      assert.are.equal(200, es, eb)
      local by
      for _, ev in ipairs(sssn.json.decode(eb).events) do
        if ev.id == "contract-probe" and ev.event == "registered" then by = ev.registrant end
      end
      assert.are.equal(probe_registrant(run), by)
    end },
  { name = "etcd", missing = etcd_missing, start = function(env)
      local c = require("sssn.testing_etcd").start { members = 1 }
      env.on_stop(function() c:stop() end)
      env.cluster = c
      return { "--registry", c.url }
    end,
    check = function(env, run)
      local c = env.cluster
      local value = c:get("/sssn/channels/contract-probe")
      assert.truthy(value, "no key /sssn/channels/contract-probe in etcd")
      local e = sssn.json.decode(value)
      assert.are.equal(probe_registrant(run), e.registrant, value)
      assert.is_number(e.expires_at, value)
    end,
    more = {
      ["holds each entry under <prefix>/channels/<id>: its info (what GET answers, but expires_at), owner and expiry"] =
        function(env, run)
          local value = env.cluster:get("/sssn/channels/contract-probe")
          local _, body = testing.http("GET", run.child.base .. "/registry/channels/contract-probe")
          local e, got = sssn.json.decode(value), sssn.json.decode(body)
          for k, v in pairs(got) do
            if k ~= "expires_at" then assert.are.same(v, e.info[k], ("%s in %s"):format(k, value)) end
          end
          assert.is_true(math.abs(got.expires_at - e.expires_at) < 0.01, value)
          assert.are.equal(probe_registrant(run), e.registrant, value)
          assert.are.equal("contract-probe", e.info.id, value)
        end,
      ["logs where its registry is at start-up: registry: etcd at <endpoints> (prefix /sssn)"] = function(env, run)
        local line = ("registry: etcd at %s (prefix /sssn)"):format(env.cluster.endpoints)
        assert(run.child:err():find(line, 1, true), ("no %q in the child's log:\n%s"):format(line,
          run.child:err():sub(1, 1500)))
      end,
    } },
}

-- Runs the cases on one backend: {results = {[n] = {ok=, message=}}, logs = {[n] = {needles...}},
-- ids = {[n] = {...}}, child = the process, hosts = every sssn-host started, stop = fn}.
local function run_backend(backend)
  local run = { results = {}, logs = {}, ids = {}, hosts = {}, stoppers = {} }
  run.dir = testing.tmpdir()
  local env = {}
  function env.host(name, args)
    local p = testing.start_host(args, { dir = run.dir, name = name, limit = 120 })
    run.hosts[#run.hosts + 1] = p
    return p
  end
  function env.on_stop(fn) run.stoppers[#run.stoppers + 1] = fn end
  function run.stop()
    for i = #run.hosts, 1, -1 do pcall(run.hosts[i].stop, run.hosts[i]) end
    for i = #run.stoppers, 1, -1 do pcall(run.stoppers[i]) end
    run.hosts, run.stoppers = {}, {}
  end
  local ok, err = pcall(function()
    local args = backend.start(env)
    local harness = run.dir .. "/harness.lua"
    testing.write_file(harness, (HARNESS:gsub("@CASES@", ("%q"):format(CASES_FILE))
      :gsub("@DEADLINE@", tostring(CASES_DEADLINE))))
    for _, a in ipairs { "--listen", "127.0.0.1:0", "--maintenance", "0.5", "--duration", tostring(CASES_DEADLINE + 60) } do
      args[#args + 1] = a
    end
    -- the agents first: their channels exist when the harness starts
    for _, name in ipairs(AGENTS) do
      local path = ("%s/%s.lua"):format(run.dir, name)
      testing.write_file(path, (AGENT:gsub("@ID@", ("%q"):format(name))))
      args[#args + 1] = path
    end
    args[#args + 1] = harness
    run.t0 = testing.walltime()
    run.child = env.host("child", args)
    local child = run.child
    testing.eventually(CASES_DEADLINE + 15, function()
      return child:out():find("DONE\n", 1, true) or not child:alive()
    end, 0.05)
    if not child:out():find("DONE\n", 1, true) then
      error(child:alive() and ("the child host reported no DONE within %d s"):format(CASES_DEADLINE + 15)
        or ("the child host exited (%s) before it reported DONE"):format(tostring(child:status())), 0)
    end
    run.seconds = testing.walltime() - run.t0
    child:listening()
    local out = run.child:out()
    for n, status, rest in out:gmatch("CASE (%d+) (%a+) ?([^\n]*)") do
      run.results[tonumber(n)] = { ok = status == "ok", message = status ~= "ok" and sssn.json.decode(rest) or nil }
    end
    for n, needles in out:gmatch("LOG (%d+) ([^\n]*)") do
      local list = run.logs[tonumber(n)] or {}
      list[#list + 1] = sssn.json.decode(needles)
      run.logs[tonumber(n)] = list
    end
    for n, ids in out:gmatch("IDS (%d+) ([^\n]*)") do run.ids[tonumber(n)] = sssn.json.decode(ids) end
    run.harness_failure = out:match("HARNESS fail ([^\n]*)")
    run.kind, run.url, run.instance = out:match("KIND (%S+) (%S+) ([^\n]*)")
    run.env = env
  end)
  if not ok then
    local logs = {}
    for _, p in ipairs(run.hosts) do
      logs[#logs + 1] = ("--- %s stdout (its end):\n%s\n--- %s stderr (its end):\n%s"):format(p.name,
        p:out():sub(-2000), p.name, p:err():sub(-3000))
    end
    run.stop()
    testing.rmtree(run.dir)
    error(("%s backend: %s\n%s"):format(backend.name, tostring(err), table.concat(logs, "\n")), 0)
  end
  return run
end

-- The lines of a host's log that mention one of the ids, for a failure's message.
local function lines_about(text, ids)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    for _, id in ipairs(ids or {}) do
      if line:find(id, 1, true) then
        out[#out + 1] = line
        break
      end
    end
  end
  if #out > 60 then out = { table.unpack(out, #out - 59) } end
  return table.concat(out, "\n")
end

local function has_line(text, needles)
  for line in text:gmatch("[^\n]+") do
    local all = true
    for _, n in ipairs(needles) do
      if not line:find(n, 1, true) then all = false break end
    end
    if all then return true end
  end
  return false
end

-- Fails the test of case `name` on `backend` with why and what the hosts logged about ids;
-- pending instead while the case is known to fail there (KNOWN).
local function fail(backend, run, name, why, ids)
  local known = KNOWN[backend.name] and KNOWN[backend.name][name]
  if known then pending(("%s backend: %s (failing: %s)"):format(backend.name, known, why:match("[^\n]*"))) end
  local logs = {}
  for _, p in ipairs(run.hosts) do
    local about = lines_about(p:err(), ids)
    if about ~= "" then logs[#logs + 1] = ("--- %s's log about this case's ids:\n%s"):format(p.name, about) end
  end
  error(("%s backend: %s\n%s"):format(backend.name, why, table.concat(logs, "\n")), 0)
end

-- Specs -------------------------------------------------------------------------------------

describe("the registry contract", function()
  for _, backend in ipairs(BACKENDS) do
    local missing = backend.missing and backend.missing()
    if missing then
      pending(("on the %s backend: %s"):format(backend.name, missing))
    else
      describe("on the " .. backend.name .. " backend", function()
        local run
        lazy_setup(function() run = run_backend(backend) end)
        lazy_teardown(function()
          if run then
            run.stop()
            testing.rmtree(run.dir)
          end
        end)

        it("runs the cases through that backend", function()
          assert.truthy(run.instance and run.instance:match("^%x+$"),
            "the harness could not register its probe: " .. tostring(run.instance))
          backend.check(run.env, run)
        end)

        local more = {}
        for name in pairs(backend.more or {}) do more[#more + 1] = name end
        table.sort(more)
        for _, name in ipairs(more) do
          it(name, function()
            local ok, err = pcall(backend.more[name], run.env, run)
            if not ok then fail(backend, run, name, tostring(err), {}) end
          end)
        end

        for n, c in ipairs(cases) do
          it(c.name, function()
            local r = run.results[n]
            local why
            if run.harness_failure then
              why = "the harness failed: " .. run.harness_failure
            elseif not r then
              why = "the child reported nothing for this case"
            elseif not r.ok then
              why = r.message
            else
              for _, needles in ipairs(run.logs[n] or {}) do
                if not has_line(run.child:err(), needles) then
                  why = "no log line with " .. table.concat(needles, " and ")
                  break
                end
              end
            end
            if why then fail(backend, run, c.name, why, run.ids[n]) end
          end)
        end

        -- the HTTP routes of the child (its --listen), from this runner
        for _, c in ipairs(cases.http) do
          it(c.name, function()
            local ids = {}
            local ctx = { now = sssn.now, eventually = function(s, fn) return testing.eventually(s, fn, 0.05) end }
            function ctx.uid(prefix)
              local id = testing.uid("runner-" .. (prefix or "id"))
              ids[#ids + 1] = id
              return id
            end
            function ctx.http(method, path, body)
              if type(body) == "table" then body = sssn.json.encode(body) end
              local status, text = testing.http(method, run.child.base .. path, { body = body, timeout = 10 })
              local ok, decoded = pcall(sssn.json.decode, text or "")
              return status, ok and decoded or nil, text
            end
            local ok, err = xpcall(c.run, debug.traceback, ctx)
            if not ok then fail(backend, run, c.name, tostring(err), ids) end
          end)
        end
      end)
    end
  end
end)
