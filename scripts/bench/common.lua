-- What the in-process benchmarks share (scripts/bench/local_*.lua load it with dofile): one
-- `RESULT {json}` line per figure (scripts/bench/run.sh collects them), rates over wall time,
-- percentiles. Every loop is bounded by a count and by wall time.
local sssn = require "sssn"
local testing = require "sssn.testing"

local M = { now = testing.walltime }

function M.result(name, value, unit, extra)
  local r = { group = "local", name = name, value = value, unit = unit }
  for k, v in pairs(extra or {}) do r[k] = v end
  io.stdout:write("RESULT ", sssn.json.encode(r), "\n")
  io.stdout:flush()
end

-- Runs body(n) in batches until `seconds` of wall time passed; returns operations per second.
function M.rate(seconds, batch, body)
  local done, t0 = 0, M.now()
  repeat
    body(batch)
    done = done + batch
  until M.now() - t0 >= seconds
  return done / (M.now() - t0)
end

function M.percentile(samples, p)
  table.sort(samples)
  return samples[math.max(1, math.ceil(#samples * p / 100))]
end

return M
