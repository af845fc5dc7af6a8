--- halo.mcp.sampler: the samplers behind the MCP tools sample_start,
-- sample_listen, sample_read, sample_stop and sample_list (README.md "MCP
-- server", "Samplers").
--
-- A sampler is a process registered under its id `mcp_sampler_<8 hex>`,
-- spawned by the worker that ran the start tool (not linked to it). It keeps
-- a ring buffer of entries {sequence, timestamp, data}; sequences start at 1
-- and grow by one per entry.
--   active   runs a tool of this node's registry (read-only and allowed
--            tools apply) every interval, each run in a process of its own
--            (so the sampler answers while a slow tool runs; a stop kills
--            the run); data is the tool's result object. Done after
--            `count` successful samples, `max_errors` consecutive failures
--            or the duration.
--   passive  a logger named after the id (log records of the chosen levels,
--            optionally of one source type) and a monitor of each event;
--            done when the duration ends.
-- Anything else sent to a sampler is kept as an entry too ({from, type,
-- message}; a call gets the reply "captured"), so it can serve as a sink.
-- A done sampler lingers linger_sec with its buffer readable, then ends.
-- sample_stop ends it at once and hands back the entries no read returned.
local halo = require("halo")
local core = require("halo.core")
local json = require("halo.json")

local M = {}

M.PREFIX = "mcp_sampler_"
M.BEHAVIOR = "halo.mcp.sampler"
M.TICK_BEHAVIOR = "halo.mcp.sampler.sample"
M.CALL_TIMEOUT_MS = 5000
-- Samplers a node runs at most: each is a process, a buffer and a timer.
M.MAX_SAMPLERS = 64

