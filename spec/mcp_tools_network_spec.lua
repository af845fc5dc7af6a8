-- The MCP tools of mcp_tools/network.lua, cron.lua and registrar.lua, each
-- handler called inside a process of a live node (loaded with loadfile, as
-- the MCP server loads them), against real halo processes: n1 and n2 on an
-- embedded registrar of the spec's own (with the mcp application in agent
-- mode, which network_ping reaches), x outside any registrar and without
-- mcp; and a case on Debian's real etcd. Every background node runs the cron job
-- mcp_test_job and a probe that runs tools there, watches processes and
-- reports its network.
local halo = require("halo")
local helper = require("helper")
local cjson = require("cjson")
local http = require("halo.http")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local TOOLS = io.popen("pwd"):read("*l") .. "/mcp_tools"

-- Runs tool `name` as the MCP server does: the tool files loaded with
-- loadfile into an environment falling back to _G, the handler called with
-- (args, ctx) in the calling process. Returns {text =, isError =}.
local RUNNER = [==[
local halo = require("halo")
local json = require("halo.json")
local tools
return function(dir, name, args)
  if not tools then
    tools = {}
    for _, file in ipairs({ "network", "cron", "registrar" }) do
      local chunk = assert(loadfile(dir .. "/" .. file .. ".lua"))
      setfenv(chunk, setmetatable({}, { __index = _G }))
      for _, def in ipairs(chunk()) do tools[def.name] = def end
    end
  end
  local def = assert(tools[name], name)
  local ctx = { tool = name, node = halo.node_info().Name, pid = halo.self(), timeout = 30 }
  local v, err = def.handler(args or {}, ctx)
  if v == nil then return { isError = true, text = err } end
  if type(v) == "string" then return { text = v } end
  return { text = json.encode(v, true) }
end
]==]

local SCRIPT = "local run_tool = assert(loadstring(" .. ("%q"):format(RUNNER) .. "))()\n" .. [[
local halo = require("halo")
local dir, out, role = arg[1], arg[2], arg[3]
if role == "svc" then
  assert(halo.application.load({ name = "svc", weight = 2, group = { { behavior = function() halo.receive() end } } }))
  assert(halo.application.start("svc"))
end
assert(halo.cron.add("mcp_test_job", "* * * * *", function() halo.log.info("mcp_test_job ran") end))
local downs = {}
halo.spawn({
  handle_call = function(_, _, _, req)
    if req[1] == "tool" then return run_tool(dir, req[2], req[3]) end
    if req[1] == "watch" then return halo.monitor(req[2]) end
    if req[1] == "route_del" then return require("halo.core").net.route_del(req[2]) end
    if req[1] == "state" then return { downs = downs, info = halo.net.info() } end
  end,
  handle_message = function(_, _, msg)
    if halo.is_down(msg) then downs[#downs + 1] = { pid = msg.pid, reason = msg.reason } end
  end,
}, nil, { name = "probe" })
local f = io.open(out, "w"); f:write(halo.net.info().Acceptors[1].Port, "\n"); f:close()
halo.receive()
]]

local run_tool = assert(loadstring(RUNNER))()
local function tool(name, args) return run_tool(TOOLS, name, args) end
local function decode(r)
  assert(not r.isError, r.text)
  return cjson.decode(r.text)
end
local function probe(node, ...)
  return halo.call(halo.net.process_id("probe", node), { ... }, 5000)
end

local dir
local started = {}

-- Starts a background node; returns the port it listens on.
local function start(name, registrar, role, extra)
  local out = ("%s/%s.out"):format(dir, name)
  started[#started + 1] = helper.spawn_os(("%s run --name %s@localhost --cookie mcpnet --listen 127.0.0.1:0 " ..
    "--registrar %s %s --log-level info %s/node.lua %s %s %s"):format(halo_bin, name, registrar, extra or "", dir,
    TOOLS, out, role or ""), ("%s/%s.log"):format(dir, name))
  assert(helper.wait_file(out), name .. " did not start: " .. (io.open(dir .. "/" .. name .. ".log"):read("*a")))
  return tonumber(io.open(out):read("*l"))
end

