--- events_scenario: the five utilization states of halo.event on every node.
--
--   events_scenario           (temporary)
--   └── events_sup            events.eventsSup    simple_one_for_one, 500 restarts / 5 s
--       ├── <anon> x 20       events.publisher    evt_0 .. evt_19
--       └── <anon> x 300      events.subscriber
--
--   evt_0..9   publish every 1..5 s, 40-60 subscribers across the cluster  active
--   evt_10..11 never publish, no subscribers                               idle
--   evt_12..14 publish every 1..5 s, no subscribers                        no_subscribers
--   evt_15..16 notify: publish only while someone subscribes               on_demand
--   evt_17..19 never publish, 10-17 subscribers each                       no_publishing
--
-- Subscribers 0..199 monitor 1..3 random local evt_0..9; 200..259 one
-- local evt_0..9 and 1..2 of a random remote node's evt_0..9; 260..299 one
-- local evt_17..19. Times are ms.
local halo = require("halo")
local scenario = require("scenario")

local M = {}

M.NAME = "events_scenario"

M.defaults = {
  publishers_after = 1000,  -- the supervisor starts the publishers
  subscribers_after = 5000, -- then the subscribers
  subscribers = 300,
  publish_every = { 1000, 5000 },
  remote_retry = { 1000, 5000 }, -- a remote subscription that failed or was lost is tried again
}

-- Publisher i: what its event does (indices are the reference's).
local function category(i)
  if i <= 9 then return "active" end
  if i <= 11 then return "idle" end
  if i <= 14 then return "no_subscribers" end
  if i <= 16 then return "on_demand" end
  return "no_publishing"
end
M.category = category

-- events.publisher -------------------------------------------------------------

local Publisher = { name = "events.publisher" }
M.Publisher = Publisher
-- what it publishes (halo.message: for the MCP tools message_types and message_type_info)
halo.message.define("events/MessageEventData", { Seq = "integer", Node = "string" })

function Publisher:init(args)
  self.o, self.i, self.seq = args.options, args.index, 0
  self.event = "evt_" .. args.index
  self.kind = category(args.index)
  assert(halo.event.register(self.event, { notify = self.kind == "on_demand" }))
  if self.kind == "active" or self.kind == "no_subscribers" then self:arm() end
end

function Publisher:arm()
  self.timer = halo.send_after(halo.self(), "publish", scenario.draw(self.o.publish_every))
end

function Publisher:handle_message(_, msg)
  if msg == "publish" then
    self.timer = nil
    self.seq = self.seq + 1
    halo.event.publish(self.event, { type = "MessageEventData", Seq = self.seq, Node = scenario.node() })
    halo.log.debug("published %s seq %d", self.event, self.seq)
    self:arm()
  elseif type(msg) == "table" and msg.kind == "event_start" then
    if not self.timer then self:arm() end
  elseif type(msg) == "table" and msg.kind == "event_stop" then
    -- the reference keeps publishing after its last subscriber left; halo stops
    if self.timer then halo.cancel_timer(self.timer) end
    self.timer = nil
  end
end

-- events.subscriber ------------------------------------------------------------

local Subscriber = { name = "events.subscriber" }
M.Subscriber = Subscriber

local function pick(lo, hi) return "evt_" .. math.random(lo, hi) end

function Subscriber:init(args)
  self.o, self.i = args.options, args.index
  self.remote = {} -- wanted remote subscriptions: { node, event, done }
  local i, wanted = args.index, {}
  if i < 200 then
    for _ = 1, math.random(1, 3) do wanted[pick(0, 9)] = true end
  elseif i < 260 then
    wanted[pick(0, 9)] = true
    local remotes = scenario.remotes(M.NAME) or {}
    if #remotes > 0 then
      local seen = {}
      for _ = 1, math.random(1, 2) do -- a pick made twice is one subscription
        local node, event = remotes[math.random(#remotes)], pick(0, 9)
        if not seen[node .. " " .. event] then
          seen[node .. " " .. event] = true
          self.remote[#self.remote + 1] = { node = node, event = event }
        end
      end
    end
  else
    wanted[pick(17, 19)] = true
  end
  for name in pairs(wanted) do halo.event.monitor(name) end -- a duplicate is refused: ignored
  -- remote subscriptions wait on other nodes: after init, not inside the supervisor's callback
  if #self.remote > 0 then halo.send(halo.self(), "subscribe") end
end

-- Subscribes what is not subscribed yet; a failure is tried again later.
function Subscriber:subscribe()
  local missing = false
  for _, r in ipairs(self.remote) do
    if not r.done then
      local ok, err, code = halo.event.monitor(r.event, r.node)
      if ok or code == "ETARGETEXIST" then
        r.done = true
      else
        halo.log.debug("subscriber %d: %s on %s: %s", self.i, r.event, r.node, tostring(err))
        missing = true
      end
    end
  end
  if missing then halo.send_after(halo.self(), "subscribe", scenario.draw(self.o.remote_retry)) end
end

function Subscriber:handle_event(event, message)
  halo.log.debug("received event %s from %s", event, type(message) == "table" and tostring(message.Node) or "?")
end

function Subscriber:handle_message(_, msg)
  if msg == "subscribe" then return self:subscribe() end
  if halo.is_down(msg) and msg.event then -- its producer ended, or its node went away
    for _, r in ipairs(self.remote) do
      if r.done and r.event == msg.event then
        r.done = false
        halo.log.warning("subscriber %d: lost %s on %s: %s", self.i, r.event, r.node, tostring(msg.reason))
        halo.send_after(halo.self(), "subscribe", scenario.draw(self.o.remote_retry))
      end
    end
    return
  end
  halo.log.warning("subscriber %d: unhandled message %s", self.i, tostring(msg))
end

-- events_sup -------------------------------------------------------------------

M.Sup = scenario.supervisor("events.eventsSup", {
  init = function(self, o)
    self.o = o
    halo.send_after(halo.self(), "start_publishers", o.publishers_after)
  end,
  handle_message = function(self, _, msg)
    if msg == "start_publishers" then
      halo.log.info("events: starting 20 publishers")
      for i = 0, 19 do
        local pid, err = self:start_child("events_publisher", { index = i, options = self.o })
        if not pid then halo.log.warning("events: start publisher %d failed: %s", i, tostring(err)) end
      end
      halo.send_after(halo.self(), "start_subscribers", self.o.subscribers_after)
      return true
    elseif msg == "start_subscribers" then
      halo.log.info("events: starting %d subscribers", self.o.subscribers)
      for i = 0, self.o.subscribers - 1 do
        local pid, err = self:start_child("events_subscriber", { index = i, options = self.o })
        if not pid then halo.log.warning("events: start subscriber %d failed: %s", i, tostring(err)) end
      end
      return true
    end
    return false
  end,
})

-- the application ----------------------------------------------------------------

--- The application spec; opts override M.defaults.
function M.application(opts)
  local o = scenario.options(M.NAME, M.defaults, opts)
  local sup = { strategy = "simple_one_for_one", intensity = 500, period = 5, children = {
    { name = "events_publisher", behavior = Publisher, restart = "permanent" },
    { name = "events_subscriber", behavior = Subscriber, restart = "permanent" },
  } }
  return {
    name = M.NAME, mode = "temporary", modules = { "scenario", "events" }, env = o,
    description = "publishers and subscribers in the five utilization states",
    group = { { name = "events_sup", behavior = M.Sup, args = { spec = sup, options = o } } },
  }
end

--- Loads and starts the application.
function M.start(opts) return scenario.start(M.application(opts)) end

return M
