--- halo.supervisor: a process that starts children and restarts them by policy.
--
--   local sup = assert(halo.supervisor.start({
--     strategy = "one_for_one",          -- all_for_one, rest_for_one, simple_one_for_one
--     intensity = 5, period = 5,         -- at most 5 restarts in any 5 s window
--     restart = "transient",             -- default restart type of the children
--     children = {
--       { name = "db", behavior = "app.db", args = { ... }, restart = "permanent", shutdown = 5000 },
--       { name = "web", behavior = Web },
--     },
--   }, { name = "app_sup" }))
--
-- Child spec fields: name (registered name of a static child; the spec name of
-- a simple_one_for_one template), behavior (table, module name or function),
-- args, restart (permanent | transient | temporary), shutdown (ms to wait for
-- the child after the shutdown exit, then kill; 0 = kill at once; default
-- 5000), options (extra spawn options: mailbox_size, log_level, env, ...).
--
-- Static children start in order during the supervisor's init (a failure
-- fails the init) and stop in reverse order. A simple_one_for_one
-- supervisor starts with no children; start_child(sup, spec_name, args) adds
-- instances. When the restarts in the last `period` seconds would exceed
-- `intensity`, the supervisor stops every child and terminates with the
-- reason "restarts exceeded"; its own parent sees that failure.
local halo = require("halo")

local M = {}

local TYPE_NAMES = {
  one_for_one = "One For One",
  all_for_one = "All For One",
  rest_for_one = "Rest For One",
  simple_one_for_one = "Simple One For One",
}
local RESTART_NAMES = { permanent = "Permanent", transient = "Transient", temporary = "Temporary" }
local SPEC_KEYS = { strategy = true, intensity = true, period = true, restart = true, children = true }
local CHILD_KEYS = { name = true, behavior = true, args = true, restart = true, shutdown = true, options = true }
local RESERVED_OPTIONS = { name = true, link = true, link_parent = true, link_child = true, monitor = true }

M.EXCEEDED = "restarts exceeded"

local function check_child(c, i, sofo)
  if type(c) ~= "table" then error(("children[%d]: child spec table expected"):format(i), 4) end
  for k in pairs(c) do
    if not CHILD_KEYS[k] then error(("children[%d]: unknown field '%s'"):format(i, tostring(k)), 4) end
  end
  if type(c.name) ~= "string" or c.name == "" then
    error(("children[%d]: name (a non-empty string) is required"):format(i), 4)
  end
  local bt = type(c.behavior)
  if bt ~= "table" and bt ~= "string" and bt ~= "function" then
    error(("child '%s': behavior must be a table, a module name or a function"):format(c.name), 4)
  end
  if c.restart ~= nil and not RESTART_NAMES[c.restart] then
    error(("child '%s': restart must be permanent, transient or temporary"):format(c.name), 4)
  end
  if c.shutdown ~= nil and (type(c.shutdown) ~= "number" or c.shutdown < 0) then
    error(("child '%s': shutdown must be a number of ms >= 0"):format(c.name), 4)
  end
  if c.options ~= nil then
    if type(c.options) ~= "table" then error(("child '%s': options must be a table"):format(c.name), 4) end
    for k in pairs(c.options) do
      if RESERVED_OPTIONS[k] and not (sofo and k == "name") then
        error(("child '%s': option '%s' is set by the supervisor"):format(c.name, k), 4)
      end
    end
  end
end

--- Validates a supervisor spec; raises with a clear message on misuse.
function M.check(spec)
  if type(spec) ~= "table" then error("supervisor spec table expected", 3) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then error(("supervisor spec: unknown field '%s'"):format(tostring(k)), 3) end
  end
  local strategy = spec.strategy or "one_for_one"
  if not TYPE_NAMES[strategy] then
    error("supervisor spec: strategy must be one_for_one, all_for_one, rest_for_one or simple_one_for_one", 3)
  end
  for _, k in ipairs({ "intensity", "period" }) do
    local v = spec[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v % 1 ~= 0) then
      error(("supervisor spec: %s must be a whole number >= 0"):format(k), 3)
    end
  end
  if spec.restart ~= nil and not RESTART_NAMES[spec.restart] then
    error("supervisor spec: restart must be permanent, transient or temporary", 3)
  end
  if type(spec.children) ~= "table" then error("supervisor spec: children (a list of child specs) is required", 3) end
  local seen = {}
  for i, c in ipairs(spec.children) do
    check_child(c, i, strategy == "simple_one_for_one")
    if seen[c.name] then error(("supervisor spec: child name '%s' used twice"):format(c.name), 3) end
    seen[c.name] = true
  end
  if strategy == "simple_one_for_one" and #spec.children == 0 then
    error("supervisor spec: simple_one_for_one needs at least one child spec", 3)
  end
end

