local halo = require("halo")
local helper = require("helper")

local await_down = helper.await_down

describe("halo.receive", function()
  it("returns from and msg in a function process", function()
    local r = helper.run(function()
      local got = {}
      local p = assert(halo.spawn(function()
        for i = 1, 2 do got[i] = { halo.receive() } end
      end))
      halo.send(p, "one")
      halo.send(p, { two = 2 })
      assert(helper.wait_until(function() return #got == 2 end))
      return { got = got, me = halo.self() }
    end)
    assert.same({ r.me, "one" }, r.got[1])
    assert.same({ r.me, { two = 2 } }, r.got[2])
  end)

  it("returns nil, ETIMEDOUT when nothing comes in time", function()
    local r = helper.run(function()
      local t = halo.now()
      local a, b, c = halo.receive(30)
      local elapsed = halo.now() - t
      local z = { halo.receive(0) }
      return { a = a, b = b, c = c, elapsed = elapsed, z = z, timers = halo.node_info().Timers }
    end)
    assert.is_nil(r.a)
    assert.equal("ETIMEDOUT: timed out", r.b)
    assert.equal("ETIMEDOUT", r.c)
    assert.is_true(r.elapsed >= 30 and r.elapsed < 1000, "timed out after " .. r.elapsed .. " ms")
    assert.same({ nil, "ETIMEDOUT: timed out", "ETIMEDOUT" }, r.z)
    assert.equal(0, r.timers)
  end)

  it("takes a queued message at once and cancels the timeout of a met wait", function()
    local r = helper.run(function()
      local me = halo.self()
      halo.send(me, "queued")
      local out = { first = { halo.receive(0) } }
      local p = assert(halo.spawn(function(to)
        halo.sleep(10)
        halo.send(to, "in time")
      end, me))
      local t = halo.now()
      out.second = { halo.receive(1000) }
      out.elapsed = halo.now() - t
      out.timers = halo.node_info().Timers
      out.p = p
      return out
    end)
    assert.equal("queued", r.first[2])
    assert.same({ r.p, "in time" }, r.second)
    assert.is_true(r.elapsed < 500)
    assert.equal(0, r.timers)
  end)

  it("answers calls with halo.reply using the returned ref", function()
    local v = helper.run(function()
      local p = assert(halo.spawn(function()
        while true do
          local from, req, ref = halo.receive()
          if ref then halo.reply(from, ref, req * 10) end
        end
      end))
      local v = { halo.call(p, 4), halo.call(p, 5) }
      halo.kill(p)
      return v
    end)
    assert.same({ 40, 50 }, v)
  end)

  it("answers inspect requests by itself and keeps waiting", function()
    local r = helper.run(function()
      local got
      local p = assert(halo.spawn(function() got = { halo.receive() } end))
      local insp = halo.inspect(p)
      halo.send(p, "after")
      assert(helper.wait_until(function() return got ~= nil end))
      return { insp = insp, got = got[2] }
    end)
    assert.same({}, r.insp)
    assert.equal("after", r.got)
  end)

  it("keeps its timeout while answering inspect requests", function()
    local r = helper.run(function()
      local res
      local p = assert(halo.spawn(function()
        local t = halo.now()
        local a, err = halo.receive(60)
        res = { a = a, err = err, elapsed = halo.now() - t }
      end))
      local inspected = 0
      while not res do
        if halo.inspect(p, {}, 100) then inspected = inspected + 1 end
        halo.sleep(10)
      end
      return { res = res, inspected = inspected }
    end)
    assert.is_true(r.inspected >= 3, "inspected " .. r.inspected .. " times")
    assert.is_nil(r.res.a)
    assert.equal("ETIMEDOUT: timed out", r.res.err)
    assert.is_true(r.res.elapsed >= 60 and r.res.elapsed < 200, "timed out after " .. r.res.elapsed .. " ms")
  end)

  it("delivers exit signals as messages when trapping, in priority order", function()
    local r = helper.run(function()
      local got, gate = {}, {}
      local other = assert(halo.spawn(function() halo.receive() end))
      local p = assert(halo.spawn(function(watch)
        assert(halo.monitor(watch))
        while not gate.open do halo.sleep(2) end
        for i = 1, 3 do got[i] = select(2, halo.receive(1000)) end
      end, other, { trap_exit = true }))
      halo.send(p, "plain")
      halo.kill(other)
      assert(halo.spawn(function(to) halo.exit(to, "why") end, p))
      gate.open = true
      assert(helper.wait_until(function() return #got == 3 end))
      return { got = got, other = other }
    end)
    assert.equal("exit", r.got[1].kind)
    assert.equal("why", r.got[1].reason)
    assert.same({ kind = "down", pid = r.other, reason = "kill" }, r.got[2])
    assert.equal("plain", r.got[3])
  end)

  it("ends a function process on an exit signal it does not trap", function()
    local r = helper.run(function()
      local after = false
      local p = assert(halo.spawn(function()
        halo.receive()
        after = true
      end))
      assert(halo.monitor(p))
      assert(halo.spawn(function(to) halo.exit(to, "terminated_by_signal") end, p))
      local down = await_down(p)
      return { reason = down.reason, after = after }
    end)
    assert.equal("terminated_by_signal", r.reason)
    assert.is_false(r.after)
  end)

  it("ends the process with the function's return value, or 'normal'", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(function() halo.receive() return "my_result" end))
      local b = assert(halo.spawn(function() halo.receive() end))
      assert(halo.monitor(a))
      assert(halo.monitor(b))
      halo.send(a, 1)
      halo.send(b, 1)
      return { a = await_down(a).reason, b = await_down(b).reason }
    end)
    assert.equal("my_result", r.a)
    assert.equal("normal", r.b)
  end)

  it("is refused in a behavior", function()
    local r = helper.run(function()
      local res
      local p = assert(halo.spawn({
        handle_call = function() return { pcall(halo.receive, 10) } end,
      }))
      res = halo.call(p, "x")
      halo.kill(p)
      return res
    end)
    assert.is_false(r[1])
    assert.matches("function processes", r[2])
  end)
end)