local function names(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.Node end
  return out
end

describe("the MCP network, cron and registrar tools", function()
  setup(function() dir = helper.script_dir("node.lua", SCRIPT) end)
  teardown(function()
    for _, pid in ipairs(started) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("declare schemas in the contract's form", function()
    for _, file in ipairs({ "network", "cron", "registrar" }) do
      local defs = assert(loadfile(TOOLS .. "/" .. file .. ".lua"))()
      for _, def in ipairs(defs) do
        assert.is_string(def.name)
        assert.is_function(def.handler)
        assert.is_true(#def.description > 40, def.name)
        assert.equal("object", def.inputSchema.type)
        assert.is_nil(def.inputSchema.properties.node, def.name)
        assert.is_nil(def.inputSchema.properties.timeout, def.name)
        local text = require("halo.json").encode(def.inputSchema)
        assert.matches('"properties":{', text, 1, true)
        if def.inputSchema.required then assert.matches('"required":["', text, 1, true) end
      end
    end
  end)

  it("on a node without the network: every list there and [], errors instead of answers", function()
    local r = helper.run(function()
      local run = assert(loadstring(RUNNER))()
      return { info = run(TOOLS, "network_info"), nodes = run(TOOLS, "network_nodes"),
               acceptors = run(TOOLS, "network_acceptors"), cluster = run(TOOLS, "cluster_nodes"),
               ping = run(TOOLS, "network_ping", { name = "n1@localhost" }),
               connect = run(TOOLS, "network_connect", { name = "n1@localhost" }),
               disconnect = run(TOOLS, "network_disconnect", { name = "n1@localhost" }),
               registrar = run(TOOLS, "registrar_info") }
    end)
    local info = cjson.decode(r.info.text)
    assert.equal("disabled", info.Mode)
    for _, list in ipairs({ "Acceptors", "Nodes", "Routes", "ProxyRoutes", "EnabledSpawn", "EnabledApplicationStart" }) do
      assert.matches('"' .. list .. '": []', r.info.text, 1, true)
    end
    assert.equal("[]", r.nodes.text)
    assert.equal("[]", r.acceptors.text)
    assert.equal(1, #cjson.decode(r.cluster.text))
    assert.equal("ping n1@localhost failed: no connection", r.ping.text)
    assert.is_true(r.connect.isError)
    assert.equal("node n1@localhost not connected: no connection", r.disconnect.text)
    assert.matches("^registrar not available: ", r.registrar.text)
  end)

  it("report, connect, disconnect and ping nodes on the embedded registrar; cron jobs and their windows", function()
    local reg = "embedded:" .. helper.random_port()
    start("n1", reg)
    start("n2", reg)
    local xport = start("x", "none", nil, "--no-mcp")
    local r = helper.run(function()
      local out = {}
      local n1, n2, x, me = "n1@localhost", "n2@localhost", "x@localhost", "spec@localhost"
      assert(helper.wait_until(function() return #halo.net.info().Nodes == 2 end, 5000))

      -- reading
      out.info = decode(tool("network_info"))
      out.info_text = tool("network_info").text
      out.acceptors = decode(tool("network_acceptors"))
      out.nodes = decode(tool("network_nodes"))
      out.nodes_n1 = decode(tool("network_nodes", { name = "n1@" }))
      out.nodes_busy = tool("network_nodes", { min_messages_in = 1e12 })
      out.nodes_old = tool("network_nodes", { min_connection_uptime = 3600 })
      out.node_none = tool("network_node_info", { name = "nobody@localhost" })
      out.cluster = decode(tool("cluster_nodes"))
      out.reg = decode(tool("registrar_info"))
      out.resolve = decode(tool("registrar_resolve", { name = n1 }))
      out.resolve_none = tool("registrar_resolve", { name = "nobody@localhost" })
      out.proxy = tool("registrar_resolve_proxy", { name = n1 })
      out.app = tool("registrar_resolve_app", { name = "svc" })
      -- the same tools run on another node, inside its probe process
      out.remote_cluster = decode(probe(n1, "tool", "cluster_nodes"))
      out.remote_job = decode(probe(n1, "tool", "cron_job", { name = "mcp_test_job" }))
      out.node_n1 = decode(tool("network_node_info", { name = n1 })) -- its replies came in
      -- ping the mcp service of n1 (agent mode), from here and from a worker of n1's own mcp pool
      out.ping_n1 = tool("network_ping", { name = n1 })
      local rep = halo.call(halo.net.process_id("mcp", n1), { mcp = "call", tool = "network_ping",
                                                             params = '{"name":"n2@localhost"}' }, 10000)
      out.ping_via_n1 = cjson.decode(rep.result)
      out.ping_none = tool("network_ping", { name = "nobody@localhost" })
      out.ping_bad = tool("network_ping", { name = "nobody" })

      -- disconnect n2 (which keeps no route to us: it will not dial back) while it monitors a process here
      local anchor = halo.spawn(function() halo.receive() end)
      assert(probe(n2, "watch", anchor))
      assert(probe(n2, "route_del", me))
      local lost = halo.net.info().ConnectionsLost
      out.disc = tool("network_disconnect", { name = n2 })
      out.lost = halo.net.info().ConnectionsLost - lost
      out.disc_again = tool("network_disconnect", { name = n2 })
      out.node_n2_gone = tool("network_node_info", { name = n2 })
      out.nodes_after = decode(tool("network_nodes"))
      out.cluster_after = decode(tool("cluster_nodes"))
      -- and connect it again through its route
      local est = halo.net.info().ConnectionsEstablished
      out.conn = decode(tool("network_connect", { name = n2 }))
      out.established = halo.net.info().ConnectionsEstablished - est
      out.conn_again = decode(tool("network_connect", { name = n2 }))
      out.conn_none = tool("network_connect", { name = "nobody@localhost" })
      out.conn_self = tool("network_connect", { name = me })
      assert(helper.wait_until(function() return #probe(n2, "state").downs > 0 end, 3000))
      out.n2_state = probe(n2, "state")
      out.anchor = anchor
      halo.exit(anchor, "kill")

      -- x: no registrar on either side, so only an explicit route reaches it
      out.x_noroute = tool("network_connect", { name = x })
      out.route_name = tool("network_connect_route", { name = "y@localhost", host = "127.0.0.1", port = xport })
      out.route = decode(tool("network_connect_route", { name = x, host = "127.0.0.1", port = xport }))
      out.x_sees = probe(x, "state").info.Nodes
      out.x_reg = probe(x, "tool", "registrar_info") -- x has none
      out.ping_x = tool("network_ping", { name = x }) -- nor an mcp service
      out.route_tls = tool("network_connect_route", { name = x, host = "127.0.0.1", port = xport, tls = true })
      out.route_cookie = tool("network_connect_route", { name = x, host = "127.0.0.1", port = xport, cookie = "c" })
      out.route_zero = tool("network_connect_route", { name = x, host = "127.0.0.1", port = 0 })
      out.route_closed = tool("network_connect_route", { name = "y@localhost", host = "127.0.0.1", port = 1 })
      out.disc_x = tool("network_disconnect", { name = x })
      out.x_after = tool("network_node_info", { name = x })

      -- cron: a job every minute and a disabled one
      out.cron_empty = tool("cron_info").text
      out.sched_empty = tool("cron_schedule").text
      assert(halo.cron.add("mcp_test_job", "* * * * *", { send = anchor }))
      assert(halo.cron.add("off_job", "*/2 * * * *", { send = anchor }, { disabled = true }))
      out.cron = decode(tool("cron_info"))
      out.job = decode(tool("cron_job", { name = "mcp_test_job" }))
      out.job_none = tool("cron_job", { name = "nope" })
      out.sched_600 = decode(tool("cron_schedule", { duration_seconds = 600 }))
      out.sched_default = decode(tool("cron_schedule"))
      out.sched_zero = decode(tool("cron_schedule", { duration_seconds = 0 }))
      out.sched_neg = decode(tool("cron_schedule", { duration_seconds = -5 }))
      out.now = os.time()
      halo.cron.remove("mcp_test_job")
      halo.cron.remove("off_job")
      out.sched_gone = tool("cron_schedule", { duration_seconds = 600 }).text
      return out
    end, { name = "spec@localhost", cookie = "mcpnet", listen = "127.0.0.1:0", registrar = reg, timeout = 30000 })

    -- network_info / acceptors / nodes
    assert.equal("enabled", r.info.Mode)
    assert.equal("ESRD:R1", r.info.Registrar.Version)
    assert.same({ "n1@localhost", "n2@localhost" }, (function() table.sort(r.info.Nodes) return r.info.Nodes end)())
    assert.matches('"ProxyRoutes": []', r.info_text, 1, true)
    assert.is_true(r.info.ConnectionsEstablished >= 2)
    assert.equal(1, #r.acceptors)
    assert.matches("^127%.0%.0%.1:%d+$", r.acceptors[1].Interface)
    assert.is_false(r.acceptors[1].TLS)
    assert.same(r.info.Flags, r.acceptors[1].Flags)
    assert.equal(2, #r.info.Routes)
    for _, route in ipairs(r.info.Routes) do
      assert.matches("^n[12]@localhost$", route.Match)
      assert.is_true(route.UseResolver)
      assert.is_false(route.UseCustomCookie)
      assert.equal("HHS:R1", route.HandshakeVersion)
    end
    assert.same({ "n1@localhost", "n2@localhost" }, names(r.nodes))
    for _, p in ipairs(r.nodes) do
      for _, k in ipairs({ "Uptime", "ConnectionUptime", "PoolSize", "PoolDSN", "MessagesIn", "MessagesOut",
                           "BytesIn", "BytesOut", "Reconnections", "HandshakeVersion", "ProtoVersion" }) do
        assert.is_not_nil(p[k], k)
      end
    end
    assert.same({ "n1@localhost" }, names(r.nodes_n1))
    assert.equal("[]", r.nodes_busy.text)
    assert.equal("[]", r.nodes_old.text)
    assert.equal("n1@localhost", r.node_n1.Node)
    assert.is_true(r.node_n1.Connected)
    assert.is_true(r.node_n1.MessagesIn > 0)
    assert.same({ isError = true, text = "network_node_info: no connection" }, r.node_none)

    -- cluster_nodes and the registrar
    assert.same({ { name = "spec@localhost", status = "self" }, { name = "n1@localhost", status = "connected" },
                  { name = "n2@localhost", status = "connected" } }, r.cluster)
    assert.same({ name = "n1@localhost", status = "self" }, r.remote_cluster[1])
    assert.equal(3, #r.remote_cluster)
    assert.equal("* * * * *", r.remote_job.Spec)
    assert.equal("ESRD:R1", r.reg.Version)
    assert.is_false(r.reg.SupportRegisterApplication)
    assert.equal(1, #r.resolve)
    assert.equal("127.0.0.1", r.resolve[1].Host)
    assert.is_true(r.resolve[1].Port > 0)
    assert.is_false(r.resolve[1].TLS)
    assert.equal("HHS:R1", r.resolve[1].HandshakeVersion)
    assert.equal("HNP:R1", r.resolve[1].ProtoVersion)
    assert.same({ isError = true, text = "registrar_resolve: no route" }, r.resolve_none)
    assert.same({ isError = true, text = "registrar_resolve_proxy: not supported" }, r.proxy)
    assert.same({ isError = true, text = "registrar_resolve_app: not supported" }, r.app)
    assert.is_true(r.x_reg.isError)
    assert.matches("^registrar not available: no registrar", r.x_reg.text)

    -- ping
    assert.matches("^ping n1@localhost: rtt %d+%.%d%dms$", r.ping_n1.text)
    assert.is_nil(r.ping_via_n1.isError)
    assert.matches("^ping n2@localhost: rtt %d+%.%d%dms$", r.ping_via_n1.content[1].text)
    assert.same({ isError = true, text = "ping x@localhost failed: unknown process" }, r.ping_x)
    assert.same({ isError = true, text = "ping nobody@localhost failed: no connection" }, r.ping_none)
    assert.matches("^ping nobody failed: incorrect value", r.ping_bad.text)

    -- disconnect: both sides lose the session, n2's monitor ends with no connection; connect comes back
    assert.same({ text = "disconnected from n2@localhost" }, r.disc)
    assert.equal(1, r.lost)
    assert.same({ isError = true, text = "node n2@localhost not connected: no connection" }, r.disc_again)
    assert.same({ isError = true, text = "network_node_info: no connection" }, r.node_n2_gone)
    assert.same({ "n1@localhost" }, names(r.nodes_after))
    assert.same({ name = "n2@localhost", status = "discovered" }, r.cluster_after[3])
    assert.equal("n2@localhost", r.conn.Node)
    assert.is_true(r.conn.Connected)
    assert.is_true(r.conn.Dialed)
    assert.equal(1, r.established)
    assert.equal("n2@localhost", r.conn_again.Node)
    assert.same({ isError = true, text = "network_connect to nobody@localhost: no route" }, r.conn_none)
    assert.matches("^network_connect to spec@localhost: not allowed", r.conn_self.text)
    assert.same({ { pid = r.anchor, reason = "no connection" } }, r.n2_state.downs)
    assert.is_true(r.n2_state.info.ConnectionsLost >= 1)

    -- x through an explicit route
    assert.same({ isError = true, text = "network_connect to x@localhost: no route" }, r.x_noroute)
    assert.equal("x@localhost", r.route.Node)
    assert.same({ "127.0.0.1:" .. xport }, { r.route.PoolDSN[1] })
    assert.same({ "spec@localhost" }, r.x_sees)
    local at = ("to x@localhost at 127.0.0.1:%d: "):format(xport)
    assert.equal("network_connect_route " .. at .. "not supported: halo's links have no TLS", r.route_tls.text)
    assert.matches("^network_connect_route " .. at:gsub("%.", "%%.") .. "not supported: a route's own cookie",
      r.route_cookie.text)
    assert.equal("network_connect_route to x@localhost at 127.0.0.1:0: incorrect value or argument", r.route_zero.text)
    assert.is_true(r.route_name.isError)
    assert.equal(("network_connect_route to y@localhost at 127.0.0.1:%d: no connection: answered as x@localhost, " ..
      "not y@localhost"):format(xport), r.route_name.text)
    assert.matches("^network_connect_route to y@localhost at 127%.0%.0%.1:1: ", r.route_closed.text)
    assert.same({ text = "disconnected from x@localhost" }, r.disc_x)
    assert.same({ isError = true, text = "network_node_info: no connection" }, r.x_after)

    -- cron
    assert.matches('"Jobs": []', r.cron_empty, 1, true)
    assert.matches('"Spool": []', r.cron_empty, 1, true)
    assert.equal("[]", r.sched_empty)
    assert.equal(2, #r.cron.Jobs)
    assert.same({ "mcp_test_job" }, r.cron.Spool)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:00[%+%-Z]", r.cron.Next)
    assert.equal("mcp_test_job", r.job.Name)
    assert.equal("Local", r.job.Location)
    assert.is_false(r.job.Disabled)
    assert.equal("0001-01-01T00:00:00Z", r.job.LastRun)
    assert.equal("", r.job.LastErr)
    assert.same({ Enable = false, Name = "", Tag = "" }, r.job.Fallback)
    assert.equal(r.cron.Next, r.job.Next)
    assert.same({ isError = true, text = "cron_job: unknown: cron job nope" }, r.job_none)
    -- a window of N seconds holds the N/60 minute starts from now (one more when it began on a minute)
    local function check_window(s, minutes)
      assert.is_true(#s == minutes or #s == minutes + 1, "runs in window: " .. #s)
      for i, e in ipairs(s) do
        assert.same({ "mcp_test_job" }, e.Jobs) -- never the disabled job
        if i > 1 then
          local m1, m2 = s[i - 1].Time:match("T%d%d:(%d%d)"), e.Time:match("T%d%d:(%d%d)")
          assert.equal((tonumber(m1) + 1) % 60, tonumber(m2))
        end
      end
    end
    check_window(r.sched_600, 10)
    check_window(r.sched_default, 60)
    check_window(r.sched_zero, 60)
    check_window(r.sched_neg, 60)
    assert.equal("[]", r.sched_gone)
  end)
end)

describe("the MCP registrar tools on etcd", function()
  local client_port, peer_port
  setup(function()
    dir = helper.script_dir("node.lua", SCRIPT)
    client_port, peer_port = helper.free_ports(2)
    os.execute(("unset LD_PRELOAD; etcd --name mcp --data-dir %s/etcd.data --listen-client-urls http://127.0.0.1:%d " ..
      "--advertise-client-urls http://127.0.0.1:%d --listen-peer-urls http://127.0.0.1:%d " ..
      "--initial-advertise-peer-urls http://127.0.0.1:%d --initial-cluster mcp=http://127.0.0.1:%d " ..
      "--heartbeat-interval 50 --election-timeout 300 --logger zap --log-level warn >> %s/etcd.log 2>&1 & " ..
      "echo $! > %s/etcd.pid"):format(dir, client_port, client_port, peer_port, peer_port, peer_port, dir, dir))
    started[#started + 1] = io.open(dir .. "/etcd.pid"):read("*n")
    helper.run(function()
      assert(helper.wait_until(function()
        local res = http.request({ host = "127.0.0.1", port = client_port, path = "/health", timeout = 500 })
        return res and res.status == 200 and res.body:find("true", 1, true)
      end, 15000, 50), "etcd did not start")
    end, { timeout = 20000 })
  end)
  teardown(function()
    for _, pid in ipairs(started) do helper.kill(pid) end
    started = {}
    os.execute("rm -rf " .. dir)
  end)

  it("read its info, node and application routes; proxy routes are not supported", function()
    local etcd = ("etcd://127.0.0.1:%d"):format(client_port)
    start("e1", etcd, "svc", "--cluster mcp")
    local r = helper.run(function()
      local out = {}
      assert(helper.wait_until(function()
        local p = halo.net.node("e1@localhost")
        return p and p.Connected
      end, 5000))
      assert(helper.wait_until(function()
        return halo.net.registrar_etcd.resolve_application("svc", true) ~= nil
      end, 5000))
      out.reg = decode(tool("registrar_info"))
      out.net_reg = decode(tool("network_info")).Registrar
      out.resolve = decode(tool("registrar_resolve", { name = "e1@localhost" }))
      out.resolve_none = tool("registrar_resolve", { name = "nobody@localhost" })
      out.proxy = tool("registrar_resolve_proxy", { name = "e1@localhost" })
      out.app = decode(tool("registrar_resolve_app", { name = "svc" }))
      out.app_again = decode(tool("registrar_resolve_app", { name = "svc" }))
      out.app_none = tool("registrar_resolve_app", { name = "nope" })
      out.cluster = decode(tool("cluster_nodes"))
      return out
    end, { name = "spec@localhost", cookie = "mcpnet", listen = "127.0.0.1:0", registrar = etcd, cluster = "mcp",
           timeout = 15000 })
    assert.equal("ETCD Client:R1", r.reg.Version)
    assert.equal("127.0.0.1:" .. client_port, r.reg.Server)
    assert.is_true(r.reg.SupportRegisterApplication)
    assert.is_false(r.reg.SupportRegisterProxy)
    assert.is_true(r.reg.Registered)
    assert.equal("ETCD Client:R1", r.net_reg.Version)
    assert.equal(1, #r.resolve)
    assert.equal("127.0.0.1", r.resolve[1].Host)
    assert.same({ isError = true, text = "registrar_resolve: no route" }, r.resolve_none)
    assert.same({ isError = true, text = "registrar_resolve_proxy: not supported" }, r.proxy)
    assert.same({ { Node = "e1@localhost", Name = "svc", Weight = 2, Mode = r.app[1].Mode, State = "running",
                    Tags = {} } }, r.app)
    assert.is_string(r.app[1].Mode)
    assert.same(r.app, r.app_again)
    assert.same({ isError = true, text = "registrar_resolve_app: no route" }, r.app_none)
    assert.same({ { name = "spec@localhost", status = "self" }, { name = "e1@localhost", status = "connected" } },
      r.cluster)
  end)
end)
