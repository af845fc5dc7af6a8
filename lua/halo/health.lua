--- halo.health: health signals behind the /health/live, /health/ready and
-- /health/startup probes (the reference's radar health actor, §3).
--
--   halo.spawn(halo.health.behavior, { publish = fn, check_interval = 1000 }, { name = "radar_health" })
--   halo.health.register("db", { probes = { "live", "ready" }, timeout = 5000 })
--   halo.health.heartbeat("db")           -- at least every 5 s
--   halo.health.down("db"); halo.health.up("db"); halo.health.unregister("db")
--   halo.health.status("ready")           --> 200, '{"status":"healthy","signals":[...]}'
--
-- A signal has a name, a probe mask (live = 1, ready = 2, startup = 4; 0 or
-- nil means live), a heartbeat timeout in ms (0 = none), an owner (the
-- process that registered it, monitored) and a state, up or down. New and
-- re-registered signals are up with a fresh heartbeat. A heartbeat stamps a
-- signal and brings it up; up and down set it. Every check_interval ms a
-- signal that is up and has a timeout goes down when its last heartbeat is
-- older than the timeout. When an owner ends its signals go down and stay
-- listed until unregistered. Register and unregister are calls (so nothing
-- sent after them can overtake them); heartbeat, up and down are messages,
-- and a name nobody registered is ignored.
--
-- On every change the process computes each probe's answer: 200 when every
-- signal of the probe is up or it has none, else 503, and a JSON body
-- {"status":"healthy"|"unhealthy"} plus, when the probe has signals,
-- "signals":[{"signal":name,"status":"up"|"down","timeout":"5s"}] sorted
-- by name, timeout in Go duration text and left out when 0. Each probe
-- whose answer changed is handed to publish(probe, status, body) (from
-- the start args; all three once at start); one whose publish raised is
-- handed again at every check until it succeeds.
local halo = require("halo")
local cjson = require("cjson")

local M = {}

M.NAME = "radar_health"
M.PROBES = { live = 1, ready = 2, startup = 4 }
local ORDER = { "live", "ready", "startup" }
local DEFAULT_INTERVAL = 1000
local TAG = "$health" -- the key of the messages the process takes

--- ms as Go prints a time.Duration: 500ms, 5s, 1.5s, 1m0s, 1h0m0s.
function M.duration(ms)
  if ms == 0 then return "0s" end
  if ms < 1000 then return ("%dms"):format(ms) end
  local h = math.floor(ms / 3600000)
  local m = math.floor(ms % 3600000 / 60000)
  local rest = ms % 60000
  local s = ("%d"):format(math.floor(rest / 1000))
  if rest % 1000 > 0 then s = s .. (("%.3f"):format(rest % 1000 / 1000):sub(2):gsub("0+$", "")) end
  if h > 0 then return ("%dh%dm%ss"):format(h, m, s) end
  if m > 0 then return ("%dm%ss"):format(m, s) end
  return s .. "s"
end

--- The status code and JSON body of probe for signals (name -> signal).
function M.answer(signals, probe)
  local bit_ = M.PROBES[probe]
  local list = {}
  for _, s in pairs(signals) do
    if s.probes % (2 * bit_) >= bit_ then list[#list + 1] = s end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  local healthy = true
  for _, s in ipairs(list) do healthy = healthy and s.up end
  local body = { '{"status":"', healthy and "healthy" or "unhealthy", '"' }
  if #list > 0 then
    body[#body + 1] = ',"signals":['
    for i, s in ipairs(list) do
      body[#body + 1] = ('%s{"signal":%s,"status":"%s"'):format(i > 1 and "," or "", cjson.encode(s.name),
        s.up and "up" or "down")
      if s.timeout > 0 then body[#body + 1] = (',"timeout":"%s"'):format(M.duration(s.timeout)) end
      body[#body + 1] = "}"
    end
    body[#body + 1] = "]"
  end
  body[#body + 1] = "}"
  return healthy and 200 or 503, table.concat(body)
end

-- The behavior ------------------------------------------------------------------------

local Health = { name = "halo.health" }
M.behavior = Health

local function arm(self)
  halo.send_after(halo.self(), { [TAG] = "check" }, self.interval)
end

-- Publishes each probe whose answer changed; one that fails is tried again
-- at the next check.
local function publish(self)
  self.failed = false
  for _, probe in ipairs(ORDER) do
    local status, body = M.answer(self.signals, probe)
    local last = self.published[probe]
    if not last or last[1] ~= status or last[2] ~= body then
      local ok, err = true, nil
      if self.publish then ok, err = pcall(self.publish, probe, status, body) end
      if ok then
        self.published[probe] = { status, body }
      else
        self.failed = true
        halo.log.error("(health) publishing %s failed: %s", probe, tostring(err))
      end
    end
  end
end

local function set_down(s, why)
  if not s.up then return false end
  s.up = false
  halo.log.warning("(health) signal %s down: %s", s.name, why)
  return true
end

local function set_up(s, why)
  if s.up then return false end
  s.up = true
  halo.log.info("(health) signal %s up again: %s", s.name, why)
  return true
end

-- Stops watching owner once it has no signal left.
local function release(self, owner)
  for _, s in pairs(self.signals) do
    if s.owner == owner then return end
  end
  if self.owners[owner] then
    self.owners[owner] = nil
    halo.demonitor(owner)
  end
end

function Health:init(args)
  args = args or {}
  if type(args) ~= "table" then error("health: args must be a table", 0) end
  local iv = args.check_interval or DEFAULT_INTERVAL
  if type(iv) ~= "number" or iv <= 0 then error("health: check_interval must be a number of ms > 0", 0) end
  if args.publish ~= nil and type(args.publish) ~= "function" then error("health: publish must be a function", 0) end
  self.interval = iv
  self.publish = args.publish
  self.path = args.path
  self.signals = {}   -- name -> {name, probes, timeout, owner, up, beat}
  self.owners = {}    -- pid -> true while monitored
  self.published = {} -- probe -> {status, body} last handed to publish
  publish(self)
  arm(self)
end

local function register(self, owner, name, probes, timeout)
  if type(name) ~= "string" or name == "" then return { nil, "EINCORRECT: empty signal name" } end
  if type(probes) ~= "number" or probes % 1 ~= 0 or probes < 0 or probes > 7 then
    return { nil, "EINCORRECT: probes must be a mask of live = 1, ready = 2, startup = 4" }
  end
  if type(timeout) ~= "number" or timeout < 0 or timeout % 1 ~= 0 then
    return { nil, "EINCORRECT: timeout must be a whole number of ms >= 0" }
  end
  local old = self.signals[name]
  local s = { name = name, probes = probes == 0 and 1 or probes, timeout = timeout, owner = owner, up = true,
              beat = halo.now() }
  self.signals[name] = s
  if old and old.owner ~= owner then release(self, old.owner) end
  if old and not old.up then halo.log.info("(health) signal %s up again: registered by %s", name, owner) end
  if not self.owners[owner] then
    if halo.monitor(owner) then
      self.owners[owner] = true
    else
      set_down(s, ("owner %s is gone"):format(owner))
    end
  end
  publish(self)
  return { true }
end

function Health:handle_call(from, _, req)
  if type(req) ~= "table" or req[TAG] == nil then return { nil, "EINCORRECT: unknown health request" } end
  local op = req[TAG]
  if op == "register" then
    return register(self, from, req[1], req[2], req[3])
  elseif op == "unregister" then
    local s = self.signals[req[1]]
    if not s then return { nil, "EUNKNOWN: unknown signal" } end
    self.signals[req[1]] = nil
    release(self, s.owner)
    publish(self)
    return { true }
  elseif op == "status" then
    if not M.PROBES[req[1]] then return { nil, "EINCORRECT: unknown probe " .. tostring(req[1]) } end
    return { M.answer(self.signals, req[1]) }
  end
  return { nil, "EINCORRECT: unknown health request " .. tostring(op) }
end

function Health:handle_message(_, msg)
  if type(msg) ~= "table" then return end
  if halo.is_down(msg) then
    if not self.owners[msg.pid] then return end
    self.owners[msg.pid] = nil
    local changed = false
    for _, s in pairs(self.signals) do
      if s.owner == msg.pid then
        changed = set_down(s, ("owner %s ended: %s"):format(msg.pid, tostring(msg.reason))) or changed
      end
    end
    if changed then publish(self) end
    return
  end
  local op = msg[TAG]
  if op == "check" then
    local now, changed = halo.now(), false
    for _, s in pairs(self.signals) do
      if s.up and s.timeout > 0 and now - s.beat > s.timeout then
        changed = set_down(s, ("no heartbeat for %d ms (timeout %s)"):format(math.floor(now - s.beat),
          M.duration(s.timeout)))
          or changed
      end
    end
    if changed or self.failed then publish(self) end
    arm(self)
    return
  end
  local s = op and self.signals[msg[1]]
  if not s then return end
  local changed = false
  if op == "heartbeat" then
    s.beat = halo.now()
    changed = set_up(s, "heartbeat")
  elseif op == "up" then
    s.beat = halo.now()
    changed = set_up(s, "set up")
  elseif op == "down" then
    changed = set_down(s, "set down")
  end
  if changed then publish(self) end
end

function Health:handle_inspect()
  local n = 0
  local out = { check_interval = M.duration(self.interval) }
  if self.path then out.path = self.path end
  for name, s in pairs(self.signals) do
    n = n + 1
    out[name] = s.up and "up" or "down"
  end
  out.signals = tostring(n)
  return out
end

-- The API of any process -----------------------------------------------------------------

--- Spawns the health process (registered as radar_health unless opts.name says otherwise).
-- args: publish (function(probe, status, body)), check_interval (ms, default 1000), path
-- (shown by inspect, e.g. "/health/*").
function M.start(args, opts)
  local o = { name = M.NAME }
  for k, v in pairs(opts or {}) do o[k] = v end
  return halo.spawn(Health, args, o)
end

local function target(opts) return opts and opts.target or M.NAME end

local function code_of(err) return err and err:match("^(%u+):") end

local function unwrap(r, err, code)
  if r == nil then return nil, err, code end
  if r[1] == nil then return nil, r[2], code_of(r[2]) end
  return unpack(r, 1, 2)
end

-- {"live", "ready"}, a mask or nil -> mask; raises on misuse.
local function mask_of(probes)
  if probes == nil then return 0 end
  if type(probes) == "number" then return probes end
  if type(probes) ~= "table" then error("health: probes must be a list of probe names or a mask", 3) end
  local m = 0
  for _, p in ipairs(probes) do
    local b = M.PROBES[p]
    if not b then error(("health: unknown probe '%s' (live, ready, startup)"):format(tostring(p)), 3) end
    if m % (2 * b) < b then m = m + b end
  end
  return m
end

--- Registers signal for the calling process (its owner). opts: probes
-- ({"live", "ready", "startup"} or a mask; default live), timeout (ms
-- between heartbeats, 0 = none), target (default "radar_health").
-- Returns true or nil, err, code.
function M.register(signal, opts)
  opts = opts or {}
  if type(signal) ~= "string" then error("health.register: signal name must be a string", 2) end
  return unwrap(halo.call(target(opts), { [TAG] = "register", signal, mask_of(opts.probes), opts.timeout or 0 }))
end

--- Removes signal. Returns true or nil, "EUNKNOWN: unknown signal", code.
function M.unregister(signal, opts)
  return unwrap(halo.call(target(opts), { [TAG] = "unregister", signal }))
end

local function notify(op)
  return function(signal, opts) return halo.send(target(opts), { [TAG] = op, signal }) end
end

--- Stamps signal (and brings it up); a message: true or nil, err.
M.heartbeat = notify("heartbeat")
--- Sets signal up (and stamps it); a message.
M.up = notify("up")
--- Sets signal down; a message.
M.down = notify("down")

--- The current answer of probe ("live", "ready", "startup"): status, body.
function M.status(probe, opts)
  return unwrap(halo.call(target(opts), { [TAG] = "status", probe }))
end

return M
