--- halo.observer.web: `observer_web`, the Observer's HTTP side
-- (halo.http.serve): the static files of www, GET /sse (a session per
-- connection, halo.observer.session) and the POST API under /api/.
--
-- A POST runs in its connection's process: it checks the body and the
-- session header, then calls the session (subscribe, unsubscribe, switch)
-- or, for /api/do/<action>, asks the session's observed node itself.
-- Mutating actions need the token (Authorization: Bearer, compared in
-- constant time); without a configured token they are off. On a loopback
-- address /sse and /api/ answer only requests whose Host (and Origin, when
-- present) name a loopback host: a site whose name is made to resolve to
-- 127.0.0.1 (DNS rebinding) is not let in.
local halo = require("halo")
local core = require("halo.core")
local json = require("halo.json")
local log = require("halo.log")
local inspect = require("halo.inspect")
local session = require("halo.observer.session")

local M = {}

M.MAX_BODY = 1048576
M.PING_MS = 15000
M.CALL_TIMEOUT = 15000 -- a session call: a switch or a first snapshot waits on a node (5 s each)
M.MAX_SESSIONS = 64    -- open SSE sessions; more are answered 503

local encode, decode = json.encode, json.decode

local cfg = {}      -- token, www, loopback
local sessions = {} -- id -> session pid

-- The open sessions' count; a session that ended without its stream's
-- cleanup (it failed, and took its linked connection process along) is dropped.
local function open_sessions()
  local n = 0
  for id, pid in pairs(sessions) do
    if halo.alive(pid) then n = n + 1 else sessions[id] = nil end
  end
  return n
end

local same_secret = require("halo.http").same_secret

local JSON = { ["content-type"] = "application/json" }

local function fail(status, text) return status, encode({ error = text }), JSON end
local function ok(data) return 200, '{"ok":true,"data":' .. encode(data == nil and json.null or data) .. "}", JSON end

-- -- static files -------------------------------------------------------------

local TYPES = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8",
                css = "text/css; charset=utf-8", svg = "image/svg+xml", json = "application/json",
                png = "image/png", ico = "image/x-icon", map = "application/json" }

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local body = f:read("*a")
  f:close()
  return body
end

