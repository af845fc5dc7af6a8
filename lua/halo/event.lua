--- halo.event: named publish/subscribe channels.
--
--   -- producer
--   assert(halo.event.register("prices", { buffer = 10, notify = true }))
--   halo.event.publish("prices", { sym = "X", px = 12.5 })
--   -- subscriber (a behavior gets handle_event(self, event, message, time))
--   local recent = halo.event.monitor("prices") -- or link: the event's end then ends it
--
-- Options: buffer (replay the last N publishes to each new subscriber),
-- notify (the producer gets {kind = "event_start", event} when the first
-- subscriber arrives and {kind = "event_stop", event} when the last leaves),
-- open (any process may publish, not only the producer).
-- A published message reaches subscribers as the envelope
-- {event = name, message = msg, time = unix ns}; the producer's end (or
-- unregister) ends the event: subscribers get {kind = "down" | "exit",
-- event = name, pid = producer, reason}. Fan-out and counters live in C.
local core = require("halo.core")
local core_publish, time_ns = core.event.publish, core.node.time_ns

local M = {}

local OPT_KEYS = { buffer = true, notify = true, open = true }

--- Registers event name with the calling process as its producer.
-- Returns true or nil, "ETAKEN: resource is taken", "ETAKEN".
function M.register(name, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("event options table expected", 2) end
  for k in pairs(opts) do
    if not OPT_KEYS[k] then error(("unknown event option '%s'"):format(tostring(k)), 2) end
  end
  return core.event.register(name, opts.buffer, opts.notify, opts.open)
end

--- Ends an event (producer only); subscribers get the reason "unregistered".
M.unregister = core.event.unregister

--- Publishes msg to every subscriber (and into the buffer).
-- Returns true or nil, err, code (EEVENTUNKNOWN, ENOTOWNER).
function M.publish(name, msg)
  return core_publish(name, { event = name, message = msg, time = time_ns() })
end

-- An event of another node: its halo_remote service subscribes the caller
-- (publications then count as that event's remote sends).
local function remote(node)
  if node == nil then return nil end
  if type(node) ~= "string" then error("a node name name@host expected", 3) end
  if node == core.introspect.node_info().Name then return nil end
  return require("halo.remote")
end

-- A (un)subscription of how ("link" or "monitor"), here or at node. This
-- node keeps a record of a remote subscription, so that losing that node
-- ends it as the event's end would (with reason "no connection").
local function subscription(how, on)
  return function(name, node)
    local r = remote(node)
    if not r then return (on and core.event.subscribe or core.event.unsubscribe)(name, how) end
    if not on then
      local ok, err, code = r.event_unsubscribe(node, name, how)
      if ok then core.event.unwatch_remote(node, name, how) end
      return ok, err, code
    end
    local buffered, producer, token = r.event_subscribe(node, name, how)
    if not buffered then return nil, producer, token end
    if producer then core.event.watch_remote(node, name, how, producer, token) end
    return buffered
  end
end

--- Subscribes by link (to the event of node, when given); returns the
-- buffered envelopes, oldest first.
M.link = subscription("link", true)
--- Subscribes by monitor (to the event of node, when given); returns the
-- buffered envelopes, oldest first.
M.monitor = subscription("monitor", true)
M.unlink = subscription("link", false)
M.demonitor = subscription("monitor", false)

--- EventInfo of one event (UtilizationState included), or nil,
-- "EEVENTUNKNOWN: unknown event".
M.info = core.event.info

local SORT_FIELDS = { subscribers = "Subscribers", published = "MessagesPublished",
                      local_sent = "MessagesLocalSent", remote_sent = "MessagesRemoteSent" }
local STATES = { active = true, on_demand = true, idle = true, no_subscribers = true, no_publishing = true }
local FILTER_KEYS = { name = true, producer = true, notify = true, has_buffer = true, min_subscribers = true,
                      max_subscribers = true, min_published = true, max_published = true, min_local_sent = true,
                      min_remote_sent = true, utilization_state = true, sort_by = true, limit = true }

--- Events matching filter, as EventInfo tables with UtilizationState.
-- filter: name (substring), producer (substring of the producer's PID or
-- registered name), notify, has_buffer, min_/max_subscribers,
-- min_/max_published, min_local_sent, min_remote_sent, utilization_state,
-- sort_by (subscribers | published | local_sent | remote_sent, descending),
-- limit (default 100; negative: no limit).
function M.list(filter)
  filter = filter or {}
  for k in pairs(filter) do
    if not FILTER_KEYS[k] then error(("unknown event filter '%s'"):format(tostring(k)), 2) end
  end
  local sort_field = filter.sort_by and SORT_FIELDS[filter.sort_by]
  if filter.sort_by and not sort_field then
    error("sort_by must be subscribers, published, local_sent or remote_sent", 2)
  end
  if filter.utilization_state and not STATES[filter.utilization_state] then
    error("utilization_state must be active, on_demand, idle, no_subscribers or no_publishing", 2)
  end
  local limit = filter.limit or 0
  if limit == 0 then limit = 100 end
  local out = {}
  for _, e in ipairs(core.event.list()) do
    local ok = true
    if filter.name and not e.Name:find(filter.name, 1, true) then ok = false end
    if ok and filter.producer then
      local pname = core.introspect.process_name(e.Producer) or ""
      ok = e.Producer:find(filter.producer, 1, true) ~= nil or pname:find(filter.producer, 1, true) ~= nil
    end
    if ok and filter.utilization_state and e.UtilizationState ~= filter.utilization_state then ok = false end
    if ok and filter.notify ~= nil and e.Notify ~= filter.notify then ok = false end
    if ok and filter.has_buffer ~= nil and (e.BufferSize > 0) ~= filter.has_buffer then ok = false end
    if ok and filter.min_subscribers and e.Subscribers < filter.min_subscribers then ok = false end
    if ok and filter.max_subscribers and e.Subscribers > filter.max_subscribers then ok = false end
    if ok and (filter.min_published or 0) > 0 and e.MessagesPublished < filter.min_published then ok = false end
    if ok and filter.max_published and e.MessagesPublished > filter.max_published then ok = false end
    if ok and (filter.min_local_sent or 0) > 0 and e.MessagesLocalSent < filter.min_local_sent then ok = false end
    if ok and (filter.min_remote_sent or 0) > 0 and e.MessagesRemoteSent < filter.min_remote_sent then ok = false end
    if ok then
      out[#out + 1] = e
      if not sort_field and limit > 0 and #out >= limit then break end
    end
  end
  if sort_field then
    table.sort(out, function(a, b)
      if a[sort_field] ~= b[sort_field] then return a[sort_field] > b[sort_field] end
      return a.Name < b.Name
    end)
    if limit > 0 then for i = #out, limit + 1, -1 do out[i] = nil end end
  end
  local mt = debug.getregistry()["halo.array_mt"] -- prints [] in JSON when empty
  if mt then setmetatable(out, mt) end
  return out
end

return M
