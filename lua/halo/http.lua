--- halo.http: HTTP for halo processes, over the client of core/http.c
-- (libuv + llhttp; keep-alive connections reused per host:port).
local core = require("halo.core")

local yield = coroutine.yield

local M = {}

local function incorrect(msg) return nil, "EINCORRECT: " .. msg, "EINCORRECT" end

--- Splits "http://host[:port][/path][?query]" into host, port, path (the
-- request target, query included); nil, err, code for anything else,
-- spaces and control characters included. The host may be a bracketed
-- IPv6 literal; a #fragment is dropped.
function M.parse_url(url)
  if type(url) ~= "string" then error("http: url must be a string", 2) end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  -- spaces and controls are not url text (and would reach the request line)
  if not scheme or url:find("[%z\1-\32\127]") then return incorrect("malformed url " .. url) end
  scheme = scheme:lower()
  if scheme == "https" then return incorrect("https is not supported (no TLS in halo's HTTP client): " .. url) end
  if scheme ~= "http" then return incorrect("unsupported scheme " .. scheme .. " in " .. url) end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then return incorrect("credentials in a url are not supported: " .. url) end
  local host, port = authority:match("^%[([%x:.]+)%](.*)$")
  if not host then host, port = authority:match("^([^:]*)(.*)$") end
  if port == "" then
    port = 80
  else
    port = tonumber(port:match("^:(%d+)$"))
    if not port or port < 1 or port > 65535 then return incorrect("malformed port in " .. url) end
  end
  if host == "" then return incorrect("no host in " .. url) end
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  return host, port, target
end

--- Makes a request and waits for the whole response; only the calling
-- process waits (state "wait response", its mailbox keeps filling).
-- opts: url ("http://host[:port]/path?query") or host, port (required) and
-- path ("/"); method ("GET", or "POST" with a body), headers ({name =
-- value}; CR, LF and other controls refused), body, content_type, timeout
-- (ms, the whole request, default 5000).
-- Returns {status, body, headers} (headers: lower-cased names, repeated
-- ones joined by ", "), or nil, "ECODE: text", "ECODE". An HTTP status is
-- not an error.
function M.request(opts)
  if type(opts) ~= "table" then error("http.request: opts must be a table", 2) end
  if opts.url ~= nil then
    if opts.host ~= nil or opts.port ~= nil or opts.path ~= nil then
      error("http.request: give url or host/port/path, not both", 2)
    end
    local host, port, path = M.parse_url(opts.url)
    if not host then return nil, port, path end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.url, o.host, o.port, o.path = nil, host, port, path
    opts = o
  end
  local ref, err, code = core.http.wait(opts)
  if not ref then return nil, err, code end
  local ok, res, c = yield()
  if not ok then return nil, res, c end
  if res.error then return nil, res.error, res.code end
  return res
end

--- Whether a (a header's value) equals secret b, compared in a time that
-- does not tell where the first difference is (bearer tokens).
function M.same_secret(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(a:byte(i), b:byte(i))) end
  return diff == 0
end

--- GET url; opts as for request (headers, timeout...).
function M.get(url, opts)
  local o = { method = "GET" }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url = url
  return M.request(o)
end

-- -- The server ------------------------------------------------------------------
-- halo.http.serve{...}: see README.md "HTTP server". core/httpd.c parses and
-- answers static and C routes on the loop; a request for a Lua route goes to
-- its connection's process (spawned at the connection's first such request
-- by the server process), which runs the handlers one request at a time.
local httpd = core.httpd
local respond, stream, write, finish = httpd.respond, httpd.stream, httpd.write, httpd.finish

local servers = {} -- sid -> server object (shared by its connection processes)

local function traceback(e)
  return debug.traceback(type(e) == "string" and e or tostring(e), 2)
end

local Res = {}
Res.__index = Res

--- Starts a streamed answer (chunked): status (200), headers.
function Res:start(status, headers)
  assert(not self.started, "http: the answer has started already")
  self.started = true
  status = status or 200
  -- HEAD, 1xx, 204, 304: the head is the whole answer; writes succeed, sending nothing
  local n = tonumber(status) or 200
  self.bodyless = self.head or n < 200 or n == 204 or n == 304
  return stream(self.sid, self.cid, status, headers)
end

