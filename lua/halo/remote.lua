--- halo.remote: what one node may ask of another: spawning a process,
-- starting an application, subscribing to an event, and the operator's
-- operations of halo.admin (`halo call`). Every node in the
-- network runs the system process `halo_remote` that answers these
-- requests (they travel as ordinary calls).
--
--   -- on node b: allow it (the node flag is on by default; the allow-list is empty)
--   halo.remote.enable_spawn("worker", Worker)            -- any node
--   halo.remote.enable_spawn("worker", Worker, "a@host")  -- or only these
--   halo.remote.enable_application_start("shop", "a@host")
--   -- on node a
--   local pid = assert(halo.remote.spawn("b@host", "worker", args, { name = "w1" }))
--   assert(halo.remote.start_application("b@host", "shop"))
--   halo.event.monitor("prices", "b@host")                 -- a remote event
--
-- A request needs both the node flag (halo.remote.set_flags{spawn = false}
-- turns it off) and an allow-list entry naming the caller's node (or no
-- node: any). A refusal is answered at once with ENOTALLOWED "not allowed"
-- (the reference's v3.2 never answered when the flag was off); a name that
-- was never enabled with ENAMEUNKNOWN "unknown name", as in the reference.
local halo = require("halo")
local core = require("halo.core")

local M = {}

local SERVICE = "halo_remote"
local TIMEOUT = 5000

-- Per node run: the behaviors enabled for spawn (the allow-lists and the
-- node flags live in C: core.remote) and the remote event subscribers.
local state, state_key
local function st()
  local key = core.node.serial()
  if state_key ~= key or not state then
    state_key = key
    state = { spawn = {}, subs = {} }
  end
  return state
end

local function refuse(err, code) return { nil, err, code } end

local Service = { name = "halo.remote", kind = "system" }

local function incorrect(what) return { nil, "EINCORRECT: incorrect value or argument: " .. what, "EINCORRECT" } end
local HOW = { link = true, monitor = true }
local MODES = { temporary = true, transient = true, permanent = true }

-- Every request is checked, and run protected: a bad one is answered with
-- an error, never ends the service.
local function serve(from, ref, req)
  if type(req) ~= "table" then return incorrect("a request table") end
  for _, k in ipairs({ "name", "register", "log_level", "mode", "event" }) do
    if req[k] ~= nil and type(req[k]) ~= "string" then return incorrect(k .. " must be a string") end
  end
  local s = st()
  if req.op == "admin" then return require("halo.admin").serve(from, ref, req) end
  if req.op == "inspect" or req.op == "act" then return require("halo.inspect").serve(from, ref, req) end
  if req.op == "spawn" or req.op == "application_start" then
    local ok, err, code = core.remote.check(req.op, req.name or "", from)
    if not ok then return refuse(err, code) end
    if req.op == "application_start" then
      if req.mode ~= nil and not MODES[req.mode] then return incorrect("mode must be temporary, transient or permanent") end
      return { halo.application.start(req.name, nil, req.mode) }
    end
    local opts = { name = req.register, log_level = req.log_level }
    return { halo.spawn(s.spawn[req.name], req.args, opts) }
  elseif req.op == "event_subscribe" or req.op == "event_unsubscribe" then
    if not HOW[req.how] or not req.event or req.event == "" then return incorrect("event and how (link or monitor)") end
    -- the subscriber is the caller itself: a node cannot subscribe a third one's process
    if req.op == "event_unsubscribe" then
      local r = { core.event.unsubscribe_remote(req.event, req.how, from) }
      if r[1] and s.subs[from] then s.subs[from][req.event .. "\0" .. req.how] = nil end
      return r
    end
    local r = { core.event.subscribe_remote(req.event, req.how, from) }
    if r[1] then -- watch the subscriber: its end (or its node's) ends its subscriptions here
      if not s.subs[from] then
        s.subs[from] = {}
        halo.monitor(from)
      end
      s.subs[from][req.event .. "\0" .. req.how] = { req.event, req.how }
    end
    return r
  end
  return incorrect("unknown request")
end

-- A subscriber (or its node) is gone: its subscriptions go too.
function Service:handle_message(_, msg)
  local s = st()
  if not halo.is_down(msg) or not s.subs[msg.pid] then return end
  for _, sub in pairs(s.subs[msg.pid]) do core.event.unsubscribe_remote(sub[1], sub[2], msg.pid) end
  s.subs[msg.pid] = nil
end

-- The service's figures: remote processes subscribed to this node's events
-- through it, and their subscriptions.
function Service:handle_inspect()
  local subscribers, subscriptions = 0, 0
  for _, subs in pairs(st().subs) do
    subscribers = subscribers + 1
    for _ in pairs(subs) do subscriptions = subscriptions + 1 end
  end
  return { remote_subscribers = tostring(subscribers), remote_subscriptions = tostring(subscriptions) }
end

function Service:handle_call(from, ref, req)
  local ok, r = pcall(serve, from, ref, req)
  if ok then return r end
  halo.log.warning("halo_remote: a request from %s failed: %s", tostring(from), tostring(r))
  return { nil, "EINCORRECT: incorrect value or argument: " .. tostring(r), "EINCORRECT" }
end

--- Starts the service (the network does it when it starts).
function M.serve()
  if halo.whereis and halo.whereis(SERVICE) then return true end
  return halo.spawn(Service, nil, { name = SERVICE })
end

local function ask(node, req)
  if type(node) ~= "string" or not node:find("@", 1, true) then error("a node name name@host expected", 3) end
  if node == halo.node_info().Name then return nil, "ENOTALLOWED: not allowed: this node", "ENOTALLOWED" end
  local r, err, code = halo.call(halo.net.process_id(SERVICE, node), req, TIMEOUT)
  if not r then return nil, err, code end
  return r[1], r[2], r[3]
end

--- Spawns on node an enabled behavior `name`; opts: name (register it
-- there), log_level. Returns its PID or nil, err, code.
function M.spawn(node, name, args, opts)
  opts = opts or {}
  return ask(node, { op = "spawn", name = name, args = args, register = opts.name, log_level = opts.log_level })
end

--- Starts application `name` on node (mode as halo.application.start).
function M.start_application(node, name, mode)
  return ask(node, { op = "application_start", name = name, mode = mode })
end

local function display_name(b) return type(b) == "table" and (b.name or "table") or tostring(b) end

--- Lets nodes (all when none are named; more names add to the list) spawn
-- behavior under name here. Re-enabling a name with another behavior: ETAKEN.
function M.enable_spawn(name, behavior, ...)
  if type(name) ~= "string" or name == "" then error("a name expected", 2) end
  if type(behavior) ~= "table" and type(behavior) ~= "string" and type(behavior) ~= "function" then
    error("a behavior (table, module name or function) expected", 2)
  end
  local s = st()
  if s.spawn[name] ~= nil and s.spawn[name] ~= behavior then return core.node.error("ETAKEN", "spawn name " .. name) end
  local ok, err, code = core.remote.enable("spawn", name, display_name(behavior), ...)
  if ok then s.spawn[name] = behavior end
  return ok, err, code
end

--- Removes nodes from name's list, or (no nodes) the whole entry (EUNKNOWN if absent).
function M.disable_spawn(name, ...)
  local ok, err, code = core.remote.disable("spawn", name, ...)
  if ok and select("#", ...) == 0 then st().spawn[name] = nil end
  return ok, err, code
end

--- Lets nodes start application name here (all when none are named).
function M.enable_application_start(name, ...)
  if type(name) ~= "string" or name == "" then error("an application name expected", 2) end
  return core.remote.enable("application_start", name, nil, ...)
end

function M.disable_application_start(name, ...) return core.remote.disable("application_start", name, ...) end

--- The node flags: spawn and application_start (both on by default).
M.set_flags = core.remote.set_flags
M.flags = core.remote.flags

--- Subscribes the calling process to event `name` of node (how: "link" or
-- "monitor"); returns the buffered envelopes, oldest first, the event's
-- producer and the token its end's notice carries (halo.event keeps them).
function M.event_subscribe(node, name, how)
  return ask(node, { op = "event_subscribe", event = name, how = how })
end

function M.event_unsubscribe(node, name, how)
  return ask(node, { op = "event_unsubscribe", event = name, how = how })
end

return M
