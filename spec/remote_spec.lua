-- Remote operations across a node's restart and loss, with real halo
-- processes: the spec's node a@localhost and b@localhost in the background.
-- PIDs of an earlier run of b fail with "unknown process" instead of reaching
-- b's new processes; calls, remote event subscriptions and links/monitors of
-- b's registered names end when b's processes or b itself go away.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

-- b: arg[1] the file that says it is up, arg[2] a's port (b dials a) or "none".
-- The same processes start in the same order on every run, so a restarted b
-- has a new "worker" with the PID its old one had.
local B_SCRIPT = [[
local halo = require("halo")
halo.spawn({ -- counts what reaches it; {"send_to", pid} sends pid a message
  init = function(self) self.count = 0 end,
  handle_message = function(self) self.count = self.count + 1 end,
  handle_call = function(self, _, _, req)
    if req == "pid" then return halo.self() end
    if type(req) == "table" and req[1] == "send_to" then return { halo.send(req[2], "hi") } end
    return self.count
  end,
}, nil, { name = "worker" })
halo.spawn({
  init = function() assert(halo.event.register("ticks")) assert(halo.event.register("short")) end,
  handle_message = function(_, _, m) if m == "end_short" then halo.event.unregister("short") end end,
}, nil, { name = "ticker" })
halo.spawn({ handle_message = function() end }, nil, { name = "keep" })
halo.spawn({
  handle_call = function(_, _, _, req)
    if req == "hang" then halo.sleep(20000) return "late" end
    if req == "mortal" then -- takes calls, never answers, ends with the reason it is sent
      return halo.spawn({ handle_call = function() return nil end, handle_message = function(_, _, why) return why end })
    end
    if req == "named" then -- the same, registered as "mortal"
      return halo.spawn({ handle_message = function(_, _, why) return why end }, nil, { name = "mortal" })
    end
    return req
  end,
}, nil, { name = "echo" })
local f = io.open(arg[1], "w"); f:write(halo.net.info().Acceptors[1].Port, "\n"); f:close()
if arg[2] ~= "none" then assert(halo.net.connect("a@localhost", "127.0.0.1:" .. arg[2])) end
halo.receive()
]]

local dir
local started = {} -- b's OS pids, killed after each test whatever happened