-- Every regular file under dir as {url path, file path}; names starting
-- with "." are left out, a directory already walked (a symlink loop) is not
-- walked again.
local function walk(dir, prefix, out, seen)
  if not seen then
    local st = core.fs.stat(dir)
    seen = { [st and st.ino or -1] = true }
  end
  local names = core.fs.scandir(dir)
  for _, name in ipairs(names or {}) do
    if name:sub(1, 1) ~= "." then
      local path = dir .. "/" .. name
      local st = core.fs.stat(path)
      if st and st.type == "dir" then
        if not seen[st.ino] then
          seen[st.ino] = true
          walk(path, prefix .. name .. "/", out, seen)
        end
      elseif st and st.type == "file" then
        out[#out + 1] = { prefix .. name, path }
      end
    end
  end
  return out
end

-- A handler that reads the file at each request (a UI edited on disk shows
-- at the next reload).
local function file_handler(path)
  local ext = path:match("%.([%w]+)$")
  local headers = { ["content-type"] = TYPES[ext and ext:lower()] or "application/octet-stream",
                    ["cache-control"] = "no-cache", ["x-content-type-options"] = "nosniff" }
  return function()
    local body = read_file(path)
    if not body then return 404, "404 page not found\n" end
    return 200, body, headers
  end
end

-- -- who may ask --------------------------------------------------------------

local LOOPBACK = { localhost = true, ["127.0.0.1"] = true, ["::1"] = true }

local function loopback(name)
  name = name:lower():gsub("^%[(.*)%]$", "%1")
  return LOOPBACK[name] == true or name:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- The host name of a Host header ("h", "h:port", "[v6]:port").
local function host_name(h) return h:match("^(%[[^%]]*%])") or h:match("^([^:]*)") end

-- Why req may not use /sse or /api/ (see the top), or nil.
local function foreign(req)
  if not cfg.loopback then return nil end
  local host, origin = req.headers.host, req.headers.origin
  if host and not loopback(host_name(host)) then return "host " .. host .. " is not a loopback name" end
  if origin then
    local o = origin:match("^%a[%w+.-]*://([^/]*)")
    if not (o and loopback(host_name(o))) then return "origin " .. origin .. " is not a loopback one" end
  end
end

-- -- SSE ----------------------------------------------------------------------

local function stream(req, res)
  local why = foreign(req)
  if why then return 403, "forbidden: " .. why .. "\n" end
  if open_sessions() >= M.MAX_SESSIONS then return 503, ("too many sessions (at most %d)\n"):format(M.MAX_SESSIONS) end
  local me, id = halo.self(), assert(core.node.random_hex(16))
  local pid, err = halo.spawn(session.Session, { conn = me, id = id, actions = cfg.token ~= nil },
    { name = "observer_session_" .. id, link = true, behavior = "halo.observer.session" })
  if not pid then
    log.error("observer: cannot start a session: %s", tostring(err))
    return 503, "cannot start a session\n"
  end
  sessions[id] = pid
  res:sse({ ["x-accel-buffering"] = "no" })
  local closed = false
  while true do
    local from, msg = halo.receive(M.PING_MS)
    local written = true
    if msg == false then
      closed = true
      break
    elseif type(msg) == "string" then
      written = res:write(msg)
    elseif from == nil then
      written = res:write(": ping\n\n")
    end
    if not written then break end
  end
  sessions[id] = nil
  halo.unlink(pid)
  halo.kill(pid)
  res:finish()
  if closed then res:closed() end -- the connection's close was taken here
end

-- -- the API ------------------------------------------------------------------

-- The request's session pid, or nil, status, body, headers.
local function session_of(req)
  local why = foreign(req)
  if why then return nil, fail(403, "forbidden: " .. why) end
  local id = req.headers["x-observer-session"]
  if not id then return nil, fail(401, "missing X-Observer-Session") end
  local pid = sessions[id]
  if not pid then return nil, fail(401, "unknown or ended session") end
  return pid
end

-- The decoded JSON object of the body without its nulls (a null reads as
-- absent, and could not cross to another node), or nil, status, body, headers.
local function body_of(req)
  if req.body == nil or req.body == "" then return {} end
  local v, err = decode(req.body)
  if type(v) ~= "table" or getmetatable(v) == json.ARRAY then
    return nil, fail(400, "invalid JSON body: " .. (v == nil and tostring(err or "not JSON") or "an object expected"))
  end
  return inspect.denull(v)
end

local function call_session(pid, req)
  local r, err = halo.call(pid, req, M.CALL_TIMEOUT)
  if not r then return fail(500, "session call failed: " .. tostring(err)) end
  if r.error then return fail(r.status or 400, r.error) end
  return ok(r.data)
end

local function api(op)
  return function(req)
    local pid, s, b, h = session_of(req)
    if not pid then return s, b, h end
    local msg, s2, b2, h2 = body_of(req)
    if not msg then return s2, b2, h2 end
    msg.op = op
    return call_session(pid, msg)
  end
end

-- Status of an action's failure: a refusal 403, the node unreachable 502,
-- anything else the request's fault.
local STATUS = { ENOTALLOWED = 403, ENODE = 502 }

local function action(name)
  return function(req)
    local pid, s, b, h = session_of(req)
    if not pid then return s, b, h end
    local args, s2, b2, h2 = body_of(req)
    if not args then return s2, b2, h2 end
    if inspect.MUTATING[name] then
      if not cfg.token then return fail(403, "actions are off: the observer runs without a token") end
      if not same_secret(req.headers.authorization, "Bearer " .. cfg.token) then
        return fail(403, "missing or wrong token (Authorization: Bearer <token>)")
      end
    end
    local r, err = halo.call(pid, { op = "node" }, M.CALL_TIMEOUT)
    if not r then return fail(500, "session call failed: " .. tostring(err)) end
    local data, aerr, code = session.act(r.data, name, args)
    if data == nil then return fail(STATUS[code] or 400, tostring(aerr)) end
    if inspect.MUTATING[name] then log.info("observer: %s %s on %s", name, encode(args), r.data) end
    return 200, '{"ok":true,"data":' .. data.json .. "}", JSON
  end
end

-- -- the server's process -------------------------------------------------------

M.Web = { name = "halo.observer.web" }

function M.Web:init(o)
  self.o = o
  cfg = { token = o.token, www = o.www, loopback = loopback(o.host) }
  local srv, err = require("halo.http").serve({ host = o.host, port = o.port, max_body = M.MAX_BODY })
  if not srv then error(("observer: cannot serve on %s:%d: %s"):format(o.host, o.port, tostring(err)), 0) end
  assert(srv:route("/sse", stream, { "GET" }))
  for _, op in ipairs({ "subscribe", "unsubscribe", "switch" }) do
    assert(srv:route("/api/" .. op, api(op), { "POST" }))
  end
  for name in pairs(inspect.ACTIONS) do assert(srv:route("/api/do/" .. name, action(name), { "POST" })) end
  local files = walk(o.www, "/", {})
  for _, f in ipairs(files) do
    if f[1] ~= "/sse" and f[1]:sub(1, 5) ~= "/api/" then
      assert(srv:route(f[1], file_handler(f[2]), { "GET" }))
      if f[1] == "/index.html" then assert(srv:route("/", file_handler(f[2]), { "GET" })) end
    end
  end
  if #files == 0 then log.warning("observer: no files in %s (the UI)", o.www) end
  self.srv, self.files = srv, #files
  o.port = srv.port -- port 0 picks one, which a restart keeps
  local host = o.host:find(":", 1, true) and "[" .. o.host .. "]" or o.host
  self.url = ("http://%s:%d/"):format(host, srv.port)
  M.current_url = self.url
  log.info("observer: serving %s%s; files of %s", self.url, o.token and " (actions with the token)" or
    " (actions off: no token)", o.www)
end

function M.Web:handle_inspect()
  local o = self.o
  local out = { url = self.url, www = o.www, files = tostring(self.files), sessions = tostring(open_sessions()),
                token = o.token and "<redacted>" or "" }
  for k, v in pairs(self.srv:stats() or {}) do out["http_" .. k] = tostring(v) end
  return out
end

function M.Web:terminate()
  M.current_url = nil
  for id, pid in pairs(sessions) do
    sessions[id] = nil
    halo.kill(pid)
  end
  if self.srv then self.srv:close() end
end

--- The number of open sessions.
function M.sessions() return open_sessions() end

return M
