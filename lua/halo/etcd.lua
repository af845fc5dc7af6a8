--- halo.etcd: the etcd registrar (the reference's "ETCD Client:R1").
--
--   halo run --cookie C --listen 127.0.0.1:0 --registrar etcd://127.0.0.1:2379 --cluster shop app.lua
--
-- A system process (behavior halo.etcd, registered as halo_etcd) talks to
-- etcd's v3 JSON API (grpc-gateway: keys and values base64 in JSON) through
-- halo's HTTP client (halo.http.request / core.http.start). halo.run starts
-- it before the entry: the entry runs once the node is registered.
--
-- Keys: the reference's layout, with JSON values instead of its binary
-- encoding (reference decision 11):
--   services/ergo/cluster/<cluster>/routes/nodes/<node>
--       [{"Host":..,"Port":..,"TLS":false,"HandshakeVersion":..,"ProtoVersion":..}]
--   services/ergo/cluster/<cluster>/routes/applications/<app>/<node>
--       {"Node":..,"Name":..,"Weight":..,"Mode":..,"State":..,"Tags":[..]}
--   services/ergo/config/<cluster>/<node>/<item>       cross-cluster, node-specific
--   services/ergo/cluster/<cluster>/config/<node>/<item> cluster, node-specific
--   services/ergo/cluster/<cluster>/config/*/<item>      cluster-wide
--   services/ergo/config/global/<item>                 global
-- Config values are strings; "int:12", "float:1.5", "bool:true" are typed
-- (a malformed number stays the whole string). The first of the four
-- places above that has an item gives its value for this node.
--
-- Registration: a lease (TTL 10 s, kept alive every TTL/3), then a
-- transaction that creates the node key only if it is absent. A key held
-- by someone else stops the node: "registrar refused <node>: resource is
-- taken", exit status 1. Then the node's application routes are put with
-- the same lease, the cluster is read in one transaction, and one watch
-- on services/ergo/ (from the revision read: nothing is missed, nothing is
-- polled) keeps the picture current: routes go to core.net.route_set /
-- net_route_del (so the nodes form a full mesh), application routes and
-- config to the tables the functions below read. When the keep-alive or
-- the watch fails, or the node key vanishes, the registrar registers again
-- with a new lease (taking the key over when it still carries the old
-- lease): at once, then after 0.5, 1, 2, 4 and every 5 s (the reference
-- waits 5 s x attempt, up to 30 s). Nodes missing from the first read
-- after such a loss stay known for 30 s (the reference's suspect grace):
-- they are dropped only when they do not come back; a deletion seen by the
-- watch drops a node at once. The node's end revokes the lease (a detached
-- request: it goes out after the node's processes are gone). Like the
-- network's halo_remote service, the registrar runs until the node stops.
--
-- Event (halo.event, producer: the registrar), named
-- "services/ergo/cluster/<cluster>/routes/", messages:
--   {kind = "connected", server}                  (re)registered
--   {kind = "disconnected", reason}               lease or watch lost
--   {kind = "node_joined", name}  {kind = "node_left", name}     (never this node)
--   {kind = "application_loaded", name, node, weight}
--   {kind = "application_started", name, node, weight, mode}
--   {kind = "application_stopping", name, node}
--   {kind = "application_stopped", name, node}     back to loaded, or its route was
--                                                  deleted while running (node gone)
--   {kind = "application_unloaded", name, node}    its route was deleted while loaded
--   {kind = "config_update", item, value}          the effective value for this
--                                                  node changed (value nil: gone)
-- Application routes follow halo.application: put on load (State
-- "loaded"), start ("running"), stopping ("stopping"), stop ("loaded"
-- again: the reference deletes the key here, halo keeps it so other nodes
-- see the application loaded), deleted on unload.
--
-- API (any process of the node; reads come from the registrar's picture,
-- no request to etcd): info(), event(), nodes(), resolve(node),
-- resolve_application(app), config(item); lookup() asks etcd itself, for a
-- node without the registrar. halo.net.registrar_etcd is this
-- module; halo.net.registrar() gives info() when the etcd registrar runs.
local halo = require("halo")
local core = require("halo.core")
local cjson = require("cjson")
local http = require("halo.http")
local json = require("halo.json") -- lists carry its array mark: empty ones print []
local bit = require("bit")

local M = {}

local TTL = 10 -- lease TTL, s
local KEEPALIVE_MS = TTL * 1000 / 3
local REQUEST_TIMEOUT = 5000
local REGISTER_TIMEOUT = 30000
local TICK_MS = 500
local RETRY_MIN, RETRY_MAX = 500, 5000
local SUSPECT_MS = 30000
local VERSION = "ETCD Client:R1"

-- Per node run: the registrar's picture of the cluster.
local S = { serial = nil }
local function state()
  local serial = core.node.serial()
  if S.serial ~= serial then S = { serial = serial } end
  return S
end

local function terminated() return nil, "ETERMINATED: registrar client terminated", "ETERMINATED" end

-- Hands the RegistrarInfo (M.info) to the core, which shows it in
-- halo.net.registrar() and halo.net.info(): called whenever one of its
-- fields changes; once the registrar ended, nil takes it back.
local function info_changed() core.net.set_registrar((M.info())) end

-- The state of a registrar that runs (or ran) on this node, or nil, err, code.
local function live()
  local s = state()
  if not s.pid then return core.node.error("ENOTALLOWED", "no etcd registrar on this node") end
  if s.terminated then return terminated() end
  return s
end

-- base64 ----------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64DEC = {}
for i = 1, 64 do B64DEC[B64:byte(i)] = i - 1 end
local band, rshift, lshift, bor = bit.band, bit.rshift, bit.lshift, bit.bor

local function b64(s)
  local out, n = {}, 0
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = bor(lshift(a, 16), lshift(b or 0, 8), c or 0)
    local c1, c2 = rshift(v, 18) + 1, band(rshift(v, 12), 63) + 1
    local c3, c4 = band(rshift(v, 6), 63) + 1, band(v, 63) + 1
    n = n + 1
    out[n] = B64:sub(c1, c1) .. B64:sub(c2, c2) .. (b and B64:sub(c3, c3) or "=") .. (c and B64:sub(c4, c4) or "=")
  end
  return table.concat(out)
end

local function unb64(s)
  local out, n, v, bits = {}, 0, 0, 0
  for i = 1, #s do
    local d = B64DEC[s:byte(i)]
    if d then
      v = bor(lshift(band(v, 0xffff), 6), d)
      bits = bits + 6
      if bits >= 8 then
        bits = bits - 8
        n = n + 1
        out[n] = string.char(band(rshift(v, bits), 255))
      end
    end
  end
  return table.concat(out)
end

--- etcd's JSON API carries keys and values in base64: encode(s), decode(s).
M.base64 = { encode = b64, decode = unb64 }

-- The end of the key range of every key under prefix.
local function prefix_end(p) return p:sub(1, -2) .. string.char(p:byte(-1) + 1) end

local function starts(s, p)
  if s:sub(1, #p) == p then return s:sub(#p + 1) end
end

-- etcd ------------------------------------------------------------------------------

-- POSTs req (a table, JSON-encoded) to path of the etcd at host:port and
-- decodes the answer (the calling process waits). Returns the decoded
-- table or nil, err, code.
local function etcd_at(host, port, path, req, timeout)
  local res, err, code = http.request({ host = host, port = port, method = "POST", path = path,
                                             body = cjson.encode(req), content_type = "application/json",
                                             timeout = timeout or REQUEST_TIMEOUT })
  if not res then return nil, err, code end
  local ok, obj = pcall(cjson.decode, res.body)
  if not ok or type(obj) ~= "table" then
    return nil, ("EMALFORMED: etcd answered %d: %s"):format(res.status, res.body:sub(1, 200)), "EMALFORMED"
  end
  if res.status ~= 200 then
    return nil, ("EETCD: etcd answered %d: %s"):format(res.status, tostring(obj.message or obj.error)), "EETCD"
  end
  return obj
end

local function etcd(path, req, timeout) return etcd_at(S.host, S.port, path, req, timeout) end

local function put(key, value, lease)
  return etcd("/v3/kv/put", { key = b64(key), value = b64(value), lease = lease })
end

local function delete(key) return etcd("/v3/kv/deleterange", { key = b64(key) }) end

-- Revokes a lease without waiting: it goes out even from terminate, when the node stops.
local function revoke(lease)
  core.http.start({ host = S.host, port = S.port, method = "POST", path = "/v3/lease/revoke",
                    body = cjson.encode({ ID = lease }), content_type = "application/json", detach = true })
end

-- JSON with Tags as an array even when empty (lua-cjson 2.1.0 prints {} for an empty table).
local function app_json(r)
  return ('{"Node":%s,"Name":%s,"Weight":%s,"Mode":%s,"State":%s,"Tags":%s}'):format(
    cjson.encode(r.Node), cjson.encode(r.Name), cjson.encode(r.Weight), cjson.encode(r.Mode),
    cjson.encode(r.State), #r.Tags > 0 and cjson.encode(r.Tags) or "[]")
end

-- The cluster picture ---------------------------------------------------------------------

local function publish(msg)
  if S.loading then return end
  halo.event.publish(S.event, msg)
end

local BOOLS = { ["1"] = true, t = true, T = true, TRUE = true, ["true"] = true, True = true,
                ["0"] = false, f = false, F = false, FALSE = false, ["false"] = false, False = false }

-- A config value as its type prefix says.
local function typed(v)
  local kind, rest = v:match("^(%a+):(.*)$")
  if kind == "int" then
    if rest:match("^[-+]?%d+$") then return tonumber(rest) end
  elseif kind == "float" then
    local n = tonumber(rest)
    if n then return n end
  elseif kind == "bool" then
    if BOOLS[rest] ~= nil then return BOOLS[rest] end
  end
  return v
end

-- Which of the four config places key is (4 = the strongest) and its item.
local function config_slot(key)
  for level = 4, 1, -1 do
    local item = starts(key, S.cfg_prefix[level])
    if item and item ~= "" then return level, item end
  end
end

local function config_change(key, value)
  local level, item = config_slot(key)
  if not level then return end
  S.cfg_raw[level][item] = value
  local before, after = S.cfg[item], nil
  for l = 4, 1, -1 do
    local v = S.cfg_raw[l][item]
    if v then
      after = typed(v)
      break
    end
  end
  S.cfg[item] = after
  if after ~= before then publish({ kind = "config_update", item = item, value = after }) end
end

local function node_drop(name)
  if not S.nodes[name] then return end
  S.nodes[name], S.suspect[name] = nil, nil
  core.net.route_del(name)
  halo.log.info("etcd registrar: %s left", name)
  publish({ kind = "node_left", name = name })
end

-- Registers an own-node loss: the registrar registers again.
local lost

local function node_change(name, value)
  if name == S.node then
    if not value and not S.loading then lost("the node key was deleted") end
    return
  end
  if not value then return node_drop(name) end
  local ok, routes = pcall(cjson.decode, value)
  local r = ok and type(routes) == "table" and (routes[1] or routes)
  if type(r) ~= "table" or type(r.Host) ~= "string" or type(r.Port) ~= "number" then
    halo.log.warning("etcd registrar: ignoring the malformed route of %s", name)
    return
  end
  local known = S.nodes[name]
  S.suspect[name] = nil
  if not known or known.Host ~= r.Host or known.Port ~= r.Port then
    local done, err = core.net.route_set(name, r.Host, r.Port)
    if not done then halo.log.warning("etcd registrar: no route to %s: %s", name, tostring(err)) end
  end
  S.nodes[name] = { Host = r.Host, Port = r.Port }
  if not known then
    if not S.loading then halo.log.info("etcd registrar: %s joined", name) end
    publish({ kind = "node_joined", name = name })
  end
end

local function app_change(app, node, value)
  local routes = S.apps[app]
  local old = routes and routes[node]
  if not value then
    if not old then return end
    routes[node] = nil
    if next(routes) == nil then S.apps[app] = nil end
    publish({ kind = old.State == "loaded" and "application_unloaded" or "application_stopped", name = app, node = node })
    return
  end
  local ok, r = pcall(cjson.decode, value)
  if not ok or type(r) ~= "table" then
    halo.log.warning("etcd registrar: ignoring the malformed route of application %s on %s", app, node)
    return
  end
  local tags = {}
  for i, t in ipairs(type(r.Tags) == "table" and r.Tags or {}) do tags[i] = tostring(t) end
  local route = { Node = node, Name = app, Weight = tonumber(r.Weight) or 0, Mode = tostring(r.Mode or ""),
                  State = tostring(r.State or ""), Tags = tags }
  if not routes then
    routes = {}
    S.apps[app] = routes
  end
  routes[node] = route
  local was = old and old.State
  if route.State == was then return end
  if route.State == "running" then
    publish({ kind = "application_started", name = app, node = node, weight = route.Weight, mode = route.Mode })
  elseif route.State == "stopping" then
    publish({ kind = "application_stopping", name = app, node = node })
  elseif route.State == "loaded" then
    if was then
      publish({ kind = "application_stopped", name = app, node = node })
    else
      publish({ kind = "application_loaded", name = app, node = node, weight = route.Weight })
    end
  end
end

-- One key changed (value nil: deleted).
local function change(key, value)
  local rest = starts(key, S.prefix)
  if rest then
    local name = starts(rest, "routes/nodes/")
    if name then return node_change(name, value) end
    local app_node = starts(rest, "routes/applications/")
    if app_node then
      local app, node = app_node:match("^(.+)/([^/]+)$")
      if app then app_change(app, node, value) end
      return
    end
  end
  config_change(key, value)
end

-- Applies a read of the cluster: every key in kvs, and what the read no
-- longer has. Nodes (and their application routes) missing after a loss
-- become suspects: dropped at the deadline unless they come back.
local function apply_read(kvs)
  local seen = {}
  for _, kv in ipairs(kvs) do
    local key = unb64(kv.key)
    seen[key] = true
    change(key, unb64(kv.value or ""))
  end
  local deadline = halo.now() + SUSPECT_MS
  for name in pairs(S.nodes) do
    if not seen[S.prefix .. "routes/nodes/" .. name] and not S.suspect[name] then S.suspect[name] = deadline end
  end
  for app, routes in pairs(S.apps) do
    for node, r in pairs(routes) do
      if not seen[S.prefix .. "routes/applications/" .. app .. "/" .. node] then
        if S.suspect[node] then r.suspect = r.suspect or S.suspect[node] else app_change(app, node, nil) end
      end
    end
  end
  for level = 1, 4 do
    for item in pairs(S.cfg_raw[level]) do
      local key = S.cfg_prefix[level] .. item
      if not seen[key] then config_change(key, nil) end
    end
  end
end

-- Drops suspects whose time is up (r.suspect, S.suspect[node]: the deadline).
local function sweep(now)
  for app, routes in pairs(S.apps) do
    for node, r in pairs(routes) do
      if r.suspect and now >= r.suspect then app_change(app, node, nil) end
    end
  end
  for name, deadline in pairs(S.suspect) do
    if now >= deadline then node_drop(name) end
  end
end

-- The watch ------------------------------------------------------------------------------

local function watch_stop()
  if S.watch_ref then core.http.cancel(S.watch_ref) end
  S.watch_ref, S.watch_buf = nil, ""
end

local function watch_start(revision)
  watch_stop()
  local req = { create_request = { key = b64("services/ergo/"), range_end = b64(prefix_end("services/ergo/")),
                                   start_revision = tostring(revision) } }
  local ref, err = core.http.start({ host = S.host, port = S.port, method = "POST", path = "/v3/watch",
                                     body = cjson.encode(req), content_type = "application/json", stream = true })
  if not ref then return nil, err end
  S.watch_ref = ref
  return true
end

local function watch_line(line)
  local ok, obj = pcall(cjson.decode, line)
  if not ok or type(obj) ~= "table" then return lost("malformed watch data") end
  local res = obj.result
  if type(res) ~= "table" then return lost("watch failed: " .. tostring(obj.error and obj.error.message or line)) end
  if res.canceled or (res.compact_revision and res.compact_revision ~= "0") then
    return lost("watch cancelled by etcd: " .. tostring(res.cancel_reason or "compacted"))
  end
  for _, ev in ipairs(res.events or {}) do
    local kv = ev.kv or {}
    local key = unb64(kv.key or "")
    if ev.type == "DELETE" then change(key, nil) else change(key, unb64(kv.value or "")) end
    if not S.watch_ref then return end -- lost meanwhile
  end
end

local function watch_data(msg)
  if msg.status ~= 200 then return lost(("watch answered %d"):format(msg.status)) end
  local buf = S.watch_buf .. msg.data
  while S.watch_ref do
    local nl = buf:find("\n", 1, true)
    if not nl then break end
    local line = buf:sub(1, nl - 1)
    buf = buf:sub(nl + 1)
    if line:find("%S") then watch_line(line) end
  end
  if S.watch_ref then S.watch_buf = buf end
end

-- Registration ----------------------------------------------------------------------------

local function node_value()
  local info = core.net.info()
  local a = info.Acceptors[1]
  return cjson.encode({ { Host = a.Host, Port = a.Port, TLS = false, HandshakeVersion = info.HandshakeVersion,
                          ProtoVersion = info.ProtoVersion } })
end

local function app_key(name) return S.prefix .. "routes/applications/" .. name .. "/" .. S.node end

-- Creates the node key with lease, or takes it over from our own old lease.
local function claim(lease, old)
  local key, value = b64(S.node_key), b64(node_value())
  local t, err, code = etcd("/v3/kv/txn", {
    compare = { { target = "CREATE", key = key, create_revision = "0", result = "EQUAL" } },
    success = { { request_put = { key = key, value = value, lease = lease } } },
    failure = { { request_range = { key = key } } },
  })
  if not t then return nil, err, code end
  if t.succeeded then return true end
  local range = t.responses and t.responses[1] and t.responses[1].response_range
  local kv = range and range.kvs and range.kvs[1]
  if kv and old and kv.lease == old then
    t, err, code = etcd("/v3/kv/txn", {
      compare = { { target = "LEASE", key = key, lease = old, result = "EQUAL" } },
      success = { { request_put = { key = key, value = value, lease = lease } } },
    })
    if not t then return nil, err, code end
    if t.succeeded then return true end
  end
  return core.node.error("ETAKEN")
end

-- One attempt: lease, node key, application routes, the read, the watch.
local function register()
  local old = S.lease
  local g, err, code = etcd("/v3/lease/grant", { TTL = TTL })
  if not g then return nil, err, code end
  local lease = g.ID
  if type(lease) ~= "string" then return nil, "EMALFORMED: no lease in etcd's answer", "EMALFORMED" end
  local ok
  ok, err, code = claim(lease, old)
  if not ok then
    revoke(lease)
    return nil, err, code
  end
  S.lease = lease
  for name, route in pairs(S.own) do
    ok, err, code = put(app_key(name), app_json(route), lease)
    if not ok then return nil, err, code end
  end
  if old and old ~= lease then revoke(old) end -- its keys all carry the new lease now
  local ranges = {}
  for _, p in ipairs({ S.prefix, S.cfg_prefix[1], S.cfg_prefix[4] }) do
    ranges[#ranges + 1] = { request_range = { key = b64(p), range_end = b64(prefix_end(p)) } }
  end
  local t
  t, err, code = etcd("/v3/kv/txn", { success = ranges })
  if not t then return nil, err, code end
  local kvs = {}
  for _, r in ipairs(t.responses or {}) do
    for _, kv in ipairs(r.response_range and r.response_range.kvs or {}) do kvs[#kvs + 1] = kv end
  end
  S.loading = S.first_read
  apply_read(kvs)
  S.loading, S.first_read = false, false
  ok, err = watch_start(tonumber(t.header and t.header.revision or 0) + 1)
  if not ok then return nil, err end
  S.registered, S.error = true, ""
  info_changed()
  S.next_keepalive = halo.now() + KEEPALIVE_MS
  S.backoff = RETRY_MIN
  halo.log.info("etcd registrar: %s registered in cluster %s at %s (lease %s)", S.node, S.cluster, S.server, lease)
  publish({ kind = "connected", server = S.server })
  return true
end

-- Registers, or schedules the next attempt. ETAKEN stops the node.
local function try_register()
  local ok, err, code = register()
  if ok then return true end
  S.error = err
  info_changed()
  if code == "ETAKEN" then
    halo.log.error("etcd registrar: registrar refused %s: resource is taken", S.node)
    S.fatal = true
    halo.shutdown(1)
    return nil, err, code
  end
  S.retry_at = halo.now() + S.backoff
  halo.send_after(S.pid, { kind = "etcd_retry", at = S.retry_at }, S.backoff)
  halo.log.warning("etcd registrar: cannot register %s at %s: %s (again in %d ms)", S.node, S.server, tostring(err),
    S.backoff)
  S.backoff = math.min(S.backoff * 2, RETRY_MAX)
  return nil, err, code
end

lost = function(reason)
  watch_stop()
  if S.registered then
    S.registered = false
    halo.log.warning("etcd registrar: %s; registering again", reason)
    publish({ kind = "disconnected", reason = reason })
  end
  S.error = reason
  info_changed()
  S.backoff = RETRY_MIN
  S.retry_at = halo.now()
  halo.send(S.pid, { kind = "etcd_retry", at = S.retry_at })
end

-- The registrar process -------------------------------------------------------------------

local Registrar = { name = "halo.etcd", kind = "system" }

function Registrar:init()
  assert(halo.event.register(S.event, {}))
  halo.send_after(halo.self(), { kind = "etcd_tick" }, TICK_MS)
end

-- An application of this node changed: its route in etcd follows.
local function own_app(msg)
  local info = msg.info
  if msg.change == "unloaded" then
    S.own[info.name] = nil
    if S.registered then
      local ok, err = delete(app_key(info.name))
      if not ok then lost("cannot delete the route of " .. info.name .. ": " .. tostring(err)) end
    end
    return
  end
  local route = { Node = S.node, Name = info.name, Weight = info.weight or 0, Mode = info.mode or "temporary",
                  State = info.state, Tags = info.tags or {} }
  S.own[info.name] = route
  if S.registered then
    local ok, err = put(app_key(info.name), app_json(route), S.lease)
    if not ok then lost("cannot put the route of " .. info.name .. ": " .. tostring(err)) end
  end
end

local function tick()
  local now = halo.now()
  if S.registered and now >= S.next_keepalive then
    S.next_keepalive = now + KEEPALIVE_MS
    local r, err = etcd("/v3/lease/keepalive", { ID = S.lease })
    if not r then
      lost("keep-alive failed: " .. tostring(err))
    elseif type(r.result) ~= "table" or (tonumber(r.result.TTL) or 0) <= 0 then
      lost("the lease expired")
    end
  end
  sweep(now)
end

function Registrar:handle_message(_, msg)
  if type(msg) ~= "table" then return end
  local kind = msg.kind
  if kind == "http_data" then
    if msg.ref == S.watch_ref then watch_data(msg) end
  elseif kind == "http_done" or kind == "http_error" then
    if msg.ref == S.watch_ref then lost("the watch ended: " .. tostring(msg.error or msg.status)) end
  elseif kind == "etcd_app" then
    own_app(msg)
  elseif kind == "etcd_retry" then
    if msg.at == S.retry_at and not S.registered and not S.fatal then try_register() end
  elseif kind == "etcd_tick" then
    tick()
    if S.fatal then return "normal" end
    halo.send_after(halo.self(), { kind = "etcd_tick" }, TICK_MS)
  end
end

function Registrar:handle_call(_, _, req)
  if req == "register" then
    if S.registered then return { true } end
    local ok, err, code = try_register()
    return { ok, err, code }, S.fatal and "normal" or nil
  end
  return { core.node.error("EINCORRECT", "unknown request") }
end

function Registrar:handle_inspect()
  local n = 0
  for _ in pairs(S.nodes) do n = n + 1 end
  return { server = S.server, cluster = S.cluster, registered = tostring(S.registered), lease = S.lease or "",
           nodes = tostring(n), error = S.error or "" }
end

function Registrar:terminate()
  watch_stop()
  if S.lease then revoke(S.lease) end
  S.lease, S.registered, S.terminated = nil, false, true
  info_changed()
  if S.app_watcher then halo.application.unwatch(S.app_watcher) end
end

-- The API ------------------------------------------------------------------------------------

--- Starts the registrar for endpoint ("host:port") and cluster (default
-- "default") and waits for the first registration. Returns true (also
-- when etcd cannot be reached yet: it keeps trying), or false after
-- logging why when the node cannot join (its name is taken: the node then
-- stops with exit status 1).
function M.start(endpoint, cluster)
  cluster = cluster or "default"
  local host, port = tostring(endpoint):match("^%[?([^%[%]]+)%]?:(%d+)$")
  if not host or cluster == "" or cluster:find("/", 1, true) then
    halo.log.error("etcd registrar: etcd://HOST:PORT and a cluster name without '/' expected")
    halo.shutdown(1)
    return false
  end
  local s = state()
  if s.pid and not s.terminated then return true end
  if not core.net.info().Acceptors[1] then
    halo.log.warning("etcd registrar: the network is off (--cookie / --listen): not registering")
    return true
  end
  local node = halo.node_info().Name
  s.host, s.port, s.server, s.cluster, s.node = host, tonumber(port), host .. ":" .. port, cluster, node
  s.prefix = "services/ergo/cluster/" .. cluster .. "/"
  s.node_key = s.prefix .. "routes/nodes/" .. node
  s.event = s.prefix .. "routes/"
  s.cfg_prefix = { "services/ergo/config/global/", s.prefix .. "config/*/", s.prefix .. "config/" .. node .. "/",
                   "services/ergo/config/" .. cluster .. "/" .. node .. "/" }
  s.nodes, s.suspect, s.apps, s.own, s.wrr, s.cfg, s.cfg_raw = {}, {}, {}, {}, {}, {}, { {}, {}, {}, {} }
  s.registered, s.terminated, s.fatal, s.first_read, s.error = false, false, false, true, ""
  s.backoff, s.watch_buf = RETRY_MIN, ""
  local pid, err = halo.spawn(Registrar, nil, { name = "halo_etcd" })
  if not pid then
    halo.log.error("etcd registrar: cannot start: %s", tostring(err))
    halo.shutdown(1)
    return false
  end
  s.pid = pid
  info_changed()
  for _, row in ipairs(halo.application.list()) do -- applications loaded before it started
    local info = halo.application.info(row.name)
    s.own[row.name] = { Node = node, Name = row.name, Weight = info.Weight, Mode = info.Mode, State = info.State,
                        Tags = info.Tags }
  end
  s.app_watcher = function(change, info)
    halo.send(pid, { kind = "etcd_app", change = change, info = info })
  end
  halo.application.watch(s.app_watcher)
  local r, err2 = halo.call(pid, "register", REGISTER_TIMEOUT)
  if r and r[1] then return true end
  if s.fatal then return false end
  halo.log.warning("etcd registrar: %s not registered yet (%s): the registrar keeps trying", node,
    tostring(r and r[2] or err2))
  return true
