-- The embedded registrar with real halo processes: nodes started with
-- nothing but a cookie find each other through the first node of the host,
-- form a full mesh, and survive the serving node's death. A port of its own,
-- drawn per run, keeps the spec clear of a demo running on 4499 and of
-- other test runs on the same machine.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local REG_PORT = helper.random_port()
local REG = "embedded:" .. REG_PORT

-- Each node runs a probe: a call returns what it sees of the cluster.
local SCRIPT = [[
local halo = require("halo")
halo.spawn({
  handle_call = function()
    return { nodes = halo.net.nodes(), connected = halo.net.info().Nodes, registrar = halo.net.registrar() }
  end,
}, nil, { name = "probe" })
local f = io.open(arg[1], "w"); f:write("up\n"); f:close()
halo.receive()
]]

local dir
local started = {}

local function start(name, tag)
  tag = tag or name -- names its files
  local out = ("%s/%s.out"):format(dir, tag)
  local pid = helper.spawn_os(("%s run --name %s@localhost --cookie reg --listen 127.0.0.1:0 --registrar %s " ..
    "--log-level info %s/probe.lua %s"):format(halo_bin, name, REG, dir, out), ("%s/%s.log"):format(dir, tag))
  started[#started + 1] = pid
  assert(helper.wait_file(out), name .. " did not start")
  return pid
end

local kill = helper.kill

local function sorted(t)
  t = { unpack(t) }
  table.sort(t)
  return t
end

describe("the embedded registrar", function()
  setup(function()
    dir = helper.script_dir("probe.lua", SCRIPT)
  end)
  teardown(function()
    for _, pid in ipairs(started) do kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("joins nodes into a full mesh, keeps names unique and survives its server's death", function()
    local n1 = start("n1") -- the first: it serves
    start("n2")
    start("n3")
    local r = helper.run(function()
      local out = {}
      local function probe(node) return halo.call(halo.net.process_id("probe", node), "?", 2000) end
      assert(helper.wait_until(function() return #halo.net.info().Nodes == 3 end, 5000))
      out.mine = sorted(halo.net.nodes())
      out.reg = halo.net.registrar()
      assert(helper.wait_until(function()
        local p = probe("n2@localhost")
        return p and #p.connected == 3
      end, 5000))
      out.n2 = probe("n2@localhost")
      out.n1 = probe("n1@localhost")
      out.resolved = halo.net.resolve("n3@localhost")
      out.unknown = { halo.net.resolve("nobody@localhost") }
      -- a second node called n2 is refused by the registrar
      start("n2", "n2bis")
      -- the server dies: another node takes over within about a second
      kill(n1)
      local t0 = halo.now()
      assert(helper.wait_until(function()
        local mine, p2, p3 = halo.net.registrar(), probe("n2@localhost"), probe("n3@localhost")
        return mine.Registered and p2 and p3 and p2.registrar.Registered and p3.registrar.Registered
          and (mine.EmbeddedServer or p2.registrar.EmbeddedServer or p3.registrar.EmbeddedServer)
      end, 6000))
      out.takeover_ms = halo.now() - t0
      -- n1 never registers again: it leaves everyone's list
      assert(helper.wait_until(function()
        local p = probe("n2@localhost")
        return #halo.net.nodes() == 2 and p and #p.nodes == 2
      end, 6000))
      out.after = sorted(halo.net.nodes())
      out.n2_after = probe("n2@localhost")
      return out
    end, { name = "a@localhost", cookie = "reg", listen = "127.0.0.1:0", registrar = REG, timeout = 30000 })
    assert.same({ "n1@localhost", "n2@localhost", "n3@localhost" }, r.mine)
    assert.is_false(r.reg.EmbeddedServer)
    assert.is_true(r.reg.Registered)
    assert.equal("ESRD:R1", r.reg.Version)
    assert.equal("127.0.0.1:" .. REG_PORT, r.reg.Server)
    assert.is_true(r.n1.registrar.EmbeddedServer)
    assert.same({ "a@localhost", "n1@localhost", "n3@localhost" }, sorted(r.n2.nodes))
    assert.same({ "a@localhost", "n1@localhost", "n3@localhost" }, sorted(r.n2.connected)) -- full mesh
    assert.equal("127.0.0.1", r.resolved.Host)
    assert.is_true(r.resolved.Port > 0)
    assert.equal("ENOROUTE", r.unknown[3])
    assert.is_true(r.takeover_ms < 3000, "took " .. r.takeover_ms .. " ms")
    assert.same({ "n2@localhost", "n3@localhost" }, r.after)
    assert.same({ "a@localhost", "n3@localhost" }, sorted(r.n2_after.nodes))
    local log = io.open(dir .. "/n2bis.log"):read("*a")
    assert.matches("registrar refused n2@localhost: resource is taken", log, 1, true)
  end)

  it("lets a node of another host join by name through that host's registrar (UDP)", function()
    -- "another host": a registrar of its own on another port, a node named after 127.0.0.1
    started[#started + 1] = helper.spawn_os(("%s run --name x@127.0.0.1 --cookie reg --listen 127.0.0.1:0 " ..
      "--registrar embedded:14497 --log-level info %s/probe.lua %s/x.out"):format(halo_bin, dir, dir), dir .. "/x.log")
    local r = helper.run(function()
      local t0 = halo.now()
      assert(helper.wait_until(function()
        local p = halo.net.node("x@127.0.0.1")
        return p and p.Connected
      end, 5000))
      local probe = halo.call(halo.net.process_id("probe", "x@127.0.0.1"), "?", 2000)
      return { ms = halo.now() - t0, connected = halo.net.info().Nodes, probe = probe,
               bad = { pcall(halo.net.join, "no-at-sign") } }
    end, { name = "y@localhost", cookie = "reg", listen = "127.0.0.1:0", registrar = "none",
           join = { "x@127.0.0.1:14497" }, timeout = 30000 })
    assert.same({ "x@127.0.0.1" }, r.connected)
    assert.same({ "y@localhost" }, r.probe.connected)
    assert.is_false(r.bad[1])
    assert.matches("name@host", r.bad[2])
  end)
end)