local function is_normal(reason) return reason == "normal" or reason == "shutdown" end

-- The supervisor process ------------------------------------------------------

local Sup = { name = "halo.supervisor", kind = "supervisor" }
M.behavior = Sup

local function spawn_child(self, rec)
  local spec = rec.spec
  local opts = {}
  if spec.options then for k, v in pairs(spec.options) do opts[k] = v end end
  if not self.sofo then opts.name = spec.name end
  opts.link = true -- the child dies with the supervisor; the supervisor hears of the child's end
  local pid, err = halo.spawn(spec.behavior, rec.args, opts)
  if not pid then return nil, err end
  rec.pid = pid
  self.by_pid[pid] = rec
  return pid
end

-- Stops one child: a shutdown exit from its parent (never trapped), then up to
-- spec.shutdown ms for it to end, then kill. Its exit message comes later and
-- is ignored (the record no longer holds the PID).
local function stop_child(self, rec)
  local pid = rec.pid
  if not pid then return end
  rec.pid = nil
  self.by_pid[pid] = nil
  local wait = rec.spec.shutdown or 5000
  if halo.stop_process(pid, wait) == "killed" and wait > 0 then
    halo.log("warning", "supervisor: child %s '%s' did not stop within %d ms, killed", pid, rec.spec.name, wait)
  end
end

local function stop_all(self, from_index)
  for i = #self.children, from_index or 1, -1 do stop_child(self, self.children[i]) end
end

