--- halo.mcp: the MCP diagnostics server (README.md "MCP server").
--
--   require("halo.mcp").start{ port = 9922, token = "...", read_only = true }
--   -- or: halo run --mcp 9922 --mcp-token ... app.lua
--
--   application "mcp"
--   └── mcp_sup        supervisor, one_for_one, permanent
--       ├── mcp          pool of pool_size workers (halo.mcp.dispatch): runs
--       │                tool calls from HTTP and from other nodes, an idle
--       │                worker first, so a slow call holds up no other
--       └── mcp_web      Streamable HTTP at /mcp (halo.mcp.web), or agent
--                        mode without a port
--
-- Options: host ("127.0.0.1"), port (nil: agent mode; 0 picks a free one),
-- token (bearer token; nil: HALO_MCP_TOKEN, or none), origins (allowed
-- Origin values besides loopback ones), read_only, allowed (tool names),
-- pool_size (5), dir (the tools directory; default mcp_tools/ of the halo
-- tree this module is in), expose_env (node_env shows the OS environment,
-- secret-looking values redacted; default false: node_env answers {}).
local halo = require("halo")
local registry = require("halo.mcp.registry")

local M = {}

local DEFAULTS = { host = "127.0.0.1", pool_size = 5 }
local KEYS = { host = true, port = true, token = true, origins = true, read_only = true, allowed = true,
               pool_size = true, dir = true, expose_env = true }
M.DEFAULT_PORT = 9922

M.INSTRUCTIONS = "halo-mcp inspects a running halo cluster (an actor runtime): processes, applications, events, "
  .. "network links, cron jobs, registrars and log levels. Call tools/list to discover the tools; every tool takes "
  .. "`node` (name@host, to run it on another node of the cluster) and `timeout` (seconds, 1..120, default 30). "
  .. "Tool failures come back as results with isError set and a readable message."

--- mcp_tools/ of the halo tree this file belongs to (lua/halo/mcp/init.lua).
function M.default_dir()
  local src = debug.getinfo(1, "S").source
  local root = src:match("^@(.*)/lua/halo/mcp/init%.lua$")
  if root == nil then return "mcp_tools" end
  return (root == "" and "." or root) .. "/mcp_tools"
end

local function list_of(v, what)
  if v == nil then return {} end
  if type(v) == "string" then
    local out = {}
    for x in v:gmatch("[^,%s]+") do out[#out + 1] = x end
    return out
  end
  if type(v) ~= "table" then error(("halo.mcp: %s must be a list or a comma-separated string"):format(what), 4) end
  return v
end

local function options(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if not KEYS[k] then error("halo.mcp: unknown option '" .. tostring(k) .. "'", 3) end
    o[k] = v
  end
  if o.port ~= nil then
    local port = tonumber(o.port)
    if not port or port < 0 or port > 65535 or port % 1 ~= 0 then error("halo.mcp: port must be an integer 0..65535", 3) end
    o.port = port
  end
  local size = tonumber(o.pool_size)
  o.pool_size = (size and size >= 1) and math.floor(size) or DEFAULTS.pool_size
  if o.token == nil or o.token == "" then
    local env = os.getenv("HALO_MCP_TOKEN")
    o.token = (env and env ~= "") and env or nil
  end
  o.origins = list_of(o.origins, "origins")
  o.allowed = list_of(o.allowed, "allowed")
  o.read_only = o.read_only and true or false
  o.expose_env = o.expose_env and true or false
  o.dir = o.dir or M.default_dir()
  o.version = halo.node_info().Framework.Release
  o.instructions = M.INSTRUCTIONS
  return o
end

--- The application spec of mcp with options opts (see the top).
function M.spec(opts)
  local o = options(opts)
  local dispatch, web = require("halo.mcp.dispatch"), require("halo.mcp.web")
  return {
    name = "mcp",
    description = "MCP diagnostics server",
    mode = "temporary",
    group = {
      { name = "mcp_sup", behavior = require("halo.supervisor").behavior, args = {
        strategy = "one_for_one",
        restart = "permanent",
        children = {
          { name = "mcp", behavior = require("halo.pool").behavior,
            args = { size = o.pool_size, worker = dispatch.Worker, prefer_idle = true } },
          { name = "mcp_web", behavior = web.Web, args = o },
        },
      } },
    },
  }, o
end

local current = { read_only = false, expose_env = false }

--- The settings tools may read: read_only, expose_env, allowed, dir, pool_size.
function M.settings() return current end

--- Loads the tools and starts mcp; an mcp already running (the agent mode
-- `halo run` starts on a networked node) is stopped first and replaced.
-- Returns true, or nil, "ECODE: message".
function M.start(opts)
  local spec, o = M.spec(opts)
  local app = require("halo.application")
  if app.info("mcp") then M.stop() end
  local ok, err, code = app.load(spec)
  if not ok then return nil, err, code end
  current = { read_only = o.read_only, expose_env = o.expose_env, allowed = o.allowed, dir = o.dir,
              pool_size = o.pool_size }
  registry.configure({ dir = o.dir, read_only = o.read_only, allowed = o.allowed,
                       on_change = require("halo.mcp.web").notify })
  ok, err, code = app.start("mcp")
  if not ok then
    app.unload("mcp")
    return nil, err, code
  end
  return true
end

--- Stops and unloads mcp.
function M.stop()
  local app = require("halo.application")
  local ok, err, code = app.stop("mcp")
  if not ok then return nil, err, code end
  return app.unload("mcp")
end

--- "http://host:port/mcp" of this node's listener, or nil (agent mode, not running).
function M.endpoint() return require("halo.mcp.web").current_endpoint end

--- Parses the --mcp flag ("HOST:PORT", "HOST", ":PORT", "PORT") into host, port.
function M.parse_address(s)
  return require("halo.radar").parse_address(s, DEFAULTS.host, M.DEFAULT_PORT)
end

return M
