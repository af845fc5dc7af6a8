-- The action group: tools that act on processes (send, call, exit, kill) and
-- the message shapes they can build. The server leaves the whole group out
-- in read-only mode.
local halo = require("halo")
local json = require("halo.json")
local message = require("halo.message")
local A = require("halo.mcp.toolargs")

-- "ECODE: text" -> "text"; a raised argument error -> its message.
local function plain(err)
  err = tostring(err)
  return err:match("bad argument #%d+ to '[^']*' %((.*)%)$") or (err:gsub("^E%u+: ", ""))
end

-- The node's own services (kind system) refuse exit and kill (halo.inspect).
local system_process = require("halo.inspect").system_process
local node_entry = require("halo.inspect").node_entry
local denull = require("halo.inspect").denull

local BAD_PID = "invalid pid: incorrect PID format, expected <crc.high.low>"

local function lua_type(v)
  if type(v) ~= "table" then return type(v) end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  return (n > 0 and count == n or getmetatable(v) == json.ARRAY) and "list" or "table"
end

-- The message (or request) a tool sends: value, its type text, or nil, nil, error text.
-- A string holding a JSON object or array is that JSON (some clients send objects as text).
local function payload(v, type_name)
  if type(v) == "string" and v:match("^%s*[%[{]") then
    local d, err = json.decode(v)
    if d == nil then return nil, nil, "invalid JSON: " .. plain(err) end
    v = d
  end
  v = denull(v)
  if type(type_name) ~= "string" or type_name == "" then return v, lua_type(v) end
  local info = message.info(type_name)
  if not info then
    return nil, nil, ("type not found: %s. Use message_types to list registered types"):format(type_name)
  end
  local m, err = message.build(info.type_name, v)
  if not m then return nil, nil, ("failed to construct %s: %s"):format(info.type_name, plain(err)) end
  return m, type_name
end

