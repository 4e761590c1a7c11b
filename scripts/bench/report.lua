-- Turns the RESULT lines of a `make bench` run into one table (stdout) and bench-results.json:
-- each figure with its target (issue 11) and, where a peer measured the same key, the ratio
-- (higher is better for the host): vs the Python sssn v0.0.1 (group python-sssn) and, for
-- HTTP, vs redis (http_put / redis_set, http_read / redis_get).
-- Run as: sssn-host run scripts/bench/report.lua RAW_FILE OUT_JSON
local sssn = require "sssn"
local json = sssn.json

local raw, out_path = arg[1], arg[2]

-- targets (issue 11, by key; a few older ones by name): {op, value}: ">=" higher is better,
-- "<=" lower is better
local targets = {
  bcast_l20 = { ">=", 1000000 },
  bcast_l1000 = { ">=", 1000000 },
  bcast_reads = { ">=", 1500000 },
  fanout10 = { ">=", 2000000 },
  subscribe10 = { ">=", 1000000 },
  wq = { ">=", 500000 },
  get1000 = { ">=", 3000000 },
  purge100k = { "<=", 20 },
  find_sys_1M = { "<=", 50 },
  tick10k_steps = { ">=", 100000 },
  tick10k_p99 = { "<=", 5000 },
  tick_cpu_us = { "<=", 2 },
  heap_idle = { "<=", 48 },
  ["start-up to first tick"] = { "<=", 10 },
}

