-- sssn.remote: channels of other hosts over HTTP. RemoteChannel is what self:connect returns
-- for a channel served by another host (its ChannelInfo has an endpoint). Every call yields
-- the calling coroutine while the request is in flight (core.http), so nothing blocks the
-- host. (A registry on another host is a backend in C: host/sys/regbackend_http.c.)
-- Who calls: without a credential, the system's id is the Bearer token (an open host names
-- its reader by it). With the host's credential (--token-file), the binding sends that as
-- the Bearer (it never reaches Lua), reads, claims, acks and nacks name the reading system
-- with ?reader=<system id>, and writes leave sender_id to the server (the token's subject).
local core = require "sssn.core"

local M = {}

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.escape = escape

local function detail_of(body)
  local ok, v = pcall(core.json_decode, body)
  if ok and type(v) == "table" and type(v.detail) == "string" then return v.detail end
  return (body or ""):sub(1, 200)
end

local status_words = {
  [400] = "bad request", [401] = "unauthorised", [403] = "forbidden", [404] = "not found",
  [405] = "not allowed", [413] = "too large", [429] = "busy", [500] = "server error",
}

-- JSON null in a decoded envelope becomes nil, as for local reads.
local envelope_fields = { "sender_id", "correlation_id", "reply_to", "recipient_id" }
local function clean_message(m)
  for _, k in ipairs(envelope_fields) do
    if m[k] == core.null then m[k] = nil end
  end
  if m.metadata == core.null or m.metadata == nil then m.metadata = {} end
  if type(m.content) ~= "table" then m.content = { data = nil } end
  if m.content.data == core.null then m.content.data = nil end
  return m
end

local function query(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then parts[#parts + 1] = kv[1] .. "=" .. escape(kv[2]) end
  end
  return #parts > 0 and "?" .. table.concat(parts, "&") or ""
end

-- Channels -----------------------------------------------------------------------------

local RemoteChannel = {}
RemoteChannel.__index = RemoteChannel
M.RemoteChannel = RemoteChannel

--- info: a ChannelInfo with an endpoint; reader: the id this side reads as (its Bearer token,
--- or with the host's credential its ?reader=).
function RemoteChannel.new(info, reader)
  return setmetatable({ id = info.id, info = info, endpoint = (info.endpoint:gsub("/+$", "")),
    reader = reader, credential = core.has_credential(), subscriptions = {} }, RemoteChannel)
end

-- The value of ?reader= (nil without a credential: the Bearer token names the reader).
function RemoteChannel:_reader_param()
  return self.credential and self.reader or nil
end

function RemoteChannel:_call(fn, method, suffix, body, timeout)
  local url = ("%s/channels/%s%s"):format(self.endpoint, escape(self.id), suffix)
  -- true: the binding sends the host's credential
  local bearer = self.credential or self.reader
  local status, resp = core.http(method, url, body and core.json_encode(body) or nil, bearer, timeout or 30)
  if not status then
    error(("sssn: channel '%s' at %s is unreachable: %s (%s)"):format(self.id, self.endpoint, resp, fn), 0)
  end
  if status == 200 then return core.json_decode(resp) end
  error(("sssn: channel '%s' at %s: %s: %s (%s)"):format(self.id, self.endpoint,
    status_words[status] or ("HTTP " .. status), detail_of(resp), fn), 0)
end

local function messages_of(res)
  local list = res.messages or {}
  for _, m in ipairs(list) do clean_message(m) end
  return list
end

function RemoteChannel:read(opts)
  opts = opts or {}
  local res = self:_call("read_channel", "GET", query { { "limit", opts.limit }, { "after", opts.after },
    { "exclusive", opts.exclusive and "true" or nil }, { "wait", opts.wait }, { "reader", self:_reader_param() } },
    nil, (opts.wait or 0) + 30)
  return messages_of(res), res.missed or 0
end

function RemoteChannel:claim(opts)
  opts = opts or {}
  return (self:read { limit = opts.limit, exclusive = true })
end

function RemoteChannel:write(data, opts)
  opts = opts or {}
  -- with a credential the server names the sender: "<subject>/<system id>" from ?reader= (a
  -- sender_id of its own choosing would be refused)
  local env = { content = { data = data }, metadata = opts.metadata or {},
    sender_id = not self.credential and self.reader or nil,
    correlation_id = opts.correlation_id, reply_to = opts.reply_to, recipient_id = opts.recipient_id }
  local res = self:_call("write_channel", "PUT", query { { "direct", "true" }, { "reader", self:_reader_param() } }, env)
  return res.item_id
end

function RemoteChannel:ack(ids, nack)
  local res = self:_call(nack and "nack_channel" or "acknowledge_channel", "POST",
    (nack and "/nack" or "/acknowledge") .. query { { "reader", self:_reader_param() } },
    { message_ids = core.array(ids) })
  return nack and res.nacked or res.acknowledged
end

--- Delivers each new message to fn from a background coroutine of the calling system, over
--- long-polls. On failure it retries with backoff and resumes after the last message it
--- delivered; if the serving host restarted (a new epoch), it starts from the oldest held.
function RemoteChannel:subscribe(fn, system_id)
  local sub = { active = true }
  self.subscriptions[#self.subscriptions + 1] = sub
  sub.task = core.spawn(function()
    local after, epoch, backoff, failing = nil, nil, 0.1, false
    while sub.active do
      -- right after a failure, ask without waiting: the host may have restarted (new epoch)
      local ok, res = pcall(self._call, self, "subscribe_channel", "GET",
        query { { "limit", 100 }, { "wait", failing and 0 or 20 }, { "after", after },
          { "reader", self:_reader_param() } }, nil, 30)
      if not sub.active then return end
      if not ok then
        if not failing then core.log("warn", ("%s; retrying"):format(res)) end
        failing = true
        core.sleep(backoff)
        backoff = math.min(backoff * 2, 5)
      else
        if failing then core.log("info", ("channel '%s' at %s is back"):format(self.id, self.endpoint)) end
        failing, backoff = false, 0.1
        if epoch and res.epoch ~= epoch then
          after, epoch = 0, res.epoch -- the serving host restarted: take what its channel holds
        else
          epoch = res.epoch
          for _, m in ipairs(messages_of(res)) do
            if not sub.active then return end
            local fok, ferr = pcall(fn, m)
            if not fok then core.log("error", ("subscriber of '%s' failed: %s"):format(self.id, tostring(ferr))) end
            after = m.seq
          end
        end
      end
    end
  end)
  return sub
end

--- Ends the subscriptions at once: a poll in flight is aborted, so it cannot move this
--- reader's cursor past messages nobody will deliver.
function RemoteChannel:unsubscribe()
  for _, sub in ipairs(self.subscriptions) do
    sub.active = false
    if sub.task then core.cancel(sub.task) end
  end
  self.subscriptions = {}
end

return M
