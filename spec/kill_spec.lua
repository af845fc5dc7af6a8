local halo = require("halo")
local helper = require("helper")

local await_down = helper.await_down

local function gone(pid) return halo.process_state(pid) == nil end

local function row(pid)
  for _, r in ipairs(halo.process_list()) do
    if r.PID == pid then return r end
  end
end

describe("halo.kill", function()
  it("terminates an idle process at once with reason 'kill'", function()
    local r = helper.run(function()
      local terminated
      local p = assert(halo.spawn({
        handle_message = function() end,
        terminate = function(_, reason) terminated = reason end,
      }, nil, { name = "victim" }))
      assert(halo.monitor(p))
      local before = halo.node_info().ProcessesTerminated
      local ok = halo.kill(p)
      local state = halo.process_state(p)
      local down = await_down(p)
      return { ok = ok, state = state, down = down, p = p, terminated = terminated,
               whereis = { halo.whereis("victim") },
               counted = halo.node_info().ProcessesTerminated - before }
    end)
    assert.is_true(r.ok)
    assert.is_nil(r.state)
    assert.same({ kind = "down", pid = r.p, reason = "kill" }, r.down)
    assert.equal("kill", r.terminated)
    assert.equal("ENOPROC", r.whereis[3])
    assert.equal(1, r.counted)
  end)

  it("frees the backlog of a process killed while it sits in the run queue", function()
    local r = helper.run(function()
      local gate, seen, left = {}, 0, nil
      local killer = assert(halo.spawn(function()
        local _, victim = halo.receive()
        left = halo.process_info(victim).MailboxQueues.Main
        assert(halo.kill(victim))
      end))
      local p = assert(halo.spawn({
        handle_message = function(_, _, msg)
          if msg == "hold" then
            gate.held = true
            while not gate.open do halo.sleep(2) end
            return
          end
          seen = seen + 1
          if seen == 10 then halo.send(killer, halo.self()) end
        end,
      }))
      assert(halo.monitor(p))
      halo.send(p, "hold")
      assert(helper.wait_until(function() return gate.held end))
      for i = 1, 200 do halo.send(p, i) end
      gate.open = true
      local down = await_down(p)
      return { left = left, seen = seen, reason = down.reason }
    end)
    assert.equal("kill", r.reason)
    assert.is_true(r.left > 0 and r.left < 190, "backlog at the kill: " .. tostring(r.left))
    assert.equal(200 - r.left, r.seen)
  end)

  it("makes a process sleeping inside a callback a zombee that never runs again", function()
    local r = helper.run(function()
      local after_sleep, terminated = false, false
      local p = assert(halo.spawn({
        handle_message = function(_, _, msg)
          if msg == "sleep" then
            halo.sleep(300)
            after_sleep = true
          end
        end,
        terminate = function() terminated = true end,
      }, nil, { name = "sleeper" }))
      assert(halo.monitor(p))
      assert(halo.send(p, "sleep"))
      halo.sleep(10)
      local out = { before = halo.node_info().ProcessesZombee }
      out.kill = halo.kill(p)
      out.state = halo.process_state(p)
      out.row = row(p)
      out.listed = #halo.process_list({ state = "zombee" })
      out.zombees = halo.node_info().ProcessesZombee
      out.whereis = { halo.whereis("sleeper") }
      out.send = { halo.send(p, "more") }
      out.kill_again = halo.kill(p)
      out.down = await_down(p)
      out.p = p
      out.gone = helper.wait_until(function() return gone(p) end, 2000)
      halo.sleep(20)
      out.after_sleep, out.terminated = after_sleep, terminated
      out.zombees_after = halo.node_info().ProcessesZombee
      return out
    end)
    assert.is_true(r.kill)
    assert.equal(0, r.before)
    assert.equal("zombee", r.state)
    assert.equal("zombee", r.row.State)
    assert.equal(1, r.listed)
    assert.equal(1, r.zombees)
    assert.equal("ENOPROC", r.whereis[3])
    assert.equal("ETERMINATED", r.send[3])
    assert.is_true(r.kill_again)
    assert.same({ kind = "down", pid = r.p, reason = "kill" }, r.down)
    assert.is_true(r.gone)
    assert.is_false(r.after_sleep)
    assert.is_false(r.terminated)
    assert.equal(0, r.zombees_after)
  end)

  it("makes a process waiting in a call a zombee until the reply comes", function()
    local r = helper.run(function()
      local pending
      local server = assert(halo.spawn({
        handle_call = function(_, from, ref) pending = { from, ref } end,
      }))
      local continued = false
      local caller = assert(halo.spawn(function()
        halo.call(server, "q", 5000)
        continued = true
      end))
      assert(helper.wait_until(function() return pending ~= nil end))
      local out = { waiting = halo.process_state(caller) }
      assert(halo.monitor(caller))
      assert(halo.kill(caller))
      out.state = halo.process_state(caller)
      out.down = await_down(caller).reason
      out.still = halo.process_state(caller)
      out.reply = { halo.reply(pending[1], pending[2], "answer") }
      out.gone = gone(caller)
      halo.sleep(5)
      out.continued = continued
      halo.kill(server)
      return out
    end)
    assert.equal("wait response", r.waiting)
    assert.equal("zombee", r.state)
    assert.equal("kill", r.down)
    assert.equal("zombee", r.still)
    assert.same({ true }, r.reply)
    assert.is_true(r.gone)
    assert.is_false(r.continued)
  end)

  it("reaps a zombee whose call times out", function()
    local r = helper.run(function()
      local server = assert(halo.spawn({ handle_call = function() end }))
      local continued = false
      local caller = assert(halo.spawn(function()
        halo.call(server, "q", 50)
        continued = true
      end))
      assert(halo.kill(caller))
      local state = halo.process_state(caller)
      local ok = helper.wait_until(function() return gone(caller) end)
      halo.sleep(5)
      halo.kill(server)
      return { state = state, gone = ok, continued = continued }
    end)
    assert.equal("zombee", r.state)
    assert.is_true(r.gone)
    assert.is_false(r.continued)
  end)

  it("fails the spawn of a process killed during its init", function()
    local r = helper.run(function()
      local finished = false
      local killer = assert(halo.spawn(function()
        local found
        helper.wait_until(function()
          found = halo.process_list({ behavior = "slow_init" })[1]
          return found
        end)
        halo.kill(found.PID)
      end))
      local pid, err, code = halo.spawn({
        init = function()
          halo.sleep(100)
          finished = true
        end,
      }, nil, { behavior = "slow_init" })
      local zombees = halo.node_info().ProcessesZombee
      assert(helper.wait_until(function() return #halo.process_list({ behavior = "slow_init" }) == 0 end))
      halo.sleep(5)
      return { pid = pid, err = err, code = code, zombees = zombees, finished = finished, killer = killer }
    end)
    assert.is_nil(r.pid)
    assert.equal("EINIT: init failed: kill", r.err)
    assert.equal("EINIT", r.code)
    assert.equal(1, r.zombees)
    assert.is_false(r.finished)
  end)

  it("reaps a killed spawner once its child's init ends; the child lives on", function()
    local r = helper.run(function()
      local child, continued
      local spawner = assert(halo.spawn({
        handle_message = function()
          child = halo.spawn({ init = function() halo.sleep(40) end }, nil, { behavior = "slow_child" })
          continued = true
        end,
      }))
      halo.send(spawner, "go")
      local found
      assert(helper.wait_until(function()
        found = halo.process_list({ behavior = "slow_child" })[1]
        return found
      end))
      local out = { waiting = halo.process_state(spawner) }
      assert(halo.kill(spawner))
      out.zombee = halo.process_state(spawner)
      out.gone = helper.wait_until(function() return gone(spawner) end)
      out.child = halo.process_state(found.PID)
      halo.sleep(5)
      out.continued, out.returned = continued, child
      halo.kill(found.PID)
      return out
    end)
    assert.equal("wait response", r.waiting)
    assert.equal("zombee", r.zombee)
    assert.is_true(r.gone)
    assert.equal("sleep", r.child)
    assert.is_nil(r.continued)
    assert.is_nil(r.returned)
  end)

  it("lets a process kill itself: the callback runs to its end, then the record goes", function()
    local r = helper.run(function()
      local steps = {}
      local p = assert(halo.spawn({
        handle_message = function(_, _, msg)
          steps[#steps + 1] = "before"
          halo.kill(halo.self())
          steps[#steps + 1] = halo.process_state(halo.self())
          halo.sleep(5)
          steps[#steps + 1] = "after sleep"
        end,
      }))
      assert(halo.monitor(p))
      halo.send(p, "go")
      local down = await_down(p)
      local ok = helper.wait_until(function() return gone(p) end)
      halo.sleep(10)
      return { steps = steps, reason = down.reason, gone = ok }
    end)
    assert.same({ "before", "zombee" }, r.steps)
    assert.equal("kill", r.reason)
    assert.is_true(r.gone)
  end)

  it("keeps a self-killed process a zombee when it goes on to call", function()
    local r = helper.run(function()
      local server = assert(halo.spawn({ handle_call = function() halo.sleep(30) return "r" end }))
      local res = "never set"
      local p = assert(halo.spawn({
        handle_message = function()
          halo.kill(halo.self())
          res = halo.call(server, "q", 1000)
        end,
      }))
      halo.send(p, "go")
      assert(helper.wait_until(function() return halo.process_info(server).MessagesIn == 1 end))
      local info = halo.node_info()
      local out = { state = halo.process_state(p), zombees = info.ProcessesZombee,
                    waiting = info.ProcessesWaitResponse }
      out.gone = helper.wait_until(function() return gone(p) end)
      out.res = res
      halo.kill(server)
      return out
    end)
    assert.equal("zombee", r.state)
    assert.equal(1, r.zombees)
    assert.equal(0, r.waiting)
    assert.is_true(r.gone)
    assert.equal("never set", r.res)
  end)

  it("returns ENOPROC for unknown processes", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(function() end))
      return { halo.kill(p) }
    end)
    assert.equal("ENOPROC", r[3])
  end)
end)
