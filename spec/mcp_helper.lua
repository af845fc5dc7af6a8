-- For MCP specs: a client of one MCP server (raw requests and JSON-RPC calls
-- in a session, over halo's own HTTP client; call from inside a process) and
-- a cluster of test nodes (spec/mcp/node.lua) as OS processes.
local json = require("halo.json")
local http = require("halo.http")
local helper = require("helper")

local M = {}

local read = helper.read
M.read = read

--- Starts n (default 3) test nodes node1..n@localhost running
-- spec/mcp/node.lua on an embedded registrar of their own, one cookie,
-- node1 serving /mcp with a token and a scratch copy of mcp_tools/, and
-- waits until each is ready. Returns {dir, port, token, nodes = {names},
-- echo = {node -> mcp_test_echo's PID}, registrar, cookie, stop = function}; stop kills the
-- nodes and removes dir. Blocking: call outside a node (setup).
function M.cluster(n)
  local halo_bin = (os.getenv("HALO_BUILD") or "build") .. "/halo"
  local c = { dir = helper.script_dir("README", "mcp cluster\n"), nodes = {}, pids = {}, echo = {} }
  for i = 1, n or 3 do c.nodes[i] = ("node%d@localhost"):format(i) end
  os.execute(("mkdir -p %s/tools && cp mcp_tools/*.lua %s/tools/ 2>/dev/null"):format(c.dir, c.dir))
  function c.stop()
    for _, pid in ipairs(c.pids) do helper.kill(pid) end
    os.execute("rm -rf " .. c.dir)
  end
  function c.log(i) return read(("%s/node%d.log"):format(c.dir, i)) end
  local reg = "embedded:" .. helper.random_port()
  c.registrar, c.cookie = reg, "mcpspec"
  c.port = helper.free_ports(1)
  c.token = "spec-" .. tostring(os.time())
  -- node1 first: it serves the registrar the others register with
  for i, name in ipairs(c.nodes) do
    local peers = {}
    for _, other in ipairs(c.nodes) do
      if other ~= name then peers[#peers + 1] = other end
    end
    local mcp = i == 1 and ("--mcp 127.0.0.1:%d --mcp-token %s --mcp-tools %s/tools"):format(c.port, c.token, c.dir)
      or ""
    c.pids[#c.pids + 1] = helper.spawn_os(("%s run --name %s --cookie mcpspec --listen 127.0.0.1:0 --registrar %s " ..
      "--log-level warning %s spec/mcp/node.lua %s/ready%d %s"):format(halo_bin, name, reg, mcp, c.dir, i,
      table.concat(peers, " ")), ("%s/node%d.log"):format(c.dir, i))
  end
  for i, name in ipairs(c.nodes) do
    if not helper.wait_file(("%s/ready%d"):format(c.dir, i), 1000) then
      c.stop()
      error(name .. " not ready: " .. tostring(c.log(i)), 2)
    end
    c.echo[name] = read(("%s/ready%d"):format(c.dir, i)):match("\n(<[^\n]+>)")
    if not c.echo[name] then
      c.stop()
      error("no mcp_test_echo PID from " .. name, 2)
    end
  end
  return c
end

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
