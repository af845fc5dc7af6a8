-- A cluster of four real halo processes (three in the background, each on
-- its own loopback address, and the spec's own node) that find each other
-- through the embedded registrar (on a port of its own, drawn per run) and use each other:
-- remote spawn and application start behind flags and allow-lists, a
-- remote event, a killed node noticed, a restarted one back in the mesh.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local REG_PORT = helper.random_port()
local REG = "embedded:" .. REG_PORT

local SCRIPT = [[
local halo = require("halo")
local me = halo.node_info().Name
halo.remote.enable_spawn("echo", { name = "echo", handle_call = function(_, _, _, req) return { req = req, node = me } end })
halo.remote.enable_spawn("only_x", { handle_call = function() return "x" end }, "x@localhost")
halo.application.load({ name = "shop", group = { { behavior = { handle_message = function() end } } } })
halo.remote.enable_application_start("shop")
halo.spawn({
  init = function() assert(halo.event.register("ticks")) end,
  handle_message = function(_, _, m) halo.event.publish("ticks", m) end,
}, nil, { name = "ticker" })
halo.spawn({
  handle_call = function(_, _, _, req)
    if req == "victim" then return halo.spawn({ handle_message = function() return "done" end }) end
    local ev = halo.event.info("ticks")
    return { app = halo.application.info("shop").State, app_mode = halo.application.info("shop").Mode, remote_sent = ev and ev.MessagesRemoteSent,
             subscribers = ev and ev.Subscribers,
             events_remote = halo.node_info().EventsRemoteSent, info = halo.net.info() }
  end,
}, nil, { name = "probe" })
local f = io.open(arg[1], "w"); f:write("up\n"); f:close()
halo.receive()
]]

local dir
local pids = {}

local function start(name, addr)
  local out = ("%s/%s.out"):format(dir, name)
  os.remove(out)
  local pid = helper.spawn_os(("%s run --name %s --cookie cl --listen %s:0 --registrar %s --log-level info %s/node.lua %s")
    :format(halo_bin, name, addr, REG, dir, out), ("%s/%s.log"):format(dir, name))
  pids[#pids + 1] = pid
  assert(helper.wait_file(out), name .. " did not start")
  return pid
end

local kill = helper.kill

describe("a cluster of four nodes", function()
  setup(function()
    dir = helper.script_dir("node.lua", SCRIPT)
  end)
  teardown(function()
    for _, pid in ipairs(pids) do kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("spawns, starts applications, subscribes to events and heals across nodes", function()
    start("n1@localhost", "127.0.0.2")
    start("n2@localhost", "127.0.0.3")
    local n3 = start("n3@localhost", "127.0.0.4")
    local r = helper.run(function()
      local out = {}
      local function probe(node, req) return halo.call(halo.net.process_id("probe", node), req or "?", 3000) end
      assert(helper.wait_until(function() return #halo.net.info().Nodes == 3 end, 5000))
      out.resolved = halo.net.resolve("n2@localhost")
      out.cluster = halo.net.cluster()
      out.info = halo.net.info()
      -- remote spawn: enabled for any node, enabled for another node only, never enabled, this node
      local pid, err = halo.remote.spawn("n2@localhost", "echo", nil, { name = "spawned" })
      out.spawned = pid or err
      out.echo = halo.call(pid, "hi", 2000)
      out.by_name = halo.call(halo.net.process_id("spawned", "n2@localhost"), "by name", 2000)
      out.only_x = { halo.remote.spawn("n2@localhost", "only_x") }
      out.unknown = { halo.remote.spawn("n2@localhost", "nope") }
      out.self = { halo.remote.spawn("a@localhost", "echo") }
      -- malformed requests are answered, and the service keeps serving
      local service = halo.net.process_id("halo_remote", "n2@localhost")
      out.bogus = {
        halo.call(service, { op = "event_subscribe", event = "ticks", how = "bogus" }, 2000),
        halo.call(service, { op = "spawn", name = "echo", register = 5 }, 2000),
        halo.call(service, "not a table", 2000),
      }
      out.still = { halo.remote.spawn("n2@localhost", "echo") }
      -- remote application start
      out.bad_mode = { halo.remote.start_application("n3@localhost", "shop", "forever") }
      out.app = { halo.remote.start_application("n3@localhost", "shop", "permanent") }
      out.app_state, out.app_mode = probe("n3@localhost").app, probe("n3@localhost").app_mode
      out.app_unknown = { halo.remote.start_application("n3@localhost", "other") }
      -- a remote event: two publications reach this node, counted as remote sends there
      out.buffered = halo.event.monitor("ticks", "n1@localhost")
      local ticker = halo.net.process_id("ticker", "n1@localhost")
      halo.send(ticker, "t1")
      halo.send(ticker, "t2")
      out.got = {}
      for _ = 1, 2 do
        local _, m = halo.receive(2000)
        out.got[#out.got + 1] = m
      end
      out.n1 = probe("n1@localhost")
      -- a subscriber that ends: its subscription there goes with it
      local me, sub = halo.self(), nil
      sub = halo.spawn(function()
        assert(halo.event.monitor("ticks", "n1@localhost"))
        halo.send(me, "subscribed")
        halo.receive() -- until told to end
      end)
      assert(select(2, halo.receive(3000)) == "subscribed")
      out.subs_two = probe("n1@localhost").subscribers
      halo.send(sub, "end")
      assert(helper.wait_until(function() return probe("n1@localhost").subscribers == 1 end, 3000))
      -- n3 is killed: its processes' monitors end with "no connection", it leaves the lists
      local victim = probe("n3@localhost", "victim")
      assert(halo.monitor(victim))
      kill(n3)
      local _, down = halo.receive(5000)
      out.down = down
      assert(helper.wait_until(function() return #halo.net.nodes() == 2 and #halo.net.info().Nodes == 2 end, 5000))
      out.after_kill = { nodes = halo.net.nodes(), connected = halo.net.info().Nodes }
      -- ... and comes back on the same address: in the mesh again, the replaced links counted
      start("n3@localhost", "127.0.0.4")
      assert(helper.wait_until(function()
        local p = halo.net.node("n3@localhost")
        return p and p.PoolLen == 3
      end, 8000))
      out.back = probe("n3@localhost")
      out.peer = halo.net.node("n3@localhost")
      return out
    end, { name = "a@localhost", cookie = "cl", listen = "127.0.0.1:0", registrar = REG, timeout = 30000 })

    assert.equal("127.0.0.3", r.resolved.Host)
    assert.same({ Self = "a@localhost", Connected = { "n1@localhost", "n2@localhost", "n3@localhost" },
                  Discovered = { "n1@localhost", "n2@localhost", "n3@localhost" } }, r.cluster)
    assert.equal("ESRD:R1", r.info.Registrar.Version)
    assert.is_false(r.info.Registrar.EmbeddedServer) -- n1, the first, serves
    assert.equal("127.0.0.1:" .. REG_PORT, r.info.Acceptors[1].RegistrarServer)
    assert.is_true(r.info.Flags.EnableRemoteSpawn)
    assert.same({}, r.info.EnabledSpawn)
    local n1info = r.n1.info
    assert.same({ { Name = "echo", Behavior = "echo", Nodes = {} }, { Name = "only_x", Behavior = "table", Nodes = { "x@localhost" } } },
      n1info.EnabledSpawn)
    assert.same({ { Name = "shop", Nodes = {} } }, n1info.EnabledApplicationStart)
    assert.matches("^<%x+%.0%.%d+>$", r.spawned)
    assert.same({ req = "hi", node = "n2@localhost" }, r.echo)
    assert.same({ req = "by name", node = "n2@localhost" }, r.by_name)
    assert.equal("ENOTALLOWED", r.only_x[3])
    assert.equal("ENAMEUNKNOWN", r.unknown[3])
    assert.equal("ENOTALLOWED", r.self[3])
    for _, b in ipairs(r.bogus) do assert.equal("EINCORRECT", b[3]) end
    assert.matches("^<%x+%.0%.%d+>$", r.still[1])
    assert.same({ true }, r.app)
    assert.equal("running", r.app_state)
    assert.equal("permanent", r.app_mode) -- the mode the remote start asked for
    assert.equal("EINCORRECT", r.bad_mode[3])
    assert.equal("ENAMEUNKNOWN", r.app_unknown[3])
    assert.same({}, r.buffered)
    assert.equal("ticks", r.got[1].event)
    assert.same({ "t1", "t2" }, { r.got[1].message, r.got[2].message })
    assert.equal(2, r.n1.remote_sent)
    assert.equal(1, r.n1.subscribers)
    assert.equal(2, r.subs_two)
    assert.equal(2, r.n1.events_remote)
    assert.same({ kind = "down", pid = r.down.pid, reason = "no connection" }, r.down)
    table.sort(r.after_kill.nodes)
    assert.same({ "n1@localhost", "n2@localhost" }, r.after_kill.nodes)
    assert.equal("loaded", r.back.app) -- a fresh n3 answers again
    assert.is_true(r.peer.Reconnections >= 1)
    assert.is_true(r.peer.Connected)
  end)
end)