--- A piece of the streamed answer: true, or nil, err when the client is gone.
function Res:write(data)
  if not self.started then self:start(200) end
  if self.bodyless then return true end
  return write(self.sid, self.cid, data)
end

--- Starts a Server-Sent Events stream (200, text/event-stream, no-cache).
function Res:sse(headers)
  local h = { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" }
  if headers then for k, v in pairs(headers) do h[k] = v end end
  return self:start(200, h)
end

-- A one-line SSE field: CR and LF end a line for the client, NUL voids an id.
local function sse_field(out, name, v)
  if v == nil then return end
  v = tostring(v)
  if v:find("[\r\n%z]") then error("http: an SSE " .. name .. " may not hold CR, LF or NUL", 3) end
  out[#out + 1] = name .. ": " .. v
end

--- One event: {event=, id=, data=, retry=}; multi-line data (CRLF, CR or LF
-- end a line) becomes data: lines; event, id and retry must be one line.
function Res:event(ev)
  if type(ev) ~= "table" then ev = { data = ev } end
  local out = {}
  sse_field(out, "event", ev.event)
  sse_field(out, "id", ev.id)
  sse_field(out, "retry", ev.retry)
  local data = tostring(ev.data or ""):gsub("\r\n?", "\n")
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = "data: " .. line end
  out[#out + 1] = "\n"
  return self:write(table.concat(out, "\n"))
end

--- For a handler that waits on its mailbox (a stream) and took the
-- connection's close, the message false: the connection's process ends
-- once the handler returns instead of waiting for a next request.
function Res:closed()
  self.gone = true
end

--- Ends the streamed answer.
function Res:finish()
  if self.finished then return true end
  self.finished = true
  if not self.started then return respond(self.sid, self.cid, 200, "") end
  if self.bodyless then return true end
  return finish(self.sid, self.cid)
end

local function serve_one(srv, res, req)
  res.started, res.finished, res.head = false, false, req.method == "HEAD"
  local h = srv.handlers[req.route]
  local ok, status, body, headers
  if h then
    ok, status, body, headers = xpcall(h, traceback, req, res)
  else
    ok, status, body = true, 404, "404 page not found\n" -- unrouted meanwhile: the server's own 404
  end
  local sid, cid = res.sid, res.cid
  if not ok then
    require("halo.log").error("http %s %s: %s", req.method, req.path, status)
    if res.finished then return true end -- answered already: a 500 would answer the next request
    if res.started then return httpd.fail(sid, cid, true) end -- no last chunk: the client sees the cut
    return respond(sid, cid, 500, "internal server error\n", nil, true)
  end
  if res.started then
    if not res.finished then return res:finish() end
    return true
  end
  if res.finished then return true end
  local t = type(status)
  if t == "string" then return respond(sid, cid, 200, status) end
  local bt = type(body)
  if t == "number" and (body == nil or bt == "string" or bt == "number") then
    local okr, r, err = pcall(respond, sid, cid, status, body ~= nil and tostring(body) or "", headers)
    if okr then return r, err end
    require("halo.log").error("http %s %s: %s", req.method, req.path, r)
    return respond(sid, cid, 500, "internal server error\n", nil, true)
  end
  require("halo.log").error("http %s %s: the handler returned no answer (status, body: %s, %s)", req.method,
    req.path, t, bt)
  return respond(sid, cid, 500, "internal server error\n", nil, true)
end

-- The process of one connection: its requests in order, until it closes.
local function connection(a)
  local sid, cid = a[1], a[2]
  local srv = servers[sid]
  if not srv or not httpd.attach(sid, cid) then return end
  local halo = require("halo")
  local receive = halo.receive
  local res = setmetatable({ sid = sid, cid = cid }, Res)
  while true do
    local _, req = receive()
    if req == false then return end
    if type(req) == "table" and req.route then
      serve_one(srv, res, req)
      if res.gone then return end
    end
  end
end

local function methods_of(m)
  if m == nil or m == "*" then return m end
  if type(m) == "string" then return { m } end
  return m
end

local Server = {}
Server.__index = Server

--- Routes path to handler(req, res) (a process of the connection runs it).
function Server:route(path, handler, methods)
  assert(type(handler) == "function", "http: a handler function is required")
  local hid = self.next_hid + 1
  self.next_hid = hid
  local ok, err, code = httpd.route(self.sid, path, methods_of(methods), hid)
  if not ok then return nil, err, code end
  local old = self.paths[path]
  if old then self.handlers[old] = nil end
  self.handlers[hid] = handler
  self.paths[path] = hid
  return true
end

--- Sets or replaces a static answer, served on the loop without a process.
function Server:static(path, status, content_type, body, methods)
  local ok, err, code = httpd.static(self.sid, path, methods_of(methods), status, content_type, body)
  if ok and self.paths[path] then
    self.handlers[self.paths[path]] = nil
    self.paths[path] = nil
  end
  return ok, err, code
end

--- Routes path to a C handler (lightuserdata of type halo_httpd_handler_cb).
function Server:route_c(path, fn, ud, methods)
  local ok, err, code = httpd.route_c(self.sid, path, methods_of(methods), fn, ud)
  if ok and self.paths[path] then
    self.handlers[self.paths[path]] = nil
    self.paths[path] = nil
  end
  return ok, err, code
end

function Server:unroute(path)
  local hid = self.paths[path]
  if hid then
    self.handlers[hid] = nil
    self.paths[path] = nil
  end
  return httpd.unroute(self.sid, path)
end

--- The server's counters (see README.md), or nil once it has closed.
function Server:stats() return httpd.stats(self.sid) end

--- Closes the server: no new connection, answers under way finish.
function Server:close()
  httpd.close(self.sid)
  require("halo").send(self.pid, "close")
end

local server_behavior = {
  init = function(self, a)
    local sid, port, code = httpd.new(a.opts)
    if not sid then
      a.err, a.code = port, code
      error(port, 0)
    end
    self.sid = sid
    a.sid, a.port = sid, port
  end,
  handle_message = function(self, _, msg)
    if type(msg) == "number" then -- connection msg wants a process
      local pid = require("halo").spawn(connection, { self.sid, msg }, { behavior = "halo.http.connection" })
      if not pid then httpd.fail(self.sid, msg) end
    elseif msg == "close" then
      return "normal"
    end
  end,
  -- the server's counters (srv:stats()) as strings, and its address
  handle_inspect = function(self)
    local out, srv = {}, servers[self.sid]
    for k, v in pairs(httpd.stats(self.sid) or {}) do out[k] = tostring(v) end
    if srv then out.address = srv.host .. ":" .. tostring(srv.port) end
    return out
  end,
  terminate = function(self) if self.sid then servers[self.sid] = nil end end,
}

--- Serves HTTP on host:port from a new server process linked to the caller.
-- opts: host ("127.0.0.1"; an IP address or localhost), port (0: ephemeral), name, routes
-- ({[path] = handler | {handler=, methods=}}), max_body, max_header,
-- max_output, max_connections, header_timeout, idle_timeout, body_timeout.
-- Returns the server {pid, host, port, sid} or nil, err, code.
local SERVE_NUMBERS = { port = 65535, max_body = 1e12, max_header = 2 ^ 24, max_output = 1e12,
                        max_connections = 1e9, header_timeout = 864e5, idle_timeout = 864e5, body_timeout = 864e5 }

function M.serve(opts)
  opts = opts or {}
  for k, v in pairs(opts) do
    local max = SERVE_NUMBERS[k]
    if max then
      if type(v) ~= "number" or v < 0 or v > max or v % 1 ~= 0 then
        error(("http.serve: %s must be an integer 0..%d"):format(k, max), 2)
      end
    elseif k ~= "host" and k ~= "name" and k ~= "routes" then
      error(("http.serve: unknown option '%s'"):format(tostring(k)), 2)
    end
  end
  local halo = require("halo")
  local a = { opts = opts }
  local pid, err, code = halo.spawn(server_behavior, a,
    { link = true, name = opts.name, behavior = "halo.http.server" })
  if not pid then return nil, a.err or err, a.code or code end
  local srv = setmetatable({ pid = pid, sid = a.sid, host = opts.host or "127.0.0.1", port = a.port,
                             handlers = {}, paths = {}, next_hid = 0 }, Server)
  servers[a.sid] = srv
  for path, r in pairs(opts.routes or {}) do
    local ok, rerr, rcode
    if type(r) == "function" then
      ok, rerr, rcode = srv:route(path, r)
    else
      ok, rerr, rcode = srv:route(path, r.handler, r.methods)
    end
    if not ok then
      srv:close()
      return nil, rerr, rcode
    end
  end
  return srv
end

return M