local results = {}
for line in io.lines(raw) do
  local ok, r = pcall(json.decode, line:gsub("^RESULT ", ""))
  if ok and type(r) == "table" then
    for k, v in pairs(r) do if v == sssn.null then r[k] = nil end end
    results[#results + 1] = r
  end
end

local function find(group, name)
  for _, r in ipairs(results) do
    if r.group == group and r.name == name then return r end
  end
end

local function fmt(v)
  if type(v) ~= "number" then return "-" end
  if v >= 1000 then
    local s = ("%.0f"):format(v):reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (s:gsub("^,", ""))
  end
  return ("%.3g"):format(v)
end

-- Peers are paired by figure key (issue 11's contract). Lines written before keys existed get
-- theirs from their name.
local key_of_name = {
  ["broadcast 1 writer -> 1 reader"] = "bcast_l1000",
  ["fan-out 10 readers"] = "fanout10",
  ["work queue claim+ack"] = "wq",
  ["registry register (upsert, TTL)"] = "reg_upsert",
  ["find_systems p99 @10k"] = "find_sys_10k",
  ["find_systems p99 @100k"] = "find_sys_100k",
  ["find_systems p99 @1M"] = "find_sys_1M",
  ["purge 100k expired"] = "purge100k",
  ["Lua heap per idle system"] = "heap_idle",
}
local redis_key_of_name = { ["SET EX"] = "redis_set", GET = "redis_get" }
for _, r in ipairs(results) do
  if not r.key then
    r.key = (r.group == "peer-redis" and redis_key_of_name[r.name]) or (r.group ~= "peer-redis" and key_of_name[r.name]) or nil
  end
end
local function by_key(group, key)
  if not key then return nil end
  for _, r in ipairs(results) do
    if r.group == group and r.key == key then return r end
  end
end
-- the redis figure an HTTP key is held against
local redis_pair = { http_put = "redis_set", http_read = "redis_get", http_lookup = "redis_get", http_info = "redis_get" }

local lower_is_better = { us = true, ms = true, KiB = true, ["% of one core"] = true, ["us p50"] = true }
local function ratio(r, peer)
  -- a peer line with "comparable": false is listed, but no ratio is drawn from it
  if peer and peer.comparable ~= false and type(peer.value) == "number" and type(r.value) == "number" and peer.value > 0 and r.value > 0 then
    return lower_is_better[r.unit] and peer.value / r.value or r.value / peer.value
  end
end

local python_ran = false
for _, r in ipairs(results) do
  if r.group == "python-sssn" and type(r.value) == "number" then python_ran = true end
end

local rows = {}
for _, r in ipairs(results) do
  if r.group == "local" or r.group == "http" then
    local t = targets[r.key or ""] or targets[r.name]
    local status = ""
    if t and type(r.value) == "number" then
      local met = (t[1] == ">=" and r.value >= t[2]) or (t[1] == "<=" and r.value <= t[2])
      status = ("%s %s %s"):format(met and "met" or "MISSED", t[1], fmt(t[2]))
      r.target = t[2]
      r.target_met = met
    end
    local vs_py, vs_redis = "", ""
    local py = by_key("python-sssn", r.key)
    local x = ratio(r, py)
    if x then
      vs_py = ("%.2fx"):format(x)
      r.vs_python_sssn = x
    end
    local rd = by_key("peer-redis", redis_pair[r.key])
    x = ratio(r, rd)
    if x then
      vs_redis = ("%.2fx %s"):format(x, rd.key == "redis_set" and "SET" or "GET")
      r.vs_redis = x
    end
    rows[#rows + 1] = { r.group, r.name, fmt(r.value) .. " " .. (r.unit or ""),
      r.p99_us and fmt(r.p99_us) .. " us" or "", status, vs_py, vs_redis }
  end
end
-- the etcd registry (scripts/bench/etcd.sh): each etcd_* figure, beside the in-process figure of
-- the same workload in the same run (inproc_*; http_lookup for the HTTP route) where there is one
local inproc_pair = { etcd_register = "inproc_register", etcd_register_upsert = "inproc_register_upsert",
  etcd_register_c16 = "inproc_register_c16", etcd_get = "inproc_get", etcd_get1000 = "inproc_get1000",
  etcd_http_lookup = "http_lookup" }
for _, r in ipairs(results) do
  if r.group == "etcd" then
    local pk = inproc_pair[r.key or ""]
    local x = ratio(r, pk and (by_key("etcd", pk) or by_key("http", pk)))
    if x then r.vs_inproc = x end
    rows[#rows + 1] = { "etcd", (r.key and r.key .. ": " or "") .. r.name,
      type(r.value) == "number" and fmt(r.value) .. " " .. (r.unit or "") or "-",
      r.p99_us and fmt(r.p99_us) .. " us" or "", x and ("%.2fx in-process"):format(x) or "", "", "" }
  end
end

-- durable channels (scripts/bench/durable.sh, issue 13): a durable rate beside the in-memory one
-- of the same workload and redis with the matching fsync policy (--sync normal ~ appendfsync
-- everysec, --sync full ~ always), all in the same run; a durable worst loop turn against the
-- 5 ms target (the in-memory host's under the same load and the machine's floor are listed too)
local durable_pairs = {
  durable_http_normal = { "durable_http_memory", "durable_redis_everysec" },
  durable_http_full = { "durable_http_memory", "durable_redis_always" },
  durable_lua_normal_c1 = { "durable_lua_memory_c1" }, durable_lua_normal_c50 = { "durable_lua_memory_c50" },
  durable_lua_full_c1 = { "durable_lua_memory_c1" }, durable_lua_full_c50 = { "durable_lua_memory_c50" },
  durable_redis_everysec = { "durable_redis_none" }, durable_redis_always = { "durable_redis_none" },
}
local stall_target = 5 -- ms, issue 13
for _, r in ipairs(results) do
  if r.group == "durable" then
    local status, vs_redis = "", ""
    local pair = durable_pairs[r.key or ""]
    if pair then
      local base = by_key("durable", pair[1])
      local x = ratio(r, base)
      if x then
        status = ("%.2fx %s"):format(x, r.key:find("redis") and "no AOF" or "in-memory")
        r.vs_memory = x
      end
      local rd = pair[2] and by_key("durable", pair[2])
      x = ratio(r, rd)
      if x then
        vs_redis = ("%.2fx %s"):format(x, pair[2]:match("durable_redis_(%a+)"))
        r.vs_redis = x
      end
    elseif (r.key or ""):match("^durable_stall_") and not (r.key or ""):match("_memory") and type(r.value) == "number" then
      r.target, r.target_met = stall_target, r.value <= stall_target
      status = ("%s <= %s ms"):format(r.target_met and "met" or "MISSED", stall_target)
    end
    rows[#rows + 1] = { "durable", (r.key and r.key .. ": " or "") .. r.name,
      type(r.value) == "number" and fmt(r.value) .. " " .. (r.unit or "") or "-",
      r.p99_us and fmt(r.p99_us) .. " us" or "", status, "", vs_redis }
  end
end

-- HTTP registry lookups against redis GET over the same loopback
local lookup, rget = find("http", "GET /registry/channels/{id} (lookup)"), by_key("peer-redis", "redis_get")
if lookup and rget and type(lookup.value) == "number" and type(rget.value) == "number" then
  rows[#rows + 1] = { "http", "registry lookups vs redis GET", ("%.2fx"):format(lookup.value / rget.value), "",
    lookup.value >= rget.value and "met >= redis" or "MISSED < redis", "", "" }
  lookup.vs_redis_get = lookup.value / rget.value
end
-- the peers' own figures: redis, the Python sssn v0.0.1, and the plain-Python baseline (which is
-- NOT the Python sssn: dicts and lists, no pydantic, no asyncio)
local peer_label = { ["peer-redis"] = "redis", ["python-sssn"] = "Python sssn 0.0.1",
  ["python-baseline"] = "Python baseline (dict+list)" }
for _, g in ipairs { "peer-redis", "python-sssn", "python-baseline" } do
  for _, r in ipairs(results) do
    if r.group == g then
      rows[#rows + 1] = { peer_label[g], (r.key and r.key .. ": " or "") .. r.name,
        type(r.value) == "number" and fmt(r.value) .. " " .. (r.unit or "") or "-",
        r.p99_us and fmt(r.p99_us) .. " us" or "", "", "", "" }
    end
  end
end
if not python_ran then
  rows[#rows + 1] = { "Python sssn 0.0.1", "not run: SSSN_PY_SRC=DIR make bench measures it", "", "", "", "", "" }
end

local widths = {}
local header = { "group", "figure", "value", "p99", "target", "vs Python sssn", "vs redis" }
for _, row in ipairs({ header, table.unpack(rows) }) do
  for i, c in ipairs(row) do widths[i] = math.max(widths[i] or 0, #c) end
end
local function line(row)
  local cells = {}
  for i, c in ipairs(row) do cells[i] = c .. (" "):rep(widths[i] - #c) end
  print(table.concat(cells, "  "))
end
line(header)
for _, row in ipairs(rows) do line(row) end

local function cmd(c)
  local p = io.popen(c)
  local s = p:read("a") or ""
  p:close()
  return (s:gsub("%s+$", ""))
end
local doc = {
  date = cmd("date -u +%Y-%m-%dT%H:%M:%SZ"),
  commit = cmd("git rev-parse --short HEAD 2>/dev/null"),
  machine = { cpu = cmd("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), cores = tonumber(cmd("nproc")),
    kernel = cmd("uname -r") },
  results = sssn.array(results),
  python_sssn_ran = python_ran,
}
local f = assert(io.open(out_path, "w"))
f:write(json.encode(doc), "\n")
f:close()
io.stderr:write("written to ", out_path, "\n")
