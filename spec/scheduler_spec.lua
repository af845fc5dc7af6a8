local halo = require("halo")
local helper = require("helper")

-- Sends itself a message for every message it handles, forever.
local flooder = {
  init = function(self, counter) self.counter = counter end,
  handle_message = function(self, from, msg)
    self.counter.n = self.counter.n + 1
    halo.send(halo.self(), msg)
  end,
}

-- Same, but doubles its backlog up to a cap, so its mailbox is never short.
local doubler = {
  init = function(self, counter) self.counter = counter end,
  handle_message = function(self, from, msg)
    self.counter.n = self.counter.n + 1
    halo.send(halo.self(), msg)
    if self.counter.n < 2000 then halo.send(halo.self(), msg) end
  end,
}

local echo = { handle_call = function(_, _, _, req) return req end }

local function start_floods()
  local counters, pids = {}, {}
  for i, beh in ipairs({ flooder, flooder, doubler }) do
    counters[i] = { n = 0 }
    pids[i] = assert(halo.spawn(beh, counters[i]))
    halo.send(pids[i], "go")
  end
  -- Let the floods get going before measuring.
  assert(helper.wait_until(function() return counters[3].n > 2000 end))
  return counters, pids
end

describe("the scheduler", function()
  it("keeps a ping-pong moving while processes flood themselves", function()
    local r = helper.run(function()
      local counters, pids = start_floods()
      local e = assert(halo.spawn(echo))
      local t0 = halo.now()
      local worst = 0
      for i = 1, 50 do
        local t = halo.now()
        assert(halo.call(e, i, 1000) == i)
        worst = math.max(worst, halo.now() - t)
      end
      local total = halo.now() - t0
      local flooded = counters[1].n
      local mailbox = halo.process_info(pids[3]).MailboxQueues.Main
      for _, p in ipairs(pids) do halo.kill(p) end
      halo.kill(e)
      return { total = total, worst = worst, flooded = flooded, mailbox = mailbox }
    end)
    assert.is_true(r.flooded > 1000, "the flood did not run: " .. r.flooded)
    assert.is_true(r.mailbox > 100, "the doubler's backlog stayed short: " .. r.mailbox)
    assert.is_true(r.worst < 100, "worst round trip " .. r.worst .. " ms")
    assert.is_true(r.total < 1000, "50 round trips took " .. r.total .. " ms")
  end)

  it("keeps a quiet ping-pong pair between two processes moving during a flood", function()
    local r = helper.run(function()
      local counters, pids = start_floods()
      local rounds = 0
      local ponger = assert(halo.spawn({
        handle_message = function(_, from, n) halo.send(from, n + 1) end,
      }))
      local pinger = assert(halo.spawn(function()
        halo.send(ponger, 0)
        while true do
          local _, n = halo.receive()
          rounds = n
          halo.send(ponger, n + 1)
        end
      end))
      local ok = helper.wait_until(function() return rounds >= 200 end, 2000)
      local got = rounds
      for _, p in ipairs(pids) do halo.kill(p) end
      halo.kill(pinger)
      halo.kill(ponger)
      return { ok = ok, rounds = got }
    end)
    assert.is_true(r.ok, "only " .. r.rounds .. " ping-pong rounds in 2 s")
  end)

  it("fires timers (sleep, send_after) and honours cancel_timer during a flood", function()
    local r = helper.run(function()
      local counters, pids = start_floods()
      local out = {}
      local t = halo.now()
      halo.sleep(20)
      out.slept = halo.now() - t
      local got = {}
      local receiver = assert(halo.spawn(function()
        while true do
          local _, msg = halo.receive()
          got[#got + 1] = { msg, halo.now() }
        end
      end))
      t = halo.now()
      assert(halo.send_after(receiver, "kept", 20))
      local cancelled = assert(halo.send_after(receiver, "cancelled", 10))
      out.cancel = halo.cancel_timer(cancelled)
      out.cancel_again = { halo.cancel_timer(cancelled) }
      assert(helper.wait_until(function() return #got >= 1 end, 1000))
      halo.sleep(30)
      out.got = got
      out.delay = got[1][2] - t
      out.flooded = counters[1].n
      for _, p in ipairs(pids) do halo.kill(p) end
      halo.kill(receiver)
      return out
    end)
    assert.is_true(r.slept >= 20 and r.slept < 200, "sleep(20) took " .. r.slept .. " ms")
    assert.is_true(r.cancel)
    assert.equal("ETARGETUNKNOWN", r.cancel_again[3])
    assert.equal(1, #r.got)
    assert.equal("kept", r.got[1][1])
    assert.is_true(r.delay >= 20 and r.delay < 200, "send_after(20) arrived after " .. r.delay .. " ms")
  end)

  it("lets halo.yield give the CPU to the other ready processes", function()
    local order = helper.run(function()
      local order = {}
      for i = 1, 2 do
        assert(halo.spawn(function()
          for k = 1, 3 do
            order[#order + 1] = i .. ":" .. k
            halo.yield()
          end
        end))
      end
      assert(helper.wait_until(function() return #order == 6 end))
      return order
    end)
    -- Each spawn runs its first step at once; then they alternate.
    assert.same({ "1:1", "2:1", "1:2", "2:2", "1:3", "2:3" }, order)
  end)

  it("cancels a process's timers when it ends", function()
    local r = helper.run(function()
      local got = 0
      local receiver = assert(halo.spawn(function()
        while true do
          halo.receive()
          got = got + 1
        end
      end))
      local owner = assert(halo.spawn(function(to)
        halo.send_after(to, "never", 20)
        halo.receive()
      end, receiver))
      local timers = halo.node_info().Timers
      halo.kill(owner)
      local after = halo.node_info().Timers
      halo.sleep(40)
      halo.kill(receiver)
      return { got = got, timers = timers, after = after }
    end)
    assert.equal(0, r.got)
    assert.equal(r.timers - 1, r.after)
  end)
end)
