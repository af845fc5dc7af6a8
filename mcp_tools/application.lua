-- MCP tools of the application group: app_list, app_info, app_processes.
-- Everything comes from halo.application.list / info / processes.
local halo = require("halo")
local json = require("halo.json")
local A = require("halo.mcp.toolargs")

local value = A.value

local function name_schema(description, extra)
  local props = { name = { type = "string", description = description } }
  for k, v in pairs(extra or {}) do props[k] = v end
  return { type = "object", properties = props, required = json.array({ "name" }) }
end

return {
  {
    name = "app_list",
    description = "Lists the applications loaded on this node as rows with lower-case keys: name, state "
      .. "(loaded, running, stopping), mode (temporary, transient, permanent), description, version, uptime (s), "
      .. "weight, tags (the last four left out when empty or 0) and processes (members listed now). Filters are "
      .. "ANDed: state and mode (any case; stopped means stopping), name (substring, case-sensitive), min_uptime "
      .. "(s, off at 0).",
    inputSchema = {
      type = "object",
      properties = {
        state = { type = "string", description = "loaded, running or stopping (stopped is accepted for stopping)" },
        mode = { type = "string", description = "permanent, transient or temporary" },
        name = { type = "string", description = "substring of the application name (case-sensitive)" },
        min_uptime = { type = "integer", description = "running at least this many seconds" },
      },
    },
    handler = function(args)
      local filter = { state = value(args.state), mode = value(args.mode), name = value(args.name),
                       min_uptime = value(args.min_uptime) }
      local ok, rows = pcall(halo.application.list, filter)
      if not ok then return nil, tostring(rows) end -- an unknown state or mode
      return rows
    end,
  },
  {
    name = "app_info",
    description = "Full information on one application of this node: Name, Description, Version (Name, Release, "
      .. "Commit, License), Weight, Tags, Env, Depends (Applications, Network), Mode, State, Parent (the node "
      .. "that started it), Uptime (s) and Group (PIDs of its member processes).",
    inputSchema = name_schema("application name"),
    handler = function(args)
      local name = value(args.name)
      if not name then return nil, "app_info: unknown application" end
      local info, err = halo.application.info(name)
      if not info then return A.fail("app_info", err) end
      return info
    end,
  },
  {
    name = "app_processes",
    description = "The processes of one running application of this node (its members and every process they "
      .. "spawned) as process_list rows in spawn order, at most limit. Times in ns, Uptime in s.",
    inputSchema = name_schema("application name", {
      limit = { type = "integer", description = "maximum rows (default 100; values below 1 mean 100)" },
    }),
    handler = function(args)
      local name = value(args.name)
      if not name then return nil, "app_processes: unknown application" end
      local limit = value(args.limit)
      local rows, err = halo.application.processes(name, limit)
      if not rows then return A.fail("app_processes", err) end
      return rows
    end,
  },
}
