--- halo.mcp.dispatch: the workers of the `mcp` pool. They answer the
-- cluster wire protocol (MCP_CONTRACT.md):
--
--   {mcp = "call", tool = name, params = <JSON text of the arguments>}
--     -> {result = <compact JSON text of the MCP result object>}
--      | {error = <message>, code = -32602}      (unknown tool, bad arguments)
--   {mcp = "ping"} -> {result = "{}"}
--
-- The local HTTP entry hands the decoded arguments instead (`args`) and sets
-- `entry`: only such calls are proxied when `node` names another node, so
-- a proxied call runs where it lands (one hop). Handlers run here, in the
-- worker; one that raises gives an isError result and the worker goes on.
local core = require("halo.core")
local halo = require("halo")
local json = require("halo.json")
local log = require("halo.log")
local registry = require("halo.mcp.registry")
local schema = require("halo.mcp.schema")

local M = {}

M.DEFAULT_TIMEOUT, M.MAX_TIMEOUT = 30, 120

local encode, null = json.encode, json.null

--- The compact JSON text of a result object with one text item.
function M.text_result(text, is_error)
  return '{"content":[{"type":"text","text":' .. encode(text) .. (is_error and '}],"isError":true}' or '}]}')
end

--- A proxy timeout in seconds: absent 30, else clamped to 1..120.
function M.clamp(t)
  if t == nil then return M.DEFAULT_TIMEOUT end
  if t < 1 then return 1 end
  if t > M.MAX_TIMEOUT then return M.MAX_TIMEOUT end
  return t
end

local function refuse(msg) return { error = msg, code = -32602 } end

-- "ETIMEDOUT: timed out" -> "timed out"
local function reason(err) return (tostring(err):gsub("^E[%u_]+: ", "")) end

-- Calls tool on node's mcp pool: the reply table, or nil, failure text.
local function remote(node, tool, params, timeout)
  if not node:find("@", 1, true) then
    return nil, ("remote call to '%s' failed: incorrect node name, expected name@host"):format(node)
  end
  local rep, err = halo.call(halo.net.process_id("mcp", node), { mcp = "call", tool = tool, params = params },
    timeout * 1000)
  if not rep then return nil, ("remote call to '%s' failed: %s"):format(node, reason(err)) end
  if type(rep) ~= "table" or (type(rep.result) ~= "string" and rep.error == nil) then
    return nil, ("remote call to '%s' failed: unexpected response"):format(node)
  end
  return rep
end

-- The result object of a remote's result text, or nil when it is none.
local function result_object(text)
  local obj = json.decode(text)
  if type(obj) ~= "table" or getmetatable(obj) == json.ARRAY or type(obj.content) ~= "table" then return nil end
  return obj
end

--- Runs tool on another node (params: JSON text of the arguments). Returns
-- the reply for the entry point: {result = text} (proxy failures are
-- isError results naming the node and the reason) or {error, code}. The
-- text is spliced into the HTTP answer, so it must be a result object.
function M.proxy(node, tool, params, timeout)
  local rep, err = remote(node, tool, params, timeout)
  if not rep then return { result = M.text_result(err, true) } end
  if rep.error ~= nil then
    local code = tonumber(rep.code)
    return { error = tostring(rep.error), code = (code and code % 1 == 0) and code or -32602 }
  end
  if not result_object(rep.result) then
    return { result = M.text_result(("remote call to '%s' failed: unexpected response"):format(node), true) }
  end
  return { result = rep.result }
end

--- ctx.call_remote: runs tool on node with the arguments table args; this
-- node's read-only and allowed tools bind it as they bind proxied calls.
-- Returns the MCP result object ({content, isError}) or nil, message.
function M.call_remote(node, tool, args, timeout)
  if type(node) ~= "string" or type(tool) ~= "string" then error("call_remote(node, tool, args, timeout)", 2) end
  if not registry.permitted(tool) then return nil, "unknown tool: " .. tool end
  timeout = M.clamp(tonumber(timeout))
  local a = json.object()
  for k, v in pairs(args or {}) do a[k] = v end
  a.timeout = timeout -- the remote's ctx.timeout
  local rep, err = remote(node, tool, encode(a), timeout)
  if not rep then return nil, err end
  if rep.error ~= nil then return nil, tostring(rep.error) end
  local obj = result_object(rep.result)
  if not obj then return nil, ("remote call to '%s' failed: unexpected response"):format(node) end
  return obj
end

local function traceback(e) return debug.traceback(tostring(e), 2) end

