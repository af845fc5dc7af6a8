-- latency_scenario on two real halo nodes and a real slowweb: bursts of
-- pings cross to the other node's latency_worker, which makes one HTTP GET
-- per ping and stays inside its callback meanwhile (its mailbox backs up,
-- the wait counts as its running time) and registers its custom metrics.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local REG_PORT = helper.random_port()
local REG = "embedded:" .. REG_PORT
local SLOWWEB = "127.0.0.1:" .. (REG_PORT + 1)

local SCRIPT = [[
local halo = require("halo")
local errors = {}
halo.spawn({
  init = function() assert(halo.log.subscribe({ levels = { "error" } })) end,
  handle_log = function(_, rec) errors[#errors + 1] = rec.message end,
})
assert(require("latency").start({ first_burst = 200, burst_every = { 300, 500 }, burst_size = 30, slowweb = arg[2] }))
halo.spawn({
  handle_call = function(_, _, _, req)
    if req == "worker" then return halo.process_list({ name = "latency_worker" })[1] end
    if req == "inspect" then return halo.inspect("latency_worker") end
    if req == "errors" then return errors end
  end,
}, nil, { name = "probe" })
local f = io.open(arg[1], "w"); f:write(halo.net.info().Acceptors[1].Port, "\n"); f:close()
halo.receive()
]]

local dir
local pids = {}

local function start(name, addr, slowweb)
  local out = ("%s/%s.out"):format(dir, name)
  pids[#pids + 1] = helper.spawn_os(("%s run --name %s --cookie lt --listen %s:0 --registrar %s --log-level warning %s/node.lua %s %s")
    :format(halo_bin, name, addr, REG, dir, out, slowweb), ("%s/%s.log"):format(dir, name))
  assert(helper.wait_file(out), name .. " did not start")
  local f = assert(io.open(out))
  local port = f:read("*l")
  f:close()
  return addr .. ":" .. port
end

-- Starts slowweb on SLOWWEB and waits until it listens.
local function start_slowweb()
  local log = dir .. "/slowweb.log"
  pids[#pids + 1] = helper.spawn_os(("%s run scenarios/slowweb.lua %s"):format(halo_bin, SLOWWEB), log)
  for _ = 1, 150 do
    local f = io.open(log)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find("slowweb listening on " .. SLOWWEB, 1, true) then return SLOWWEB end
    os.execute("sleep 0.02")
  end
  error("slowweb did not start")
end

describe("latency_scenario between two nodes", function()
  setup(function() dir = helper.script_dir("node.lua", SCRIPT) end)
  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("backs up the worker's mailbox while it waits for slowweb, one request per ping", function()
    local slowweb = start_slowweb()
    local a1 = start("l1@localhost", "127.0.0.2", slowweb)
    local a2 = start("l2@localhost", "127.0.0.3", slowweb)
    local r = helper.run(function()
      assert(halo.net.connect("l1@localhost", a1))
      assert(halo.net.connect("l2@localhost", a2))
      local function probe(node, req) return halo.call(halo.net.process_id("probe", node), req, 3000) end
      local out = { max_mailbox = 0, max_latency = 0 }
      -- during the bursts the worker's mailbox holds pings that wait
      assert(helper.wait_until(function()
        local w = probe("l1@localhost", "worker")
        out.max_mailbox = math.max(out.max_mailbox, w.MessagesMailbox)
        out.max_latency = math.max(out.max_latency, w.MailboxLatency)
        out.worker = w
        return w.MessagesIn >= 60 and out.max_mailbox > 1
      end, 10000, 5), "the worker never had pings waiting")
      assert(helper.wait_until(function()
        out.inspect = probe("l1@localhost", "inspect")
        return tonumber(out.inspect.requests_ok) >= 30
      end, 10000, 20), "fewer than 30 requests made")
      out.worker = probe("l1@localhost", "worker")
      out.errors = { probe("l1@localhost", "errors"), probe("l2@localhost", "errors") }
      return out
    end, { name = "watch@localhost", cookie = "lt", listen = "127.0.0.1:0", registrar = "none", timeout = 20000 })
    assert.equal("latency.worker", r.worker.Behavior)
    assert.equal("latency_worker", r.worker.Name)
    assert.equal("latency_scenario", r.worker.Application)
    assert.is_true(r.max_latency > 0)
    local ok = tonumber(r.inspect.requests_ok)
    assert.is_true(ok >= 30)
    assert.equal("0", r.inspect.requests_error)
    assert.is_true(r.worker.RunningTime >= ok * 3e6) -- each request took 3 ms at least, inside the callback
    assert.same({ {}, {} }, r.errors) -- the metrics registered
  end)
end)
