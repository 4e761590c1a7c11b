-- sssn.system_more: the System methods few systems call (request, descriptor), added to the
-- System table the first time one of them is looked up (see System's metatable in init.lua).
local core = require "sssn.core"

return function(System, sssn)
  local h = System._helpers
  local check_table, check_fields, REQUEST_OPTS, remote_of, sys = h.check_table, h.check_fields,
    h.REQUEST_OPTS, h.remote_of, h.sys

  local request_counter = 0

  --- Request/reply: writes data to channel_id with a fresh correlation_id and reply_to, then
  --- waits (yielding) for the message on reply_to that carries the same correlation_id.
  --- opts: reply_to (required: a channel this system reads, best a mailbox of its own),
  --- timeout (30 s), metadata, recipient_id. Returns the reply message, or nil and "timeout".
  --- Other messages this system reads from reply_to meanwhile are passed over.
  function System:request(channel_id, data, opts)
    opts = opts or {}
    check_table(opts, "the options", "request")
    check_fields(opts, REQUEST_OPTS, "request", "option")
    local reply_to = opts.reply_to
    if type(reply_to) ~= "string" then
      error("sssn: request needs opts.reply_to, the id of a channel this system reads (request)", 2)
    end
    request_counter = request_counter + 1
    local corr = ("%s-%x-%d"):format(self.id, math.floor(core.now() * 1e6), request_counter)
    local rc = remote_of(self, reply_to)
    local after
    if not rc then
      after = core.channel_stats(reply_to).last_seq
    end
    self:write_channel(channel_id, data, { correlation_id = corr, reply_to = reply_to,
      metadata = opts.metadata, recipient_id = opts.recipient_id })
    local deadline = core.now() + (opts.timeout or 30)
    while true do
      local left = deadline - core.now()
      local msgs = rc and rc:read { limit = 100, wait = math.max(0, math.min(left, 20)) }
        or self:read_channel(reply_to, { limit = 100 })
      for _, m in ipairs(msgs) do
        if m.correlation_id == corr then return m end
      end
      left = deadline - core.now()
      if left <= 0 then return nil, "timeout" end
      if not rc then
        core.wait(reply_to, after, left)
        after = core.channel_stats(reply_to).last_seq
      end
    end
  end

  --- The service descriptor upstream's register_system takes.
  function System:descriptor()
    local owned, connected = core.sys_channels(sys(self, "descriptor"))
    for rid in pairs(rawget(self, "_remote") or {}) do connected[#connected + 1] = rid end
    table.sort(connected)
    local services = sssn.array {}
    for i, s in ipairs(self.services or {}) do
      services[i] = { name = s.name, description = s.description or "", parameters = s.parameters }
    end
    return {
      system_id = self.id,
      system_name = self.name,
      description = self.description or "",
      services = services,
      channels_read = sssn.array(connected),
      channels_write = sssn.array(owned),
    }
  end
end
