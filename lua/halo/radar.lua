--- halo.radar: the radar application, Prometheus metrics and health probes
-- on one HTTP listener.
--
--   require("halo.radar").start{ host = "0.0.0.0", port = 9090 }
--   -- or: halo run --metrics 0.0.0.0:9090 app.lua
--
--   application "radar"
--   └── radar_sup        supervisor, one_for_one
--       ├── radar_web      the HTTP listener: /metrics answered in C from the
--       │                  node's tables at scrape time, /health/* served
--       │                  from bodies radar_health publishes
--       ├── radar_health   the health signals (halo.health)
--       └── radar_metrics  flushes the custom top-N families every
--                          collect_interval; its inspect lists the families
--
-- Options: host ("127.0.0.1"), port (9090; 0 picks a free one),
-- metrics_path ("/metrics"), health_path ("/health"), check_interval (ms,
-- 1000), collect_interval (ms, 10000), top_n (50). Every path answers any
-- method, as the reference's do.
local halo = require("halo")
local core = require("halo.core")

local M = {}

local DEFAULTS = { host = "127.0.0.1", port = 9090, metrics_path = "/metrics", health_path = "/health",
                   check_interval = 1000, collect_interval = 10000, top_n = 50 }
local PROBES = { "live", "ready", "startup" }
local ANY = { "*" }

-- The listener of this node run, for address().
local current = { serial = nil }

