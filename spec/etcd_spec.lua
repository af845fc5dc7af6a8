-- The etcd registrar against a real etcd (Debian's etcd-server) on free
-- loopback ports, with three background halo nodes (n1; n2 and n3 run the
-- application "svc" with weights 1 and 3) and the spec's own node
-- (spec@localhost), all in cluster "spec". Also the HTTP binding the
-- registrar is built on. Everything started here is killed in teardown.
local halo = require("halo")
local core = require("halo.core")
local http = require("halo.http")
local helper = require("helper")
local cjson = require("cjson")
local bit = require("bit")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local CLUSTER = "spec"
local PREFIX = "services/ergo/cluster/spec/"
local EVENT = PREFIX .. "routes/"

-- Each node runs a probe; n2 and n3 run "svc" with the weight given.
local SCRIPT = [[
local halo = require("halo")
local etcd = halo.net.registrar_etcd
local weight = tonumber(arg[2])
if weight then
  assert(halo.application.load({ name = "svc", weight = weight, group = { { behavior = function() halo.receive() end } } }))
  assert(halo.application.start("svc"))
end
halo.spawn({
  handle_call = function(_, _, _, req)
    if req == "state" then
      return { nodes = halo.net.nodes(), connected = halo.net.info().Nodes, registrar = halo.net.registrar() }
    elseif req[1] == "config" then
      local v, err = etcd.config(req[2])
      return { value = v, err = err }
    elseif req[1] == "cycle" then -- an application through every state
      assert(halo.application.load({ name = req[2], weight = 2, tags = { "t" },
                                     group = { { behavior = function() halo.receive() end } } }))
      assert(halo.application.start(req[2]))
      assert(halo.application.stop(req[2]))
      assert(halo.application.unload(req[2]))
      return true
    end
  end,
}, nil, { name = "probe" })
local f = io.open(arg[1], "w"); f:write("up\n"); f:close()
halo.receive()
]]

local dir, client_port, peer_port, etcd_pid
local started, pids = {}, {}

local function sh_quiet(cmd) os.execute("unset LD_PRELOAD; " .. cmd) end

local free_ports = helper.free_ports

local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local st = f:read("*a"):match("^%d+ %b() (%a)")
  f:close()
  return st == "Z"
end

local kill = helper.kill

local function start_etcd()
  sh_quiet(("etcd --name spec --data-dir %s/etcd.data --listen-client-urls http://127.0.0.1:%d " ..
    "--advertise-client-urls http://127.0.0.1:%d --listen-peer-urls http://127.0.0.1:%d " ..
    "--initial-advertise-peer-urls http://127.0.0.1:%d --initial-cluster spec=http://127.0.0.1:%d " ..
    "--heartbeat-interval 50 --election-timeout 300 --logger zap --log-level warn " ..
    ">> %s/etcd.log 2>&1 & echo $! > %s/etcd.pid")
    :format(dir, client_port, client_port, peer_port, peer_port, peer_port, dir, dir))
  etcd_pid = io.open(dir .. "/etcd.pid"):read("*n")
  started[#started + 1] = etcd_pid
end

local function stop_etcd()
  kill(etcd_pid)
  sh_quiet("rm -rf " .. dir .. "/etcd.data")
end

local function start(name, tag, weight)
  local out = ("%s/%s.out"):format(dir, tag)
  -- --no-mcp: the application routes the specs list are their own (no mcp in agent mode)
  os.execute(("%s run --name %s --cookie etcdspec --listen 127.0.0.1:0 --registrar etcd://127.0.0.1:%d " ..
    "--cluster %s --no-mcp --log-level info %s/probe.lua %s %s > %s/%s.log 2>&1 & echo $! > %s/%s.pid")
    :format(halo_bin, name, client_port, CLUSTER, dir, out, weight or "", dir, tag, dir, tag))
  local pid = io.open(("%s/%s.pid"):format(dir, tag)):read("*n")
  started[#started + 1] = pid
  for _ = 1, 300 do -- (blocking: it runs outside any node)
    local f = io.open(out)
    if f then f:close(); return pid end
    os.execute("sleep 0.02")
  end
  error(name .. " did not start: " .. (io.open(("%s/%s.log"):format(dir, tag)):read("*a")))
end

-- base64 for the keys and values of etcd's JSON API.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return (s:gsub("..?.?", function(c)
    local a, b, d = c:byte(1, 3)
    local v = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), d or 0)
    local out = ""
    for i = 0, 3 do
      local k = bit.band(bit.rshift(v, 18 - 6 * i), 63) + 1
      out = out .. ((i == 2 and not b or i == 3 and not d) and "=" or B64:sub(k, k))
    end
    return out
  end))
