-- The messaging and events scenarios on two real halo nodes (OS processes
-- that find each other through an embedded registrar of the spec's own):
-- bulk messages cross compressed and in fragments, payloads reach the other
-- node's pool, events get subscribers from the other node. The spec's node
-- dials both directly and only watches (no registrar: the scenarios never
-- see it).
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local REG = "embedded:" .. helper.random_port()

local SCRIPT = [[
local halo = require("halo")
assert(require("messaging").start({ first_burst = 200, burst_every = { 200, 400 }, burst_size = { 20, 40 },
  bulk_first_burst = 200, bulk_every = { 200, 400 }, bulk_size = { 4, 6 } }))
assert(require("events").start({ publishers_after = 50, subscribers_after = 300, publish_every = { 50, 100 },
  remote_retry = { 100, 200 } }))
halo.spawn({
  handle_call = function(_, _, _, req)
    if req[1] == "peer" then return halo.net.node(req[2]) end
    if req[1] == "events" then return halo.event.list({ name = "evt_", limit = -1 }) end
    if req[1] == "pool" then return halo.inspect("messaging_pool") end
    if req[1] == "nodes" then return halo.net.nodes() end
  end,
}, nil, { name = "probe" })
local f = io.open(arg[1], "w"); f:write(halo.net.info().Acceptors[1].Port, "\n"); f:close()
halo.receive()
]]

local dir
local pids = {}

-- Starts node name on loopback address addr; returns its "host:port".
local function start(name, addr)
  local out = ("%s/%s.out"):format(dir, name)
  pids[#pids + 1] = helper.spawn_os(("%s run --name %s --cookie sc --listen %s:0 --registrar %s --log-level warning %s/node.lua %s")
    :format(halo_bin, name, addr, REG, dir, out), ("%s/%s.log"):format(dir, name))
  assert(helper.wait_file(out), name .. " did not start")
  local f = assert(io.open(out))
  local port = f:read("*l")
  f:close()
  return addr .. ":" .. port
end

describe("the scenarios between two nodes", function()
  setup(function() dir = helper.script_dir("node.lua", SCRIPT) end)
  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("send compressed and fragmented messages and subscribe to each other's events", function()
    local a1 = start("s1@localhost", "127.0.0.2")
    local a2 = start("s2@localhost", "127.0.0.3")
    local r = helper.run(function()
      assert(halo.net.connect("s1@localhost", a1))
      assert(halo.net.connect("s2@localhost", a2))
      local function probe(node, ...) return halo.call(halo.net.process_id("probe", node), { ... }, 3000) end
      local out = {}
      -- every counter of interest moved in both directions
      assert(helper.wait_until(function()
        for _, pair in ipairs({ { "s1@localhost", "s2@localhost" }, { "s2@localhost", "s1@localhost" } }) do
          local p = probe(pair[1], "peer", pair[2])
          if not p or p.CompressedSent == 0 or p.FragmentMessagesSent == 0 or p.DecompressedRecv == 0
            or p.FragmentMessagesRecv == 0 then return false end
          out[pair[1]] = p
        end
        return true
      end, 8000, 50), "no compressed and fragmented traffic both ways")
      assert(helper.wait_until(function()
        for _, node in ipairs({ "s1@localhost", "s2@localhost" }) do
          local remote = 0
          for _, e in ipairs(probe(node, "events")) do remote = remote + e.MessagesRemoteSent end
          if remote == 0 then return false end
        end
        return true
      end, 8000, 50), "no event reached the other node")
      out.events = probe("s1@localhost", "events")
      out.pool = probe("s1@localhost", "pool")
      out.nodes = probe("s1@localhost", "nodes")
      return out
    end, { name = "watch@localhost", cookie = "sc", listen = "127.0.0.1:0", registrar = "none", timeout = 20000 })
    for _, node in ipairs({ "s1@localhost", "s2@localhost" }) do
      local p = r[node]
      -- half the bulk messages are compressed: fewer compressed than fragmented ones
      assert.is_true(p.CompressedSent >= 1 and p.FragmentMessagesSent >= 1)
      assert.is_true(p.CompressedBytesSent < p.CompressedOrigBytesSent)
      assert.is_true(p.FragmentsSent > p.FragmentMessagesSent) -- each of those was cut in pieces
      assert.equal(0, p.FragmentTimeouts)
    end
    assert.same({ "s2@localhost" }, r.nodes) -- the watching node is no target
    assert.is_true(tonumber(r.pool.messages_forwarded) > 0)
    assert.equal("0", r.pool.messages_unhandled)
    local by = {}
    for _, e in ipairs(r.events) do by[e.Name] = e end
    for i = 10, 19 do assert.equal(0, by["evt_" .. i].MessagesRemoteSent) end -- only evt_0..9 are picked remotely
  end)
end)