-- Starts b on port (0: a free one, away from the default ports other nodes
-- take, so that nobody takes it while b restarts); dial: a's port or
-- "none". Returns b's OS pid and its port.
local function start_b(port, dial)
  local out = dir .. "/b.out"
  for _ = 1, 5 do
    local try = port ~= 0 and port or 20000 + math.random(30000)
    os.remove(out)
    local pid = helper.spawn_os(("%s run --name b@localhost --cookie rs --listen 127.0.0.1:%d --registrar none " ..
      "--log-level error %s/b.lua %s %s"):format(halo_bin, try, dir, out, dial), dir .. "/b.log")
    started[#started + 1] = pid
    local function exists(path)
      local f = io.open(path)
      if f then f:close() end
      return f ~= nil
    end
    -- up, or gone (its port was taken)
    local up = helper.wait_until(function() return exists(out) or not exists("/proc/" .. pid .. "/stat") end, 5000, 20)
    local f = io.open(out)
    if up and f then
      f:close()
      return pid, try
    end
    helper.kill(pid)
    if port ~= 0 then break end
  end
  error("node b did not start")
end

local function a(fn)
  return helper.run(fn, { name = "a@localhost", cookie = "rs", listen = "127.0.0.1:0", registrar = "none",
                          timeout = 20000 })
end

math.randomseed(os.time() + math.floor(os.clock() * 1e6))

local function my_port() return halo.net.info().Acceptors[1].Port end

local function connected()
  local n = halo.net.node("b@localhost")
  return n and n.Connected
end

-- In a; b dials a and a waits for it. Returns b's OS pid and its port.
local function b_up()
  local pid, port = start_b(0, my_port())
  assert(helper.wait_until(connected, 5000), "b did not connect")
  return pid, port
end

local function gone()
  return helper.wait_until(function() return not connected() end, 5000)
end

local function timed(fn, ...)
  local t0 = halo.now()
  local r = { fn(...) }
  r.ms = halo.now() - t0
  return r
end

describe("remote operations", function()
  setup(function() dir = helper.script_dir("b.lua", B_SCRIPT) end)
  teardown(function() os.execute("rm -rf " .. dir) end)
  after_each(function()
    for _, pid in ipairs(started) do helper.kill(pid) end
    started = {}
  end)

  it("refuse a PID of an earlier run of the other node: unknown process, never its new process", function()
    local r = a(function()
      local bpid, port = b_up()
      local worker = halo.net.process_id("worker", "b@localhost")
      local old = assert(halo.call(worker, "pid", 2000))
      helper.kill(bpid)
      assert(gone())
      bpid = start_b(port, "none") -- b again, same address; a dials it on first use
      local out = {}
      -- sent while the new session is still being set up: a cannot know yet,
      -- b refuses what names its earlier run
      assert(require("halo.core").net.route_set("b@localhost", "127.0.0.1", port))
      out.pending_send = { halo.send(old, "stale") }
      out.pending_call = timed(halo.call, old, "count", 5000)
      -- once connected, a knows b's new run and refuses at once
      out.send = { halo.send(old, "stale") }
      out.call = timed(halo.call, old, "count", 5000)
      out.link = { halo.link(old) }
      out.monitor = { halo.monitor(old) }
      out.exit = { halo.exit(old, "bye") }
      -- the old PID, back on its node, names nothing there either
      out.back = halo.call(worker, { "send_to", old }, 2000)
      out.count = halo.call(worker, "count", 2000)
      out.old, out.new = old, halo.call(worker, "pid", 2000) -- the same string: the test means something
      helper.kill(bpid)
      return out
    end)
    assert.same({ true }, r.pending_send) -- held for the session: a could not tell
    assert.equal("ENOPROC", r.pending_call[3])
    assert.is_true(r.pending_call.ms < 2000)
    assert.equal("ENOPROC", r.send[3])
    assert.equal("ENOPROC", r.call[3])
    assert.is_true(r.call.ms < 100)
    assert.equal("ENOPROC", r.link[3])
    assert.equal("ENOPROC", r.monitor[3])
    assert.equal("ENOPROC", r.exit[3])
    assert.equal("ENOPROC", r.back[3])
    assert.equal(0, r.count) -- nothing reached b's new worker
    assert.equal(r.old, r.new)
  end)

  it("fail a call at once when the callee ends before replying (its reason) or its node goes away", function()
    local r = a(function()
      local bpid = b_up()
      local echo = halo.net.process_id("echo", "b@localhost")
      local mortal = assert(halo.call(echo, "mortal", 2000))
      halo.spawn(function() halo.sleep(100) halo.send(mortal, "bye") end)
      local ended = timed(halo.call, mortal, "answer me", 5000)
      local me = halo.self()
      local caller = halo.spawn(function() halo.send(me, timed(halo.call, echo, "hang", 8000)) end)
      assert(helper.wait_until(function() return halo.process_info(caller).State == "wait response" end))
      helper.kill(bpid)
      local _, lost = halo.receive(5000)
      return { ended = ended, lost = lost }
    end)
    assert.same({ nil, "ETERMINATED: process terminated: bye", "ETERMINATED", "bye" },
                { r.ended[1], r.ended[2], r.ended[3], r.ended[4] })
    assert.is_true(r.ended.ms < 2000)
    assert.same({ nil, "ENOCONN: no connection", "ENOCONN" }, { r.lost[1], r.lost[2], r.lost[3] })
    assert.is_true(r.lost.ms < 4000)
  end)

  it("end a subscription to another node's event when that node goes away", function()
    local r = a(function()
      local bpid = b_up()
      local me = halo.self()
      local function subscriber(how, trap)
        return halo.spawn(function()
          if trap then halo.trap_exit(true) end
          assert(halo.event[how]("ticks", "b@localhost"))
          assert(halo.event[how]("short", "b@localhost"))
          halo.send(me, "subscribed")
          while true do
            local _, m = halo.receive()
            halo.send(me, { how, m })
          end
        end)
      end
      local mon, lnk = subscriber("monitor"), subscriber("link", true)
      assert(select(2, halo.receive(3000)) == "subscribed" and select(2, halo.receive(3000)) == "subscribed")
      local got = {}
      local function collect(n)
        for _ = 1, n do
          local _, m = halo.receive(3000)
          assert(m, "a message expected")
          got[m[1] .. ":" .. m[2].event .. ":" .. m[2].reason] = m[2]
        end
      end
      halo.send(halo.net.process_id("ticker", "b@localhost"), "end_short") -- the event's own end comes first
      collect(2)
      helper.kill(bpid)
      collect(2)
      got.extra = halo.receive(300) -- the ended event is not ended again
      halo.kill(mon)
      halo.kill(lnk)
      return got
    end)
    assert.equal("down", r["monitor:short:unregistered"].kind)
    assert.equal("exit", r["link:short:unregistered"].kind)
    local down, exit = r["monitor:ticks:no connection"], r["link:ticks:no connection"]
    assert.equal("down", down.kind)
    assert.equal("exit", exit.kind)
    assert.matches("^<%x+%.0%.%d+>$", down.pid) -- the producer
    assert.is_nil(r.extra)
  end)

  it("link and monitor a name registered on another node and send it exit signals", function()
    local r = a(function()
      local bpid = b_up()
      local me = halo.self()
      local name = halo.net.process_id("mortal", "b@localhost")
      local out = { name = name }
      out.pid = assert(halo.call(halo.net.process_id("echo", "b@localhost"), "named", 2000))
      out.nobody = halo.net.process_id("nobody", "b@localhost")
      assert(halo.monitor(out.nobody))
      out.nobody_down = select(2, halo.receive(2000)) -- there is none: told at once
      local linker = halo.spawn(function()
        halo.trap_exit(true)
        assert(halo.link(name))
        halo.send(me, "linked")
        halo.send(me, select(2, halo.receive()))
      end)
      assert(select(2, halo.receive(2000)) == "linked")
      out.monitor = { halo.monitor(name) }
      out.again = { halo.monitor(name) }
      out.sent = { halo.exit(name, "bye") } -- ends it: both watchers hear of it
      for _ = 1, 2 do
        local _, m = halo.receive(2000)
        out[m.kind] = m
      end
      assert(helper.wait_until(function() return halo.process_info(linker) == nil end))
      local keep, echo = halo.net.process_id("keep", "b@localhost"), halo.net.process_id("echo", "b@localhost")
      assert(halo.monitor(keep))
      assert(halo.monitor(echo))
      out.demonitor = { halo.demonitor(echo) }
      out.keep = keep
      out.monitors = halo.process_info(me).MonitorsProcessID
      helper.kill(bpid)
      out.lost = select(2, halo.receive(3000))
      out.extra = halo.receive(300) -- not the demonitored one
      return out
    end)
    assert.same({ kind = "down", name = r.nobody, reason = "unknown process" }, r.nobody_down)
    assert.same({ true }, r.monitor)
    assert.equal("ETARGETEXIST", r.again[3])
    assert.same({ true }, r.sent)
    assert.same({ kind = "down", name = r.name, pid = r.pid, reason = "bye" }, r.down)
    assert.same({ kind = "exit", name = r.name, pid = r.pid, reason = "bye" }, r.exit)
    assert.same({ true }, r.demonitor)
    assert.same({ r.keep }, r.monitors)
    assert.same({ kind = "down", name = r.keep, reason = "no connection" }, r.lost)
    assert.is_nil(r.extra)
  end)
end)
