-- MCP tools of the process group: process_list, process_children, process_info,
-- process_state, process_lookup, process_inspect, meta_inspect.
--
-- Every figure comes from the node's introspection API (halo.process_list,
-- halo.process_children, halo.process_info, ...): filtering, sorting and the
-- limit run in C (core/introspect.c), the tools only translate arguments.
--
-- Meta processes: halo has none. The I/O handlers the reference runs as meta
-- processes (TCP, WebSocket, port and SSE handlers) are in halo either C on
-- the loop (static and C HTTP routes, OS children) or ordinary processes (an
-- HTTP connection's handler process, behavior halo.http.connection), which
-- process_list shows and process_inspect reaches by PID. An alias in halo
-- names a process, so meta_inspect inspects the process holding the alias;
-- process_info's Metas is always [].
local halo = require("halo")
local json = require("halo.json")
local A = require("halo.mcp.toolargs")

local value = A.value
local INSPECT_TIMEOUT = 5000 -- ms, as the reference's framework default

-- process_list's numeric minimums: argument, core key, scale to the core's unit.
local MINIMUMS = {
  { "min_messages_in", "messages_in", 1 },
  { "min_messages_out", "messages_out", 1 },
  { "min_mailbox", "mailbox", 1 },
  { "min_mailbox_latency_ms", "mailbox_latency", 1e6 },
  { "min_running_time_ms", "running_time", 1e6 },
  { "min_init_time_ms", "init_time", 1e6 },
  { "min_wakeups", "wakeups", 1 },
  { "min_uptime", "uptime", 1 },
}

local SORT_KEYS = json.array({ "mailbox", "mailbox_latency", "running_time", "init_time", "wakeups", "uptime",
                               "messages_in", "messages_out", "drain" })

local function string_prop(description) return { type = "string", description = description } end
local function integer_prop(description) return { type = "integer", description = description } end
local function number_prop(description) return { type = "number", description = description } end

local function pid_schema(extra)
  local props = { pid = string_prop("PID of a process of this node, e.g. <35DBD1C6.0.1001> (brackets optional)") }
  for k, v in pairs(extra or {}) do props[k] = v end
  return { type = "object", properties = props, required = json.array({ "pid" }) }
end

local ITEMS = { type = "array", items = { type = "string" },
                description = "optional keys handed to the process's handle_inspect as its items argument" }

-- A local PID from args.pid, or nil, "invalid pid: ...".
local function pid_arg(args)
  local pid, err = A.pid(args.pid)
  if not pid then return nil, "invalid pid: " .. err end
  return pid
end

-- halo.inspect(target, items) as a JSON object, or nil, "<what>: <err>".
local function inspect(what, target, items)
  local list = {}
  if value(items) then
    for i, v in ipairs(items) do list[i] = tostring(v) end
  end
  local map, err = halo.inspect(target, list, INSPECT_TIMEOUT)
  if not map then return A.fail(what, err) end
  if type(map) ~= "table" then return nil, ("%s: handle_inspect answered a %s, not a map"):format(what, type(map)) end
  local out = json.object()
  for k, v in pairs(map) do out[k] = v end
  return out
end

return {
  {
    name = "process_list",
    description = "Lists this node's processes as short info rows (PID, Name, Application, Behavior, Kind, "
      .. "MessagesIn, MessagesOut, MessagesMailbox, MailboxLatency ns, RunningTime ns, InitTime ns, Wakeups, "
      .. "Uptime s, State, StateTime ns, Parent, Leader, LogLevel, plus Drain = MessagesIn/Wakeups). Filters are "
      .. "ANDed: application (exact), behavior and name (substrings, case-sensitive), state, then the minimums and "
      .. "max_uptime (a minimum or maximum of 0 is off). With sort_by the rows come sorted descending by that key "
      .. "and cut to limit; without it the first limit matches in spawn order. Mailbox latency is always measured.",
    inputSchema = {
      type = "object",
      properties = {
        limit = integer_prop("maximum rows (default 100; 0 or negative: no limit)"),
        application = string_prop("exact application name"),
        behavior = string_prop("substring of the behavior name (case-sensitive)"),
        state = string_prop("init, sleep, running, wait response (or wait_response), terminated or zombee; any case"),
        name = string_prop("substring of the registered name (case-sensitive; unregistered processes never match)"),
        min_messages_in = integer_prop("at least this many messages received"),
        min_messages_out = integer_prop("at least this many messages sent"),
        min_mailbox = integer_prop("at least this many messages queued now"),
        min_mailbox_latency_ms = number_prop("oldest queued message at least this old, in ms (fractions allowed)"),
        min_running_time_ms = number_prop("at least this much time spent in callbacks, in ms"),
        min_init_time_ms = number_prop("init took at least this long, in ms"),
        min_wakeups = integer_prop("woken up at least this many times"),
        min_uptime = integer_prop("alive at least this many seconds"),
        max_uptime = integer_prop("alive at most this many seconds (finds fresh processes and restart loops)"),
        sort_by = { type = "string", enum = SORT_KEYS,
                    description = "sort key, always descending: mailbox, mailbox_latency, running_time, init_time, "
                      .. "wakeups, uptime, messages_in, messages_out, drain (MessagesIn / Wakeups)" },
      },
    },
    handler = function(args)
      local limit = value(args.limit) or 100
      local f = { application = value(args.application), behavior = value(args.behavior), state = value(args.state),
                  name = value(args.name), sort_by = value(args.sort_by), limit = limit > 0 and limit or 0 }
      for _, m in ipairs(MINIMUMS) do
        local v = value(args[m[1]])
        if v and v > 0 then
          f.min = f.min or {}
          f.min[m[2]] = v * m[3]
        end
      end
      local max_uptime = value(args.max_uptime)
      if max_uptime and max_uptime > 0 then f.max = { uptime = max_uptime } end
      local ok, rows = pcall(halo.process_list, f)
      if not ok then return nil, tostring(rows) end -- an unknown state
      return rows
    end,
  },
  {
    name = "process_children",
    description = "Lists the processes whose parent is the given process (a PID or a registered name), as "
      .. "process_list rows in spawn order; with recursive, every descendant level by level. The parent itself "
      .. "is not listed; a PID of an ended process still finds the children it left. No limit.",
    inputSchema = {
      type = "object",
      properties = {
        parent = string_prop("PID (<35DBD1C6.0.1001>, brackets optional) or registered name of the parent"),
        recursive = { type = "boolean", description = "all descendants, not only direct children (default false)" },
      },
      required = json.array({ "parent" }),
    },
    handler = function(args)
      local parent = value(args.parent)
      if not parent then return nil, "invalid params: argument 'parent' is required" end
      local pid = A.pid(parent)
      if not pid then
        local err
        pid, err = halo.whereis(parent)
        if not pid then return nil, ('cannot resolve parent "%s": %s'):format(parent, A.message(err)) end
      end
      local rows, err = halo.process_children(pid, value(args.recursive) == true)
      if not rows then return A.fail("process_children", err) end
      return rows
    end,
  },
  {
    name = "process_info",
    description = "Full information on one process of this node: the process_list fields plus MailboxSize "
      .. "(per queue, 0 = unlimited), MailboxQueues (depths of Main, System, Urgent, Log and the age of each "
      .. "queue's oldest message in ns as LatencyMain ...), MessagePriority, TrapExit, Env, Aliases, Events, "
      .. "Metas, LinksPID, LinksProcessID, LinksAlias, MonitorsPID, MonitorsProcessID, MonitorsAlias, ... "
      .. "Times are in ns, Uptime in s.",
    inputSchema = pid_schema(),
    handler = function(args)
      local pid, perr = pid_arg(args)
      if not pid then return nil, perr end
      local info, err = halo.process_info(pid)
      if not info then return A.fail("process_info", err) end
      return info
    end,
  },
  {
    name = "process_state",
    description = "The state of one process of this node as plain text: init, sleep, running, wait response "
      .. "(blocked in a synchronous call), terminated or zombee (killed while stuck in a callback).",
    inputSchema = pid_schema(),
    handler = function(args)
      local pid, perr = pid_arg(args)
      if not pid then return nil, perr end
      local state, err = halo.process_state(pid)
      if not state then return A.fail("process_state", err) end
      return state
    end,
  },
  {
    name = "process_lookup",
    description = "Translates between registered names and PIDs on this node, as plain text: with name, the PID "
      .. "registered under it; with pid, the process's registered name (empty text when it has none). name wins "
      .. "when both are given.",
    inputSchema = {
      type = "object",
      properties = {
        name = string_prop("registered name to resolve to a PID"),
        pid = string_prop("PID whose registered name is wanted"),
      },
    },
    handler = function(args)
      local name = value(args.name)
      if name then
        local pid, err = halo.whereis(name)
        if not pid then return A.fail("process_lookup by name", err) end
        return pid
      end
      if not value(args.pid) then return nil, "either 'name' or 'pid' parameter is required" end
      local pid, perr = pid_arg(args)
      if not pid then return nil, perr end
      local pname, err = halo.process_lookup(pid)
      if not pname then return A.fail("process_lookup by pid", err) end
      return pname
    end,
  },
  {
    name = "process_inspect",
    description = "Asks one process of this node for its own state: the map its behavior's handle_inspect "
      .. "returns (string keys and values), as a JSON object. Supervisors answer type, strategy, intensity, "
      .. "period (s), restarts_count, restarts_total and their children; pools pool_size, worker_behavior, "
      .. "worker_mailbox_size, worker_restarts, workers_alive, messages_forwarded, messages_unhandled; a process "
      .. "without handle_inspect answers {}. Waits up to 5 s for the answer.",
    inputSchema = pid_schema({ items = ITEMS }),
    handler = function(args)
      local pid, perr = pid_arg(args)
      if not pid then return nil, perr end
      return inspect("process_inspect", pid, args.items)
    end,
  },
  {
    name = "meta_inspect",
    description = "halo has no meta processes: its I/O handlers are ordinary processes (HTTP connections run in "
      .. "processes of behavior halo.http.connection, found with process_list) or C. This tool inspects the "
      .. "process that holds the given alias (Alias#<CRC.id.0.0>) as process_inspect does: its handle_inspect "
      .. "map as a JSON object. Waits up to 5 s for the answer.",
    inputSchema = {
      type = "object",
      properties = {
        alias = string_prop("alias of a process of this node, Alias#<35DBD1C6.7.0.0> (prefix and brackets optional)"),
        items = ITEMS,
      },
      required = json.array({ "alias" }),
    },
    handler = function(args)
      local alias, err = A.alias(args.alias)
      if not alias then return nil, "invalid alias: " .. err end
      return inspect("meta_inspect", alias, args.items)
    end,
  },
}