end
local function unb64(s)
  local v, bits, out = 0, 0, {}
  for ch in s:gmatch("[^=]") do
    v = bit.bor(bit.lshift(bit.band(v, 0xffff), 6), B64:find(ch, 1, true) - 1)
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char(bit.band(bit.rshift(v, bits), 255))
    end
  end
  return table.concat(out)
end

-- etcd through halo's HTTP client (from a process).
local function etcd(path, req)
  local res, err = http.request({ host = "127.0.0.1", port = client_port, path = path, body = cjson.encode(req),
                                       content_type = "application/json", timeout = 3000 })
  if not res then return nil, err end
  return cjson.decode(res.body), res.status
end
local function etcd_put(key, value) assert(etcd("/v3/kv/put", { key = b64(key), value = b64(value) })) end
local function etcd_del(key) assert(etcd("/v3/kv/deleterange", { key = b64(key) })) end
local function etcd_keys(prefix)
  local r = etcd("/v3/kv/range", { key = b64(prefix), range_end = b64(prefix:sub(1, -2) .. "0"), keys_only = true })
  local keys = {}
  for _, kv in ipairs(r and r.kvs or {}) do keys[#keys + 1] = unb64(kv.key):sub(#prefix + 1) end
  table.sort(keys)
  return keys
end

local function probe(node, req) return halo.call(halo.net.process_id("probe", node), req or "state", 2000) end

local function sorted(t)
  t = { unpack(t) }
  table.sort(t)
  return t
end

-- In the spec's node: the next registrar event that pred accepts (others are skipped).
local function await_event(pred, timeout)
  local deadline = halo.now() + (timeout or 3000)
  while true do
    local left = deadline - halo.now()
    assert(left > 0, "no such registrar event")
    local _, msg = halo.receive(left)
    assert(msg, "no such registrar event")
    if type(msg) == "table" and msg.event == EVENT and pred(msg.message) then return msg.message end
  end
end

local function node_opts(timeout)
  return { name = "spec@localhost", cookie = "etcdspec", listen = "127.0.0.1:0", timeout = timeout or 10000,
           registrar = "etcd://127.0.0.1:" .. client_port, cluster = CLUSTER }
end

describe("the etcd registrar", function()
  setup(function()
    dir = helper.script_dir("probe.lua", SCRIPT)
    client_port, peer_port = free_ports(2)
    local ok, err = pcall(function()
      start_etcd()
      helper.run(function() -- etcd is up once it answers
        assert(helper.wait_until(function()
          local res = http.request({ host = "127.0.0.1", port = client_port, path = "/health", timeout = 500 })
          return res and res.status == 200 and res.body:find("true", 1, true)
        end, 15000, 50), "etcd did not start: " .. io.open(dir .. "/etcd.log"):read("*a"))
      end, { timeout = 20000 })
      pids.n1 = start("n1@localhost", "n1")
      pids.n2 = start("n2@localhost", "n2", 1)
      pids.n3 = start("n3@localhost", "n3", 3)
    end)
    if not ok then -- teardown may not run after a failed setup
      for _, pid in ipairs(started) do kill(pid) end
      started = {}
      error(err, 0)
    end
  end)
  teardown(function()
    for _, pid in ipairs(started) do kill(pid) end
    sh_quiet("rm -rf " .. dir)
  end)

  it("the HTTP binding waits, sends messages, streams, cancels and stops cleanly with requests in flight", function()
    local r = helper.run(function()
      local out = {}
      local host, port = "127.0.0.1", client_port
      out.refused = { http.request({ host = host, port = 1, path = "/", timeout = 1000 }) }
      local res = http.request({ host = host, port = port, path = "/v3/kv/put", content_type = "application/json",
                                      body = cjson.encode({ key = b64("http/a"), value = b64("1") }) })
      out.put_status = res.status
      -- a stream (a watch) and a request whose answer comes as a message
      local watch = assert(core.http.start({ host = host, port = port, path = "/v3/watch", stream = true,
                                             body = cjson.encode({ create_request = { key = b64("http/a") } }) }))
      local _, created = halo.receive(2000)
      out.created = created
      local put = assert(core.http.start({ host = host, port = port, path = "/v3/kv/put",
                                           body = cjson.encode({ key = b64("http/a"), value = b64("2") }) }))
      local got = {}
      while not (got.done and got.event) do
        local _, m = halo.receive(2000)
        assert(m, "no message")
        if m.ref == put then got.done = m end
        if m.ref == watch and m.kind == "http_data" then got.event = cjson.decode(m.data) end
      end
      out.done, out.event = got.done, got.event
      out.cancel = { core.http.cancel(watch) }
      out.cancel_again = { core.http.cancel(watch) }
      -- a process's requests end with it
      local pid = halo.spawn(function()
        core.http.start({ host = host, port = port, path = "/v3/watch", stream = true,
                          body = cjson.encode({ create_request = { key = b64("http/b") } }) })
      end, nil, { monitor = true })
      helper.await_down(pid)
      -- left in flight at the stop: a stream and a detached put that must still reach etcd
      assert(core.http.start({ host = host, port = port, path = "/v3/watch", stream = true,
                               body = cjson.encode({ create_request = { key = b64("http/a") } }) }))
      assert(core.http.start({ host = host, port = port, path = "/v3/kv/put", detach = true,
                               body = cjson.encode({ key = b64("http/a"), value = b64("3") }) }))
      out.in_flight = core.http.stats().requests
      return out
    end)
    assert.equal("ECONNREFUSED", r.refused[3])
    assert.equal(200, r.put_status)
    assert.equal("http_data", r.created.kind)
    assert.equal(200, r.created.status)
    assert.matches('"created":true', r.created.data, 1, true)
    assert.equal("http_done", r.done.kind)
    assert.equal(200, r.done.status)
    assert.equal(b64("2"), r.event.result.events[1].kv.value)
    assert.same({ true }, r.cancel)
    assert.equal("ETARGETUNKNOWN", r.cancel_again[3])
    assert.equal(2, r.in_flight) -- not the stream of the process that ended
    -- the detached put went out while the node stopped
    local v = helper.run(function()
      local res = assert(etcd("/v3/kv/range", { key = b64("http/a") }))
      return unb64(res.kvs[1].value)
    end)
    assert.equal("3", v)
  end)

  it("registers every node and makes a full mesh", function()
    local r = helper.run(function()
      local out = {}
      assert(helper.wait_until(function() return #halo.net.info().Nodes == 3 end, 5000))
      out.mine = sorted(halo.net.nodes())
      out.reg = halo.net.registrar()
      assert(helper.wait_until(function()
        local p = probe("n2@localhost")
        return p and #p.connected == 3
      end, 5000))
      out.n2 = probe("n2@localhost")
      out.keys = etcd_keys(PREFIX .. "routes/nodes/")
      out.apps = etcd_keys(PREFIX .. "routes/applications/")
      local route = etcd("/v3/kv/range", { key = b64(PREFIX .. "routes/nodes/n1@localhost") })
      out.route = cjson.decode(unb64(route.kvs[1].value))
      local app = etcd("/v3/kv/range", { key = b64(PREFIX .. "routes/applications/svc/n3@localhost") })
      out.app = cjson.decode(unb64(app.kvs[1].value))
      out.resolved = halo.net.resolve("n1@localhost")
      out.unknown = { halo.net.registrar_etcd.resolve("nobody@localhost") }
      return out
    end, node_opts())
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost" }, r.mine)
    assert.same({ Server = "127.0.0.1:" .. client_port, EmbeddedServer = false, SupportConfig = true,
                  SupportEvent = true, SupportRegisterApplication = true, SupportRegisterProxy = false,
                  Version = "ETCD Client:R1", Registered = true, Error = "", Cluster = CLUSTER, Event = EVENT,
                  Lease = r.reg.Lease }, r.reg)
    assert.matches("^%d+$", r.reg.Lease)
    assert.same({ "n1@localhost", "n3@localhost", "spec@localhost" }, sorted(r.n2.nodes))
    assert.same({ "n1@localhost", "n3@localhost", "spec@localhost" }, sorted(r.n2.connected)) -- full mesh
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost", "spec@localhost" }, r.keys)
    assert.same({ "svc/n2@localhost", "svc/n3@localhost" }, r.apps)
    assert.equal("127.0.0.1", r.route[1].Host)
    assert.equal(r.resolved.Port, r.route[1].Port)
    assert.same({ Node = "n3@localhost", Name = "svc", Weight = 3, Mode = "temporary", State = "running", Tags = {} },
      r.app)
    assert.equal("ENOROUTE", r.unknown[3])
  end)

  it("refuses a second node of the same name: resource is taken, exit status 1", function()
    local f = io.popen(("%s run --name n2@localhost --cookie etcdspec --listen 127.0.0.1:0 " ..
      "--registrar etcd://127.0.0.1:%d --cluster %s -e 'require(\"halo\").shutdown(0)' 2>&1; echo \"exit=$?\"")
      :format(halo_bin, client_port, CLUSTER))
    local out = f:read("*a")
    f:close()
    assert.equal("1", out:match("exit=(%d+)%s*$"), out)
    assert.matches("registrar refused n2@localhost: resource is taken", out, 1, true)
    -- the first n2 is still registered
    local keys = helper.run(function() return etcd_keys(PREFIX .. "routes/nodes/") end)
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost" }, keys)
  end)

  it("resolves an application by smooth weighted round-robin and publishes application events", function()
    local r = helper.run(function()
      local etcd_reg = halo.net.registrar_etcd
      assert(halo.event.monitor(etcd_reg.event()))
      local out = { order = {} }
      for i = 1, 8 do
        local routes = assert(etcd_reg.resolve_application("svc"))
        out.order[i] = routes[1].Node
        out.len = #routes
      end
      out.first = etcd_reg.resolve_application("svc")
      out.none = { etcd_reg.resolve_application("nothing") }
      assert(probe("n1@localhost", { "cycle", "tmp" }))
      out.events = {}
      for _, kind in ipairs({ "application_loaded", "application_started", "application_stopping",
                              "application_stopped", "application_unloaded" }) do
        out.events[#out.events + 1] = await_event(function(m) return m.name == "tmp" and m.kind == kind end)
      end
      out.after = { etcd_reg.resolve_application("tmp") }
      return out
    end, node_opts())
    local b, a = "n3@localhost", "n2@localhost" -- weights 3 and 1
    assert.same({ b, a, b, b, b, a, b, b }, r.order)
    assert.equal(2, r.len)
    assert.equal(b, r.first[1].Node) -- the ninth pick starts the cycle again
    assert.equal(3, r.first[1].Weight)
    assert.equal("ENOROUTE", r.none[3])
    assert.same({ kind = "application_loaded", name = "tmp", node = "n1@localhost", weight = 2 }, r.events[1])
    assert.same({ kind = "application_started", name = "tmp", node = "n1@localhost", weight = 2, mode = "temporary" },
      r.events[2])
    assert.same({ kind = "application_stopping", name = "tmp", node = "n1@localhost" }, r.events[3])
    assert.same({ kind = "application_stopped", name = "tmp", node = "n1@localhost" }, r.events[4])
    assert.same({ kind = "application_unloaded", name = "tmp", node = "n1@localhost" }, r.events[5])
    assert.equal("ENOROUTE", r.after[3])
  end)

  it("reads typed config through the hierarchy and publishes only effective changes", function()
    local r = helper.run(function()
      local reg = halo.net.registrar_etcd
      assert(halo.event.monitor(reg.event()))
      local out = {}
      local function next_update() return await_event(function(m) return m.kind == "config_update" end) end
      etcd_put(PREFIX .. "config/*/pool", "int:8") -- cluster-wide
      out.u1 = next_update()
      out.v1 = reg.config("pool")
      assert(helper.wait_until(function() return probe("n1@localhost", { "config", "pool" }).value == 8 end))
      etcd_put(PREFIX .. "config/spec@localhost/pool", "int:16") -- cluster, this node
      out.u2 = next_update()
      etcd_put("services/ergo/config/global/pool", "int:1") -- weaker: no update
      etcd_put("services/ergo/config/global/debug", "bool:true")
      out.u3 = next_update()
      etcd_put("services/ergo/config/spec/spec@localhost/pool", "float:2.5") -- cross-cluster, this node
      out.u4 = next_update()
      etcd_del("services/ergo/config/spec/spec@localhost/pool")
      out.u5 = next_update()
      etcd_put(PREFIX .. "config/*/name", "int:abc")
      out.u6 = next_update()
      out.n1 = probe("n1@localhost", { "config", "pool" }).value -- n1 keeps the cluster-wide value
      out.all = reg.config()
      out.missing = { reg.config("missing") }
      return out
    end, node_opts())
    assert.same({ kind = "config_update", item = "pool", value = 8 }, r.u1)
    assert.equal(8, r.v1)
    assert.same({ kind = "config_update", item = "pool", value = 16 }, r.u2)
    assert.same({ kind = "config_update", item = "debug", value = true }, r.u3)
    assert.same({ kind = "config_update", item = "pool", value = 2.5 }, r.u4)
    assert.same({ kind = "config_update", item = "pool", value = 16 }, r.u5)
    assert.same({ kind = "config_update", item = "name", value = "int:abc" }, r.u6)
    assert.equal(8, r.n1)
    assert.same({ pool = 16, debug = true, name = "int:abc" }, r.all)
    assert.equal("EUNKNOWN", r.missing[3])
  end)

  it("registers every node again after etcd restarts empty", function()
    local r = helper.run(function()
      local reg = halo.net.registrar_etcd
      assert(halo.event.monitor(reg.event()))
      local out = { before = {} }
      for _, n in ipairs({ "n1", "n2", "n3" }) do out.before[n] = probe(n .. "@localhost").registrar.Lease end
      out.my_before = reg.info().Lease
      stop_etcd()
      out.disconnected = await_event(function(m) return m.kind == "disconnected" end)
      start_etcd()
      out.connected = await_event(function(m) return m.kind == "connected" end, 15000)
      local t0 = halo.now()
      assert(helper.wait_until(function()
        for _, n in ipairs({ "n1", "n2", "n3" }) do
          local p = probe(n .. "@localhost")
          if not (p and p.registrar.Registered and p.registrar.Lease ~= out.before[n]) then return false end
        end
        return #etcd_keys(PREFIX .. "routes/nodes/") == 4
      end, 15000, 50))
      out.wait_ms = halo.now() - t0
      out.keys = etcd_keys(PREFIX .. "routes/nodes/")
      out.apps = etcd_keys(PREFIX .. "routes/applications/")
      out.nodes = sorted(halo.net.nodes())
      out.my_after = reg.info()
      out.n2 = probe("n2@localhost")
      return out
    end, node_opts(30000))
    assert.equal("disconnected", r.disconnected.kind)
    assert.equal("127.0.0.1:" .. client_port, r.connected.server)
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost", "spec@localhost" }, r.keys)
    assert.same({ "svc/n2@localhost", "svc/n3@localhost" }, r.apps)
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost" }, r.nodes) -- nobody was dropped
    assert.is_true(r.my_after.Registered)
    assert.are_not.equal(r.my_before, r.my_after.Lease)
    assert.same({ "n1@localhost", "n3@localhost", "spec@localhost" }, sorted(r.n2.nodes))
  end)

  it("drops a node that dies once its lease expires", function()
    local r = helper.run(function()
      local reg = halo.net.registrar_etcd
      assert(halo.event.monitor(reg.event()))
      local out = {}
      kill(pids.n1)
      out.left = await_event(function(m) return m.kind == "node_left" end, 15000)
      out.nodes = sorted(halo.net.nodes())
      assert(helper.wait_until(function()
        local p = probe("n2@localhost")
        return p and #p.nodes == 2
      end, 3000))
      out.n2 = probe("n2@localhost")
      out.keys = etcd_keys(PREFIX .. "routes/nodes/")
      out.resolve = { halo.net.resolve("n1@localhost") }
      return out
    end, node_opts(20000))
    assert.same({ kind = "node_left", name = "n1@localhost" }, r.left)
    assert.same({ "n2@localhost", "n3@localhost" }, r.nodes)
    assert.same({ "n3@localhost", "spec@localhost" }, sorted(r.n2.nodes))
    assert.same({ "n2@localhost", "n3@localhost", "spec@localhost" }, r.keys)
    assert.equal("ENOROUTE", r.resolve[3])
  end)
end)
