--- halo.mcp.web: `mcp_web`, the Streamable HTTP transport at /mcp (MCP
-- 2025-11-25; 2025-06-18 and 2025-03-26 negotiated). Without a port it
-- only logs that the node is in agent mode.
--
-- The protocol runs in the HTTP connection's process (halo.http.serve):
-- token and Origin checks, sessions, initialize, ping, tools/list; a
-- tools/call is handed to the `mcp` pool and the worker's result text is
-- spliced into the JSON-RPC answer. GET opens an SSE stream that carries
-- notifications/tools/list_changed; while one is open mcp_web rescans the
-- tools directory every second, so added and removed files are noticed.
local halo = require("halo")
local json = require("halo.json")
local log = require("halo.log")
local registry = require("halo.mcp.registry")

local M = {}

M.VERSIONS = { ["2025-11-25"] = true, ["2025-06-18"] = true, ["2025-03-26"] = true }
M.LATEST = "2025-11-25"
M.MAX_BODY = 1048576
M.MAX_SESSIONS = 1000
M.CALL_TIMEOUT = 125000 -- ms: a proxied call may take 120 s
local SCAN_MS, KEEPALIVE_MS = 1000, 25000

local encode, decode, null = json.encode, json.decode, json.null

-- Shared by the connection processes of this node's listener.
local sessions, nsessions = {}, 0   -- id -> {version, used, streams = {pid = true}}
local cfg = {}                        -- token, origins (set), name, version, instructions
local streams_open = 0

local function urandom_hex(n) return assert(require("halo.core").node.random_hex(n)) end

local same_secret = require("halo.http").same_secret

local JSON_HEADERS = { ["content-type"] = "application/json" }

local function reply(status, body, extra)
  local h = JSON_HEADERS
  if extra then
    h = { ["content-type"] = "application/json" }
    for k, v in pairs(extra) do h[k] = v end
  end
  return status, body, h
end

local function rpc_error(id, code, msg)
  return '{"jsonrpc":"2.0","id":' .. encode(id) .. ',"error":{"code":' .. code .. ',"message":' .. encode(msg) .. '}}'
end

local function rpc_result(id, text)
  return '{"jsonrpc":"2.0","id":' .. encode(id) .. ',"result":' .. text .. '}'
end

local LOCAL_HOSTS = { localhost = true, ["127.0.0.1"] = true, ["[::1]"] = true }

--- True when an Origin header value may talk to the server: absent, a
-- loopback origin (any scheme and port) or one of the allowed origins.
function M.origin_ok(origin)
  if origin == nil then return true end
  if cfg.origins and cfg.origins[origin] then return true end
  local host, port = origin:match("^%a[%w+.-]*://(%[[^%]]+%])(.*)$")
  if not host then host, port = origin:match("^%a[%w+.-]*://([^:/]+)(.*)$") end
  return host ~= nil and (port == "" or port:match("^:%d*$") ~= nil) and LOCAL_HOSTS[host:lower()] == true
end

local function notify_streams()
  for _, s in pairs(sessions) do
    for pid in pairs(s.streams) do halo.send(pid, "list_changed") end
  end
end

local function end_session(id)
  local s = sessions[id]
  if not s then return end
  sessions[id] = nil
  nsessions = nsessions - 1
  for pid in pairs(s.streams) do halo.send(pid, "ended") end
end

local function new_session(version)
  if nsessions >= M.MAX_SESSIONS then -- the least recently used goes
    local oldest, at
    for id, s in pairs(sessions) do
      if not at or s.used < at then oldest, at = id, s.used end
    end
    end_session(oldest)
  end
  local id = urandom_hex(16)
  sessions[id] = { version = version, used = halo.now(), streams = {} }
  nsessions = nsessions + 1
  return id
end