--- Defaults and limits of the start arguments (README.md "Samplers").
M.INTERVAL_MS = { default = 5000, min = 100, max = 3600000 }
M.DURATION_SEC = { default = 60, max = 3600 }
M.BUFFER_SIZE = { default = 256, max = 4096 }
-- The bytes a buffer holds at most (entries' JSON text): past it the oldest go.
M.BUFFER_BYTES = 8 * 2 ^ 20
M.LINGER_SEC = { default = 30, max = 3600 }
M.LEVELS = { "trace", "debug", "info", "warning", "error", "panic" }
M.DEFAULT_LEVELS = { "info", "warning", "error", "panic" }
M.SOURCES = { "", "process", "meta", "node", "network" }
-- Tools a sampler refuses to run: each tick would start another sampler.
M.REFUSED = { sample_start = true, sample_listen = true }

local time_ns = core.node.time_ns
local encode, null = json.encode, json.null
local floor = math.floor

-- Argument clamping --------------------------------------------------------------

local function int(v)
  if type(v) ~= "number" then return nil end
  return floor(v)
end

--- The effective interval: absent 5000, below 100 -> 100, above the max -> max.
function M.interval(v)
  v = int(v)
  if v == nil then return M.INTERVAL_MS.default end
  return math.max(M.INTERVAL_MS.min, math.min(M.INTERVAL_MS.max, v))
end

--- The effective duration: absent, 0 or negative -> 60 (never unlimited), above 3600 -> 3600.
function M.duration(v)
  v = int(v)
  if v == nil or v <= 0 then return M.DURATION_SEC.default end
  return math.min(M.DURATION_SEC.max, v)
end

--- The effective buffer size: absent or <= 0 -> 256, above 4096 -> 4096.
function M.buffer_size(v)
  v = int(v)
  if v == nil or v <= 0 then return M.BUFFER_SIZE.default end
  return math.min(M.BUFFER_SIZE.max, v)
end

--- The effective linger: absent or < 1 -> 30, above 3600 -> 3600.
function M.linger(v)
  v = int(v)
  if v == nil or v < 1 then return M.LINGER_SEC.default end
  return math.min(M.LINGER_SEC.max, v)
end

-- Text forms ------------------------------------------------------------------------

--- Go's duration syntax of ms milliseconds: 300ms, 2s, 1.5s, 1m0s, 1h2m0s.
function M.go_duration(ms)
  if ms == 0 then return "0s" end
  if ms < 1000 then return ("%dms"):format(ms) end
  local s = ms / 1000
  local h, m = floor(s / 3600), floor(s % 3600 / 60)
  local sec = s - h * 3600 - m * 60
  local stext = sec == floor(sec) and ("%ds"):format(sec) or (("%.3f"):format(sec):gsub("0+$", "") .. "s")
  if h > 0 then return ("%dh%dm%s"):format(h, m, stext) end
  if m > 0 then return ("%dm%s"):format(m, stext) end
  return stext
end

--- RFC 3339 UTC with microseconds of a unix time in ns (a double: its
-- last nanosecond digits are rounding noise).
function M.rfc3339_ns(ns)
  local s = floor(ns / 1e9)
  local us = floor((ns - s * 1e9) / 1000 + 0.5)
  if us >= 1000000 then s, us = s + 1, us - 1000000 end
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%06dZ"):format(us)
end

-- RFC 3339 to the second in local time (Z when that is UTC).
local function rfc3339_local(s)
  local z = os.date("%z", s)
  local off = (z == "+0000" or z == "-0000" or z == "") and "Z" or (z:sub(1, 3) .. ":" .. z:sub(4, 5))
  return os.date("%Y-%m-%dT%H:%M:%S", s) .. off
end

local function random_id()
  return M.PREFIX .. assert(require("halo.core").node.random_hex(4))
end

-- A value as it can be printed as JSON: itself, or its text form.
local function friendly(v)
  if pcall(encode, v) then return v end
  return tostring(v)
end

-- The description of §8.6: "process_list(limit=5, sort_by=mailbox) every 2s".
local function describe(cfg)
  if cfg.mode == "active" then
    local keys, parts = {}, {}
    for k in pairs(cfg.arguments) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = cfg.arguments[k]
      parts[#parts + 1] = k .. "=" .. (type(v) == "string" and v or encode(v))
    end
    local call = #parts > 0 and (cfg.tool .. "(" .. table.concat(parts, ", ") .. ")") or cfg.tool
    return call .. " every " .. M.go_duration(cfg.interval_ms)
  end
  local parts = {}
  if cfg.log_levels then
    parts[1] = "log [" .. table.concat(cfg.log_levels, ", ") .. "]"
      .. (cfg.log_source ~= "" and (" source=" .. cfg.log_source) or "")
  end
  for _, e in ipairs(cfg.events or {}) do
    parts[#parts + 1] = ("event '%s'@'%s'"):format(e, cfg.event_node)
  end
  return "listen: " .. table.concat(parts, " + ")
end

-- The sampler process ----------------------------------------------------------------

local Sampler = { name = M.BEHAVIOR }
M.Sampler = Sampler

local function unsubscribe(self)
  if self.logging then
    halo.log.unsubscribe()
    self.logging = false
  end
  for _, e in ipairs(self.watched or {}) do halo.event.demonitor(e, self.cfg.event_node) end
  self.watched = {}
end

function Sampler:init(cfg)
  self.cfg, self.id, self.pid, self.node = cfg, cfg.id, halo.self(), halo.node_info().Name
  self.buf, self.cap, self.seq, self.last_read = {}, cfg.buffer_size, 0, 0
  self.first, self.bytes = 1, 0 -- the oldest sequence kept; the bytes kept
  self.samples, self.errors = 0, 0
  self.started, self.started_at = halo.now(), os.time()
  self.expires = self.started + cfg.duration_sec * 1000
  self.watched, self.running = {}, {}
  if cfg.mode == "passive" then
    if cfg.log_levels then
      local ok, err = halo.log.subscribe({ levels = cfg.log_levels, name = cfg.id })
      if not ok then error("cannot register logger: " .. tostring(err):gsub("^E%u+: ", ""), 0) end
      self.logging = true
    end
    for _, e in ipairs(cfg.events or {}) do
      local ok, err = halo.event.monitor(e, cfg.event_node ~= self.node and cfg.event_node or nil)
      if not ok then
        unsubscribe(self)
        error(("cannot monitor event '%s': %s"):format(e, (tostring(err):gsub("^E%u+: ", ""))), 0)
      end
      self.watched[#self.watched + 1] = e
    end
  else
    self.tick_timer = halo.send_after(self.pid, "tick", 0)
  end
  self.expire_timer = halo.send_after(self.pid, "expire", cfg.duration_sec * 1000)
end

-- Stores one entry (data: a value, or a tool's result object as JSON text in
-- raw; size: its JSON size when known), dropping the oldest past the
-- capacity or past BUFFER_BYTES.
local function push(self, ts, data, raw, size)
  size = size or (raw and #raw) or #encode(data)
  local seq, cap, buf = self.seq + 1, self.cap, self.buf
  self.seq = seq
  local slot = (seq - 1) % cap + 1
  if buf[slot] then self.bytes = self.bytes - buf[slot].size end
  if seq - cap + 1 > self.first then self.first = seq - cap + 1 end
  buf[slot] = { sequence = seq, ts = ts, data = data, raw = raw, size = size }
  self.bytes = self.bytes + size
  while self.bytes > M.BUFFER_BYTES and self.first < seq do
    local old = (self.first - 1) % cap + 1
    self.bytes = self.bytes - buf[old].size
    buf[old], self.first = nil, self.first + 1
  end
end

local function stored(self) return self.seq - self.first + 1 end

-- Ends the sample being taken, if any.
local function cancel_sample(self)
  for pid, state in pairs(self.running) do
    if state == true then halo.kill(pid) end
  end
end

-- Done: capture ends, the buffer stays readable for linger_sec.
local function complete(self, reason)
  if self.completed then return end
  self.completed, self.reason = true, reason
  if self.tick_timer then halo.cancel_timer(self.tick_timer) end
  if self.expire_timer and reason ~= "duration expired" then halo.cancel_timer(self.expire_timer) end
  self.tick_timer, self.expire_timer = nil, nil
  cancel_sample(self)
  unsubscribe(self)
  self.linger_until = halo.now() + self.cfg.linger_sec * 1000
  halo.send_after(self.pid, "linger_end", self.cfg.linger_sec * 1000)
end

-- What a sample gave (dispatch's reply): stored, or counted as a failure;
-- then the next tick, interval after this one began (fixed rate).
local function record(self, rep)
  local failure
  if rep.error ~= nil then
    failure = tostring(rep.error)
  elseif rep.result:find('"isError":true}$') then
    local obj = json.decode(rep.result)
    failure = type(obj) == "table" and obj.content and obj.content[1] and obj.content[1].text or rep.result
  end
  if failure then
    self.errors, self.last_error = self.errors + 1, failure
    if self.cfg.max_errors > 0 and self.errors >= self.cfg.max_errors then
      return complete(self, ("%d consecutive errors"):format(self.errors))
    end
  else
    self.errors = 0
    self.samples = self.samples + 1
    push(self, time_ns(), nil, rep.result)
    if self.cfg.count > 0 and self.samples >= self.cfg.count then return complete(self, "count reached") end
  end
  self.tick_timer = halo.send_after(self.pid, "tick", math.max(0, self.cfg.interval_ms - (halo.now() - self.began)))
end

-- The body of a sample's process: the tool through this node's registry.
local function run_sample(job)
  local ok, rep = pcall(require("halo.mcp.dispatch").call, { mcp = "call", tool = job.tool, args = job.args },
    job.node, halo.self())
  halo.send(job.sampler, { halo_sampler_sample = ok and rep or { error = tostring(rep) } })
end

-- One active sample, run in a process of its own (monitored), so that the
-- sampler answers reads, lists and stops while a slow tool runs.
local function tick(self)
  self.began = halo.now()
  local args = json.object()
  for k, v in pairs(self.cfg.arguments) do args[k] = v end
  local pid, err = halo.spawn(run_sample, { tool = self.cfg.tool, args = args, node = self.node, sampler = self.pid },
    { monitor = true, behavior = M.TICK_BEHAVIOR })
  if not pid then return record(self, { error = "cannot run the sample: " .. tostring(err) }) end
  self.running[pid] = true
end

-- A message from a sample's process: its reply, or its end. Its end may
-- come first (signals overtake messages): after a normal end the reply is
-- on its way; any other end (a kill) is a failed sample.
local function from_sample(self, from, msg)
  if type(msg) == "table" and msg.halo_sampler_sample then
    self.running[from] = nil
    if not self.completed then record(self, msg.halo_sampler_sample) end
  elseif type(msg) == "table" and msg.kind == "down" then
    if msg.reason == "normal" then
      self.running[from] = "ended"
    else
      self.running[from] = nil
      if not self.completed then record(self, { error = "the sample's process ended: " .. tostring(msg.reason) }) end
    end
  end
end

-- Entries with sequence > since, oldest first (a list); also the number of
-- entries after since that were overwritten before anyone read them.
local function entries(self, since)
  since = math.max(0, since)
  local first = math.max(since + 1, self.first)
  local out = {}
  for s = first, self.seq do
    local e = self.buf[(s - 1) % self.cap + 1]
    local data = e.data
    if e.raw then data = json.decode(e.raw) end
    out[#out + 1] = { sequence = e.sequence, timestamp = M.rfc3339_ns(e.ts), data = data }
  end
  if self.seq > self.last_read then self.last_read = self.seq end
  return json.array(out), math.max(0, first - since - 1)
end

local function status(self)
  if not self.completed then return "running" end
  local left = floor((self.linger_until - halo.now()) / 1000)
  if left <= 0 then return "completed" end
  return ("completed, lingering %s"):format(M.go_duration(left * 1000))
end

-- The read (and stop) answer: JSON text.
local function answer(self, since, extra)
  local samples, lost = entries(self, since)
  local r = json.object({ sampler_id = self.id, mode = self.cfg.mode, tool = self.cfg.tool, sequence = self.seq,
                          completed = self.completed == true, status = status(self), reason = self.reason,
                          samples = samples, lost = lost > 0 and lost or nil })
  for k, v in pairs(extra or {}) do r[k] = v end
  return encode(r, true)
end

function Sampler:handle_message(from, msg)
  if from == self.pid then
    if msg == "tick" then
      self.tick_timer = nil
      if not self.completed then tick(self) end
    elseif msg == "expire" then
      self.expire_timer = nil
      complete(self, "duration expired")
    elseif msg == "linger_end" then
      return "normal"
    end
    return
  end
  if self.running[from] then return from_sample(self, from, msg) end
  push(self, time_ns(), { from = from, type = type(msg), message = friendly(msg) })
end

function Sampler:handle_call(from, _, req)
  if type(req) == "table" and req.halo_sampler == "read" then
    return answer(self, tonumber(req.since) or 0)
  end
  if type(req) == "table" and req.halo_sampler == "stop" then
    local since = tonumber(req.since) or self.last_read
    halo.unregister(self.id) -- gone at once for reads and lists
    cancel_sample(self)
    unsubscribe(self)
    return answer(self, since, { status = "stopped", reason = "stopped" }), "normal"
  end
  push(self, time_ns(), { from = from, type = type(req), request = friendly(req) })
  return "captured"
end

function Sampler:handle_log(r)
  local src = r.source or {}
  if self.cfg.log_source ~= "" and src.type ~= self.cfg.log_source then return end
  local source = src.node
  if src.type == "process" then
    source = src.pid .. (src.name and (" ('" .. src.name .. "')") or "") .. " " .. (src.behavior or "")
  end
  local message = r.message or ""
  push(self, r.time, json.object({ time = M.rfc3339_ns(r.time), level = r.level, message = message,
                                   type = src.type, source = source }), nil, #message + #(source or "") + 120)
end

function Sampler:handle_event(event, message, time)
  push(self, time or time_ns(), json.object({ event = ("'%s'@'%s'"):format(event, self.cfg.event_node),
                                              message = friendly(message) }))
end

function Sampler:handle_inspect()
  local now = halo.now()
  local cfg = self.cfg
  local t = {
    id = self.id, mode = cfg.mode, description = describe(cfg), status = status(self), owner = self.node,
    samples = ("%d collected, buffer %d/%d"):format(self.seq, stored(self), self.cap),
    uptime = M.go_duration(floor((now - self.started) / 1000) * 1000),
    deadline = rfc3339_local(self.started_at + cfg.duration_sec),
  }
  if not self.completed and self.expires > now then
    t.remaining = M.go_duration(floor((self.expires - now) / 1000) * 1000)
  end
  if self.reason then t.reason = self.reason end
  if cfg.mode == "active" and cfg.count > 0 then t.progress = ("%d/%d samples"):format(self.samples, cfg.count) end
  if self.errors > 0 then t.errors = ("%d consecutive"):format(self.errors) end
  if self.last_error then t.last_error = self.last_error end
  return t
end

function Sampler:terminate()
  cancel_sample(self)
  unsubscribe(self)
end

-- The tools' side (run in an MCP worker) ----------------------------------------------

local function stripped(err) return (tostring(err):gsub("^EINIT: init failed: ", ""):gsub("^E%u+: ", "")) end

--- Spawns a sampler for cfg (mode, buffer_size, duration_sec, linger_sec and
-- the mode's fields); returns its id or nil, "failed to spawn sampler: <err>".
function M.spawn(cfg)
  if #halo.process_list({ behavior = M.BEHAVIOR, name = M.PREFIX, limit = -1 }) >= M.MAX_SAMPLERS then
    return nil, ("failed to spawn sampler: too many samplers on this node (%d); stop one with sample_stop")
      :format(M.MAX_SAMPLERS)
  end
  local pid, err, code
  for _ = 1, 3 do -- a taken id (another sampler's, or any process's name): draw again
    cfg.id = random_id()
    pid, err, code = halo.spawn(Sampler, cfg, { name = cfg.id, behavior = M.BEHAVIOR })
    if pid or code ~= "ETAKEN" then break end
  end
  if not pid then return nil, "failed to spawn sampler: " .. stripped(err) end
  return cfg.id
end

--- The active sampler's configuration from sample_start's arguments, or nil, error text.
function M.active(args)
  local tool = args.tool
  if type(tool) ~= "string" or tool == "" then return nil, "tool is required" end
  if M.REFUSED[tool] then return nil, ("invalid params: tool %s cannot be sampled"):format(tool) end
  local a = args.arguments
  if a == nil or a == null then a = {} end
  if type(a) == "string" then -- a JSON object given as text
    local v = json.decode(a)
    if type(v) ~= "table" then return nil, "invalid params: arguments must be an object" end
    a = v
  end
  if type(a) ~= "table" or (next(a) ~= nil and a[1] ~= nil) then
    return nil, "invalid params: arguments must be an object"
  end
  a.node, a.timeout = nil, nil -- a sampler runs its tool where it lives
  local registry, schema = require("halo.mcp.registry"), require("halo.mcp.schema")
  local t, load_err = registry.lookup(tool)
  if load_err then return nil, ("invalid params: tool %s is unavailable: %s"):format(tool, load_err) end
  if not t then return nil, "invalid params: unknown tool: " .. tool end
  local verr = schema.validate(t.inputSchema, a)
  if verr then return nil, ("invalid params: arguments of %s: %s"):format(tool, verr) end
  local count, max_errors = int(args.count) or 0, int(args.max_errors) or 0
  return { mode = "active", tool = tool, arguments = a, interval_ms = M.interval(args.interval_ms),
           count = count > 0 and count or 0, max_errors = max_errors > 0 and max_errors or 0,
           duration_sec = M.duration(args.duration_sec), buffer_size = M.buffer_size(args.buffer_size),
           linger_sec = M.linger(args.linger_sec) }
end

--- The passive sampler's configuration from sample_listen's arguments, or nil, error text.
function M.passive(args, node)
  local levels, known = nil, {}
  for _, l in ipairs(M.LEVELS) do known[l] = true end
  local given = args.log_levels
  if given ~= nil and given ~= null and #given > 0 then
    levels = {}
    local seen = {}
    for _, l in ipairs(given) do
      local n = tostring(l):lower()
      if not known[n] then
        return nil, ("invalid params: unknown log level '%s' (trace, debug, info, warning, error, panic)"):format(l)
      end
      if not seen[n] then levels[#levels + 1], seen[n] = n, true end
    end
    local rank = {}
    for i, l in ipairs(M.LEVELS) do rank[l] = i end
    table.sort(levels, function(x, y) return rank[x] < rank[y] end)
  end
  local events = {}
  local function add(e)
    if e ~= nil and e ~= null and e ~= "" then
      for _, x in ipairs(events) do if x == e then return end end
      events[#events + 1] = e
    end
  end
  add(args.event)
  for _, e in ipairs(args.events ~= null and args.events or {}) do add(e) end
  if not levels and #events == 0 then levels = M.DEFAULT_LEVELS end
  local source = args.log_source
  if source == nil or source == null then source = "" end
  local event_node = args.event_node
  if event_node == nil or event_node == null or event_node == "" then event_node = node end
  return { mode = "passive", log_levels = levels, log_source = source, events = #events > 0 and events or nil,
           event_node = event_node, duration_sec = M.duration(args.duration_sec),
           buffer_size = M.buffer_size(args.buffer_size), linger_sec = M.linger(args.linger_sec) }
end

-- The sampler registered as id, or nil, the reason it is not there.
local function find(id)
  if type(id) ~= "string" or id:sub(1, #M.PREFIX) ~= M.PREFIX then return nil, "unknown process" end
  local pid = halo.whereis(id)
  if not pid then return nil, "unknown process" end
  return pid
end

local function call(id, req)
  local pid, err = find(id)
  if not pid then return nil, err end
  local rep, cerr = halo.call(pid, req, M.CALL_TIMEOUT_MS)
  if rep == nil then return nil, (tostring(cerr):gsub("^E%u+: ", "")) end
  return rep
end

--- sample_read: the JSON text of the entries after since, or nil, error text.
function M.read(id, since)
  if id == nil or id == "" then return nil, "sampler_id is required" end
  local rep, err = call(id, { halo_sampler = "read", since = since or 0 })
  if rep == nil then return nil, ("sampler %s not found or not responding: %s"):format(id, err) end
  if type(rep) ~= "string" then return nil, ("unexpected response from sampler %s"):format(id) end
  return rep
end

--- sample_stop: ends the sampler; the JSON text of its entries after since
-- (default: after the last one a read returned), or nil, error text.
function M.stop(id, since)
  if id == nil or id == "" then return nil, "sampler_id is required" end
  local rep, err = call(id, { halo_sampler = "stop", since = since })
  if rep == nil then return nil, ("sampler %s not found: %s"):format(id, err) end
  if type(rep) ~= "string" then return nil, ("unexpected response from sampler %s"):format(id) end
  return rep
end

--- sample_list: one map of strings per sampler of this node, by id.
function M.list()
  local out = json.array()
  for _, p in ipairs(halo.process_list({ behavior = M.BEHAVIOR, name = M.PREFIX, limit = -1 })) do
    if p.Name:sub(1, #M.PREFIX) == M.PREFIX then
      local t = halo.inspect(p.PID, nil, M.CALL_TIMEOUT_MS)
      if type(t) == "table" and t.id then
        t.pid = p.PID
        out[#out + 1] = json.object(t)
      end
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

return M