-- to: a PID (this node's), else a registered name (or an alias) as given.
local function target(to) return A.pid(to) or to end

-- Runs f(...) and turns a raised argument error into nil, message.
local function try(f, ...)
  local ok, r, err = pcall(f, ...)
  if not ok then return nil, r end
  return r, err
end

local PAYLOAD_DOC = "JSON value; an object or array may also be given as a JSON string. With type_name, an object "
  .. "of the shape's fields (see message_type_info)."

return {
  {
    name = "message_types",
    description = "Lists the message shapes declared on this node with halo.message.define (the messages its "
      .. "processes accept), as a JSON array of full names (module/Name), sorted. Use a name as type_name in "
      .. "send_message and call_process.",
    inputSchema = { type = "object", properties = {
      filter = { type = "string", description = "keep names containing this text (case-insensitive)" },
    } },
    handler = function(args)
      local filter = type(args.filter) == "string" and args.filter or nil
      return json.array(message.list(filter))
    end,
  },
  {
    name = "message_type_info",
    description = "Describes one message shape as a JSON object: type_name (full name), kind (always table: a "
      .. "halo message is a Lua table whose `type` is the short name) and fields ([{name, type}], types string, "
      .. "integer, number, boolean, table, list or any).",
    inputSchema = { type = "object", properties = {
      type_name = { type = "string", description = "full name (module/Name) or short name (Name)" },
    }, required = json.array({ "type_name" }) },
    handler = function(args)
      local info = message.info(args.type_name)
      if not info then
        return nil, ("type not found: %s. Use message_types to list registered types"):format(tostring(args.type_name))
      end
      info.fields = json.array(info.fields)
      return json.object(info)
    end,
  },
  {
    name = "send_message",
    description = "Sends a message to a local process (PID or registered name) from the MCP worker, without "
      .. "waiting. Answers `message sent to <to> (type: <type>, important: <bool>)`; type is type_name, or the "
      .. "Lua type of the value (table, list, number, string, boolean, nil). To reach another node's process, "
      .. "pass node.",
    inputSchema = { type = "object", properties = {
      to = { type = "string", description = "PID (<crc.high.low>, brackets optional) or registered name" },
      message = { description = "the message: " .. PAYLOAD_DOC },
      type_name = { type = "string", description = "build the message from this shape (see message_types)" },
      important = { type = "boolean", description = "accepted for compatibility: halo reports a missing or "
        .. "full local target at once anyway (default false)" },
    }, required = json.array({ "to", "message" }) },
    handler = function(args)
      local msg, tname, err = payload(args.message, args.type_name)
      if err then return nil, err end
      local important = args.important == true
      local ok, serr = try(halo.send, target(args.to), msg)
      if not ok then
        return nil, ("send_message%s: %s"):format(important and " (important)" or "", plain(serr))
      end
      return ("message sent to %s (type: %s, important: %s)"):format(args.to, tname, tostring(important))
    end,
  },
  {
    name = "call_process",
    description = "Calls a local process (PID or registered name) from the MCP worker and waits for its "
      .. "reply, returned as pretty JSON. The call waits `timeout` seconds when given (the same value bounds "
      .. "the proxied call when node is set), else 5 s. Errors: call_process: timed out / unknown process / "
      .. "process terminated: <reason>.",
    inputSchema = { type = "object", properties = {
      to = { type = "string", description = "PID (<crc.high.low>, brackets optional) or registered name" },
      request = { description = "the request: " .. PAYLOAD_DOC },
      type_name = { type = "string", description = "build the request from this shape (see message_types)" },
      important = { type = "boolean", description = "accepted for compatibility; changes nothing (default false)" },
    }, required = json.array({ "to", "request" }) },
    handler = function(args, ctx)
      local req, _, err = payload(args.request, args.type_name)
      if err then return nil, err end
      -- the one `timeout` argument: the server clamps it (1..120 s) and bounds a proxied call with it; given,
      -- it bounds this call too; absent (timeout_given false), this call waits 5 s
      local secs = ctx.timeout_given ~= false and tonumber(ctx.timeout) or 5
      local reply, cerr = try(halo.call, target(args.to), req, secs * 1000)
      if reply == nil and cerr then return nil, "call_process: " .. plain(cerr) end
      local ok, text = pcall(json.encode, reply, true)
      return ok and text or tostring(reply)
    end,
  },
  {
    name = "send_exit",
    description = "Sends an exit signal with a reason (default normal; shutdown, kill or any text) to a local "
      .. "process from the MCP worker. It ends the process with that reason unless the process traps exits. "
      .. "Answers `exit signal sent to <pid> (reason: <reason>)`. The node's system processes (kind system: "
      .. "halo_remote, halo_applications, cron) are refused, and a reason other than normal to the node's entry "
      .. "process (its end stops the node).",
    inputSchema = { type = "object", properties = {
      pid = { type = "string", description = "PID (<crc.high.low>, brackets optional)" },
      reason = { type = "string", description = "exit reason (default normal)" },
    }, required = json.array({ "pid" }) },
    handler = function(args)
      local pid = A.pid(args.pid)
      if not pid then return nil, BAD_PID end
      local reason = (type(args.reason) == "string" and args.reason ~= "") and args.reason or "normal"
      local refused = system_process(pid) or (reason ~= "normal" and node_entry(pid))
      if refused then return nil, "send_exit: " .. refused end
      local ok, err = try(halo.exit, pid, reason)
      if not ok then return nil, "send_exit: " .. plain(err) end
      return ("exit signal sent to %s (reason: %s)"):format(pid, reason)
    end,
  },
  {
    name = "process_kill",
    description = "Kills a local process at once. An idle one ends with reason kill; one suspended inside a "
      .. "callback (sleeping, calling) becomes a zombee: its links and monitors fire now, it never runs again. "
      .. "Answers `process <pid> killed`. The node's system processes (kind system: halo_remote, "
      .. "halo_applications, cron) and its entry process (its end stops the node) are refused.",
    inputSchema = { type = "object", properties = {
      pid = { type = "string", description = "PID (<crc.high.low>, brackets optional)" },
    }, required = json.array({ "pid" }) },
    handler = function(args)
      local pid = A.pid(args.pid)
      if not pid then return nil, BAD_PID end
      if pid == halo.self() then return nil, "process_kill: not allowed: that is the MCP worker running this call" end
      local refused = system_process(pid) or node_entry(pid)
      if refused then return nil, "process_kill: " .. refused end
      local ok, err = try(halo.kill, pid)
      if not ok then return nil, "process_kill: " .. plain(err) end
      return ("process %s killed"):format(pid)
    end,
  },
}