end

--- True while an etcd registrar runs on this node.
function M.running()
  local s = state()
  return s.pid ~= nil and not s.terminated
end

--- RegistrarInfo: Server ("host:port" of etcd), EmbeddedServer (false),
-- SupportConfig, SupportEvent, SupportRegisterApplication (true),
-- SupportRegisterProxy (false), Version ("ETCD Client:R1"), and halo's
-- Registered, Error (why it is not registered), Cluster, Event, Lease.
function M.info()
  local s, err, code = live()
  if not s then return nil, err, code end
  return { Server = s.server, EmbeddedServer = false, SupportConfig = true, SupportEvent = true,
           SupportRegisterApplication = true, SupportRegisterProxy = false, Version = VERSION,
           Registered = s.registered, Error = s.error or "", Cluster = s.cluster, Event = s.event,
           Lease = s.lease or "" }
end

--- The name of the registrar's event.
function M.event()
  local s, err, code = live()
  if not s then return nil, err, code end
  return s.event
end

--- The other nodes of the cluster, sorted.
function M.nodes()
  local s, err, code = live()
  if not s then return nil, err, code end
  local out = json.array()
  for name in pairs(s.nodes) do out[#out + 1] = name end
  table.sort(out)
  return out
end

--- Where node name listens: {Host, Port}, or nil, "ENOROUTE: no route".
function M.resolve(name)
  local s, err, code = live()
  if not s then return nil, err, code end
  if name == s.node then
    local a = core.net.info().Acceptors[1]
    return { Host = a.Host, Port = a.Port }
  end
  local r = s.nodes[name]
  if not r then return core.node.error("ENOROUTE") end
  return { Host = r.Host, Port = r.Port }
end

--- Where node `name` of cluster listens, read from the etcd at endpoint
-- ("host:port") once, without a registrar on this node (`halo call`):
-- {Host, Port}, or nil, "ENOROUTE: ..." when it is not registered there, or
-- the request's error.
function M.lookup(endpoint, cluster, name, timeout)
  local host, port = tostring(endpoint):match("^%[?([^%[%]]+)%]?:(%d+)$")
  if not host then return core.node.error("EINCORRECT", "etcd HOST:PORT expected") end
  local key = "services/ergo/cluster/" .. (cluster or "default") .. "/routes/nodes/" .. name
  local obj, err, code = etcd_at(host, tonumber(port), "/v3/kv/range", { key = b64(key) }, timeout)
  if not obj then return nil, ("%s (etcd at %s)"):format(err, endpoint), code end
  local kv = obj.kvs and obj.kvs[1]
  local ok, routes = pcall(cjson.decode, kv and unb64(kv.value or "") or "")
  local r = ok and type(routes) == "table" and (routes[1] or routes)
  if type(r) ~= "table" or type(r.Host) ~= "string" or type(r.Port) ~= "number" then
    return core.node.error("ENOROUTE", ("%s is not registered in cluster %s of the etcd at %s")
      :format(name, cluster or "default", endpoint))
  end
  return { Host = r.Host, Port = r.Port }
end

local function route_copy(r)
  local tags = json.array()
  for i, t in ipairs(r.Tags) do tags[i] = t end
  return { Node = r.Node, Name = r.Name, Weight = r.Weight, Mode = r.Mode, State = r.State, Tags = tags }
end

--- The ApplicationRoutes ({Node, Name, Weight, Mode, State, Tags}) of the
-- nodes running application name, other than this one and without those
-- of negative weight, ordered by smooth weighted round-robin: the route to
-- use is first (weight 0 counts as 1), the others follow by their current
-- standing, routes of suspect nodes last. Each call advances the rotation,
-- unless peek is true (the order the next call would give, for
-- diagnostics). nil, "ENOROUTE: no route" when there is none.
function M.resolve_application(name, peek)
  local s, err, code = live()
  if not s then return nil, err, code end
  local healthy, suspect = {}, {}
  for node, r in pairs(s.apps[name] or {}) do
    if node ~= s.node and r.State == "running" and r.Weight >= 0 then
      if r.suspect then suspect[#suspect + 1] = r else healthy[#healthy + 1] = r end
    end
  end
  if #healthy + #suspect == 0 then return core.node.error("ENOROUTE") end
  local by_node = function(a, b) return a.Node < b.Node end
  table.sort(healthy, by_node)
  table.sort(suspect, by_node)
  local cw = {}
  for node, w in pairs(s.wrr[name] or {}) do cw[node] = w end
  local listed, total, best = {}, 0, nil
  for _, r in ipairs(healthy) do
    local w = r.Weight > 0 and r.Weight or 1
    listed[r.Node] = true
    cw[r.Node] = (cw[r.Node] or 0) + w
    total = total + w
    if not best or cw[r.Node] > cw[best.Node] then best = r end
  end
  for node in pairs(cw) do
    if not listed[node] then cw[node] = nil end
  end
  if not peek then s.wrr[name] = cw end
  local out = json.array()
  if best then
    cw[best.Node] = cw[best.Node] - total
    table.sort(healthy, function(a, b)
      if a == b then return false end
      if a == best or b == best then return a == best end
      if cw[a.Node] ~= cw[b.Node] then return cw[a.Node] > cw[b.Node] end
      return a.Node < b.Node
    end)
  end
  for _, r in ipairs(healthy) do out[#out + 1] = route_copy(r) end
  for _, r in ipairs(suspect) do out[#out + 1] = route_copy(r) end
  return out
end

--- The value of config item for this node (typed: "int:" and "float:"
-- values are Lua numbers, exact up to 2^53), or nil, "EUNKNOWN: unknown:
-- config item ..." when no place has it. Without an item: every item this
-- node has, as a table.
function M.config(item)
  local s, err, code = live()
  if not s then return nil, err, code end
  if item == nil then
    local out = {}
    for k, v in pairs(s.cfg) do out[k] = v end
    return out
  end
  local v = s.cfg[item]
  if v == nil then return core.node.error("EUNKNOWN", "config item " .. tostring(item)) end
  return v
end

return M