-- Runs a handler: the compact JSON text of its result object.
local function run(t, args, ctx)
  local ok, v, err = xpcall(t.handler, traceback, args, ctx)
  if not ok then
    log.error("mcp: tool %s failed: %s", t.name, v)
    return M.text_result(("tool %s failed: %s"):format(t.name, v:match("^[^\n]*")), true)
  end
  local tv = type(v)
  if tv == "string" then return M.text_result(v) end
  if v == nil then
    return M.text_result(err ~= nil and tostring(err) or ("tool " .. t.name .. " returned no result"), true)
  end
  local okE, text = pcall(encode, v, true)
  if not okE then
    log.error("mcp: tool %s: cannot encode its result: %s", t.name, text)
    return M.text_result(("tool %s failed: cannot encode its result: %s"):format(t.name, text), true)
  end
  return M.text_result(text)
end

local OVERHEAD, FRAME = 512, 64 * 2 ^ 20 -- the reply's bytes besides the result text; the frame limit

--- The longest message this node may send to the node of caller from (a
-- PID string): the limit that node advertised (0: the frame limit), or
-- this node's own when that node is not connected.
function M.message_limit(from)
  local info = halo.net.info()
  local crc = type(from) == "string" and from:match("^<(%x+)%.")
  for _, name in ipairs(crc and info.Nodes or {}) do
    if ("%08X"):format(core.net.crc32(name)) == crc then
      local p = halo.net.node(name)
      if p then return (p.MaxMessageSize or 0) > 0 and p.MaxMessageSize or FRAME end
    end
  end
  return (info.MaxMessageSize or 0) > 0 and info.MaxMessageSize or FRAME
end

--- Serves one {mcp = "call"} request on this node (see the top). from: the
-- caller's PID when the call came from another node (a result too large
-- for the reply is an isError result instead).
function M.call(req, node_name, pid, from)
  local tool = req.tool
  if type(tool) ~= "string" then return { error = "invalid tools/call params", code = -32602 } end
  local args = req.args
  if args == nil then
    if req.params == nil or req.params == "" then
      args = {}
    else
      local err
      args, err = json.decode(req.params)
      if args == nil then return refuse("invalid arguments: " .. tostring(err)) end
    end
  end
  if args == null then args = {} end
  if schema.check("arguments", { type = "object" }, args) then return refuse("invalid arguments: arguments must be an object") end
  local node, timeout = args.node, args.timeout
  if node == null then node = nil end
  if timeout == null then timeout = nil end
  local verr = (node ~= nil and schema.check("node", schema.NODE, node))
    or (timeout ~= nil and schema.check("timeout", schema.TIMEOUT, timeout))
  if verr then return refuse("invalid arguments: " .. verr) end
  local timeout_given = timeout ~= nil
  timeout = M.clamp(timeout)
  if req.entry and node and node ~= "" and node ~= node_name then
    if not registry.permitted(tool) then return refuse("unknown tool: " .. tool) end
    local t = registry.lookup(tool) -- a tool that runs other tools checks them against this entry's policy
    local perr = t and t.entry_check and t.entry_check(args)
    if perr then return { result = M.text_result(perr, true) } end
    return M.proxy(node, tool, req.params or encode(args), timeout)
  end
  local t, load_err = registry.lookup(tool)
  if load_err then return { result = M.text_result(("tool %s is unavailable: %s"):format(tool, load_err), true) } end
  if not t then return refuse("unknown tool: " .. tool) end
  args.node, args.timeout = nil, nil
  verr = schema.validate(t.inputSchema, args)
  if verr then return refuse("invalid arguments: " .. verr) end
  local ctx = { tool = tool, node = node_name, pid = pid, timeout = timeout, timeout_given = timeout_given,
                call_remote = M.call_remote }
  local text = run(t, args, ctx)
  local limit = from and #text > 1024 - OVERHEAD and M.message_limit(from)
  if limit and #text > limit - OVERHEAD then -- a reply that large would be dropped: the caller would time out
    text = M.text_result(("result too large to send over the cluster: %d bytes (limit %d); narrow the call "
      .. "(limit, filters)"):format(#text, limit), true)
  end
  return { result = text }
end

--- The worker behavior of the `mcp` pool.
M.Worker = { name = "halo.mcp.worker" }

function M.Worker:init()
  self.node = halo.node_info().Name
  self.pid = halo.self()
end

function M.Worker:handle_call(from, _, req)
  if type(req) == "table" then
    if req.mcp == "call" then
      -- a raise here would end the worker and leave the caller waiting out its timeout
      local ok, rep = xpcall(M.call, traceback, req, self.node, self.pid, not req.entry and from or nil)
      if ok then return rep end
      log.error("mcp: tools/call %s: %s", tostring(req.tool), rep)
      return { result = M.text_result(("tool %s failed: %s"):format(tostring(req.tool), rep:match("^[^\n]*")), true) }
    end
    if req.mcp == "ping" then return { result = "{}" } end
  end
  return { error = "invalid request", code = -32600 }
end

return M
