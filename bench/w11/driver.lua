--- W11's driver (bench/w11/run starts it): tools/call latency over HTTP,
-- keep-alive, one request at a time, through halo's own HTTP client (C on
-- libuv + llhttp). This node joins the cluster to set each node's number of
-- extra processes (w11_load, bench/w11/node.lua) between the series.
--   halo run --name w11@localhost --cookie C --registrar R bench/w11/driver.lua \
--     HOST:PORT TOKEN NODE1 NODE2 SIZES REQUESTS
-- Prints, per size and case, p50 and p99 in ms; then ns per process scanned
-- by process_list and the proxy's p50 overhead.
local halo = require("halo")
local cjson = require("cjson")

local addr, token, node1, node2, sizes_arg, requests = ...
local host, port = addr:match("^(.*):(%d+)$")
port = tonumber(port)
requests = tonumber(requests) or 1000
local sizes = {}
for s in sizes_arg:gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end

local headers = { accept = "application/json, text/event-stream", ["mcp-protocol-version"] = "2025-06-18" }
if token ~= "" then headers.authorization = "Bearer " .. token end

local id = 0
-- One JSON-RPC request; the response object (a JSON or an SSE body).
local function rpc(method, params)
  id = id + 1
  local res = assert(halo.http.request({ host = host, port = port, path = "/mcp", method = "POST", headers = headers,
    body = cjson.encode({ jsonrpc = "2.0", id = id, method = method, params = params }),
    content_type = "application/json", timeout = 120000 }))
  if res.headers["mcp-session-id"] then headers["mcp-session-id"] = res.headers["mcp-session-id"] end
  if res.status ~= 200 then error(("%s: HTTP %d %s"):format(method, res.status, res.body), 0) end
  local body = res.body
  if (res.headers["content-type"] or ""):find("text/event-stream", 1, true) then
    body = body:match("data: ?([^\r\n]*)")
  end
  local msg = cjson.decode(body)
  if msg.error then error(("%s: %d %s"):format(method, msg.error.code, msg.error.message), 0) end
  return msg.result
end

local function call(tool, args)
  local r = rpc("tools/call", { name = tool, arguments = args })
  if r.isError then error(("%s: %s"):format(tool, r.content[1].text), 0) end
  return r
end

-- p50 and p99 (ms) of n calls of a tool (or of the method ping) after a warm-up.
local function series(tool, args, n)
  local function once()
    if tool == "ping" then return rpc("ping") end
    return call(tool, args)
  end
  for _ = 1, 20 do once() end
  local t = {}
  for i = 1, n do
    local t0 = halo.now()
    once()
    t[i] = halo.now() - t0
  end
  table.sort(t)
  return t[math.ceil(n * 0.5)], t[math.ceil(n * 0.99)]
end

rpc("initialize", { protocolVersion = "2025-06-18", capabilities = {},
                    clientInfo = { name = "halo-w11", version = "1" } })
halo.http.request({ host = host, port = port, path = "/mcp", method = "POST", headers = headers,
  body = '{"jsonrpc":"2.0","method":"notifications/initialized"}', content_type = "application/json" })

local function load(node, n)
  local total, err = halo.call(halo.net.process_id("w11_load", node), n, 300000)
  return assert(total, err)
end

local PL = { sort_by = "mailbox", limit = 20 }
local function with(t, k, v)
  local c = {}
  for a, b in pairs(t) do c[a] = b end
  c[k] = v
  return c
end

local p50 = {}
local function row(label, a, b) io.stdout:write(("%-50s %9.3f %9.3f\n"):format(label, a, b)) io.stdout:flush() end
io.stdout:write(("W11 tools/call over HTTP (keep-alive, one at a time, %d calls per row)\n"):format(requests))
io.stdout:write(("%-50s %9s %9s\n"):format("", "p50 ms", "p99 ms"))
local a, b = series("ping", nil, requests) -- not a tool: the HTTP + JSON-RPC floor
row("ping (JSON-RPC, no tool)", a, b)
local totals = {}
for _, n in ipairs(sizes) do
  totals[n] = load(node1, n)
  load(node2, n)
  local cases = {
    { "node_info", "node_info", {} },
    { "node_info proxied", "node_info", { node = node2 } },
    { "process_list", "process_list", PL },
    { "process_list proxied", "process_list", with(PL, "node", node2) },
  }
  for _, c in ipairs(cases) do
    local x, y = series(c[2], c[3], c[2] == "process_list" and n >= 100000 and math.max(100, math.floor(requests / 5)) or requests)
    p50[c[1] .. n] = x
    row(("%s, %gk extra (%d processes)"):format(c[1], n / 1000, totals[n]), x, y)
  end
end
load(node1, 0)
load(node2, 0)

local first = sizes[1]
for _, n in ipairs(sizes) do
  if n ~= first then
    local ns = (p50["process_list" .. n] - p50["process_list" .. first]) * 1e6 / (totals[n] - totals[first])
    io.stdout:write(("process_list: %.0f ns per process scanned (%gk vs %gk, p50; goal <= 100)\n")
      :format(ns, n / 1000, first / 1000))
  end
  io.stdout:write(("process_list at %gk: %.0f ns per process all-in (p50 / processes)\n")
    :format(n / 1000, p50["process_list" .. n] * 1e6 / totals[n]))
end
for _, n in ipairs(sizes) do
  io.stdout:write(("proxy p50 overhead at %gk: node_info %.3f ms, process_list %.3f ms (goal <= 0.5)\n"):format(n / 1000,
    p50["node_info proxied" .. n] - p50["node_info" .. n], p50["process_list proxied" .. n] - p50["process_list" .. n]))
end
halo.shutdown(0)
