--- halo.log: leveled logging with pluggable loggers.
--
--   halo.log.info("started %d workers", n)      -- also halo.log("info", fmt, ...)
--   halo.log.set_level("debug")                   -- the calling process
--   halo.log.set_level("warning", "node")         -- the node's level
--   halo.log.add_logger("audit", { format = "json", levels = { "warning", "error" }, output = "/var/log/x.jsonl" })
--   halo.log.subscribe({ levels = { "error" } })  -- the calling process receives records
--
-- Levels: trace, debug, info, warning, error, panic, disabled. A record is
-- produced when its level is at or above its source's level (the process's,
-- or the node's for node records); it is then counted (node_info
-- LogMessages) and handed to every logger whose level set holds it. The
-- node starts with "default": plain text on stderr. Formats: plain, color
-- (ANSI), json (one object per line). A process that subscribes receives
-- records in its log queue as {kind = "log", time, level, source = {type,
-- node, pid, name, behavior}, message}: behaviors in handle_log(record),
-- function processes from halo.receive; its own records never reach it.
-- A call below the active level costs one FFI call and no formatting.
local core = require("halo.core")

local format, select, tostring = string.format, select, tostring

local LEVELS = { trace = -2, debug = -1, info = 1, warning = 2, error = 3, panic = 4 }

local enabled
do
  local ok, ffi = pcall(require, "ffi")
  if ok and core.log.FFI_ENABLED then
    local f = ffi.cast("int (*)(int)", core.log.FFI_ENABLED)
    enabled = function(level) return f(level) ~= 0 end
  else
    enabled = function(level)
      for name, v in pairs(LEVELS) do
        if v == level then return core.log.enabled(name) end
      end
      return false
    end
  end
end

local core_log = core.log.write

local function emit(name, level, fmt, ...)
  if not enabled(level) then return end
  if select("#", ...) > 0 then core_log(name, format(fmt, ...)) else core_log(name, tostring(fmt)) end
end

local M = setmetatable({}, {
  --- halo.log(level, fmt, ...): logs at a level given by name.
  __call = function(_, level, fmt, ...)
    local v = LEVELS[level]
    if not v then error(("unknown log level '%s'"):format(tostring(level)), 2) end
    return emit(level, v, fmt, ...)
  end,
})

function M.trace(fmt, ...) return emit("trace", -2, fmt, ...) end
function M.debug(fmt, ...) return emit("debug", -1, fmt, ...) end
function M.info(fmt, ...) return emit("info", 1, fmt, ...) end
function M.warning(fmt, ...) return emit("warning", 2, fmt, ...) end
function M.error(fmt, ...) return emit("error", 3, fmt, ...) end
function M.panic(fmt, ...) return emit("panic", 4, fmt, ...) end

--- True when a record of that level would be produced by the caller.
function M.enabled(level)
  local v = LEVELS[level]
  if not v then error(("unknown log level '%s'"):format(tostring(level)), 2) end
  return enabled(v)
end

--- Level of the node (target nil or "node") or of a process (PID or name).
function M.level(target)
  if target == nil or target == "node" then return core.log.level() end
  return core.log.level(target)
end

--- Sets the level of the calling process (no target), of the node
-- (target "node") or of a process (PID or registered name).
function M.set_level(level, target)
  if target == "node" then return core.log.set_node_level(level) end
  return core.process.set_log_level(level, target)
end

local LOGGER_KEYS = { format = true, levels = true, output = true }

--- Adds a logger: opts.format plain | color | json (default plain),
-- opts.levels (list of level names; default all), opts.output ("stderr"
-- (default), "stdout" or a file path, appended to).
function M.add_logger(name, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not LOGGER_KEYS[k] then error(("unknown logger option '%s'"):format(tostring(k)), 2) end
  end
  return core.log.add(name, opts.format or "plain", opts.levels, opts.output)
end

M.remove_logger = core.log.remove

--- The loggers: { {name, format, levels, records, pid (process loggers)}... }.
M.loggers = core.log.loggers

local SUB_KEYS = { levels = true, source = true, name = true }

--- Makes the calling process a logger. opts.levels (default all),
-- opts.source ("node", a PID or a registered name: only its records),
-- opts.name (logger name; default "process:<pid>").
function M.subscribe(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not SUB_KEYS[k] then error(("unknown subscribe option '%s'"):format(tostring(k)), 2) end
  end
  return core.log.subscribe(opts.name or ("process:" .. core.process.self()), opts.levels, opts.source)
end

M.unsubscribe = core.log.unsubscribe

return M
