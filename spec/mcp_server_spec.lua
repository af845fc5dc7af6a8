-- The MCP server over real HTTP (halo's own client, curl for the SSE
-- stream) against nodes running the mcp application with a temporary
-- tools directory: the protocol, every bad input with its answer (and the
-- server still serving), sessions, policy, hot reload, a raising tool, a
-- slow call that holds up no other, and calls proxied to another node.
local halo = require("halo")
local helper = require("helper")
local json = require("halo.json")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

local TOOLS = {
  ["echo.lua"] = [[
local json = require("halo.json")
return {
  { name = "echo", description = "echoes x",
    inputSchema = { type = "object", additionalProperties = false, required = { "x" },
                    properties = { x = { type = "integer", minimum = 0 }, s = { type = "string", enum = { "a", "b" } },
                                   l = { type = "array", items = { type = "string" } } } },
    handler = function(a, ctx) return { x = a.x, s = a.s, node = ctx.node, timeout = ctx.timeout, v = 1 } end },
  { name = "zeta", handler = function() return "zeta" end },
  { name = "node_info", handler = function() return "fake node_info" end },
}
]],
  ["slow.lua"] = [[
local halo = require("halo")
local state = package.loaded.mcp_spec_state or {}
package.loaded.mcp_spec_state = state
return {
  { name = "slow", inputSchema = { type = "object", properties = { ms = { type = "integer" } } },
    handler = function(a)
      state.slow_running, state.worker = true, halo.self()
      halo.sleep(a.ms or 2000)
      state.slow_running = false
      return "slept"
    end },
  { name = "quick", handler = function() return state.slow_running and "quick while slow" or "quick alone" end },
}
]],
  ["boom.lua"] = [[return { { name = "boom", handler = function() error("kaboom") end },
  { name = "fails", handler = function() return nil, "unknown process" end },
  { name = "bytes", handler = function() return "\255ok\237\160\128\226\130\172" end } }]],
  ["action.lua"] = [[return { { name = "process_kill", handler = function() return "killed" end } }]],
  ["_helper.lua"] = [[error("not a tool file")]],
}

local function tools_dir(files)
  local dir = helper.script_dir("echo.lua", files["echo.lua"])
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return dir
end

local write = helper.write

local client = require("mcp_helper").client

local function text(res) return res.result.content[1].text end

local function serve(dir, opts, fn, node_opts)
  local port = helper.free_ports(1)
  local mcp = { port = port, dir = dir }
  for k, v in pairs(opts or {}) do mcp[k] = v end
  local o = { mcp = mcp, timeout = 20000 }
  for k, v in pairs(node_opts or {}) do o[k] = v end
  return helper.run(function() return fn(port) end, o)
end

