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

--- GET url; opts as for request (headers, timeout...).
function M.get(url, opts)
  local o = { method = "GET" }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url = url
  return M.request(o)
end

return M
