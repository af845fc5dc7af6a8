-- Log levels of the node and of its processes, and the node's loggers.
local halo = require("halo")
local json = require("halo.json")
local A = require("halo.mcp.toolargs")

local LEVELS = { trace = true, debug = true, info = true, warning = true, error = true, panic = true,
                 disabled = true }

local function plain(err)
  err = tostring(err)
  return err:match("bad argument #%d+ to '[^']*' %((.*)%)$") or (err:gsub("^E%u+: ", ""))
end

-- What target names, tried in order: the node ("" or "node"), a PID, an
-- alias (halo's aliases name processes), a registered name. Returns the
-- kind ("node", "pid", "alias", "name"), the address and the text that
-- names it in answers; or nil, error text.
local function resolve(target)
  if target == nil or target == "" or target == "node" then return "node", "node", "node" end
  local pid = A.pid(target)
  if pid then return "pid", pid, "process " .. target end
  local alias = A.alias(target)
  if alias then
    local info = halo.process_info(alias)
    return "alias", alias, info and ("process %s (%s)"):format(target, info.PID) or "process " .. target
  end
  local ok, p = pcall(halo.whereis, target)
  if ok and p then return "name", p, ("process %s (%s)"):format(target, p) end
  return nil, ('cannot resolve target "%s": not a valid PID, alias, or registered name'):format(target)
end

local TARGET = { type = "string", description = "node (default), a PID (<crc.high.low>), an alias "
  .. "(Alias#<crc.a.b.c>) or a registered name" }

return {
  {
    name = "log_level_get",
    description = "Tells the log level of the node or of one local process, as text: `node log level: <level>`, "
      .. "`process <pid> log level: <level>` or `process <name> (<pid>) log level: <level>`.",
    inputSchema = { type = "object", properties = { target = TARGET } },
    handler = function(args)
      local kind, addr, what = resolve(args.target)
      if not kind then return nil, addr end
      if kind == "node" then return "node log level: " .. halo.log.level() end
      local ok, level, err = pcall(halo.log.level, addr)
      if not ok or not level then
        return nil, ("log_level_get %s: %s"):format(what, plain(ok and err or level))
      end
      return ("%s log level: %s"):format(what, level)
    end,
  },
  {
    name = "log_level_set",
    description = "Sets the log level of the node or of one local process (records below it are not "
      .. "produced). Levels: trace, debug, info, warning, error, panic, disabled (any case). Answers `node log "
      .. "level set to <level>` or `process <target> log level set to <level>`.",
    inputSchema = { type = "object", properties = {
      level = { type = "string", description = "trace, debug, info, warning, error, panic or disabled" },
      target = TARGET,
    }, required = json.array({ "level" }) },
    handler = function(args)
      local level = type(args.level) == "string" and args.level:lower() or ""
      if not LEVELS[level] then return nil, "unknown log level: " .. tostring(args.level) end
      local kind, addr, what = resolve(args.target)
      if not kind then return nil, addr end
      local ok, done, err = pcall(halo.log.set_level, level, addr)
      if not ok or not done then
        return nil, ("log_level_set %s: %s"):format(what, plain(ok and err or done))
      end
      return ("%s log level set to %s"):format(what, level)
    end,
  },
  {
    name = "loggers_list",
    description = "Lists the node's loggers as a JSON array of {name, levels}: levels are the record levels "
      .. "the logger receives. Processes that subscribed to the log appear too.",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function()
      local out = json.array()
      for i, lg in ipairs(halo.log.loggers()) do
        out[i] = { name = lg.name, levels = json.array(lg.levels) }
      end
      return out
    end,
  },
}
