-- sssn.registry_more: the registry calls used less, added to sssn.registry's Registry table
-- the first time one of them is looked up (see the end of registry.lua).
local core = require "sssn.core"

return function(Registry)
  local check_self, check_arg, checked, raise = Registry._check_self, Registry._check_arg, Registry._checked,
    Registry.raise

--- Who holds an entry, for messages: "<registrant> at <endpoint>", or an operator's.
function Registry.holder_text(registrant, endpoint)
  local who = registrant and ("registrant '%s'"):format(registrant) or "an operator (no registrant)"
  return endpoint and ("%s at %s"):format(who, endpoint) or who
end

--- The reason a deregistration changed nothing, as deregister_* return it.
function Registry.not_removed(kind, id, why, registrant, endpoint)
  if why == "not_owner" then
    return ("%s '%s' is registered by another registrant: %s"):format(kind, id,
      Registry.holder_text(registrant, endpoint))
  end
  return ("%s '%s' is not registered"):format(kind, id)
end

-- true when removed; false and the reason otherwise. A system removes only what it
-- registered itself (a registration another registrant took over stays theirs); calls from
-- outside any system act as an operator and remove whatever is there.
local function deregister(kind, id)
  local fn = "deregister_" .. kind
  check_arg(type(id) == "string", fn, "id must be a string")
  local ok, why, registrant, endpoint = checked(fn, core.reg_remove(kind, id))
  if ok then return true end
  return false, Registry.not_removed(kind, id, why, registrant, endpoint)
end

function Registry:deregister_channel(id)
  check_self(self, "deregister_channel")
  return deregister("channel", id)
end

function Registry:deregister_system(id)
  check_self(self, "deregister_system")
  return deregister("system", id)
end

--- The registry's events after `index` as JSON text {"index": n, "events": [...]}, waiting
--- (yielding) up to `wait` seconds for the first when there is none yet; only those about
--- `registrant`'s entries, or those of registrants starting with `prefix`, when given. An
--- index beyond the newest event (a registry that restarted) is answered at once. Returns
--- the text and how many events it holds, or nil, type, message. The API's
--- /registry/events is this.
function Registry.events_json(index, limit, wait, registrant, prefix, viewer)
  local deadline = wait and wait > 0 and core.now() + wait
  while true do
    local body, count, next_index, waitable = core.reg_events(index, limit, deadline and deadline - core.now() or 0,
      registrant, prefix, viewer)
    if not body then return nil, count, next_index end
    if count > 0 or not waitable or not deadline then return body, count end
    local left = deadline - core.now()
    if left <= 0 then return body, count end
    core.wait("registry", next_index, left)
    index = next_index
  end
end

--- Registry events after `index` (0: all held; math.maxinteger: from now on): a list of
--- {index, event, kind, id, registrant, entry, timestamp} and the index to pass next. With
--- wait > 0 it waits (yielding) up to that many seconds for an event when there is none yet.
function Registry:events(index, wait)
  check_self(self, "events")
  local body, etype, message = Registry.events_json(math.max(index or 0, 0), 1000, wait)
  if not body then raise("events", etype, message) end
  local res = core.json_decode(body)
  return res.events, res.index
end

--- Purges expired entries now (the host also does it every --maintenance seconds).
function Registry:maintain()
  check_self(self, "maintain")
  return core.reg_maintain()
end

--- Entries held (live or awaiting purge): channels, systems, and entries expired so far.
function Registry:counts()
  check_self(self, "counts")
  return checked("counts", core.reg_counts())
end

end