local function initialize(id, params)
  if params ~= nil and type(params) ~= "table" then return nil, rpc_error(id, -32602, "invalid initialize params") end
  local asked = params and params.protocolVersion
  local version = M.VERSIONS[asked] and asked or M.LATEST
  local sid = new_session(version)
  local result = encode({
    protocolVersion = version,
    capabilities = { tools = { listChanged = true } },
    serverInfo = { name = "halo-mcp", version = cfg.version },
    instructions = cfg.instructions,
  })
  return sid, rpc_result(id, result)
end

local function tools_call(id, params)
  if type(params) ~= "table" or type(params.name) ~= "string" then
    return rpc_error(id, -32602, "invalid tools/call params")
  end
  local args = params.arguments
  if args == nil or args == null then args = {} end
  if type(args) ~= "table" then return rpc_error(id, -32602, "invalid arguments: arguments must be an object") end
  local rep, err = halo.call("mcp", { mcp = "call", tool = params.name, args = args, entry = true }, M.CALL_TIMEOUT)
  if not rep then
    if tostring(err):find("^ETIMEDOUT") then return nil, 504 end
    log.error("mcp: tools/call %s: %s", params.name, tostring(err))
    return nil, 502
  end
  if rep.error ~= nil then return rpc_error(id, rep.code or -32602, rep.error) end
  return rpc_result(id, rep.result)
end

-- One JSON-RPC message (decoded): status, body, headers.
local function post(req, msg)
  if type(msg) ~= "table" then return reply(400, rpc_error(null, -32600, "invalid request: a JSON-RPC object expected")) end
  if getmetatable(msg) == json.ARRAY or msg[1] ~= nil then
    return reply(400, rpc_error(null, -32700, "parse error: batches are not supported"))
  end
  local id, method = msg.id, msg.method
  if msg.jsonrpc ~= "2.0" then return reply(400, rpc_error(id, -32600, "invalid request: jsonrpc must be \"2.0\"")) end
  local tid = type(id)
  if id ~= nil and id ~= null and (tid ~= "string" and tid ~= "number" or id ~= id or id == math.huge or id == -math.huge) then
    return reply(400, rpc_error(null, -32600, "invalid request: id must be a string or a number"))
  end
  if method ~= nil and type(method) ~= "string" then
    return reply(400, rpc_error(id, -32600, "invalid request: method must be a string"))
  end
  if method == nil and msg.result == nil and msg.error == nil then
    return reply(400, rpc_error(id, -32600, "invalid request: no method"))
  end
  if method == "initialize" then
    if id == nil or id == null then return reply(400, rpc_error(null, -32600, "invalid request: initialize needs an id")) end
    local sid, body = initialize(id, msg.params)
    if not sid then return reply(200, body) end
    return reply(200, body, { ["mcp-session-id"] = sid })
  end
  local sid = req.headers["mcp-session-id"]
  if not sid then return reply(400, rpc_error(null, -32600, "missing Mcp-Session-Id header")) end
  local s = sessions[sid]
  if not s then return reply(404, rpc_error(null, -32600, "unknown or ended session")) end
  s.used = halo.now()
  if method == nil or id == nil or id == null then return 202, "" end -- notifications and client responses
  if method == "ping" then return reply(200, rpc_result(id, "{}")) end
  if method == "tools/list" then return reply(200, rpc_result(id, '{"tools":' .. registry.list_json() .. '}')) end
  if method == "tools/call" then
    local body, status = tools_call(id, msg.params)
    if not body then return status, status == 504 and "Gateway timeout\n" or "Bad gateway\n" end
    return reply(200, body)
  end
  return reply(200, rpc_error(id, -32601, "method not found: " .. method))
end

-- GET: the session's SSE stream, until the client goes or the session ends.
local function stream(req, res, s, sid)
  res:sse({ ["mcp-session-id"] = sid })
  local me = halo.self()
  s.streams[me] = true
  streams_open = streams_open + 1
  if streams_open == 1 then halo.send("mcp_web", "scan") end
  local note = '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}'
  local closed = false
  while true do
    local from, msg = halo.receive(KEEPALIVE_MS)
    local ok = true
    if msg == false then closed = true end
    if msg == false or msg == "ended" then break end
    if msg == "list_changed" then
      ok = res:event({ event = "message", data = note })
    elseif from == nil then -- timed out: a comment finds a client that is gone
      ok = res:write(": keep-alive\n\n")
    end
    if not ok then break end
  end
  s.streams[me] = nil
  streams_open = streams_open - 1
  res:finish()
  if closed then res:closed() end -- the connection's close was taken here