describe("the MCP server", function()
  local dir
  before_each(function() dir = tools_dir(TOOLS) end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("negotiates the version, issues sessions and lists and calls tools", function()
    local r = serve(dir, nil, function(port)
      local c = client(port)
      local out = {}
      for _, v in ipairs({ "2025-03-26", "2025-06-18", "2025-11-25", "2024-11-05" }) do
        local res = c.init(v)
        out[v] = { res.status, res.json.result.protocolVersion, c.sid }
      end
      out.init = c.init().json.result
      out.notified = c.post('{"jsonrpc":"2.0","method":"notifications/initialized"}').status
      out.ping = c.rpc("ping")
      out.names = c.names()
      for _, t in ipairs(c.rpc("tools/list").result.tools) do
        if t.name == "echo" then out.schema = t.inputSchema end
      end
      out.call = c.call("echo", { x = 7, s = "a" })
      out.pinned = c.rpc("ping", nil, { ["mcp-protocol-version"] = "2025-06-18" })
      return out
    end)
    assert.same({ 200, "2025-03-26" }, { r["2025-03-26"][1], r["2025-03-26"][2] })
    assert.equal("2025-06-18", r["2025-06-18"][2])
    assert.equal("2025-11-25", r["2025-11-25"][2])
    assert.equal("2025-11-25", r["2024-11-05"][2]) -- unsupported: the latest
    assert.matches("^%x+$", r["2025-11-25"][3])
    assert.not_equal(r["2025-06-18"][3], r["2025-11-25"][3])
    assert.same({ name = "halo-mcp", version = "0.1.0" }, r.init.serverInfo)
    assert.is_true(r.init.capabilities.tools.listChanged)
    assert.is_string(r.init.instructions)
    assert.equal(202, r.notified)
    assert.same({}, r.ping.result)
    -- the reference's order first, the others sorted; _helper.lua is not a tool file
    assert.same({ "node_info", "process_kill", "boom", "bytes", "echo", "fails", "quick", "slow", "zeta" }, r.names)
    assert.same({ "x" }, r.schema.required)
    assert.equal("string", r.schema.properties.node.type)
    assert.equal("integer", r.schema.properties.timeout.type)
    assert.is_false(r.schema.additionalProperties)
    local v = json.decode(text(r.call))
    assert.same({ x = 7, s = "a", node = "halo@localhost", timeout = 30, v = 1 }, v)
    assert.is_nil(r.call.result.isError)
    assert.same({}, r.pinned.result)
  end)

  it("answers every bad input as documented and keeps serving", function()
    local big = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' .. ("x"):rep(1048576) .. '"}}'
    local out, alive = serve(dir, { token = "s3cret", origins = { "https://app.example" } }, function(port)
      local c = client(port, { authorization = "Bearer s3cret" })
      c.init()
      local out, alive = {}, {}
      local function case(name, fn)
        local ok, res = pcall(fn)
        out[name] = ok and res or ("raised: " .. tostring(res))
        alive[name] = c.rpc("ping").result ~= nil
      end
      case("malformed", function() local x = c.post("{nope"); return { x.status, x.json.error.code } end)
      case("batch", function() local x = c.post('[{"jsonrpc":"2.0","id":1,"method":"ping"}]'); return { x.status, x.json.error.code } end)
      case("version", function() local x = c.post('{"jsonrpc":"1.0","id":1,"method":"ping"}'); return { x.status, x.json.error.code } end)
      case("scalar", function() local x = c.post('"ping"'); return { x.status, x.json.error.code } end)
      case("id", function() local x = c.post('{"jsonrpc":"2.0","id":{},"method":"ping"}'); return { x.status, x.json.error.code } end)
      case("no_method", function() local x = c.post('{"jsonrpc":"2.0","id":3}'); return { x.status, x.json.error.code } end)
      case("method", function() return c.rpc("resources/list").error end)
      case("tool", function() return c.call("nope").error end)
      case("type", function() return c.call("echo", { x = "7" }).error end)
      case("required", function() return c.call("echo", { s = "a" }).error end)
      case("null_required", function() return c.call("echo", { x = json.null }).error end)
      case("null_optional", function() return json.decode(text(c.call("echo", { x = 1, s = json.null }))) end)
      case("enum", function() return c.call("echo", { x = 1, s = "c" }).error end)
      case("minimum", function() return c.call("echo", { x = -1 }).error end)
      case("items", function() return c.call("echo", { x = 1, l = { "a", 2 } }).error end)
      case("unknown_arg", function() return c.call("echo", { x = 1, y = 2 }).error end)
      case("node_type", function() return c.call("echo", { x = 1, node = 5 }).error end)
      case("params", function() return c.rpc("tools/call", { arguments = json.object() }).error end)
      case("nan_id", function() local x = c.post('{"jsonrpc":"2.0","id":NaN,"method":"ping"}'); return { x.status, x.json.error.code } end)
      case("hex_arg", function()
        local x = c.post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":0x10}}}')
        return { x.status, x.json.error.code }
      end)
      case("inf_id", function() local x = c.post('{"jsonrpc":"2.0","id":1e400,"method":"ping"}'); return { x.status, x.json.error.code } end)
      case("bytes", function() return c.call("bytes").result.content[1].text end)
      case("oversize", function() return c.post(big).status end)
      case("no_token", function()
        local x = c.raw("POST", '{"jsonrpc":"2.0","id":1,"method":"ping"}', { authorization = false, ["mcp-session-id"] = c.sid })
        return { x.status, x.headers["www-authenticate"] }
      end)
      case("wrong_token", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { authorization = "Bearer s3cre" }).status end)
      case("foreign_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "http://evil.example" }).status end)
      case("loopback_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "http://localhost:3000" }).status end)
      case("v6_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "http://[::1]:8080" }).status end)
      case("v6_prefix_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "http://[::1].evil.example" }).status end)
      case("path_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "http://localhost/x" }).status end)
      case("allowed_origin", function() return c.post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { origin = "https://app.example" }).status end)
      case("ghost_node", function() return c.call("echo", { x = 1, node = "ghost@localhost", timeout = 2 }).result end)
      case("bad_node", function() return c.call("echo", { x = 1, node = "ghost" }).result end)
      case("raises", function() return c.call("boom").result end)
      case("fails", function() return c.call("fails").result end)
      case("bad_schema", function()
        local good = [[return { { name = "bad_schema", handler = function() return "ran" end,
          inputSchema = { type = "object", properties = { a = { type = "integer", minimum = 5 } } } } }]]
        write(dir .. "/badschema.lua", good)
        c.names()
        write(dir .. "/badschema.lua", (good:gsub("minimum = 5", 'minimum = "5"')))
        return c.call("bad_schema", { a = 3 }).result
      end)
      case("get_405", function() return c.raw("PUT", "{}", { ["mcp-session-id"] = c.sid }).status end)
      local info = halo.pool.info("mcp")
      out.restarts = info.restarts
      out.inspect = halo.inspect("mcp_web")
      out.endpoint = require("halo.mcp").endpoint()
      return out, alive
    end)
    assert.same({ 400, -32700 }, out.malformed)
    assert.same({ 400, -32700 }, out.batch)
    assert.same({ 400, -32600 }, out.version)
    assert.same({ 400, -32600 }, out.scalar)
    assert.same({ 400, -32600 }, out.id)
    assert.same({ 400, -32600 }, out.no_method)
    assert.same({ code = -32601, message = "method not found: resources/list" }, out.method)
    assert.same({ code = -32602, message = "unknown tool: nope" }, out.tool)
    assert.same({ code = -32602, message = "invalid arguments: argument 'x': expected integer, got string" }, out.type)
    assert.same({ code = -32602, message = "invalid arguments: argument 'x' is required" }, out.required)
    assert.matches("argument 'x': expected integer, got null", out.null_required.message, 1, true)
    assert.equal(1, out.null_optional.x) -- a null optional argument is absent
    assert.is_nil(out.null_optional.s)
    assert.matches("argument 's': expected one of a, b, got 'c'", out.enum.message, 1, true)
    assert.matches("argument 'x': must be >= 0", out.minimum.message, 1, true)
    assert.matches("argument 'l': item 2: expected string, got integer", out.items.message, 1, true)
    assert.matches("unknown argument 'y'", out.unknown_arg.message, 1, true)
    assert.matches("argument 'node': expected string, got integer", out.node_type.message, 1, true)
    assert.same({ code = -32602, message = "invalid tools/call params" }, out.params)
    assert.same({ 400, -32700 }, out.nan_id) -- JSON has no NaN, Infinity nor hex numbers
    assert.same({ 400, -32700 }, out.hex_arg)
    assert.same({ 400, -32600 }, out.inf_id) -- an id that cannot be echoed
    -- bytes that are not UTF-8 (a stray byte, an encoded surrogate) become U+FFFD: the answer stays JSON
    assert.equal("\239\191\189ok\239\191\189\239\191\189\239\191\189\226\130\172", out.bytes)
    assert.equal(413, out.oversize)
    assert.same({ 401, 'Bearer realm="halo-mcp"' }, out.no_token)
    assert.equal(401, out.wrong_token)
    assert.equal(403, out.foreign_origin)
    assert.equal(200, out.loopback_origin)
    assert.equal(200, out.allowed_origin)
    assert.equal(200, out.v6_origin)
    assert.equal(403, out.v6_prefix_origin)
    assert.equal(403, out.path_origin)
    assert.is_true(out.ghost_node.isError)
    assert.matches("^remote call to 'ghost@localhost' failed: ", out.ghost_node.content[1].text)
    assert.matches("^remote call to 'ghost' failed: incorrect node name", out.bad_node.content[1].text)
    assert.is_true(out.raises.isError)
    assert.matches("^tool boom failed: .*kaboom", out.raises.content[1].text)
    assert.same({ content = { { type = "text", text = "unknown process" } }, isError = true }, out.fails)
    -- a schema outside the subset fails its file's load, not the worker that checks arguments against it
    assert.is_true(out.bad_schema.isError)
    assert.matches("^tool bad_schema is unavailable: .*badschema%.lua: tool bad_schema: inputSchema%.properties%.a%.minimum "
      .. "must be a number", out.bad_schema.content[1].text)
    assert.equal(405, out.get_405)
    assert.equal(0, out.restarts) -- the raising tool took no worker down
    assert.not_matches("s3cret", json.encode(out.inspect))
    assert.matches('"token":"<redacted>"', out.inspect.options, 1, true)
    assert.equal(out.inspect.endpoint, out.endpoint)
    for name in pairs(out) do
      if alive[name] ~= nil then assert.is_true(alive[name], name .. ": the server stopped serving") end
    end
  end)

  it("requires a live session and honours DELETE and MCP-Protocol-Version", function()
    local r = serve(dir, nil, function(port)
      local c = client(port)
      c.init()
      local sid, out = c.sid, {}
      out.missing = c.raw("POST", '{"jsonrpc":"2.0","id":1,"method":"ping"}').status
      c.sid = "0123456789abcdef"
      out.unknown = c.rpc("ping")
      out.unknown_status = select(2, c.rpc("ping")).status
      c.sid = sid
      out.bad_version = select(2, c.rpc("ping", nil, { ["mcp-protocol-version"] = "1999-01-01" })).status
      out.before = c.rpc("ping").result
      out.delete = c.raw("DELETE", nil, { ["mcp-session-id"] = sid }).status
      out.after = select(2, c.rpc("ping")).status
      out.get_missing = c.raw("GET", nil).status
      return out
    end)
    assert.equal(400, r.missing)
    assert.equal(404, r.unknown_status)
    assert.equal(400, r.bad_version)
    assert.same({}, r.before)
    assert.equal(204, r.delete)
    assert.equal(404, r.after)
    assert.equal(400, r.get_missing)
  end)

  it("leaves out action tools in read-only mode and keeps to the allowed tools", function()
    local r = serve(dir, { read_only = true }, function(port)
      local c = client(port)
      c.init()
      return { names = c.names(), kill = c.call("process_kill", { pid = "<0.0.1>" }).error }
    end)
    assert.same({ "node_info", "boom", "bytes", "echo", "fails", "quick", "slow", "zeta" }, r.names)
    assert.same({ code = -32602, message = "unknown tool: process_kill" }, r.kill)
    r = serve(dir, { allowed = { "echo", "zeta", "absent" } }, function(port)
      local c = client(port)
      c.init()
      return { names = c.names(), other = c.call("boom").error }
    end)
    assert.same({ "echo", "zeta" }, r.names)
    assert.equal("unknown tool: boom", r.other.message)
  end)

  it("reloads an edited tool file, notices added ones and reports broken ones", function()
    local sse = dir .. "/../" .. dir:match("[^/]+$") .. ".sse"
    local r = serve(dir, nil, function(port)
      local c = client(port)
      c.init()
      local reg = require("halo.mcp.registry")
      local out = {}
      out.before = json.decode(text(c.call("echo", { x = 1 }))).v
      write(dir .. "/echo.lua", TOOLS["echo.lua"]:gsub("v = 1", "v = 22"))
      out.after = json.decode(text(c.call("echo", { x = 1 }))).v
      -- an open GET stream hears of a new file
      local function conns() return #halo.process_list({ behavior = "halo.http.connection" }) end
      local conns0 = conns()
      local curl = helper.spawn_os(("unset LD_PRELOAD; exec curl -sN -H 'Accept: text/event-stream' -H 'Mcp-Session-Id: %s' %s")
        :format(c.sid, c.url), sse)
      assert(helper.wait_until(function()
        local ins = halo.inspect("mcp_web")
        return ins and ins.streams == "1"
      end, 5000), "the stream did not open")
      write(dir .. "/added.lua", [[return { { name = "added", handler = function() return "new" end } }]])
      out.notified = helper.wait_until(function()
        local f = io.open(sse)
        local s = f and f:read("*a") or ""
        if f then f:close() end
        return s:find("notifications/tools/list_changed", 1, true) ~= nil
      end, 5000)
      out.added = text(c.call("added"))
      out.listed = c.names()
      os.remove(dir .. "/added.lua")
      out.removed = c.call("added").error
      helper.kill(curl)
      out.closed = helper.wait_until(function() return halo.inspect("mcp_web").streams == "0" end, 5000)
      -- and its connection's process ended with it (the stream took the close)
      out.conn_gone = helper.wait_until(function() return conns() == conns0 end, 5000)
      out.conns = { conns0, conns() }
      -- a syntax error: reported in its tools' results, the others still work
      local failed = reg.stats().failed
      write(dir .. "/slow.lua", "return { {{ syntax error")
      out.broken = c.call("quick").result
      out.failed = reg.stats().failed - failed
      out.other = text(c.call("zeta"))
      write(dir .. "/slow.lua", TOOLS["slow.lua"])
      out.fixed = text(c.call("quick"))
      return out
    end)
    os.remove(sse)
    assert.equal(1, r.before)
    assert.equal(22, r.after)
    assert.is_true(r.notified)
    assert.is_true(r.closed) -- the stream's process noticed the client go
    assert.is_true(r.conn_gone, ("connection processes before the stream %d, after it closed %d"):format(r.conns[1], r.conns[2]))
    assert.equal("new", r.added)
    assert.truthy(table.concat(r.listed, " "):find("added", 1, true))
    assert.same({ code = -32602, message = "unknown tool: added" }, r.removed)
    assert.is_true(r.broken.isError)
    assert.matches("^tool quick is unavailable: .*slow%.lua", r.broken.content[1].text)
    assert.equal(1, r.failed)
    assert.equal("zeta", r.other)
    assert.equal("quick alone", r.fixed)
  end)

  it("finds a tool that moved to another file", function()
    local r = serve(dir, nil, function(port)
      local c = client(port)
      c.init()
      local out = {}
      -- moved.lua defines zeta too: ignored while echo.lua holds the name
      write(dir .. "/moved.lua", [[return { { name = "zeta", handler = function() return "moved zeta" end } }]])
      out.listed = #c.names()
      out.before = text(c.call("zeta"))
      -- echo.lua lets go of zeta: moved.lua's is the one now
      write(dir .. "/echo.lua", (TOOLS["echo.lua"]:gsub('name = "zeta"', 'name = "zeta_old"')))
      out.after = c.call("zeta")
      -- quick moves from slow.lua to a file not scanned yet
      write(dir .. "/fresh.lua", [[return { { name = "quick", handler = function() return "fresh quick" end } }]])
      write(dir .. "/slow.lua", (TOOLS["slow.lua"]:gsub('name = "quick"', 'name = "quick_old"')))
      out.fresh = c.call("quick")
      return out
    end)
    assert.equal(9, r.listed)
    assert.equal("zeta", r.before)
    assert.same({ { type = "text", text = "moved zeta" } }, r.after.result and r.after.result.content or r.after)
    assert.same({ { type = "text", text = "fresh quick" } }, r.fresh.result and r.fresh.result.content or r.fresh)
  end)

  it("runs a quick call while a slow one holds a worker", function()
    local r = serve(dir, { pool_size = 2 }, function(port)
      local c = client(port)
      c.init()
      local me = halo.self()
      halo.spawn(function()
        local c2 = client(port)
        c2.sid = c.sid
        halo.send(me, text(c2.call("slow", { ms = 3000 })))
      end)
      assert(helper.wait_until(function()
        local s = package.loaded.mcp_spec_state
        return s and s.slow_running
      end, 5000))
      local quick = {}
      for i = 1, 4 do quick[i] = text(c.call("quick")) end
      local _, slow = halo.receive(10000)
      return { quick = quick, slow = slow }
    end)
    -- without the idle-first choice every other quick call would queue behind the slow one
    assert.same({ "quick while slow", "quick while slow", "quick while slow", "quick while slow" }, r.quick)
    assert.equal("slept", r.slow)
  end)

  it("answers at once when the worker running a call ends", function()
    local r = serve(dir, { pool_size = 2 }, function(port)
      local c = client(port)
      c.init()
      local me, state = halo.self(), nil
      halo.spawn(function()
        local c2 = client(port)
        c2.sid = c.sid
        local _, res = c2.call("slow", { ms = 15000 })
        halo.send(me, res.status)
      end)
      assert(helper.wait_until(function()
        state = package.loaded.mcp_spec_state
        return state and state.slow_running
      end, 5000))
      local t0 = halo.now()
      halo.kill(state.worker)
      local _, status = halo.receive(5000)
      return { status = status, ms = halo.now() - t0, after = text(c.call("quick")) }
    end)
    -- not the 125 s HTTP deadline: the caller was waiting on that worker
    assert.equal(502, r.status)
    assert.is_true(r.ms < 5000, tostring(r.ms))
    assert.matches("^quick", r.after) -- the pool goes on (the killed worker is replaced)
  end)
end)

describe("the MCP proxy between two nodes", function()
  local dir, dir2, pid, pid3
  local REG = "embedded:" .. helper.random_port()
  setup(function()
    dir = tools_dir(TOOLS)
    dir2 = tools_dir(TOOLS)
    write(dir2 .. "/echo.lua", TOOLS["echo.lua"]:gsub("v = 1", "v = 2"))
    write(dir2 .. "/big.lua", [[return { { name = "big", handler = function() return ("x"):rep(100000) end } }]])
    local up = dir2 .. "/up"
    pid = helper.spawn_os(("%s run --name node2@localhost --cookie mcpx --listen 127.0.0.1:0 --registrar %s " ..
      "--mcp-tools %s --log-level warning -e 'io.open(arg[1], \"w\"):close() require(\"halo\").receive()' %s")
      :format(halo_bin, REG, dir2, up), dir2 .. "/node2.log")
    assert(helper.wait_file(up), "node2 did not start")
    -- node3's `mcp` is an impostor answering a result that is not JSON
    write(dir2 .. "/impostor.lua", [[
local halo = require("halo")
halo.spawn_register("mcp", { handle_call = function() return { result = '{"content":[]},"oops":{' } end })
io.open(arg[1], "w"):close()
halo.receive()
]])
    pid3 = helper.spawn_os(("%s run --name node3@localhost --cookie mcpx --listen 127.0.0.1:0 --registrar %s --no-mcp " ..
      "--log-level warning %s/impostor.lua %s/up3"):format(halo_bin, REG, dir2, dir2), dir2 .. "/node3.log")
    assert(helper.wait_file(dir2 .. "/up3"), "node3 did not start")
  end)
  teardown(function()
    helper.kill(pid)
    helper.kill(pid3)
    os.execute("rm -rf " .. dir .. " " .. dir2)
  end)

  it("runs a tool on the other node, with the entry point's policy", function()
    write(dir .. "/remote.lua", [[return { { name = "via", handler = function(_, ctx)
      local res, err = ctx.call_remote("node2@localhost", "echo", { x = 3 }, 5)
      if not res then return nil, err end
      return res.content[1].text
    end },
    { name = "via_kill", handler = function(_, ctx)
      local res, err = ctx.call_remote("node2@localhost", "process_kill", {}, 5)
      if not res then return nil, err end
      return res.content[1].text
    end } }]])
    local r = serve(dir, { read_only = true }, function(port)
      -- node2 may send this node messages of 64 KB at most (its links are made below)
      halo.net.configure({ max_message = 65536 })
      local c = client(port)
      c.init()
      local out = {}
      -- the registrar has told where node2 listens; the first call connects
      assert(helper.wait_until(function() return halo.net.resolve("node2@localhost") ~= nil end, 5000))
      out.remote = json.decode(text(c.call("echo", { x = 1, node = "node2@localhost", timeout = 500 })))
      out.self = json.decode(text(c.call("echo", { x = 1, node = "node1@localhost" })))
      out.bad = c.call("echo", { x = "1", node = "node2@localhost" }).error
      out.kill = c.call("process_kill", { node = "node2@localhost" }).error
      out.via = json.decode(text(c.call("via")))
      out.via_kill = c.call("via_kill").result
      out.timed_out = c.call("slow", { ms = 2500, node = "node2@localhost", timeout = 1 }).result
      out.ping = halo.call(halo.net.process_id("mcp", "node2@localhost"), { mcp = "ping" }, 5000)
      out.big = c.call("big", { node = "node2@localhost", timeout = 3 }).result
      assert(helper.wait_until(function() return halo.net.resolve("node3@localhost") ~= nil end, 5000))
      local g = c.post(json.encode({ jsonrpc = "2.0", id = 9, method = "tools/call",
                                     params = { name = "echo", arguments = { x = 1, node = "node3@localhost" } } }))
      out.garbage = g.json or g.body
      return out
    end, { name = "node1@localhost", cookie = "mcpx", listen = "127.0.0.1:0", registrar = REG })
    assert.same({ x = 1, node = "node2@localhost", timeout = 120, v = 2 }, r.remote)
    assert.equal(1, r.self.v)
    assert.equal("node1@localhost", r.self.node)
    assert.same({ code = -32602, message = "invalid arguments: argument 'x': expected integer, got string" }, r.bad)
    assert.same({ code = -32602, message = "unknown tool: process_kill" }, r.kill) -- Q-SEC3
    assert.same({ x = 3, node = "node2@localhost", timeout = 5, v = 2 }, r.via)
    -- a handler's call_remote is bound by this node's policy too
    assert.same({ content = { { type = "text", text = "unknown tool: process_kill" } }, isError = true }, r.via_kill)
    assert.same({ result = "{}" }, r.ping)
    assert.same({ content = { { type = "text", text = "remote call to 'node2@localhost' failed: timed out" } },
                  isError = true }, r.timed_out)
    -- a result past the message limit this node gave node2 is refused there, not lost on the way
    assert.is_true(r.big.isError)
    assert.matches("^result too large to send over the cluster: %d+ bytes %(limit 65536%)", r.big.content[1].text)
    -- a remote answer that is not a result object never reaches the client as broken JSON
    assert.same({ content = { { type = "text", text = "remote call to 'node3@localhost' failed: unexpected response" } },
                  isError = true }, r.garbage.result)
  end)
end)

describe("halo run --mcp", function()
  it("lists the flags, serves /mcp with the token from the environment and never logs it", function()
    local f = io.popen(halo_bin .. " run --help")
    local help = f:read("*a")
    f:close()
    for _, flag in ipairs({ "--mcp [HOST:]PORT", "--mcp-token", "--mcp-origin", "--mcp-read-only", "--mcp-allow",
                            "--mcp-tools", "--mcp-expose-env", "--no-mcp" }) do
      assert.truthy(help:find(flag, 1, true), flag .. " missing from run --help")
    end
    local dir = tools_dir(TOOLS)
    local port = helper.free_ports(1)
    local pid = helper.spawn_os(("HALO_MCP_TOKEN=t0ken-xyz %s run --mcp %d --mcp-tools %s --log-level debug " ..
      "-e 'io.open(arg[1], \"w\"):close() require(\"halo\").receive()' %s/up"):format(halo_bin, port, dir, dir),
      dir .. "/node.log")
    assert(helper.wait_file(dir .. "/up"), "the node did not start")
    local function curl(auth)
      local p = io.popen(("unset LD_PRELOAD; curl -s -o /dev/null -w '%%{http_code}' --max-time 5 %s " ..
        "-H 'Content-Type: application/json' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}' " ..
        "http://127.0.0.1:%d/mcp"):format(auth and "-H 'Authorization: Bearer " .. auth .. "'" or "", port))
      local code = p:read("*a")
      p:close()
      return code
    end
    local codes = { curl(nil), curl("wrong"), curl("t0ken-xyz") }
    helper.kill(pid)
    local lf = io.open(dir .. "/node.log")
    local log = lf:read("*a")
    lf:close()
    os.execute("rm -rf " .. dir)
    assert.same({ "401", "401", "200" }, codes)
    assert.truthy(log:find("mcp: serving http://127.0.0.1:" .. port .. "/mcp (bearer token required)", 1, true), log)
    assert.falsy(log:find("t0ken-xyz", 1, true))
  end)
end)
