-- A client of one MCP server for specs: raw requests and JSON-RPC calls in a
-- session, over halo's own HTTP client (call from inside a process).
local json = require("halo.json")
local http = require("halo.http")

local M = {}

function M.client(port, extra)
  local c = { url = ("http://127.0.0.1:%d/mcp"):format(port), id = 0 }
  function c.raw(method, body, headers)
    local h = { accept = "application/json, text/event-stream" }
    for k, v in pairs(extra or {}) do h[k] = v end
    for k, v in pairs(headers or {}) do h[k] = v or nil end
    local r = assert(http.request({ url = c.url, method = method, body = body, headers = h,
                                    content_type = body and "application/json" or nil, timeout = 20000 }))
    r.json = r.body ~= "" and json.decode(r.body) or nil
    return r
  end
  function c.post(body, headers)
    local h = { ["mcp-session-id"] = c.sid }
    for k, v in pairs(headers or {}) do h[k] = v end
    return c.raw("POST", body, h)
  end
  function c.rpc(method, params, headers)
    c.id = c.id + 1
    local r = c.post(json.encode({ jsonrpc = "2.0", id = c.id, method = method, params = params }), headers)
    return r.json, r
  end
  function c.call(tool, args)
    return c.rpc("tools/call", { name = tool, arguments = args or json.object() })
  end
  function c.init(version)
    c.sid = nil
    local r = c.post(json.encode({ jsonrpc = "2.0", id = 0, method = "initialize",
                                   params = { protocolVersion = version or "2025-11-25", capabilities = json.object(),
                                              clientInfo = { name = "spec", version = "1" } } }))
    c.sid = r.headers["mcp-session-id"]
    return r
  end
  function c.names()
    local out = {}
    for i, t in ipairs(c.rpc("tools/list").result.tools) do out[i] = t.name end
    return out
  end
  return c
end

return M