local function options(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if DEFAULTS[k] == nil then error("halo.radar: unknown option '" .. tostring(k) .. "'", 3) end
    o[k] = v
  end
  local port = tonumber(o.port)
  if not port or port < 0 or port > 65535 or port % 1 ~= 0 then
    error("halo.radar: port must be an integer 0..65535", 3)
  end
  o.port = port
  for _, k in ipairs({ "check_interval", "collect_interval", "top_n" }) do
    local v = tonumber(o[k])
    if not v or v <= 0 then o[k] = DEFAULTS[k] else o[k] = v end -- the reference defaults <= 0 too
  end
  return o
end


-- "host:port", an IPv6 host in brackets.
local function endpoint(host, port)
  return (host:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(host, port)
end

-- radar_web: owns the listener.
local Web = { name = "radar.web" }

function Web:init(o)
  self.o = o
  local srv, err = require("halo.http").serve({ host = o.host, port = o.port })
  if not srv then error(string.format("radar: cannot serve on %s: %s", endpoint(o.host, o.port), tostring(err)), 0) end
  self.srv = srv
  o.port = srv.port -- port 0 picks one port, which a restart keeps
  local metrics = require("halo.metrics")
  local expose_opts, headers = { top_n = o.top_n }, { ["content-type"] = metrics.CONTENT_TYPE }
  -- a Lua route: the connection's process reads the process table in steps
  -- and yields between them, so a scrape of a large node never holds the loop
  srv:route(o.metrics_path, function() return 200, metrics.expose(expose_opts), headers end, ANY)
  -- every process's stack as text (halo.stacks): ?debug=2 one block per process, else grouped
  srv:route("/debug/pprof/goroutine", function(req)
    local debug = (tonumber(req.query:match("debug=(%d+)")) or 1) >= 2 and 2 or 1
    return 200, require("halo.stacks").dump({ debug = debug, limit = 0 }),
      { ["content-type"] = "text/plain; charset=utf-8" }
  end, ANY)
  srv:route("/debug/pprof/profile", function(req) return require("halo.cpuprof").serve(req) end, ANY)
  srv:route("/debug/pprof/heap", function() return require("halo.heap").serve() end, ANY)
  -- a restarted radar_web takes the answers radar_health holds (it publishes
  -- only changes); at the application's start radar_health is not up yet
  local health = require("halo.health")
  local alive = halo.whereis(health.NAME) ~= nil
  for _, p in ipairs(PROBES) do
    local status, body
    if alive then status, body = health.status(p) end
    if not status then status, body = 200, '{"status":"healthy"}' end
    srv:static(o.health_path .. "/" .. p, status, "application/json", body, ANY)
  end
  current = { serial = core.node.serial(), host = o.host, port = srv.port }
  halo.log.info("metrics on http://%s%s, probes on %s/{live,ready,startup}", endpoint(o.host, srv.port),
    o.metrics_path, o.health_path)
end

function Web:handle_message(_, msg)
  if type(msg) == "table" and msg.kind == "health" then
    self.srv:static(self.o.health_path .. "/" .. msg.probe, msg.status, "application/json", msg.body, ANY)
  end
end

function Web:handle_inspect()
  local st = self.srv:stats()
  local out = { endpoint = endpoint(self.o.host, self.srv.port) }
  for k, v in pairs(st) do out[k] = tostring(v) end
  return out
end

function Web:terminate()
  if self.srv then self.srv:close() end
  if current.serial == core.node.serial() then current = { serial = nil } end
end

-- radar_metrics: the custom top-N flush and the reference's inspect keys.
local Metrics = { name = "radar.metrics" }

function Metrics:init(o)
  self.o = o
  self.timer = halo.send_after(halo.self(), { kind = "flush" }, o.collect_interval)
end

function Metrics:handle_message(_, msg)
  if type(msg) == "table" and msg.kind == "flush" then
    require("halo.metrics").flush_top()
    self.timer = halo.send_after(halo.self(), { kind = "flush" }, self.o.collect_interval)
  end
end

function Metrics:handle_inspect()
  local out = { http_endpoint = endpoint(self.o.host, current.port or self.o.port) .. self.o.metrics_path,
                collect_interval = require("halo.health").duration(self.o.collect_interval) }
  local metrics = require("halo.metrics")
  local custom = metrics.stats().families
  out.total_metrics = tostring(#metrics.families() + custom)
  out.custom_metrics = tostring(custom)
  return out
end

-- Raises while radar_web is down, so radar_health hands the answer again.
local function publish(probe, status, body)
  assert(halo.send("radar_web", { kind = "health", probe = probe, status = status, body = body }))
end

--- The application spec of radar with options opts (see the top).
function M.spec(opts)
  local o = options(opts)
  return {
    name = "radar",
    description = "Prometheus exporter + health endpoints",
    mode = "temporary",
    group = {
      { name = "radar_sup", behavior = require("halo.supervisor").behavior, args = {
        strategy = "one_for_one",
        restart = "permanent",
        children = {
          { name = "radar_web", behavior = Web, args = o },
          { name = "radar_health", behavior = require("halo.health").behavior,
            args = { publish = publish, check_interval = o.check_interval, path = o.health_path .. "/*" } },
          { name = "radar_metrics", behavior = Metrics, args = o },
        },
      } },
    },
  }
end

--- Loads and starts radar. Returns true, or nil, "ECODE: message".
function M.start(opts)
  local app = require("halo.application")
  local ok, err, code = app.load(M.spec(opts))
  if not ok then return nil, err, code end
  ok, err, code = app.start("radar")
  if not ok then
    app.unload("radar")
    return nil, err, code
  end
  return true
end

--- Stops and unloads radar.
function M.stop()
  local app = require("halo.application")
  local ok, err, code = app.stop("radar")
  if not ok then return nil, err, code end
  return app.unload("radar")
end

--- "host", port of this node's radar listener, or nil when it is not running.
function M.address()
  if current.serial ~= core.node.serial() or not current.port then return nil end
  return current.host, current.port
end

--- Parses "HOST:PORT", "HOST", ":PORT" or "PORT" (the --metrics flag) into
-- host, port with radar's defaults (or dhost, dport); nil, message when malformed.
function M.parse_address(s, dhost, dport)
  dhost, dport = dhost or DEFAULTS.host, dport or DEFAULTS.port
  if type(s) ~= "string" or s == "" then return dhost, dport end
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]*):(%d+)$") end
  if not host then
    if s:match("^%d+$") then host, port = "", s
    elseif not s:find(":", 1, true) or s:match("^%[.+%]$") then host = (s:gsub("^%[(.+)%]$", "%1"))
    else return nil, "expected HOST:PORT, got '" .. s .. "'" end
  end
  port = port and tonumber(port) or dport
  if port > 65535 then return nil, "port out of range in '" .. s .. "'" end
  if host == "" then host = dhost end
  return host, port
end

return M
