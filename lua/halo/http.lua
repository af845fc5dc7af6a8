--- halo.http: HTTP for halo processes, over the client of core/http.c
-- (libuv + llhttp; keep-alive connections reused per host:port).
local core = require("halo.core")

local yield = coroutine.yield

local M = {}

--- Makes a request and waits for the whole response; only the calling
-- process waits (state "wait response", its mailbox keeps filling).
-- opts: host, port (required), method ("GET", or "POST" with a body), path
-- ("/"), body, content_type, timeout (ms, the whole request, default 5000).
-- Returns {status, body}, or nil, "ECODE: text", "ECODE". An HTTP status is
-- not an error.
function M.request(opts)
  local ref, err, code = core.http.wait(opts)
  if not ref then return nil, err, code end
  local ok, res, c = yield()
  if not ok then return nil, res, c end
  if res.error then return nil, res.error, res.code end
  return res
end

return M
