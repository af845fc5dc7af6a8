--- halo.observer: the Observer, a live web UI of the cluster served by any
-- node (README "The Observer").
--
--   require("halo.observer").start{ port = 9911, token = "..." }
--
-- Application `observer`:
--   observer
--   └── observer_sup    supervisor, one_for_one, permanent
--       └── observer_web  the HTTP server (halo.observer.web); each SSE
--                         connection runs a session process
--                         (halo.observer.session) linked to it
--
-- Options: host ("127.0.0.1"), port (9911; 0 picks a free one), token (nil:
-- actions off; HALO_OBSERVER_TOKEN is read when absent), www (the static
-- files: observer/www of this halo tree), pool_size (accepted, unused: each
-- HTTP connection of halo.http runs in a process of its own).
local M = {}

M.DEFAULT_PORT = 9911
local DEFAULTS = { host = "127.0.0.1", port = M.DEFAULT_PORT }
local KEYS = { host = true, port = true, token = true, www = true, pool_size = true }

--- observer/www of the halo tree this file belongs to (lua/halo/observer/init.lua).
function M.default_www()
  local src = debug.getinfo(1, "S").source
  local root = src:match("^@(.*)/lua/halo/observer/init%.lua$")
  if root == nil then return "observer/www" end
  return (root == "" and "." or root) .. "/observer/www"
end

local function options(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if not KEYS[k] then error("halo.observer: unknown option '" .. tostring(k) .. "'", 3) end
    o[k] = v
  end
  local port = tonumber(o.port)
  if not port or port < 0 or port > 65535 or port % 1 ~= 0 then error("halo.observer: port must be an integer 0..65535", 3) end
  o.port = port
  if type(o.host) ~= "string" or o.host == "" then error("halo.observer: host must be a string", 3) end
  if o.token == nil or o.token == "" then
    local env = os.getenv("HALO_OBSERVER_TOKEN")
    o.token = (env and env ~= "") and env or nil
  end
  if o.token ~= nil and type(o.token) ~= "string" then error("halo.observer: token must be a string", 3) end
  o.www = o.www or M.default_www()
  return o
end

--- The application spec of observer with options opts (see the top).
function M.spec(opts)
  local o = options(opts)
  return {
    name = "observer",
    description = "Observer: live web UI of the cluster",
    mode = "temporary",
    group = {
      { name = "observer_sup", behavior = require("halo.supervisor").behavior, args = {
        strategy = "one_for_one",
        restart = "permanent",
        children = {
          { name = "observer_web", behavior = require("halo.observer.web").Web, args = o },
        },
      } },
    },
  }, o
end

--- Starts the observer application (one per node). Returns its URL
-- ("http://host:port/"), or nil, "ECODE: message".
function M.start(opts)
  local spec = M.spec(opts)
  local app = require("halo.application")
  local ok, err, code = app.load(spec)
  if not ok then return nil, err, code end
  ok, err, code = app.start("observer")
  if not ok then
    app.unload("observer")
    return nil, err, code
  end
  return M.url()
end

--- Stops and unloads observer.
function M.stop()
  local app = require("halo.application")
  local ok, err, code = app.stop("observer")
  if not ok then return nil, err, code end
  return app.unload("observer")
end

--- "http://host:port/" of this node's Observer, or nil.
function M.url() return require("halo.observer.web").current_url end

--- Parses the --observer flag ("HOST:PORT", "HOST", ":PORT", "PORT") into host, port.
function M.parse_address(s)
  return require("halo.radar").parse_address(s, DEFAULTS.host, M.DEFAULT_PORT)
end

return M