-- Records a restart in the sliding window; false when it exceeds the intensity.
local function allow_restart(self)
  local now = halo.now()
  local w = self.window
  w[#w + 1] = now
  self.restarts = self.restarts + 1
  if #w <= self.intensity then return true end
  local keep = {}
  for _, t in ipairs(w) do
    if now - t <= self.period * 1000 then keep[#keep + 1] = t end
  end
  self.window = keep
  return #keep <= self.intensity
end

local function index_of(self, rec)
  for i, r in ipairs(self.children) do
    if r == rec then return i end
  end
end

function Sup:init(spec)
  M.check(spec)
  self.spec = spec
  self.strategy = spec.strategy or "one_for_one"
  self.sofo = self.strategy == "simple_one_for_one"
  self.restart = spec.restart or "transient"
  self.intensity = spec.intensity or 5
  self.period = spec.period or 5
  if self.period == 0 then self.period = 5 end
  self.window, self.restarts = {}, 0
  self.children, self.by_pid, self.specs = {}, {}, {}
  for _, c in ipairs(spec.children) do self.specs[c.name] = c end
  halo.trap_exit(true)
  if self.sofo then return end
  for _, c in ipairs(spec.children) do
    local rec = { spec = c, args = c.args }
    self.children[#self.children + 1] = rec
    local pid, err = spawn_child(self, rec)
    if not pid then
      stop_all(self)
      error(("supervisor: child '%s' failed to start: %s"):format(c.name, tostring(err)), 0)
    end
  end
end

local function restart_type(self, rec) return rec.spec.restart or self.restart end

-- A child ended: decide by its restart type and the strategy.
local function child_ended(self, rec, reason)
  if rec.pid then self.by_pid[rec.pid] = nil end
  rec.pid = nil
  local rt = restart_type(self, rec)
  if rt == "temporary" or (rt == "transient" and is_normal(reason)) then
    if self.sofo or rt == "temporary" then table.remove(self.children, index_of(self, rec)) end
    return
  end
  if not allow_restart(self) then
    halo.log("error", "supervisor: restart intensity exceeded (%d in %d s); child '%s' ended with %s",
      self.intensity, self.period, rec.spec.name, tostring(reason))
    stop_all(self)
    return M.EXCEEDED
  end
  local from, to = index_of(self, rec), index_of(self, rec)
  if self.strategy == "all_for_one" or self.strategy == "rest_for_one" then
    if self.strategy == "all_for_one" then from = 1 end
    stop_all(self, from)
    -- temporary siblings stopped here are not restarted: they leave the list
    for i = #self.children, from, -1 do
      local r = self.children[i]
      if r ~= rec and restart_type(self, r) == "temporary" then table.remove(self.children, i) end
    end
    to = #self.children
  end
  for i = from, to do
    local r = self.children[i]
    if r and not r.pid then
      local pid, err = spawn_child(self, r)
      if not pid then
        halo.log("error", "supervisor: restarting child '%s' failed: %s", r.spec.name, tostring(err))
        -- counts as a failure of that child: retried through the same policy
        halo.send(halo.self(), { ["$supervisor_retry"] = r })
      end
    end
  end
end

function Sup:handle_message(_, msg)
  if type(msg) ~= "table" then return end
  if msg.kind == "exit" then
    local rec = self.by_pid[msg.pid]
    if rec then return child_ended(self, rec, msg.reason) end
    return -- a child stopped on purpose, or not a child
  end
  local retry = msg["$supervisor_retry"]
  if retry and not retry.pid and index_of(self, retry) then
    return child_ended(self, retry, "restart failed")
  end
end

local function find_child(self, which)
  for _, r in ipairs(self.children) do
    if r.pid == which or (not self.sofo and r.spec.name == which) then return r end
  end
end

function Sup:handle_call(_, _, req)
  if type(req) ~= "table" then return { nil, "EINCORRECT: unknown supervisor request" } end
  local op = req[1]
  if op == "start_child" then
    if self.sofo then
      local spec = self.specs[req[2]]
      if not spec then return { nil, ("EUNKNOWN: no child spec '%s'"):format(tostring(req[2])) } end
      local rec = { spec = spec, args = req.args }
      if req.args == nil then rec.args = spec.args end
      local pid, err = spawn_child(self, rec)
      if not pid then return { nil, err } end
      self.children[#self.children + 1] = rec
      return { pid }
    end
    local rec = find_child(self, req[2])
    if not rec then return { nil, ("EUNKNOWN: no child '%s'"):format(tostring(req[2])) } end
    if rec.pid then return { nil, "ETAKEN: child is running" } end
    local pid, err = spawn_child(self, rec)
    if not pid then return { nil, err } end
    return { pid }
  elseif op == "terminate_child" then
    local rec = find_child(self, req[2])
    if not rec or not rec.pid then return { nil, ("EUNKNOWN: no running child '%s'"):format(tostring(req[2])) } end
    stop_child(self, rec)
    if self.sofo then table.remove(self.children, index_of(self, rec)) end
    return { true }
  elseif op == "children" then
    local out = {}
    for i, r in ipairs(self.children) do
      out[i] = { name = r.spec.name, pid = r.pid or "", restart = restart_type(self, r), running = r.pid ~= nil }
    end
    return { out }
  elseif op == "stop" then
    stop_all(self)
    return { true }, req[2] or "shutdown"
  end
  return { nil, ("EINCORRECT: unknown supervisor request '%s'"):format(tostring(op)) }
end

function Sup:handle_inspect()
  local running = 0
  for _, r in ipairs(self.children) do
    if r.pid then running = running + 1 end
  end
  local out = {
    type = TYPE_NAMES[self.strategy],
    strategy = RESTART_NAMES[self.restart],
    intensity = tostring(self.intensity),
    period = tostring(self.period),
    restarts_count = tostring(#self.window),
    restarts_total = tostring(self.restarts),
  }
  if self.sofo then
    local per = {}
    for _, r in ipairs(self.children) do per[r.spec.name] = (per[r.spec.name] or 0) + 1 end
    local nspecs = 0
    for name in pairs(self.specs) do
      nspecs = nspecs + 1
      out["child:" .. name] = tostring(per[name] or 0)
    end
    out.specs_total = tostring(nspecs)
    out.instances_total = tostring(#self.children)
  else
    out.children_total = tostring(#self.children)
    out.children_running = tostring(running)
    out.children_disabled = "0"
  end
  return out
end

-- Terminating for any other reason (its parent's exit, node stop): the
-- children get shutdown exits newest first; the links end them anyway.
function Sup:terminate()
  for i = #self.children, 1, -1 do
    local pid = self.children[i].pid
    if pid then halo.exit(pid, "shutdown") end
  end
end

-- API -------------------------------------------------------------------------

local function unwrap(r, err, code)
  if r == nil then return nil, err, code end
  if r[1] == nil then return nil, r[2], r[2] and r[2]:match("^(%u+):") end
  return r[1]
end

--- Spawns a supervisor. opts are spawn options (name, ...). Returns its PID
-- or nil, "EINIT: ...", "EINIT" when a child or the spec fails.
function M.start(spec, opts)
  M.check(spec)
  return halo.spawn(Sup, spec, opts)
end

--- simple_one_for_one: starts an instance of child spec `spec_name` (args
-- default to the spec's). Static supervisors: restarts a stopped child by name.
function M.start_child(sup, spec_name, args, timeout)
  return unwrap(halo.call(sup, { "start_child", spec_name, args = args }, timeout))
end

--- Stops a child (by name or PID) without restarting it.
function M.terminate_child(sup, which, timeout)
  return unwrap(halo.call(sup, { "terminate_child", which }, timeout))
end

--- The children in start order: { name, pid ("" when not running), restart, running }.
function M.children(sup, timeout)
  return unwrap(halo.call(sup, { "children" }, timeout))
end

--- Stops the supervisor: its children in reverse order (each waited for up
-- to its shutdown time), then itself with reason (default "shutdown").
function M.stop(sup, reason, timeout)
  return unwrap(halo.call(sup, { "stop", reason }, timeout or 60000))
end

return M
