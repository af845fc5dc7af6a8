--- halo.metrics: custom Prometheus metrics and the node's exposition.
--
--   local c = metrics.counter{name = "jobs_total", help = "Jobs done.", labels = {"status"}}
--   c:inc("ok"); c:add(3, "error")
--   local g = metrics.gauge{...};      g:set(v, ...); g:add(v, ...)
--   local h = metrics.histogram{..., buckets = {0.01, 0.1, 1}}; h:observe(v, ...)
--   local t = metrics.top{..., n = 10, order = "max"};         t:observe(v, ...)
--
-- A family belongs to the process that registers it and goes when that
-- process ends. A bad definition returns nil, "EINCORRECT: ...", a name
-- registered already nil, "ETAKEN: ...". Label values are positional; a
-- wrong count raises. An update of a family that is gone returns nil,
-- "EUNKNOWN: ..." (counted in stats().update_errors). Top families show the
-- heap of the last interval: metrics.flush_top() ends an interval (the radar
-- application calls it every collect interval).
local core = require("halo.core")

local cm = core.metrics
local core_yield = core.process.yield

local function halo_yield()
  core_yield()
  coroutine.yield()
end
local add, set, observe = cm.add, cm.set, cm.observe

local M = {}

local Family = {}
Family.__index = Family

function Family:add(v, ...) return add(self.id, v, ...) end
function Family:inc(...) return add(self.id, 1, ...) end
function Family:set(v, ...) return set(self.id, v, ...) end
function Family:observe(v, ...) return observe(self.id, v, ...) end

-- With LuaJIT's FFI, updates with up to two string label values go straight
-- to C (hb_metrics_update looks the family up by id on every call, so a
-- removed family is never touched); anything else, and every refusal, takes
-- the Lua C API path, which raises or returns the error.
local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok and cm.FFI_UPDATE then
  local update = ffi.cast("int (*)(int, double, double, int, const char *, size_t, const char *, size_t)", cm.FFI_UPDATE)
  local select, type, last_error = select, type, cm.last_error
  local slow = { [0] = add, set, observe }
  local function fast(op, id, v, ...)
    local n = select("#", ...)
    if n <= 2 and type(v) == "number" then
      local a, b = ...
      local ta, tb = type(a), type(b)
      if (n < 1 or ta == "string") and (n < 2 or tb == "string") then
        local rc = update(op, id, v, n, a, ta == "string" and #a or 0, b, tb == "string" and #b or 0)
        if rc == 0 then return true end
        if rc ~= -1 then return last_error() end
      end
    end
    return slow[op](id, v, ...)
  end
  function Family:add(v, ...) return fast(0, self.id, v, ...) end
  function Family:inc(...) return fast(0, self.id, 1, ...) end
  function Family:set(v, ...) return fast(1, self.id, v, ...) end
  function Family:observe(v, ...) return fast(2, self.id, v, ...) end
end

local function register(kind, def)
  if type(def) ~= "table" then error("halo.metrics." .. kind .. ": a definition table expected", 3) end
  local d = {}
  for k, v in pairs(def) do d[k] = v end
  d.type = kind
  local id, err, code = cm.register(d)
  if not id then return nil, err, code end
  return setmetatable({ id = id, name = def.name, type = kind, labels = def.labels or {} }, Family)
end

--- Registers a counter (add, inc).
function M.counter(def) return register("counter", def) end
--- Registers a gauge (set, add).
function M.gauge(def) return register("gauge", def) end
--- Registers a histogram (observe); no buckets: Prometheus' defaults .005 .. 10.
function M.histogram(def) return register("histogram", def) end
--- Registers a top-N family (observe): n (default 10), order "max" (default) or "min".
function M.top(def) return register("top", def) end

--- Removes a family by name: true or nil, err.
M.unregister = cm.unregister
--- Ends the interval of one top family (by name) or of all of them.
M.flush_top = cm.flush_top
--- The exposition text (Prometheus text format 0.0.4) of the node's
-- built-in halo_* families and every custom family. opts.top_n: N of the
-- built-in top families (default 50, see configure); opts.chunk: process
-- records read per step (default 8192). Called from a process's own
-- coroutine, it yields between steps, so a large process table never holds
-- the loop for long; a process that ends meanwhile leaves the top families.
function M.expose(opts)
  local pass = cm.pass_start(opts)
  if not pass then return cm.expose(opts) end -- the node is stopping: in one go
  local chunk = opts and opts.chunk or 8192
  while not cm.pass_step(pass, chunk) do halo_yield() end
  return cm.pass_finish(pass)
end
--- The catalogue of built-in families: {name, type, labels, help, note}.
M.families = cm.families
--- Sets defaults: {top_n = n} for the built-in top families.
M.configure = cm.configure
--- {families = custom families registered, update_errors = updates refused}.
M.stats = cm.stats
--- How often the radar application ends the top families' interval (ms).
M.FLUSH_INTERVAL = 10000
--- The Content-Type of the exposition.
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

return M