end

local function handle(req, res)
  if not M.origin_ok(req.headers.origin) then
    return reply(403, rpc_error(null, -32600, "forbidden: origin not allowed"))
  end
  if cfg.token and not same_secret(req.headers.authorization, "Bearer " .. cfg.token) then
    return 401, "", { ["www-authenticate"] = 'Bearer realm="halo-mcp"' }
  end
  local pv = req.headers["mcp-protocol-version"]
  if pv and not M.VERSIONS[pv] then
    return reply(400, rpc_error(null, -32600, "unsupported MCP-Protocol-Version: " .. pv))
  end
  if req.method == "POST" then
    local msg = decode(req.body)
    if msg == nil then return reply(400, rpc_error(null, -32700, "parse error")) end
    return post(req, msg)
  end
  local sid = req.headers["mcp-session-id"]
  if not sid then return reply(400, rpc_error(null, -32600, "missing Mcp-Session-Id header")) end
  local s = sessions[sid]
  if not s then return reply(404, rpc_error(null, -32600, "unknown or ended session")) end
  if req.method == "DELETE" then
    end_session(sid)
    return 204, ""
  end
  return stream(req, res, s, sid)
end

-- mcp_web: the listener (or agent mode) and the directory rescans while
-- streams are open.
M.Web = { name = "halo.mcp.web" }

function M.Web:init(o)
  self.o = o
  cfg = { token = o.token, origins = {}, version = o.version, instructions = o.instructions }
  for _, x in ipairs(o.origins or {}) do cfg.origins[x] = true end
  if not o.port then
    log.info("mcp: agent mode (no HTTP listener); tools of %s", o.dir)
    return
  end
  local srv, err = require("halo.http").serve({ host = o.host, port = o.port, max_body = M.MAX_BODY })
  if not srv then error(("mcp: cannot serve on %s:%d: %s"):format(o.host, o.port, tostring(err)), 0) end
  assert(srv:route("/mcp", handle, { "POST", "GET", "DELETE" }))
  self.srv = srv
  o.port = srv.port -- port 0 picks one, which a restart keeps
  self.endpoint = ("http://%s:%d/mcp"):format(o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host, srv.port)
  M.current_endpoint = self.endpoint
  log.info("mcp: serving %s%s; tools of %s", self.endpoint, o.token and " (bearer token required)" or "", o.dir)
end

function M.Web:handle_message(_, msg)
  if msg == "scan" and not self.scanning then
    self.scanning = true
    halo.send_after(halo.self(), "rescan", SCAN_MS)
  elseif msg == "rescan" then
    if streams_open > 0 then
      registry.scan()
      halo.send_after(halo.self(), "rescan", SCAN_MS)
    else
      self.scanning = false
    end
  end
end

function M.Web:handle_inspect()
  local o = self.o
  local options = { host = o.host, port = o.port, pool_size = o.pool_size, tools_dir = o.dir,
                    read_only = o.read_only, allowed_tools = json.array(o.allowed or {}),
                    origins = json.array(o.origins or {}),
                    token = o.token and "<redacted>" or "" }
  local out = { endpoint = self.endpoint or "agent mode", options = encode(options), sessions = tostring(nsessions),
                streams = tostring(streams_open) }
  if self.srv then
    for k, v in pairs(self.srv:stats() or {}) do out["http_" .. k] = tostring(v) end
  end
  return out
end

function M.Web:terminate()
  M.current_endpoint = nil
  for id in pairs(sessions) do end_session(id) end
  if self.srv then self.srv:close() end
end

--- Tells the open streams that the tools changed (registry's on_change).
M.notify = notify_streams

return M
