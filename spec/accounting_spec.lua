local halo = require("halo")
local helper = require("helper")

local MS = 1e6

local function row(pid)
  for _, r in ipairs(halo.process_list()) do
    if r.PID == pid then return r end
  end
end

-- "hold" parks it in the callback until gate.open; {"sleep", ms} sleeps
-- there; {"call", to, req} calls; everything else is counted.
local worker = {
  init = function(self, args)
    self.args = args or {}
    if self.args.init_ms then halo.sleep(self.args.init_ms) end
  end,
  handle_message = function(self, from, msg)
    if msg == "hold" then
      self.args.gate.held = true
      while not self.args.gate.open do halo.sleep(2) end
    elseif type(msg) == "table" and msg[1] == "sleep" then
      halo.sleep(msg[2])
    elseif type(msg) == "table" and msg[1] == "call" then
      halo.call(msg[2], msg[3])
    end
  end,
  handle_call = function(self, from, ref, req)
    if type(req) == "table" and req[1] == "sleep" then halo.sleep(req[2]) end
    return "ok"
  end,
}

local function settled(pid, n)
  return helper.wait_until(function()
    local r = row(pid)
    return r.MessagesIn == n and r.MessagesMailbox == 0 and r.State == "sleep"
  end)
end

describe("accounting", function()
  it("counts time slept inside a callback as RunningTime", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(worker))
      local idle = row(p).RunningTime
      halo.send(p, { "sleep", 50 })
      halo.sleep(25)
      local during = row(p).RunningTime
      assert(settled(p, 1))
      local after = row(p).RunningTime
      halo.kill(p)
      return { idle = idle, during = during, after = after }
    end)
    assert.is_true(r.idle < 10 * MS, "idle process ran " .. r.idle .. " ns")
    assert.is_true(r.during >= 20 * MS, "during the sleep: " .. r.during .. " ns")
    assert.is_true(r.after >= 50 * MS, "after the sleep: " .. r.after .. " ns")
    assert.is_true(r.after < 1000 * MS)
  end)

  it("counts time waiting in a call inside a callback as RunningTime", function()
    local t = helper.run(function()
      local server = assert(halo.spawn(worker))
      local caller = assert(halo.spawn(worker))
      halo.send(caller, { "call", server, { "sleep", 40 } })
      assert(settled(caller, 2)) -- the message and the reply
      local t = row(caller).RunningTime
      halo.kill(caller)
      halo.kill(server)
      return t
    end)
    assert.is_true(t >= 40 * MS, "caller ran " .. t .. " ns")
  end)

  it("shows a flooded process's backlog, latency, wakeups and drain", function()
    local r = helper.run(function()
      local gate = {}
      local p = assert(halo.spawn(worker, { gate = gate }))
      local w0 = row(p).Wakeups
      halo.send(p, "hold")
      assert(helper.wait_until(function() return gate.held end))
      for i = 1, 1000 do halo.send(p, i) end
      halo.sleep(5)
      local flooded = row(p)
      local info = halo.process_info(p)
      local by_latency = halo.process_list({ sort_by = "mailbox_latency", limit = 1 })[1].PID
      gate.open = true
      assert(settled(p, 1001))
      local drained = row(p)
      halo.send(p, "one more")
      assert(settled(p, 1002))
      local again = row(p)
      halo.kill(p)
      return { w0 = w0, flooded = flooded, info = info, drained = drained, again = again,
               by_latency = by_latency, p = p }
    end)
    assert.equal(1, r.w0) -- the post-init kick
    assert.equal(1000, r.flooded.MessagesMailbox)
    assert.equal("running", r.flooded.State)
    assert.is_true(r.flooded.MailboxLatency >= 4 * MS, "latency " .. r.flooded.MailboxLatency)
    assert.equal(1000, r.info.MailboxQueues.Main)
    assert.is_true(r.info.MailboxQueues.LatencyMain > 0)
    assert.equal(r.p, r.by_latency)
    -- Messages queued while it was busy needed no wake-up of their own.
    assert.equal(2, r.flooded.Wakeups)
    assert.equal(1001, r.drained.MessagesIn)
    assert.equal(2, r.drained.Wakeups)
    assert.equal(1001 / 2, r.drained.Drain)
    assert.equal(0, r.drained.MailboxLatency)
    assert.equal(3, r.again.Wakeups)
    assert.equal(1002 / 3, r.again.Drain)
  end)

  it("counts MessagesIn and MessagesOut exactly for a known exchange", function()
    local r = helper.run(function()
      local me = halo.self()
      local s0 = halo.process_info(me)
      local p = assert(halo.spawn({
        handle_message = function(self, from, msg)
          if msg == "echo" then halo.send(from, "echoed") end
        end,
        handle_call = function() return "reply" end,
        handle_inspect = function() return {} end,
      }))
      halo.send(p, "a")                   -- me out 1, p in 1
      halo.send(p, "echo")                -- me out 2, p in 2; p out 1, me in 1
      assert(halo.call(p, "q") == "reply") -- me out 3, p in 3; p out 2, me in 2
      assert(halo.inspect(p))             -- me out 4, p in 4; p out 3, me in 3
      halo.send(me, "to self")            -- me out 5, me in 4
      assert(halo.monitor(p))
      assert(halo.kill(p))                -- me in 5 (down), p is gone
      local got = {}
      for i = 1, 3 do got[i] = select(2, halo.receive(100)) end -- down, "echoed", "to self"
      local s1 = halo.process_info(me)
      return { out = s1.MessagesOut - s0.MessagesOut, ["in"] = s1.MessagesIn - s0.MessagesIn, got = got }
    end)
    assert.equal(5, r.out)
    assert.equal(5, r["in"])
    assert.equal("down", r.got[1].kind)
    assert.same({ "echoed", "to self" }, { r.got[2], r.got[3] })
  end)

  it("counts MessagesIn and MessagesOut of the other side exactly", function()
    local r = helper.run(function()
      local me = halo.self()
      local sink = assert(halo.spawn(worker))
      local p = assert(halo.spawn({
        handle_message = function(self, from, msg)
          if msg == "fan" then
            for i = 1, 3 do halo.send(sink, i) end
            halo.send_after(sink, "later", 1)
          end
        end,
        handle_call = function() return "reply" end,
      }))
      halo.send(p, "x")
      halo.send(p, "fan")
      halo.call(p, "q")
      assert(settled(sink, 4))
      local pr, sr = row(p), row(sink)
      halo.kill(p)
      halo.kill(sink)
      return { p_in = pr.MessagesIn, p_out = pr.MessagesOut, s_in = sr.MessagesIn, s_out = sr.MessagesOut }
    end)
    assert.same({ p_in = 3, p_out = 5, s_in = 4, s_out = 0 }, r)
  end)

  it("records a sleep in init as InitTime; a function process has none", function()
    local r = helper.run(function()
      local slow = assert(halo.spawn(worker, { init_ms = 30 }))
      local quick = assert(halo.spawn(worker))
      local fn = assert(halo.spawn(function()
        local t = halo.now()
        while halo.now() - t < 20 do end -- a busy first run is not an init
        halo.receive()
      end))
      local out = { slow = row(slow), quick = row(quick), fn = row(fn) }
      for _, p in ipairs({ slow, quick, fn }) do halo.kill(p) end
      return out
    end)
    assert.is_true(r.slow.InitTime >= 30 * MS, "init took " .. r.slow.InitTime)
    assert.is_true(r.slow.InitTime < 1000 * MS)
    assert.is_true(r.slow.RunningTime >= 30 * MS)
    assert.is_true(r.quick.InitTime < 10 * MS)
    assert.is_true(r.fn.InitTime < 10 * MS, "function process InitTime " .. r.fn.InitTime)
    assert.is_true(r.fn.RunningTime >= 20 * MS)
    assert.equal(1, r.slow.Wakeups)
    assert.equal(1, r.fn.Wakeups)
  end)

  it("counts a function process as spawned when it starts, and its end as a termination", function()
    local r = helper.run(function()
      local b = halo.node_info()
      assert(halo.spawn(function() end))
      local started = halo.node_info()
      local p = assert(halo.spawn(function() error("first run fails", 0) end))
      local e = halo.node_info()
      return {
        spawned = started.ProcessesSpawned - b.ProcessesSpawned,
        terminated = started.ProcessesTerminated - b.ProcessesTerminated,
        spawned2 = e.ProcessesSpawned - b.ProcessesSpawned,
        failed = e.ProcessesSpawnFailed - b.ProcessesSpawnFailed,
        terminated2 = e.ProcessesTerminated - b.ProcessesTerminated,
        entry_counted = b.ProcessesSpawned,
      }
    end)
    assert.equal(1, r.entry_counted)
    assert.equal(1, r.spawned)
    assert.equal(1, r.terminated)
    assert.equal(2, r.spawned2)
    assert.equal(0, r.failed)
    assert.equal(2, r.terminated2)
  end)

  it("counts a wake-up per message for a function process that receives", function()
    local r = helper.run(function()
      local got = 0
      local p = assert(halo.spawn(function()
        while true do
          local from = halo.receive()
          got = got + 1
        end
      end))
      for i = 1, 3 do
        halo.send(p, i)
        assert(helper.wait_until(function() return got == i end))
      end
      halo.send(p, 4)
      halo.send(p, 5)
      assert(helper.wait_until(function() return got == 5 end))
      local out = row(p)
      halo.kill(p)
      return out
    end)
    assert.equal(5, r.MessagesIn)
    assert.equal(1 + 3 + 1, r.Wakeups)
    assert.equal(1, r.Drain)
  end)
end)
